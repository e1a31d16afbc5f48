"""`trailguard report --archive`: events pruned from the hot store come back from the archive,
each segment checked against its signed checkpoint, merged into the same timeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trailguard.cli import app

from .conftest import fill_ledger

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.output


@pytest.fixture
def pruned(tmp_path: Path) -> tuple[Path, str]:
    data_dir = tmp_path / "ledger"
    fill_ledger(data_dir, 20_000, batch=1000, sessions=4)
    url = f"file://{tmp_path / 'archive'}"
    code, _, output = run("archive", "run", "--data-dir", str(data_dir), "--archive", url,
                          "--segment-events", "5000", "--no-parquet")  # fmt: skip
    assert code == 0, output
    code, _, output = run("archive", "prune", "--data-dir", str(data_dir), "--archive", url,
                          "--hot-days", "0", "--allow-not-write-once")  # fmt: skip
    assert code == 0, output
    assert "removed seq 0..16383" in output
    return data_dir, url


def test_a_report_with_the_archive_holds_the_pruned_events_too(pruned):
    data_dir, url = pruned
    base = ["--data-dir", str(data_dir), "--format", "json"]
    code, _, output = run("report", *base, "--session", "sess_0001")
    assert code == 2  # pruned whole: only the archive knows it
    assert "no session 'sess_0001'" in output
    for session in ("sess_0001", "sess_0003"):  # pruned whole, and half pruned
        code, stdout, output = run("report", *base, "--session", session, "--archive", url)
        assert code == 0, output
        report = json.loads(stdout)
        code, queried, _ = run("query", *base, "--session", session, "--archive", url)
        assert report["timeline"] == json.loads(queried)
        verification = report["header"]["verification"]
        assert verification["result"] == "verified"
        assert verification["archivedEvents"] > 0
        assert verification["archive"] == url
        assert len(report["timeline"]) == 5000


def test_a_changed_archive_segment_fails_the_report(pruned):
    data_dir, url = pruned
    archive = Path(url.removeprefix("file://"))
    events = sorted(p for p in archive.rglob("*") if p.is_file() and "events" in p.name)
    assert events
    for target in events:  # one bit of every sealed events file
        target.chmod(0o644)
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 1
        target.write_bytes(bytes(data))
    code, _, output = run("report", "--data-dir", str(data_dir), "--format", "json",
                          "--session", "sess_0001", "--archive", url)  # fmt: skip
    assert code == 1
    assert "cannot read the archive" in output


def test_the_soc2_pack_verifies_the_archive_and_states_its_retention(pruned, tmp_path):
    data_dir, url = pruned
    output = tmp_path / "pack"
    period = "2020-01-01..2099-12-31"
    code, _, result = run("evidence", "soc2", "--data-dir", str(data_dir), "--period", period,
                          "-o", str(output), "--archive", url)  # fmt: skip
    assert code == 0, result
    sections = json.loads((output / "pack.json").read_text())["sections"]
    archived = sections["integrity"]["archive"]
    assert archived["intact"] is True
    assert archived["events"] >= 16384
    retention = sections["retention"]
    assert retention["firstHotSeq"] == 16384
    assert retention["oldestHotEvent"] is not None
    assert retention["archive"]["configured"] is True
    assert retention["archive"]["writeOnce"] is False  # a local directory, said as such
