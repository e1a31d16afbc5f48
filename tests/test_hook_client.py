"""`trailguard hook`, the command hook client: forwarding, fail-closed answers, the spool."""

from __future__ import annotations

import ast
import fcntl
import hashlib
import io
import json
import os
import re
import shlex
import socket
import stat
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
from trailguard.capture.hook_client import config as client_config
from trailguard.capture.hook_client import context, spool, transport
from trailguard.capture.hook_client import gateway as client_gateway
from trailguard.capture.hook_client import poison as poison_spool
from trailguard.capture.hook_client import support as client_support
from trailguard.capture.hook_client import transcript as usage_reader
from trailguard.capture.install import default_hook_command

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


def test_gateway_on_the_command_line_wins_over_the_environment(gateway, env, closed_url):
    """``install`` writes ``--gateway URL`` into every command hook: the event must reach that
    gateway even when TRAILGUARD_URL on this machine names another one."""
    stdin = io.BytesIO(json.dumps(PRE_TOOL_USE).encode())
    stdout, stderr = io.StringIO(), io.StringIO()
    code = hook_client.main(
        stdin, stdout, down(env, closed_url), stderr, argv=["--gateway", gateway.url]
    )
    assert code == 0, stderr.getvalue()
    assert len(gateway.requests) == 1
    assert gateway.requests[0]["body"]["hook_event_name"] == "PreToolUse"


def test_hook_help_prints_usage_without_reading_stdin(env):
    class Unreadable(io.BytesIO):
        def read(self, *_args: Any) -> bytes:
            raise AssertionError("--help must not read stdin")

    stdout, stderr = io.StringIO(), io.StringIO()
    assert hook_client.main(Unreadable(), stdout, env, stderr, argv=["--help"]) == 0
    assert stdout.getvalue().startswith("Usage: trailguard hook [--gateway URL]")
    assert "--gateway URL" in stdout.getvalue()


@pytest.mark.parametrize("argv", [["--gatway", "http://x"], ["--gateway"], ["--gateway="]])
def test_hook_with_bad_arguments_blocks_naming_the_problem(env, argv):
    stdout, stderr = io.StringIO(), io.StringIO()
    code = hook_client.main(io.BytesIO(b"{}"), stdout, env, stderr, argv=argv)
    assert code == hook_client.EXIT_BAD_INPUT
    assert stdout.getvalue() == ""
    assert "trailguard hook:" in stderr.getvalue()
    assert "blocking" in stderr.getvalue()


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
    assert transport.split_url(url) == parts


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
        transport.split_url(url)


def test_an_unusable_url_denies_and_spools(env):
    env = {**env, "TRAILGUARD_URL": "127.0.0.1:8787"}
    reason = deny_reason(run_hook(PRE_TOOL_USE, env).answer)
    assert "TRAILGUARD_URL" in reason
    assert "not usable" in reason
    assert len(spool_files(env)) == 1


