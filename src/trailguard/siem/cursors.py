"""Each sink's durable cursor and status, in ``sinks.sqlite3`` of the data directory.

The cursor is the ``seq`` of the next event the sink has not acknowledged; a forwarder moves it
only after the sink acknowledged everything before it, in a durable transaction, so a crash
repeats at most what was in flight. The file is operational state, never signed and never part
of the record: it holds no event content and no secret. The gateway's forwarders write it; the
CLI reads it (``sinks status``) and asks a paused sink to resume.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from trailguard.events import utc_now
from trailguard.store.base import StoreError

SINKS_FILE: Final = "sinks.sqlite3"

_MIGRATIONS: Final = (
    """
    CREATE TABLE sinks (
        name              TEXT PRIMARY KEY,
        destination       TEXT NOT NULL,
        cursor            INTEGER NOT NULL,
        delivered         INTEGER NOT NULL DEFAULT 0,
        state             TEXT NOT NULL DEFAULT 'starting',
        state_reason      TEXT,
        last_error        TEXT,
        last_error_at     TEXT,
        last_delivered_at TEXT,
        failures          INTEGER NOT NULL DEFAULT 0,
        resume_requested  INTEGER NOT NULL DEFAULT 0,
        created_at        TEXT NOT NULL,
        updated_at        TEXT NOT NULL
    ) WITHOUT ROWID
    """,
)

_COLUMNS: Final = (
    "name, destination, cursor, delivered, state, state_reason, last_error, last_error_at, "
    "last_delivered_at, failures, resume_requested, created_at, updated_at"
)


@dataclass(frozen=True)
class SinkRecord:
    name: str
    destination: str
    cursor: int
    """The ``seq`` of the first event not yet acknowledged by the sink."""
    delivered: int
    state: str
    state_reason: str | None
    last_error: str | None
    last_error_at: str | None
    last_delivered_at: str | None
    failures: int
    resume_requested: bool
    created_at: str
    updated_at: str


def _record(row: tuple[object, ...]) -> SinkRecord:
    values = list(row)
    values[10] = bool(values[10])
    return SinkRecord(*values)  # type: ignore[arg-type]


class CursorStore:
    """``sinks.sqlite3``: one connection per thread (each forwarder writes from its own),
    WAL with ``synchronous=FULL`` so an acknowledged cursor survives a crash."""

    def __init__(self, data_dir: Path, *, create: bool = True) -> None:
        self.path = data_dir / SINKS_FILE
        if not create and not self.path.exists():
            raise StoreError(
                f"no sink cursors at {self.path}: no gateway has run sinks on this data directory"
            )
        if create and not self.path.exists():
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        db = self._db()
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(_MIGRATIONS):
                raise StoreError(f"{self.path} is newer than this trailguard: upgrade trailguard")
            for number in range(version, len(_MIGRATIONS)):
                with db:
                    db.execute(_MIGRATIONS[number])
                    db.execute(f"PRAGMA user_version = {number + 1}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from None

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, check_same_thread=False)
                db.execute("PRAGMA busy_timeout = 5000")
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open {self.path}: {exc}") from None
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        try:
            db = self._db()
            with db:
                db.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"could not write {self.path}: {exc}") from None

    def open_sink(self, name: str, destination: str, start_cursor: int) -> SinkRecord:
        """The sink's record, created at ``start_cursor`` the first time the sink is seen."""
        now = utc_now()
        self._write(
            "INSERT INTO sinks (name, destination, cursor, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET destination = "
            "excluded.destination, updated_at = excluded.updated_at",
            (name, destination, start_cursor, now, now),
        )
        record = self.get(name)
        assert record is not None
        return record

    def advance(self, name: str, cursor: int, delivered: int) -> None:
        """Move the cursor to ``cursor`` after ``delivered`` more events were acknowledged."""
        now = utc_now()
        self._write(
            "UPDATE sinks SET cursor = ?, delivered = delivered + ?, last_delivered_at = "
            "CASE WHEN ? > 0 THEN ? ELSE last_delivered_at END, updated_at = ? WHERE name = ? "
            "AND cursor <= ?",
            (cursor, delivered, delivered, now, now, name, cursor),
        )

    def set_state(self, name: str, state: str, reason: str | None = None) -> None:
        self._write(
            "UPDATE sinks SET state = ?, state_reason = ?, updated_at = ? WHERE name = ?",
            (state, reason, utc_now(), name),
        )

    def record_failure(self, name: str, error: str) -> None:
        now = utc_now()
        self._write(
            "UPDATE sinks SET last_error = ?, last_error_at = ?, failures = failures + 1, "
            "updated_at = ? WHERE name = ?",
            (error[:1000], now, now, name),
        )

    def request_resume(self, name: str) -> bool:
        """Ask the gateway to resume a paused sink (from any process); False if unknown."""
        try:
            db = self._db()
            with db:
                changed = db.execute(
                    "UPDATE sinks SET resume_requested = 1, updated_at = ? WHERE name = ?",
                    (utc_now(), name),
                ).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"could not write {self.path}: {exc}") from None
        return bool(changed)

    def take_resume_request(self, name: str) -> bool:
        try:
            db = self._db()
            with db:
                changed = db.execute(
                    "UPDATE sinks SET resume_requested = 0 WHERE name = ? AND resume_requested = 1",
                    (name,),
                ).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"could not write {self.path}: {exc}") from None
        return bool(changed)

    def get(self, name: str) -> SinkRecord | None:
        try:
            query = f"SELECT {_COLUMNS} FROM sinks WHERE name = ?"  # noqa: S608 - fixed columns
            found = self._db().execute(query, (name,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"could not read {self.path}: {exc}") from None
        return None if found is None else _record(found)

    def all(self) -> list[SinkRecord]:
        try:
            query = f"SELECT {_COLUMNS} FROM sinks ORDER BY name"  # noqa: S608 - fixed columns
            rows = self._db().execute(query).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"could not read {self.path}: {exc}") from None
        return [_record(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()
