"""The archive on a real S3 Object Lock server (ministack, see conftest): every object written
once and locked, the bucket checked, resumable runs, legal holds, and the attacks a holder of
bucket credentials can try (overwrite, delete, replay) performed against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

import tamper
from trailguard.archive import layout
from trailguard.cli import app

from .conftest import fill_ledger

runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def archive_run(data_dir: Path, url: str, *extra: str) -> tuple[int, str]:
    return cli(
        "archive", "run", "--data-dir", str(data_dir), "--archive", url,
        "--segment-events", "1000", *extra,
    )  # fmt: skip


def archive_verify(url: str, data_dir: Path, *extra: str) -> tuple[int, dict]:
    code, output = cli(
        "archive", "verify", "--archive", url, "--key", str(data_dir / "signing.pub"),
        "--format", "json", *extra,
    )  # fmt: skip
    return code, json.loads(output)


def failures(report: dict) -> list[str]:
    return [
        f"{f['where']}: {f['problem']}" for f in report["findings"] if f["severity"] == "failure"
    ]


def all_keys(s3, bucket: str) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return sorted(keys)


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    data_dir = tmp_path / "ledger"
    fill_ledger(data_dir, 3000)
    return data_dir


def test_every_archived_object_is_locked_in_compliance_mode_until_the_retention_date(
    ledger, s3, make_bucket
):
    bucket = make_bucket()
    url = f"s3://{bucket}/trail"
    before = datetime.now(UTC)
    code, output = archive_run(ledger, url)
    assert code == 0, output
    assert "sealed" in output
    assert "read back and verified" in output
    keys = all_keys(s3, bucket)
    assert any(key.endswith("manifest.json") for key in keys)
    assert any(key.startswith("trail/tile/0/") for key in keys)
    assert any(key.startswith("trail/checkpoints/") for key in keys)
    assert any(key.startswith("trail/parquet/date=") for key in keys)
    for key in keys:
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE", key
        until = head["ObjectLockRetainUntilDate"].astimezone(UTC)
        # soc2 is the default: one calendar year from the run.
        assert before.replace(year=before.year + 1) - timedelta(seconds=5) <= until, key
        assert until <= datetime.now(UTC).replace(year=before.year + 1) + timedelta(seconds=5)
    code, report = archive_verify(url, ledger)
    assert code == 0, failures(report)
    assert report["lockedObjects"] == report["objects"] > 0
    assert report["treeSize"] >= 3000


@pytest.mark.parametrize(
    ("options", "mode", "years", "days"),
    [
        (["--retention", "hipaa"], "COMPLIANCE", 6, 0),
        (["--retention-days", "30", "--lock-mode", "GOVERNANCE"], "GOVERNANCE", 0, 30),
    ],
)
def test_retention_presets_set_the_lock_mode_and_retain_until_date(
    ledger, s3, make_bucket, options, mode, years, days
):
    bucket = make_bucket()
    before = datetime.now(UTC)
    code, output = archive_run(ledger, f"s3://{bucket}", *options)
    assert code == 0, output
    expected = before.replace(year=before.year + years) + timedelta(days=days)
    for key in all_keys(s3, bucket):
        retention = s3.get_object_retention(Bucket=bucket, Key=key)["Retention"]
        assert retention["Mode"] == mode, key
        until = retention["RetainUntilDate"].astimezone(UTC)
        assert abs((until - expected).total_seconds()) < 10, (key, until, expected)
    # An auditor requiring SOC 2 in COMPLIANCE mode sees the GOVERNANCE archive fall short.
    code, report = archive_verify(f"s3://{bucket}", ledger, "--lock-mode", "COMPLIANCE")
    assert (code == 0) == (mode == "COMPLIANCE"), failures(report)


def test_a_bucket_without_object_lock_is_refused_and_nothing_is_written(ledger, s3, make_bucket):
    bucket = make_bucket(locked=False)
    code, output = archive_run(ledger, f"s3://{bucket}/x")
    assert code == 2
    assert "no Object Lock" in output
    assert "--object-lock-enabled-for-bucket" in output
    assert all_keys(s3, bucket) == []


def test_compliance_lock_refuses_deleting_or_shortening_archived_segments(ledger, s3, make_bucket):
    """What a holder of the bucket's credentials cannot do to a COMPLIANCE-locked segment."""
    bucket = make_bucket()
    assert archive_run(ledger, f"s3://{bucket}")[0] == 0
    key = next(k for k in all_keys(s3, bucket) if k.endswith("events.jsonl.gz"))
    version = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"][0]["VersionId"]
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.put_object_retention(
            Bucket=bucket,
            Key=key,
            VersionId=version,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": datetime.now(UTC)},
        )
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.put_object_retention(
            Bucket=bucket,
            Key=key,
            VersionId=version,
            Retention={
                "Mode": "GOVERNANCE",
                "RetainUntilDate": datetime.now(UTC) + timedelta(days=400),
            },
            BypassGovernanceRetention=True,
        )
    code, report = archive_verify(f"s3://{bucket}", ledger)
    assert code == 0, failures(report)


