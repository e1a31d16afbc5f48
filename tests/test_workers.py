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
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from conftest import sample_events, verify_dir
from trailguard.errors import RateLimitedError, StorageUnavailableError
from trailguard.events import ToolInvocation
from trailguard.gateway.fact_ids import FactIds
from trailguard.gateway.sessions import SessionRegistry
from trailguard.gateway.shared_changes import POLICY, SESSIONS, ChangeWatch, SharedChanges
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
from trailguard.policy.store import PolicyStore
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


# -- changes announced to every worker (gateway/shared_changes.py) --------------------------------


def _watching(data_dir: Path, changes: SharedChanges) -> tuple[GatewayState, ChangeWatch]:
    state = GatewayState(data_dir)
    state.shared = True
    sessions = SessionRegistry(state)
    return state, ChangeWatch(changes, sessions, PolicyStore(None), None)


def test_a_kill_made_by_one_forked_worker_is_seen_by_another_at_its_next_check(tmp_path):
    Ledger.open(tmp_path).close()
    changes = SharedChanges(2, tmp_path)
    state, watch = _watching(tmp_path, changes.as_worker(0))
    try:
        watch.refresh()  # the state as it is: nothing killed
        assert not watch.stale()
        pid = os.fork()
        if pid == 0:  # worker 1 takes a kill request (durable in the state), then says so
            other = GatewayState(tmp_path)
            other.request_kill("sess_forked", "admin", "runaway")
            other.close()
            changes.as_worker(1).bump(SESSIONS)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert watch.sessions.kill_request("sess_forked") is None  # not read yet
        assert watch.stale()
        watch.refresh()
        assert not watch.stale()
        kill = watch.sessions.kill_request("sess_forked")
        assert kill is not None
        assert kill.requested_by == "admin"
    finally:
        state.close()


def test_workers_take_exactly_the_policy_set_the_lead_published(tmp_path):
    Ledger.open(tmp_path / "data").close()
    pack = tmp_path / "policies"
    pack.mkdir()
    (pack / "a.cedar").write_text('@id("all") permit (principal, action, resource);')
    (pack / "teams.json").write_text('{"blue": ["dev_w"]}')
    lead_policies = PolicyStore(pack)
    changes = SharedChanges(2, tmp_path)
    state, watch = _watching(tmp_path / "data", changes.as_worker(1))
    try:
        (pack / "b.cedar").write_text(
            '@id("no-bash") forbid (principal, action == Action::"tool:Bash", resource);'
        )
        change = lead_policies.reload_if_changed()
        assert change is not None
        assert change.policy_set is not None
        # The directory changes again before the worker looks: it still takes the lead's set.
        (pack / "c.cedar").write_text('@id("other") permit (principal, action, resource);')
        changes.as_worker(0).publish_policy(change.policy_set)
        watch.refresh()
        taken = watch.policies.current
        assert taken.version == change.policy_set.version
        assert {rule.name for rule in taken.rules.values()} == {"all", "no-bash"}
        assert taken.teams == {"blue": ["dev_w"]}
    finally:
        state.close()


def test_a_policy_snapshot_that_does_not_match_its_version_refuses_requests(tmp_path):
    Ledger.open(tmp_path / "data").close()
    changes = SharedChanges(2, tmp_path)
    state, watch = _watching(tmp_path / "data", changes.as_worker(1))
    try:
        pack = tmp_path / "policies"
        pack.mkdir()
        (pack / "a.cedar").write_text(
            '@id("no-bash") forbid (principal, action == Action::"tool:Bash", resource);'
        )
        changes.as_worker(0).publish_policy(PolicyStore(pack).current)
        document = json.loads(changes.snapshot.read_text())
        document["files"][0][1] = '@id("smuggled") permit (principal, action, resource);'
        changes.snapshot.write_text(json.dumps(document))
        changes.bump(POLICY)
        before = watch.policies.version
        with pytest.raises(StorageUnavailableError, match="cannot read what another worker"):
            watch.refresh()
        assert watch.stale()  # tried again at the next request, never answered from it
        assert watch.policies.version == before
    finally:
        state.close()


