"""Repacking a month that has ended in session order (schema version 2): the same rows, the
same signed tree, every database rule still in force on the new partition, and each session's
events on few heap pages. Each test has its own fresh database (tests/pg.py)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from conftest import sample_events
from pg import Database
from trailguard.events import Event
from trailguard.ledger.note import Signer
from trailguard.ledger.verify import verify_ledger
from trailguard.ledger.writer import LedgerConfig

psycopg = pytest.importorskip("psycopg")

from trailguard.ledger.shared import SharedLedger  # noqa: E402
from trailguard.store.postgres import PostgresStore, schema  # noqa: E402
from trailguard.store.postgres.connect import open_connection  # noqa: E402

FAST = LedgerConfig(checkpoint_every_events=50, checkpoint_interval_seconds=3600.0)
SESSIONS = 8


@pytest.fixture
def db(pg_database: Database) -> Database:
    pg_database.install()
    return pg_database


def interleaved_events_of_march_2025(per_session: int) -> list[Event]:
    """``SESSIONS`` sessions taking turns, one event each, all in March 2025."""
    streams = [
        list(sample_events(per_session, session=f"sess_{number:04d}")) for number in range(SESSIONS)
    ]
    events = []
    for position in range(per_session):
        for number, stream in enumerate(streams):
            second = position * SESSIONS + number
            moment = f"2025-03-{1 + second // 86400:02d}T{second // 3600 % 24:02d}:" \
                     f"{second // 60 % 60:02d}:{second % 60:02d}.000Z"  # fmt: skip
            events.append(stream[position].model_copy(update={"timestamp": moment}))
    return events


def fill(db: Database, tmp_path: Path, per_session: int = 60) -> None:
    ledger = SharedLedger.open(db.gateway_url, config=FAST, key_file=tmp_path / "signing.key")
    try:
        ledger.append_many(interleaved_events_of_march_2025(per_session))
    finally:
        ledger.close()


def snapshot(db: Database) -> list[tuple[object, ...]]:
    return [tuple(row) for row in db.execute("SELECT * FROM events ORDER BY seq")]


def heap_pages_of(db: Database, session: str) -> int:
    rows = db.execute(
        "SELECT count(DISTINCT (ctid::text::point)[0]) FROM events_2025_03 WHERE session_id = %s",
        (session,),
    )
    return int(rows[0][0])


def repack(db: Database, month: str) -> int:
    conn = open_connection(db.owner_url)
    try:
        return schema.repack_month(conn, month)
    finally:
        conn.close()


def verified(db: Database, tmp_path: Path) -> bool:
    opener = functools.partial(PostgresStore, db.gateway_url, read_only=True)
    verifier = Signer.from_string((tmp_path / "signing.key").read_text()).verifier
    store = opener()
    try:
        return verify_ledger(store, opener, verifier, workers=1).intact
    finally:
        store.close()


def test_a_repacked_month_holds_the_same_rows_with_each_session_together(db, tmp_path):
    fill(db, tmp_path)
    before = snapshot(db)
    spread = heap_pages_of(db, "sess_0003")
    march = sum(1 for row in before if str(row[2]).startswith("2025-03"))
    assert repack(db, "2025-03") == march
    assert snapshot(db) == before
    assert heap_pages_of(db, "sess_0003") < spread / 2
    assert verified(db, tmp_path)
    store = PostgresStore(db.gateway_url, read_only=True)
    try:
        from trailguard.store.base import EventFilter

        found = list(store.query(EventFilter(session_id="sess_0003")))
    finally:
        store.close()
    assert [row.seq for row in found] == sorted(row.seq for row in found)
    assert len(found) == sum(1 for row in before if row[4] == "sess_0003")


def test_the_repacked_partition_is_still_append_only_and_the_ledger_still_grows(db, tmp_path):
    fill(db, tmp_path, per_session=10)
    repack(db, "2025-03")
    role = db.gateway_role
    for statement in (
        "UPDATE events SET body = '\\x00' WHERE seq = 3",
        "DELETE FROM events WHERE seq = 3",
        "UPDATE events_2025_03 SET body = '\\x00' WHERE seq = 3",
        "DELETE FROM events_2025_03",
        "TRUNCATE events_2025_03",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(statement, user=role)
    for statement in ("UPDATE events_2025_03 SET body = '\\x00'", "TRUNCATE events_2025_03"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(statement)  # the superuser too: the triggers came back
    ledger = SharedLedger.open(db.gateway_url, config=FAST, key_file=tmp_path / "signing.key")
    try:
        ledger.append_many(list(sample_events(20, session="sess_later")))
    finally:
        ledger.close()
    assert verified(db, tmp_path)


def test_only_a_month_that_has_ended_can_be_repacked(db, tmp_path):
    fill(db, tmp_path, per_session=5)
    from datetime import UTC, datetime

    this_month = datetime.now(UTC).strftime("%Y-%m")
    db.execute("SELECT ensure_month_partition(%s)", (this_month,))
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="has not ended"):
        repack(db, this_month)
    with pytest.raises(psycopg.errors.RaiseException, match="no partition"):
        repack(db, "2024-07")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("SELECT repack_month_partition('2025-03')", user=db.gateway_role)


def test_a_version_1_schema_is_migrated_to_version_2_in_place(pg_database, tmp_path):
    conn = open_connection(pg_database.owner_url)
    try:
        with conn.transaction():
            conn.execute("CREATE SCHEMA trailguard")
            conn.execute("SET LOCAL search_path = trailguard, pg_temp")
            conn.execute(schema.MIGRATIONS[0].encode())
            conn.execute("UPDATE schema_version SET version = 1")
        assert schema.installed_version(conn) == 1
        assert schema.install(conn, pg_database.gateway_role) is True
        assert schema.installed_version(conn) == schema.SCHEMA_VERSION == 2
    finally:
        conn.close()
    fill(pg_database, tmp_path, per_session=5)
    assert repack(pg_database, "2025-03") == 5 * 8
    assert verified(pg_database, tmp_path)
