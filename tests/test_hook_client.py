"""`trailguard hook`, the command hook client: forwarding, fail-closed answers, the spool."""

from __future__ import annotations

import ast
import fcntl
import io
import json
import os
import re
import shlex
import socket
import stat
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from trailguard.capture import hook_client

SESSION = "ae1e1885-0000-4000-8000-00000000f4ce"
PRE_TOOL_USE = {
    "session_id": SESSION,
    "cwd": "/home/dev/app",
    "permission_mode": "acceptEdits",
    "hook_event_name": "PreToolUse",
    "tool_name": "Bash",
    "tool_input": {"command": "echo hello", "description": "say hello"},
    "tool_use_id": "toolu_8ec8fake0001",
}
PERMISSION_REQUEST = {
    "session_id": SESSION,
    "hook_event_name": "PermissionRequest",
    "tool_name": "Bash",
    "tool_input": {"command": "rm -rf build"},
}
POST_TOOL_USE = {
    "session_id": SESSION,
    "hook_event_name": "PostToolUse",
    "tool_name": "Bash",
    "tool_input": {"command": "echo hello"},
    "tool_response": {"stdout": "hello", "stderr": "", "interrupted": False},
    "tool_use_id": "toolu_8ec8fake0001",
    "duration_ms": 16,
}
STOP = {"session_id": SESSION, "hook_event_name": "Stop", "stop_hook_active": False}
PRE_TOOL_DENY = {
    "hookSpecificOutput": {
        "hookEventName": "PreToolUse",
        "permissionDecision": "deny",
        "permissionDecisionReason": "rule no-rm: rm is not allowed",
    }
}
TOKEN = "tg_test_0123456789abcdef"
SECRET = "secret-fake-token"
RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
NOT_STDLIB = {"pydantic", "typer", "rich", "fastapi", "orjson", "cryptography", "uvicorn"}


# --------------------------------------------------------------------------------------------
# A gateway stand-in


class Gateway:
    """Records every request; ``respond`` decides each answer: (status, body) or None to drop
    the connection without answering."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.respond: Callable[[dict[str, Any]], tuple[int, bytes] | None] = lambda _r: (
            200,
            b"{}",
        )
        self.delay = 0.0
        self.framing = "length"  # or "chunked", or "eof" (no length, close to end)
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                request = {
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "raw": raw,
                    "body": json.loads(raw),
                }
                gateway.requests.append(request)
                if gateway.delay:
                    time.sleep(gateway.delay)
                answer = gateway.respond(request)
                if answer is None:
                    self.close_connection = True
                    return
                status, body = answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if gateway.framing == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for start in range(0, len(body), 7):
                        piece = body[start : start + 7]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                elif gateway.framing == "eof":
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body)
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def event_ids(self) -> list[str]:
        return [r["headers"]["X-Trailguard-Event-Id"] for r in self.requests]


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    server = Gateway()
    yield server
    server.close()


@pytest.fixture
def closed_url() -> str:
    """A local port nobody listens on: connection refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def env(tmp_path: Path, gateway: Gateway) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TRAILGUARD_URL": gateway.url,
        "TRAILGUARD_TOKEN": TOKEN,
        "TRAILGUARD_SPOOL_DIR": str(tmp_path / "spool"),
        "TRAILGUARD_HOOK_CONFIG": str(tmp_path / "hook.json"),
        "TRAILGUARD_TIMEOUT": "5",
    }


def down(env: dict[str, str], closed_url: str) -> dict[str, str]:
    return {**env, "TRAILGUARD_URL": closed_url}


class Result:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code = code
        self.stdout = stdout
        self.stderr = stderr

    @property
    def answer(self) -> Any:
        assert self.stdout.endswith("\n")
        return json.loads(self.stdout)


def run_hook(payload: Any, env: dict[str, str], *, raw: bytes | None = None) -> Result:
    stdin = io.BytesIO(raw if raw is not None else json.dumps(payload).encode())
    stdout, stderr = io.StringIO(), io.StringIO()
    code = hook_client.main(stdin, stdout, env, stderr)
    return Result(code, stdout.getvalue(), stderr.getvalue())