def test_a_kill_recorded_by_two_workers_at_once_is_one_session_end(served):
    from trailguard.gateway.fact_ids import FactIds
    from trailguard.gateway.reaper import Reaper
    from trailguard.store.state import KillRequest

    ledger, remote, data_dir = served
    facts = FactIds(ledger.backend.redaction_key())
    kill = KillRequest("sess_twice", "2026-12-03T10:00:00.000Z", "admin", "runaway")
    # The console's worker and the lead's reaper, each recording before it can see the other's
    # end in the state (an unshared state: neither sees the other's, the race at its widest).
    states = [GatewayState(data_dir), GatewayState(data_dir)]
    try:
        reapers = [
            Reaper(log, SessionRegistry(state), state, facts=facts)
            for log, state in zip((ledger, remote), states, strict=True)
        ]
        for reaper in reapers:
            reaper.record_kill(kill)
    finally:
        for state in states:
            state.close()
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        ends = [row for row in store.rows() if row.event_type == "session_end"]
    finally:
        store.close()
    assert len(ends) == 1
    assert orjson.loads(ends[0].body)["reason"] == "killed"


def test_a_budget_end_noticed_by_two_workers_at_once_is_one_session_end(served):
    """Two workers each count a request that exhausts the session's budget before either
    sees the other's end: the ledger keeps one budget_exhausted end (its fact id)."""
    from trailguard.capture.hook_request import parse_usage_entries
    from trailguard.cost.accounting import CostAccountant
    from trailguard.cost.budgets import BudgetConfig, BudgetTracker
    from trailguard.cost.loops import LoopDetector
    from trailguard.cost.prices import load_price_table
    from trailguard.gateway.costs import CostRecorder, from_transcript

    ledger, remote, data_dir = served
    facts = FactIds(ledger.backend.redaction_key())
    states = [GatewayState(data_dir), GatewayState(data_dir)]
    try:
        for n, (log, state) in enumerate(zip((ledger, remote), states, strict=True)):
            sessions = SessionRegistry(state)
            sessions.start("sess_budget", "dev_w", None, "2026-12-03T10:00:00.000Z")
            costs = CostRecorder(
                log,
                sessions,
                CostAccountant(load_price_table(None)),
                BudgetTracker(BudgetConfig(session_usd=Decimal("0.01"))),
                LoopDetector(),
            )
            costs.facts = facts
            entries = [
                {
                    "messageId": f"msg_budget_{n}",
                    "requestId": f"req_budget_{n}",
                    "model": "claude-opus-5-5",
                    "usage": {"input_tokens": 200_000, "output_tokens": 50_000},
                }
            ]
            events = costs.events_for(from_transcript("sess_budget", parse_usage_entries(entries)))
            assert [e.event_type.value for e in events][-1] == "session_end"
            log.submit_many(events).result(timeout=10)
    finally:
        for state in states:
            state.close()
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        rows = list(store.rows())
    finally:
        store.close()
    assert sum(row.event_type == "cost" for row in rows) == 2  # both requests are counted
    ends = [orjson.loads(row.body) for row in rows if row.event_type == "session_end"]
    assert [end["reason"] for end in ends] == ["budget_exhausted"]


def test_fact_ids_are_uuids_an_agent_cannot_compute_without_the_key():
    first = FactIds(b"fake-redaction-key-one-for-tests!")
    again = FactIds(b"fake-redaction-key-one-for-tests!")
    other = FactIds(b"fake-redaction-key-two-for-tests!")
    kill = first.kill("sess_a", "2026-12-03T10:00:00.000Z")
    assert kill == again.kill("sess_a", "2026-12-03T10:00:00.000Z")
    assert kill != other.kill("sess_a", "2026-12-03T10:00:00.000Z")
    assert kill != first.kill("sess_b", "2026-12-03T10:00:00.000Z")
    assert uuid.UUID(kill).version == 8
    assert str(uuid.UUID(kill)) == kill
    raised = first.budget_end("sess_a", "session", "sess_a", Decimal("2"))
    assert raised != first.budget_end("sess_a", "session", "sess_a", Decimal("1"))


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


