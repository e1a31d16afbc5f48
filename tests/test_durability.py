"""Durability: a SIGKILLed writer loses no acknowledged event; a full or read-only disk makes
appends fail loudly and leaves nothing half-written."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from conftest import sample_events, verify_dir
from trailguard.ledger.writer import Ledger, LedgerConfig, LedgerError, LedgerWriteError
from trailguard.store.sqlite import SQLiteStore

TESTS = Path(__file__).parent


def stored_ids(data_dir: Path) -> dict[str, int]:
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        return {row.event_id: row.seq for row in store.rows()}
    finally:
        store.close()


@pytest.mark.slow
def test_sigkill_mid_load_loses_no_acknowledged_event(tmp_path):
    data_dir = tmp_path / "ledger"
    writer = subprocess.Popen(
        [sys.executable, str(TESTS / "crash_writer.py"), str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(TESTS.parent / "src")},
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "READY"
    acknowledged: dict[str, int] = {}
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        line = writer.stdout.readline()
        if line.startswith("ACK "):
            _, seq, event_id = line.split()
            acknowledged[event_id] = int(seq)
    writer.send_signal(signal.SIGKILL)  # mid-load: appends are still in flight
    writer.wait(timeout=10)
    for line in writer.stdout:  # acks printed just before the kill count too
        if line.startswith("ACK "):
            _, seq, event_id = line.split()
            acknowledged[event_id] = int(seq)

    assert len(acknowledged) > 100, "the writer made too little progress to test anything"
    stored = stored_ids(data_dir)
    lost = {e: s for e, s in acknowledged.items() if stored.get(e) != s}
    assert not lost, f"{len(lost)} acknowledged events are missing or moved"
    report = verify_dir(data_dir)
    # Every commit signed its tree head in the same transaction: nothing acknowledged (or even
    # committed) is unsigned after a SIGKILL, so the ledger verifies as it is.
    assert report.intact, report.failures
    assert report.signed_head_size == report.events
    assert report.unsigned_events == 0

    # The next writer records that the previous one did not stop, and continues.
    ledger = Ledger.open(data_dir)
    ledger.append_many(sample_events(10))
    ledger.close()
    report = verify_dir(data_dir)
    assert report.intact, report.failures
    assert any("stopped without gateway_stop" in w.problem for w in report.warnings)


def test_sqlite_full_fails_the_append_loudly_and_stores_nothing_of_it(open_ledger, data_dir):
    ledger = open_ledger(checkpoint_every_events=10_000)
    acknowledged = ledger.append_many(sample_events(20))
    pages = sqlite3.connect(data_dir / "ledger.sqlite3").execute("PRAGMA page_count").fetchone()[0]
    ledger._store._db.execute(f"PRAGMA max_page_count = {pages + 2}")  # the "disk" is now full
    with pytest.raises(LedgerWriteError, match=r"full.*nothing of this batch was stored"):
        ledger.append_many(sample_events(2000))
    ledger._store._db.execute("PRAGMA max_page_count = 1073741823")  # space freed again
    after = ledger.append(sample_events(1)[0])
    assert after.seq == acknowledged[-1].seq + 1  # no gap, no half-written batch
    ledger.close()
    assert verify_dir(data_dir).intact


def _mount_tmpfs(target: Path, size: str) -> None:
    target.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(target)],
        capture_output=True,
    )
    if result.returncode != 0:
        shutil.rmtree(target)
        why = f"cannot mount a tmpfs here: {result.stderr.decode().strip()}"
        if os.environ.get("CI"):
            pytest.fail(f"{why}: CI runs as root and must run the real-disk tests")
        pytest.skip(why)


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 3 MiB file system (tmpfs), so the disk really fills up."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("mounting a small file system needs root, and CI must run this test")
        pytest.skip("mounting a small file system needs root")
    mount_point = tmp_path / "small"
    _mount_tmpfs(mount_point, "3m")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_full_disk_fails_appends_loudly_and_keeps_every_acknowledged_event(small_filesystem):
    data_dir = small_filesystem / "ledger"
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=500))
    acknowledged: dict[str, int] = {}
    error = None
    for _ in range(200):  # bounded: 3 MiB fills long before 200 x 500 events
        batch = sample_events(500)
        try:
            receipts = ledger.append_many(batch)
        except LedgerWriteError as exc:
            error = exc
            break
        acknowledged.update({r.event_id: r.seq for r in receipts})
    assert error is not None, "the file system never filled up"
    assert "disk is full" in str(error) or "full" in str(error)
    try:
        ledger.close()  # small events (stop, checkpoint) may still fit where a batch did not
    except LedgerError as exc:
        assert "full" in str(exc)  # if not, the failure is said, not swallowed

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_filesystem)], check=True)
    stored = stored_ids(data_dir)
    assert all(stored.get(e) == s for e, s in acknowledged.items())
    assert len(stored) >= len(acknowledged)
    report = verify_dir(data_dir)
    assert report.intact, report.failures
    ledger = Ledger.open(data_dir)  # once space is back the ledger carries on
    ledger.append_many(sample_events(5))
    ledger.close()
    assert verify_dir(data_dir).intact


def test_read_only_data_directory_refuses_to_open_for_writing(small_filesystem):
    data_dir = small_filesystem / "ledger"
    ledger = Ledger.open(data_dir)
    ledger.append_many(sample_events(30))
    ledger.close()
    before = stored_ids(data_dir)
    subprocess.run(["mount", "-o", "remount,ro", str(small_filesystem)], check=True)
    try:
        with pytest.raises((LedgerError, OSError)) as caught:
            Ledger.open(data_dir)
        assert "Read-only file system" in str(caught.value) or "read-only" in str(caught.value)
        report = verify_dir(data_dir)  # auditors can still read and verify it
        assert report.intact, report.failures
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_filesystem)], check=True)
    assert stored_ids(data_dir) == before


def test_a_full_disk_is_a_503_naming_the_ledger_health_follows_and_the_gap_is_recorded(
    small_filesystem,
):
    from fastapi.testclient import TestClient

    from trailguard.gateway.app import create_app
    from trailguard.store.gateway_state import GatewayState

    data_dir = small_filesystem / "ledger"
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=10_000))
    state = GatewayState(data_dir)
    token, _ = state.create_token("dev_jordan", "agent")
    state.close()
    filler = small_filesystem / "filler"
    hook = {
        "session_id": "ae1e1885-0000-4000-8000-0000000000d1",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "ls " + "x" * 20_000},
        "tool_use_id": "toolu_disk",
    }
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(ledger)) as client:
        assert client.get("/healthz").status_code == 200
        # Fill the file system for real, leaving nothing for the WAL to grow into.
        with filler.open("wb") as out, contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        answers = [client.post("/hooks/claude-code", json=hook, headers=headers) for _ in range(5)]
        refused = [a for a in answers if a.status_code == 503]
        assert refused, [a.status_code for a in answers]
        assert "disk" in refused[0].json()["detail"] or "full" in refused[0].json()["detail"]
        health = client.get("/healthz")
        assert health.status_code == 503
        assert "cannot write" in health.json()["detail"]

        filler.unlink()  # space is back
        assert client.get("/healthz").status_code == 200
        assert client.post("/hooks/claude-code", json=hook, headers=headers).status_code == 200
    alerts = [
        orjson.loads(row.body)
        for row in SQLiteStore.in_data_dir(data_dir, read_only=True).rows()
        if row.event_type == "alert"
    ]
    gap = next(a for a in alerts if a["alertType"] == "ledger_write_refused")
    assert gap["details"]["refusedEvents"] >= len(refused)
    assert gap["details"]["since"] <= gap["details"]["until"]
    assert verify_dir(data_dir).intact
