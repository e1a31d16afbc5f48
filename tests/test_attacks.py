"""Attacks by the parties trailguard audits, each performed against the real app: a developer's
token bending another's session, project or time, a local user flooding the alerts, a revoked
token. Each test does the attack and checks it was refused and recorded (docs/threat-model.md).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from trailguard.gateway.app import create_app
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.gateway_state import GatewayState
from trailguard.store.sqlite import SQLiteStore

VICTIM_SESSION = "ae1e1885-0000-4000-8000-00000000a001"


def stored(data_dir: Path) -> list[dict]:
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        return [orjson.loads(row.body) for row in store.rows()]
    finally:
        store.close()


class Parties:
    def __init__(self, client: TestClient, data_dir: Path, tokens: dict[str, str]) -> None:
        self.client = client
        self.data_dir = data_dir
        self.tokens = tokens

    def hook(self, who: str, payload: dict, headers: dict | None = None):
        return self.client.post(
            "/hooks/claude-code",
            json=payload,
            headers={"Authorization": f"Bearer {self.tokens[who]}", **(headers or {})},
        )


@pytest.fixture
def parties(tmp_path: Path) -> Iterator[Parties]:
    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=50))
    state = GatewayState(data_dir)
    tokens = {
        "alice": state.create_token("dev_alice", "agent")[0],
        "mallory": state.create_token("dev_mallory", "agent")[0],
        "bound": state.create_token("dev_bound", "agent", ["github.com/acme/backend"])[0],
    }
    state.close()
    with TestClient(create_app(ledger, idle_timeout=3600)) as client:
        yield Parties(client, data_dir, tokens)


def start(session: str = VICTIM_SESSION, **extra: object) -> dict:
    return {"session_id": session, "hook_event_name": "SessionStart", "source": "startup", **extra}


def tool_call(session: str, tool_use_id: str, command: str = "ls") -> dict:
    return {
        "session_id": session,
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command},
        "tool_use_id": tool_use_id,
    }


# -- sessions have an owner ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "forged",
    [
        tool_call(VICTIM_SESSION, "toolu_forged"),
        {"session_id": VICTIM_SESSION, "hook_event_name": "SessionEnd", "reason": "other"},
        start(),
        {"session_id": VICTIM_SESSION, "hook_event_name": "UserPromptSubmit", "prompt": "hi"},
    ],
    ids=["append", "end", "restart", "prompt"],
)
def test_another_developers_token_cannot_touch_a_session(parties, forged):
    assert parties.hook("alice", start()).status_code == 200
    before = [e for e in stored(parties.data_dir) if e.get("sessionId") == VICTIM_SESSION]

    refused = parties.hook("mallory", forged)

    assert refused.status_code == 403
    assert "belongs to another developer" in refused.json()["detail"]
    events = stored(parties.data_dir)
    assert [e for e in events if e.get("sessionId") == VICTIM_SESSION] == before
    alert = next(e for e in events if e.get("alertType") == "session_hijack")
    assert alert["developerId"] == "dev_mallory"  # recorded under the refused identity
    assert alert["sessionId"] is None
    assert alert["details"]["targetSessionId"] == VICTIM_SESSION
    # The owner carries on undisturbed.
    assert parties.hook("alice", tool_call(VICTIM_SESSION, "toolu_ok")).status_code == 200


# -- the project comes from the admin's binding, not the client's claim -------------------------


def test_a_claimed_project_outside_the_tokens_binding_is_recorded_not_used(parties):
    claim = {"trailguard": {"context": {"gitRemote": "https://github.com/evil/elsewhere.git"}}}
    assert parties.hook("bound", start("sess_bound_1", **claim)).status_code == 200
    parties.hook("bound", tool_call("sess_bound_1", "toolu_b1"))
    events = [e for e in stored(parties.data_dir) if e.get("sessionId") == "sess_bound_1"]
    started = next(e for e in events if e["eventType"] == "session_start")
    assert started["projectId"] == "github.com/acme/backend"
    assert started["gitRemote"] == "https://github.com/evil/elsewhere.git"  # kept, as claimed
    call = next(e for e in events if e["eventType"] == "tool_invocation")
    assert call["projectId"] == "github.com/acme/backend"
    alert = next(e for e in events if e.get("alertType") == "project_claim_refused")
    assert alert["details"]["claimedProject"] == "github.com/evil/elsewhere"


def test_a_claim_inside_the_binding_is_used(parties):
    claim = {"trailguard": {"context": {"gitRemote": "git@github.com:acme/backend.git"}}}
    parties.hook("bound", start("sess_bound_2", **claim))
    started = next(e for e in stored(parties.data_dir) if e.get("sessionId") == "sess_bound_2")
    assert started["projectId"] == "github.com/acme/backend"
    assert not any(e.get("alertType") == "project_claim_refused" for e in stored(parties.data_dir))


# -- time is the gateway's; the client's time is a claim -----------------------------------------


def test_a_backdated_spooled_event_keeps_the_receipt_time_and_raises_an_alert(parties):
    parties.hook("alice", start("sess_time"))
    forged = tool_call("sess_time", "toolu_old", "rm -rf /srv/data") | {
        "trailguard": {"spooled": True, "observedAt": "2020-01-01T00:00:00.000Z"}
    }
    assert parties.hook("alice", forged).status_code == 200
    events = stored(parties.data_dir)
    call = next(e for e in events if e.get("toolUseId") == "toolu_old")
    assert call["timestamp"] > "2026-"  # the gateway's receipt time
    assert call["observedAt"] == "2020-01-01T00:00:00.000Z"  # the claim, shown as one
    assert call["source"] == "spool"
    assert call["policyRule"] == "gateway-unreachable"  # history, never a decision
    alert = next(e for e in events if e.get("alertType") == "implausible_time_claim")
    assert "before the token existed" in alert["message"]
    assert "before the session started" in alert["message"]


def test_a_live_event_claiming_a_far_time_raises_an_alert(parties):
    parties.hook("alice", start("sess_far"))
    claim = {"trailguard": {"observedAt": "2099-01-01T00:00:00Z"}}
    parties.hook("alice", tool_call("sess_far", "toolu_future") | claim)
    alert = next(
        e for e in stored(parties.data_dir) if e.get("alertType") == "implausible_time_claim"
    )
    assert "in the future" in alert["message"]


def test_a_time_claim_that_is_not_a_time_is_refused_as_a_time_but_the_event_is_kept(parties):
    parties.hook("alice", start("sess_junk"))
    claim = {"trailguard": {"observedAt": "yesterday\x1b[2J"}}
    assert parties.hook("alice", tool_call("sess_junk", "toolu_junk") | claim).status_code == 200
    events = stored(parties.data_dir)
    call = next(e for e in events if e.get("toolUseId") == "toolu_junk")
    assert call["observedAt"] is None
    assert any(e.get("alertType") == "implausible_time_claim" for e in events)


def test_spool_problems_reported_by_the_client_become_alerts(parties):
    report = {
        "trailguard": {
            "spoolProblems": [
                {
                    "eventId": "0193f1c2-0000-7000-8000-000000000001",
                    "hookEventName": "PostToolUse",
                    "sessionId": "sess_x",
                    "tries": 5,
                    "lastError": "gateway answered 500",
                    "movedAt": "2026-12-02T10:00:00.000Z",
                    "sha256": "ab" * 32,
                }
            ]
        }
    }
    parties.hook("alice", start("sess_spool", **report))
    alert = next(
        e for e in stored(parties.data_dir) if e.get("alertType") == "spooled_event_abandoned"
    )
    assert alert["developerId"] == "dev_alice"
    assert alert["details"]["tries"] == 5


# -- floods and forwarded headers ----------------------------------------------------------------


def test_forged_forwarded_addresses_do_not_multiply_alerts(parties):
    rng = random.Random(7)
    for _ in range(200):
        address = ".".join(str(rng.randrange(1, 255)) for _ in range(4))
        answer = parties.client.post(
            "/hooks/claude-code",
            json=tool_call("sess_flood", "toolu_x"),
            headers={"Authorization": "Bearer tg_forged", "X-Forwarded-For": address},
        )
        assert answer.status_code == 401
    alerts = [e for e in stored(parties.data_dir) if e.get("alertType") == "authentication_failed"]
    assert 1 <= len(alerts) <= 30  # one client (the real peer), rate-limited
    assert {a["details"]["client"] for a in alerts} == {"testclient"}


def test_a_revoked_token_is_refused_at_once(parties):
    state = GatewayState(parties.data_dir)
    (record,) = [t for t in state.tokens() if t.developer_id == "dev_alice"]
    assert parties.hook("alice", start("sess_revoke")).status_code == 200
    state.revoke_token(record.token_id)
    state.close()
    assert parties.hook("alice", tool_call("sess_revoke", "toolu_after")).status_code == 401


def test_a_token_revoked_by_the_cli_is_refused_on_the_next_request(parties):
    """The gateway remembers identities between requests (store/gateway_state.py): a
    revocation committed by another process must end that at once, not after any delay."""
    for n in range(5):  # the identity is remembered by now
        assert parties.hook("alice", tool_call("sess_cli_revoke", f"toolu_{n}")).status_code == 200
    state = GatewayState(parties.data_dir)
    (record,) = [t for t in state.tokens() if t.developer_id == "dev_alice"]
    state.close()
    revoked = subprocess.run(
        [str(Path(sys.executable).with_name("trailguard")), "token", "revoke", record.token_id,
         "--data-dir", str(parties.data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    answer = parties.hook("alice", tool_call("sess_cli_revoke", "toolu_after"))
    assert answer.status_code == 401
    assert parties.hook("mallory", start("sess_still_mallory")).status_code == 200


def test_wrong_types_in_the_clients_envelope_are_a_4xx_naming_the_field(parties):
    answer = parties.hook("alice", start(trailguard={"context": {"gitRemote": 5}}))
    assert answer.status_code == 400
    assert "trailguard.context.gitRemote: must be a string" in answer.json()["detail"]
    huge = "s" * 1000
    answer = parties.hook("alice", start(huge))
    assert answer.status_code == 400
    assert "session_id: at most 256 characters" in answer.json()["detail"]
    assert huge not in json.dumps(answer.json())


# -- telemetry goes through the same doors as hooks -----------------------------------------------


def otlp_logs(session: str, event: str, attributes: dict[str, object]) -> dict:
    def value(v: object) -> dict:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": v}
        if isinstance(v, float):
            return {"doubleValue": v}
        return {"stringValue": str(v)}

    attrs = {"event.name": event, "session.id": session, **attributes}
    return {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": "1795678246639000000",
                                "body": {"stringValue": f"claude_code.{event}"},
                                "attributes": [
                                    {"key": k, "value": value(v)} for k, v in attrs.items()
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }


def post_logs(parties: Parties, token: str, body: dict):
    return parties.client.post("/v1/logs", json=body, headers={"Authorization": f"Bearer {token}"})


def test_an_auditor_token_cannot_post_telemetry(parties, tmp_path):
    state = GatewayState(parties.data_dir)
    auditor = state.create_token("aud_sam", "auditor")[0]
    state.close()
    answer = post_logs(parties, auditor, otlp_logs("sess_t", "tool_result", {"tool_name": "Bash"}))
    assert answer.status_code == 403
    alert = next(e for e in stored(parties.data_dir) if e.get("alertType") == "access_refused")
    assert alert["details"]["path"] == "/v1/logs"


def test_forged_spend_for_another_developers_session_is_refused_and_charges_nothing(parties):
    parties.hook("alice", start())
    forged = otlp_logs(
        VICTIM_SESSION,
        "api_request",
        {"model": "claude-opus-5-5", "input_tokens": 3_000_000, "output_tokens": 900_000,
         "cost_usd": 999.0, "request_id": "req_forged"},
    )  # fmt: skip
    assert post_logs(parties, parties.tokens["mallory"], forged).status_code == 200
    events = stored(parties.data_dir)
    assert not any(e["eventType"] == "cost" for e in events)
    alert = next(e for e in events if e.get("alertType") == "session_hijack")
    assert alert["details"]["targetSessionIds"] == [VICTIM_SESSION]
    # The owner's next tool call is not refused by a budget someone else exhausted.
    answer = parties.hook("alice", tool_call(VICTIM_SESSION, "toolu_after_forgery")).json()
    assert "continue" not in answer


def test_implausible_usage_is_an_alert_not_a_charge(parties):
    parties.hook("alice", start("sess_own"))
    claim = otlp_logs(
        "sess_own",
        "api_request",
        {"model": "claude-opus-5-5", "input_tokens": 90_000_000, "output_tokens": 10,
         "request_id": "req_big"},
    )  # fmt: skip
    assert post_logs(parties, parties.tokens["alice"], claim).status_code == 200
    events = stored(parties.data_dir)
    assert not any(e["eventType"] == "cost" for e in events)
    alert = next(e for e in events if e.get("alertType") == "implausible_usage")
    assert alert["details"]["inputTokens"] == 90_000_000


def test_telemetry_tool_parameters_are_redacted_before_they_are_stored(parties):
    parties.hook("alice", start("sess_tele"))
    secrets = {
        "tool_parameters": json.dumps(
            {
                "command": "curl -H 'Authorization: Bearer sk-ant-api03-FAKEFAKEFAKEFAKEFAKE00' "
                "https://api.example.invalid && export AWS_SECRET_ACCESS_KEY="
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY && git clone "
                "https://ghp_FAKEfakeFAKEfakeFAKEfakeFAKEfake0000@github.com/a/b"
            }
        ),
        "tool_name": "Bash",
        "tool_use_id": "toolu_tele",
    }
    body = otlp_logs("sess_tele", "tool_result", secrets)
    assert post_logs(parties, parties.tokens["alice"], body).status_code == 200
    raw = b"".join(p.read_bytes() for p in parties.data_dir.glob("ledger.sqlite3*"))
    for secret in (b"sk-ant-api03-FAKE", b"wJalrXUtnFEMI", b"ghp_FAKEfake"):
        assert secret not in raw
    kept = next(e for e in stored(parties.data_dir) if e.get("name") == "telemetry.tool_result")
    assert kept["developerId"] == "dev_alice"


def test_an_overlong_telemetry_session_id_is_a_400_naming_it(parties):
    body = otlp_logs("s" * 1000, "tool_result", {"tool_name": "Bash"})
    answer = post_logs(parties, parties.tokens["alice"], body)
    assert answer.status_code == 400
    assert "session.id" in answer.json()["detail"]
    assert "s" * 300 not in answer.text


def test_a_refused_read_is_recorded_as_audit_access(parties):
    answer = parties.client.get(
        "/v1/events",
        params={"session": VICTIM_SESSION},
        headers={"Authorization": f"Bearer {parties.tokens['mallory']}"},
    )
    assert answer.status_code == 403
    unauthenticated = parties.client.get("/v1/events", params={"developer": "dev_alice"})
    assert unauthenticated.status_code == 401
    reads = [e for e in stored(parties.data_dir) if e["eventType"] == "audit_access"]
    assert [(r["outcome"], r["developerId"]) for r in reads] == [
        ("refused", "dev_mallory"),
        ("refused", None),
    ]
    assert reads[0]["query"]["session"] == VICTIM_SESSION


def test_one_token_flooding_hooks_is_limited_and_another_is_not(tmp_path):
    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir)
    state = GatewayState(data_dir)
    noisy = state.create_token("dev_noisy", "agent")[0]
    calm = state.create_token("dev_calm", "agent")[0]
    state.close()
    # 1 request/s with a burst of 10: however slow this machine is, the bucket admits at most
    # 10 + (seconds elapsed) of the flood.
    with TestClient(create_app(ledger, hook_rate_per_second=1)) as client:
        started = time.monotonic()
        statuses = [
            client.post(
                "/hooks/claude-code",
                json=tool_call("sess_noisy", f"toolu_n{n}"),
                headers={"Authorization": f"Bearer {noisy}"},
            ).status_code
            for n in range(120)
        ]
        elapsed = time.monotonic() - started
        assert set(statuses) == {200, 429}
        assert statuses.count(200) <= 10 + elapsed + 1
        limited = client.post(
            "/hooks/claude-code",
            json=tool_call("sess_noisy", "toolu_last"),
            headers={"Authorization": f"Bearer {noisy}"},
        )
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        calm_answer = client.post(
            "/hooks/claude-code",
            json=tool_call("sess_calm", "toolu_c"),
            headers={"Authorization": f"Bearer {calm}"},
        )
        assert calm_answer.status_code == 200


def test_telemetry_cost_goes_to_the_tool_calls_and_the_sessions_developer(parties):
    """OTLP as the only usage source (finding 11.3): tool_decision records name the request
    that asked for each tool call, so the cost lands on the calls, and every telemetry event
    carries the session's developer and project."""
    from typer.testing import CliRunner

    from trailguard.cli import app

    parties.hook("alice", start("sess_otlp"))
    usage = otlp_logs(
        "sess_otlp",
        "api_request",
        {"model": "claude-sonnet-4-5", "input_tokens": 1000, "output_tokens": 200,
         "request_id": "req_tools"},
    )  # fmt: skip
    assert post_logs(parties, parties.tokens["alice"], usage).status_code == 200
    for tool_use_id in ("toolu_one", "toolu_two"):
        decision = otlp_logs(
            "sess_otlp",
            "tool_decision",
            {"tool_name": "Bash", "decision": "accept", "request_id": "req_tools",
             "tool_use_id": tool_use_id},
        )  # fmt: skip
        assert post_logs(parties, parties.tokens["alice"], decision).status_code == 200
    events = stored(parties.data_dir)
    telemetry = [e for e in events if e.get("name", "").startswith("telemetry.")]
    assert telemetry
    assert all(e["developerId"] == "dev_alice" for e in telemetry)
    result = CliRunner().invoke(
        app,
        ["cost", "--data-dir", str(parties.data_dir), "--session", "sess_otlp", "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {entry["toolUseId"] for entry in report["perToolCall"]} == {"toolu_one", "toolu_two"}
    assert report["overheadUsd"] == 0
    assert sum(entry["usd"] for entry in report["perToolCall"]) == pytest.approx(report["totalUsd"])


# -- the API proxy charges only the token's own sessions (finding 9.10) -------------------------


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Parties]:
    from e2e.model_server import ModelServer, ToolCall, Turn, Usage

    turns = [
        Turn(
            tool_calls=[ToolCall("Bash", {"command": "ls"}, id="toolu_proxy_1")],
            usage=Usage(input_tokens=200_000, output_tokens=2_000),  # $0.63 of claude-sonnet-4-5
            message_id=f"msg_proxied_{n}",
            request_id=f"req_proxied_{n}",
        )
        for n in range(10)
    ]
    model = ModelServer(turns).start()
    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir)
    state = GatewayState(data_dir)
    tokens = {
        "alice": state.create_token("dev_alice", "agent")[0],
        "mallory": state.create_token("dev_mallory", "agent")[0],
    }
    state.close()
    from trailguard.cost.budgets import BudgetConfig

    app = create_app(
        ledger,
        idle_timeout=3600,
        anthropic_upstream=model.url,
        budgets=BudgetConfig(session_usd=Decimal("1.0")),
    )
    try:
        with TestClient(app) as client:
            yield Parties(client, data_dir, tokens)
    finally:
        model.stop()


