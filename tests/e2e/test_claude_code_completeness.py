"""Completeness with the real Claude Code CLI, each fault caused for real: a session through the
API proxy with no hooks installed, hooks disabled or emptied by a person between sessions, the
agent trying to empty its own settings, a subagent's tool calls, an MCP tool call through a real
stdio MCP server, and ``--require-hooks`` stopping a session that has no hooks."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import trailguard.policy

from .claude import run_claude
from .conftest import GatewayProcess, Workspace, install_hooks
from .model_server import ModelServer, RecordedRequest, ToolCall, Turn

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
BYPASS = ["--permission-mode", "bypassPermissions"]
MCP_SERVER = Path(__file__).with_name("mcp_tickets_server.py")


def bash(command: str) -> ToolCall:
    return ToolCall("Bash", {"command": command, "description": "run a command"})


class Proxied:
    """A gateway whose /anthropic forwards to a scripted model server, and a workspace."""

    def __init__(self, tmp_path: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.model = ModelServer().start()
        self.gateway = GatewayProcess(
            tmp_path / "ledger",
            extra_args=("--anthropic-upstream", self.model.url, *extra_args),
        )
        self.gateway.data_dir.mkdir(parents=True)
        self.gateway.start()
        home, project = tmp_path / "home", tmp_path / "project"
        home.mkdir()
        project.mkdir()
        from .claude import trust_project

        trust_project(home, project)
        made = self.gateway.cli("token", "create", "--developer", "dev_e2e")
        assert made.returncode == 0, made.stderr
        self.workspace = Workspace(
            home, project, tmp_path / "spool", made.stdout.strip().splitlines()[-1]
        )

    def run(
        self, claude_binary: Path, script: list[Turn], *, args: list[str] | None = None, **kw: Any
    ) -> Any:
        self.model.script = list(script)
        self.model._position = 0
        return run_claude(
            claude_binary,
            home=self.workspace.home,
            project=self.workspace.project,
            prompt="go",
            model_url=f"{self.gateway.url}/anthropic",
            env_extra=self.workspace.env(self.gateway),
            args=[*BYPASS, *(args or [])],
            timeout=180,
            **kw,
        )

    def alerts(self, alert_type: str, session_id: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.gateway.events()
            if e["eventType"] == "alert"
            and e["alertType"] == alert_type
            and (session_id is None or e.get("sessionId") == session_id)
        ]

    def wait_alerts(
        self, alert_type: str, session_id: str | None = None, timeout: float = 30
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.alerts(alert_type, session_id)
            if found:
                return found
            time.sleep(0.25)
        raise AssertionError(f"no {alert_type} alert for {session_id} within {timeout}s")

    def completeness(self, session_id: str) -> dict[str, Any]:
        shown = self.gateway.cli("sessions", "show", session_id, "--format", "json")
        assert shown.returncode == 0, shown.stderr
        document: dict[str, Any] = json.loads(shown.stdout)["completeness"]
        return document

    def stop(self) -> None:
        self.gateway.stop()
        self.model.stop()


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Proxied]:
    rig = Proxied(tmp_path)
    yield rig
    rig.stop()


def settle(seconds: float = 7.0) -> None:
    """Past the watcher's grace periods (5 s for a gap, 3 s for an unaudited session)."""
    time.sleep(seconds)


def test_a_session_through_the_proxy_with_no_hooks_is_flagged_unaudited_and_its_call_a_gap(
    claude_binary, proxied
):
    marker = proxied.workspace.project / "ran-unaudited"
    call = bash(f"touch {marker}")
    result = proxied.run(claude_binary, [Turn(tool_calls=[call]), Turn(text="done")])
    assert result.returncode == 0, result.describe()
    assert marker.exists()  # nothing stopped it: no hooks, no --require-hooks
    session_id = result.session_id
    (unaudited,) = proxied.wait_alerts("unaudited_session", session_id)
    assert unaudited["details"]["sources"] == ["proxy"]
    (gap,) = proxied.wait_alerts("hook_gap", session_id)
    assert gap["details"]["toolUseId"] == call.id
    assert gap["details"]["tool"] == "Bash"
    assert gap["details"]["input"]["command"] == f"touch {marker}"
    report = proxied.completeness(session_id)
    assert report["unaudited"] is True
    assert report["complete"] is False
    assert report["seenBySource"]["proxy"] == 1
    assert report["seenBySource"]["hook"] == 0
    figure = proxied.gateway.cli("completeness")
    assert figure.returncode == 1, figure.stdout
    assert "1 unaudited" in figure.stdout


