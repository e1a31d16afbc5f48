"""The gateway state (trailguard.store.state) on PostgreSQL, shared by every replica: a token
created anywhere works everywhere, a kill requested anywhere stops the session everywhere, and
session summaries merge (the latest activity wins, an end is never undone)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from trailguard.events import utc_now
from trailguard.store.base import StoreError
from trailguard.store.postgres import schema
from trailguard.store.postgres.connect import configure, describe, first_line, int_array
from trailguard.store.state import (
    Identity,
    KillRequest,
    Role,
    SessionSummary,
    TokenRecord,
    hash_token,
    new_token,
)

_SESSION_COLUMNS = (
    "session_id, developer_id, project_id, started_at, last_event_at, ended_at, end_reason, "
    "raw_end_reason, never_started"
)


def _token(row: tuple[Any, ...]) -> TokenRecord:
    token_id, developer, role, created, revoked, projects = row
    return TokenRecord(token_id, developer, role, created, revoked, tuple(json.loads(projects)))


class PostgresGatewayState:
    """A small connection pool (psycopg-pool): the gateway's threads share it."""

    shared = True
    """Replicas share this state: session starts are written through, not batched."""

    def __init__(self, url: str, *, max_connections: int = 4) -> None:
        self.where = describe(url)
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True, "connect_timeout": 10},
            configure=configure,
            open=False,
            name="trailguard-state",
        )
        try:
            self._pool.open(wait=True, timeout=15)
        except psycopg.Error as exc:
            self._pool.close()
            raise StoreError(f"cannot connect to {self.where}: {first_line(exc)}") from None
        except Exception as exc:  # psycopg_pool.PoolTimeout
            self._pool.close()
            raise StoreError(
                f"cannot connect to {self.where} ({exc}): is PostgreSQL running and the URL right?"
            ) from None
        with self._pool.connection() as conn:
            if schema.installed_version(conn) is None:
                self._pool.close()
                raise StoreError(
                    f"no trailguard ledger in {self.where}: create it with `trailguard init "
                    f"--store {self.where}`"
                )

    def _rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._pool.connection() as conn:
                cursor = conn.execute(query.encode(), params)
                return cursor.fetchall() if cursor.description else []
        except psycopg.Error as exc:
            raise StoreError(f"gateway state in {self.where}: {first_line(exc)}") from None

    def _write(self, query: str, params: Sequence[object] = ()) -> int:
        try:
            with self._pool.connection() as conn:
                return conn.execute(query.encode(), params).rowcount
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot update gateway state in {self.where}: {first_line(exc)}"
            ) from None

    def close(self) -> None:
        self._pool.close()

    # -- tokens ---------------------------------------------------------------------------------

    def create_token(
        self, developer_id: str, role: Role, projects: Sequence[str] = ()
    ) -> tuple[str, TokenRecord]:
        token, record = new_token(developer_id, role, projects, utc_now())
        self._write(
            "INSERT INTO tokens (token_hash, token_id, developer_id, role, created_at, projects) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
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
            "WHERE token_hash = %s AND revoked_at IS NULL",
            (hash_token(token),),
        )
        if not rows:
            return None
        developer, role, token_id, projects, created = rows[0]
        return Identity(developer, role, token_id, tuple(json.loads(projects)), created)

    def revoke_token(self, token_id: str) -> TokenRecord | None:
        rows = self._rows(
            "UPDATE tokens SET revoked_at = %s WHERE token_id = %s AND revoked_at IS NULL "
            "RETURNING token_id, developer_id, role, created_at, revoked_at, projects",
            (utc_now(), token_id),
        )
        return _token(rows[0]) if rows else None

    def tokens(self) -> list[TokenRecord]:
        return [
            _token(row)
            for row in self._rows(
                "SELECT token_id, developer_id, role, created_at, revoked_at, projects "
                "FROM tokens ORDER BY created_at DESC"
            )
        ]

    # -- sessions -------------------------------------------------------------------------------

    def save_session(self, summary: SessionSummary) -> None:
        """Merge this replica's view: the latest activity wins, a start or an end once
        recorded by any replica stays, and a session is never-started only if no replica
        saw its start."""
        self._write(
            f"INSERT INTO sessions ({_SESSION_COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (session_id) DO UPDATE SET "
            "developer_id = coalesce(sessions.developer_id, excluded.developer_id), "
            "project_id = coalesce(excluded.project_id, sessions.project_id), "
            "started_at = coalesce(sessions.started_at, excluded.started_at), "
            "last_event_at = greatest(sessions.last_event_at, excluded.last_event_at), "
            "ended_at = coalesce(sessions.ended_at, excluded.ended_at), "
            "end_reason = coalesce(sessions.end_reason, excluded.end_reason), "
            "raw_end_reason = CASE WHEN sessions.ended_at IS NULL THEN excluded.raw_end_reason "
            "ELSE sessions.raw_end_reason END, "
            "never_started = sessions.never_started AND excluded.never_started",
            (
                summary.session_id,
                summary.developer_id,
                summary.project_id,
                summary.started_at,
                summary.last_event_at,
                summary.ended_at,
                summary.end_reason,
                summary.raw_end_reason,
                summary.never_started,
            ),
        )

    def session(self, session_id: str) -> SessionSummary | None:
        rows = self._rows(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = %s",
            (session_id,),
        )
        return SessionSummary(*rows[0]) if rows else None

    def session_ids_starting_with(self, prefix: str, limit: int = 20) -> list[str]:
        return [
            str(row[0])
            for row in self._rows(
                "SELECT session_id FROM sessions WHERE session_id >= %s AND session_id < %s "
                "ORDER BY session_id LIMIT %s",
                (prefix, prefix + "\U0010ffff", limit),
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
                clauses.append(f"{column} = %s")
                params.append(value)
        if since is not None:
            clauses.append("last_event_at >= %s")
            params.append(since)
        if until is not None:
            clauses.append("coalesce(started_at, last_event_at) < %s")
            params.append(until)
        if active is not None:
            clauses.append("ended_at IS NULL" if active else "ended_at IS NOT NULL")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        for row in self._rows(
            f"SELECT {_SESSION_COLUMNS} FROM sessions {where} "
            "ORDER BY coalesce(started_at, last_event_at), session_id",
            params,
        ):
            yield SessionSummary(*row)

    # -- kill requests --------------------------------------------------------------------------

    def request_kill(self, session_id: str, requested_by: str | None, reason: str | None) -> bool:
        return (
            self._write(
                "INSERT INTO session_kills (session_id, requested_at, requested_by, reason) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (session_id) DO NOTHING",
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
            "UPDATE session_kills SET recorded_at = %s WHERE session_id = %s",
            (utc_now(), session_id),
        )

    # -- events queued for the ledger -----------------------------------------------------------

    def enqueue_events(self, documents: Sequence[str]) -> None:
        now = utc_now()
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO pending_events (document, queued_at) VALUES (%s, %s)",
                    [(document, now) for document in documents],
                )
        except psycopg.Error as exc:
            raise StoreError(f"cannot queue events in {self.where}: {first_line(exc)}") from None

    def pending_events(self, limit: int = 500) -> list[tuple[int, str]]:
        return [
            (int(queue_id), str(document))
            for queue_id, document in self._rows(
                "SELECT queue_id, document FROM pending_events ORDER BY queue_id LIMIT %s",
                (limit,),
            )
        ]

    def remove_pending_events(self, queue_ids: Sequence[int]) -> None:
        self._write(
            "DELETE FROM pending_events WHERE queue_id = ANY(%s::bigint[])", (int_array(queue_ids),)
        )