def model_request(parties: Parties, session: str, token: str | None):
    headers = {
        "x-api-key": "sk-ant-api03-FAKE-test-key",
        "anthropic-version": "2023-06-01",
        "x-claude-code-session-id": session,
    }
    if token is not None:
        headers["X-Trailguard-Token"] = token
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "Bash", "input_schema": {"type": "object"}}]}  # fmt: skip
    return parties.client.post("/anthropic/v1/messages", json=body, headers=headers)


@pytest.mark.parametrize("who", [None, "forged", "mallory"])
def test_model_usage_the_token_cannot_charge_is_unattributed_and_never_hits_the_budget(
    proxied, who
):
    """No token, an invalid token, or another developer's token naming Alice's session: the
    usage is recorded without a session, an alert says what was claimed, and Alice's budget
    (one such request would be 63 % of it; two would exhaust it) is untouched."""
    proxied.hook("alice", start())
    token = {None: None, "forged": "tg_not_a_real_token", "mallory": proxied.tokens["mallory"]}
    for _ in range(2):
        answer = model_request(proxied, VICTIM_SESSION, token[who])
        assert answer.status_code == 200
    events = stored(proxied.data_dir)
    costs = [e for e in events if e["eventType"] == "cost"]
    assert len(costs) == 2
    assert all(c.get("sessionId") is None for c in costs)
    assert all(c.get("developerId") is None for c in costs)
    expected = "session_hijack" if who == "mallory" else "unattributed_model_usage"
    alerts = [e for e in events if e.get("alertType") == expected]
    assert len(alerts) == 2
    assert alerts[0]["details"]["claimedSessionId"] == VICTIM_SESSION
    assert not any(e["eventType"] == "budget_threshold" for e in events)
    assert not any(e["eventType"] == "session_end" for e in events)
    # Alice's next tool call is not refused by a budget she did not spend.
    answer = proxied.hook("alice", tool_call(VICTIM_SESSION, "toolu_after_proxy")).json()
    assert "continue" not in answer
    assert "deny" not in json.dumps(answer)