def test_a_hooked_session_through_the_proxy_is_complete_with_no_false_alarm(claude_binary, proxied):
    install_hooks(proxied.workspace, proxied.gateway, "http")
    read = ToolCall("Read", {"file_path": str(proxied.workspace.project / "notes.txt")})
    (proxied.workspace.project / "notes.txt").write_text("hello\n")
    write = ToolCall(
        "Write", {"file_path": str(proxied.workspace.project / "out.txt"), "content": "x\n"}
    )
    script = [
        Turn(tool_calls=[bash("echo one")]),
        Turn(tool_calls=[read, write]),
        Turn(text="done"),
    ]
    result = proxied.run(claude_binary, script)
    assert result.returncode == 0, result.describe()
    settle()
    session_id = result.session_id
    for alert_type in ("unaudited_session", "hook_gap", "hook_mismatch", "hooks_disabled"):
        assert proxied.alerts(alert_type, session_id) == [], alert_type
    report = proxied.completeness(session_id)
    assert report["complete"] is True, report
    assert report["seenBySource"]["hook"] == report["seenBySource"]["proxy"] == 3
    assert report["endedWithResult"] == 3


@pytest.mark.parametrize(
    ("file_name", "content"),
    [
        ("settings.local.json", '{"disableAllHooks": true}\n'),  # hooks disabled
        ("settings.json", "{}\n"),  # settings emptied
    ],
)
def test_hooks_turned_off_by_a_person_between_sessions_flag_the_next_session(
    claude_binary, proxied, file_name, content
):
    install_hooks(proxied.workspace, proxied.gateway, "http")
    first = proxied.run(claude_binary, [Turn(tool_calls=[bash("echo audited")]), Turn(text="ok")])
    assert first.returncode == 0, first.describe()
    (proxied.workspace.project / ".claude" / file_name).write_text(content)
    hidden = bash("echo unaudited")
    second = proxied.run(claude_binary, [Turn(tool_calls=[hidden]), Turn(text="ok")])
    assert second.returncode == 0, second.describe()
    assert proxied.wait_alerts("unaudited_session", second.session_id)
    (gap,) = proxied.wait_alerts("hook_gap", second.session_id)
    assert gap["details"]["toolUseId"] == hidden.id
    assert proxied.alerts("unaudited_session", first.session_id) == []
    assert proxied.completeness(first.session_id)["complete"] is True
    assert proxied.completeness(second.session_id)["complete"] is False


def test_the_agent_trying_to_empty_its_settings_is_denied_and_nothing_changes(
    claude_binary, proxied
):
    install_hooks(proxied.workspace, proxied.gateway, "http")
    settings = proxied.workspace.project / ".claude" / "settings.json"
    before = settings.read_bytes()
    empty = ToolCall("Write", {"file_path": str(settings), "content": "{}\n"})
    disable = bash(f"echo '{{\"disableAllHooks\": true}}' > {settings.parent}/settings.local.json")
    script = [Turn(tool_calls=[empty]), Turn(tool_calls=[disable]), Turn(text="ok")]
    result = proxied.run(claude_binary, script)
    assert result.returncode == 0, result.describe()
    assert settings.read_bytes() == before
    assert not (settings.parent / "settings.local.json").exists()
    refusal = proxied.model.tool_result_for(empty.id)
    assert refusal is not None
    assert refusal.is_error
    assert "no-editing-hook-settings" in refusal.content
    assert "no-disabling-hooks" in proxied.model.tool_result_for(disable.id).content
    settle()
    session_id = result.session_id
    assert proxied.alerts("hooks_disabled", session_id) == []  # nothing changed
    report = proxied.completeness(session_id)
    assert report["complete"] is True, report
    # The next session still has its hooks.
    after = proxied.run(claude_binary, [Turn(tool_calls=[bash("echo next")]), Turn(text="ok")])
    settle(4)
    assert proxied.alerts("unaudited_session", after.session_id) == []


