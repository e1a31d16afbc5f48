"""The gateway state (trailguard.store.state) on SQLite, in its own file ``state.sqlite3``.

It is kept apart from the ledger so that the ledger file has exactly one writer (the ledger
thread). This file has several: the gateway's threads and CLI processes (`token create`,
`sessions kill`), arbitrated by SQLite's locking. A data directory from before the split keeps
its state in ``ledger.sqlite3``; it is copied here once, on first open.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence
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
)
from trailguard.store.state_sql import SESSION_COLUMNS, SqlGatewayState

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


_REPLACE_SESSION = (
    f"INSERT INTO sessions ({SESSION_COLUMNS}) "  # noqa: S608
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
    "developer_id = excluded.developer_id, project_id = excluded.project_id, "
    "started_at = excluded.started_at, last_event_at = excluded.last_event_at, "
    "ended_at = excluded.ended_at, end_reason = excluded.end_reason, "
    "raw_end_reason = excluded.raw_end_reason, never_started = excluded.never_started"
)
_MERGE_SESSION = (
    f"INSERT INTO sessions ({SESSION_COLUMNS}) "  # noqa: S608
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
    "developer_id = coalesce(sessions.developer_id, excluded.developer_id), "
    "project_id = coalesce(excluded.project_id, sessions.project_id), "
    "started_at = coalesce(sessions.started_at, excluded.started_at), "
    "last_event_at = max(sessions.last_event_at, excluded.last_event_at), "
    "ended_at = coalesce(sessions.ended_at, excluded.ended_at), "
    "end_reason = coalesce(sessions.end_reason, excluded.end_reason), "
    "raw_end_reason = CASE WHEN sessions.ended_at IS NULL THEN excluded.raw_end_reason "
    "ELSE sessions.raw_end_reason END, "
    "never_started = sessions.never_started AND excluded.never_started"
)


IDENTITIES_REMEMBERED = 1024
"""Tokens whose identity :meth:`GatewayState.identify` keeps at once (then it starts again)."""


class GatewayState(SqlGatewayState):
    """Each thread gets its own connection, and every statement is run to completion and its
    cursor closed: a connection shared across threads, or a half-read cursor holding an old
    read snapshot, makes SQLite writers wait out the busy timeout."""

    shared = False
    """Set by ``serve --workers N``: several processes share this file as replicas share a
    PostgreSQL state (trailguard.gateway.sessions)."""

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
        self._identities: dict[str, tuple[tuple[int, int], Identity]] = {}
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
            self._identities.clear()
        self._local = threading.local()

    # -- tokens ---------------------------------------------------------------------------------

    def identify(self, token: str) -> Identity | None:
        """The token's identity, remembered until anything commits to this file: every hook
        request asks, and a read of the tokens table costs 30-45 µs of CPU once other processes
        write the file (SQLite drops its page cache), against 3 µs for ``PRAGMA data_version``,
        which changes on this connection whenever another connection (another thread, worker
        or the CLI revoking a token) has committed. This object's own token changes clear the
        memory (``_tokens_changed``); a version is only comparable on its own connection, so
        the connection is part of it. Unknown tokens are never remembered."""
        token_hash = hash_token(token)
        version = (id(self._connection()), self._run_query("PRAGMA data_version", ())[0][0])
        remembered = self._identities.get(token_hash)
        if remembered is not None and remembered[0] == version:
            return remembered[1]
        identity = self._identity_of(token_hash)
        if identity is not None:
            if len(self._identities) >= IDENTITIES_REMEMBERED:
                self._identities.clear()
            self._identities[token_hash] = (version, identity)
        return identity

    def _tokens_changed(self) -> None:
        self._identities.clear()

    def _run_query(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        try:
            cursor = self._connection().execute(sql, tuple(params))
            try:
                return cursor.fetchall()
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read gateway state: {exc}") from None

    def _run_write(self, sql: str, params: Sequence[object]) -> int:
        try:
            cursor = self._connection().execute(sql, tuple(params))
            try:
                return cursor.rowcount
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot update gateway state: {exc}") from None

    # -- sessions -------------------------------------------------------------------------------

    def save_session(self, summary: SessionSummary) -> None:
        """One gateway process: its view of a session replaces the stored one. Several
        worker processes (``shared``): their views merge as replicas' do on PostgreSQL (the
        latest activity wins, a start or an end once recorded stays)."""
        self._write(
            _MERGE_SESSION if self.shared else _REPLACE_SESSION,
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

    def remove_pending_events(self, queue_ids: Sequence[int]) -> None:
        for queue_id in queue_ids:
            self._write("DELETE FROM pending_events WHERE queue_id = ?", (queue_id,))


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]