def test_model_usage_with_the_owners_token_is_charged_and_the_budget_refuses_with_402(proxied):
    proxied.hook("alice", start())
    for _ in range(2):
        assert model_request(proxied, VICTIM_SESSION, proxied.tokens["alice"]).status_code == 200
    refused = model_request(proxied, VICTIM_SESSION, proxied.tokens["alice"])
    assert refused.status_code == 402
    assert refused.json()["error"]["type"] == "billing_error"
    events = stored(proxied.data_dir)
    costs = [e for e in events if e["eventType"] == "cost"]
    assert [c["sessionId"] for c in costs] == [VICTIM_SESSION, VICTIM_SESSION]
    assert all(c["developerId"] == "dev_alice" for c in costs)
    [end] = [e for e in events if e["eventType"] == "session_end"]
    assert end["reason"] == "budget_exhausted"
    [refusal] = [e for e in events if e.get("alertType") == "model_request_refused"]
    assert refusal["sessionId"] == VICTIM_SESSION
    assert refusal["details"]["status"] == 402


# -- the proxy's figure wins over a claim, whichever arrives first ------------------------------


def claimed_usage(session: str, *numbers: int, input_tokens: int = 10) -> dict:
    """A Stop hook carrying transcript usage (``trailguard.usage``) for the proxied requests of
    ``numbers``: the ids the proxy will see, the token counts made up."""
    entries = [
        {
            "requestId": f"req_proxied_{n}",
            "messageId": f"msg_proxied_{n}",
            "model": "claude-sonnet-4-5",
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
            "toolUseIds": ["toolu_proxy_1"],
        }
        for n in numbers
    ]
    return {"session_id": session, "hook_event_name": "Stop", "trailguard": {"usage": entries}}