def test_defaults_and_bad_settings_are_reported(tmp_path):
    config_path = tmp_path / "hook.json"
    config_path.write_text("{not json")
    config = client_config.load_config(
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

    monkeypatch.setattr(client_gateway, "post_event", broken)
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
    # Two replay attempts (two failures in a row look like the gateway's fault: stop), then
    # the current event.
    assert len(gateway.requests) == 3
    assert [json.loads(f.read_text())["eventId"] for f in spool_files(env)] == [
        r["eventId"] for r in records
    ]


def test_a_poison_event_is_moved_aside_after_bounded_tries_and_the_rest_go_on(
    gateway, env, closed_url
):
    """One spooled event the gateway always fails on must not keep the others on the
    developer's disk: after POISON_TRIES tries it goes to poisoned/ and the gateway is told."""
    poison, *rest = spool_while_down(env, closed_url, [POST_TOOL_USE, STOP, POST_TOOL_USE])

    def respond(request: dict[str, Any]) -> tuple[int, bytes]:
        if request["headers"]["X-Trailguard-Event-Id"] == poison["eventId"]:
            return 500, b'{"detail": "internal error"}'
        return 200, b"{}"

    gateway.respond = respond
    run_hook(PRE_TOOL_USE, env)
    # The other spooled events were delivered on the first contact, past the poison.
    delivered = {r["headers"]["X-Trailguard-Event-Id"] for r in gateway.requests}
    assert {r["eventId"] for r in rest} <= delivered
    assert [json.loads(f.read_text())["eventId"] for f in spool_files(env)] == [poison["eventId"]]
    for _ in range(poison_spool.POISON_TRIES - 1):
        run_hook(STOP, env)
    assert spool_files(env) == []
    poisoned = Path(env["TRAILGUARD_SPOOL_DIR"]) / "poisoned"
    assert json.loads((poisoned / f"{poison['eventId']}.json").read_text()) == poison
    # The next contact reports it, once.
    before = len(gateway.requests)
    run_hook(STOP, env)
    [report] = gateway.requests[before:]
    [problem] = report["body"]["trailguard"]["spoolProblems"]
    assert problem["eventId"] == poison["eventId"]
    assert problem["tries"] == poison_spool.POISON_TRIES
    assert problem["hookEventName"] == "PostToolUse"
    assert "HTTP 500" in problem["lastError"]
    before = len(gateway.requests)
    run_hook(STOP, env)
    assert "spoolProblems" not in gateway.requests[before]["body"]["trailguard"]


def test_an_outage_never_moves_spooled_events_aside(gateway, env, closed_url):
    """5xx for everything is the gateway's fault, not the events': nothing is poisoned."""
    spool_while_down(env, closed_url, [POST_TOOL_USE, STOP])
    gateway.respond = lambda _r: (503, b'{"detail": "the ledger cannot write"}')
    for _ in range(poison_spool.POISON_TRIES + 2):
        run_hook(STOP, env)
    assert not (Path(env["TRAILGUARD_SPOOL_DIR"]) / "poisoned").exists()
    assert len(spool_files(env)) == 2 + poison_spool.POISON_TRIES + 2


def test_replay_is_bounded_per_invocation(gateway, env, closed_url, monkeypatch):
    records = spool_while_down(env, closed_url, [STOP] * 5)
    monkeypatch.setattr(spool, "MAX_REPLAY_FILES", 2)
    run_hook(POST_TOOL_USE, env)
    assert gateway.event_ids[:2] == [r["eventId"] for r in records[:2]]
    assert len(gateway.requests) == 3
    assert len(spool_files(env)) == 3
    run_hook(POST_TOOL_USE, env)
    run_hook(POST_TOOL_USE, env)
    assert spool_files(env) == []


def test_replay_time_budget(gateway, env, closed_url, monkeypatch):
    spool_while_down(env, closed_url, [STOP] * 4)
    monkeypatch.setattr(spool, "REPLAY_BUDGET_SECONDS", 0.25)
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
    assert context.strip_credentials(remote) == clean


# --------------------------------------------------------------------------------------------
# Model usage from the transcript

MODEL = "claude-opus-5-5"


def usage_of(output: int, **extra: Any) -> dict[str, Any]:
    return {
        "input_tokens": 100,
        "cache_creation_input_tokens": 50,
        "cache_read_input_tokens": 1500,
        "output_tokens": output,
        "service_tier": "standard",
        **extra,
    }


def assistant(
    message_id: str,
    *,
    output: int = 20,
    tools: tuple[str, ...] = (),
    text: str | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One transcript line of an assistant message, as Claude Code 2.1.328 writes it: one line
    per content block, each with the message's id, model and usage."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text is not None else []
    content += [
        {"type": "tool_use", "id": tool, "name": "Bash", "input": {"command": "true"}}
        for tool in tools
    ]
    return {
        "parentUuid": str(uuid.uuid4()),
        "isSidechain": False,
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": content,
            "stop_reason": "tool_use" if tools else "end_turn",
            "usage": usage if usage is not None else usage_of(output),
        },
        "requestId": f"req_{message_id}",
        "type": "assistant",
        "uuid": str(uuid.uuid4()),
        "sessionId": SESSION,
    }


def user_line(text: str = "tool output") -> dict[str, Any]:
    return {"type": "user", "message": {"role": "user", "content": text}, "sessionId": SESSION}


def other_line(kind: str = "attachment") -> dict[str, Any]:
    return {"type": kind, "sessionId": SESSION, "uuid": str(uuid.uuid4())}


def encode_lines(*records: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)


def append(path: Path, *records: dict[str, Any], raw: bytes = b"") -> None:
    with path.open("ab") as handle:
        handle.write(encode_lines(*records) + raw)


def entry(message_id: str, tools: list[str], usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """The usage entry the client sends for a message."""
    return {
        "messageId": message_id,
        "model": MODEL,
        "usage": usage if usage is not None else usage_of(20),
        "toolUseIds": tools,
        "requestId": f"req_{message_id}",
    }


@pytest.fixture
def transcript(tmp_path: Path) -> Path:
    directory = tmp_path / "home" / ".claude" / "projects" / "-home-dev-app"
    directory.mkdir(parents=True)
    path = directory / f"{SESSION}.jsonl"
    append(path, other_line("queue-operation"), user_line("go"))
    return path


def with_transcript(payload: dict[str, Any], path: Path | str) -> dict[str, Any]:
    return {**payload, "transcript_path": str(path)}


def usage_sent(request: dict[str, Any]) -> list[dict[str, Any]] | None:
    return request["body"]["trailguard"].get("usage")


def all_usage(gateway: Gateway) -> list[dict[str, Any]]:
    return [e for r in gateway.requests for e in usage_sent(r) or []]


def state_file(env: dict[str, str], path: Path) -> Path:
    digest = hashlib.sha256(os.fsencode(str(path))).hexdigest()
    return Path(env["TRAILGUARD_SPOOL_DIR"]) / "transcripts" / f"{digest}.json"


def test_transcript_usage_goes_with_the_next_event_once(gateway, env, transcript):
    append(transcript, assistant("msg_1", tools=("toolu_1",)), user_line())
    result = run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert result.answer == {}
    assert result.stderr == ""
    assert usage_sent(gateway.requests[0]) == [entry("msg_1", ["toolu_1"])]

    append(transcript, assistant("msg_2", tools=("toolu_2",)), user_line())
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert usage_sent(gateway.requests[1]) == [entry("msg_2", ["toolu_2"])]

    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert "usage" not in gateway.requests[2]["body"]["trailguard"]  # nothing new
    assert [e["messageId"] for e in all_usage(gateway)] == ["msg_1", "msg_2"]

    state = json.loads(state_file(env, transcript).read_text())
    assert state["offset"] == transcript.stat().st_size
    assert state["sent"] == ["msg_1", "msg_2"]
    assert stat.S_IMODE(state_file(env, transcript).parent.stat().st_mode) == 0o700
    assert spool_files(env) == []  # the state directory is not mistaken for a spooled event


@pytest.mark.parametrize("gating", [PRE_TOOL_USE, PERMISSION_REQUEST])
def test_gating_events_leave_the_transcript_to_the_next_event(gateway, env, transcript, gating):
    """A tool call waits for PreToolUse: its usage goes with the PostToolUse that follows."""
    append(transcript, assistant("msg_1", tools=("toolu_1",)), user_line())
    run_hook(with_transcript(gating, transcript), env)
    assert usage_sent(gateway.requests[0]) is None
    assert not state_file(env, transcript).exists()
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert usage_sent(gateway.requests[1]) == [entry("msg_1", ["toolu_1"])]


def test_a_partial_last_line_waits_for_the_next_event(gateway, env, transcript):
    second = encode_lines(assistant("msg_2", tools=("toolu_2",)))
    append(transcript, assistant("msg_1", tools=("toolu_1",)), user_line(), raw=second[:40])
    before_partial = transcript.stat().st_size - 40
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert usage_sent(gateway.requests[0]) == [entry("msg_1", ["toolu_1"])]
    assert json.loads(state_file(env, transcript).read_text())["offset"] == before_partial

    run_hook(with_transcript(POST_TOOL_USE, transcript), env)  # still torn: nothing to send
    assert usage_sent(gateway.requests[1]) is None

    append(transcript, raw=second[40:] + encode_lines(user_line()))
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert usage_sent(gateway.requests[2]) == [entry("msg_2", ["toolu_2"])]
    assert json.loads(state_file(env, transcript).read_text())["offset"] == (
        transcript.stat().st_size
    )


def test_lines_of_one_message_are_merged(gateway, env, transcript):
    final = usage_of(
        240,
        cache_creation={"ephemeral_5m_input_tokens": 50, "ephemeral_1h_input_tokens": 0},
    )
    append(
        transcript,
        assistant("msg_1", text="Let me look", usage=usage_of(1)),
        assistant("msg_1", tools=("toolu_a",), usage=final),
        assistant("msg_1", tools=("toolu_b", "toolu_a"), usage=usage_of(5)),
        other_line("last-prompt"),
        assistant("msg_2", tools=("toolu_c",)),
        assistant("msg_1", tools=("toolu_d",), usage=usage_of(240)),  # later, not larger
        user_line(),
    )
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert usage_sent(gateway.requests[0]) == [
        entry("msg_1", ["toolu_a", "toolu_b", "toolu_d"], usage=final),
        entry("msg_2", ["toolu_c"]),
    ]


def test_the_last_message_waits_until_a_line_follows_it_or_the_turn_ends(gateway, env, transcript):
    append(transcript, assistant("msg_1", text="Running", output=240))
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert usage_sent(gateway.requests[0]) is None  # its tool_use line may still be on the way
    append(transcript, assistant("msg_1", tools=("toolu_1",), output=240))
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert usage_sent(gateway.requests[1]) is None
    append(transcript, user_line())
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert usage_sent(gateway.requests[2]) == [entry("msg_1", ["toolu_1"], usage_of(240))]

    append(transcript, assistant("msg_2", text="All done."))
    run_hook(with_transcript(STOP, transcript), env)  # the turn is over: nothing else comes
    assert usage_sent(gateway.requests[3]) == [entry("msg_2", [])]
    assert [e["messageId"] for e in all_usage(gateway)] == ["msg_1", "msg_2"]


@pytest.mark.parametrize("failure", ["unreachable", "HTTP 503"])
def test_usage_of_a_spooled_event_reaches_the_gateway_exactly_once(
    gateway, env, closed_url, transcript, failure
):
    failing = down(env, closed_url) if failure == "unreachable" else env
    if failure == "HTTP 503":
        gateway.respond = lambda _r: (503, b'{"detail": "restarting"}')
    append(transcript, assistant("msg_1", tools=("toolu_1",)), user_line())
    assert run_hook(with_transcript(POST_TOOL_USE, transcript), failing).answer == {}
    append(transcript, assistant("msg_2", tools=("toolu_2",)), user_line())
    run_hook(with_transcript(POST_TOOL_USE, transcript), failing)
    spooled = [json.loads(f.read_text())["payload"] for f in spool_files(env)]
    assert [p["trailguard"]["usage"] for p in spooled] == [
        [entry("msg_1", ["toolu_1"])],
        [entry("msg_2", ["toolu_2"])],
    ]
    # The usage is safe in the spool, so the read position moved past it.
    assert json.loads(state_file(env, transcript).read_text())["offset"] == (
        transcript.stat().st_size
    )

    tried = len(gateway.requests)
    gateway.respond = lambda _r: (200, b"{}")
    run_hook(with_transcript(STOP, transcript), env)
    run_hook(with_transcript(STOP, transcript), env)
    replayed = gateway.requests[tried:]
    assert [r["body"]["trailguard"].get("spooled", False) for r in replayed] == [
        True,
        True,
        False,
        False,
    ]
    delivered = [e["messageId"] for r in replayed for e in usage_sent(r) or []]
    assert delivered == ["msg_1", "msg_2"]
    assert spool_files(env) == []


def test_usage_of_an_event_that_was_not_kept_is_sent_again(
    gateway, env, closed_url, transcript, monkeypatch
):
    append(transcript, assistant("msg_1", tools=("toolu_1",)), user_line())

    def unwritable(*_args: Any) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool, "spool_event", unwritable)
    assert run_hook(with_transcript(POST_TOOL_USE, transcript), down(env, closed_url)).answer == {}
    assert not state_file(env, transcript).exists()  # the read position did not move

    gateway.respond = lambda _r: (400, b'{"detail": "bad event"}')
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)  # rejected: kept aside, not sent
    assert usage_sent(gateway.requests[0]) == [entry("msg_1", ["toolu_1"])]
    assert not state_file(env, transcript).exists()

    gateway.respond = lambda _r: (200, b"{}")
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert usage_sent(gateway.requests[1]) == [entry("msg_1", ["toolu_1"])]
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert usage_sent(gateway.requests[2]) is None


