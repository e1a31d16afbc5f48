"""The stores: durability settings, schema versions, indexes and retrieval filters. Every test
that takes ``backend`` runs on SQLite and on PostgreSQL, so both behave the same."""

from __future__ import annotations

import sqlite3

import pytest

from backends import LedgerBackend
from conftest import sample_events
from trailguard.events import Prompt
from trailguard.store.base import EventFilter, StoreError
from trailguard.store.sqlite import SCHEMA_VERSION, SQLiteStore


def test_store_uses_wal_with_full_synchronous_commits(tmp_path):
    store = SQLiteStore(tmp_path / "l.sqlite3")
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()
    assert (tmp_path / "l.sqlite3").stat().st_mode & 0o777 == 0o600


def test_new_database_is_migrated_to_the_current_schema_with_its_indexes(tmp_path):
    store = SQLiteStore(tmp_path / "l.sqlite3")
    version = store._db.execute("PRAGMA user_version").fetchone()[0]
    indexes = {
        name for (name,) in store._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    store.close()
    assert version == SCHEMA_VERSION
    assert {
        "events_by_session",
        "events_by_developer",
        "events_by_project",
        "events_by_time",
        "events_by_type",
    } <= indexes


def test_database_from_a_newer_trailguard_is_refused(tmp_path):
    path = tmp_path / "l.sqlite3"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this trailguard understands"):
        SQLiteStore(path)


def test_events_cannot_be_updated_or_deleted_through_sql(backend: LedgerBackend):
    backend.open().append_many(sample_events(3))
    if backend.database is None:
        db = sqlite3.connect(backend.tmp_path / "ledger" / "ledger.sqlite3")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE events SET body = x'00' WHERE seq = 1")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM events WHERE seq = 1")
        db.close()
        return
    import psycopg

    # Even the schema's owner is refused by the triggers (the gateway role lacks the grants).
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        backend.database.execute("UPDATE events SET body = '\\x00' WHERE seq = 1")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        backend.database.execute("DELETE FROM events WHERE seq = 1")


def test_query_filters_by_session_developer_type_and_time_in_chronological_order(
    backend: LedgerBackend,
):
    ledger = backend.open()
    ledger.append_many(
        [
            Prompt(
                prompt="a",
                session_id="s1",
                developer_id="alice",
                timestamp="2026-04-15T10:00:00.000Z",
            ),
            Prompt(
                prompt="b",
                session_id="s2",
                developer_id="bob",
                timestamp="2026-04-15T09:00:00.000Z",
            ),
            Prompt(
                prompt="c",
                session_id="s1",
                developer_id="alice",
                timestamp="2026-04-14T23:59:59.999Z",
            ),
            Prompt(
                prompt="d",
                session_id="s1",
                developer_id="alice",
                timestamp="2026-04-16T00:00:00.000Z",
            ),
        ]
    )
    store = backend.reader()
    try:

        def prompts(**filters: object) -> list[str]:
            rows = store.query(EventFilter(event_type="prompt", **filters))  # type: ignore[arg-type]
            return [row.body.split(b'"prompt":"')[1][:1].decode() for row in rows]

        assert prompts(session_id="s1") == ["c", "a", "d"]
        assert prompts(developer_id="bob") == ["b"]
        april_15 = {"since": "2026-04-15T00:00:00.000Z", "until": "2026-04-16T00:00:00.000Z"}
        assert prompts(**april_15) == ["b", "a"]
        assert prompts(session_id="s1", **april_15) == ["a"]
        assert prompts(session_id="s1", limit=2) == ["c", "a"]
        assert prompts(session_id="nobody") == []
    finally:
        store.close()


def test_read_only_store_of_a_missing_ledger_says_where_it_looked(tmp_path):
    with pytest.raises(StoreError, match=r"no ledger at .* is --data-dir right"):
        SQLiteStore(tmp_path / "absent.sqlite3", read_only=True)


def test_read_only_open_accepts_an_older_schema_without_writing(tmp_path):
    path = tmp_path / "l.sqlite3"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 1")
    db.close()
    before = path.read_bytes()
    store = SQLiteStore(path, read_only=True)
    assert store.tree_size() == 0
    store.close()
    assert path.read_bytes() == before


