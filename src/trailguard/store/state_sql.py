"""The gateway state's SQL, written once for every database that stores it.

SQLite (``store/gateway_state.py``) and PostgreSQL (``store/postgres/state.py``) keep the same
tables, so the statements for tokens, sessions and kill requests are the same; the databases
differ in how a statement is run (a connection per thread, a pool), in their parameter style,
and in what saving a session summary means (one gateway overwrites its own view; replicas merge
theirs). A subclass supplies exactly those differences.

Statements here use ``?`` for parameters; a database whose driver wants another style sets
``PARAMETER`` and every statement is rewritten once, when it is run.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from trailguard.events import utc_now
from trailguard.store.state import (
    GatewayStateStore,
    Identity,
    KillRequest,
    Role,
    SessionSummary,
    TokenRecord,
    hash_token,
    new_token,
)

__all__ = ["SESSION_COLUMNS", "SqlGatewayState"]

SESSION_COLUMNS = (
    "session_id, developer_id, project_id, started_at, last_event_at, ended_at, end_reason, "
    "raw_end_reason, never_started"
)
_TOKEN_COLUMNS = "token_id, developer_id, role, created_at, revoked_at, projects"  # noqa: S105
_REVOKE_TOKEN = (
    "UPDATE tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL "  # noqa: S608
    f"RETURNING {_TOKEN_COLUMNS}"
)
_KILL_COLUMNS = "session_id, requested_at, requested_by, reason"


def _token(row: Sequence[Any]) -> TokenRecord:
    token_id, developer, role, created, revoked, projects = row
    return TokenRecord(token_id, developer, role, created, revoked, tuple(json.loads(projects)))


def _summary(row: Sequence[Any]) -> SessionSummary:
    values = list(row)
    values[-1] = bool(values[-1])  # SQLite stores the flag as 0/1
    return SessionSummary(*values)


class SqlGatewayState(GatewayStateStore, ABC):
    """Tokens, session summaries and kill requests over any SQL database with these tables."""

    PARAMETER: ClassVar[str] = "?"

    # -- what a database supplies ---------------------------------------------------------------

    @abstractmethod
    def _run_query(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        """Run a statement to completion and return its rows ([] when it returns none)."""

    @abstractmethod
    def _run_write(self, sql: str, params: Sequence[object]) -> int:
        """Run a statement that changes the state; return how many rows it changed."""

    @abstractmethod
    def save_session(self, summary: SessionSummary) -> None: ...

    @abstractmethod
    def session_ids_starting_with(self, prefix: str, limit: int = 20) -> list[str]: ...

    @abstractmethod
    def enqueue_events(self, documents: Sequence[str]) -> None: ...

    @abstractmethod
    def remove_pending_events(self, queue_ids: Sequence[int]) -> None: ...

    # -- running statements ---------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql if self.PARAMETER == "?" else sql.replace("?", self.PARAMETER)

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._run_query(self._sql(sql), params)

    def _write(self, sql: str, params: Sequence[object] = ()) -> int:
        return self._run_write(self._sql(sql), params)

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
        self._tokens_changed()
        return token, record

    def identify(self, token: str) -> Identity | None:
        return self._identity_of(hash_token(token))

    def _identity_of(self, token_hash: str) -> Identity | None:
        """The live (unrevoked) token with this hash, read from the database."""
        rows = self._rows(
            "SELECT developer_id, role, token_id, projects, created_at FROM tokens "
            "WHERE token_hash = ? AND revoked_at IS NULL",
            (token_hash,),
        )
        if not rows:
            return None
        developer, role, token_id, projects, created = rows[0]
        return Identity(developer, role, token_id, tuple(json.loads(projects)), created)

    def _tokens_changed(self) -> None:
        """Called after this object created or revoked a token (a database that remembers
        identities forgets them here)."""

    def revoke_token(self, token_id: str) -> TokenRecord | None:
        try:
            rows = self._rows(
                _REVOKE_TOKEN,
                (utc_now(), token_id),
            )
        finally:
            self._tokens_changed()
        return _token(rows[0]) if rows else None

    def tokens(self) -> list[TokenRecord]:
        """Every token, newest first (never the tokens themselves)."""
        return [
            _token(row)
            for row in self._rows(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY created_at DESC"  # noqa: S608
            )
        ]

    # -- sessions -------------------------------------------------------------------------------

    def session(self, session_id: str) -> SessionSummary | None:
        rows = self._rows(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?",  # noqa: S608
            (session_id,),
        )
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
            f"SELECT {SESSION_COLUMNS} FROM sessions {where} "  # noqa: S608
            "ORDER BY coalesce(started_at, last_event_at), session_id",
            params,
        ):
            yield _summary(row)

    # -- kill requests --------------------------------------------------------------------------

    def request_kill(self, session_id: str, requested_by: str | None, reason: str | None) -> bool:
        changed = self._write(
            "INSERT INTO session_kills (session_id, requested_at, requested_by, reason) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO NOTHING",
            (session_id, utc_now(), requested_by, reason),
        )
        return changed > 0

    def pending_kills(self) -> list[KillRequest]:
        return [
            KillRequest(*row)
            for row in self._rows(
                f"SELECT {_KILL_COLUMNS} FROM session_kills "  # noqa: S608
                "WHERE recorded_at IS NULL ORDER BY requested_at"
            )
        ]

    def killed_sessions(self) -> dict[str, KillRequest]:
        return {
            row[0]: KillRequest(*row)
            for row in self._rows(f"SELECT {_KILL_COLUMNS} FROM session_kills")  # noqa: S608
        }

    def mark_kill_recorded(self, session_id: str) -> None:
        self._write(
            "UPDATE session_kills SET recorded_at = ? WHERE session_id = ?",
            (utc_now(), session_id),
        )

    # -- events queued for the ledger -----------------------------------------------------------

    def pending_events(self, limit: int = 500) -> list[tuple[int, str]]:
        return [
            (int(queue_id), str(document))
            for queue_id, document in self._rows(
                "SELECT queue_id, document FROM pending_events ORDER BY queue_id LIMIT ?",
                (limit,),
            )
        ]