def test_409_counts_as_delivered(gateway, env, transcript):
    append(transcript, assistant("msg_1"), user_line())
    gateway.respond = lambda _r: (409, b'{"detail": "event already recorded"}')
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    gateway.respond = lambda _r: (200, b"{}")
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert [usage_sent(r) for r in gateway.requests] == [[entry("msg_1", [])], None]


def test_a_shrunk_or_replaced_transcript_is_read_from_the_start(gateway, env, transcript):
    append(transcript, assistant("msg_1"), user_line("x" * 500))
    prefix = transcript.stat().st_size
    append(transcript, assistant("msg_2"), user_line())
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    read_up_to = transcript.stat().st_size

    # Cut back to a prefix (same head), then written on: shorter than the read position.
    with transcript.open("r+b") as handle:
        handle.truncate(prefix)
    append(transcript, assistant("msg_3"))
    assert transcript.stat().st_size < read_up_to
    run_hook(with_transcript(STOP, transcript), env)

    # Rewritten with another head, shorter still.
    transcript.write_bytes(encode_lines(other_line("queue-operation"), assistant("msg_6")))
    run_hook(with_transcript(STOP, transcript), env)
    read_up_to = json.loads(state_file(env, transcript).read_text())["offset"]

    # Replaced by a longer file with another head: read from 0, already-sent ids skipped.
    replacement = transcript.with_suffix(".new")
    replacement.write_bytes(
        encode_lines(
            assistant("msg_5"),  # below the old read position
            user_line("y" * 2000),
            assistant("msg_1"),
            assistant("msg_4"),
            user_line(),
        )
    )
    os.replace(replacement, transcript)
    assert len(encode_lines(assistant("msg_5"))) < read_up_to < transcript.stat().st_size
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert [[e["messageId"] for e in usage_sent(r) or []] for r in gateway.requests] == [
        ["msg_1", "msg_2"],
        ["msg_3"],
        ["msg_6"],
        ["msg_5", "msg_4"],
    ]


