"""Cost with the real Claude Code CLI: trailguard's totals against Claude Code's own
``total_cost_usd``, through the API proxy, telemetry alone and the transcript alone; budgets."""

from __future__ import annotations

import json
import time

import pytest

from .claude import run_claude
from .conftest import GatewayProcess, Workspace, install_hooks
from .model_server import ModelServer, ToolCall, Turn, Usage

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
BYPASS = ["--permission-mode", "bypassPermissions"]


def bash(command: str) -> ToolCall:
    return ToolCall("Bash", {"command": command, "description": "run"})


def varied_script() -> list[Turn]:
    """Turns with different usage, cache writes and reads, one with two tool calls."""
    return [
        Turn(
            tool_calls=[bash("echo one")],
            usage=Usage(input_tokens=3900, output_tokens=240, cache_creation_input_tokens=2000),
        ),
        Turn(
            tool_calls=[bash("echo two"), bash("echo three")],
            usage=Usage(input_tokens=150, output_tokens=310, cache_read_input_tokens=5900),
        ),
        Turn(
            tool_calls=[bash("echo four")],
            usage=Usage(
                input_tokens=90,
                output_tokens=120,
                cache_creation_input_tokens=400,
                cache_read_input_tokens=6100,
            ),
        ),
        Turn(
            text="All done.",
            usage=Usage(input_tokens=60, output_tokens=45, cache_read_input_tokens=6500),
        ),
    ]


