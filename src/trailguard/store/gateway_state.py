"""The gateway state (trailguard.store.state) on SQLite, in its own file ``state.sqlite3``.

It is kept apart from the ledger so that the ledger file has exactly one writer (the ledger
thread). This file has several: the gateway's threads and CLI processes (`token create`,
`sessions kill`), arbitrated by SQLite's locking. A data directory from before the split keeps
its state in ``ledger.sqlite3``; it is copied here once, on first open.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from trailguard.events import utc_now
from trailguard.store.base import StoreError
from trailguard.store.sqlite import DATABASE_FILE
from trailguard.store.state import (
    ROLES,
    GatewayStateStore,
    Identity,
    KillRequest,
    Role,
    SessionSummary,
    TokenRecord,
    hash_token,
    new_token,
)

__all__ = [
    "ROLES",
    "STATE_FILE",
    "GatewayState",
    "GatewayStateStore",
    "Identity",
    "KillRequest",
    "Role",
    "SessionSummary",
    "TokenRecord",
    "hash_token",
]

STATE_FILE: Final = "state.sqlite3"

# Each entry upgrades the schema by one version (PRAGMA user_version). Never edit a released one.
_MIGRATIONS: Final = (
    """
    CREATE TABLE tokens (
        token_hash   TEXT PRIMARY KEY,
        token_id     TEXT NOT NULL UNIQUE,
        developer_id TEXT NOT NULL,
        role         TEXT NOT NULL CHECK (role IN ('agent', 'auditor', 'admin')),
        created_at   TEXT NOT NULL,
        revoked_at   TEXT,
        projects     TEXT NOT NULL DEFAULT '[]'
    ) WITHOUT ROWID;

    CREATE TABLE sessions (
        session_id     TEXT PRIMARY KEY,
        developer_id   TEXT,
        project_id     TEXT,
        started_at     TEXT,
        last_event_at  TEXT NOT NULL,
        ended_at       TEXT,
        end_reason     TEXT,
        raw_end_reason TEXT,
        never_started  INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX sessions_by_developer ON sessions (developer_id, last_event_at);
    CREATE INDEX sessions_by_project   ON sessions (project_id, last_event_at);

    CREATE TABLE session_kills (
        session_id   TEXT PRIMARY KEY,
        requested_at TEXT NOT NULL,
        requested_by TEXT,
        reason       TEXT,
        recorded_at  TEXT
    ) WITHOUT ROWID;
    """,
    """
    CREATE TABLE pending_events (
        queue_id  INTEGER PRIMARY KEY AUTOINCREMENT,
        document  TEXT NOT NULL,
        queued_at TEXT NOT NULL
    );
    """,
)
_LEGACY_TABLES: Final = (
    ("tokens", "token_hash, token_id, developer_id, role, created_at, revoked_at"),
    (
        "sessions",
        "session_id, developer_id, project_id, started_at, last_event_at, ended_at, "
        "end_reason, raw_end_reason, never_started",
    ),
    ("session_kills", "session_id, requested_at, requested_by, reason, recorded_at"),
)


def _token(row: tuple[Any, ...]) -> TokenRecord:
    token_id, developer, role, created, revoked, projects = row
    return TokenRecord(token_id, developer, role, created, revoked, tuple(json.loads(projects)))


def _summary(row: tuple[Any, ...]) -> SessionSummary:
    values = list(row)
    values[-1] = bool(values[-1])
    return SessionSummary(*values)


class GatewayState(GatewayStateStore):
    """Each thread gets its own connection, and every statement is run to completion and its
    cursor closed: a connection shared across threads, or a half-read cursor holding an old
    read snapshot, makes SQLite writers wait out the busy timeout."""

    def __init__(self, data_dir: Path, *, create: bool = False) -> None:
        """Open the state of an existing data directory; only the ledger's first start
        (``create``) may make one: a mistyped --data-dir must fail, not start an empty state."""
        self.data_dir = data_dir
        self.path = data_dir / STATE_FILE
        if not create and not (data_dir / DATABASE_FILE).exists():
            raise StoreError(
                f"no trailguard ledger in {data_dir}: is --data-dir right? "
                "(`trailguard serve` or `trailguard init` creates one)"
            )
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._migrate(self._connection())

    # -- connections and schema ---------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                if not self.path.exists():
                    # Create the file 0600 ourselves: sqlite3 would use the process umask.
                    os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
                db = sqlite3.connect(
                    f"file:{self.path}", uri=True, isolation_level=None, check_same_thread=False
                )
                db.execute("PRAGMA busy_timeout = 5000")
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
            except (sqlite3.Error, OSError) as exc:
                raise StoreError(f"cannot open gateway state {self.path}: {exc}") from None
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(_MIGRATIONS):
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this trailguard "
                    f"understands ({len(_MIGRATIONS)}): upgrade trailguard"
                )
            for number in range(version, len(_MIGRATIONS)):
                db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _statements(_MIGRATIONS[number]):
                        db.execute(statement)
                    if number == 0:
                        self._import_legacy(db)
                    db.execute(f"PRAGMA user_version = {number + 1}")
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot set up gateway state {self.path}: {exc}") from None

    def _import_legacy(self, db: sqlite3.Connection) -> None:
        """Copy the state a data directory kept inside ledger.sqlite3 before the split (read
        only: the ledger file is never written from here)."""
        legacy = self.data_dir / DATABASE_FILE
        if not legacy.exists():
            return
        db.execute("ATTACH DATABASE ? AS legacy", (f"file:{legacy}?mode=ro",))
        try:
            present = {
                name
                for (name,) in db.execute(
                    "SELECT name FROM legacy.sqlite_master WHERE type='table'"
                )
            }
            for table, columns in _LEGACY_TABLES:
                if table in present:
                    db.execute(
                        f"INSERT OR IGNORE INTO main.{table} ({columns}) "  # noqa: S608
                        f"SELECT {columns} FROM legacy.{table}"
                    )
        finally:
            db.execute("DETACH DATABASE legacy")

    def close(self) -> None:
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    def _rows(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            cursor = self._connection().execute(sql, params)
            try:
                return cursor.fetchall()
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read gateway state: {exc}") from None

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        try:
            cursor = self._connection().execute(sql, params)
            try:
                return cursor.rowcount
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot update gateway state: {exc}") from None

    # -- tokens ---------------------------------------------------------------------------------

    def create_token(
        self, developer_id: str, role: Role, projects: Sequence[str] = ()
    ) -> tuple[str, TokenRecord]:
        token, record = new_token(developer_id, role, projects, utc_now())
        self._write(
            "INSERT INTO tokens (token_hash, token_id, developer_id, role, created_at, projects) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                hash_token(token),
                record.token_id,
                developer_id,
                role,
                record.created_at,
                json.dumps(list(record.projects)),
            ),
        )
        return token, record

    def identify(self, token: str) -> Identity | None:
        rows = self._rows(
            "SELECT developer_id, role, token_id, projects, created_at FROM tokens "
            "WHERE token_hash = ? AND revoked_at IS NULL",
            (hash_token(token),),
        )
        if not rows:
            return None
        developer, role, token_id, projects, created = rows[0]
        return Identity(developer, role, token_id, tuple(json.loads(projects)), created)

    def revoke_token(self, token_id: str) -> TokenRecord | None:
        changed = self._write(
            "UPDATE tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
            (utc_now(), token_id),
        )
        if not changed:
            return None
        rows = self._rows(
            "SELECT token_id, developer_id, role, created_at, revoked_at, projects FROM tokens "
            "WHERE token_id = ?",
            (token_id,),
        )
        return _token(rows[0])

    def tokens(self) -> list[TokenRecord]:
        """Every token, newest first (never the tokens themselves)."""
        return [
            _token(row)
            for row in self._rows(
                "SELECT token_id, developer_id, role, created_at, revoked_at, projects "
                "FROM tokens ORDER BY created_at DESC"
            )
        ]

    # -- sessions -------------------------------------------------------------------------------

    def save_session(self, summary: SessionSummary) -> None:
        self._write(
            "INSERT INTO sessions (session_id, developer_id, project_id, started_at, "
            "last_event_at, ended_at, end_reason, raw_end_reason, never_started) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
            "developer_id = excluded.developer_id, project_id = excluded.project_id, "
            "started_at = excluded.started_at, last_event_at = excluded.last_event_at, "
            "ended_at = excluded.ended_at, end_reason = excluded.end_reason, "
            "raw_end_reason = excluded.raw_end_reason, never_started = excluded.never_started",
            (
                summary.session_id,
                summary.developer_id,
                summary.project_id,
                summary.started_at,
                summary.last_event_at,
                summary.ended_at,
                summary.end_reason,
                summary.raw_end_reason,
                int(summary.never_started),
            ),
        )

    def session(self, session_id: str) -> SessionSummary | None:
        rows = self._rows("SELECT * FROM sessions WHERE session_id = ?", (session_id,))
        return _summary(rows[0]) if rows else None

    def session_ids_starting_with(self, prefix: str, limit: int = 20) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return [
            row[0]
            for row in self._rows(
                "SELECT session_id FROM sessions WHERE session_id LIKE ? ESCAPE '\\' "
                "ORDER BY session_id LIMIT ?",
                (escaped + "%", limit),
            )
        ]

    def sessions(
        self,
        *,
        developer_id: str | None = None,
        project_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        active: bool | None = None,
    ) -> Iterator[SessionSummary]:
        clauses: list[str] = []
        params: list[object] = []
        for column, value in (("developer_id", developer_id), ("project_id", project_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            clauses.append("last_event_at >= ?")
            params.append(since)
        if until is not None:
            clauses.append("coalesce(started_at, last_event_at) < ?")
            params.append(until)
        if active is not None:
            clauses.append("ended_at IS NULL" if active else "ended_at IS NOT NULL")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        for row in self._rows(
            f"SELECT * FROM sessions {where} ORDER BY coalesce(started_at, last_event_at)",  # noqa: S608
            tuple(params),
        ):
            yield _summary(row)

    # -- kill requests --------------------------------------------------------------------------

    def request_kill(self, session_id: str, requested_by: str | None, reason: str | None) -> bool:
        return (
            self._write(
                "INSERT INTO session_kills (session_id, requested_at, requested_by, reason) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO NOTHING",
                (session_id, utc_now(), requested_by, reason),
            )
            > 0
        )

    def pending_kills(self) -> list[KillRequest]:
        return [
            KillRequest(*row)
            for row in self._rows(
                "SELECT session_id, requested_at, requested_by, reason FROM session_kills "
                "WHERE recorded_at IS NULL ORDER BY requested_at"
            )
        ]

    def killed_sessions(self) -> dict[str, KillRequest]:
        return {
            row[0]: KillRequest(*row)
            for row in self._rows(
                "SELECT session_id, requested_at, requested_by, reason FROM session_kills"
            )
        }

    def mark_kill_recorded(self, session_id: str) -> None:
        self._write(
            "UPDATE session_kills SET recorded_at = ? WHERE session_id = ?", (utc_now(), session_id)
        )

    # -- events queued for the ledger -----------------------------------------------------------

    def enqueue_events(self, documents: Sequence[str]) -> None:
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO pending_events (document, queued_at) VALUES (?, ?)",
                    [(document, utc_now()) for document in documents],
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot queue events in {self.path}: {exc}") from None

    def pending_events(self, limit: int = 500) -> list[tuple[int, str]]:
        return [
            (int(queue_id), str(document))
            for queue_id, document in self._rows(
                "SELECT queue_id, document FROM pending_events ORDER BY queue_id LIMIT ?",
                (limit,),
            )
        ]

    def remove_pending_events(self, queue_ids: Sequence[int]) -> None:
        for queue_id in queue_ids:
            self._write("DELETE FROM pending_events WHERE queue_id = ?", (queue_id,))


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]
