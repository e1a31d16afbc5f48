"""The Store protocol on PostgreSQL: the shared ledger several gateway replicas write through
one sequencer. Reads are paged by key (no cursor held open between calls); the sequencer's
appends go through ``append`` exactly like the SQLite writer's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from trailguard.store.base import (
    SIGNED_HEAD_KEY,
    DuplicateEventError,
    EventFilter,
    LedgerRow,
    StoreError,
    TreeNode,
)
from trailguard.store.postgres import schema
from trailguard.store.postgres.connect import describe, first_line, open_connection, text_array

_ROW_COLUMNS = (
    'seq, event_id, "timestamp", event_type, session_id, developer_id, project_id, tool, '
    "leaf_hash, body"
)
_PAGE = 4096


def _row(values: tuple[Any, ...]) -> LedgerRow:
    seq, event_id, timestamp, event_type, session, developer, project, tool, leaf, body = values
    return LedgerRow(
        seq, event_id, timestamp, event_type, session, developer, project, tool,
        bytes(leaf), bytes(body),
    )  # fmt: skip


class PostgresStore:
    """One connection to the shared ledger. Not thread-safe: one per thread, like SQLite's."""

    def __init__(
        self,
        url: str,
        *,
        read_only: bool = False,
        create: bool = False,
        application_name: str = "trailguard",
    ) -> None:
        """Open the ledger in the database at ``url``. ``create`` installs the schema when it
        is missing (the connecting user must be allowed to create it)."""
        self.url = url
        self.where = describe(url)
        self.read_only = read_only
        self._db = open_connection(url, read_only=read_only, application_name=application_name)
        try:
            version = schema.installed_version(self._db)
            if version is None and create and not read_only:
                schema.install(self._db, None)
            elif version is None:
                raise StoreError(
                    f"no trailguard ledger in {self.where}: create it with `trailguard init "
                    f"--store {self.where}` (as the schema's owner)"
                )
            elif version > schema.SCHEMA_VERSION:
                raise StoreError(
                    f"{self.where} has trailguard schema version {version}, newer than this "
                    f"trailguard understands ({schema.SCHEMA_VERSION}): upgrade trailguard"
                )
            elif version < schema.SCHEMA_VERSION and not read_only:
                schema.install(self._db, None)
        except schema.SchemaError as exc:
            self._db.close()
            raise StoreError(str(exc)) from None
        except psycopg.Error as exc:
            self._db.close()
            raise StoreError(f"cannot open the ledger in {self.where}: {first_line(exc)}") from None
        except BaseException:
            self._db.close()
            raise
        self._months: set[str] = set()

    @property
    def connection(self) -> psycopg.Connection[Any]:
        return self._db

    # -- writing --------------------------------------------------------------------------------

    def append(
        self,
        rows: Sequence[LedgerRow],
        nodes: Sequence[TreeNode],
        signed_head: str | None = None,
    ) -> None:
        if not rows and not nodes and signed_head is None:
            return
        try:
            with self._db.transaction():
                self.append_in_transaction(rows, nodes, signed_head)
        except DuplicateEventError:
            raise
        except psycopg.Error as exc:
            raise StoreError(
                f"could not commit {len(rows)} event(s) to {self.where}: {first_line(exc)}; "
                "nothing of this batch was stored"
            ) from None

    def append_in_transaction(
        self,
        rows: Sequence[LedgerRow],
        nodes: Sequence[TreeNode],
        signed_head: str | None,
        *,
        check_duplicates: bool = True,
    ) -> None:
        """``append``'s statements, inside a transaction the caller holds (the sequencer has
        checked the event ids itself: ``check_duplicates=False``)."""
        db = self._db
        if rows:
            found = self.existing_event_ids([r.event_id for r in rows]) if check_duplicates else {}
            if found:
                event_id, seq = next(iter(found.items()))
                raise DuplicateEventError(f"event {event_id} is already stored at seq {seq}")
            self.ensure_partitions({schema.month_of(row.timestamp) for row in rows})
            with (
                db.cursor() as cursor,
                cursor.copy(f"COPY events ({_ROW_COLUMNS}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        if nodes:
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO tree_nodes (level, idx, hash) VALUES (%s, %s, %s)", nodes
                )
        if signed_head is not None:
            db.execute("UPDATE ledger_head SET signed_head = %s", (signed_head,))

    def ensure_partitions(self, months: set[str]) -> None:
        """Create the monthly partitions ``months`` need (as the schema owner, by function)."""
        for month in sorted(months - self._months):
            self._db.execute("SELECT ensure_month_partition(%s)", (month,))
            self._months.add(month)

    def forget_partitions(self, months: set[str]) -> None:
        """Forget ``months`` as created (their transaction rolled back)."""
        self._months -= months

    def set_meta(self, key: str, value: str) -> None:
        try:
            if key == SIGNED_HEAD_KEY:
                self._db.execute("UPDATE ledger_head SET signed_head = %s", (value,))
                return
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                (key, value),
            )
            stored = self.get_meta(key)
        except psycopg.Error as exc:
            raise StoreError(f"could not write {key} to {self.where}: {first_line(exc)}") from None
        if stored != value:
            raise StoreError(f"{key} of the ledger in {self.where} is set once: it is {stored!r}")

    def set_meta_values(self, values: dict[str, str]) -> None:
        """Set several meta keys in one transaction (all or none)."""
        try:
            with self._db.transaction():
                for key, value in values.items():
                    self.set_meta(key, value)
        except psycopg.Error as exc:
            raise StoreError(f"could not write to {self.where}: {first_line(exc)}") from None

    def quarantine_from(self, seq: int, reason: str, at: str) -> list[LedgerRow]:
        """Move every event from ``seq`` on out of the tree (by the owner's function, which
        refuses anything the signed head covers); returns the rows moved."""
        try:
            with self._db.transaction():
                moved = list(self.rows(seq))
                self._db.execute("SELECT quarantine_from(%s, %s, %s)", (seq, reason, at))
        except psycopg.Error as exc:
            raise StoreError(
                f"could not quarantine events in {self.where}: {first_line(exc)}"
            ) from None
        return moved

    # -- reading --------------------------------------------------------------------------------

    def _fetch(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(query.encode(), params).fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"cannot read the ledger in {self.where}: {first_line(exc)}") from None

    def quarantined(self) -> list[tuple[int, str, bytes, str, str]]:
        return [
            (int(seq), str(event_id), bytes(leaf), str(reason), str(at))
            for seq, event_id, leaf, reason, at in self._fetch(
                "SELECT seq, event_id, leaf_hash, reason, quarantined_at FROM quarantine "
                "ORDER BY moved"
            )
        ]

    def get_meta(self, key: str) -> str | None:
        if key == SIGNED_HEAD_KEY:
            rows = self._fetch("SELECT signed_head FROM ledger_head")
        else:
            rows = self._fetch("SELECT value FROM meta WHERE key = %s", (key,))
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    def tree_size(self) -> int:
        rows = self._fetch("SELECT next_seq FROM ledger_head")
        return int(rows[0][0]) if rows else 0

    def existing_event_ids(self, event_ids: Sequence[str]) -> dict[str, int]:
        if not event_ids:
            return {}
        return {
            str(event_id): int(seq)
            for event_id, seq in self._fetch(
                "SELECT wanted.event_id, e.seq FROM unnest(%s::text[]) AS wanted(event_id) "
                "CROSS JOIN LATERAL (SELECT seq FROM events WHERE events.event_id = "
                "wanted.event_id LIMIT 1) AS e",
                (text_array(event_ids),),
            )
        }

    def rows(self, start: int = 0, end: int | None = None) -> Iterator[LedgerRow]:
        end = end if end is not None else 2**63 - 1
        while start < end:
            page = self._fetch(
                f"SELECT {_ROW_COLUMNS} FROM events WHERE seq >= %s AND seq < %s "
                "ORDER BY seq LIMIT %s",
                (start, end, _PAGE),
            )
            for values in page:
                yield _row(values)
            if len(page) < _PAGE:
                return
            start = int(page[-1][0]) + 1

    def row_by_event_id(self, event_id: str) -> LedgerRow | None:
        rows = self._fetch(
            f"SELECT {_ROW_COLUMNS} FROM events WHERE event_id = %s ORDER BY seq LIMIT 1",
            (event_id,),
        )
        return _row(rows[0]) if rows else None

    def row_by_seq(self, seq: int) -> LedgerRow | None:
        rows = self._fetch(f"SELECT {_ROW_COLUMNS} FROM events WHERE seq = %s", (seq,))
        return _row(rows[0]) if rows else None

    def leaf_hashes(self, begin: int, end: int) -> list[bytes]:
        return [
            bytes(h)
            for (h,) in self._fetch(
                "SELECT leaf_hash FROM events WHERE seq >= %s AND seq < %s ORDER BY seq",
                (begin, end),
            )
        ]

    def tree_node(self, level: int, index: int) -> bytes | None:
        rows = self._fetch(
            "SELECT hash FROM tree_nodes WHERE level = %s AND idx = %s", (level, index)
        )
        return bytes(rows[0][0]) if rows else None

    def tree_nodes(self, level: int, begin: int, end: int) -> dict[int, bytes]:
        return {
            int(idx): bytes(node)
            for idx, node in self._fetch(
                "SELECT idx, hash FROM tree_nodes WHERE level = %s AND idx >= %s AND idx < %s",
                (level, begin, end),
            )
        }

    def seqs(self) -> Iterator[int]:
        start = -1
        while True:
            page = self._fetch(
                "SELECT seq FROM events WHERE seq > %s ORDER BY seq LIMIT 65536", (start,)
            )
            for (seq,) in page:
                yield int(seq)
            if len(page) < 65536:
                return
            start = int(page[-1][0])

    def session_ids(self, prefix: str = "", limit: int = 20) -> list[str]:
        """Distinct session ids starting with ``prefix``, in order: a loose index scan (one
        index probe per distinct id), not a scan of every event."""
        rows = self._fetch(
            """
            WITH RECURSIVE found(session_id) AS (
                (SELECT session_id FROM events WHERE session_id >= %(lo)s
                     AND session_id < %(hi)s ORDER BY session_id LIMIT 1)
                UNION ALL
                SELECT (SELECT e.session_id FROM events e WHERE e.session_id > found.session_id
                            AND e.session_id < %(hi)s ORDER BY e.session_id LIMIT 1)
                FROM found WHERE found.session_id IS NOT NULL
            )
            SELECT session_id FROM found WHERE session_id IS NOT NULL LIMIT %(limit)s
            """,
            {"lo": prefix, "hi": prefix + "\U0010ffff", "limit": limit},  # type: ignore[arg-type]
        )
        return [str(session_id) for (session_id,) in rows]

    def last_row_of_type(self, event_type: str) -> LedgerRow | None:
        rows = self._fetch(
            f"SELECT {_ROW_COLUMNS} FROM events WHERE event_type = %s ORDER BY seq DESC LIMIT 1",
            (event_type,),
        )
        return _row(rows[0]) if rows else None

    def query(self, event_filter: EventFilter) -> Iterator[LedgerRow]:
        clauses: list[str] = []
        params: list[object] = []
        for column, value in (
            ("session_id", event_filter.session_id),
            ("developer_id", event_filter.developer_id),
            ("project_id", event_filter.project_id),
            ("event_type", event_filter.event_type),
        ):
            if value is not None:
                clauses.append(f"{column} = %s")
                params.append(value)
        if event_filter.tool is not None:  # tool names are matched in any case: bash is Bash
            clauses.append("lower(tool) = lower(%s)")
            params.append(event_filter.tool)
        if event_filter.since is not None:
            clauses.append('"timestamp" >= %s')
            params.append(event_filter.since)
        if event_filter.until is not None:
            clauses.append('"timestamp" < %s')
            params.append(event_filter.until)
        remaining = event_filter.limit
        after: tuple[str, int] | None = None
        while remaining is None or remaining > 0:
            page_clauses = list(clauses)
            page_params = list(params)
            if after is not None:
                page_clauses.append('("timestamp", seq) > (%s, %s)')
                page_params.extend(after)
            size = _PAGE if remaining is None else min(_PAGE, remaining)
            where = f"WHERE {' AND '.join(page_clauses)}" if page_clauses else ""
            page = self._fetch(
                f'SELECT {_ROW_COLUMNS} FROM events {where} ORDER BY "timestamp", seq LIMIT {size}',
                page_params,
            )
            for values in page:
                yield _row(values)
            if len(page) < size:
                return
            if remaining is not None:
                remaining -= len(page)
            after = (str(page[-1][2]), int(page[-1][0]))

    # -- the sequencer --------------------------------------------------------------------------

    def sequencer_running(self) -> bool:
        """Whether some replica holds the sequencer's lock now."""
        rows = self._fetch(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND ((classid::bigint << 32) | objid::bigint) = %s",
            (schema.SEQUENCER_LOCK,),
        )
        return bool(rows and int(rows[0][0]) > 0)

    def close(self) -> None:
        self._db.close()
