"""`serve --workers N`: the hook pipeline in several processes, one ledger writer process.

Real processes throughout: `trailguard serve` as a subprocess, real sockets, real SQLite files
with fsync, real signals (SIGKILL of the writer, SIGSTOP of the supervisor to hold its restart).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from conftest import sample_events, verify_dir
from trailguard.errors import RateLimitedError
from trailguard.events import ToolInvocation
from trailguard.gateway.shared_limits import SharedRateLimiter
from trailguard.ledger.canonical import canonical_document
from trailguard.ledger.remote import RemoteLedger
from trailguard.ledger.writer import (
    EventRejectedError,
    Ledger,
    LedgerWriteError,
    encode_row,
    prepare_event,
)
from trailguard.ledger.writer_service import WriterService
from trailguard.store.gateway_state import GatewayState
from trailguard.store.sqlite import SQLiteStore

TRAILGUARD = [sys.executable, "-m", "trailguard"]


# -- the prepared form of an event ----------------------------------------------------------------


def test_prepared_events_splice_to_exactly_the_canonical_bytes_at_any_position():
    events = sample_events(40)
    # Agent-controlled input holding the placeholder itself, top level key and value alike.
    events.append(
        ToolInvocation(
            session_id="sess_a8f3b21c",
            tool="Bash",
            tool_use_id="toolu_seq",
            input={"seq": 2**53 - 1, "command": '"seq":9007199254740991'},
            source="hook",
        )
    )
    for seq in (0, 7, 10**6, 2**40):
        for event in events:
            document = event.to_json_dict()
            document["seq"] = seq
            expected = canonical_document(document, event.free_form_fields())
            assert encode_row(event, seq).body == expected, event.event_type


def test_the_json_form_without_pydantics_wrapper_is_the_model_dump():
    for event in sample_events(30):
        assert event.to_json_dict() == event.model_dump(mode="json", by_alias=True)


def test_an_event_with_a_position_is_refused_when_prepared():
    event = sample_events(1)[0].model_copy(update={"seq": 3})
    with pytest.raises(EventRejectedError, match="already has seq 3"):
        prepare_event(event)


# -- the writer service and a worker's RemoteLedger, in one process ------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Ledger, RemoteLedger, Path]]:
    data_dir = tmp_path / "data"
    ledger = Ledger.open(data_dir)
    service = WriterService(ledger, tmp_path / "writer.sock")
    service.start()
    remote = RemoteLedger(data_dir, tmp_path / "writer.sock", leads=True)
    try:
        yield ledger, remote, data_dir
    finally:
        remote.close()
        service.stop()
        ledger.close()


def test_remote_appends_are_durable_and_in_order_when_acknowledged(served):
    ledger, remote, data_dir = served
    events = sample_events(25)
    receipts = remote.submit_many(events).result(timeout=10)
    assert [r.event_id for r in receipts] == [e.event_id for e in events]
    assert [r.seq for r in receipts] == list(range(receipts[0].seq, receipts[0].seq + 25))
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        stored = {row.event_id: row for row in store.rows(receipts[0].seq)}
    finally:
        store.close()
    for receipt, event in zip(receipts, events, strict=True):
        assert stored[event.event_id].leaf_hash == receipt.leaf_hash
        assert orjson.loads(stored[event.event_id].body)["seq"] == receipt.seq
    assert remote.tree_size == ledger.tree_size
    assert remote.origin == ledger.origin
    assert remote.verifier.to_string() == ledger.verifier.to_string()


def test_a_replayed_event_is_acknowledged_as_a_duplicate_through_the_socket(served):
    _, remote, _ = served
    event = sample_events(1)[0]
    first = remote.append(event)
    again = remote.append(event)
    assert not first.duplicate
    assert again.duplicate
    assert again.seq == first.seq


def test_a_worker_cannot_append_what_only_the_writer_writes(served, tmp_path):
    ledger, remote, _ = served
    from trailguard.events import GatewayStop

    with pytest.raises(EventRejectedError, match="written by the ledger itself"):
        remote.submit_many([GatewayStop(reason="forged", source="worker")])
    # Nor by sending the frame by hand: the writer checks the type itself.
    stop = prepare_event(GatewayStop(reason="forged", source="worker"))
    with pytest.raises(EventRejectedError, match="written by the ledger itself"):
        ledger.submit_prepared([stop])


def test_an_unreachable_writer_fails_closed_and_the_worker_reconnects(tmp_path):
    data_dir = tmp_path / "data"
    path = tmp_path / "writer.sock"
    ledger = Ledger.open(data_dir)
    service = WriterService(ledger, path)
    service.start()
    remote = RemoteLedger(data_dir, path, leads=False)
    try:
        remote.append(sample_events(1)[0])
        service.stop()
        deadline = time.monotonic() + 5
        while remote.healthy and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not remote.healthy
        assert remote.write_outage is not None
        with pytest.raises(LedgerWriteError, match="unreachable"):
            remote.submit_many(sample_events(1))
        service = WriterService(ledger, path)  # a writer again: the worker finds it
        service.start()
        deadline = time.monotonic() + 5
        while not remote.healthy and time.monotonic() < deadline:
            time.sleep(0.02)
        assert remote.healthy
        assert not remote.append(sample_events(1)[0]).duplicate
    finally:
        remote.close()
        service.stop()
        ledger.close()


# -- the rate limit shared by forked workers ------------------------------------------------------


def test_the_hook_rate_limit_is_shared_by_forked_processes():
    limiter = SharedRateLimiter(rate=0.001, burst=5)
    pid = os.fork()
    if pid == 0:  # the child takes the whole burst
        taken = 0
        for _ in range(5):
            try:
                limiter.check("tok_shared")
                taken += 1
            except RateLimitedError:
                break
        os._exit(0 if taken == 5 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with pytest.raises(RateLimitedError):
        limiter.check("tok_shared")  # nothing left for this process either
    limiter.check("tok_other")  # another token has its own bucket


def test_workers_views_of_a_session_merge_in_the_shared_state_file(tmp_path):
    from trailguard.store.state import SessionSummary

    Ledger.open(tmp_path).close()
    first, second = GatewayState(tmp_path), GatewayState(tmp_path)
    first.shared = second.shared = True
    try:
        start = "2026-12-01T10:00:00.000Z"
        ended = SessionSummary(
            "sess_m", "dev_w", "proj", start, "2026-12-01T10:05:00.000Z",
            "2026-12-01T10:05:00.000Z", "killed", None, False,
        )  # fmt: skip
        stale = SessionSummary(
            "sess_m", "dev_w", None, None, "2026-12-01T10:04:00.000Z", None, None, None, True
        )
        first.save_session(ended)
        second.save_session(stale)  # an older view from another worker: the end stays
        stored = first.session("sess_m")
    finally:
        first.close()
        second.close()
    assert stored is not None
    assert (stored.ended_at, stored.end_reason) == (ended.ended_at, "killed")
    assert stored.last_event_at == ended.last_event_at
    assert (stored.started_at, stored.project_id, stored.never_started) == (start, "proj", False)


# -- `serve --workers 2` as a subprocess ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Pinned:
    """A keep-alive connection to one worker process (``pid``)."""

    pid: int
    connection: http.client.HTTPConnection


@dataclass
class Gateway:
    process: subprocess.Popen[str]
    port: int
    data_dir: Path
    token: str

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def _pid_of(self, connection: http.client.HTTPConnection) -> int:
        connection.request("GET", "/healthz")
        return int(json.loads(connection.getresponse().read())["pid"])

    def worker_connections(self, count: int) -> list[Pinned]:
        """Keep-alive connections answered by ``count`` different worker processes (the
        others start, and warm up, after the lead: up to a minute on a loaded machine)."""
        found: dict[int, Pinned] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            connection = self.connection()
            pid = self._pid_of(connection)
            if pid in found:
                connection.close()
            else:
                found[pid] = Pinned(pid, connection)
            if len(found) == count:
                return list(found.values())
            time.sleep(0.02)
        raise AssertionError(f"only {len(found)} worker(s) answered /healthz")

    def _reconnect(self, pinned: Pinned) -> None:
        """A new connection to the same worker (uvicorn closes idle keep-alive connections
        after 5 s, which a loaded machine can exceed between two requests of a test)."""
        for _ in range(200):
            connection = self.connection()
            if self._pid_of(connection) == pinned.pid:
                pinned.connection = connection
                return
            connection.close()
        raise AssertionError(f"worker {pinned.pid} no longer answers")

    def send(
        self,
        target: Pinned | http.client.HTTPConnection,
        method: str,
        path: str,
        body: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request on ``target`` (the same worker, if pinned): status, headers, body."""
        pinned = target if isinstance(target, Pinned) else None
        connection = pinned.connection if pinned else target
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # Closed by the worker while idle, before this request: nothing of it was read.
            if pinned is None:
                raise
            self._reconnect(pinned)
            connection = pinned.connection
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
        return response.status, response.headers, response.read()

    def hook(self, target: Pinned | http.client.HTTPConnection, body: dict) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        status, _, answer = self.send(
            target, "POST", "/hooks/claude-code", json.dumps(body), headers
        )
        return status, json.loads(answer or b"{}")

    def pids(self) -> list[int]:
        children = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        return [int(pid) for pid in children]

    def writer_pid(self) -> int:
        return int((self.data_dir / "writer.lock").read_text().strip())