def session_costs(data_dir: Path, session: str) -> list[dict]:
    return [
        e for e in stored(data_dir) if e["eventType"] == "cost" and e.get("sessionId") == session
    ]


def total_usd(costs: list[dict]) -> Decimal:
    return sum((Decimal(str(c["costUsd"])) for c in costs), Decimal(0))


def assert_stopped_by_the_budget(parties: Parties, session: str, tool_use_id: str) -> None:
    answer = parties.hook("alice", tool_call(session, tool_use_id)).json()
    output = answer["hookSpecificOutput"]
    assert output["permissionDecision"] == "deny"
    assert "budget" in output["permissionDecisionReason"]
    call = next(e for e in stored(parties.data_dir) if e.get("toolUseId") == tool_use_id)
    assert call["policyRule"] == "budget-exhausted"
    refused = model_request(parties, session, parties.tokens["alice"])
    assert refused.status_code == 402


def test_a_pre_claimed_model_request_is_charged_at_the_proxys_figure_and_the_budget_holds(
    proxied,
):
    """The attack: before making two model requests (true cost $0.63 each, budget $1), the
    hook claims their transcript usage at 10 input tokens each (3 hundredths of a cent). If
    the first figure won, the session would have spent $0.00009 and go on for ever."""
    proxied.hook("alice", start())
    assert proxied.hook("alice", claimed_usage(VICTIM_SESSION, 0, 1)).status_code == 200
    claims = session_costs(proxied.data_dir, VICTIM_SESSION)
    assert [c["source"] for c in claims] == ["transcript", "transcript"]
    assert total_usd(claims) == Decimal("0.00009")

    for _ in range(2):
        assert model_request(proxied, VICTIM_SESSION, proxied.tokens["alice"]).status_code == 200

    events = stored(proxied.data_dir)
    costs = session_costs(proxied.data_dir, VICTIM_SESSION)
    assert total_usd(costs) == Decimal("1.26")  # the proxy's figure, 2 * $0.63
    corrections = [c for c in costs if "correction" in (c.get("extra") or {})]
    assert [(c["requestId"], c["source"]) for c in corrections] == [
        ("req_proxied_0", "proxy"),
        ("req_proxied_1", "proxy"),
    ]
    assert [Decimal(str(c["costUsd"])) for c in corrections] == [Decimal("0.629955")] * 2
    assert corrections[0]["extra"]["correction"]["observed"]["inputTokens"] == 200_000
    alerts = [e for e in events if e.get("alertType") == "usage_claim_mismatch"]
    assert [(a["severity"], a["details"]["requestId"]) for a in alerts] == [
        ("high", "req_proxied_0"),
        ("high", "req_proxied_1"),
    ]
    assert all(a["sessionId"] == VICTIM_SESSION for a in alerts)
    assert all(a["developerId"] == "dev_alice" for a in alerts)
    assert alerts[0]["details"]["claimed"]["inputTokens"] == 10
    assert alerts[0]["details"]["observed"]["inputTokens"] == 200_000
    [end] = [e for e in events if e["eventType"] == "session_end"]
    assert end["reason"] == "budget_exhausted"
    assert_stopped_by_the_budget(proxied, VICTIM_SESSION, "toolu_after_pre_claim")