def cost_report(gateway: GatewayProcess, session_id: str) -> dict:
    for _ in range(100):  # telemetry and transcripts arrive a little after the answer
        result = gateway.cli("cost", "--session", session_id, "--format", "json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        if report["requests"] >= 4:
            return report
        time.sleep(0.1)
    return report


@pytest.fixture
def proxied_gateway(tmp_path):
    model = ModelServer(varied_script()).start()
    gateway = GatewayProcess(tmp_path / "ledger", extra_args=("--anthropic-upstream", model.url))
    gateway.data_dir.mkdir(parents=True)
    gateway.start()
    yield gateway, model
    gateway.stop()
    model.stop()


def run_through_the_proxy(
    claude_binary, tmp_path, gateway: GatewayProcess, developer: str, mode: str, *, telemetry=False
):
    """Claude Code with its model requests through the gateway's API proxy, hooks of ``mode``
    installed (and telemetry sent, if asked); the run, succeeded."""
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    made = gateway.cli("token", "create", "--developer", developer)
    workspace = Workspace(home, project, tmp_path / "spool", made.stdout.strip().splitlines()[-1])
    install_hooks(workspace, gateway, mode)
    extra = telemetry_env(gateway, workspace.token) if telemetry else {}
    result = run_claude(
        claude_binary,
        home=home,
        project=project,
        prompt="go",
        model_url=f"{gateway.url}/anthropic",
        env_extra=workspace.proxy_env(gateway) | extra,
        args=BYPASS,
    )
    assert result.returncode == 0, result.describe()
    return result


def test_session_total_through_the_proxy_matches_claude_codes_own_figure(
    claude_binary, tmp_path, proxied_gateway
):
    gateway, _model = proxied_gateway
    result = run_through_the_proxy(claude_binary, tmp_path, gateway, "dev_cost", "http")
    claude_total = result.total_cost_usd
    assert claude_total
    assert claude_total > 0
    report = cost_report(gateway, result.session_id)
    assert report["requests"] == 4
    assert report["totalUsd"] == pytest.approx(claude_total, rel=0.005)
    per_call = sum(entry["usd"] for entry in report["perToolCall"])
    assert per_call + report["overheadUsd"] == pytest.approx(report["totalUsd"], abs=1e-6)
    assert len(report["perToolCall"]) == 4  # every tool call got its share
    assert all(entry["tool"] == "Bash" for entry in report["perToolCall"])
    raw = b"".join(p.read_bytes() for p in gateway.data_dir.glob("ledger.sqlite3*"))
    assert b"sk-ant-test" not in raw  # the API key passed through, never stored


def telemetry_env(gateway: GatewayProcess, token: str) -> dict[str, str]:
    return {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        "OTEL_EXPORTER_OTLP_ENDPOINT": gateway.url,
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer {token}",
        "OTEL_LOGS_EXPORT_INTERVAL": "300",
        "OTEL_BLRP_SCHEDULE_DELAY": "300",
    }


@pytest.mark.parametrize(
    ("sources", "mode", "telemetry"),
    [
        ({"otlp"}, "http", True),  # telemetry alone (http hooks do not read the transcript)
        ({"transcript"}, "command", False),  # the transcript alone
        ({"otlp", "transcript"}, "command", True),  # both: still one count per request
    ],
)
def test_telemetry_and_transcript_each_give_claude_codes_total_and_never_double_count(
    claude_binary, workspace, gateway, sources, mode, telemetry
):
    install_hooks(workspace, gateway, mode)
    extra = telemetry_env(gateway, workspace.token) if telemetry else {}
    with ModelServer(varied_script()) as model:
        result = run_claude(
            claude_binary,
            home=workspace.home,
            project=workspace.project,
            prompt="go",
            model_url=model.url,
            env_extra=workspace.env(gateway) | extra,
            args=BYPASS,
        )
    assert result.returncode == 0, result.describe()
    report = cost_report(gateway, result.session_id)
    assert report["requests"] == 4, report
    assert report["totalUsd"] == pytest.approx(result.total_cost_usd, rel=0.005)
    seen = {
        e["source"] for e in gateway.session_events(result.session_id) if e["eventType"] == "cost"
    }
    assert seen <= sources
    assert seen
    if telemetry:  # the agent's own tool decisions are kept beside the hooks' record
        names = {e.get("name") for e in gateway.session_events(result.session_id)}
        assert "telemetry.tool_decision" in names or "telemetry.tool_result" in names


def test_an_honest_session_reporting_by_every_source_matches_the_proxy_and_raises_no_mismatch(
    claude_binary, tmp_path, proxied_gateway
):
    """Proxy, telemetry and the transcript (command hooks) all report each request: the
    proxy records it first, so its figure is the one charged, once, and the honest claims that
    follow raise no mismatch."""
    gateway, _model = proxied_gateway
    result = run_through_the_proxy(
        claude_binary, tmp_path, gateway, "dev_every_source", "command", telemetry=True
    )
    report = cost_report(gateway, result.session_id)
    assert report["requests"] == 4, report
    assert report["totalUsd"] == pytest.approx(result.total_cost_usd, rel=0.005)
    time.sleep(1.0)  # the last telemetry batch and transcript read land after the answer
    events = gateway.session_events(result.session_id)
    assert [e for e in events if e.get("alertType") == "usage_claim_mismatch"] == []
    assert {e["source"] for e in events if e["eventType"] == "cost"} == {"proxy"}
    sources = {e.get("source") for e in events}
    assert {"transcript", "otlp"} <= sources, sources  # the claims did arrive


def test_a_looping_session_raises_an_alert(claude_binary, workspace, gateway):
    install_hooks(workspace, gateway, "http")
    same = [Turn(tool_calls=[bash("git status")]) for _ in range(9)] + [Turn(text="stuck")]
    with ModelServer(same) as model:
        result = run_claude(
            claude_binary,
            home=workspace.home,
            project=workspace.project,
            prompt="go",
            model_url=model.url,
            env_extra=workspace.env(gateway),
            args=BYPASS,
        )
    assert result.returncode == 0, result.describe()
    alerts = [
        e
        for e in gateway.session_events(result.session_id)
        if e["eventType"] == "alert" and e["alertType"] == "repeated_tool_call"
    ]
    assert len(alerts) == 1
    assert "Bash" in alerts[0]["message"]


def test_exhausted_budget_denies_tools_ends_the_session_and_refuses_model_requests(
    claude_binary, tmp_path
):
    script = [
        Turn(
            tool_calls=[bash("echo spend")], usage=Usage(input_tokens=200_000, output_tokens=2000)
        ),
        Turn(
            tool_calls=[bash(f"touch {tmp_path / 'after-budget'}")],
            usage=Usage(input_tokens=200_000, output_tokens=2000),
        ),
        Turn(text="done"),
    ]
    model = ModelServer(script).start()
    gateway = GatewayProcess(
        tmp_path / "ledger",
        extra_args=("--anthropic-upstream", model.url, "--budget-session-usd", "1.0"),
    )
    gateway.data_dir.mkdir(parents=True)
    gateway.start()
    try:
        home, project = tmp_path / "home", tmp_path / "project"
        home.mkdir()
        project.mkdir()
        made = gateway.cli("token", "create", "--developer", "dev_budget")
        workspace = Workspace(
            home, project, tmp_path / "spool", made.stdout.strip().splitlines()[-1]
        )
        install_hooks(workspace, gateway, "http")
        result = run_claude(
            claude_binary,
            home=home,
            project=project,
            prompt="go",
            model_url=f"{gateway.url}/anthropic",
            env_extra=workspace.proxy_env(gateway),
            args=BYPASS,
        )
        assert not (tmp_path / "after-budget").exists(), "a tool ran after the budget was spent"
        events = gateway.events()
        thresholds = [e["percent"] for e in events if e["eventType"] == "budget_threshold"]
        assert thresholds[:3] == [50, 80, 100]
        ends = [e for e in events if e["eventType"] == "session_end"]
        assert ends
        assert ends[0]["reason"] == "budget_exhausted"
        denied = [e for e in events if e.get("policyRule") == "budget-exhausted"]
        assert denied, "the next tool call was not denied for the budget"
        # The response that crossed the budget was counted before it reached Claude Code, so
        # its tool call was denied (and the session stopped): upstream saw exactly the two
        # requests that were paid for.
        assert result.json is not None
        assert result.json.get("terminal_reason") == "hook_stopped", result.describe()
        assert len(model.main_requests) == 2, "the proxy forwarded after the budget was spent"
        # Resuming the session with its hooks disabled does not buy more either: the proxy
        # refuses its model request (402), whatever the hooks say.
        resumed = run_claude(
            claude_binary,
            home=home,
            project=project,
            prompt="keep going",
            model_url=f"{gateway.url}/anthropic",
            env_extra=workspace.proxy_env(gateway),
            args=[
                *BYPASS,
                "--resume",
                result.session_id,
                "--settings",
                '{"disableAllHooks": true}',
            ],
        )
        events = gateway.events()
        refusals = [e for e in events if e.get("alertType") == "model_request_refused"]
        assert refusals, f"the proxy did not refuse the resumed session: {resumed.describe()}"
        assert refusals[0]["details"]["status"] == 402
        assert refusals[0]["sessionId"] == result.session_id
        assert len(model.main_requests) == 2
        assert not any(e.get("alertType") == "unattributed_model_usage" for e in events)
    finally:
        gateway.stop()
        model.stop()