def _start(tmp_path: Path, *extra: str) -> Gateway:
    data_dir = tmp_path / "served"
    subprocess.run([*TRAILGUARD, "init", "--data-dir", str(data_dir)], check=True)
    made = subprocess.run(
        [*TRAILGUARD, "token", "create", "--developer", "dev_w", "--role", "agent",
         "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    token = made.stdout.strip().splitlines()[-1]
    port = _free_port()
    process = subprocess.Popen(
        [*TRAILGUARD, "serve", "--data-dir", str(data_dir), "--port", str(port),
         "--workers", "2", *extra],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    gateway = Gateway(process, port, data_dir, token)
    for _ in range(300):
        try:
            connection = gateway.connection()
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                connection.close()
                return gateway
        except OSError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"serve exited: {process.stderr.read() if process.stderr else ''}")
        time.sleep(0.1)
    process.kill()
    raise AssertionError("serve --workers 2 did not answer /healthz")


def _stop(gateway: Gateway) -> None:
    if gateway.process.poll() is None:
        gateway.process.send_signal(signal.SIGTERM)
        gateway.process.wait(timeout=60)


def _pre_tool_use(session: str, command: str, use_id: str) -> dict:
    return {
        "session_id": session,
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command},
        "tool_use_id": use_id,
        "cwd": "/home/dev/project",
    }


def _start_session(gateway: Gateway, connection: Pinned | http.client.HTTPConnection) -> str:
    session = f"sess_{uuid.uuid4().hex[:12]}"
    status, _ = gateway.hook(
        connection, {"session_id": session, "hook_event_name": "SessionStart", "source": "startup"}
    )
    assert status == 200
    return session


def _stored_tool_use_ids(data_dir: Path) -> set[str]:
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        return {
            str(orjson.loads(row.body).get("toolUseId"))
            for row in store.rows()
            if row.event_type == "tool_invocation"
        }
    finally:
        store.close()


@pytest.mark.slow
def test_a_hook_answered_by_any_worker_is_durable_before_the_answer(tmp_path):
    gateway = _start(tmp_path)
    try:
        connections = gateway.worker_connections(2)
        session = _start_session(gateway, connections[0])
        answered = []
        for n in range(20):
            use_id = f"toolu_durable_{n:03d}"
            status, _ = gateway.hook(
                connections[n % 2], _pre_tool_use(session, f"ls /tmp/{n}", use_id)
            )
            assert status == 200
            answered.append(use_id)
    finally:
        # Power cut right after the last answer: every process of the gateway dies at once
        # (the supervisor first, so it restarts nothing).
        children = gateway.pids()
        gateway.process.kill()
        gateway.process.wait(timeout=10)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert set(answered) <= _stored_tool_use_ids(gateway.data_dir)
    report = verify_dir(gateway.data_dir)
    assert report.intact, report


def _denials(gateway: Gateway, connections: tuple[Pinned, ...], session: str) -> dict[int, str]:
    """PreToolUse through every connection until each has been denied (10 s at most): the
    index of each connection denied, with the reason it was given."""
    denied: dict[int, str] = {}
    deadline = time.monotonic() + 10
    while len(denied) < len(connections) and time.monotonic() < deadline:
        for number, connection in enumerate(connections):
            use_id = f"toolu_{uuid.uuid4().hex[:16]}"
            status, answer = gateway.hook(connection, _pre_tool_use(session, "ls", use_id))
            assert status == 200
            output = answer.get("hookSpecificOutput", {})
            if output.get("permissionDecision") == "deny":
                denied[number] = output.get("permissionDecisionReason", "")
        time.sleep(0.05)
    return denied


@pytest.mark.slow
def test_a_kill_and_an_exhausted_budget_hold_on_every_worker(tmp_path):
    gateway = _start(tmp_path, "--budget-session-usd", "0.01")
    try:
        first, second = gateway.worker_connections(2)
        killed = _start_session(gateway, first)
        state = GatewayState(gateway.data_dir)
        try:
            assert state.request_kill(killed, "admin", "runaway agent")
        finally:
            state.close()
        outcomes = _denials(gateway, (first, second), killed)
        assert set(outcomes) == {0, 1}, "a worker went on allowing a killed session"
        assert all("was killed" in reason for reason in outcomes.values())

        # Spend beyond the session budget, reported through one worker only.
        spent = _start_session(gateway, first)
        usage = {
            "session_id": spent,
            "hook_event_name": "Stop",
            "trailguard": {
                "usage": [
                    {
                        "messageId": "msg_budget_1",
                        "requestId": "req_budget_1",
                        "model": "claude-opus-5-5",
                        "usage": {"input_tokens": 200_000, "output_tokens": 50_000},
                    }
                ]
            },
        }
        status, _ = gateway.hook(first, usage)
        assert status == 200
        denied_by = _denials(gateway, (first, second), spent)
        assert set(denied_by) == {0, 1}, "a worker went on allowing a session out of budget"
        assert all("budget" in reason for reason in denied_by.values()), denied_by
    finally:
        _stop(gateway)


@pytest.mark.slow
def test_one_model_request_reported_to_two_workers_is_counted_once(tmp_path):
    """Claude Code reports a request's usage by telemetry and by the transcript, and the two
    may reach different workers: only the first may count it (else budgets trip early)."""
    gateway = _start(tmp_path)
    try:
        first, second = gateway.worker_connections(2)
        session = _start_session(gateway, first)
        usage = {
            "messageId": "msg_twice_1",
            "requestId": "req_twice_1",
            "model": "claude-sonnet-4-5",
            "usage": {"input_tokens": 1200, "output_tokens": 300},
        }
        for pinned in (first, second):
            stop = {
                "session_id": session,
                "hook_event_name": "Stop",
                "trailguard": {"usage": [usage]},
            }
            assert gateway.hook(pinned, stop)[0] == 200
    finally:
        _stop(gateway)
    store = SQLiteStore.in_data_dir(gateway.data_dir, read_only=True)
    try:
        costs = [orjson.loads(row.body) for row in store.rows() if row.event_type == "cost"]
    finally:
        store.close()
    assert [c["requestId"] for c in costs] == ["req_twice_1"], costs


def _claimed_usage(session: str, number: int) -> dict:
    """A Stop hook claiming 10 input tokens for the proxied request ``number`` (by its ids)."""
    entry = {
        "requestId": f"req_workers_{number}",
        "messageId": f"msg_workers_{number}",
        "model": "claude-sonnet-4-5",
        "usage": {"input_tokens": 10, "output_tokens": 1},
    }
    return {"session_id": session, "hook_event_name": "Stop", "trailguard": {"usage": [entry]}}


def _model_request(gateway: Gateway, pinned: Pinned, session: str) -> int:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "Bash", "input_schema": {"type": "object"}}]}  # fmt: skip
    headers = {
        "Content-Type": "application/json",
        "x-api-key": "sk-ant-api03-FAKE-workers-key",
        "anthropic-version": "2023-06-01",
        "x-claude-code-session-id": session,
        "X-Trailguard-Token": gateway.token,
    }
    status, _, _ = gateway.send(pinned, "POST", "/anthropic/v1/messages", json.dumps(body), headers)
    return status


