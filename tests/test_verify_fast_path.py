"""The verifier's fast path (plain row tuples, signed fields decoded into one struct, the
seq range read as count/min/max) finds exactly what the field-by-field path finds.

Each test tampers with a real SQLite ledger and verifies it twice: through SQLiteStore, which
offers the fast row and seq-range reads, and through the same store seen only through the
generic Store protocol (rows() and seqs()), the path the PostgreSQL store takes. Both must
report the same findings, and the tampering must be among them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tamper
from conftest import sample_events
from trailguard.ledger.keys import VERIFIER_KEY_FILE, load_verifier
from trailguard.ledger.verify import BLOCK_SIZE, VerificationReport, verify_ledger
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.base import LedgerRow
from trailguard.store.sqlite import SQLiteStore


class ProtocolOnly:
    """A SQLiteStore seen only through the Store protocol: no verification_rows, no seq_span."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def rows(self, start: int = 0, end: int | None = None) -> Iterator[LedgerRow]:
        return self._store.rows(start, end)

    def __getattr__(self, name: str) -> Any:
        if name in ("verification_rows", "seq_span"):
            raise AttributeError(name)
        return getattr(self._store, name)


def open_store(data_dir: Path, fast: bool) -> Any:
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    return store if fast else ProtocolOnly(store)


def run_verify(data_dir: Path, *, fast: bool, workers: int = 1) -> VerificationReport:
    opener = functools.partial(open_store, data_dir, fast)
    verifier = load_verifier(str(data_dir / VERIFIER_KEY_FILE))
    store = opener()
    try:
        return verify_ledger(store, opener, verifier, workers=workers)
    finally:
        store.close()


def both_paths(data_dir: Path) -> list[str]:
    """Verify on both paths; assert they agree; return the failures."""
    fast = run_verify(data_dir, fast=True)
    generic = run_verify(data_dir, fast=False)
    assert [str(f) for f in fast.findings] == [str(f) for f in generic.findings]
    assert (fast.events, fast.checkpoints, fast.last_event_type, fast.first_event_type) == (
        generic.events,
        generic.checkpoints,
        generic.last_event_type,
        generic.first_event_type,
    )
    return [str(f) for f in fast.failures]


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    """A closed ledger of 400 events, a checkpoint every 50."""
    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=50))
    ledger.append_many(sample_events(400), chunk=50)
    ledger.close()
    return data_dir


def test_untouched_ledger_is_intact_on_both_paths_and_ends_with_gateway_stop(ledger_dir):
    assert both_paths(ledger_dir) == []
    report = run_verify(ledger_dir, fast=True)
    assert report.intact
    assert report.first_event_type == "gateway_start"
    assert report.last_event_type == "gateway_stop"


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        (
            "UPDATE events SET session_id = 'sess_other' WHERE seq = {seq}",
            "index column for sessionId",
        ),
        ("UPDATE events SET tool = 'Write' WHERE seq = {seq}", "index column for tool"),
        ("UPDATE events SET tool = NULL WHERE seq = {seq}", "index column for tool"),
        (
            "UPDATE events SET developer_id = x'00ff' WHERE seq = {seq}",
            "index column for developerId",
        ),
        ("UPDATE events SET event_type = 'prompt' WHERE seq = {seq}", "index column for eventType"),
        ("UPDATE events SET timestamp = 7 WHERE seq = {seq}", "index column for timestamp"),
        (
            "UPDATE events SET leaf_hash = zeroblob(32) WHERE seq = {seq}",
            "event bytes were changed",
        ),
        ("UPDATE events SET body = CAST(body AS TEXT) WHERE seq = {seq}", "not bytes"),
        ("UPDATE events SET body = x'7b' WHERE seq = {seq}", "not JSON"),
        ("UPDATE events SET body = CAST('[1]' AS BLOB) WHERE seq = {seq}", "not a JSON object"),
    ],
)
def test_each_kind_of_row_damage_is_named_alike_on_both_paths(ledger_dir, sql, named):
    db = tamper.connect(ledger_dir)
    (seq,) = db.execute(  # a tool call: every index column holds a value
        "SELECT min(seq) FROM events WHERE event_type = 'tool_invocation' AND seq >= 90"
    ).fetchone()
    db.close()
    tamper.execute(ledger_dir, sql.format(seq=seq))
    found = both_paths(ledger_dir)
    assert any(f.startswith(f"seq {seq}: ") and named in f for f in found), found


def test_an_event_whose_own_seq_was_edited_and_rehashed_is_named(ledger_dir):
    tamper.edit_event(ledger_dir, 120, lambda event: event.update(seq=121))
    tamper.rehash_leaf(ledger_dir, 120)
    found = both_paths(ledger_dir)
    assert any(f.startswith("seq 120: the event's own seq disagrees") for f in found), found


def test_a_gap_is_found_when_the_seq_range_looks_whole_by_count(ledger_dir):
    # One row deleted and one added past the end: the count is unchanged, the range is not.
    db = tamper.connect(ledger_dir)
    (high,) = db.execute("SELECT max(seq) FROM events").fetchone()
    db.execute("DELETE FROM events WHERE seq = 150")
    db.execute(
        "INSERT INTO events SELECT ?, event_id || '-copy', timestamp, event_type, session_id, "
        "developer_id, project_id, tool, leaf_hash, body FROM events WHERE seq = ?",
        (high + 1, high),
    )
    db.commit()
    db.close()
    found = both_paths(ledger_dir)
    assert any("events seq 150..150 are missing" in f for f in found), found


def test_blocks_checked_in_two_processes_report_what_one_process_reports(tmp_path):
    data_dir = tmp_path / "big"
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=1000))
    ledger.append_many(sample_events(2 * BLOCK_SIZE + 500), chunk=1000)
    ledger.close()
    tamper.execute(data_dir, f"UPDATE events SET project_id = 'x' WHERE seq = {BLOCK_SIZE + 7}")
    one = run_verify(data_dir, fast=True, workers=1)
    two = run_verify(data_dir, fast=True, workers=2)
    assert [str(f) for f in one.findings] == [str(f) for f in two.findings]
    db = tamper.connect(data_dir)
    (rows,) = db.execute("SELECT count(*) FROM events").fetchone()
    db.close()
    assert one.events == two.events == rows > 2 * BLOCK_SIZE
    assert any(f.where == f"seq {BLOCK_SIZE + 7}" for f in one.failures)