def spool_files(env: dict[str, str]) -> list[Path]:
    spool = Path(env["TRAILGUARD_SPOOL_DIR"])
    return sorted(spool.glob("*.json")) if spool.is_dir() else []


def deny_reason(answer: dict[str, Any]) -> str:
    output = answer["hookSpecificOutput"]
    if output["hookEventName"] == "PermissionRequest":
        assert output["decision"]["behavior"] == "deny"
        return str(output["decision"]["message"])
    assert output["permissionDecision"] == "deny"
    return str(output["permissionDecisionReason"])


def without_marker(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "trailguard"}


# --------------------------------------------------------------------------------------------
# Forwarding


def test_forwards_payload_token_and_event_id_and_prints_the_gateway_answer(gateway, env):
    gateway.respond = lambda _r: (200, json.dumps(PRE_TOOL_DENY).encode())
    result = run_hook(PRE_TOOL_USE, env)
    assert result.code == 0
    assert result.answer == PRE_TOOL_DENY
    [request] = gateway.requests
    assert request["path"] == "/hooks/claude-code"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["Content-Type"] == "application/json"
    event_id = uuid.UUID(request["headers"]["X-Trailguard-Event-Id"])
    assert event_id.version == 7
    assert without_marker(request["body"]) == PRE_TOOL_USE
    marker = request["body"]["trailguard"]
    assert set(marker) == {"observedAt"}
    assert RFC3339_MS.match(marker["observedAt"])
    assert spool_files(env) == []


@pytest.mark.parametrize("framing", ["chunked", "eof"])
def test_reads_chunked_and_close_delimited_answers(gateway, env, framing):
    gateway.framing = framing
    gateway.respond = lambda _r: (200, json.dumps(PRE_TOOL_DENY).encode())
    assert run_hook(PRE_TOOL_USE, env).answer == PRE_TOOL_DENY


@pytest.mark.parametrize("streamed", [False, True])
def test_talks_to_a_real_asgi_server(env, streamed):
    """The socket-level HTTP client against uvicorn (the gateway's server), with a
    Content-Length answer and with a streamed (chunked) one."""
    uvicorn = pytest.importorskip("uvicorn")
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append({"headers": dict(scope["headers"]), "body": json.loads(body)})
        answer = json.dumps(PRE_TOOL_DENY).encode()
        headers = [(b"content-type", b"application/json")]
        if not streamed:
            headers.append((b"content-length", str(len(answer)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if streamed:
            await send({"type": "http.response.body", "body": answer[:10], "more_body": True})
            await send({"type": "http.response.body", "body": answer[10:]})
        else:
            await send({"type": "http.response.body", "body": answer})

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.started
        result = run_hook(PRE_TOOL_USE, {**env, "TRAILGUARD_URL": f"http://127.0.0.1:{port}"})
    finally:
        server.should_exit = True
        thread.join(10)
    assert result.answer == PRE_TOOL_DENY
    [request] = seen
    assert request["headers"][b"authorization"] == f"Bearer {TOKEN}".encode()
    assert without_marker(request["body"]) == PRE_TOOL_USE


def test_passes_through_kill_answers_for_permission_requests(gateway, env):
    kill = {"continue": False, "stopReason": "session killed by admin"}
    gateway.respond = lambda _r: (200, json.dumps(kill).encode())
    assert run_hook(PERMISSION_REQUEST, env).answer == kill


def test_every_event_gets_a_new_time_ordered_id(gateway, env):
    for _ in range(3):
        assert run_hook(POST_TOOL_USE, env).answer == {}
    ids = gateway.event_ids
    assert len(set(ids)) == 3
    assert ids == sorted(ids)


def test_url_and_token_file_come_from_the_config_file(gateway, env, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}-from-file\n")
    Path(env["TRAILGUARD_HOOK_CONFIG"]).write_text(
        json.dumps({"url": gateway.url + "/", "token_file": str(token_file)})
    )
    env = {k: v for k, v in env.items() if k not in {"TRAILGUARD_URL", "TRAILGUARD_TOKEN"}}
    assert run_hook(STOP, env).answer == {}
    [request] = gateway.requests
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}-from-file"


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        (
            "http://127.0.0.1:8787/hooks/claude-code",
            ("http", "127.0.0.1", 8787, "127.0.0.1:8787", "/hooks/claude-code"),
        ),
        (
            "HTTPS://gw.example.invalid/base/hooks/claude-code?x=1#frag",
            (
                "https",
                "gw.example.invalid",
                443,
                "gw.example.invalid",
                "/base/hooks/claude-code?x=1",
            ),
        ),
        ("http://[::1]:9000/h", ("http", "::1", 9000, "[::1]:9000", "/h")),
        ("http://u:p@host", ("http", "host", 80, "host", "/")),
        ("http://host?q", ("http", "host", 80, "host", "/?q")),
    ],
)
def test_split_url(url, parts):
    assert hook_client.split_url(url) == parts


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/x",
        "127.0.0.1:8787",
        "http://:80/",
        "http://host:0/",
        "http://host:99999/",
        "http://host:80x/",
        "http://[::1/",
    ],
)
def test_split_url_rejects(url):
    with pytest.raises(ValueError, match=r"URL|host|port"):
        hook_client.split_url(url)


