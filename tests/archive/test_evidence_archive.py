"""`trailguard evidence export --archive`: events pruned from the hot store come from the
archive, each proven against the hot store's signed tree head through the archive's hash
tiles, so the bundle verifies offline like any other (with trailguard and with the standalone
script inside it) after the data directory and the archive are gone."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trailguard.archive.tiles import tile_path
from trailguard.cli import app

from .conftest import fill_ledger

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def archive_and_prune(data_dir: Path, url: str, *extra: str) -> None:
    code, output = run("archive", "run", "--data-dir", str(data_dir), "--archive", url,
                       "--segment-events", "5000", "--no-parquet")  # fmt: skip
    assert code == 0, output
    code, output = run("archive", "prune", "--data-dir", str(data_dir), "--archive", url,
                       "--hot-days", "0", *extra)  # fmt: skip
    assert code == 0, output
    assert "removed seq 0..16383" in output, output


def queried(data_dir: Path, url: str, session: str) -> list[dict[str, object]]:
    code, output = run("query", "--data-dir", str(data_dir), "--format", "json",
                       "--session", session, "--archive", url)  # fmt: skip
    assert code == 0, output
    events: list[dict[str, object]] = json.loads(output)
    return events


def export(data_dir: Path, url: str | None, out: Path, *sessions: str) -> tuple[int, str]:
    archive = ["--archive", url] if url else []
    session_options = [f"--session={session}" for session in sessions]
    return run("evidence", "export", "--data-dir", str(data_dir), "-o", str(out),
               *archive, *session_options)  # fmt: skip


def check_offline(bundle: Path, key_file: Path, expected: int) -> None:
    """The bundle verifies with trailguard and with its own standalone script."""
    code, output = run("evidence", "verify", str(bundle), "--key", str(key_file),
                       "--format", "json")  # fmt: skip
    assert code == 0, output
    result = json.loads(output)
    assert result["valid"] is True
    assert result["proven"] == result["events"] >= expected
    unpacked = bundle.with_suffix(".d")
    with zipfile.ZipFile(bundle) as zipped:
        zipped.extractall(unpacked)
    done = subprocess.run(
        [sys.executable, str(unpacked / "verify_bundle.py"), str(bundle), "--key",
         key_file.read_text().strip()],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def members(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle.read_bytes())) as zipped:
        return {name: zipped.read(name) for name in zipped.namelist()}


@pytest.fixture
def pruned(tmp_path: Path) -> tuple[Path, str]:
    data_dir = tmp_path / "ledger"
    fill_ledger(data_dir, 20_000, batch=1000, sessions=4)
    url = f"file://{tmp_path / 'archive'}"
    archive_and_prune(data_dir, url, "--allow-not-write-once")
    return data_dir, url


def test_a_bundle_with_the_archive_holds_pruned_events_and_verifies_offline(
    pruned: tuple[Path, str], tmp_path: Path
) -> None:
    data_dir, url = pruned
    # sess_0000 was pruned whole; sess_0003 is partly archived, partly hot.
    expected = len(queried(data_dir, url, "sess_0000")) + len(queried(data_dir, url, "sess_0003"))
    bundle = tmp_path / "evidence.zip"
    code, output = export(data_dir, url, bundle, "sess_0000", "sess_0003")
    assert code == 0, output
    files = members(bundle)
    manifest = json.loads(files["MANIFEST.json"])
    assert len(manifest["events"]) >= expected
    seqs = [entry["seq"] for entry in manifest["events"] if not entry["context"]]
    assert len(seqs) == expected
    assert min(seqs) < 16384 <= max(seqs)  # from the archive and from the hot store
    assert manifest["archive"]["url"] == url
    assert manifest["archive"]["events"] == sum(1 for seq in seqs if seq < 16384)
    report = json.loads(files["report.json"])
    assert report["header"]["verification"]["result"] == "verified"
    key_file = tmp_path / "signing.pub"
    shutil.copy(data_dir / "signing.pub", key_file)
    shutil.rmtree(data_dir)
    shutil.rmtree(Path(url.removeprefix("file://")), ignore_errors=True)
    check_offline(bundle, key_file, expected)


def test_without_the_archive_a_pruned_session_cannot_be_exported(
    pruned: tuple[Path, str], tmp_path: Path
) -> None:
    data_dir, _ = pruned
    code, output = export(data_dir, None, tmp_path / "evidence.zip", "sess_0000")
    assert code == 2
    assert "no session 'sess_0000'" in output
    assert not (tmp_path / "evidence.zip").exists()


def test_a_changed_hash_tile_makes_the_export_refuse(
    pruned: tuple[Path, str], tmp_path: Path
) -> None:
    data_dir, url = pruned
    tile = Path(url.removeprefix("file://")) / tile_path(0, 1)
    tile.chmod(0o644)
    hashes = bytearray(tile.read_bytes())
    hashes[5] ^= 1  # one bit of the leaf hash of seq 256
    tile.write_bytes(bytes(hashes))
    bundle = tmp_path / "evidence.zip"
    code, output = export(data_dir, url, bundle, "sess_0000")
    assert code == 1
    assert "do not verify" in output or "inclusion proof" in output, output
    assert not bundle.exists()


def test_a_missing_hash_tile_is_named(pruned: tuple[Path, str], tmp_path: Path) -> None:
    data_dir, url = pruned
    tile = Path(url.removeprefix("file://")) / tile_path(0, 2)
    tile.unlink()
    code, output = export(data_dir, url, tmp_path / "evidence.zip", "sess_0000")
    assert code == 1
    assert "tile/0/002" in output, output
    assert "missing" in output


def test_a_bundle_from_an_s3_object_lock_archive_verifies_offline(
    tmp_path: Path, make_bucket, s3_env: str
) -> None:  # type: ignore[no-untyped-def]
    data_dir = tmp_path / "ledger"
    fill_ledger(data_dir, 20_000, batch=1000, sessions=4)
    url = f"s3://{make_bucket()}/trail"
    archive_and_prune(data_dir, url)
    expected = len(queried(data_dir, url, "sess_0001"))
    bundle = tmp_path / "evidence.zip"
    code, output = export(data_dir, url, bundle, "sess_0001")
    assert code == 0, output
    manifest = json.loads(members(bundle)["MANIFEST.json"])
    assert manifest["archive"]["events"] > 0
    key_file = tmp_path / "signing.pub"
    shutil.copy(data_dir / "signing.pub", key_file)
    shutil.rmtree(data_dir)
    check_offline(bundle, key_file, expected)