@pytest.mark.parametrize("kind", ["missing", "directory", "fifo", "not a string", "empty"])
def test_a_missing_or_unusable_transcript_is_ignored(gateway, env, tmp_path, kind):
    path: Any
    if kind == "missing":
        path = str(tmp_path / "nope.jsonl")
    elif kind == "directory":
        path = str(tmp_path)
    elif kind == "fifo":
        path = str(tmp_path / "fifo.jsonl")
        os.mkfifo(path)  # opening it for reading must not wait for a writer
    elif kind == "not a string":
        path = 42
    else:
        path = ""
    gateway.respond = lambda _r: (200, json.dumps(PRE_TOOL_DENY).encode())
    started = time.monotonic()
    result = run_hook({**POST_TOOL_USE, "transcript_path": path}, env)
    assert time.monotonic() - started < 2
    assert result.answer == PRE_TOOL_DENY
    assert result.stderr == ""
    assert usage_sent(gateway.requests[0]) is None


@pytest.mark.parametrize("kind", ["below a file", "no permission"])
def test_an_unreadable_transcript_is_skipped_with_a_warning(gateway, env, transcript, kind):
    append(transcript, assistant("msg_1"), user_line())
    path = transcript / "x"  # ENOTDIR
    if kind == "no permission":
        if os.geteuid() == 0:
            pytest.skip("root reads files whatever their mode")
        transcript.chmod(0)
        path = transcript
    result = run_hook(with_transcript(POST_TOOL_USE, path), env)
    assert result.answer == {}
    assert "transcript usage skipped" in result.stderr
    assert usage_sent(gateway.requests[0]) is None