def test_an_unusable_url_denies_and_spools(env):
    env = {**env, "TRAILGUARD_URL": "127.0.0.1:8787"}
    reason = deny_reason(run_hook(PRE_TOOL_USE, env).answer)
    assert "TRAILGUARD_URL" in reason
    assert "not usable" in reason
    assert len(spool_files(env)) == 1


def test_defaults_and_bad_settings_are_reported(tmp_path):
    config_path = tmp_path / "hook.json"
    config_path.write_text("{not json")
    config = hook_client.load_config(
        {
            "HOME": str(tmp_path),
            "TRAILGUARD_HOOK_CONFIG": str(config_path),
            "TRAILGUARD_TIMEOUT": "soon",
        }
    )
    assert config.url == "http://127.0.0.1:8787"
    assert config.timeout == 10.0
    assert config.token is None
    assert config.spool_dir == str(tmp_path / ".local/state/trailguard/spool")
    assert any("TRAILGUARD_TIMEOUT" in w for w in config.warnings)
    assert any(str(config_path) in w for w in config.warnings)


# --------------------------------------------------------------------------------------------
# Gateway down: fail closed, spool


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (PRE_TOOL_USE, "PreToolUse"),
        (PERMISSION_REQUEST, "PermissionRequest"),
        (POST_TOOL_USE, None),
    ],
)
def test_gateway_down_denies_tool_events_and_spools_every_event(env, closed_url, payload, expected):
    env = down(env, closed_url)
    result = run_hook(payload, env)
    assert result.code == 0
    answer = result.answer
    if expected is None:
        assert answer == {}
    else:
        assert set(answer) == {"hookSpecificOutput"}
        assert answer["hookSpecificOutput"]["hookEventName"] == expected
        if expected == "PermissionRequest":
            assert set(answer["hookSpecificOutput"]) == {"hookEventName", "decision"}
            assert set(answer["hookSpecificOutput"]["decision"]) == {"behavior", "message"}
        else:
            assert set(answer["hookSpecificOutput"]) == {
                "hookEventName",
                "permissionDecision",
                "permissionDecisionReason",
            }
        reason = deny_reason(answer)
        assert f"audit gateway at {closed_url} is unreachable (connection refused)" in reason
        assert "saved locally" in reason
    [spooled] = spool_files(env)
    spool_dir = spooled.parent
    assert stat.S_IMODE(spooled.stat().st_mode) == 0o600
    assert stat.S_IMODE(spool_dir.stat().st_mode) == 0o700
    record = json.loads(spooled.read_text())
    assert spooled.name == f"{record['eventId']}.json"
    assert uuid.UUID(record["eventId"]).version == 7
    assert without_marker(record["payload"]) == payload
    assert RFC3339_MS.match(record["payload"]["trailguard"]["observedAt"])
    assert "spooled" not in record["payload"]["trailguard"]
    assert "connection refused" in record["reason"]
    assert list(spool_dir.glob(".*")) == []  # no temp file left behind


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fds")
def test_spool_file_is_fsynced_renamed_and_its_directory_fsynced_before_the_answer(
    env, closed_url, monkeypatch
):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        events.append(("replace", f"{src} -> {dst}"))
        real_replace(src, dst)

    class Stdout(io.StringIO):
        def write(self, text: str) -> int:
            events.append(("stdout", text))
            return super().write(text)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    stdout = Stdout()
    code = hook_client.main(
        io.BytesIO(json.dumps(PRE_TOOL_USE).encode()), stdout, down(env, closed_url), io.StringIO()
    )
    assert code == 0
    [final] = spool_files(env)
    spool_dir = str(final.parent)
    kinds = [kind for kind, _ in events]
    file_sync = next(i for i, (k, v) in enumerate(events) if k == "fsync" and v.endswith(".tmp"))
    rename = kinds.index("replace")
    dir_sync = max(i for i, e in enumerate(events) if e == ("fsync", spool_dir))
    answer = kinds.index("stdout")
    assert file_sync < rename < dir_sync < answer
    assert events[rename][1].endswith(f" -> {final}")