@pytest.mark.slow
def test_the_proxys_figure_wins_across_workers_whichever_arrives_first(tmp_path):
    """A claim reaches one worker, the proxied request for the same id another. Claim first
    (the attack: $0.000045 claimed, $0.63 true, budget $0.50): the proxy's worker charges the
    difference, alerts, and stops the session at once; the other worker within a catch-up.
    Proxy first: the claim on the other worker adds nothing."""
    from e2e.model_server import ModelServer, ToolCall, Turn, Usage

    turns = [
        Turn(
            tool_calls=[ToolCall("Bash", {"command": "ls"}, id=f"toolu_workers_{n}")],
            usage=Usage(input_tokens=200_000, output_tokens=2_000),
            message_id=f"msg_workers_{n}",
            request_id=f"req_workers_{n}",
        )
        for n in range(2)
    ]
    model = ModelServer(turns).start()
    gateway = _start(tmp_path, "--anthropic-upstream", model.url, "--budget-session-usd", "0.5")
    try:
        first, second = gateway.worker_connections(2)
        attacked = _start_session(gateway, first)
        assert gateway.hook(first, _claimed_usage(attacked, 0))[0] == 200
        assert _model_request(gateway, second, attacked) == 200
        status, answer = gateway.hook(second, _pre_tool_use(attacked, "ls", "toolu_next_hook"))
        assert status == 200
        assert answer["hookSpecificOutput"]["permissionDecision"] == "deny"
        denied_by = _denials(gateway, (first, second), attacked)
        assert set(denied_by) == {0, 1}, "a worker went on allowing a session out of budget"

        honest = _start_session(gateway, first)
        assert _model_request(gateway, second, honest) == 200
        assert gateway.hook(first, _claimed_usage(honest, 1))[0] == 200
    finally:
        _stop(gateway)
        model.stop()
    store = SQLiteStore.in_data_dir(gateway.data_dir, read_only=True)
    try:
        events = [orjson.loads(row.body) for row in store.rows()]
    finally:
        store.close()
    costs = {
        session: [
            (c["source"], c["requestId"], c["costUsd"])
            for c in events
            if c["eventType"] == "cost" and c["sessionId"] == session
        ]
        for session in (attacked, honest)
    }
    assert costs[attacked] == [
        ("transcript", "req_workers_0", 0.000045),
        ("proxy", "req_workers_0", 0.629955),  # the correction: $0.63 in all
    ]
    assert costs[honest] == [("proxy", "req_workers_1", 0.63)]
    alerts = [e for e in events if e.get("alertType") == "usage_claim_mismatch"]
    assert [(a["sessionId"], a["severity"]) for a in alerts] == [(attacked, "high")]
    ends = [e["sessionId"] for e in events if e.get("reason") == "budget_exhausted"]
    assert attacked in ends