def test_a_corrupt_state_file_starts_over(gateway, env, transcript):
    append(transcript, assistant("msg_1"), user_line())
    state = state_file(env, transcript)
    state.parent.mkdir(parents=True)
    state.write_bytes(b'{"offset": 12, "se')
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert usage_sent(gateway.requests[0]) == [entry("msg_1", [])]
    assert json.loads(state.read_text())["sent"] == ["msg_1"]


def test_transcript_failures_never_stop_the_event(gateway, env, transcript, monkeypatch):
    append(transcript, assistant("msg_1"), user_line())
    gateway.respond = lambda _r: (200, json.dumps(PRE_TOOL_DENY).encode())

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("surprise")

    monkeypatch.setattr(usage_reader, "read_transcript_usage", broken)
    result = run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert result.answer == PRE_TOOL_DENY
    assert "transcript usage skipped (RuntimeError: surprise)" in result.stderr
    assert usage_sent(gateway.requests[0]) is None
    monkeypatch.undo()

    monkeypatch.setattr(usage_reader, "_write_state", broken)
    result = run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert result.answer == PRE_TOOL_DENY
    assert "cannot save the transcript read position" in result.stderr
    assert usage_sent(gateway.requests[1]) == [entry("msg_1", [])]
    monkeypatch.undo()
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)  # sent again: never lost
    assert usage_sent(gateway.requests[2]) == [entry("msg_1", [])]


