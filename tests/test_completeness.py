"""Completeness you can prove, in process: the gateway app with its proxy in front of a real
scripted model server (sockets), hooks and telemetry posted as Claude Code posts them, and the
completeness watcher following the ledger. Each attack is performed: a tool_use the model emitted
that no hook reported, a session with no hooks at all, forged telemetry and forged hooks, hook
configurations weakened between sessions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from e2e.model_server import ModelServer, ToolCall, Turn
from trailguard.capture import install as installer
from trailguard.capture.hook_client.settings import read_hook_config
from trailguard.completeness import watcher as watcher_module
from trailguard.completeness.report import Rules, figures, session_completeness
from trailguard.gateway.app import create_app
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.gateway_state import GatewayState
from trailguard.store.sqlite import SQLiteStore

SESSION = "c0mp1e7e-0000-4000-8000-000000000001"
FAST = Rules(
    grace=timedelta(milliseconds=200),
    max_wait=timedelta(seconds=30),
    unaudited_grace=timedelta(milliseconds=300),
)
CLAUDE_HEADERS = {
    "x-api-key": "sk-ant-test-fake",
    "anthropic-version": "2023-06-01",
    "user-agent": "claude-cli/2.1.328 (external, sdk-cli)",
}


def bash(command: str, tool_use_id: str) -> ToolCall:
    return ToolCall("Bash", {"command": command, "description": "run"}, id=tool_use_id)


class Rig:
    def __init__(self, client: TestClient, data_dir: Path, token: str, model: ModelServer):
        self.client = client
        self.data_dir = data_dir
        self.token = token
        self.model = model
        self.closed = False

    def hook(self, payload: dict[str, Any]) -> Any:
        response = self.client.post(
            "/hooks/claude-code",
            json=payload,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert response.status_code == 200, response.text
        return response.json()

    def start(self, session: str = SESSION, **extra: Any) -> None:
        self.hook(
            {"session_id": session, "hook_event_name": "SessionStart", "source": "startup"} | extra
        )

    def pre(self, tool_use_id: str, command: str, session: str = SESSION) -> Any:
        return self.hook(
            {
                "session_id": session,
                "hook_event_name": "PreToolUse",
                "tool_name": "Bash",
                "tool_input": {"command": command, "description": "run"},
                "tool_use_id": tool_use_id,
            }
        )

    def post(self, tool_use_id: str, command: str, session: str = SESSION) -> None:
        self.hook(
            {
                "session_id": session,
                "hook_event_name": "PostToolUse",
                "tool_name": "Bash",
                "tool_input": {"command": command, "description": "run"},
                "tool_response": {"stdout": "ok", "stderr": ""},
                "tool_use_id": tool_use_id,
            }
        )

    def model_request(self, session: str | None = SESSION, **headers: str) -> Any:
        extra = {"x-claude-code-session-id": session} if session else {}
        return self.client.post(
            "/anthropic/v1/messages?beta=true",
            json={
                "model": "claude-opus-5-5",
                "max_tokens": 100,
                "stream": True,
                "messages": [{"role": "user", "content": "go"}],
                "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
            },
            headers=CLAUDE_HEADERS | extra | headers,
        )

    def telemetry(self, session: str, records: list[dict[str, Any]]) -> None:
        logs = {
            "resourceLogs": [
                {
                    "resource": {"attributes": []},
                    "scopeLogs": [
                        {
                            "logRecords": [
                                {
                                    "attributes": [
                                        {"key": k, "value": {"stringValue": str(v)}}
                                        for k, v in (record | {"session.id": session}).items()
                                    ]
                                }
                                for record in records
                            ]
                        }
                    ],
                }
            ]
        }
        response = self.client.post(
            "/v1/logs", json=logs, headers={"Authorization": f"Bearer {self.token}"}
        )
        assert response.status_code == 200, response.text

    def events(self) -> list[dict[str, Any]]:
        store = SQLiteStore.in_data_dir(self.data_dir, read_only=True)
        try:
            return [orjson.loads(row.body) for row in store.rows()]
        finally:
            store.close()

    def alerts(self, alert_type: str) -> list[dict[str, Any]]:
        return [
            e for e in self.events() if e["eventType"] == "alert" and e["alertType"] == alert_type
        ]

    def wait_alerts(self, alert_type: str, count: int = 1, timeout: float = 10) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.alerts(alert_type)
            if len(found) >= count:
                time.sleep(0.8)  # a second copy of the same alert would show up here
                return self.alerts(alert_type)
            time.sleep(0.1)
        raise AssertionError(f"no {alert_type} alert within {timeout}s: {self.alerts('*')}")

    def report(self, session: str = SESSION) -> Any:
        store = SQLiteStore.in_data_dir(self.data_dir, read_only=True)
        try:
            return session_completeness(store, session, rules=FAST)
        finally:
            store.close()


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    opened: list[Rig] = []

    def make(script: list[Turn], **app_options: Any) -> Rig:
        model = ModelServer(script).start()
        data_dir = tmp_path / "ledger"
        ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=50))
        state = GatewayState(data_dir)
        token, _ = state.create_token("dev_jordan", "agent")
        state.close()
        app = create_app(
            ledger,
            idle_timeout=3600,
            anthropic_upstream=model.url,
            completeness_rules=FAST,
            **app_options,
        )
        client = TestClient(app)
        client.__enter__()
        rig = Rig(client, data_dir, token, model)
        opened.append(rig)
        return rig

    yield make
    for rig in opened:
        if not rig.closed:
            rig.client.__exit__(None, None, None)
        rig.model.stop()


def test_a_tool_use_the_proxy_saw_that_no_hook_reported_is_a_hook_gap(make_rig):
    rig = make_rig(
        [
            Turn(
                tool_calls=[bash("echo recorded", "toolu_REC"), bash("rm -rf build", "toolu_GAP")]
            ),
            Turn(text="done"),
        ]
    )
    rig.start()
    assert rig.model_request().status_code == 200
    rig.pre("toolu_REC", "echo recorded")
    rig.post("toolu_REC", "echo recorded")
    # toolu_GAP ran with no hook (as for a subagent's call, or a matcher that never fires).
    assert rig.model_request().status_code == 200  # the agent moved on

    (alert,) = rig.wait_alerts("hook_gap")
    assert alert["severity"] == "high"
    assert alert["sessionId"] == SESSION
    assert alert["developerId"] == "dev_jordan"
    assert alert["details"]["toolUseId"] == "toolu_GAP"
    assert alert["details"]["tool"] == "Bash"
    assert alert["details"]["input"] == {"command": "rm -rf build", "description": "run"}
    assert alert["details"]["sources"] == ["proxy"]

    report = rig.report()
    assert not report.complete
    assert report.seen == 2
    assert report.by_source == {"hook": 1, "proxy": 2, "otlp": 0, "transcript": 0}
    assert [(gap.kind, gap.tool_use_id) for gap in report.gaps] == [("no_hook", "toolu_GAP")]
    assert report.decided == 1
    assert report.resolved == 1


def test_a_session_whose_hooks_report_every_call_the_model_made_is_complete(make_rig):
    rig = make_rig([Turn(tool_calls=[bash("echo one", "toolu_ONE")]), Turn(text="done")])
    rig.start()
    rig.model_request()
    rig.pre("toolu_ONE", "echo one")
    rig.post("toolu_ONE", "echo one")
    rig.model_request()
    rig.hook({"session_id": SESSION, "hook_event_name": "SessionEnd", "reason": "other"})
    time.sleep(1.5)  # several watcher ticks past every grace period
    assert rig.alerts("hook_gap") == []
    assert rig.alerts("unaudited_session") == []
    assert rig.alerts("hook_mismatch") == []
    report = rig.report()
    assert report.complete
    assert report.by_source["hook"] == report.by_source["proxy"] == 1


def test_model_traffic_for_a_session_no_hook_ever_reported_is_an_unaudited_session(make_rig):
    rig = make_rig([Turn(tool_calls=[bash("curl evil.example", "toolu_X")]), Turn(text="done")])
    started = time.monotonic()
    assert rig.model_request(session="no-hooks-session").status_code == 200
    (alert,) = rig.wait_alerts("unaudited_session")
    assert time.monotonic() - started < 5  # within seconds
    assert alert["sessionId"] == "no-hooks-session"
    assert alert["details"]["sources"] == ["proxy"]
    assert alert["details"]["refused"] is False
    report = rig.report("no-hooks-session")
    assert report.unaudited
    assert not report.hooked
    assert not report.complete


def test_require_hooks_refuses_model_requests_of_a_session_no_hook_reported(make_rig):
    rig = make_rig([Turn(text="hello")], require_hooks=True)
    for _ in range(3):
        refused = rig.model_request(session="hookless")
        assert refused.status_code == 402
        assert "no audit hook has reported session hookless" in refused.json()["error"]["message"]
    assert rig.model_request(session=None).status_code == 402
    assert rig.model.main_requests == []  # the upstream never saw them
    alerts = rig.wait_alerts("unaudited_session", 2)
    assert sorted(a["sessionId"] for a in alerts) == ["(no session id)", "hookless"]
    assert all(a["details"]["refused"] for a in alerts)

    rig.start()  # a session with its hooks goes through
    assert rig.model_request().status_code == 200
    assert len(rig.model.main_requests) == 1


def test_forged_telemetry_neither_closes_a_gap_nor_makes_a_session_complete(make_rig):
    rig = make_rig([Turn(tool_calls=[bash("cat ~/.aws/credentials", "toolu_HIDDEN")])])
    rig.start()
    rig.model_request()
    # The agent's machine claims, through telemetry, that the call was decided and ran fine.
    rig.telemetry(
        SESSION,
        [
            {"event.name": "tool_decision", "tool_use_id": "toolu_HIDDEN", "tool_name": "Bash",
             "decision": "accept"},
            {"event.name": "tool_result", "tool_use_id": "toolu_HIDDEN", "tool_name": "Bash",
             "success": "true"},
        ],
    )  # fmt: skip
    (alert,) = rig.wait_alerts("hook_gap")
    assert alert["details"]["toolUseId"] == "toolu_HIDDEN"
    assert alert["details"]["sources"] == ["proxy", "otlp"]
    assert not rig.report().complete

    # Telemetry inventing calls in a complete session only ever makes it less complete.
    other = "c0mp1e7e-0000-4000-8000-000000000002"
    rig.start(other)
    rig.telemetry(other, [{"event.name": "tool_result", "tool_use_id": "toolu_INVENTED",
                           "tool_name": "Bash", "success": "true"}])  # fmt: skip
    assert rig.wait_alerts("hook_gap", 2)[-1]["details"]["toolUseId"] == "toolu_INVENTED"
    assert not rig.report(other).complete


def test_a_hook_reporting_another_input_than_the_model_emitted_is_a_mismatch(make_rig):
    rig = make_rig([Turn(tool_calls=[bash("rm -rf /srv/data", "toolu_SWAP")]), Turn(text="ok")])
    rig.start()
    rig.model_request()
    # A hostile client posts its own PreToolUse with a harmless command for the same id.
    rig.pre("toolu_SWAP", "echo harmless")
    rig.post("toolu_SWAP", "echo harmless")
    (alert,) = rig.wait_alerts("hook_mismatch")
    assert alert["details"]["toolUseId"] == "toolu_SWAP"
    assert alert["details"]["keys"] == ["command"]
    assert alert["details"]["modelInput"]["command"] == "rm -rf /srv/data"
    assert [gap.kind for gap in rig.report().gaps] == ["input_mismatch"]


def test_secrets_in_a_gap_alerts_input_are_redacted(make_rig):
    secret = "AKIA" + "Z7QEXAMPLEFAKE12"
    rig = make_rig([Turn(tool_calls=[bash(f"AWS_ACCESS_KEY_ID={secret} aws s3 ls", "toolu_S")])])
    rig.start()
    rig.model_request()
    rig.hook({"session_id": SESSION, "hook_event_name": "SessionEnd", "reason": "other"})
    (alert,) = rig.wait_alerts("hook_gap")
    assert "REDACTED" in alert["details"]["input"]["command"]
    raw = b"".join(p.read_bytes() for p in rig.data_dir.glob("ledger.sqlite3*"))
    assert secret.encode() not in raw


def settings_project(tmp_path: Path, name: str) -> Path:
    project = tmp_path / name
    (project / ".claude").mkdir(parents=True)
    installer.install(
        project / ".claude" / "settings.json",
        "http://127.0.0.1:8787",
        hook_command="trailguard hook",
    )
    return project


def test_hooks_weakened_between_two_sessions_in_one_project_raise_hooks_disabled(
    make_rig, tmp_path
):
    rig = make_rig([Turn(text="ok")])
    project = settings_project(tmp_path, "app")
    environ = {"HOME": str(tmp_path / "home")}
    full = read_hook_config(str(project), environ)
    assert "PreToolUse" in full["trailguardEvents"]
    assert "PreToolUse" in full["failClosedEvents"]
    rig.start("s-one", cwd=str(project), trailguard={"context": {"hooks": full}})

    # A person drops onFailure from PreToolUse and removes PostToolUse between sessions.
    path = project / ".claude" / "settings.json"
    settings = json.loads(path.read_text())
    del settings["hooks"]["PreToolUse"][0]["hooks"][0]["onFailure"]
    del settings["hooks"]["PostToolUse"]
    path.write_text(json.dumps(settings))
    weaker = read_hook_config(str(project), environ)
    assert weaker["sha256"] != full["sha256"]
    rig.start("s-two", cwd=str(project), trailguard={"context": {"hooks": weaker}})

    (alert,) = rig.wait_alerts("hooks_disabled")
    assert alert["sessionId"] == "s-two"
    assert alert["details"]["comparedWithSession"] == "s-one"
    text = " ".join(alert["details"]["weakenings"])
    assert "removed for PostToolUse" in text
    assert "onFailure: block was dropped for PreToolUse" in text


def test_a_config_change_that_disables_all_hooks_raises_hooks_disabled(make_rig, tmp_path):
    rig = make_rig([Turn(text="ok")])
    project = settings_project(tmp_path, "svc")
    environ = {"HOME": str(tmp_path / "home")}
    rig.start(
        cwd=str(project), trailguard={"context": {"hooks": read_hook_config(str(project), environ)}}
    )
    local = project / ".claude" / "settings.local.json"
    local.write_text('{"disableAllHooks": true}')
    rig.hook(
        {
            "session_id": SESSION,
            "hook_event_name": "ConfigChange",
            "source": "local_settings",
            "file_path": str(local),
            "cwd": str(project),
            "trailguard": {"context": {"hooks": read_hook_config(str(project), environ)}},
        }
    )
    (alert,) = rig.wait_alerts("hooks_disabled")
    assert f"disableAllHooks is set in {local}" in alert["message"]
    assert rig.report().weakened[0]["what"] == "config_change"


def test_alerts_are_not_raised_twice_across_a_gateway_restart(make_rig, tmp_path):
    rig = make_rig([Turn(tool_calls=[bash("id", "toolu_ONCE")]), Turn(text="done")])
    rig.start()
    rig.model_request()
    rig.model_request()
    rig.wait_alerts("hook_gap")
    rig.client.__exit__(None, None, None)
    ledger = Ledger.open(rig.data_dir, config=LedgerConfig(checkpoint_every_events=50))
    app = create_app(ledger, anthropic_upstream=rig.model.url, completeness_rules=FAST)
    with TestClient(app):
        time.sleep(1.5)
    assert len(rig.alerts("hook_gap")) == 1
    rig.closed = True


def test_the_completeness_figure_counts_every_source_and_every_gap(make_rig):
    rig = make_rig(
        [
            Turn(tool_calls=[bash("echo a", "toolu_A")]),
            Turn(tool_calls=[bash("echo b", "toolu_B")]),
            Turn(text="done"),
        ]
    )
    rig.start()
    rig.model_request()
    rig.pre("toolu_A", "echo a")
    rig.post("toolu_A", "echo a")
    rig.model_request()  # toolu_B: never reported by a hook
    rig.model_request()
    rig.model_request(session="hookless-2")
    rig.wait_alerts("unaudited_session")
    rig.wait_alerts("hook_gap")
    store = SQLiteStore.in_data_dir(rig.data_dir, read_only=True)
    try:
        totals = figures(store, rules=FAST).totals()
    finally:
        store.close()
    assert totals["sessions"] == 2
    assert totals["completeSessions"] == 0
    assert totals["unauditedSessions"] == 1
    assert totals["toolCallsSeen"] == 2
    assert totals["seenBySource"] == {"hook": 1, "proxy": 2, "otlp": 0, "transcript": 0}
    assert totals["recordedWithDecision"] == 1
    assert totals["endedWithResult"] == 1
    assert totals["gapsByKind"]["no_hook"] == 1


def test_sessions_show_and_completeness_print_each_source_and_the_gaps(make_rig):
    from typer.testing import CliRunner

    from trailguard.cli import app

    rig = make_rig([Turn(tool_calls=[bash("make deploy", "toolu_CLI")]), Turn(text="done")])
    rig.start()
    rig.model_request()
    rig.model_request()
    rig.wait_alerts("hook_gap")
    runner = CliRunner()
    shown = runner.invoke(app, ["sessions", "show", SESSION, "--data-dir", str(rig.data_dir)])
    assert shown.exit_code == 0, shown.output
    assert "by source: hooks 0, API proxy 1, telemetry 0, transcript 0" in shown.output
    assert "gap no_hook: toolu_CLI Bash" in shown.output
    assert "make deploy" in shown.output
    figure = runner.invoke(app, ["completeness", "--data-dir", str(rig.data_dir)])
    assert figure.exit_code == 1, figure.output  # incomplete
    assert "tool calls  1 seen by any source" in figure.output
    assert "gaps        1: no_hook 1" in figure.output
    as_json = runner.invoke(app, ["completeness", "--format", "json", "--data-dir",
                                  str(rig.data_dir)])  # fmt: skip
    document = json.loads(as_json.stdout)
    assert document["toolCallsSeen"] == 1
    assert document["perSession"][0]["gaps"][0]["toolUseId"] == "toolu_CLI"


def test_the_completeness_api_is_for_auditors_and_every_read_is_recorded(make_rig):
    rig = make_rig([Turn(tool_calls=[bash("id", "toolu_API")]), Turn(text="done")])
    state = GatewayState(rig.data_dir)
    auditor, _ = state.create_token("aud_sam", "auditor")
    state.close()
    rig.start()
    rig.model_request()
    rig.model_request()
    rig.wait_alerts("hook_gap")
    as_agent = rig.client.get("/v1/completeness", headers={"Authorization": f"Bearer {rig.token}"})
    assert as_agent.status_code == 403
    headers = {"Authorization": f"Bearer {auditor}"}
    overall = rig.client.get("/v1/completeness", headers=headers)
    assert overall.status_code == 200
    assert overall.json()["gaps"] == 1
    one = rig.client.get(f"/v1/sessions/{SESSION}/completeness", headers=headers)
    assert one.status_code == 200
    assert one.json()["seenBySource"]["proxy"] == 1
    assert one.json()["complete"] is False
    assert rig.client.get("/v1/sessions/nope/completeness", headers=headers).status_code == 404
    reads = [e for e in rig.events() if e["eventType"] == "audit_access"]
    assert {r["action"] for r in reads} >= {
        "GET /v1/completeness",
        "GET /v1/sessions/{id}/completeness",
    }
    assert any(r["outcome"] == "refused" for r in reads)


@pytest.mark.parametrize(
    ("tool", "tool_input", "rule"),
    [
        ("Write", {"file_path": "/work/app/.claude/settings.json", "content": "{}"},
         "no-editing-hook-settings"),
        ("Edit", {"file_path": "/home/dev/.claude/settings.json", "old_string": "PreToolUse",
                  "new_string": "Nothing"}, "no-editing-hook-settings"),
        ("Write", {"file_path": "/etc/claude-code/managed-settings.json", "content": "{}"},
         "no-editing-hook-settings"),
        ("Bash", {"command": "echo '{\"disableAllHooks\": true}' > .claude/settings.local.json"},
         "no-disabling-hooks"),
        ("Bash", {"command": ": > .claude/settings.json"}, "no-editing-hook-settings"),
        ("Bash", {"command": "rm -rf .claude"}, "no-editing-hook-settings"),
        ("Bash", {"command": "claude -p hi --settings '{\"disableAllHooks\":true}'"},
         "no-disabling-hooks"),
        ("Bash", {"command": "python3 -c \"open('.claude/settings.json','w').write('{}')\""},
         "no-scripted-hook-settings-edit"),
    ],
)  # fmt: skip
def test_the_agent_may_not_edit_or_disable_the_settings_that_hold_its_hooks(
    make_rig, tool, tool_input, rule
):
    rig = make_rig([Turn(text="ok")])
    rig.start()
    answer = rig.hook(
        {
            "session_id": SESSION,
            "hook_event_name": "PreToolUse",
            "tool_name": tool,
            "tool_input": tool_input,
            "tool_use_id": "toolu_TAMPER",
            "cwd": "/work/app",
            "transcript_path": "/home/dev/.claude/projects/-work-app/s.jsonl",
        }
    )
    assert answer["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert rule in answer["hookSpecificOutput"]["permissionDecisionReason"]
    (invocation,) = [e for e in rig.events() if e["eventType"] == "tool_invocation"]
    assert invocation["policyResult"] == "denied"
    assert invocation["policyRule"] == rule


def test_reading_the_hook_settings_is_still_allowed(make_rig):
    rig = make_rig([Turn(text="ok")])
    rig.start()
    for tool, tool_input in [
        ("Read", {"file_path": "/work/app/.claude/settings.json"}),
        ("Bash", {"command": "cat .claude/settings.json | jq .hooks"}),
    ]:
        answer = rig.hook(
            {
                "session_id": SESSION,
                "hook_event_name": "PreToolUse",
                "tool_name": tool,
                "tool_input": tool_input,
                "tool_use_id": f"toolu_{tool}",
                "cwd": "/work/app",
            }
        )
        assert answer == {}, (tool, answer)


def test_a_huge_tool_input_is_kept_capped_and_still_reconciled(make_rig):
    big = "x" * 200_000
    rig = make_rig([Turn(tool_calls=[bash(f"echo {big}", "toolu_BIG")]), Turn(text="done")])
    rig.start()
    response = rig.model_request()
    assert response.status_code == 200
    assert len(response.content) > 200_000  # forwarded whole
    rig.model_request()
    (alert,) = rig.wait_alerts("hook_gap")
    assert alert["details"]["toolUseId"] == "toolu_BIG"
    (sighting,) = [
        e for e in rig.events() if e.get("name") == "proxy.tool_uses" and e["payload"]["toolUses"]
    ]
    (use,) = sighting["payload"]["toolUses"]
    assert use["inputTruncated"] is True
    assert len(json.dumps(use["input"])) < 70_000


def test_telemetry_for_a_session_no_hook_reported_is_an_unaudited_session(make_rig):
    rig = make_rig([Turn(text="ok")])
    rig.telemetry(
        "telemetry-only",
        [{"event.name": "api_request", "model": "claude-opus-5-5", "input_tokens": "100",
          "output_tokens": "10", "request_id": "req_T1"}],
    )  # fmt: skip
    (alert,) = rig.wait_alerts("unaudited_session")
    assert alert["sessionId"] == "telemetry-only"
    assert alert["details"]["sources"] == ["otlp"]


def test_a_watcher_catching_up_a_few_events_a_tick_judges_only_once_caught_up(
    make_rig, monkeypatch
):
    """A start on a big recent ledger reads it over several ticks (the hooks keep their
    latency); judging before every event so far is read would see a tool_use without the hook
    that reported it. Two events a tick: the complete session raises nothing, the gap is still
    found, once."""
    monkeypatch.setattr(watcher_module, "CATCH_UP_ROWS_PER_TICK", 2)
    rig = make_rig(
        [
            Turn(tool_calls=[bash("echo one", "toolu_ONE")]),
            Turn(tool_calls=[bash("rm -rf build", "toolu_GAP")]),
            Turn(text="done"),
        ]
    )
    rig.start()
    rig.model_request()
    rig.pre("toolu_ONE", "echo one")
    rig.post("toolu_ONE", "echo one")
    rig.model_request()  # toolu_GAP: no hook ever reports it
    rig.model_request()
    (alert,) = rig.wait_alerts("hook_gap", timeout=30)
    assert alert["details"]["toolUseId"] == "toolu_GAP"
    assert rig.alerts("unaudited_session") == []