def test_both_stores_hold_the_same_bytes_answer_the_same_reads_and_verify(backend: LedgerBackend):
    events = sample_events(130, session="sess_b") + sample_events(40, session="sess_a")
    ledger = backend.open(checkpoint_every_events=20)
    receipts = ledger.append_many(events)
    replay = ledger.append(events[5])
    ledger.close()
    assert replay.duplicate
    assert replay.seq == receipts[5].seq
    store = backend.reader()
    try:
        rows = list(store.rows())
        assert [row.seq for row in rows] == list(range(len(rows))) == list(store.seqs())
        assert store.tree_size() == len(rows)
        by_id = {row.event_id: row for row in rows}
        for event, receipt in zip(events, receipts, strict=True):
            row = by_id[event.event_id]
            assert (row.seq, row.leaf_hash) == (receipt.seq, receipt.leaf_hash)
            assert store.row_by_event_id(event.event_id) == row
        assert store.existing_event_ids([events[0].event_id, "nope"]) == {
            events[0].event_id: receipts[0].seq
        }
        assert store.session_ids("sess_") == ["sess_a", "sess_b"]
        assert store.session_ids("sess_b") == ["sess_b"]
        assert store.session_ids("x") == []
        assert [r.seq for r in store.query(EventFilter(session_id="sess_a", tool="bash"))] == [
            receipts[i].seq
            for i in range(130, 170)
            if (i - 130) % 3 != 0  # Bash calls, results
        ]
        last = store.last_row_of_type("checkpoint")
        assert last is not None
        assert last.seq == len(rows) - 1
        assert store.leaf_hashes(3, 6) == [rows[i].leaf_hash for i in (3, 4, 5)]
    finally:
        store.close()
    report = backend.verify()
    assert report.intact, [str(f) for f in report.failures]
    assert report.events == len(rows)


def test_a_restarted_writer_continues_the_same_tree(backend: LedgerBackend):
    first = backend.open()
    first.append_many(sample_events(30))
    first.close()
    second = backend.open()
    receipt = second.append(sample_events(1)[0])
    second.close()
    store = backend.reader()
    try:
        assert receipt.seq < store.tree_size()
        assert [row.seq for row in store.rows()] == list(range(store.tree_size()))
    finally:
        store.close()
    assert backend.verify().intact


def test_a_caller_that_gives_up_waiting_does_not_stop_the_writer(backend: LedgerBackend):
    """A request task cancelled while its append is in flight (a client disconnect) cancels the
    asyncio side of asyncio.wrap_future; the writer must still settle the append and go on."""
    import asyncio

    ledger = backend.open()
    events = sample_events(2)

    async def give_up() -> None:
        waiting = asyncio.ensure_future(asyncio.wrap_future(ledger.submit(events[0])))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(give_up())
    receipt = ledger.append(events[1])
    assert ledger.healthy
    store = backend.reader()
    try:
        assert set(store.existing_event_ids([e.event_id for e in events])) == {
            events[0].event_id,
            events[1].event_id,
        }
        assert receipt.seq < store.tree_size()
    finally:
        store.close()


def test_gateway_state_remembers_an_identity_only_until_something_commits(tmp_path):
    """Every hook request identifies its token; the SQLite state answers from memory while the
    file is unchanged, and reads the tokens table again once any connection has committed."""
    from trailguard.store.gateway_state import GatewayState
    from trailguard.store.state import SessionSummary

    state = GatewayState(tmp_path, create=True)
    token, record = state.create_token("dev_cache", "agent")
    token_reads: list[str] = []
    state._connection().set_trace_callback(
        lambda sql: token_reads.append(sql) if "FROM tokens" in sql else None
    )
    for _ in range(5):
        assert state.identify(token).token_id == record.token_id
    assert len(token_reads) == 1, "an unchanged file is not read again"

    other = GatewayState(tmp_path, create=True)  # another connection (a worker, the CLI)
    stamp = "2026-12-04T00:00:00.000Z"
    other.save_session(
        SessionSummary("sess_x", "dev_cache", None, stamp, stamp, None, None, None, False)
    )
    assert state.identify(token) is not None
    assert len(token_reads) == 2, "a commit by another connection is seen"
    other.revoke_token(record.token_id)
    assert state.identify(token) is None, "a revocation elsewhere holds at once"
    other.close()

    again, again_record = state.create_token("dev_cache", "agent")
    assert state.identify(again) is not None
    state.revoke_token(again_record.token_id)
    assert state.identify(again) is None, "this object's own revocation holds at once"
    assert state.identify("tg_" + "0" * 43) is None
    state.close()
