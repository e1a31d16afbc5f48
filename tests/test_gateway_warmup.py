"""The gateway warms the hook path at start-up: the first tool call of a session loads nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from trailguard.gateway.warmup import SAMPLE_TOOL_CALLS, warm_up
from trailguard.policy.store import PolicyStore
from trailguard.redact import Redactor

PROBE = r"""
import json, sys, uuid
from pathlib import Path
from fastapi.testclient import TestClient
from trailguard.gateway.app import create_app
from trailguard.ledger.writer import Ledger
from trailguard.store.gateway_state import GatewayState

data_dir = Path(sys.argv[1])
ledger = Ledger.open(data_dir)
state = GatewayState(data_dir)
token, _ = state.create_token("dev_first", "agent")
state.close()
session = str(uuid.uuid4())
headers = {"Authorization": f"Bearer {token}"}
with TestClient(create_app(ledger)) as client:
    started = client.post("/hooks/claude-code", headers=headers, json={
        "session_id": session, "cwd": "/tmp", "hook_event_name": "SessionStart",
        "source": "startup"})
    before = set(sys.modules)
    answer = client.post("/hooks/claude-code", headers=headers, json={
        "session_id": session, "cwd": "/tmp", "hook_event_name": "PreToolUse",
        "tool_name": "Bash", "tool_use_id": "toolu_first",
        "tool_input": {"command": "git status && psql -c 'select 1' && aws s3 ls s3://b"}})
    loaded = sorted(set(sys.modules) - before)
print(json.dumps({"status": [started.status_code, answer.status_code], "loaded": loaded}))
"""


def test_the_first_pre_tool_use_after_start_loads_no_module(tmp_path: Path) -> None:
    """Before the warm-up, this call imported the classifiers, sqlglot and tree-sitter's
    parser (0.7-4.8 s on the 2-core machine): the lifespan now does it before serving."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "ledger")],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == [200, 200]
    assert result["loaded"] == []


def test_warm_up_covers_every_sample_without_failing(caplog) -> None:  # type: ignore[no-untyped-def]
    policies = PolicyStore(None)
    assert warm_up(policies, Redactor(b"k" * 32)) > 0
    assert not [r for r in caplog.records if "warm-up failed" in r.getMessage()]
    tools = {tool for tool, _ in SAMPLE_TOOL_CALLS}
    assert {"Bash", "Write", "Edit", "Read", "WebFetch"} <= tools
    assert any(tool.startswith("mcp__") for tool in tools)