def test_a_hook_reading_the_same_transcript_makes_the_others_skip(gateway, env, transcript):
    append(transcript, assistant("msg_1"), user_line())
    lock_path = state_file(env, transcript).with_suffix(".json.lock")
    lock_path.parent.mkdir(parents=True)
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert run_hook(with_transcript(POST_TOOL_USE, transcript), env).answer == {}
    finally:
        os.close(lock)
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert [usage_sent(r) for r in gateway.requests] == [None, [entry("msg_1", [])]]


def test_usage_per_event_and_bytes_per_read_are_capped(gateway, env, transcript, monkeypatch):
    monkeypatch.setattr(usage_reader, "USAGE_MAX_ENTRIES", 2)
    for index in range(5):
        append(transcript, assistant(f"msg_{index}"), user_line())
    for _ in range(4):
        run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert [[e["messageId"] for e in usage_sent(r) or []] for r in gateway.requests] == [
        ["msg_0", "msg_1"],
        ["msg_2", "msg_3"],
        ["msg_4"],
        [],
    ]

    gateway.requests.clear()
    monkeypatch.setattr(usage_reader, "USAGE_MAX_ENTRIES", 200)
    monkeypatch.setattr(usage_reader, "TRANSCRIPT_MAX_READ", 2048)
    append(transcript, user_line("z" * 5000))  # one line longer than a whole read: skipped
    for index in range(5, 12):
        append(transcript, assistant(f"msg_{index}"), user_line())
    for _ in range(12):
        run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    sent = [e["messageId"] for e in all_usage(gateway)]
    assert sent == [f"msg_{i}" for i in range(5, 12)]
    assert max(len(usage_sent(r) or []) for r in gateway.requests) < 7  # spread over events

    # A message whose lines fill a whole read is sent even though no line follows it there.
    gateway.requests.clear()
    append(
        transcript,
        *(assistant("msg_12", tools=(f"toolu_{i}",)) for i in range(3)),
        user_line("w" * 5000),
    )
    for _ in range(4):
        run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert all_usage(gateway) == [entry("msg_12", ["toolu_0", "toolu_1", "toolu_2"])]


