"""Incident export from the shared PostgreSQL ledger (`--store`): the same report and a bundle
that verifies, as from a data directory."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from incident_data import SESSION_A, SESSION_B, record_incident
from trailguard.cli import app

runner = CliRunner()


def test_report_and_bundle_from_a_postgres_store_match_the_data_directory(pg_database, tmp_path):
    data_dir = record_incident(tmp_path / "ledger").data_dir
    moved = subprocess.run(
        [sys.executable, "-m", "trailguard", "migrate", "--from", str(data_dir), "--to",
         pg_database.owner_url],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert moved.returncode == 0, moved.stdout + moved.stderr
    scope = ["--session", SESSION_A, "--session", SESSION_B, "--format", "json"]
    local = runner.invoke(app, ["report", "--data-dir", str(data_dir), *scope])
    shared = runner.invoke(app, ["report", "--store", pg_database.owner_url, *scope])
    assert local.exit_code == 0, local.output
    assert shared.exit_code == 0, shared.output
    assert json.loads(shared.stdout)["timeline"] == json.loads(local.stdout)["timeline"]
    assert json.loads(shared.stdout)["header"]["verification"]["result"] == "verified"
    bundle = tmp_path / "shared.zip"
    exported = runner.invoke(
        app, ["evidence", "export", "--store", pg_database.owner_url, "--session", SESSION_A,
              "-o", str(bundle)],
    )  # fmt: skip
    assert exported.exit_code == 0, exported.output
    key = (data_dir / "signing.pub").read_text().strip()
    checked = runner.invoke(app, ["evidence", "verify", str(bundle), "--key", key])
    assert checked.exit_code == 0, checked.output
    assert "VALID" in checked.output