@pytest.mark.slow
def test_the_writer_dying_makes_hooks_fail_closed_until_it_is_back(tmp_path):
    gateway = _start(tmp_path)
    try:
        connection = gateway.connection()
        session = _start_session(gateway, connection)
        assert gateway.hook(connection, _pre_tool_use(session, "ls", "toolu_before"))[0] == 200
        # Hold the supervisor so it cannot restart the writer yet, then kill the writer.
        os.kill(gateway.process.pid, signal.SIGSTOP)
        writer = gateway.writer_pid()
        os.kill(writer, signal.SIGKILL)
        refused = []
        for n in range(10):
            try:
                status, _ = gateway.hook(
                    gateway.connection(), _pre_tool_use(session, "ls", f"toolu_down_{n}")
                )
            except OSError:
                status = 0
            refused.append(status)
        assert refused == [503] * 10  # blocked (the hook client denies on 503), not unaudited
        os.kill(gateway.process.pid, signal.SIGCONT)
        recovered = False
        deadline = time.monotonic() + 30
        while not recovered and time.monotonic() < deadline:
            status, _ = gateway.hook(
                gateway.connection(), _pre_tool_use(session, "ls", "toolu_after")
            )
            recovered = status == 200
            time.sleep(0.1)
        assert recovered
        assert gateway.writer_pid() != writer
    finally:
        with_pid = gateway.process.pid
        os.kill(with_pid, signal.SIGCONT)
        _stop(gateway)
    stored = _stored_tool_use_ids(gateway.data_dir)
    assert {"toolu_before", "toolu_after"} <= stored
    assert not any(use_id.startswith("toolu_down_") for use_id in stored)
    report = verify_dir(gateway.data_dir)
    assert report.intact, report