def _next_calls(gateway: Gateway, connections: list[Pinned], session: str) -> list[dict]:
    """One PreToolUse of ``session`` through each connection (each a different worker), sent
    at once, with no pause: each answer's decision, rule and reason."""
    outcomes = []
    for pinned in connections:
        use_id = f"toolu_{uuid.uuid4().hex[:16]}"
        status, answer = gateway.hook(pinned, _pre_tool_use(session, "ls", use_id))
        assert status == 200, answer
        output = answer.get("hookSpecificOutput", {})
        outcomes.append(
            {
                "pid": pinned.pid,
                "useId": use_id,
                "decision": output.get("permissionDecision"),
                "reason": output.get("permissionDecisionReason", ""),
                "continue": answer.get("continue", True),
            }
        )
    return outcomes


def _stored(data_dir: Path, event_type: str) -> list[dict]:
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        return [orjson.loads(row.body) for row in store.rows() if row.event_type == event_type]
    finally:
        store.close()


def _one_end_each(
    data_dir: Path, denied: list[tuple[str, list[str]]], reason: str, rule: str
) -> list[dict]:
    """Each session of ``denied`` has exactly one session_end, for ``reason`` (one per fact,
    not one per worker), and each of its denied calls is stored with ``rule``; the ends."""
    ends = _stored(data_dir, "session_end")
    invocations = {e["toolUseId"]: e for e in _stored(data_dir, "tool_invocation")}
    found = []
    for session, use_ids in denied:
        (end,) = [e for e in ends if e["sessionId"] == session]
        assert end["reason"] == reason
        assert all(invocations[u]["policyRule"] == rule for u in use_ids)
        found.append(end)
    return found


