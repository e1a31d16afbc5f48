"""Copy a SQLite ledger (a data directory) into an empty shared ledger on PostgreSQL,
exactly: the same bytes at the same positions, the same cached subtrees, the same signed head
and key, and the gateway state (tokens, sessions, kills, queued events) with it. The copy is
then verified from the database alone and its roots compared with the source's."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trailguard.ledger.note import Verifier
from trailguard.ledger.stored_tree import CACHED_SUBTREE_LEVEL, StoredTree
from trailguard.ledger.verify import VerificationReport, verify_ledger
from trailguard.store.base import SIGNED_HEAD_KEY, StoreError
from trailguard.store.gateway_state import STATE_FILE
from trailguard.store.postgres.ledger_store import PostgresStore
from trailguard.store.sqlite import SQLiteStore

Progress = Callable[[int, int], None]
CHUNK = 20_000

_STATE_TABLES = (
    ("tokens", "token_hash, token_id, developer_id, role, created_at, revoked_at, projects"),
    (
        "sessions",
        "session_id, developer_id, project_id, started_at, last_event_at, ended_at, "
        "end_reason, raw_end_reason, never_started",
    ),
    ("session_kills", "session_id, requested_at, requested_by, reason, recorded_at"),
    ("pending_events", "document, queued_at"),
)


class MigrationError(StoreError):
    """The copy cannot be made, or does not match its source; the message says which."""


@dataclass(frozen=True)
class MigrationResult:
    events: int
    tree_nodes: int
    state_rows: dict[str, int]
    root: bytes
    report: VerificationReport


def migrate(
    data_dir: Path, url: str, *, progress: Progress | None = None, workers: int = 1
) -> MigrationResult:
    source = SQLiteStore.in_data_dir(data_dir, read_only=True)
    target = PostgresStore(url, create=True)
    try:
        size = source.tree_size()
        if target.tree_size() != 0 or target.get_meta("origin") is not None:
            raise MigrationError(
                f"{target.where} already holds a ledger ({target.tree_size()} events): "
                "migrate into an empty database"
            )
        pinned = source.get_meta("verifier_key")
        origin = source.get_meta("origin")
        head = source.get_meta(SIGNED_HEAD_KEY)
        if pinned is None or origin is None:
            raise MigrationError(f"{data_dir} records no origin or verifier key: not a ledger")
        if source.quarantined():
            raise MigrationError(
                f"{data_dir} holds quarantined events: keep that data directory as evidence "
                "and migrate after deciding about them"
            )
        db = target.connection
        done = 0
        with db.transaction():
            target.set_meta("origin", origin)
            target.set_meta("verifier_key", pinned)
        batch = []
        for row in source.rows():
            batch.append(row)
            if len(batch) >= CHUNK:
                with db.transaction():
                    target.append_in_transaction(batch, [], None, check_duplicates=False)
                done += len(batch)
                batch = []
                if progress:
                    progress(done, size)
        nodes = [
            (level, index, node)
            for level in range(CACHED_SUBTREE_LEVEL, 64)
            for index, node in source.tree_nodes(level, 0, 1 << 62).items()
        ]
        with db.transaction():
            target.append_in_transaction(batch, nodes, head, check_duplicates=False)
        done += len(batch)
        if progress:
            progress(done, size)
        state_rows = _copy_state(data_dir / STATE_FILE, target)
        root = StoredTree(source).root(size)
        if StoredTree(target).root(size) != root:
            raise MigrationError("the copy's root differs from the source's: nothing to trust")
    finally:
        source.close()
        target.close()
    import functools

    opener = functools.partial(PostgresStore, url, read_only=True)
    store = opener()
    try:
        report = verify_ledger(store, opener, Verifier.from_string(pinned), workers=workers)
    finally:
        store.close()
    if not report.intact:
        raise MigrationError(
            "the copy does not verify: " + "; ".join(str(f) for f in report.failures[:5])
        )
    return MigrationResult(size, len(nodes), state_rows, root, report)


def _copy_state(path: Path, target: PostgresStore) -> dict[str, int]:
    copied: dict[str, int] = {}
    if not path.exists():
        return copied
    lite = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        db = target.connection
        with db.transaction():
            for table, columns in _STATE_TABLES:
                rows = lite.execute(f"SELECT {columns} FROM {table}").fetchall()
                if table == "sessions":
                    rows = [(*r[:-1], bool(r[-1])) for r in rows]
                marks = ", ".join(["%s"] * len(columns.split(",")))
                with db.cursor() as cursor:
                    cursor.executemany(
                        f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
                        "ON CONFLICT DO NOTHING".encode(),
                        rows,
                    )
                copied[table] = len(rows)
    finally:
        lite.close()
    return copied
