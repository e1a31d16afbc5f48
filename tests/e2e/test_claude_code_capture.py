"""The real Claude Code CLI (2.1.328) through a real trailguard gateway, in both install modes.

A scripted model server stands in for Anthropic's API; everything else is real: the CLI, its
hooks, `trailguard hook`, `trailguard serve`, the SQLite ledger, and the outages.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from .claude import run_claude
from .conftest import TRAILGUARD, GatewayProcess, Workspace, install_hooks
from .model_server import ModelServer, ToolCall, Turn

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
BYPASS = ["--permission-mode", "bypassPermissions"]


def bash(command: str) -> ToolCall:
    return ToolCall("Bash", {"command": command, "description": "run a command"})


def run_session(claude_binary, workspace: Workspace, gateway: GatewayProcess, script, prompt="go"):
    with ModelServer(script) as model:
        result = run_claude(
            claude_binary,
            home=workspace.home,
            project=workspace.project,
            prompt=prompt,
            model_url=model.url,
            env_extra=workspace.env(gateway),
            args=BYPASS,
            timeout=180,
        )
        return result, model


def by_type(events: list[dict], event_type: str) -> list[dict]:
    return [e for e in events if e["eventType"] == event_type]


@pytest.mark.parametrize("mode", ["http", "command"])
def test_every_tool_call_is_recorded_with_its_result_in_both_modes(
    claude_binary, workspace, gateway, mode
):
    settings = install_hooks(workspace, gateway, mode)
    hook_types = {h["type"] for group in settings["hooks"]["PreToolUse"] for h in group["hooks"]}
    assert hook_types == {mode}
    (workspace.project / "notes.txt").write_text("alpha\n")
    write, edit = (
        ToolCall("Write", {"file_path": str(workspace.project / "new.txt"), "content": "hello\n"}),
        ToolCall(
            "Edit",
            {
                "file_path": str(workspace.project / "notes.txt"),
                "old_string": "alpha",
                "new_string": "beta",
            },
        ),
    )
    read = ToolCall("Read", {"file_path": str(workspace.project / "notes.txt")})
    failing = bash("ls /definitely/not/here")
    script = [
        Turn(tool_calls=[bash("echo hello-e2e")]),
        Turn(tool_calls=[write, edit]),  # two tools in one turn
        Turn(tool_calls=[read]),
        Turn(tool_calls=[failing]),
        Turn(text="All done."),
    ]
    result, _model = run_session(claude_binary, workspace, gateway, script)
    assert result.returncode == 0, result.describe()
    assert (workspace.project / "new.txt").read_text() == "hello\n"
    assert (workspace.project / "notes.txt").read_text() == "beta\n"

    session_id = result.session_id
    events = gateway.session_events(session_id)
    (start,) = by_type(events, "session_start")
    assert start["developerId"] == "dev_e2e"  # from the token
    assert start["projectId"] == "example.invalid/acme/backend"  # from the git remote
    assert "fake-remote-token" not in str(gateway.events())
    assert by_type(events, "prompt")[0]["prompt"] == "go"

    expected = {call.id: call.name for turn in script for call in turn.tool_calls}
    invocations = {e["toolUseId"]: e for e in by_type(events, "tool_invocation")}
    results = {e["toolUseId"]: e for e in by_type(events, "tool_result")}
    assert {k: v["tool"] for k, v in invocations.items()} == expected
    assert set(results) == set(expected)
    assert all(v["policyResult"] == "allowed" for v in invocations.values())
    assert all(v["policyVersion"].startswith("sha256:") for v in invocations.values())
    assert invocations[script[0].tool_calls[0].id]["input"]["command"] == "echo hello-e2e"
    assert "hello-e2e" in str(results[script[0].tool_calls[0].id]["output"])
    assert results[failing.id]["status"] == "error"
    assert results[read.id]["status"] == "success"

    # Committed before the tool ran: each invocation precedes its result in the ledger.
    assert all(invocations[k]["seq"] < results[k]["seq"] for k in expected)
    shown = gateway.cli("sessions", "show", session_id)
    assert "complete: all 5 tool calls" in shown.stdout, shown.stdout
    gateway.stop()
    verified = gateway.cli("verify")
    assert verified.returncode == 0, verified.stdout


@pytest.mark.parametrize("mode", ["http", "command"])
def test_no_tool_runs_while_the_gateway_is_down(claude_binary, workspace, gateway, tmp_path, mode):
    install_hooks(workspace, gateway, mode)
    gateway.stop()
    marker = tmp_path / "ran"
    script = [Turn(tool_calls=[bash(f"touch {marker}")]), Turn(text="Stopped.")]
    result, model = run_session(claude_binary, workspace, gateway, script)
    assert not marker.exists(), "a tool ran while the audit gateway was down"
    assert result.json is not None, result.describe()  # Claude Code ran and answered
    if mode == "http":
        # The blocking HTTP hook stops the prompt itself: the model is never asked, so no
        # tool can even be requested.
        assert "UserPromptSubmit operation blocked by hook" in result.json["result"]
        assert "onFailure" in result.json["result"]
        assert model.tool_results() == []
        return
    # The command client lets the prompt through (spooled) and refuses the tool call itself:
    # the model got an error result for exactly that call.
    (denied,) = model.tool_results()
    assert denied.tool_use_id == script[0].tool_calls[0].id
    assert denied.is_error
    assert "audit gateway" in denied.content
    assert list(workspace.spool.glob("*.json")), "events during the outage were not spooled"


def test_a_gateway_lost_mid_session_refuses_the_next_tool_call_over_http(
    claude_binary, workspace, gateway, tmp_path
):
    install_hooks(workspace, gateway, "http")
    marker = tmp_path / "ran"
    script = [
        Turn(tool_calls=[bash("echo before")]),
        Turn(tool_calls=[bash(f"touch {marker}")], before=gateway.stop),
        Turn(text="Stopped."),
    ]
    result, model = run_session(claude_binary, workspace, gateway, script)
    assert not marker.exists(), "a tool ran while the audit gateway was down"
    refused = model.tool_result_for(script[1].tool_calls[0].id)
    assert refused is not None, result.describe()
    assert refused.is_error
    assert "before" in (model.tool_result_for(script[0].tool_calls[0].id) or refused).content


def test_outage_mid_session_is_spooled_and_replayed_exactly_once(
    claude_binary, workspace, gateway, tmp_path
):
    install_hooks(workspace, gateway, "command")
    blocked = tmp_path / "blocked"
    script = [
        Turn(tool_calls=[bash("echo before-outage")]),
        Turn(tool_calls=[bash(f"touch {blocked}")], before=gateway.stop),
        Turn(tool_calls=[bash("echo after-restart")], before=gateway.start),
        Turn(text="Done."),
    ]
    result, model = run_session(claude_binary, workspace, gateway, script)
    assert result.returncode == 0, result.describe()
    assert not blocked.exists()
    assert "after-restart" in model.tool_result_for(script[2].tool_calls[0].id).content
    assert not list(workspace.spool.glob("*.json")), "spooled events were not all replayed"

    events = gateway.session_events(result.session_id)
    ids = [e["eventId"] for e in events]
    assert len(ids) == len(set(ids))
    spooled = [e for e in events if e.get("source") == "spool"]
    assert spooled, "nothing from the outage reached the ledger"
    outage_call = script[1].tool_calls[0].id
    assert any(e.get("toolUseId") == outage_call for e in spooled)
    names = [e.get("name") or e["eventType"] for e in events]
    assert "session_end" in names
    gateway.stop()
    assert gateway.cli("verify").returncode == 0


def test_killed_session_is_stopped_and_its_next_tool_never_runs(
    claude_binary, workspace, gateway, tmp_path
):
    install_hooks(workspace, gateway, "http")
    after_kill = tmp_path / "after-kill"
    session: dict[str, str] = {}

    def kill() -> None:
        session_id = next(
            e["sessionId"] for e in gateway.events() if e["eventType"] == "session_start"
        )
        session["id"] = session_id
        assert gateway.cli("sessions", "kill", session_id, "--reason", "e2e").returncode == 0
        for _ in range(100):
            if any(e["eventType"] == "session_end" for e in gateway.session_events(session_id)):
                return
            time.sleep(0.05)

    script = [
        Turn(tool_calls=[bash("echo first")]),
        Turn(tool_calls=[bash(f"touch {after_kill}")], before=kill),
        Turn(text="should not get here"),
    ]
    run_session(claude_binary, workspace, gateway, script)
    assert not after_kill.exists()
    events = gateway.session_events(session["id"])
    (end,) = by_type(events, "session_end")
    assert end["reason"] == "killed"
    denied = [e for e in by_type(events, "tool_invocation") if e["policyResult"] == "denied"]
    assert denied
    assert denied[0]["policyRule"] == "session-killed"


def test_session_id_reaches_bash_commands_for_correlation(claude_binary, workspace, gateway):
    install_hooks(workspace, gateway, "http")
    call = bash('echo "tg=$TRAILGUARD_SESSION_ID aws=$AWS_SDK_UA_APP_ID"')
    result, model = run_session(claude_binary, workspace, gateway, [Turn(tool_calls=[call])])
    assert result.returncode == 0, result.describe()
    output = model.tool_result_for(call.id).content
    assert f"tg={result.session_id}" in output
    assert f"aws=trailguard-{result.session_id}" in output


def test_install_then_uninstall_leaves_the_users_settings(workspace, gateway):
    settings_file = workspace.project / ".claude" / "settings.json"
    settings_file.parent.mkdir()
    settings_file.write_text('{"permissions": {"deny": ["Read(.env)"]}, "model": "opus"}\n')
    install_hooks(workspace, gateway, "http")
    install_hooks(workspace, gateway, "http")
    removed = subprocess.run(
        [str(TRAILGUARD), "install", "--project", str(workspace.project), "--uninstall"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert removed.returncode == 0, removed.stderr
    assert json.loads(settings_file.read_text()) == {
        "permissions": {"deny": ["Read(.env)"]},
        "model": "opus",
    }


def test_forbidden_command_is_denied_never_runs_and_the_denial_is_recorded_with_its_rule(
    claude_binary, workspace, gateway, tmp_path
):
    install_hooks(workspace, gateway, "http")
    marker = tmp_path / "ran"
    forbidden = bash(f"curl -s file:///dev/null | sh && touch {marker}")
    allowed = bash("echo still-allowed")
    script = [Turn(tool_calls=[forbidden]), Turn(tool_calls=[allowed]), Turn(text="ok")]
    result, model = run_session(claude_binary, workspace, gateway, script)
    assert result.returncode == 0, result.describe()
    assert not marker.exists(), "a forbidden command ran"
    refusal = model.tool_result_for(forbidden.id)
    assert refusal.is_error
    assert "no-download-to-shell" in refusal.content
    assert "still-allowed" in model.tool_result_for(allowed.id).content

    events = gateway.session_events(result.session_id)
    denied = next(e for e in by_type(events, "tool_invocation") if e["toolUseId"] == forbidden.id)
    assert denied["policyResult"] == "denied"
    assert denied["policyRule"] == "no-download-to-shell"
    assert any(op["action"] == "shell:ExecuteDownloaded" for op in denied["operations"])
    linked = [e for e in by_type(events, "infra_operation") if e["toolUseId"] == forbidden.id]
    assert {e["operation"]["action"] for e in linked} >= {"shell:ExecuteDownloaded"}
    shown = gateway.cli("sessions", "show", result.session_id)
    assert "complete" in shown.stdout
