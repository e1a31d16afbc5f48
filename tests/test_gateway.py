"""The gateway API in process: hooks recorded before they are answered, identity from tokens,
session lifecycle, kills, retrieval, and hostile input."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from conftest import verify_dir
from trailguard.gateway.app import create_app
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.gateway_state import GatewayState
from trailguard.store.sqlite import SQLiteStore

SESSION = "ae1e1885-0000-4000-8000-000000000001"


def stored(data_dir: Path) -> list[dict]:
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        return [orjson.loads(row.body) for row in store.rows()]
    finally:
        store.close()


class Gateway:
    def __init__(self, client: TestClient, data_dir: Path, token: str, auditor: str) -> None:
        self.client = client
        self.data_dir = data_dir
        self.token = token
        self.auditor = auditor

    def hook(self, payload: dict, *, token: str | None = None, event_id: str | None = None):
        headers = {"Authorization": f"Bearer {token or self.token}"}
        if event_id:
            headers["X-Trailguard-Event-Id"] = event_id
        return self.client.post("/hooks/claude-code", json=payload, headers=headers)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=50))
    state = GatewayState(data_dir)
    token, _ = state.create_token("dev_jordan", "agent")
    auditor, _ = state.create_token("aud_sam", "auditor")
    state.close()
    app = create_app(ledger, idle_timeout=3600)
    with TestClient(app) as client:
        yield Gateway(client, data_dir, token, auditor)


def pre_tool_use(tool_use_id: str = "toolu_01", command: str = "echo hello") -> dict:
    return {
        "session_id": SESSION,
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command, "description": "say hello"},
        "tool_use_id": tool_use_id,
        "permission_mode": "acceptEdits",
    }


def test_pre_tool_use_is_committed_before_the_answer_with_its_rule_and_version(gateway):
    gateway.hook({"session_id": SESSION, "hook_event_name": "SessionStart", "source": "startup"})
    response = gateway.hook(pre_tool_use())
    assert response.status_code == 200
    assert response.json() == {}  # no decision: Claude Code's own permissions still apply
    invocation = [e for e in stored(gateway.data_dir) if e["eventType"] == "tool_invocation"]
    assert len(invocation) == 1
    assert invocation[0]["policyResult"] == "allowed"
    assert invocation[0]["policyRule"] == "allow-by-default"
    assert invocation[0]["policyVersion"].startswith("sha256:")
    assert invocation[0]["developerId"] == "dev_jordan"
    assert invocation[0]["input"]["command"] == "echo hello"


def test_developer_comes_from_the_token_and_claims_are_only_recorded(gateway):
    payload = {
        "session_id": SESSION,
        "hook_event_name": "SessionStart",
        "source": "startup",
        "trailguard": {
            "context": {
                "osUser": "root",
                "gitEmail": "someone.else@example.invalid",
                "hostname": "laptop-1",
                "gitRemote": "https://user:fake-token-123@github.com/acme/backend.git",
                "gitBranch": "main",
                "permissions": {"allow": ["Bash(ls:*)"], "deny": ["Read(.env)"]},
            }
        },
    }
    assert gateway.hook(payload).status_code == 200
    start = next(e for e in stored(gateway.data_dir) if e["eventType"] == "session_start")
    assert start["developerId"] == "dev_jordan"
    assert start["claimedIdentity"] == {
        "osUser": "root",
        "gitEmail": "someone.else@example.invalid",
        "hostname": "laptop-1",
    }
    assert start["projectId"] == "github.com/acme/backend"
    assert start["gitRemote"] == "https://github.com/acme/backend.git"
    assert "fake-token-123" not in json.dumps(stored(gateway.data_dir))
    assert start["permissions"]["deny"] == ["Read(.env)"]


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "no Authorization header"),
        ("Bearer tg_not-a-real-token", "unknown or revoked"),
        ("Basic dXNlcjpwYXNz", "not 'Bearer <token>'"),
    ],
)
def test_missing_or_bad_token_is_401_and_recorded_as_a_security_alert(gateway, header, why):
    headers = {"Authorization": header} if header else {}
    response = gateway.client.post("/hooks/claude-code", json=pre_tool_use(), headers=headers)
    assert response.status_code == 401
    assert why in response.json()["detail"]
    events = stored(gateway.data_dir)
    assert not any(e["eventType"] == "tool_invocation" for e in events)
    alert = next(e for e in events if e["eventType"] == "alert")
    assert alert["alertType"] == "authentication_failed"
    assert why in alert["message"]
    # An unauthenticated request attaches nothing to the session it names: anyone could name it.
    assert alert["sessionId"] is None
    assert SESSION not in json.dumps(alert)


def test_the_hook_route_past_fastapis_router_answers_as_the_router_would(gateway):
    """POST /hooks/claude-code is answered by HookDispatch, ahead of FastAPI's routing: the
    JSON it sends is the same bytes, and what it does not take still goes to the router."""
    answered = gateway.hook(pre_tool_use())
    assert answered.status_code == 200
    assert answered.headers["content-type"] == "application/json"
    assert (
        answered.content
        == json.dumps(answered.json(), ensure_ascii=False, separators=(",", ":")).encode()
    )
    assert gateway.client.get("/hooks/claude-code").status_code == 405
    assert gateway.client.put("/hooks/claude-code", json=pre_tool_use()).status_code == 405
    assert gateway.client.post("/hooks/claude-code/x", json=pre_tool_use()).status_code == 404
    paths = gateway.client.get("/openapi.json").json()["paths"]
    assert "post" in paths["/hooks/claude-code"], "still documented"


def test_a_crash_on_the_hook_route_is_answered_500_and_recorded(tmp_path, monkeypatch):
    """A bug inside the hook endpoint (not a trailguard error) still reaches Starlette's
    ServerErrorMiddleware and the app's handler: 500, an internal_error alert, never a 4xx."""
    from trailguard.capture import hook_request

    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir)
    state = GatewayState(data_dir)
    token, _ = state.create_token("dev_jordan", "agent")
    state.close()

    def broken(payload: object) -> object:
        raise RuntimeError("a bug in the parser")

    monkeypatch.setattr("trailguard.gateway.routes.hooks.parse_hook_request", broken)
    assert hook_request.parse_hook_request is not broken
    app = create_app(ledger, idle_timeout=3600)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post(
            "/hooks/claude-code", json=pre_tool_use(), headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 500
    assert "this is a bug in trailguard" in answer.json()["detail"]
    alerts = [e for e in stored(data_dir) if e["eventType"] == "alert"]
    assert [a["alertType"] for a in alerts] == ["internal_error"]
    assert "RuntimeError" in alerts[0]["message"]


def test_session_lifecycle_completed_with_the_raw_reason_kept(gateway):
    gateway.hook({"session_id": SESSION, "hook_event_name": "SessionStart", "source": "startup"})
    gateway.hook(pre_tool_use())
    gateway.hook(
        pre_tool_use() | {"hook_event_name": "PostToolUse", "tool_response": {"stdout": "hello"}}
    )
    gateway.hook({"session_id": SESSION, "hook_event_name": "SessionEnd", "reason": "other"})
    end = next(e for e in stored(gateway.data_dir) if e["eventType"] == "session_end")
    assert end["reason"] == "completed"
    assert end["rawReason"] == "other"
    state = GatewayState(gateway.data_dir)
    for _ in range(100):  # the reaper persists session summaries every 0.5 s
        summary = state.session(SESSION)
        if summary is not None and summary.end_reason:
            break
        time.sleep(0.05)
    state.close()
    assert summary is not None
    assert summary.end_reason == "completed"
    assert not summary.never_started


def test_event_for_a_session_never_started_is_accepted_and_flagged(gateway):
    response = gateway.hook(pre_tool_use())
    assert response.status_code == 200
    events = stored(gateway.data_dir)
    alert = next(e for e in events if e["eventType"] == "alert")
    assert alert["alertType"] == "session_not_started"
    assert any(e["eventType"] == "tool_invocation" for e in events)


def test_killed_session_is_ended_and_every_later_hook_is_denied(gateway):
    gateway.hook({"session_id": SESSION, "hook_event_name": "SessionStart", "source": "startup"})
    state = GatewayState(gateway.data_dir)
    state.request_kill(SESSION, "secops", "credential exfiltration suspected")
    state.close()
    for _ in range(100):  # the reaper polls every 0.5 s
        if any(e["eventType"] == "session_end" for e in stored(gateway.data_dir)):
            break
        time.sleep(0.05)
    end = next(e for e in stored(gateway.data_dir) if e["eventType"] == "session_end")
    assert end["reason"] == "killed"
    assert end["rawReason"] == "credential exfiltration suspected"

    answer = gateway.hook(pre_tool_use("toolu_after_kill")).json()
    assert answer["continue"] is False
    assert "killed by secops" in answer["stopReason"]
    assert answer["hookSpecificOutput"]["permissionDecision"] == "deny"
    denied = next(e for e in stored(gateway.data_dir) if e.get("toolUseId") == "toolu_after_kill")
    assert denied["policyResult"] == "denied"
    assert denied["policyRule"] == "session-killed"
    prompt = gateway.hook(
        {"session_id": SESSION, "hook_event_name": "UserPromptSubmit", "prompt": "go on"}
    ).json()
    assert prompt["continue"] is False


def test_the_agents_end_of_a_killed_session_is_no_second_end_before_the_kill_is_recorded():
    """A worker that knows of a kill whose session_end is not recorded yet (the ledger was
    down when the kill was taken; the lead's reaper records it later) keeps the agent's own
    SessionEnd as an agent event: the session ends once, as killed."""
    from trailguard.capture.hook_request import parse_hook_request
    from trailguard.events import AgentEvent
    from trailguard.gateway import pipeline
    from trailguard.store.state import Identity, SessionSummary

    request = parse_hook_request(
        {"session_id": SESSION, "hook_event_name": "SessionEnd", "reason": "other"}
    )
    identity = Identity("dev_w", "agent", "tok_w")
    live = SessionSummary(SESSION, "dev_w", None, "2026-12-03T10:00:00.000Z",
                          "2026-12-03T10:01:00.000Z", None, None, None, False)  # fmt: skip
    context = pipeline.normalise(request, identity, session=live, received_at=live.last_event_at)
    stop = pipeline.Stop(pipeline.KILLED_RULE, "killed by admin")
    kept = pipeline.build(context, stop=stop).event
    assert isinstance(kept, AgentEvent)
    assert kept.payload == {"reason": "other", "endedEarlierAs": "killed"}
    budget = pipeline.build(context, stop=pipeline.Stop("budget-exhausted", "out of budget"))
    assert budget.event.event_type.value == "session_end"  # no gateway end is coming for it


def test_replayed_event_id_is_409_and_recorded_once(gateway):
    event_id = str(uuid.uuid4())
    first = gateway.hook(pre_tool_use(), event_id=event_id)
    again = gateway.hook(pre_tool_use(), event_id=event_id)
    assert first.status_code == 200
    assert again.status_code == 409
    assert "already recorded" in again.json()["detail"]
    assert sum(e["eventId"] == event_id for e in stored(gateway.data_dir)) == 1


def test_large_tool_output_is_accepted_truncated_with_length_and_hash(gateway):
    big = "x" * (10 * 1024 * 1024)
    response = gateway.hook(
        pre_tool_use() | {"hook_event_name": "PostToolUse", "tool_response": {"stdout": big}}
    )
    assert response.status_code == 200
    result = next(e for e in stored(gateway.data_dir) if e["eventType"] == "tool_result")
    assert result["outputTruncated"] is True
    assert result["outputLength"] > 10 * 1024 * 1024
    assert len(result["output"]) <= 64 * 1024
    assert result["outputSha256"].startswith("sha256:")


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 400, "not JSON"),
        (b"\xff\xfe{}", 400, "not valid UTF-8"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"hook_event_name": "PreToolUse"}', 400, "session_id: field required"),
        (b'{"session_id": 5, "hook_event_name": "Stop"}', 400, "session_id: must be a string"),
        (b'{"session_id": "s", "hook_event_name": "PreToolUse", "tool_name": 7}', 400, "tool_name"),
    ],
)
def test_bad_payloads_get_a_4xx_naming_the_problem_and_nothing_is_stored(
    gateway, body, status, says
):
    before = len(stored(gateway.data_dir))
    response = gateway.client.post(
        "/hooks/claude-code",
        content=body,
        headers={"Authorization": f"Bearer {gateway.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == status
    assert says in response.json()["detail"]
    assert len(stored(gateway.data_dir)) == before


def test_unknown_hook_event_and_unknown_fields_are_kept(gateway):
    payload = {
        "session_id": SESSION,
        "hook_event_name": "SomethingNewInVersion3",
        "novel_field": {"a": 1},
    }
    assert gateway.hook(payload).status_code == 200
    kept = next(e for e in stored(gateway.data_dir) if e["eventType"] == "agent_event")
    assert kept["name"] == "SomethingNewInVersion3"
    assert kept["payload"] == {"novel_field": {"a": 1}}


def test_events_api_is_for_auditors_and_every_query_is_recorded(gateway):
    gateway.hook({"session_id": SESSION, "hook_event_name": "SessionStart", "source": "startup"})
    gateway.hook(pre_tool_use())
    refused = gateway.client.get("/v1/events", headers={"Authorization": f"Bearer {gateway.token}"})
    assert refused.status_code == 403
    answer = gateway.client.get(
        "/v1/events",
        params={"session": SESSION, "type": "tool_invocation"},
        headers={"Authorization": f"Bearer {gateway.auditor}"},
    )
    assert answer.status_code == 200
    assert answer.json()["count"] == 1
    assert answer.json()["events"][0]["tool"] == "Bash"
    accesses = [e for e in stored(gateway.data_dir) if e["eventType"] == "audit_access"]
    assert [(a["outcome"], a["developerId"]) for a in accesses] == [
        ("refused", "dev_jordan"),
        ("allowed", "aud_sam"),
    ]
    access = accesses[1]
    assert access["query"]["session"] == SESSION
    assert access["resultCount"] == 1
    bad = gateway.client.get(
        "/v1/events",
        params={"since": "yesterday"},
        headers={"Authorization": f"Bearer {gateway.auditor}"},
    )
    assert bad.status_code == 400
    assert "since" in bad.json()["detail"]


def test_ledger_stays_intact_through_a_gateway_session(gateway):
    gateway.hook({"session_id": SESSION, "hook_event_name": "SessionStart", "source": "startup"})
    for n in range(30):
        gateway.hook(pre_tool_use(f"toolu_{n}"))
    gateway.client.__exit__(None, None, None)  # shut down: gateway_stop + final checkpoint
    report = verify_dir(gateway.data_dir)
    assert report.intact, report.failures
    assert report.last_event_type == "gateway_stop"


def test_forbidden_command_is_denied_with_rule_and_its_operations_are_recorded(gateway):
    response = gateway.hook(pre_tool_use("toolu_push", "git push --force origin main"))
    answer = response.json()["hookSpecificOutput"]
    assert answer["permissionDecision"] == "deny"
    assert "no-force-push-to-main" in answer["permissionDecisionReason"]
    events = stored(gateway.data_dir)
    invocation = next(
        e
        for e in events
        if e.get("toolUseId") == "toolu_push" and e["eventType"] == "tool_invocation"
    )
    assert invocation["policyResult"] == "denied"
    assert invocation["policyRule"] == "no-force-push-to-main"
    assert [op["action"] for op in invocation["operations"]] == ["git:Push"]
    linked = [e for e in events if e["eventType"] == "infra_operation"]
    assert [e["operation"]["action"] for e in linked] == ["git:Push"]
    assert linked[0]["toolUseId"] == "toolu_push"
    assert linked[0]["seq"] > invocation["seq"]


def test_unresolved_command_asks_the_developer(gateway):
    answer = gateway.hook(pre_tool_use("toolu_a", "a=rm; $a -rf /")).json()
    assert answer["hookSpecificOutput"]["permissionDecision"] == "ask"


def test_secrets_in_hook_payloads_never_reach_the_ledger(gateway):
    fake_key = "AKIAFAKEFAKEFAKE0000"
    bearer = "Authorization: Bearer sk-ant-api03-FAKEFAKEFAKEFAKEFAKEFAKE"
    command = (
        f"AWS_ACCESS_KEY_ID={fake_key} aws s3 ls && curl -H '{bearer}' https://example.invalid"
    )
    gateway.hook(pre_tool_use("toolu_s", command))
    gateway.hook(
        pre_tool_use("toolu_s")
        | {"hook_event_name": "PostToolUse", "tool_response": {"stdout": f"key={fake_key}"}}
    )
    gateway.hook(
        {"session_id": SESSION, "hook_event_name": "UserPromptSubmit", "prompt": f"use {fake_key}"}
    )
    raw = b"".join(p.read_bytes() for p in gateway.data_dir.glob("ledger.sqlite3*"))
    assert fake_key.encode() not in raw
    assert b"sk-ant-api03-FAKE" not in raw
    assert b"[REDACTED:" in raw


def test_policy_change_is_recorded_at_start_and_on_reload(tmp_path):
    pack = tmp_path / "policies"
    pack.mkdir()
    (pack / "a.cedar").write_text('@id("all") permit (principal, action, resource);')
    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir)
    state = GatewayState(data_dir)
    token, _ = state.create_token("dev", "agent")
    state.close()
    with TestClient(create_app(ledger, policy_dir=pack)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        (pack / "b.cedar").write_text(
            '@id("no-echo") forbid (principal, action == Action::"tool:Bash", resource);'
        )
        for _ in range(100):
            if sum(e["eventType"] == "policy_change" for e in stored(data_dir)) == 2:
                break
            time.sleep(0.05)
        answer = client.post("/hooks/claude-code", json=pre_tool_use(), headers=headers).json()
        assert answer["hookSpecificOutput"]["permissionDecision"] == "deny"
        assert "no-echo" in answer["hookSpecificOutput"]["permissionDecisionReason"]
    changes = [e for e in stored(data_dir) if e["eventType"] == "policy_change"]
    assert len(changes) == 2
    assert changes[1]["previousVersion"] == changes[0]["policyVersion"]


def test_a_megabyte_input_is_decided_on_whole_and_stored_capped_with_its_hash(gateway):
    import hashlib

    import rfc8785

    command = "echo start && " + "a" * (2 << 20) + " && git push --force origin main"
    payload = pre_tool_use("toolu_big", command) | {"novel_field": "n" * (1 << 20)}
    answer = gateway.hook(payload).json()
    # Too large to examine: asked (or denied), never silently allowed.
    assert answer["hookSpecificOutput"]["permissionDecision"] in ("ask", "deny")
    invocation = next(e for e in stored(gateway.data_dir) if e.get("toolUseId") == "toolu_big")
    assert invocation["inputTruncated"] is True
    full = rfc8785.dumps(payload["tool_input"])
    assert invocation["inputLength"] == len(full)
    assert invocation["inputSha256"] == "sha256:" + hashlib.sha256(full).hexdigest()
    assert len(invocation["input"].encode()) <= 64 * 1024
    assert "oversized" in invocation["operations"][0]["flags"]
    kept = invocation["extra"]["trailguardTruncated"]
    assert kept["length"] > 1 << 20
    assert len(kept["preview"].encode()) <= 64 * 1024
    row = next(
        len(json.dumps(e)) for e in stored(gateway.data_dir) if e.get("toolUseId") == "toolu_big"
    )
    assert row < 200 * 1024  # the ledger does not grow by megabytes per event


def test_a_secret_at_the_truncation_point_is_not_stored_in_half(gateway):
    filler = "b" * (64 * 1024 - 40)
    command = f"echo {filler} AKIAFAKEFAKEFAKE0000 more text after it " + "c" * 70_000
    gateway.hook(pre_tool_use("toolu_cut", command))
    raw = b"".join(p.read_bytes() for p in gateway.data_dir.glob("ledger.sqlite3*"))
    assert b"AKIAFAKEF" not in raw


def test_docs_load_every_asset_from_the_gateway_itself(gateway):
    """/docs must work on a gateway with no internet: no CDN, every asset served locally."""
    import re

    page = gateway.client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", page.text)
    referenced = [a or b for a, b in urls]
    assert referenced, page.text
    assert all(url.startswith("/") for url in referenced), referenced
    for url in referenced:
        assert gateway.client.get(url).status_code == 200, url
    assert gateway.client.get("/redoc").status_code == 404  # ReDoc would load from a CDN


def test_the_anthropic_proxy_is_in_the_openapi_spec(gateway):
    spec = gateway.client.get("/openapi.json").json()
    operation = spec["paths"]["/anthropic/{path}"]["post"]
    assert "X-Trailguard-Token" in operation["description"]
    assert "402" in operation["responses"]


def test_a_large_read_runs_in_a_read_process_and_returns_the_same_record(gateway):
    """limit above LARGE_READ_EVENTS goes to a spawned read process (gateway/readers.py), so it
    cannot hold the GIL the hooks need; what it returns is what a small read returns."""
    import os

    from trailguard.gateway import readers

    for index in range(5):
        gateway.hook(pre_tool_use(f"toolu_{index:02}"))
    headers = {"Authorization": f"Bearer {gateway.auditor}"}
    small = gateway.client.get("/v1/events?limit=1000&type=tool_invocation", headers=headers)
    large = gateway.client.get(
        f"/v1/events?limit={readers.LARGE_READ_EVENTS + 1}&type=tool_invocation", headers=headers
    )
    assert small.status_code == large.status_code == 200
    assert large.content == small.content
    assert large.json()["count"] == 5
    pool = gateway.client.app.state.gateway.readers._pool
    assert pool is not None
    workers = list(pool._processes)
    assert workers
    assert os.getpid() not in workers
