"""Incident export over sessions of the real Claude Code CLI (2.1.328) through a real gateway:
the report's timeline holds every event of both sessions in time order with the denial and its
rule, and the evidence bundle verifies offline once the data directory is gone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import pytest

from .conftest import TRAILGUARD, install_hooks
from .model_server import ToolCall, Turn
from .test_claude_code_capture import bash, run_session

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_two_real_sessions_report_in_time_order_and_their_bundle_verifies_offline(
    claude_binary, workspace, gateway, tmp_path
):
    install_hooks(workspace, gateway, "http")
    first, _ = run_session(
        claude_binary, workspace, gateway,
        [Turn(tool_calls=[bash("echo incident-one")]),
         Turn(tool_calls=[bash("git push --force origin main")]),
         Turn(text="Done.")],
    )  # fmt: skip
    assert first.returncode == 0, first.describe()
    written = ToolCall("Write", {"file_path": str(workspace.project / "n.txt"), "content": "x\n"})
    second, _ = run_session(
        claude_binary, workspace, gateway,
        [Turn(tool_calls=[written]), Turn(tool_calls=[bash("echo incident-two")]),
         Turn(text="Done.")],
    )  # fmt: skip
    assert second.returncode == 0, second.describe()
    sessions = [first.session_id, second.session_id]
    assert all(sessions)
    key = (gateway.data_dir / "signing.pub").read_text().strip()
    kept = tmp_path / "kept.checkpoint"
    kept.write_text(gateway.cli("checkpoint").stdout)

    report = gateway.cli("report", "--format", "json", *(f"--session={s}" for s in sessions))
    assert report.returncode == 0, report.stderr
    document = json.loads(report.stdout)
    expected = [e for e in gateway.events() if e.get("sessionId") in sessions]
    expected.sort(key=lambda e: (e["timestamp"], e["seq"]))
    assert document["timeline"] == expected
    denied = [e for e in document["timeline"] if e.get("policyResult") == "denied"]
    assert [(e["tool"], e["policyRule"]) for e in denied] == [("Bash", "no-force-push-to-main")]
    assert document["header"]["verification"]["result"] == "verified"
    assert [s["sessionId"] for s in document["sessions"]] == sessions
    html = gateway.cli("report", "--format", "html", f"--session={sessions[0]}")
    assert "no-force-push-to-main" in html.stdout

    bundle = tmp_path / "evidence" / "incident.zip"
    bundle.parent.mkdir()
    exported = gateway.cli("evidence", "export", "-o", str(bundle), "--from-checkpoint",
                           str(kept), *(f"--session={s}" for s in sessions))  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    gateway.stop()
    shutil.rmtree(gateway.data_dir)
    checked = subprocess.run(
        [str(TRAILGUARD), "evidence", "verify", str(bundle), "--key", key,
         "--trusted-checkpoint", str(kept)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "VALID" in checked.stdout
    script = tmp_path / "verify_bundle.py"
    with zipfile.ZipFile(bundle) as archive:
        script.write_bytes(archive.read("verify_bundle.py"))
    independent = subprocess.run(
        [sys.executable, "-I", "-S", str(script), str(bundle), "--key", key,
         "--trusted-checkpoint", str(kept)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert independent.returncode == 0, independent.stdout + independent.stderr
