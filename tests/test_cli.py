"""The `trailguard` command as an auditor and an operator use it."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from conftest import sample_events
from trailguard.cli import app
from trailguard.ledger.note import Signer
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.sqlite import SQLiteStore

runner = CliRunner()
TRAILGUARD = [sys.executable, "-m", "trailguard"]


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=40))
    ledger.append_many(sample_events(120))
    ledger.close()
    return data_dir


def event_id_at(data_dir: Path, seq: int) -> str:
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        row = store.row_by_seq(seq)
        assert row is not None
        return row.event_id
    finally:
        store.close()


def test_info_shows_key_name_fingerprint_and_size_in_aligned_columns(ledger_dir):
    result = runner.invoke(app, ["info", "--data-dir", str(ledger_dir)])
    assert result.exit_code == 0, result.output
    verifier_key = (ledger_dir / "signing.pub").read_text().strip()
    name, fingerprint, _ = verifier_key.split("+", 2)
    lines = result.stdout.splitlines()[1:]
    fields = {line[:19].strip(): line[19:] for line in lines}
    # Every value starts in the same column, two spaces after the longest label.
    assert all(line[17:19] == "  " and line[19] != " " for line in lines), lines
    assert fields["key name"] == name
    assert fields["key fingerprint"] == fingerprint
    assert fields["verifier key"] == verifier_key
    assert fields["signing key file"].endswith(", mode 0600")
    store = SQLiteStore.in_data_dir(ledger_dir, read_only=True)
    assert fields["events"] == str(store.tree_size())
    store.close()


def test_checkpoint_prints_the_latest_signed_note(ledger_dir):
    result = runner.invoke(app, ["checkpoint", "--data-dir", str(ledger_dir)])
    assert result.exit_code == 0
    lines = result.stdout.split("\n")
    store = SQLiteStore.in_data_dir(ledger_dir, read_only=True)
    size = store.tree_size()
    store.close()
    assert lines[1] == str(size)  # the writer's signed head covers every event, itself included
    assert result.stdout.count("\n\n\u2014 ") == 1


def test_proof_verifies_offline_with_only_the_public_key(ledger_dir, tmp_path):
    event_id = event_id_at(ledger_dir, 57)
    result = runner.invoke(app, ["proof", "--data-dir", str(ledger_dir), "--event", event_id])
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "proof.json"
    bundle.write_text(result.stdout)
    public_key = tmp_path / "log.pub"
    public_key.write_text((ledger_dir / "signing.pub").read_text())
    # Offline: the ledger directory is gone; only the bundle and the public key remain.
    os.rename(ledger_dir, tmp_path / "elsewhere")
    checked = runner.invoke(app, ["verify-proof", str(bundle), "--key", str(public_key)])
    assert checked.exit_code == 0, checked.output
    assert f"VALID: event {event_id}" in checked.stdout
    assert "is entry 57 of" in checked.stdout


def test_tampered_proof_or_wrong_key_is_invalid(ledger_dir, tmp_path):
    event_id = event_id_at(ledger_dir, 57)
    bundle = json.loads(
        runner.invoke(app, ["proof", "--data-dir", str(ledger_dir), "--event", event_id]).stdout
    )
    key = (ledger_dir / "signing.pub").read_text().strip()

    def check(changed: dict, with_key: str = key) -> str:
        path = tmp_path / "p.json"
        path.write_text(json.dumps(changed))
        result = runner.invoke(app, ["verify-proof", str(path), "--key", with_key])
        assert result.exit_code == 1, result.output
        return result.stdout

    entry = orjson.loads(base64.b64decode(bundle["entry"]))
    entry["prompt"] = "something else"
    forged_entry = orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
    forged = bundle | {"entry": base64.b64encode(forged_entry).decode()}
    assert "inclusion proof" in check(forged)
    assert "inclusion proof" in check(bundle | {"leafIndex": 58})
    assert "inclusion proof" in check(bundle | {"inclusionPath": bundle["inclusionPath"][:-1]})
    other = Signer.generate(key.split("+")[0]).verifier.to_string()
    assert "no signature by key" in check(bundle, other) or "does not verify" in check(
        bundle, other
    )
    changed_note = bundle["checkpoint"].replace(
        f"\n{bundle['treeSize']}\n", f"\n{bundle['treeSize'] + 1}\n"
    )
    assert "does not verify" in check(bundle | {"checkpoint": changed_note})


def test_proof_for_an_unknown_or_uncovered_event_explains_why(ledger_dir):
    result = runner.invoke(app, ["proof", "--data-dir", str(ledger_dir), "--event", "nope"])
    assert result.exit_code == 1
    assert "no event with id nope" in result.output
    ledger = Ledger.open(ledger_dir, config=LedgerConfig(checkpoint_every_events=10_000))
    receipt = ledger.append(sample_events(1)[0])
    try:
        result = runner.invoke(
            app, ["proof", "--data-dir", str(ledger_dir), "--event", receipt.event_id]
        )
        assert result.exit_code == 1
        assert "newer than the latest checkpoint" in result.output
    finally:
        ledger.close()


def test_verify_of_a_missing_directory_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["verify", "--data-dir", str(tmp_path / "absent")])
    assert result.exit_code == 2
    assert "no ledger at" in result.output
    assert "--data-dir" in result.output


def test_verify_while_a_writer_is_running_reads_a_consistent_snapshot(ledger_dir):
    ledger = Ledger.open(ledger_dir, config=LedgerConfig(checkpoint_every_events=25))
    try:
        ledger.append_many(sample_events(100))
        result = runner.invoke(app, ["verify", "--data-dir", str(ledger_dir), "--workers", "1"])
        assert result.exit_code == 0, result.output
        assert "INTACT" in result.stdout
    finally:
        ledger.close()


def test_ingest_reports_bad_lines_with_numbers_and_exits_1(tmp_path):
    log = tmp_path / "hooks.jsonl"
    good = {"session_id": "s1", "hook_event_name": "UserPromptSubmit", "prompt": "hi"}
    log.write_bytes(
        json.dumps(good).encode() + b"\n{broken\n" + json.dumps(good | {"prompt": "2"}).encode()
    )
    data_dir = tmp_path / "d"
    result = runner.invoke(app, ["ingest", str(log), "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert f"{log}:line 2: not JSON" in result.output
    assert "2 event(s) appended, 0 already recorded, 1 line(s) skipped" in result.stdout
    verified = runner.invoke(app, ["verify", "--data-dir", str(data_dir), "--workers", "1"])
    assert verified.exit_code == 0


def test_ingest_refuses_while_another_writer_holds_the_directory(ledger_dir, tmp_path):
    log = tmp_path / "hooks.jsonl"
    log.write_text('{"session_id": "s", "hook_event_name": "Stop"}\n')
    ledger = Ledger.open(ledger_dir)
    try:
        result = runner.invoke(app, ["ingest", str(log), "--data-dir", str(ledger_dir)])
        assert result.exit_code == 2
        assert "in use by another trailguard writer" in result.output
    finally:
        ledger.close()


def test_the_installed_command_runs_and_uses_the_environment_data_dir(ledger_dir):
    result = subprocess.run(
        [*TRAILGUARD, "verify", "--workers", "2"],
        capture_output=True,
        text=True,
        env={**os.environ, "TRAILGUARD_DATA_DIR": str(ledger_dir)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "INTACT" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serve_records_start_and_stop_and_signs_a_final_checkpoint(tmp_path):
    data_dir = tmp_path / "served"
    port = _free_port()
    server = subprocess.Popen(
        [*TRAILGUARD, "serve", "--data-dir", str(data_dir), "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    health = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.1)
        assert health is not None
        assert health["status"] == "ok"
        assert health["treeSize"] == 3  # gateway_start, its checkpoint, the policy in force
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    types = [row.event_type for row in store.rows()]
    store.close()
    assert types == ["gateway_start", "checkpoint", "policy_change", "gateway_stop", "checkpoint"]
    listening = list((server.stderr.read() if server.stderr else "").splitlines())
    assert any(f"http://127.0.0.1:{port}" in line for line in listening)
