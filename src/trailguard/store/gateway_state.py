"""The gateway's operational state beside the ledger: API tokens, session summaries, kill requests.

This state is mutable and unsigned. It speeds up authentication and session listing; what an
auditor relies on (a session's start, end and why) is also recorded as events in the ledger.
Any process may open it: the CLI creates tokens and requests kills while the gateway runs.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from trailguard.events import utc_now
from trailguard.store.base import StoreError
from trailguard.store.sqlite import DATABASE_FILE, SQLiteStore

Role = Literal["agent", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("agent", "auditor", "admin")
TOKEN_PREFIX = "tg_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class Identity:
    """Who a request is from, as decided by its token."""

    developer_id: str
    role: Role
    token_id: str


@dataclass(frozen=True)
class SessionSummary:
    session_id: str
    developer_id: str | None
    project_id: str | None
    started_at: str | None
    last_event_at: str
    ended_at: str | None
    end_reason: str | None
    raw_end_reason: str | None
    never_started: bool


@dataclass(frozen=True)
class KillRequest:
    session_id: str
    requested_at: str
    requested_by: str | None
    reason: str | None


def hash_token(token: str) -> str:
    """Tokens are 256-bit random strings, so a plain SHA-256 is a safe stored form."""
    return hashlib.sha256(token.encode()).hexdigest()


class GatewayState:
    """Each thread gets its own connection, and every statement is run to completion and its
    cursor closed: a connection shared across threads, or a half-read cursor holding an old
    read snapshot, makes SQLite writers wait out the busy timeout."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / DATABASE_FILE
        # Creating the ledger store first applies every migration (and the file's mode).
        SQLiteStore(self.path).close()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._connection()

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA busy_timeout = 5000")
                db.execute("PRAGMA synchronous = FULL")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open gateway state in {self.path}: {exc}") from None
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

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

    def create_token(self, developer_id: str, role: Role) -> tuple[str, str]:
        """A new token for ``developer_id``: returns (token, token id). Only its hash is kept."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if not developer_id or any(ch.isspace() or ord(ch) < 0x20 for ch in developer_id):
            raise ValueError("developer id must be non-empty, without spaces or control characters")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = "tok_" + secrets.token_hex(6)
        self._write(
            "INSERT INTO tokens (token_hash, token_id, developer_id, role, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (hash_token(token), token_id, developer_id, role, utc_now()),
        )
        return token, token_id

    def identify(self, token: str) -> Identity | None:
        rows = self._rows(
            "SELECT developer_id, role, token_id FROM tokens "
            "WHERE token_hash = ? AND revoked_at IS NULL",
            (hash_token(token),),
        )
        return Identity(*rows[0]) if rows else None

    def revoke_token(self, token_id: str) -> bool:
        return (
            self._write(
                "UPDATE tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                (utc_now(), token_id),
            )
            > 0
        )

    def tokens(self) -> list[tuple[str, str, str, str, str | None]]:
        """(token id, developer, role, created, revoked) for every token, newest first."""
        return self._rows(
            "SELECT token_id, developer_id, role, created_at, revoked_at FROM tokens "
            "ORDER BY created_at DESC"
        )

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

    def sessions(
        self,
        *,
        developer_id: str | None = None,
        project_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        active: bool | None = None,
    ) -> Iterator[SessionSummary]:
        clauses, params = [], []
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
        """Ask the gateway to kill a session; False if it was already asked."""
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


def _summary(row: tuple[object, ...]) -> SessionSummary:
    values = list(row)
    values[-1] = bool(values[-1])
    return SessionSummary(*values)  # type: ignore[arg-type]