def test_server_errors_count_as_down(gateway, env):
    gateway.respond = lambda _r: (503, b'{"detail": "ledger is busy"}')
    result = run_hook(PRE_TOOL_USE, env)
    assert result.code == 0
    reason = deny_reason(result.answer)
    assert f"audit gateway at {gateway.url}" in reason
    assert "HTTP 503: ledger is busy" in reason
    assert len(spool_files(env)) == 1
    assert run_hook(STOP, env).answer == {}
    assert len(spool_files(env)) == 2


def test_timeout_denies_quickly_and_spools(gateway, env):
    gateway.delay = 1.5
    env = {**env, "TRAILGUARD_TIMEOUT": "0.3"}
    started = time.monotonic()
    result = run_hook(PERMISSION_REQUEST, env)
    elapsed = time.monotonic() - started
    assert "unreachable (no answer within 0.3 s)" in deny_reason(result.answer)
    assert elapsed < 1.2
    assert len(spool_files(env)) == 1


def test_401_denies_explaining_the_token_and_spools(gateway, env):
    gateway.respond = lambda _r: (401, b'{"detail": "unknown token"}')
    result = run_hook(PRE_TOOL_USE, env)
    reason = deny_reason(result.answer)
    assert "HTTP 401: unknown token" in reason
    assert "missing or invalid" in reason
    assert "TRAILGUARD_TOKEN" in reason
    assert TOKEN not in reason
    [spooled] = spool_files(env)
    assert without_marker(json.loads(spooled.read_text())["payload"]) == PRE_TOOL_USE


def test_missing_token_sends_no_authorization_and_says_so(gateway, env):
    gateway.respond = lambda _r: (401, b'{"detail": "missing bearer token"}')
    env = {k: v for k, v in env.items() if k != "TRAILGUARD_TOKEN"}
    reason = deny_reason(run_hook(PERMISSION_REQUEST, env).answer)
    assert "Authorization" not in gateway.requests[0]["headers"]
    assert "TRAILGUARD_TOKEN is not set" in reason
    assert "set TRAILGUARD_TOKEN" in reason


def test_403_denies(gateway, env):
    gateway.respond = lambda _r: (403, b'{"detail": "token revoked"}')
    reason = deny_reason(run_hook(PRE_TOOL_USE, env).answer)
    assert "HTTP 403: token revoked" in reason
    assert len(spool_files(env)) == 1


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b""])
def test_an_answer_that_is_not_a_json_object_denies_but_is_not_spooled(gateway, env, body):
    gateway.respond = lambda _r: (200, body)
    reason = deny_reason(run_hook(PRE_TOOL_USE, env).answer)
    assert "not a hook decision" in reason
    assert run_hook(POST_TOOL_USE, env).answer == {}
    assert spool_files(env) == []  # the gateway committed before answering