def test_a_segment_overwritten_in_the_bucket_is_detected_and_the_locked_original_verified(
    ledger, s3, make_bucket
):
    bucket = make_bucket()
    url = f"s3://{bucket}"
    assert archive_run(ledger, url)[0] == 0
    key = next(k for k in all_keys(s3, bucket) if k.endswith("events.jsonl.gz"))
    s3.put_object(Bucket=bucket, Key=key, Body=b"rewritten history")  # a new version on top
    code, report = archive_verify(url, ledger)
    assert code == 1
    found = failures(report)
    assert any(f.startswith(key) and "overwritten" in f for f in found), found
    # Only the overwrite is reported: the original, locked version still verifies.
    assert not any("root" in f or "differ" in f for f in found), found


def test_a_deleted_segment_is_reported_and_its_locked_version_still_read(ledger, s3, make_bucket):
    bucket = make_bucket()
    url = f"s3://{bucket}"
    assert archive_run(ledger, url)[0] == 0
    key = next(k for k in all_keys(s3, bucket) if k.endswith("manifest.json"))
    s3.delete_object(Bucket=bucket, Key=key)  # without a version: a delete marker
    code, report = archive_verify(url, ledger)
    assert code == 1
    found = failures(report)
    assert any(f.startswith(key) and "delete marker" in f for f in found), found
    assert report["events"] >= 3000  # the hidden manifest was still read and checked


def test_an_older_segment_replayed_as_the_next_one_is_detected(ledger, s3, make_bucket):
    bucket = make_bucket()
    url = f"s3://{bucket}"
    assert archive_run(ledger, url)[0] == 0
    manifests = [k for k in all_keys(s3, bucket) if k.endswith("manifest.json")]
    _last_first, last_size = layout.parse_segment_element(manifests[-1].split("/")[1])
    replayed = s3.get_object(Bucket=bucket, Key=manifests[0])["Body"].read()
    # The attacker plants segment 0's sealed manifest where the next segment would go.
    fake = layout.manifest_key(last_size, last_size + 1000)
    s3.put_object(Bucket=bucket, Key=fake, Body=replayed)
    code, report = archive_verify(url, ledger)
    assert code == 1
    assert any(f.startswith(fake) and "another range" in f for f in failures(report))
    # The next run refuses to build on it rather than skip the events it claims to hold.
    code, output = archive_run(ledger, url)
    assert code == 1, output
    assert "replayed" in output, output