def test_the_sent_ids_kept_are_bounded(gateway, env, transcript, monkeypatch):
    monkeypatch.setattr(usage_reader, "USAGE_SENT_MEMORY", 3)
    for index in range(5):
        append(transcript, assistant(f"msg_{index}"), user_line())
    run_hook(with_transcript(POST_TOOL_USE, transcript), env)
    assert json.loads(state_file(env, transcript).read_text())["sent"] == [
        "msg_2",
        "msg_3",
        "msg_4",
    ]


def test_reading_a_transcript_loads_no_heavy_module(gateway, env, transcript):
    """hashlib loads OpenSSL (several ms per tool call); the client hashes with the built-in
    module instead."""
    append(transcript, assistant("msg_1"), user_line())
    probe = (
        "import io, json, os, sys\n"
        "from trailguard.capture import hook_client\n"
        f"payload = {json.dumps(with_transcript(POST_TOOL_USE, transcript))!r}\n"
        "out = io.StringIO()\n"
        "hook_client.main(io.BytesIO(payload.encode()), out, dict(os.environ), io.StringIO())\n"
        "print(json.dumps(sorted(m for m in ('hashlib', '_hashlib', 'ssl', 'typing') "
        "if m in sys.modules)))\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(process.stdout) == []
    assert usage_sent(gateway.requests[0]) == [entry("msg_1", [])]


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
        return importtime_modules(timed.stderr)

    # Interpreter start-up (site, sitecustomize, .pth hooks) is not the client's doing.
    imported = imported_by("import trailguard.capture.hook_client") - imported_by("pass")
    assert "trailguard.capture.hook_client" in imported
    outside = {m for m in imported if m.split(".")[0] not in sys.stdlib_module_names}
    assert outside - CLIENT_MODULES <= {"trailguard.ids", "trailguard.hook_protocol"}, outside
    heavy = {"http.client", "urllib.request", "email.parser", "ssl", "typing", "dataclasses"}
    assert not imported & heavy


CLIENT_PARTS = [
    "answers",
    "cli",
    "config",
    "context",
    "fastjson",
    "files",
    "gateway",
    "invocation",
    "poison",
    "settings",
    "spool",
    "support",
    "transcript",
    "transport",
]
CLIENT_MODULES = {
    "trailguard",
    "trailguard.capture",
    "trailguard.capture.hook_client",
    *(f"trailguard.capture.hook_client.{name}" for name in CLIENT_PARTS),
}
ON_DEMAND = {
    "trailguard.capture.hook_client.transcript",
    "trailguard.capture.hook_client.context",
    "trailguard.capture.hook_client.settings",
}
SLOW_STDLIB = {"json", "socket", "re", "enum", "typing", "uuid", "threading", "subprocess"}


def modules_after(code: str, env: dict[str, str]) -> set[str]:
    """``sys.modules`` of a fresh interpreter that ran ``code``, less those a bare one has."""

    def loaded(source: str) -> set[str]:
        process = subprocess.run(
            [sys.executable, "-c", source + "\nimport sys\nprint(' '.join(sys.modules))\n"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return set(process.stdout.split())

    return loaded(code) - loaded("pass")


def client_run(payload: dict[str, Any]) -> str:
    """Python source that runs the client once on ``payload``."""
    return (
        "import io, os\n"
        "from trailguard.capture import hook_client\n"
        f"payload = {json.dumps(payload)!r}.encode()\n"
        "hook_client.main(io.BytesIO(payload), io.StringIO(), dict(os.environ), io.StringIO())\n"
    )


def test_a_pre_tool_use_loads_only_the_stdlib_and_never_the_transcript_or_context(
    gateway, env, transcript
):
    gateway.respond = lambda _r: (200, json.dumps(PRE_TOOL_DENY).encode())
    append(transcript, assistant("msg_1"), user_line())
    loaded = modules_after(client_run(with_transcript(PRE_TOOL_USE, transcript)), env)
    assert len(gateway.requests) == 1  # it ran, and the gateway answered
    outside = {m for m in loaded if m.split(".")[0] not in sys.stdlib_module_names}
    assert outside <= CLIENT_MODULES | {"trailguard.ids", "trailguard.hook_protocol"}, outside
    assert not loaded & ON_DEMAND
    assert not loaded & SLOW_STDLIB, loaded & SLOW_STDLIB
    spool_code = {f"trailguard.capture.hook_client.{name}" for name in ("spool", "poison", "files")}
    assert not loaded & spool_code  # the spool is empty: nothing to replay or report


def test_the_installed_command_answers_a_pre_tool_use_without_importing_os(gateway, env):
    """``install`` writes ``python -I -S .../trailguard/__main__.py hook``: with no ``site``,
    ``os`` (and its ``_collections_abc``, 1.4 ms) is not loaded unless the client loads it."""
    command = shlex.split(default_hook_command())
    assert command[1:3] == ["-I", "-S"]
    process = answer_pre_tool_use_in_a_process(
        [command[0], "-X", "importtime", *command[1:]], gateway, env
    )
    assert gateway.requests[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"  # the env is read
    imported = importtime_modules(process.stderr.decode())
    assert "trailguard.capture.hook_client.answers" in imported  # importtime did list the client
    assert not imported & {"os", "_collections_abc", "posixpath"}, imported & {"os", "posixpath"}


@pytest.mark.parametrize(
    "parts",
    [
        ("/home/ana", ".config", "trailguard", "hook.json"),
        ("/home/ana/", "spool"),
        ("relative", "a", "b"),
        ("", "a"),
        ("/x", "/absolute", "y"),
        ("/x", "", "y"),
        ("/x", "y", ""),
        ("/",),
    ],
)
def test_the_clients_path_join_is_os_path_join(parts):
    assert client_support.join(*parts) == os.path.join(*parts)


def test_the_clients_environment_is_os_environ_undecodable_bytes_included(tmp_path):
    probe = (
        "import json, os, sys\n"
        "from trailguard.capture.hook_client.support import environment\n"
        "print(json.dumps([environment() == dict(os.environ), environment()['TG_PROBE']]))\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "TG_PROBE": "caf\u00e9", "TG_BYTES": os.fsdecode(b"\xff\xfe")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(process.stdout) == [True, "caf\u00e9"]


def test_the_transcript_and_context_code_loads_for_the_events_that_use_it(
    gateway, env, transcript, tmp_path
):
    append(transcript, assistant("msg_1"), user_line())
    after_tool = modules_after(client_run(with_transcript(POST_TOOL_USE, transcript)), env)
    assert "trailguard.capture.hook_client.transcript" in after_tool
    assert not after_tool & (ON_DEMAND - {"trailguard.capture.hook_client.transcript"})
    at_start = modules_after(client_run(session_start(tmp_path)), env)
    assert ON_DEMAND - {"trailguard.capture.hook_client.transcript"} <= at_start
    assert usage_sent(gateway.requests[0]) == [entry("msg_1", [])]
    assert "context" in gateway.requests[1]["body"]["trailguard"]


def test_capture_package_init_stays_import_free():
    init = Path(hook_client.__file__).parent.with_name("__init__.py")
    tree = ast.parse(init.read_text())
    assert all(
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in tree.body
    )


def answer_pre_tool_use_in_a_process(
    argv: list[str], gateway: Gateway, env: dict[str, str]
) -> subprocess.CompletedProcess[bytes]:
    """Run the client as ``argv`` on a PreToolUse the gateway denies; check it printed the deny."""
    gateway.respond = lambda _r: (200, json.dumps(PRE_TOOL_DENY).encode())
    process = subprocess.run(
        argv, input=json.dumps(PRE_TOOL_USE).encode(), capture_output=True, env=env
    )
    assert process.returncode == 0, process.stderr
    assert json.loads(process.stdout) == PRE_TOOL_DENY
    assert len(gateway.requests) == 1
    return process


def importtime_modules(stderr: str) -> set[str]:
    """The modules ``python -X importtime`` listed."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_runs_as_a_script_end_to_end(gateway, env):
    answer_pre_tool_use_in_a_process(
        [sys.executable, "-m", "trailguard.capture.hook_client"], gateway, env
    )