def test_require_hooks_stops_a_session_without_hooks_and_serves_one_with_them(
    claude_binary, tmp_path
):
    rig = Proxied(tmp_path, ("--require-hooks",))
    try:
        marker = rig.workspace.project / "should-not-run"
        refused = rig.run(claude_binary, [Turn(tool_calls=[bash(f"touch {marker}")])])
        assert not marker.exists()
        assert refused.is_error
        assert "no audit hook has reported session" in refused.stdout + refused.stderr
        assert rig.model.main_requests == []  # the model never saw the hookless session
        (alert,) = rig.wait_alerts("unaudited_session", refused.session_id)
        assert alert["details"]["refused"] is True

        install_hooks(rig.workspace, rig.gateway, "http")
        served = rig.run(claude_binary, [Turn(tool_calls=[bash("echo ok")]), Turn(text="ok")])
        assert served.returncode == 0, served.describe()
        assert "ok" in rig.model.tool_results()[0].content
    finally:
        rig.stop()


def subagent_router(calls: list[ToolCall]) -> Any:
    """Answers the subagent's requests (they carry ``x-claude-code-agent-id``): its tool
    calls one per request, then a final text."""
    remaining = list(calls)

    def route(request: RecordedRequest) -> Turn | None:
        if "x-claude-code-agent-id" not in request.headers:
            return None
        if remaining:
            return Turn(tool_calls=[remaining.pop(0)])
        return Turn(text="subagent finished")

    return route


def test_a_subagents_tool_calls_are_captured_with_its_agent_id(claude_binary, proxied):
    install_hooks(proxied.workspace, proxied.gateway, "http")
    inner = [bash("echo from-subagent"), bash("echo second-from-subagent")]
    proxied.model.router = subagent_router(inner)
    spawn = ToolCall(
        "Agent",
        {"description": "look around", "prompt": "run two commands",
         "subagent_type": "general-purpose"},
    )  # fmt: skip
    result = proxied.run(
        claude_binary, [Turn(tool_calls=[spawn]), Turn(text="waiting"), Turn(text="all done")]
    )
    assert result.returncode == 0, result.describe()
    for call in inner:
        assert proxied.model.tool_result_for(call.id) is not None, "the subagent did not run it"
    settle()
    session_id = result.session_id
    events = proxied.gateway.session_events(session_id)
    agent_ids = {
        r.headers["x-claude-code-agent-id"]
        for r in proxied.model.main_requests
        if "x-claude-code-agent-id" in r.headers
    }
    (agent_id,) = agent_ids
    report = proxied.completeness(session_id)
    (subagent,) = report["subagents"]
    assert subagent["agentId"] == agent_id
    assert {c["toolUseId"] for c in subagent["toolCalls"]} == {c.id for c in inner}
    invocations = {e["toolUseId"]: e for e in events if e["eventType"] == "tool_invocation"}
    gaps = {a["details"]["toolUseId"]: a for a in proxied.alerts("hook_gap", session_id)}
    for call in inner:
        # Each call is captured with its agentId: by its hook when Claude Code fires one for
        # subagents, otherwise by the proxy as a hook_gap naming the subagent.
        if call.id in invocations:
            assert invocations[call.id]["agentId"] == agent_id
            assert invocations[call.id]["agentType"] == "general-purpose"
        else:
            assert gaps[call.id]["details"]["agentId"] == agent_id
    assert invocations[spawn.id]["tool"] == "Agent"
    names = {e.get("name") for e in events if e["eventType"] == "agent_event"}
    assert {"SubagentStart", "SubagentStop"} <= names
    shown = proxied.gateway.cli("sessions", "show", session_id)
    assert f"{agent_id} (general-purpose)" in shown.stdout


