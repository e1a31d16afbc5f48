"""The gateway state (trailguard.store.state) on PostgreSQL, shared by every replica: a token
created anywhere works everywhere, a kill requested anywhere stops the session everywhere, and
session summaries merge (the latest activity wins, an end is never undone)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from trailguard.events import utc_now
from trailguard.store.base import StoreError
from trailguard.store.postgres import schema
from trailguard.store.postgres.connect import configure, describe, first_line, int_array
from trailguard.store.state import SessionSummary
from trailguard.store.state_sql import SESSION_COLUMNS, SqlGatewayState


class PostgresGatewayState(SqlGatewayState):
    """A small connection pool (psycopg-pool): the gateway's threads share it."""

    PARAMETER = "%s"

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

    def _run_query(self, query: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        try:
            with self._pool.connection() as conn:
                cursor = conn.execute(query.encode(), params)
                return cursor.fetchall() if cursor.description else []
        except psycopg.Error as exc:
            raise StoreError(f"gateway state in {self.where}: {first_line(exc)}") from None

    def _run_write(self, query: str, params: Sequence[object]) -> int:
        try:
            with self._pool.connection() as conn:
                return conn.execute(query.encode(), params).rowcount
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot update gateway state in {self.where}: {first_line(exc)}"
            ) from None

    def close(self) -> None:
        self._pool.close()

    # -- sessions -------------------------------------------------------------------------------

    def save_session(self, summary: SessionSummary) -> None:
        """Merge this replica's view: the latest activity wins, a start or an end once
        recorded by any replica stays, and a session is never-started only if no replica
        saw its start."""
        self._write(
            f"INSERT INTO sessions ({SESSION_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
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

    def session_ids_starting_with(self, prefix: str, limit: int = 20) -> list[str]:
        return [
            str(row[0])
            for row in self._rows(
                "SELECT session_id FROM sessions WHERE session_id >= ? AND session_id < ? "
                "ORDER BY session_id LIMIT ?",
                (prefix, prefix + "\U0010ffff", limit),
            )
        ]

    # -- events queued for the ledger -----------------------------------------------------------

    def enqueue_events(self, documents: Sequence[str]) -> None:
        now = utc_now()
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(
                    self._sql("INSERT INTO pending_events (document, queued_at) VALUES (?, ?)"),
                    [(document, now) for document in documents],
                )
        except psycopg.Error as exc:
            raise StoreError(f"cannot queue events in {self.where}: {first_line(exc)}") from None

    def remove_pending_events(self, queue_ids: Sequence[int]) -> None:
        self._write(
            "DELETE FROM pending_events WHERE queue_id = ANY(?::bigint[])", (int_array(queue_ids),)
        )
