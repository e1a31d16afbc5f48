"""The operator's and auditor's commands around the gateway: tokens, sessions, query."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from trailguard.capture.claude_code import Attribution, event_from_hook
from trailguard.cli import app
from trailguard.events import Alert
from trailguard.ledger.writer import Ledger
from trailguard.store.gateway_state import GatewayState
from trailguard.store.sqlite import SQLiteStore

runner = CliRunner()
SESSION = "sess-cli-0001"


def hook(name: str, **fields: object) -> dict:
    return {"session_id": SESSION, "hook_event_name": name, **fields}


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    """A ledger holding one session: two tool calls with results, one left without a result."""
    data_dir = tmp_path / "ledger"
    who = Attribution(developer_id="dev_jordan", project_id="github.com/acme/backend")
    payloads = [
        hook("SessionStart", source="startup"),
        hook("UserPromptSubmit", prompt="list files"),
        hook("PreToolUse", tool_name="Bash", tool_input={"command": "ls"}, tool_use_id="t1"),
        hook("PostToolUse", tool_name="Bash", tool_response={"stdout": "a"}, tool_use_id="t1"),
        hook("PreToolUse", tool_name="Read", tool_input={"file_path": "/x"}, tool_use_id="t2"),
        hook("PostToolUseFailure", tool_name="Read", error="ENOENT", tool_use_id="t2"),
        hook("PreToolUse", tool_name="Bash", tool_input={"command": "sleep 99"}, tool_use_id="t3"),
        hook("SessionEnd", reason="prompt_input_exit"),
    ]
    ledger = Ledger.open(data_dir)
    ledger.append_many(event_from_hook(p, who) for p in payloads)
    ledger.append(Alert(alert_type="test", severity="info", message="unrelated"))
    ledger.close()
    return data_dir


def test_token_create_prints_the_token_last_and_stores_only_its_hash(tmp_path):
    data_dir = tmp_path / "d"
    assert runner.invoke(app, ["init", "--data-dir", str(data_dir)]).exit_code == 0
    result = runner.invoke(
        app,
        [
            "token",
            "create",
            "--developer",
            "dev_ana",
            "--role",
            "auditor",
            "--data-dir",
            str(data_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("tg_")
    assert len(token) > 40
    assert token.encode() not in (data_dir / "ledger.sqlite3").read_bytes()
    state = GatewayState(data_dir)
    identity = state.identify(token)
    state.close()
    assert identity is not None
    assert (identity.developer_id, identity.role) == ("dev_ana", "auditor")


def test_token_with_unknown_role_is_refused(tmp_path):
    runner.invoke(app, ["init", "--data-dir", str(tmp_path)])
    result = runner.invoke(
        app, ["token", "create", "--developer", "d", "--role", "root", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "role must be one of agent, auditor, admin" in result.output


def test_revoked_token_no_longer_identifies(tmp_path):
    runner.invoke(app, ["init", "--data-dir", str(tmp_path)])
    made = runner.invoke(app, ["token", "create", "--developer", "d", "--data-dir", str(tmp_path)])
    token = made.stdout.strip().splitlines()[-1]
    listed = runner.invoke(app, ["token", "list", "--data-dir", str(tmp_path)])
    token_id = listed.stdout.split()[0]
    assert token not in listed.stdout
    assert (
        runner.invoke(app, ["token", "revoke", token_id, "--data-dir", str(tmp_path)]).exit_code
        == 0
    )
    state = GatewayState(tmp_path)
    assert state.identify(token) is None
    state.close()


def test_sessions_show_lists_who_when_why_and_the_gap(recorded):
    result = runner.invoke(app, ["sessions", "show", SESSION, "--data-dir", str(recorded)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "developer   dev_jordan" in text
    assert "project     github.com/acme/backend" in text
    assert "(completed, agent said 'prompt_input_exit')" in text
    assert "incomplete: 1 gap(s) in 3 tool calls" in text
    assert "gap t3: Bash invoked at" in text


def test_sessions_show_json_and_unknown_session(recorded):
    result = runner.invoke(
        app, ["sessions", "show", SESSION, "--format", "json", "--data-dir", str(recorded)]
    )
    report = json.loads(result.stdout)
    assert report["complete"] is False
    assert report["counts"]["tool_invocation"] == 3
    missing = runner.invoke(app, ["sessions", "show", "nope", "--data-dir", str(recorded)])
    assert missing.exit_code == 2
    assert "no session 'nope' in this ledger" in missing.output


def test_query_filters_and_formats(recorded):
    def run(*args: str) -> list[dict]:
        result = runner.invoke(
            app, ["query", "--data-dir", str(recorded), "--format", "jsonl", *args]
        )
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.stdout.splitlines()]

    assert [e["toolUseId"] for e in run("--type", "tool_invocation")] == ["t1", "t2", "t3"]
    assert [e["toolUseId"] for e in run("--tool", "Read")] == ["t2", "t2"]
    assert all(e["sessionId"] == SESSION for e in run("--session", SESSION))
    assert run("--developer", "nobody") == []
    assert len(run("--session", SESSION, "--limit", "2")) == 2
    today = run("--type", "prompt")[0]["timestamp"][:10]
    assert len(run("--date", today, "--type", "prompt")) == 1
    assert run("--date", "2001-01-01") == []

    as_csv = runner.invoke(
        app, ["query", "--data-dir", str(recorded), "--format", "csv", "--type", "tool_result"]
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["toolUseId"] for r in rows] == ["t1", "t2"]
    table = runner.invoke(app, ["query", "--data-dir", str(recorded), "--session", SESSION])
    assert "sleep 99" in table.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--since", "last tuesday"], "since"),
        (["--date", "2026-13-45"], "--date"),
        (["--type", "tool_call"], "unknown event type"),
        (["--decision", "maybe"], "decision"),
        (["--format", "xml"], "--format"),
    ],
)
def test_query_rejects_bad_filters_by_name(recorded, args, says):
    result = runner.invoke(app, ["query", "--data-dir", str(recorded), *args])
    assert result.exit_code == 2
    assert says in result.output


def test_sessions_kill_is_recorded_for_the_gateway(tmp_path):
    ledger = Ledger.open(tmp_path)
    ledger.append_many(
        [event_from_hook({"session_id": SESSION, "hook_event_name": "SessionStart"}, Attribution())]
    )
    ledger.close()
    result = runner.invoke(
        app,
        [
            "sessions",
            "kill",
            SESSION,
            "--reason",
            "runaway",
            "--by",
            "secops",
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0
    again = runner.invoke(app, ["sessions", "kill", SESSION, "--data-dir", str(tmp_path)])
    assert "already killed" in again.stdout
    state = GatewayState(tmp_path)
    pending = state.pending_kills()
    state.close()
    assert [(k.session_id, k.requested_by, k.reason) for k in pending] == [
        (SESSION, "secops", "runaway")
    ]


def test_killing_an_unknown_session_is_refused_with_close_matches(tmp_path):
    ledger = Ledger.open(tmp_path)
    ledger.append_many(
        [event_from_hook({"session_id": SESSION, "hook_event_name": "SessionStart"}, Attribution())]
    )
    ledger.close()
    typo = SESSION[:-1] + "2"
    result = runner.invoke(app, ["sessions", "kill", typo, "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert f"no session {typo!r}" in result.output
    assert SESSION in result.output  # the close match is offered
    state = GatewayState(tmp_path)
    assert state.pending_kills() == []  # nothing was asked of the gateway
    state.close()


def test_an_unambiguous_prefix_names_the_session(tmp_path):
    ledger = Ledger.open(tmp_path)
    ledger.append_many(
        [event_from_hook({"session_id": SESSION, "hook_event_name": "SessionStart"}, Attribution())]
    )
    ledger.close()
    result = runner.invoke(app, ["sessions", "kill", SESSION[:8], "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"session {SESSION}: kill requested" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["token", "create", "--developer", "dev_ana"],
        ["token", "list"],
        ["sessions", "list"],
        ["sessions", "kill", "ae1e1885-0000-4000-8000-000000000001"],
    ],
)
def test_a_mistyped_data_dir_is_refused_and_nothing_is_created(tmp_path, command):
    typo = tmp_path / "ledgr"
    result = runner.invoke(app, [*command, "--data-dir", str(typo)])
    assert result.exit_code == 2
    assert "no trailguard ledger in" in result.output
    assert not typo.exists()


def test_token_creation_and_revocation_are_recorded_in_the_ledger_without_the_token(tmp_path):
    data_dir = tmp_path / "d"
    runner.invoke(app, ["init", "--data-dir", str(data_dir)])
    made = runner.invoke(
        app,
        [
            "token",
            "create",
            "--developer",
            "dev_ana",
            "--project",
            "github.com/acme/api",
            "--data-dir",
            str(data_dir),
        ],
    )
    token = made.stdout.strip().splitlines()[-1]
    token_id = runner.invoke(app, ["token", "list", "--data-dir", str(data_dir)]).stdout.split()[0]
    assert (
        runner.invoke(app, ["token", "revoke", token_id, "--data-dir", str(data_dir)]).exit_code
        == 0
    )
    # No gateway runs: the changes wait in the queue; the next gateway's reaper appends them.
    from trailguard.gateway.reaper import Reaper
    from trailguard.gateway.sessions import SessionRegistry

    ledger = Ledger.open(data_dir)
    state = GatewayState(data_dir)
    Reaper(ledger, SessionRegistry(state), state).tick()
    ledger.close()
    state.close()
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        changes = [orjson.loads(r.body) for r in store.rows() if r.event_type == "token_change"]
        raw = b"".join(bytes(r.body) for r in store.rows())
    finally:
        store.close()
    assert [c["action"] for c in changes] == ["created", "revoked"]
    assert {c["tokenId"] for c in changes} == {token_id}
    assert changes[0]["subjectDeveloperId"] == "dev_ana"
    assert changes[0]["projects"] == ["github.com/acme/api"]
    assert changes[0]["changedBy"].startswith("os:")
    assert token.encode() not in raw


def test_cli_reads_are_themselves_recorded_as_audit_access(recorded):
    runner.invoke(app, ["query", "--session", SESSION, "--data-dir", str(recorded)])
    runner.invoke(app, ["sessions", "show", SESSION, "--data-dir", str(recorded)])
    runner.invoke(app, ["cost", "--session", SESSION, "--data-dir", str(recorded)])
    state = GatewayState(recorded)
    queued = [json.loads(document) for _, document in state.pending_events()]
    state.close()
    reads = [e for e in queued if e["eventType"] == "audit_access"]
    assert [e["action"] for e in reads] == ["cli query", "cli sessions show", "cli cost"]
    assert all(e["actor"].startswith("os:") for e in reads)
    assert reads[0]["query"] == {"session": SESSION}
    assert reads[0]["resultCount"] > 0


def test_terminal_escapes_and_formulas_from_the_agent_are_neutralised(tmp_path):
    hostile = "\x1b]0;pwned\x07\x1b[2J[bold red]fake[/] \u202eevil"
    ledger = Ledger.open(tmp_path)
    ledger.append_many(
        [
            event_from_hook(
                {"session_id": "=HYPERLINK(\"http://x.invalid\")", "hook_event_name": "PreToolUse",
                 "tool_name": "Bash", "tool_input": {"command": hostile}},
                Attribution(developer_id="dev_jordan"),
            )
        ]
    )  # fmt: skip
    ledger.close()
    table = runner.invoke(app, ["query", "--data-dir", str(tmp_path)])
    assert "\x1b" not in table.stdout
    assert "\u202e" not in table.stdout
    assert "\\u001b" in table.stdout or "\\x1b" in table.stdout  # shown, escaped
    assert "[bold red]fake[/]" in table.stdout  # markup shown as text, not interpreted
    rows = list(csv.reader(io.StringIO(runner.invoke(
        app, ["query", "--format", "csv", "--data-dir", str(tmp_path)]
    ).stdout)))  # fmt: skip
    session_cells = [row[3] for row in rows[1:] if "HYPERLINK" in row[3]]
    assert session_cells
    assert all(cell.startswith("'=") for cell in session_cells)


def test_serve_on_a_busy_port_fails_before_recording_anything(tmp_path):
    import socket
    import subprocess
    import sys

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    data_dir = tmp_path / "second"
    try:
        result = subprocess.run(
            [str(Path(sys.executable).with_name("trailguard")), "serve", "--data-dir",
             str(data_dir), "--port", str(port)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        taken.close()
    assert result.returncode == 2
    assert f"127.0.0.1:{port} is already in use" in result.stderr
    assert "listening on" not in result.stderr
    assert not data_dir.exists()


def test_install_refuses_a_missing_project_folder_and_creates_nothing(tmp_path):
    missing = tmp_path / "typo-project"
    result = CliRunner().invoke(app, ["install", "--project", str(missing)])
    assert result.exit_code != 0
    assert "no such folder" in result.output
    assert not missing.exists()


def test_install_in_http_mode_says_how_to_get_cost_through_the_proxy(tmp_path):
    result = CliRunner().invoke(
        app, ["install", "--project", str(tmp_path), "--gateway", "http://127.0.0.1:9999"]
    )
    assert result.exit_code == 0, result.output
    assert "ANTHROPIC_BASE_URL=http://127.0.0.1:9999/anthropic" in result.output
    assert "X-Trailguard-Token" in result.output
    settings = json.loads((tmp_path / ".claude" / "settings.json").read_text())
    [start] = settings["hooks"]["SessionStart"]
    assert start["hooks"][0]["command"].endswith("hook --gateway http://127.0.0.1:9999")
