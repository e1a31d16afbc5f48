"""`trailguard evidence soc2`: the pack's figures are what `trailguard query` counts for the
period, each section names its Trust Services Criteria, and the CSV files are safe to open."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from incident_data import SESSION_A, record_incident
from trailguard.cli import app
from trailguard.events import AuditAccess, TokenChange
from trailguard.incident.soc2 import PeriodError, parse_period
from trailguard.ledger.writer import Ledger

runner = CliRunner()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = record_incident(tmp_path_factory.mktemp("incident") / "ledger").data_dir
    with Ledger.open(data_dir) as ledger:
        ledger.append_many(
            [
                AuditAccess(action="GET /v1/events", developer_id="aud_sam", outcome="allowed",
                            query={"session": SESSION_A}, result_count=3, source="gateway"),
                AuditAccess(action="GET /v1/events", developer_id="dev_jordan",
                            outcome="refused", source="gateway"),
                TokenChange(action="created", token_id="tok_1", role="agent",
                            subject_developer_id="=HYPERLINK(\"https://evil.example\")",
                            changed_by="os:root"),
                TokenChange(action="revoked", token_id="tok_1", role="agent",
                            subject_developer_id="dev_x", changed_by="os:root"),
            ]
        )  # fmt: skip
    return data_dir


def query_count(data_dir: Path, start: str, end: str, *args: str) -> int:
    result = runner.invoke(
        app,
        ["query", "--data-dir", str(data_dir), "--since", start, "--until", end,
         "--format", "jsonl", *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return len(result.stdout.splitlines())


def test_the_packs_figures_equal_what_query_counts(recorded, tmp_path):
    data_dir = tmp_path / "ledger"
    shutil.copytree(recorded, data_dir)
    output = tmp_path / "pack"
    result = runner.invoke(
        app, ["evidence", "soc2", "--data-dir", str(data_dir), "--period",
              "2020-01-01..2099-12-31", "-o", str(output)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    pack = json.loads((output / "pack.json").read_text())
    start, end = pack["period"]["start"], pack["period"]["end"]
    sections = pack["sections"]
    count = lambda *args: query_count(data_dir, start, end, *args)  # noqa: E731
    assert sections["completeness"]["events"] == count()
    assert sections["completeness"]["toolCalls"] == count("--type", "tool_invocation")
    assert sections["completeness"]["toolResults"] == count("--type", "tool_result")
    assert sections["completeness"]["sessionsStarted"] == count("--type", "session_start")
    assert sections["policyDecisions"]["denied"] == count("--decision", "denied")
    assert sections["policyDecisions"]["asked"] == count("--decision", "ask")
    assert sections["policyDecisions"]["policyChanges"] == count("--type", "policy_change")
    assert sections["access"]["reads"] == count("--type", "audit_access") == 2
    assert sections["access"]["refused"] == 1
    assert sections["identityChanges"] == {
        "criteria": ["CC6.2", "CC6.3"], "created": 1, "revoked": 1,
        "files": ["identity-changes.csv"],
    }  # fmt: skip
    assert sections["integrity"]["verify"]["intact"] is True
    assert sections["integrity"]["criteria"] == ["CC7.2", "PI1.5"]
    assert all(section["criteria"] for section in sections.values())
    rules = {(r["decision"], r["rule"]): r["toolCalls"] for r in
             sections["policyDecisions"]["byRule"]}  # fmt: skip
    assert rules[("denied", "no-force-push-to-main")] == 1
    sessions = list(csv.DictReader((output / "completeness-sessions.csv").open()))
    assert {row["sessionId"] for row in sessions} == {
        json.loads(line)["sessionId"]
        for line in runner.invoke(
            app, ["query", "--data-dir", str(data_dir), "--type", "session_start",
                  "--format", "jsonl"]).stdout.splitlines()
    }  # fmt: skip
    assert sum(int(row["toolCalls"]) for row in sessions) == count("--type", "tool_invocation")
    identity = list(csv.DictReader((output / "identity-changes.csv").open()))
    assert identity[0]["subject"].startswith("'=HYPERLINK")  # a formula never runs
    for line in (output / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((output / name).read_bytes()).hexdigest() == digest
    summary = (output / "summary.html").read_text()
    assert "CC6.2" in summary
    assert "<script" not in summary
    assert "default-src 'none'" in summary


def test_a_period_outside_the_events_counts_nothing_and_a_tampered_ledger_fails(recorded, tmp_path):
    import tamper

    data_dir = tmp_path / "ledger"
    shutil.copytree(recorded, data_dir)
    empty = tmp_path / "empty"
    result = runner.invoke(
        app, ["evidence", "soc2", "--data-dir", str(data_dir), "--period",
              "2001-01-01..2001-01-31", "-o", str(empty)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    pack = json.loads((empty / "pack.json").read_text())
    assert pack["sections"]["completeness"]["toolCalls"] == 0
    tamper.edit_event(data_dir, 9, lambda d: d.update(extra={"forged": True}))
    broken = tmp_path / "broken"
    result = runner.invoke(
        app, ["evidence", "soc2", "--data-dir", str(data_dir), "--period",
              "2020-01-01..2099-12-31", "-o", str(broken)],
    )  # fmt: skip
    assert result.exit_code == 1
    verify = json.loads((broken / "pack.json").read_text())["sections"]["integrity"]["verify"]
    assert verify["intact"] is False
    assert any(failure.startswith("seq 9:") for failure in verify["failures"])


def test_period_forms():
    assert parse_period("2026-01-01..2026-12-31") == (
        "2026-01-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z"
    )  # fmt: skip
    assert parse_period("2026-04-15T10:00:00Z..2026-04-15T14:00:00+02:00") == (
        "2026-04-15T10:00:00.000Z", "2026-04-15T12:00:00.000Z"
    )  # fmt: skip  # a time as END is exclusive, in any zone
    with pytest.raises(PeriodError, match="is not before"):
        parse_period("2026-04-15T10:00:00Z..2026-04-15T12:00:00+02:00")
    with pytest.raises(PeriodError, match=r"START\.\.END"):
        parse_period("2026-01-01")
    with pytest.raises(PeriodError, match="neither a date"):
        parse_period("yesterday..today")