@pytest.mark.slow
def test_sigkill_mid_archive_then_rerun_completes_with_no_duplicate_or_half_sealed_segment(
    tmp_path, s3, make_bucket, s3_env
):
    data_dir = tmp_path / "ledger"
    fill_ledger(data_dir, 12000)
    bucket = make_bucket()
    url = f"s3://{bucket}"
    command = [
        sys.executable, "-m", "trailguard", "archive", "run", "--data-dir", str(data_dir),
        "--archive", url, "--segment-events", "500",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=os.environ.copy(), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        keys = all_keys(s3, bucket)
        sealed = [k for k in keys if k.endswith("manifest.json")]
        if len(sealed) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = all_keys(s3, bucket)
    sealed_then = [k for k in killed_at if k.endswith("manifest.json")]
    assert 3 <= len(sealed_then) < 24, "the kill must land mid-run"
    # Whatever the kill left is either sealed and verifiable, or not sealed at all.
    code, report = archive_verify(url, data_dir)
    assert not failures(report), failures(report)
    result = subprocess.run(command, env=os.environ.copy(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    code, report = archive_verify(url, data_dir)
    assert code == 0, failures(report)
    assert report["treeSize"] >= 12000
    versions = s3.list_object_versions(Bucket=bucket)
    keys = [item["Key"] for item in versions.get("Versions", [])]
    assert len(keys) == len(set(keys)), "an object was written twice"
    assert not versions.get("DeleteMarkers")
    assert not [f for f in report["findings"] if "without a manifest" in f["problem"]]


def test_legal_hold_on_a_session_and_its_release(ledger, s3, make_bucket):
    bucket = make_bucket()
    url = f"s3://{bucket}"
    assert archive_run(ledger, url)[0] == 0
    code, output = cli("archive", "hold", "--archive", url, "--session", "sess_0001")
    assert code == 0, output
    held = []
    for key in all_keys(s3, bucket):
        status = s3.get_object(Bucket=bucket, Key=key).get("ObjectLockLegalHoldStatus")
        if status == "ON":
            held.append(key)
    code, hits = cli(
        "archive", "find", "--archive", url, "--session", "sess_0001", "--format", "json"
    )
    segments = {hit["events"] for hit in json.loads(hits)}
    assert segments
    assert segments <= set(held)
    assert not any(key.endswith("events.jsonl.gz") and key not in segments for key in held)
    code, output = cli("archive", "hold", "--archive", url, "--session", "sess_0001", "--release")
    assert code == 0, output
    for key in held:
        assert s3.get_object(Bucket=bucket, Key=key).get("ObjectLockLegalHoldStatus") != "ON"
    code, output = cli("archive", "hold", "--archive", url, "--session", "sess_nope")
    assert code == 1
    assert "no archived segment holds session" in output


def test_truncating_the_local_ledger_is_caught_with_the_checkpoint_taken_from_the_bucket(
    ledger, make_bucket
):
    bucket = make_bucket()
    url = f"s3://{bucket}"
    assert archive_run(ledger, url)[0] == 0
    tamper.truncate_to_checkpoint(ledger, 1500)
    key = str(ledger / "signing.pub")
    result = runner.invoke(
        app, ["verify", "--data-dir", str(ledger), "--key", key, "--format", "json"]
    )
    assert result.exit_code == 0, "alone, a clean cut at a checkpoint passes"
    result = runner.invoke(
        app,
        ["verify", "--data-dir", str(ledger), "--key", key, "--format", "json",
         "--trusted-checkpoint", url],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "the ledger is shorter than a checkpoint it once signed" in result.output
    code, output = archive_run(ledger, url)
    assert code == 1
    assert "truncated or rolled back" in output


def test_archive_status_shows_the_last_seq_lag_retention_and_lock(ledger, make_bucket):
    bucket = make_bucket()
    url = f"s3://{bucket}"
    assert archive_run(ledger, url, "--retention", "hipaa")[0] == 0
    code, output = cli("archive", "status", "--data-dir", str(ledger), "--format", "json")
    assert code == 0, output
    status = json.loads(output)
    assert status["archive"] == url
    assert status["objectLock"].startswith("Object Lock enabled")
    assert status["lastArchivedSeq"] >= 2999
    assert status["lagEvents"] == status["ledgerEvents"] - status["lastArchivedSeq"] - 1
    assert status["retention"] == "COMPLIANCE for 6 year(s)"
    assert status["lastError"] is None


def test_prune_on_s3_only_after_reading_back_and_verifying_and_query_is_unchanged(
    tmp_path, s3, make_bucket
):
    data_dir = tmp_path / "ledger"
    fill_ledger(data_dir, 36_000, batch=500, sessions=6)
    bucket = make_bucket()
    url = f"s3://{bucket}"
    code, output = archive_run(data_dir, url, "--segment-events", "10000", "--no-parquet")
    assert code == 0, output

    def query(*extra: str) -> list[dict]:
        result = runner.invoke(
            app, ["query", "--data-dir", str(data_dir), "--format", "json", *extra]
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    pruned = query("--session", "sess_0004")  # seq 24000..29999: all before 32768
    crossing = query("--session", "sess_0005")  # seq 30000..35999: both sides of 32768
    everything = query("--developer", "dev_jordan")
    # Someone with bucket credentials overwrites a tile the prune relies on: refused.
    tile = f"tile/0/{(20_000 // 256):03d}"
    original = s3.get_object(Bucket=bucket, Key=tile)["Body"].read()
    s3.put_object(Bucket=bucket, Key=tile, Body=original[::-1])
    prune = ["archive", "prune", "--data-dir", str(data_dir), "--archive", url, "--hot-days", "0"]
    code, output = cli(*prune)
    assert code == 1, output
    assert "nothing was pruned" in output, output
    assert tile in output, output
    assert query("--developer", "dev_jordan") == everything
    # On a clean bucket the same prune goes through: read back, verified, then removed.
    clean = make_bucket()
    clean_url = f"s3://{clean}"
    assert archive_run(data_dir, clean_url, "--segment-events", "10000", "--no-parquet")[0] == 0
    code, output = cli(*prune[:-4], "--archive", clean_url, "--hot-days", "0")
    assert code == 0, output
    assert "removed seq 0..32767" in output, output
    assert 0 < len(query("--session", "sess_0005")) < len(crossing)
    assert query("--session", "sess_0005", "--archive", clean_url) == crossing
    assert query("--session", "sess_0004", "--archive", clean_url) == pruned
    assert query("--developer", "dev_jordan", "--archive", clean_url) == everything
    key = str(data_dir / "signing.pub")
    result = runner.invoke(
        app,
        ["verify", "--data-dir", str(data_dir), "--key", key, "--trusted-checkpoint", clean_url],
    )
    assert result.exit_code == 0, result.output
    assert "archived, pruned here" in result.output


@pytest.mark.slow
def test_the_gateway_archives_exports_checkpoints_and_prunes_on_its_schedule(
    tmp_path, s3, make_bucket
):
    import socket
    import sqlite3

    data_dir = tmp_path / "ledger"
    fill_ledger(data_dir, 34_000, batch=500, sessions=4)
    bucket = make_bucket()
    url = f"s3://{bucket}/gw"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "trailguard", "serve", "--data-dir", str(data_dir),
        "--port", str(port), "--archive", url, "--archive-every", "2s", "--hot-days", "0",
    ]  # fmt: skip
    log = (tmp_path / "serve.log").open("wb")
    gateway = subprocess.Popen(command, env=os.environ.copy(), stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 240
        pruned = 0
        while time.monotonic() < deadline and gateway.poll() is None:
            db = sqlite3.connect(f"file:{data_dir / 'ledger.sqlite3'}?mode=ro", uri=True)
            try:
                row = db.execute("SELECT value FROM meta WHERE key = 'pruned_before'").fetchone()
            finally:
                db.close()
            pruned = int(row[0]) if row else 0
            if pruned == 32768:  # pruned in chunks of 16384: wait for the last
                break
            time.sleep(0.5)
        assert pruned == 32768, (
            gateway.poll(),
            time.monotonic() - deadline,
            (tmp_path / "serve.log").read_text()[-3000:],
        )
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
    # uvicorn re-raises SIGTERM after a clean shutdown: the exit status is the signal's.
    assert gateway.returncode in (0, -signal.SIGTERM), (tmp_path / "serve.log").read_text()
    keys = all_keys(s3, bucket)
    assert any(key.startswith("gw/checkpoints/") for key in keys)
    code, report = archive_verify(url, data_dir)
    assert code == 0, failures(report)
    key = str(data_dir / "signing.pub")
    result = runner.invoke(
        app,
        ["verify", "--data-dir", str(data_dir), "--key", key, "--trusted-checkpoint", url,
         "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["archived"] == 32768
    alerts = runner.invoke(
        app, ["query", "--data-dir", str(data_dir), "--type", "alert", "--format", "json"]
    )
    assert "hot_events_pruned" in alerts.stdout


def test_serve_refuses_an_unlocked_archive_bucket_before_recording_anything(tmp_path, make_bucket):
    bucket = make_bucket(locked=False)
    code, output = cli(
        "serve", "--data-dir", str(tmp_path / "ledger"), "--port", "0",
        "--archive", f"s3://{bucket}", "--archive-every", "1h",
    )  # fmt: skip
    assert code == 2
    assert "no Object Lock" in output
    assert not (tmp_path / "ledger").exists()
    code, output = cli(
        "serve", "--data-dir", str(tmp_path / "ledger"), "--archive", f"s3://{bucket}",
        "--archive-every", "soon",
    )  # fmt: skip
    assert code == 2
    assert "like 1h, 1d or 7d" in output