def test_a_rejected_event_is_kept_aside_and_not_replayed(gateway, env):
    gateway.respond = lambda _r: (422, b'{"detail": [{"loc": ["body", "x"]}]}')
    reason = deny_reason(run_hook(PRE_TOOL_USE, env).answer)
    assert "rejected the event (HTTP 422" in reason
    assert spool_files(env) == []
    rejected = list((Path(env["TRAILGUARD_SPOOL_DIR"]) / "rejected").glob("*.json"))
    assert len(rejected) == 1
    gateway.respond = lambda _r: (200, b"{}")
    assert run_hook(STOP, env).answer == {}
    assert len(gateway.requests) == 2  # the rejected one was not sent again


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt("boom")])
def test_a_bug_in_the_client_still_denies_and_spools(env, monkeypatch, error):
    def broken(*_args: Any) -> Any:
        raise error

    monkeypatch.setattr(hook_client, "_post_event", broken)
    result = run_hook(PRE_TOOL_USE, env)
    assert result.code == 0
    reason = deny_reason(result.answer)
    assert f"{type(error).__name__}: boom" in reason
    assert "bug" in reason
    assert len(spool_files(env)) == 1
    assert run_hook(POST_TOOL_USE, env).answer == {}
    assert len(spool_files(env)) == 2


