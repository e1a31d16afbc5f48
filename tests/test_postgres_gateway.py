"""Gateway replicas on one shared PostgreSQL ledger: hooks on either replica, a kill asked on
one holding on the other, and the CLI (`init`, `serve`, `token`, `verify`, `query` with
--store) against the real server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from pg import Database
from trailguard.gateway.app import create_app
from trailguard.ledger.writer import LedgerConfig

pytest.importorskip("psycopg")

from trailguard.ledger.shared import SharedLedger
from trailguard.store.postgres.state import PostgresGatewayState

SESSION = "sess_shared_1"
TRAILGUARD = [sys.executable, "-m", "trailguard"]


def stored(db: Database) -> list[dict]:
    return [orjson.loads(bytes(b)) for (b,) in db.execute("SELECT body FROM events ORDER BY seq")]


@pytest.fixture
def replicas(pg_database: Database, tmp_path: Path) -> Iterator[tuple[TestClient, TestClient, str]]:
    pg_database.install()
    config = LedgerConfig(checkpoint_every_events=50)
    key = tmp_path / "signing.key"
    first = SharedLedger.open(pg_database.gateway_url, config=config, key_file=key)
    second = SharedLedger.open(pg_database.gateway_url, config=config, key_file=key)
    state = PostgresGatewayState(pg_database.gateway_url)
    token, _ = state.create_token("dev_jordan", "agent")
    state.close()
    with (
        TestClient(create_app(first, idle_timeout=3600)) as a,
        TestClient(create_app(second, idle_timeout=3600)) as b,
    ):
        yield a, b, token


def hook(client: TestClient, token: str, payload: dict) -> httpx.Response:
    return client.post(
        "/hooks/claude-code", json=payload, headers={"Authorization": f"Bearer {token}"}
    )


def pre_tool_use(tool_use_id: str) -> dict:
    return {
        "session_id": SESSION,
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "echo hello", "description": "say hello"},
        "tool_use_id": tool_use_id,
    }


def test_a_session_moves_between_replicas_and_a_kill_on_one_holds_on_the_other(
    replicas, pg_database
):
    a, b, token = replicas
    start = {"session_id": SESSION, "hook_event_name": "SessionStart", "source": "startup"}
    assert hook(a, token, start).status_code == 200
    answer = hook(b, token, pre_tool_use("toolu_on_b")).json()  # the next hook hits replica b
    assert answer.get("continue") is not False
    events = stored(pg_database)
    call = next(e for e in events if e.get("toolUseId") == "toolu_on_b")
    assert call["policyResult"] == "allowed"
    assert call["developerId"] == "dev_jordan"
    assert not [e for e in events if e.get("alertType") == "session_not_started"]
    # An admin kills the session through replica a's state; replica b refuses it.
    state = PostgresGatewayState(pg_database.gateway_url)
    assert state.request_kill(SESSION, "secops", "exfiltration suspected")
    state.close()
    # Each replica's reaper polls the shared kills every 0.5 s; a loaded machine is slow, so
    # each replica gets a generous deadline of its own (a kill that never arrives still fails).
    for replica in (b, a):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answer = hook(replica, token, pre_tool_use(f"toolu_{time.monotonic_ns()}")).json()
            if answer.get("continue") is False:
                break
            time.sleep(0.05)
        assert answer["continue"] is False
        assert "killed by secops" in answer["stopReason"]
    deadline = time.monotonic() + 30  # the reapers poll every 0.5 s; a loaded machine is slow
    while time.monotonic() < deadline:
        ends = [e for e in stored(pg_database) if e["eventType"] == "session_end"]
        if ends:
            break
        time.sleep(0.05)
    assert len(ends) == 1  # recorded once, by the sequencer's replica
    assert ends[0]["reason"] == "killed"


def test_two_replicas_take_hooks_concurrently_and_every_one_is_in_one_ledger(replicas, pg_database):
    a, b, token = replicas
    assert hook(a, token, {"session_id": SESSION, "hook_event_name": "SessionStart"}).is_success
    answers: list[int] = []
    lock = threading.Lock()

    def client(replica: TestClient, worker: int) -> None:
        for i in range(15):
            response = hook(replica, token, pre_tool_use(f"toolu_{worker}_{i}"))
            with lock:
                answers.append(response.status_code)

    threads = [threading.Thread(target=client, args=(r, n)) for n, r in enumerate([a, b] * 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 90
    events = stored(pg_database)
    assert [e["seq"] for e in events] == list(range(len(events)))
    calls = {e["toolUseId"] for e in events if e["eventType"] == "tool_invocation"}
    assert calls == {f"toolu_{w}_{i}" for w in range(6) for i in range(15)}


@pytest.mark.slow
def test_serve_init_token_query_and_verify_take_a_postgres_store(pg_database, tmp_path):
    owner, gateway = pg_database.owner_url, pg_database.gateway_url
    env = dict(os.environ, TRAILGUARD_SIGNING_KEY="")
    created = subprocess.run(
        [*TRAILGUARD, "init", "--store", owner, "--gateway-role", pg_database.gateway_role],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "created the trailguard schema" in created.stdout
    token = subprocess.run(
        [*TRAILGUARD, "token", "create", "--developer", "dev_jordan", "--store", gateway],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert token.returncode == 0, token.stderr
    secret = token.stdout.strip().splitlines()[-1]
    port = 20000 + os.getpid() % 20000
    key = tmp_path / "signing.key"
    server = subprocess.Popen(
        [*TRAILGUARD, "serve", "--store", gateway, "--signing-key", str(key), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        response = httpx.post(
            f"http://127.0.0.1:{port}/hooks/claude-code",
            json=pre_tool_use("toolu_cli"),
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert response.status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    assert "postgresql://" in output
    assert ":" + "@" not in output  # no password printed (there is none here, but the form)
    queried = subprocess.run(
        [*TRAILGUARD, "query", "--store", gateway, "--type", "tool_invocation", "--format",
         "jsonl"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert queried.returncode == 0, queried.stderr
    assert [orjson.loads(line)["toolUseId"] for line in queried.stdout.splitlines()] == [
        "toolu_cli"
    ]
    for command in (["info"], ["sessions", "list"], ["cost", "--format", "json"]):
        shown = subprocess.run(
            [*TRAILGUARD, *command, "--store", gateway], capture_output=True, text=True, env=env
        )
        assert shown.returncode == 0, f"{command}: {shown.stderr}"
        assert "error" not in shown.stderr
    info = subprocess.run(
        [*TRAILGUARD, "info", "--store", gateway], capture_output=True, text=True, env=env
    ).stdout
    assert "shared store" in info
    assert re.search(r"sequencer runs +no", info)
    verified = subprocess.run(
        [*TRAILGUARD, "verify", "--store", gateway, "--key", str(key.with_suffix(".pub"))],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "INTACT" in verified.stdout


def test_a_budget_exhausted_through_one_replica_holds_on_the_other(pg_database, tmp_path):
    import asyncio
    from decimal import Decimal

    from trailguard.cost.accounting import UsageObservation
    from trailguard.cost.budgets import BudgetConfig
    from trailguard.cost.usage import Usage

    pg_database.install()
    config = LedgerConfig(checkpoint_every_events=50)
    key = tmp_path / "signing.key"
    ledgers = [
        SharedLedger.open(pg_database.gateway_url, config=config, key_file=key) for _ in "ab"
    ]
    state = PostgresGatewayState(pg_database.gateway_url)
    token, _ = state.create_token("dev_jordan", "agent")
    state.close()
    budgets = BudgetConfig(session_usd=Decimal("0.10"))
    with (
        TestClient(create_app(ledgers[0], idle_timeout=3600, budgets=budgets)) as a,
        TestClient(create_app(ledgers[1], idle_timeout=3600, budgets=budgets)) as b,
    ):
        start = {"session_id": SESSION, "hook_event_name": "SessionStart", "source": "startup"}
        assert hook(a, token, start).is_success
        assert hook(b, token, pre_tool_use("toolu_before")).json().get("continue") is not False
        spend = UsageObservation(
            source="proxy",
            session_id=SESSION,
            model="claude-opus-5-5",
            usage=Usage(input_tokens=50_000, output_tokens=8_000),
            request_id="req_expensive",
        )
        asyncio.run(a.app.state.gateway.costs.record([spend]))  # the spend reaches replica a
        deadline = time.monotonic() + 30  # the reapers poll every 0.5 s; a loaded machine is slow
        while time.monotonic() < deadline:
            answer = hook(b, token, pre_tool_use(f"toolu_{time.monotonic_ns()}")).json()
            if answer.get("continue") is False:
                break
            time.sleep(0.05)
        assert answer["continue"] is False
        assert "budget" in answer["stopReason"]
    events = stored(pg_database)
    denied = [e for e in events if e.get("policyRule") == "budget-exhausted"]
    assert denied
    assert all(e["policyResult"] == "denied" for e in denied)