def test_an_mcp_tool_call_through_a_real_stdio_server_is_captured_classified_and_decided(
    claude_binary, tmp_path
):
    policies = tmp_path / "policies"
    shutil.copytree(Path(trailguard.policy.__file__).parent / "default", policies)
    (policies / "90-tickets.cedar").write_text(
        '@id("no-deleting-tickets")\n@reason("tickets are deleted by people")\n'
        'forbid (principal, action == Action::"mcp:tickets.delete_ticket", resource);\n'
    )
    rig = Proxied(tmp_path, ("--policy", str(policies)))
    try:
        install_hooks(rig.workspace, rig.gateway, "http")
        config = tmp_path / "mcp.json"
        config.write_text(
            json.dumps(
                {"mcpServers": {"tickets": {"command": sys.executable,
                                            "args": [str(MCP_SERVER)]}}}
            )
        )  # fmt: skip
        lookup = ToolCall("mcp__tickets__lookup_ticket", {"ticket_id": "T-42"})
        delete = ToolCall("mcp__tickets__delete_ticket", {"ticket_id": "T-42"})
        result = rig.run(
            claude_binary,
            [Turn(tool_calls=[lookup]), Turn(tool_calls=[delete]), Turn(text="ok")],
            args=["--mcp-config", str(config), "--strict-mcp-config"],
        )
        assert result.returncode == 0, result.describe()
        assert "login page times out" in rig.model.tool_result_for(lookup.id).content
        refusal = rig.model.tool_result_for(delete.id)
        assert refusal.is_error
        assert "ticket T-42 deleted" not in refusal.content
        assert "no-deleting-tickets" in refusal.content
        settle()
        events = rig.gateway.session_events(result.session_id)
        invocations = {e["toolUseId"]: e for e in events if e["eventType"] == "tool_invocation"}
        assert invocations[lookup.id]["policyResult"] == "allowed"
        assert invocations[lookup.id]["input"] == {"ticket_id": "T-42"}
        actions = [op["action"] for op in invocations[lookup.id]["operations"]]
        assert actions == ["mcp:tickets.lookup_ticket"]
        assert invocations[delete.id]["policyResult"] == "denied"
        assert invocations[delete.id]["policyRule"] == "no-deleting-tickets"
        results = {e["toolUseId"]: e for e in events if e["eventType"] == "tool_result"}
        assert "login page times out" in json.dumps(results[lookup.id]["output"])
        report = rig.completeness(result.session_id)
        assert report["complete"] is True, report
        assert report["seenBySource"]["proxy"] == 2
    finally:
        rig.stop()


def test_a_person_disabling_hooks_mid_session_is_caught_at_once_or_by_the_next_session(
    claude_binary, proxied
):
    install_hooks(proxied.workspace, proxied.gateway, "http")
    local = proxied.workspace.project / ".claude" / "settings.local.json"

    def disable() -> None:
        local.write_text('{"disableAllHooks": true}\n')
        time.sleep(2)  # Claude Code notices settings changes with a file watcher

    script = [
        Turn(tool_calls=[bash("echo before")]),
        Turn(tool_calls=[bash("echo after-the-change")], before=disable),
        Turn(text="ok"),
    ]
    result = proxied.run(claude_binary, script)
    assert result.returncode == 0, result.describe()
    session_id = result.session_id
    changes = [
        e for e in proxied.gateway.session_events(session_id) if e.get("name") == "ConfigChange"
    ]
    if changes:  # Claude Code reported the change: hooks_disabled names the file
        (alert,) = proxied.wait_alerts("hooks_disabled", session_id)
        assert f"disableAllHooks is set in {local}" in alert["message"]
    # Claude Code 2.1.328 applies disableAllHooks at once (emptied hook lists wait for the next
    # session): the call after the change ran without a hook, and the proxy shows it.
    settle()
    after = script[1].tool_calls[0]
    report = proxied.completeness(session_id)
    recorded = {
        e["toolUseId"]
        for e in proxied.gateway.session_events(session_id)
        if e["eventType"] == "tool_invocation"
    }
    if after.id not in recorded:
        assert [g["toolUseId"] for g in report["gaps"]] == [after.id]
        (gap,) = proxied.wait_alerts("hook_gap", session_id)
        assert gap["details"]["input"]["command"] == "echo after-the-change"
    else:
        assert report["complete"] is True
    # The next session, which starts without hooks, is flagged.
    nxt = proxied.run(claude_binary, [Turn(tool_calls=[bash("echo unseen")]), Turn(text="ok")])
    assert proxied.wait_alerts("unaudited_session", nxt.session_id)
    assert proxied.wait_alerts("hook_gap", nxt.session_id)
