"""The embedded store: one SQLite file in WAL mode with ``synchronous=FULL``.

A commit returns only after SQLite has fsynced the write-ahead log, so an acknowledged append
survives a crash or power loss. One process writes (the ledger's writer thread); any number of
readers open the file read-only and see committed data while the writer runs.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from trailguard.store.base import (
    PRUNE_RECORD_KEY,
    PRUNED_BEFORE_KEY,
    SIGNED_HEAD_KEY,
    DuplicateEventError,
    EventFilter,
    LedgerRow,
    StoreError,
    TreeNode,
)

DATABASE_FILE = "ledger.sqlite3"

# Each entry upgrades the schema by one version (PRAGMA user_version). Never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE events (
        seq          INTEGER PRIMARY KEY,
        event_id     TEXT NOT NULL UNIQUE,
        timestamp    TEXT NOT NULL,
        event_type   TEXT NOT NULL,
        session_id   TEXT,
        developer_id TEXT,
        project_id   TEXT,
        tool         TEXT,
        leaf_hash    BLOB NOT NULL,
        body         BLOB NOT NULL
    );
    CREATE INDEX events_by_session   ON events (session_id, seq);
    CREATE INDEX events_by_developer ON events (developer_id, timestamp);
    CREATE INDEX events_by_project   ON events (project_id, timestamp);
    CREATE INDEX events_by_time      ON events (timestamp);
    CREATE INDEX events_by_type      ON events (event_type, seq);

    -- Perfect Merkle subtrees of 2**8 leaves and up, cached for O(log n) proofs. Derived data:
    -- the verifier recomputes the tree from the events and only cross-checks these.
    CREATE TABLE tree_nodes (
        level INTEGER NOT NULL,
        idx   INTEGER NOT NULL,
        hash  BLOB NOT NULL,
        PRIMARY KEY (level, idx)
    ) WITHOUT ROWID;

    -- The ledger is append-only. A trigger is no defence against someone who owns the file (the
    -- signed checkpoints are), but it stops a mistaken UPDATE or DELETE from any tool.
    CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'ledger events are append-only'); END;
    CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'ledger events are append-only'); END;
    """,
    """
    -- Gateway state: mutable, operational, and not part of the signed record. Everything that
    -- happens to it that matters (a session's start, end, kill) is also an event in the ledger.
    CREATE TABLE tokens (
        token_hash   TEXT PRIMARY KEY,
        token_id     TEXT NOT NULL UNIQUE,
        developer_id TEXT NOT NULL,
        role         TEXT NOT NULL CHECK (role IN ('agent', 'auditor', 'admin')),
        created_at   TEXT NOT NULL,
        revoked_at   TEXT
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
    -- Events a writer found in the file beyond the last signed tree head at start: written by
    -- something other than the ledger writer (every commit signs its head in the same
    -- transaction). Kept here as evidence, out of the tree; verify reports them.
    CREATE TABLE quarantine (
        seq            INTEGER NOT NULL,
        event_id       TEXT NOT NULL,
        leaf_hash      BLOB NOT NULL,
        body           BLOB NOT NULL,
        reason         TEXT NOT NULL,
        quarantined_at TEXT NOT NULL
    );
    """,
    """
    -- The gateway state moved to its own file (state.sqlite3, trailguard.store.gateway_state),
    -- so that this file has one writer. Ledger.open copies it there before this runs.
    DROP TABLE IF EXISTS session_kills;
    DROP TABLE IF EXISTS sessions;
    DROP TABLE IF EXISTS tokens;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_APPEND_ONLY_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS events_are_append_only_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'ledger events are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS events_are_append_only_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'ledger events are append-only'); END",
)
"""The append-only triggers, restored (if someone dropped them) whenever events are quarantined."""


_ROW_COLUMNS = (
    "seq, event_id, timestamp, event_type, session_id, developer_id, project_id, tool, "
    "leaf_hash, body"
)


def _describe(exc: sqlite3.Error) -> str:
    message = str(exc)
    if isinstance(exc, sqlite3.OperationalError):
        if "disk is full" in message or "database or disk is full" in message:
            return f"{message}: free space on the data directory's file system"
        if "readonly" in message or "read-only" in message:
            return f"{message}: the data directory or database file is not writable"
        if "locked" in message:
            return f"{message}: another process holds a write lock on the database"
    return message


class SQLiteStore:
    """The Store protocol on one SQLite database file."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        try:
            if read_only:
                if not path.exists():
                    raise StoreError(f"no ledger at {path}: is --data-dir right?")
                self._db = sqlite3.connect(
                    f"file:{path}?mode=ro",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                )
            else:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                if not path.exists():
                    # Create the file 0600 ourselves: sqlite3 would use the process umask.
                    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
                self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 5000")
            if not read_only:
                mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StoreError(f"{path}: could not switch to WAL mode (got {mode})")
            self._db.execute("PRAGMA synchronous = FULL")
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open ledger database {path}: {_describe(exc)}") from None

    @classmethod
    def in_data_dir(cls, data_dir: Path, *, read_only: bool = False) -> SQLiteStore:
        return cls(data_dir / DATABASE_FILE, read_only=read_only)

    # -- schema ---------------------------------------------------------------------------------

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this trailguard "
                f"understands ({SCHEMA_VERSION}): upgrade trailguard"
            )
        if version == SCHEMA_VERSION:
            return
        if self.read_only:
            if version >= 1:
                return  # every version has the ledger tables: read it as it is, never upgrade
            raise StoreError(f"{self.path} is not a trailguard ledger (no schema)")
        for number in range(version, SCHEMA_VERSION):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_statements(MIGRATIONS[number]):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- writing --------------------------------------------------------------------------------

    def append(
        self,
        rows: Sequence[LedgerRow],
        nodes: Sequence[TreeNode],
        signed_head: str | None = None,
    ) -> None:
        if not rows and not nodes and signed_head is None:
            return
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    f"INSERT INTO events ({_ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                if nodes:
                    db.executemany(
                        "INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes
                    )
                if signed_head is not None:
                    self.set_meta(SIGNED_HEAD_KEY, signed_head)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.IntegrityError as exc:
            if "events.event_id" in str(exc):
                raise DuplicateEventError(str(exc)) from None
            raise StoreError(f"could not commit to {self.path}: {exc}") from None
        except sqlite3.Error as exc:
            raise StoreError(
                f"could not commit {len(rows)} event(s) to {self.path}: {_describe(exc)}; "
                "nothing of this batch was stored"
            ) from None

    def set_meta_values(self, values: dict[str, str]) -> None:
        """Set several meta keys in one transaction (all or none)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for key, value in values.items():
                    self.set_meta(key, value)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"could not write to {self.path}: {_describe(exc)}") from None

    def set_meta(self, key: str, value: str) -> None:
        try:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        except sqlite3.Error as exc:
            raise StoreError(f"could not write {key} to {self.path}: {_describe(exc)}") from None

    def quarantine_from(self, seq: int, reason: str, at: str) -> list[LedgerRow]:
        """Move every event from ``seq`` on (and the cached subtrees they complete) out of the
        tree into the ``quarantine`` table, in one transaction; returns the rows moved.

        The only path that removes events, for rows the writer never signed: the append-only
        trigger is lifted inside this transaction and restored before it commits."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                moved = [
                    LedgerRow._make(row)
                    for row in db.execute(
                        f"SELECT {_ROW_COLUMNS} FROM events WHERE seq >= ? ORDER BY seq", (seq,)
                    )
                ]
                db.executemany(
                    "INSERT INTO quarantine (seq, event_id, leaf_hash, body, reason, "
                    "quarantined_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [(r.seq, r.event_id, r.leaf_hash, r.body, reason, at) for r in moved],
                )
                db.execute("DROP TRIGGER IF EXISTS events_are_append_only_delete")
                db.execute("DELETE FROM events WHERE seq >= ?", (seq,))
                for trigger in _APPEND_ONLY_TRIGGERS:
                    db.execute(trigger)
                # A cached subtree (level L, index i) covers leaves [i * 2**L, (i+1) * 2**L).
                db.execute("DELETE FROM tree_nodes WHERE (idx + 1) << level > ?", (seq,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(
                f"could not quarantine events in {self.path}: {_describe(exc)}"
            ) from None
        return moved

    def prune_before(self, boundary: int, record: str, *, chunk: int = 16384) -> int:
        """Remove archived events below ``boundary`` in aligned chunks: each transaction lifts
        the append-only trigger, deletes one chunk, restores the trigger and advances
        ``pruned_before``, so a crash leaves a store pruned at a chunk boundary, never between.
        Cached subtrees stay: with them the tree still extends, and ``verify`` checks them
        against the first checkpoint after the boundary."""
        if boundary % chunk:
            raise StoreError(f"prune boundary {boundary} is not a multiple of {chunk}")
        db = self._db
        start = int(self.get_meta(PRUNED_BEFORE_KEY) or 0)
        removed = 0
        try:
            for end in range(start + chunk, boundary + 1, chunk):
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute("DROP TRIGGER IF EXISTS events_are_append_only_delete")
                    cursor = db.execute("DELETE FROM events WHERE seq < ?", (end,))
                    removed += cursor.rowcount
                    for trigger in _APPEND_ONLY_TRIGGERS:
                        db.execute(trigger)
                    self.set_meta(PRUNED_BEFORE_KEY, str(end))
                    if end == boundary:
                        self.set_meta(PRUNE_RECORD_KEY, record)
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise StoreError(f"could not prune {self.path}: {_describe(exc)}") from None
        return removed

    # -- reading --------------------------------------------------------------------------------

    def first_seq(self) -> int | None:
        row = self._db.execute("SELECT min(seq) FROM events").fetchone()
        return None if row[0] is None else int(row[0])

    def quarantined(self) -> list[tuple[int, str, bytes, str, str]]:
        """(seq, event id, leaf hash, reason, quarantined at) of every quarantined event."""
        try:
            return [
                (int(seq), str(event_id), bytes(leaf), str(reason), str(at))
                for seq, event_id, leaf, reason, at in self._db.execute(
                    "SELECT seq, event_id, leaf_hash, reason, quarantined_at FROM quarantine "
                    "ORDER BY rowid"
                )
            ]
        except sqlite3.OperationalError:
            return []  # a ledger from before quarantine existed (read-only, not upgraded)

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def tree_size(self) -> int:
        row = self._db.execute("SELECT max(seq) FROM events").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def existing_event_ids(self, event_ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for event_id, seq in self._db.execute(
                f"SELECT event_id, seq FROM events WHERE event_id IN ({marks})", chunk
            ):
                found[event_id] = seq
        return found

    def rows(self, start: int = 0, end: int | None = None) -> Iterator[LedgerRow]:
        cursor = self._db.execute(
            f"SELECT {_ROW_COLUMNS} FROM events WHERE seq >= ? AND seq < ? ORDER BY seq",
            (start, end if end is not None else 2**63 - 1),
        )
        while batch := cursor.fetchmany(4096):
            for row in batch:
                yield LedgerRow._make(row)

    def verification_rows(self, start: int, end: int) -> Iterator[list[tuple[Any, ...]]]:
        """For the verifier: the rows with start <= seq < end in seq order, in batches, as plain
        tuples in LedgerRow's column order (no per-row named tuple: it reads millions)."""
        cursor = self._db.execute(
            f"SELECT {_ROW_COLUMNS} FROM events WHERE seq >= ? AND seq < ? ORDER BY seq",
            (start, end),
        )
        while batch := cursor.fetchmany(4096):
            yield batch

    def seq_span(self) -> tuple[int, int | None, int | None]:
        """(count, min, max) of seq: since seq is the INTEGER PRIMARY KEY (unique), the events
        are contiguous exactly when count == max - min + 1."""
        count, low, high = self._db.execute(
            "SELECT count(*), min(seq), max(seq) FROM events"
        ).fetchone()
        return int(count), low, high

    def row_by_event_id(self, event_id: str) -> LedgerRow | None:
        row = self._db.execute(
            f"SELECT {_ROW_COLUMNS} FROM events WHERE event_id = ?", (event_id,)
        ).fetchone()
        return None if row is None else LedgerRow._make(row)

    def row_by_seq(self, seq: int) -> LedgerRow | None:
        row = self._db.execute(
            f"SELECT {_ROW_COLUMNS} FROM events WHERE seq = ?", (seq,)
        ).fetchone()
        return None if row is None else LedgerRow._make(row)

    def leaf_hashes(self, begin: int, end: int) -> list[bytes]:
        return [
            bytes(h)
            for (h,) in self._db.execute(
                "SELECT leaf_hash FROM events WHERE seq >= ? AND seq < ? ORDER BY seq",
                (begin, end),
            )
        ]

    def tree_node(self, level: int, index: int) -> bytes | None:
        row = self._db.execute(
            "SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?", (level, index)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def tree_nodes(self, level: int, begin: int, end: int) -> dict[int, bytes]:
        return {
            idx: bytes(node)
            for idx, node in self._db.execute(
                "SELECT idx, hash FROM tree_nodes WHERE level = ? AND idx >= ? AND idx < ?",
                (level, begin, end),
            )
        }

    def seqs(self) -> Iterator[int]:
        cursor = self._db.execute("SELECT seq FROM events ORDER BY seq")
        while batch := cursor.fetchmany(65536):
            for (seq,) in batch:
                yield seq

    def session_ids(self, prefix: str = "", limit: int = 20) -> list[str]:
        """Distinct session ids starting with ``prefix``, in order (an index range scan)."""
        return [
            str(session_id)
            for (session_id,) in self._db.execute(
                "SELECT DISTINCT session_id FROM events WHERE session_id >= ? AND "
                "session_id < ? ORDER BY session_id LIMIT ?",
                (prefix, prefix + "\U0010ffff", limit),
            )
        ]

    def last_row_of_type(self, event_type: str) -> LedgerRow | None:
        row = self._db.execute(
            f"SELECT {_ROW_COLUMNS} FROM events WHERE event_type = ? ORDER BY seq DESC LIMIT 1",
            (event_type,),
        ).fetchone()
        return None if row is None else LedgerRow._make(row)

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
                clauses.append(f"{column} = ?")
                params.append(value)
        if event_filter.tool is not None:  # tool names are matched in any case: bash is Bash
            clauses.append("tool = ? COLLATE NOCASE")
            params.append(event_filter.tool)
        if event_filter.since is not None:
            clauses.append("timestamp >= ?")
            params.append(event_filter.since)
        if event_filter.until is not None:
            clauses.append("timestamp < ?")
            params.append(event_filter.until)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        limit = ""
        if event_filter.limit is not None:
            limit = "LIMIT ?"
            params.append(event_filter.limit)
        cursor = self._db.execute(
            f"SELECT {_ROW_COLUMNS} FROM events {where} ORDER BY timestamp, seq {limit}", params
        )
        while batch := cursor.fetchmany(1024):
            for row in batch:
                yield LedgerRow._make(row)

    def close(self) -> None:
        self._db.close()


def _split_statements(script: str) -> list[str]:
    """Split a migration into statements; sqlite3.complete_statement keeps triggers whole."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        if not current and (not line.strip() or line.strip().startswith("--")):
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        raise StoreError(f"incomplete statement in migration: {current[:80]!r}")
    return statements