@pytest.mark.slow
def test_a_console_sign_in_on_one_worker_holds_on_the_others(tmp_path):
    import re
    import urllib.parse

    gateway = _start(tmp_path)
    try:
        made = subprocess.run(
            [*TRAILGUARD, "token", "create", "--developer", "dev_audit", "--role", "auditor",
             "--data-dir", str(gateway.data_dir)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        auditor = made.stdout.strip().splitlines()[-1]
        first, second = gateway.worker_connections(2)
        _, headers, page = gateway.send(first, "GET", "/ui/login")
        nonce = re.search(r'name="csrf" value="([^"]+)"', page.decode())
        login_cookie = headers.get("set-cookie", "").split(";", 1)[0]
        assert nonce is not None
        assert login_cookie
        form = urllib.parse.urlencode({"csrf": nonce.group(1), "token": auditor})
        form_headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": login_cookie}
        status, headers, _ = gateway.send(first, "POST", "/ui/login", form, form_headers)
        assert status == 303, status
        session_cookie = next(
            c.split(";", 1)[0]
            for c in headers.get_all("set-cookie") or []
            if c.startswith("tg_console=")
        )
        for pinned in (first, second):  # the page from each worker, with the one cookie
            status, headers, _ = gateway.send(
                pinned, "GET", "/ui/sessions", headers={"Cookie": session_cookie}
            )
            assert status == 200, (pinned.pid, status, headers.get("location"))
    finally:
        _stop(gateway)


@pytest.mark.slow
def test_a_sink_streams_what_every_worker_recorded_once(tmp_path):
    from siem_receivers import WebhookReceiver

    secret = b"fake-webhook-hmac-key-for-worker-tests"
    key = tmp_path / "webhook.key"
    key.write_bytes(secret + b"\n")
    key.chmod(0o600)
    receiver = WebhookReceiver(secret)
    receiver.start()
    sink = f"webhook+http://127.0.0.1:{receiver.port}/in?secret_file={key}&batch_size=20"
    gateway = _start(tmp_path, "--sink", sink)
    try:
        connections = gateway.worker_connections(2)
        session = _start_session(gateway, connections[0])
        for n in range(10):
            status, _ = gateway.hook(
                connections[n % 2], _pre_tool_use(session, "ls", f"toolu_sink_{n}")
            )
            assert status == 200
        wanted = {f"toolu_sink_{n}" for n in range(10)}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            streamed = [e.get("toolUseId") for e in receiver.events]
            if wanted <= set(streamed):
                break
            time.sleep(0.2)
    finally:
        _stop(gateway)
        receiver.stop()
    streamed = [e.get("toolUseId") for e in receiver.events if e["eventType"] == "tool_invocation"]
    assert wanted <= set(streamed)
    seqs = [e["seq"] for e in receiver.events]
    assert len(seqs) == len(set(seqs)), "one sink, one stream: nothing sent twice"
