"""An incident in a real gateway (in process, real classification, Cedar decisions, redaction
and ledger): two developers' sessions interleaved, a denied force-push and a denied prod delete,
an allowed write to S3, a subagent's tool call, an alert, a long output, and hostile text in a
tool input. Shared by the report, bundle and API tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi.testclient import TestClient

from trailguard.events import Alert
from trailguard.gateway.app import create_app
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.gateway_state import GatewayState

SESSION_A = "ae1e1885-0000-4000-8000-00000000000a"
SESSION_B = "b71c0de5-0000-4000-8000-00000000000b"
UNRELATED = "c0ffee00-0000-4000-8000-00000000000c"
XSS = (
    'echo \'<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
    '</pre></td></tr></table><a href="https://evil.example/x">click</a>'
    "<style>body{background:url(https://evil.example/beacon.png)}</style>'"
    " ![t](https://evil.example/track.png) [l](https://evil.example) `x` | \x1b[2J \u202e"
)
LONG_OUTPUT = "".join(f"line {n:05d} of the build log\n" for n in range(1500))


@dataclass
class Incident:
    data_dir: Path
    auditor_token: str
    admin_token: str
    tool_use_ids: dict[str, str] = field(default_factory=dict)


def _post(client: TestClient, token: str, payload: dict) -> dict:
    response = client.post(
        "/hooks/claude-code", json=payload, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def record_incident(data_dir: Path) -> Incident:
    """Record the incident and stop the gateway (gateway_stop and a final checkpoint)."""
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=20))
    state = GatewayState(data_dir)
    jordan, _ = state.create_token("dev_jordan", "agent")
    ana, _ = state.create_token("dev_ana", "agent")
    auditor, _ = state.create_token("aud_sam", "auditor")
    admin, _ = state.create_token("adm_kim", "admin")
    state.close()
    incident = Incident(data_dir, auditor, admin)
    app = create_app(ledger, idle_timeout=3600)
    with TestClient(app) as client:
        steps: list[tuple[str, str, dict]] = []

        def hook(session: str, token: str, name: str, **fields: object) -> None:
            steps.append((session, token, {"session_id": session, "hook_event_name": name,
                                           **fields}))  # fmt: skip

        def bash(session: str, token: str, key: str, command: str, output: str | None,
                 **extra: object) -> None:  # fmt: skip
            tool_use_id = f"toolu_{key}"
            incident.tool_use_ids[key] = tool_use_id
            hook(session, token, "PreToolUse", tool_name="Bash", tool_use_id=tool_use_id,
                 tool_input={"command": command, "description": key}, **extra)  # fmt: skip
            if output is not None:
                hook(session, token, "PostToolUse", tool_name="Bash", tool_use_id=tool_use_id,
                     tool_input={"command": command},
                     tool_response={"stdout": output, "stderr": ""}, duration_ms=30,
                     **extra)  # fmt: skip

        for session, token in ((SESSION_A, jordan), (SESSION_B, ana)):
            hook(session, token, "SessionStart", source="startup", permission_mode="acceptEdits")
            hook(session, token, "UserPromptSubmit", prompt="tidy up the prod logs bucket")
        hook(UNRELATED, jordan, "SessionStart", source="startup")
        bash(SESSION_A, jordan, "a_rm", "aws --profile prod s3 rm s3://logs --recursive", None)
        bash(SESSION_B, ana, "b_cp", "aws s3 cp config.json s3://prod-config/app/config.json",
             "upload: ./config.json to s3://prod-config/app/config.json")  # fmt: skip
        bash(UNRELATED, jordan, "u_ls", "ls", "a\nb\n")
        bash(SESSION_A, jordan, "a_push", "git push --force origin main", None)
        bash(SESSION_B, ana, "b_xss", XSS, "done")
        hook(SESSION_B, ana, "SubagentStart", agent_id="agent_7", agent_type="Explore")
        bash(SESSION_B, ana, "b_sub", "grep -r TODO src", "src/a.py: TODO", agent_id="agent_7")
        bash(SESSION_A, jordan, "a_log", "cat build.log", LONG_OUTPUT)
        for session, token in ((SESSION_A, jordan), (SESSION_B, ana)):
            hook(session, token, "SessionEnd", reason="prompt_input_exit")
        for _session, token, payload in steps[:-2]:
            _post(client, token, payload)
        app.state.gateway.ledger.append(
            Alert(
                alert_type="loop_suspected",
                severity="medium",
                message="the same failing call was retried 3 times",
                session_id=SESSION_A,
                developer_id="dev_jordan",
                source="gateway",
            )
        )
        for _session, token, payload in steps[-2:]:
            _post(client, token, payload)
    return incident