def _sign_in(gateway: Gateway, pinned: Pinned, token: str) -> str:
    """Sign in to the console through ``pinned``'s worker; the session cookie."""
    import re
    import urllib.parse

    _, headers, page = gateway.send(pinned, "GET", "/ui/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', page.decode())
    login_cookie = headers.get("set-cookie", "").split(";", 1)[0]
    assert nonce is not None
    assert login_cookie
    form = urllib.parse.urlencode({"csrf": nonce.group(1), "token": token})
    form_headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": login_cookie}
    status, headers, _ = gateway.send(pinned, "POST", "/ui/login", form, form_headers)
    assert status == 303, status
    return next(
        c.split(";", 1)[0]
        for c in headers.get_all("set-cookie") or []
        if c.startswith("tg_console=")
    )


def _token(gateway: Gateway, developer: str, role: str) -> str:
    made = subprocess.run(
        [*TRAILGUARD, "token", "create", "--developer", developer, "--role", role,
         "--data-dir", str(gateway.data_dir)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return made.stdout.strip().splitlines()[-1]


def _console_kill(gateway: Gateway, pinned: Pinned, cookie: str, session: str) -> None:
    import re
    import urllib.parse

    _, _, page = gateway.send(
        pinned, "GET", f"/ui/kill?session={session}", headers={"Cookie": cookie}
    )
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.decode())
    assert csrf is not None, page[:500]
    form = urllib.parse.urlencode(
        {"session": session, "reason": "runaway agent", "confirm": "yes", "csrf": csrf.group(1)}
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    status, _, _ = gateway.send(pinned, "POST", "/ui/kill", form, headers)
    assert status == 303, status


@pytest.mark.slow
def test_a_console_kill_denies_the_very_next_tool_call_on_every_worker(tmp_path):
    gateway = _start(tmp_path)
    try:
        connections = gateway.worker_connections(2)
        cookie = _sign_in(gateway, connections[0], _token(gateway, "dev_admin", "admin"))
        killed = []
        for round_ in range(6):  # the kill taken by each worker in turn
            taker, other = connections[round_ % 2], connections[1 - round_ % 2]
            session = _start_session(gateway, other)
            assert all(o["decision"] != "deny" for o in _next_calls(gateway, connections, session))
            _console_kill(gateway, taker, cookie, session)
            # At once, no pause: the worker that took the kill and the other one.
            outcomes = _next_calls(gateway, [other, taker, other, taker], session)
            assert [o["decision"] for o in outcomes] == ["deny"] * 4, outcomes
            assert all("was killed by dev_admin" in o["reason"] for o in outcomes), outcomes
            assert not any(o["continue"] for o in outcomes)
            # The agent, stopped, ends its session through the worker that did not take it.
            status, _ = gateway.hook(
                other, {"session_id": session, "hook_event_name": "SessionEnd", "reason": "other"}
            )
            assert status == 200
            killed.append((session, [o["useId"] for o in outcomes]))
    finally:
        _stop(gateway)
    ends = _one_end_each(gateway.data_dir, killed, "killed", "session-killed")
    assert all(e["extra"]["requestedBy"].startswith("dev_admin (console, ") for e in ends)


@pytest.mark.slow
def test_a_cli_kill_holds_on_every_worker_once_its_end_is_recorded(tmp_path):
    """What `trailguard sessions kill` does (a request in the state file, recorded by the lead
    worker): as soon as its session_end can be read, no worker allows the session."""
    gateway = _start(tmp_path)
    try:
        connections = gateway.worker_connections(2)
        for round_ in range(4):
            session = _start_session(gateway, connections[round_ % 2])
            state = GatewayState(gateway.data_dir)
            try:
                assert state.request_kill(session, "admin", "runaway agent")
            finally:
                state.close()
            deadline = time.monotonic() + 30  # waits for the lead's reaper; nothing timed
            while time.monotonic() < deadline:
                if any(e["sessionId"] == session for e in _stored(gateway.data_dir, "session_end")):
                    break
                time.sleep(0.02)
            outcomes = _next_calls(gateway, [*connections, *connections], session)
            assert [o["decision"] for o in outcomes] == ["deny"] * 4, outcomes
            assert all("was killed by admin" in o["reason"] for o in outcomes)
    finally:
        _stop(gateway)


@pytest.mark.slow
def test_a_token_revoked_by_the_cli_is_refused_at_once_by_every_worker(tmp_path):
    """Each worker remembers identities between requests (store/gateway_state.py); a
    revocation committed by `trailguard token revoke`, another process, ends the token on the
    very next request of every worker, with no pause after the CLI returns."""
    gateway = _start(tmp_path)
    try:
        connections = gateway.worker_connections(2)
        session = _start_session(gateway, connections[0])
        for n in range(6):  # every worker has the identity in memory by now
            status, _ = gateway.hook(
                connections[n % 2], _pre_tool_use(session, "ls", f"toolu_before_{n}")
            )
            assert status == 200
        listed = subprocess.run(
            [*TRAILGUARD, "token", "list", "--data-dir", str(gateway.data_dir)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        (token_id,) = [line.split()[0] for line in listed.stdout.splitlines() if "dev_w" in line]
        subprocess.run(
            [*TRAILGUARD, "token", "revoke", token_id, "--data-dir", str(gateway.data_dir)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        statuses = [
            gateway.hook(pinned, _pre_tool_use(session, "ls", f"toolu_after_{pinned.pid}"))[0]
            for pinned in connections
        ]
        assert statuses == [401, 401]
    finally:
        _stop(gateway)
    assert not {"toolu_after_" + str(p.pid) for p in connections} & _stored_tool_use_ids(
        gateway.data_dir
    )


@pytest.mark.slow
def test_an_exhausted_budget_denies_the_very_next_tool_call_on_every_worker(tmp_path):
    gateway = _start(tmp_path, "--budget-session-usd", "0.01")
    try:
        connections = gateway.worker_connections(2)
        spent = []
        for round_ in range(6):
            taker, other = connections[round_ % 2], connections[1 - round_ % 2]
            session = _start_session(gateway, taker)

            def usage(n: int, session: str = session) -> dict:
                return {
                    "session_id": session,
                    "hook_event_name": "Stop",
                    "trailguard": {
                        "usage": [
                            {
                                "messageId": f"msg_{session}_{n}",
                                "requestId": f"req_{session}_{n}",
                                "model": "claude-opus-5-5",
                                "usage": {"input_tokens": 200_000, "output_tokens": 50_000},
                            }
                        ]
                    },
                }

            assert gateway.hook(taker, usage(1))[0] == 200  # beyond the budget, on one worker
            outcomes = _next_calls(gateway, [other, taker, other, taker], session)
            assert [o["decision"] for o in outcomes] == ["deny"] * 4, outcomes
            assert all("budget" in o["reason"] for o in outcomes), outcomes
            # More spend reported to the other worker ends nothing a second time.
            assert gateway.hook(other, usage(2))[0] == 200
            spent.append((session, [o["useId"] for o in outcomes]))
    finally:
        _stop(gateway)
    _one_end_each(gateway.data_dir, spent, "budget_exhausted", "budget-exhausted")


@pytest.mark.slow
def test_a_policy_change_holds_on_every_worker_once_recorded_and_is_recorded_once(tmp_path):
    import shutil
    from importlib import resources

    pack = tmp_path / "policies"
    with resources.as_file(resources.files("trailguard.policy").joinpath("default")) as shipped:
        shutil.copytree(shipped, pack)
    gateway = _start(tmp_path, "--policy", str(pack))
    marker = "echo tg-forbidden-marker"
    try:
        connections = gateway.worker_connections(2)
        session = _start_session(gateway, connections[0])

        def calls() -> list[tuple[str | None, str, str]]:
            answers = []
            for pinned in [*connections, *connections]:
                use_id = f"toolu_{uuid.uuid4().hex[:16]}"
                status, answer = gateway.hook(pinned, _pre_tool_use(session, marker, use_id))
                assert status == 200
                output = answer.get("hookSpecificOutput", {})
                answers.append(
                    (
                        output.get("permissionDecision"),
                        output.get("permissionDecisionReason", ""),
                        use_id,
                    )
                )
            return answers

        assert all(decision != "deny" for decision, _, _ in calls())
        (pack / "90-marker.cedar").write_text(
            '@id("no-tg-marker")\n@reason("the test marker is forbidden")\n'
            "forbid (principal, action, resource)\n"
            'when { context.command like "*tg-forbidden-marker*" };\n'
        )
        deadline = time.monotonic() + 30  # the lead polls the directory; nothing timed
        while time.monotonic() < deadline:
            changes = _stored(gateway.data_dir, "policy_change")
            if len(changes) > 1:
                break
            time.sleep(0.02)
        after = calls()  # at once, on both workers
        assert [decision for decision, _, _ in after] == ["deny"] * 4, after
        assert all("no-tg-marker" in reason for _, reason, _ in after)
    finally:
        _stop(gateway)
    changes = _stored(gateway.data_dir, "policy_change")
    assert len(changes) == 2, changes  # in force at start, then the reload: once, not per worker
    start, reload = changes
    assert start["description"].startswith("in force at gateway start")
    assert reload["previousVersion"] == start["policyVersion"]
    invocations = {e["toolUseId"]: e for e in _stored(gateway.data_dir, "tool_invocation")}
    assert {invocations[u]["policyVersion"] for _, _, u in after} == {reload["policyVersion"]}


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
        # The proxy records its figure after its answer: polled, not at once.
        deadline = time.monotonic() + 10
        outcomes = _next_calls(gateway, [first, second], attacked)
        while any(o["decision"] != "deny" for o in outcomes) and time.monotonic() < deadline:
            time.sleep(0.05)
            outcomes = _next_calls(gateway, [first, second], attacked)
        assert [o["decision"] for o in outcomes] == ["deny"] * 2, "a worker went on allowing"

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
    gateway = _start(tmp_path)
    try:
        auditor = _token(gateway, "dev_audit", "auditor")
        first, second = gateway.worker_connections(2)
        session_cookie = _sign_in(gateway, first, auditor)
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