def test_a_claim_after_the_proxied_request_changes_nothing(proxied):
    """The reverse order: the proxy counted the request; smaller and larger claims for it
    afterwards are neither charged nor alerted on, and the budget runs on the proxy's figure."""
    proxied.hook("alice", start())
    assert model_request(proxied, VICTIM_SESSION, proxied.tokens["alice"]).status_code == 200
    for forged_input in (10, 900_000):
        claim = claimed_usage(VICTIM_SESSION, 0, input_tokens=forged_input)
        assert proxied.hook("alice", claim).status_code == 200
    costs = session_costs(proxied.data_dir, VICTIM_SESSION)
    assert [(c["source"], c["requestId"]) for c in costs] == [("proxy", "req_proxied_0")]
    assert total_usd(costs) == Decimal("0.63")
    assert not any(e.get("alertType") == "usage_claim_mismatch" for e in stored(proxied.data_dir))
    answer = proxied.hook("alice", tool_call(VICTIM_SESSION, "toolu_within_budget")).json()
    assert "deny" not in json.dumps(answer)

    assert model_request(proxied, VICTIM_SESSION, proxied.tokens["alice"]).status_code == 200
    assert total_usd(session_costs(proxied.data_dir, VICTIM_SESSION)) == Decimal("1.26")
    assert_stopped_by_the_budget(proxied, VICTIM_SESSION, "toolu_after_budget")
