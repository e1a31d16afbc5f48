"""Policy tooling from the command line: classify, policy test / check / replay."""

from __future__ import annotations

import json
import time
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from trailguard.cli import app
from trailguard.gateway.app import create_app
from trailguard.ledger.writer import Ledger
from trailguard.store.gateway_state import GatewayState

runner = CliRunner()


def run_json(*args: str) -> object:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_classify_prints_the_operations():
    operations = run_json(
        "classify",
        "--tool",
        "Bash",
        "--input",
        json.dumps({"command": "aws --profile prod s3 rm s3://logs/app --recursive"}),
    )
    assert isinstance(operations, list)
    (operation,) = operations
    assert operation["action"] == "s3:DeleteObject"
    assert operation["attributes"]["profile"] == "prod"
    assert "recursive" in operation["flags"]


def test_policy_test_prints_decision_rule_and_reason():
    decision = run_json(
        "policy", "test", "--tool", "Bash", "--input", '{"command": "git push -f origin main"}'
    )
    assert isinstance(decision, dict)
    assert decision["decision"] == "denied"
    assert decision["rule"] == "no-force-push-to-main"
    assert decision["policyVersion"].startswith("sha256:")
    allowed = run_json("policy", "test", "--tool", "Bash", "--input", '{"command": "ls"}')
    assert isinstance(allowed, dict)
    assert allowed["decision"] == "allowed"


def test_policy_test_with_bad_input_is_a_usage_error():
    result = runner.invoke(app, ["policy", "test", "--tool", "Bash", "--input", "{oops"])
    assert result.exit_code == 2
    assert "--input is not JSON" in result.output


def test_policy_check_validates_and_names_the_broken_file(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "a.cedar").write_text('@id("a") permit (principal, action, resource);')
    ok = runner.invoke(app, ["policy", "check", str(good)])
    assert ok.exit_code == 0
    assert "ok: 1 rules" in ok.stdout
    (good / "b.cedar").write_text("forbid (principal, action, resource) when {")
    broken = runner.invoke(app, ["policy", "check", str(good)])
    assert broken.exit_code == 1
    assert "b.cedar" in broken.stdout


def test_policy_replay_lists_the_decisions_another_policy_would_change(tmp_path: Path):
    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir)
    state = GatewayState(data_dir)
    token, _ = state.create_token("dev_jordan", "agent")
    state.close()
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(ledger)) as client:
        for n, command in enumerate(["ls", "git push origin main", "psql -c 'SELECT 1'"]):
            client.post(
                "/hooks/claude-code",
                json={
                    "session_id": "s",
                    "hook_event_name": "PreToolUse",
                    "tool_name": "Bash",
                    "tool_input": {"command": command},
                    "tool_use_id": f"t{n}",
                },
                headers=headers,
            )
            time.sleep(0.01)
    stricter = tmp_path / "stricter"
    stricter.mkdir()
    (stricter / "a.cedar").write_text(
        '@id("allow") permit (principal, action, resource);\n'
        '@id("no-push") forbid (principal, action == Action::"git:Push", resource);'
    )
    report = run_json(
        "policy",
        "replay",
        "--policy",
        str(stricter),
        "--data-dir",
        str(data_dir),
        "--format",
        "json",
    )
    assert isinstance(report, dict)
    assert report["examined"] == 3
    (change,) = report["changes"]
    assert change["toolUseId"] == "t1"
    assert (change["was"], change["wouldBe"], change["wouldBeRule"]) == (
        "allowed",
        "denied",
        "no-push",
    )