def test_a_spool_that_cannot_be_written_is_admitted(env, closed_url, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    env = {**down(env, closed_url), "TRAILGUARD_SPOOL_DIR": str(blocker / "spool")}
    result = run_hook(PRE_TOOL_USE, env)
    assert result.code == 0
    reason = deny_reason(result.answer)
    assert "could not be saved locally" in reason
    assert "saved locally and will be sent" not in reason


# --------------------------------------------------------------------------------------------
# Replay


def spool_while_down(env: dict[str, str], closed_url: str, payloads: list[dict[str, Any]]):
    for payload in payloads:
        run_hook(payload, down(env, closed_url))
    files = spool_files(env)
    assert len(files) == len(payloads)
    return [json.loads(f.read_text()) for f in files]


def test_replays_spooled_events_first_in_order_once_and_deletes_them(gateway, env, closed_url):
    records = spool_while_down(env, closed_url, [PRE_TOOL_USE, POST_TOOL_USE, STOP])
    assert [r["payload"]["hook_event_name"] for r in records] == [
        "PreToolUse",
        "PostToolUse",
        "Stop",
    ]
    gateway.respond = lambda _r: (200, json.dumps(PRE_TOOL_DENY).encode())
    result = run_hook(PERMISSION_REQUEST, env)
    assert result.answer == PRE_TOOL_DENY  # the current event's answer, not a replay's
    assert len(gateway.requests) == 4
    for record, request in zip(records, gateway.requests[:3], strict=True):
        assert request["headers"]["X-Trailguard-Event-Id"] == record["eventId"]
        assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
        marker = request["body"]["trailguard"]
        assert marker["spooled"] is True
        assert marker["observedAt"] == record["payload"]["trailguard"]["observedAt"]
        assert without_marker(request["body"]) == without_marker(record["payload"])
    current = gateway.requests[3]
    assert without_marker(current["body"]) == PERMISSION_REQUEST
    assert "spooled" not in current["body"]["trailguard"]
    assert current["headers"]["X-Trailguard-Event-Id"] > records[-1]["eventId"]
    assert spool_files(env) == []
    run_hook(STOP, env)
    assert len(gateway.requests) == 5  # each spooled event was sent once


def test_replay_409_means_already_recorded_and_deletes(gateway, env, closed_url):
    spool_while_down(env, closed_url, [POST_TOOL_USE, STOP])

    def respond(request: dict[str, Any]) -> tuple[int, bytes]:
        if request["body"]["trailguard"].get("spooled"):
            return 409, b'{"detail": "event already recorded"}'
        return 200, b"{}"

    gateway.respond = respond
    assert run_hook(PRE_TOOL_USE, env).answer == {}
    assert len(gateway.requests) == 3
    assert spool_files(env) == []
    assert not (Path(env["TRAILGUARD_SPOOL_DIR"]) / "rejected").exists()


def test_replay_stops_at_a_connection_failure_and_keeps_the_rest(gateway, env, closed_url):
    records = spool_while_down(env, closed_url, [POST_TOOL_USE, STOP, POST_TOOL_USE])
    answers = iter([(200, b"{}"), None])  # then the gateway drops the connection
    gateway.respond = lambda _r: next(answers)
    result = run_hook(PRE_TOOL_USE, env)
    reason = deny_reason(result.answer)
    assert "unreachable" in reason
    assert len(gateway.requests) == 2  # the current event was not tried against a dead gateway
    remaining = [json.loads(f.read_text())["eventId"] for f in spool_files(env)]
    assert remaining[:2] == [records[1]["eventId"], records[2]["eventId"]]
    assert len(remaining) == 3  # plus the current event
    # spooled: true is added at send time only, not written back into the files
    assert all(
        "spooled" not in json.loads(f.read_text())["payload"]["trailguard"]
        for f in spool_files(env)
    )


def test_a_failing_replay_does_not_block_the_current_event(gateway, env, closed_url):
    records = spool_while_down(env, closed_url, [POST_TOOL_USE, STOP])

    def respond(request: dict[str, Any]) -> tuple[int, bytes]:
        if request["body"]["trailguard"].get("spooled"):
            return 500, b'{"detail": "this one crashes the gateway"}'
        return 200, b"{}"

    gateway.respond = respond
    assert run_hook(PRE_TOOL_USE, env).answer == {}
    assert len(gateway.requests) == 2  # one replay attempt, then the current event
    assert [json.loads(f.read_text())["eventId"] for f in spool_files(env)] == [
        r["eventId"] for r in records
    ]


def test_replay_is_bounded_per_invocation(gateway, env, closed_url, monkeypatch):
    records = spool_while_down(env, closed_url, [STOP] * 5)
    monkeypatch.setattr(hook_client, "MAX_REPLAY_FILES", 2)
    run_hook(POST_TOOL_USE, env)
    assert gateway.event_ids[:2] == [r["eventId"] for r in records[:2]]
    assert len(gateway.requests) == 3
    assert len(spool_files(env)) == 3
    run_hook(POST_TOOL_USE, env)
    run_hook(POST_TOOL_USE, env)
    assert spool_files(env) == []


def test_replay_time_budget(gateway, env, closed_url, monkeypatch):
    spool_while_down(env, closed_url, [STOP] * 4)
    monkeypatch.setattr(hook_client, "REPLAY_BUDGET_SECONDS", 0.25)
    gateway.delay = 0.2
    run_hook(POST_TOOL_USE, env)
    replayed = len(gateway.requests) - 1
    assert 1 <= replayed < 4
    assert len(spool_files(env)) == 4 - replayed


def test_corrupt_spool_files_are_moved_aside_and_do_not_block(gateway, env, closed_url):
    [record] = spool_while_down(env, closed_url, [STOP])
    spool = Path(env["TRAILGUARD_SPOOL_DIR"])
    corrupt_names = ["00000000-0000-7000-8000-000000000000.json", "00000000-1.json"]
    (spool / corrupt_names[0]).write_bytes(b'{"eventId": "x", "payl')  # torn
    (spool / corrupt_names[1]).write_bytes(b'["not", "a", "record"]')
    assert run_hook(PRE_TOOL_USE, env).answer == {}
    assert gateway.event_ids[0] == record["eventId"]
    assert len(gateway.requests) == 2
    assert spool_files(env) == []
    assert sorted(p.name for p in (spool / "corrupt").iterdir()) == sorted(corrupt_names)


def test_replay_is_skipped_while_another_hook_holds_the_lock(gateway, env, closed_url):
    records = spool_while_down(env, closed_url, [STOP])
    lock = os.open(Path(env["TRAILGUARD_SPOOL_DIR"]) / ".replay.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert run_hook(POST_TOOL_USE, env).answer == {}
    finally:
        os.close(lock)
    assert len(gateway.requests) == 1
    assert gateway.event_ids[0] != records[0]["eventId"]
    assert len(spool_files(env)) == 1


# --------------------------------------------------------------------------------------------
# SessionStart


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "app"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "feature-x")
    git(repo, "config", "user.email", "dev@example.invalid")
    git(repo, "config", "user.name", "Dev")
    git(repo, "remote", "add", "origin", f"https://user:{SECRET}@example.invalid/org/repo.git")
    git(repo, "commit", "-q", "--allow-empty", "-m", "first")
    return repo


def session_start(cwd: Path, **extra: Any) -> dict[str, Any]:
    return {
        "session_id": SESSION,
        "transcript_path": f"/home/dev/.claude/projects/x/{SESSION}.jsonl",
        "cwd": str(cwd),
        "hook_event_name": "SessionStart",
        "source": "startup",
        **extra,
    }


def test_session_start_sends_context_without_credentials_and_writes_env_file(
    gateway, env, repo, tmp_path
):
    home = Path(env["HOME"])
    (home / ".claude").mkdir()
    (home / ".claude/settings.json").write_text(
        json.dumps({"model": "claude-from-settings", "permissions": {"allow": ["Bash(ls:*)"]}})
    )
    (repo / ".claude").mkdir()
    (repo / ".claude/settings.json").write_text(
        json.dumps({"permissions": {"deny": ["Bash(rm:*)"], "allow": ["Bash(ls:*)"]}})
    )
    (repo / ".claude/settings.local.json").write_text(
        json.dumps({"permissions": {"ask": ["WebFetch"], "allow": ["Read"]}})
    )
    env_file = tmp_path / "claude-env"
    env_file.write_text("export EARLIER=1")  # no trailing newline
    env = {**env, "CLAUDE_ENV_FILE": str(env_file)}

    result = run_hook(session_start(repo, permission_mode="acceptEdits"), env)
    assert result.code == 0
    assert result.answer == {}
    [request] = gateway.requests
    assert SECRET not in request["raw"].decode()
    assert SECRET not in json.dumps(request["headers"])
    context = request["body"]["trailguard"]["context"]
    assert context["gitRemote"] == "https://example.invalid/org/repo.git"
    assert context["gitEmail"] == "dev@example.invalid"
    assert context["gitBranch"] == "feature-x"
    assert context["hostname"] == socket.gethostname()
    assert context["osUser"]
    assert context["permissionMode"] == "acceptEdits"
    assert context["model"] == "claude-from-settings"
    assert context["agentVersion"] is None
    permissions = context["permissions"]
    assert permissions["allow"] == ["Bash(ls:*)", "Read"]
    assert permissions["deny"] == ["Bash(rm:*)"]
    assert permissions["ask"] == ["WebFetch"]
    assert str(repo / ".claude/settings.local.json") in permissions["sources"]
    assert str(home / ".claude/settings.json") in permissions["sources"]

    assert env_file.read_text().splitlines() == [
        "export EARLIER=1",
        f"export TRAILGUARD_SESSION_ID={SESSION}",
        f"export AWS_SDK_UA_APP_ID=trailguard-{SESSION}",
    ]
    shown = subprocess.run(
        [
            "bash",
            "-c",
            f'. {shlex.quote(str(env_file))}; echo "$TRAILGUARD_SESSION_ID $AWS_SDK_UA_APP_ID"',
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.split() == [SESSION, f"trailguard-{SESSION}"]


def test_session_start_when_down_still_writes_env_file_and_spools_clean_context(
    env, closed_url, repo, tmp_path
):
    env_file = tmp_path / "claude-env"
    env = {**down(env, closed_url), "CLAUDE_ENV_FILE": str(env_file)}
    result = run_hook(session_start(repo, model="claude-from-payload", version="2.1.328"), env)
    assert result.code == 0
    assert result.answer == {}
    assert f"TRAILGUARD_SESSION_ID={SESSION}" in env_file.read_text()
    [spooled] = spool_files(env)
    text = spooled.read_text()
    assert SECRET not in text
    context = json.loads(text)["payload"]["trailguard"]["context"]
    assert context["model"] == "claude-from-payload"
    assert context["agentVersion"] == "2.1.328"
    assert context["gitRemote"] == "https://example.invalid/org/repo.git"


def test_env_file_values_are_shell_quoted(gateway, env, tmp_path):
    hostile = "x'; touch pwned; echo '"
    env_file = tmp_path / "claude-env"
    env = {**env, "CLAUDE_ENV_FILE": str(env_file)}
    payload = {**session_start(tmp_path), "session_id": hostile}
    assert run_hook(payload, env).answer == {}
    shown = subprocess.run(
        ["bash", "-c", f'. {shlex.quote(str(env_file))}; printf %s "$TRAILGUARD_SESSION_ID"'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout == hostile
    assert not (tmp_path / "pwned").exists()


def test_session_start_outside_a_repository_has_no_git_context(gateway, env, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    run_hook(session_start(plain), {**env, "GIT_CEILING_DIRECTORIES": str(tmp_path)})
    context = gateway.requests[0]["body"]["trailguard"]["context"]
    assert context["gitRemote"] is None
    assert context["gitBranch"] is None
    assert context["permissions"]["allow"] == []


@pytest.mark.parametrize(
    ("remote", "clean"),
    [
        (
            f"https://user:{SECRET}@example.invalid/org/repo.git",
            "https://example.invalid/org/repo.git",
        ),
        (f"https://{SECRET}@github.com/org/repo", "https://github.com/org/repo"),
        (
            f"https://x-access-token:{SECRET}@github.com:443/o/r.git",
            "https://github.com:443/o/r.git",
        ),
        (f"https://example.invalid/o/r.git?token={SECRET}", "https://example.invalid/o/r.git"),
        (f"ssh://git:{SECRET}@example.invalid/o/r.git", "ssh://example.invalid/o/r.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        (f"user:{SECRET}@example.invalid:org/repo.git", "example.invalid:org/repo.git"),
        ("/srv/git/repo.git", "/srv/git/repo.git"),
    ],
)
def test_strip_credentials(remote, clean):
    assert hook_client.strip_credentials(remote) == clean


# --------------------------------------------------------------------------------------------
# Bad input


def test_stdin_that_is_not_json_exits_2_with_a_reason(env):
    process = subprocess.run(
        [sys.executable, "-m", "trailguard.capture.hook_client"],
        input=b"PreToolUse please",
        capture_output=True,
        env=env,
    )
    assert process.returncode == 2
    assert process.stdout == b""
    assert b"not JSON" in process.stderr
    assert spool_files(env) == []


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"PreToolUse"', b'{"tool_name": "Bash"}', b""])
def test_stdin_that_is_not_a_hook_payload_exits_2(gateway, env, raw):
    result = run_hook(None, env, raw=raw)
    assert result.code == 2
    assert result.stdout == ""
    assert "trailguard:" in result.stderr
    assert gateway.requests == []


# --------------------------------------------------------------------------------------------
# Start-up cost


def test_imports_only_the_standard_library(env):
    probe = (
        "import sys, trailguard.capture.hook_client as h; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(NOT_STDLIB)!r}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

    def imported_by(code: str) -> set[str]:
        timed = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            capture_output=True,
            text=True,
            check=True,
        )
        return {
            line.rsplit("|", 1)[1].strip()
            for line in timed.stderr.splitlines()
            if line.startswith("import time:") and "|" in line
        }

    # Interpreter start-up (site, sitecustomize, .pth hooks) is not the client's doing.
    imported = imported_by("import trailguard.capture.hook_client") - imported_by("pass")
    assert "trailguard.capture.hook_client" in imported
    outside = {m for m in imported if m.split(".")[0] not in sys.stdlib_module_names}
    assert outside <= {
        "trailguard",
        "trailguard.ids",
        "trailguard.capture",
        "trailguard.capture.hook_client",
    }, outside
    heavy = {"http.client", "urllib.request", "email.parser", "ssl", "typing", "dataclasses"}
    assert not imported & heavy


def test_capture_package_init_stays_import_free():
    init = Path(hook_client.__file__).with_name("__init__.py")
    tree = ast.parse(init.read_text())
    assert all(
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in tree.body
    )


def test_runs_as_a_script_end_to_end(gateway, env):
    gateway.respond = lambda _r: (200, json.dumps(PRE_TOOL_DENY).encode())
    process = subprocess.run(
        [sys.executable, "-m", "trailguard.capture.hook_client"],
        input=json.dumps(PRE_TOOL_USE).encode(),
        capture_output=True,
        env=env,
    )
    assert process.returncode == 0, process.stderr
    assert json.loads(process.stdout) == PRE_TOOL_DENY
    assert len(gateway.requests) == 1


@pytest.mark.slow
def test_report_import_time():
    """Not a pass/fail check: prints the median wall time of importing the client."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import trailguard.capture.hook_client"], check=True)
        times.append(time.perf_counter() - started)
    baseline = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        baseline.append(time.perf_counter() - started)
    print(
        f"\nimport trailguard.capture.hook_client: median {statistics.median(times) * 1000:.1f} ms"
        f" (bare interpreter {statistics.median(baseline) * 1000:.1f} ms)"
    )
    assert len(times) == 5
