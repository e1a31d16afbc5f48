"""Bytes on disk per event for a realistic coding-agent event mix, split by table and index.

Baseline: the canonical event bytes themselves (sum(length(body)) / count), i.e. a bare log.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections import Counter

from _common import (
    add_common_arguments,
    build_ledger,
    metric,
    print_header,
    print_result,
    realistic_events,
    scratch_dir,
    section,
)
from trailguard.store.sqlite import DATABASE_FILE


def dbstat(db: sqlite3.Connection) -> list[tuple[str, int, int]] | None:
    """(name, bytes on disk, pages) of every table and index, or None without dbstat."""
    try:
        return db.execute(
            "SELECT name, SUM(pgsize), COUNT(*) FROM dbstat GROUP BY name ORDER BY 2 DESC"
        ).fetchall()
    except sqlite3.OperationalError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--events", type=int, help="events to append (50000)")
    parser.add_argument("--checkpoint-every", type=int, default=1000, help="events per checkpoint")
    parser.add_argument("--seed", type=int, default=1, help="seed of the event mix")
    args = parser.parse_args()
    count = args.events or (10_000 if args.quick else 50_000)

    with scratch_dir(args.dir, args.keep) as scratch:
        env = print_header("trailguard storage benchmark", scratch)
        data_dir = scratch / "ledger"
        database = data_dir / DATABASE_FILE
        build_seconds = build_ledger(
            data_dir, realistic_events(count, seed=args.seed), args.checkpoint_every
        )

        wal = database.with_name(database.name + "-wal")
        db = sqlite3.connect(database, isolation_level=None)
        try:
            busy, wal_frames, checkpointed = db.execute(
                "PRAGMA wal_checkpoint(TRUNCATE)"
            ).fetchone()
            if busy:
                raise SystemExit("wal_checkpoint(TRUNCATE) could not complete (database busy)")
            file_bytes = database.stat().st_size
            wal_bytes = wal.stat().st_size if wal.exists() else 0
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            free_pages = db.execute("PRAGMA freelist_count").fetchone()[0]
            rows, body_bytes = db.execute(
                "SELECT count(*), sum(length(body)) FROM events"
            ).fetchone()
            by_type = db.execute(
                "SELECT event_type, count(*), sum(length(body)) FROM events "
                "GROUP BY event_type ORDER BY 3 DESC"
            ).fetchall()
            tree_nodes = db.execute("SELECT count(*) FROM tree_nodes").fetchone()[0]
            objects = dbstat(db)
        finally:
            db.close()
        signing_files = sum(
            path.stat().st_size for path in data_dir.iterdir() if path.name.startswith("signing")
        )

    print(
        f"built {count:,} events of the realistic mix ({rows:,} rows with gateway events and "
        f"checkpoints) in {build_seconds:.1f} s; then PRAGMA wal_checkpoint(TRUNCATE)"
    )
    types = Counter({name: n for name, n, _ in by_type})
    print("mix: " + ", ".join(f"{name} {n:,}" for name, n in types.most_common()))

    section(f"on disk after close ({rows:,} stored events)")
    metric("database file", file_bytes, "bytes")
    metric("WAL file after wal_checkpoint(TRUNCATE)", wal_bytes, "bytes")
    metric("database file per stored event", file_bytes / rows, "bytes/event")
    metric("database file per appended event", file_bytes / count, "bytes/event")
    metric("canonical body, mean (baseline)", body_bytes / rows, "bytes/event")
    metric("overhead ratio file / sum(body)", file_bytes / body_bytes, "x")
    metric("page size", page_size, "bytes")
    metric("free pages", free_pages, "pages")
    metric("cached Merkle subtree rows (tree_nodes)", tree_nodes, "rows")

    section("canonical body by event type")
    for name, n, total in by_type:
        metric(f"{name} ({n:,} events)", total / n, "bytes/event")

    result: dict[str, object] = {
        "benchmark": "storage",
        "events": count,
        "rows": rows,
        "database_bytes": file_bytes,
        "wal_bytes": wal_bytes,
        "bytes_per_stored_event": round(file_bytes / rows, 1),
        "bytes_per_appended_event": round(file_bytes / count, 1),
        "mean_body_bytes": round(body_bytes / rows, 1),
        "overhead_ratio": round(file_bytes / body_bytes, 4),
        "page_size": page_size,
        "free_pages": free_pages,
        "body_bytes_by_type": {name: round(total / n, 1) for name, n, total in by_type},
        "wal_checkpoint": [busy, wal_frames, checkpointed],
        "signing_key_files_bytes": signing_files,
    }

    section("by table and index (dbstat)")
    if objects is None:
        print("  dbstat virtual table not available in this SQLite build; skipped")
        result["dbstat"] = None
    else:
        for name, size, pages in objects:
            metric(f"{name} ({pages:,} pages)", size / rows, "bytes/event")
        metric("all objects", sum(size for _, size, _ in objects), "bytes")
        result["dbstat_bytes"] = {name: size for name, size, _ in objects}
        result["dbstat_bytes_per_event"] = {
            name: round(size / rows, 1) for name, size, _ in objects
        }
    result["build_seconds"] = round(build_seconds, 2)
    result["env"] = env
    print_result(result)


if __name__ == "__main__":
    main()
