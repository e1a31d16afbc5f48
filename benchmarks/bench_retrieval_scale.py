"""Retrieval over a 10-million-event ledger, on PostgreSQL (the shared store) and on SQLite
(the embedded store, the baseline) in the same run.

The ledger is a year of a team's agents: sessions of ~200 events (start, prompts, Bash calls
and results, cost, end) from 200 developers on 50 projects, 32 sessions at a time, spread
evenly over 2025 (so PostgreSQL holds 12 monthly partitions). Rows are built from real event
models (their RFC 8785 bytes and leaf hashes), generated once and loaded into both stores:
PostgreSQL with COPY through the partitioned table (its triggers and seven indexes in place),
SQLite with executemany in 100,000-row transactions (a 1 GiB page cache for the load; the
queries run on a fresh read-only connection with the default cache). Event ids are UUIDv7,
time-ordered, as trailguard makes them.

Then, through the Store protocol (what `trailguard query` and the API use):
  - "everything session X did on date D" (target < 50 ms p50),
  - a developer's day,
  - a 10-session incident report (retrieval.session_report for ten sessions).

Run: .venv/bin/python benchmarks/bench_retrieval_scale.py [--events 10000000] [--quick]
    [--cache DIR] [--stores postgres,sqlite]
Building 10 M events takes most of an hour: with --cache DIR the built ledgers are kept (the
PostgreSQL database ``tg_retrieval_<events>``, DIR/retrieval-<events>.sqlite3 and the workload's
sessions in DIR/retrieval-<events>.json) and reused by the next run with the same --events.
PostgreSQL: $TRAILGUARD_BENCH_POSTGRES (default postgresql://postgres@127.0.0.1:5432/postgres),
a user that may create a database.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

from _common import metric, percentile, print_header, print_result, scratch_dir, section, target
from trailguard.events import Cost, Prompt, SessionEnd, SessionStart, ToolInvocation, ToolResult
from trailguard.retrieval import session_report
from trailguard.store.base import EventFilter, Store
from trailguard.store.postgres import PostgresStore, schema
from trailguard.store.postgres.connect import open_connection
from trailguard.store.sqlite import SQLiteStore

ADMIN_URL = os.environ.get(
    "TRAILGUARD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_SECONDS = 365 * 24 * 3600
SESSION_LENGTH = 200
CONCURRENT_SESSIONS = 32
DEVELOPERS = 200
PROJECTS = 50
CHUNK = 100_000
TARGET_SESSION_DAY_MS = 50.0


def _templates() -> dict[str, dict[str, Any]]:
    """One real event of each kind, as the JSON document the ledger canonicalises."""
    common = {"session_id": "s", "developer_id": "d", "project_id": "p"}
    return {
        "start": SessionStart(
            model="claude-sonnet-4-5", permission_mode="default", git_remote=None, **common
        ).to_json_dict(),
        "prompt": Prompt(
            prompt="fix the failing test in the billing module", **common
        ).to_json_dict(),
        "call": ToolInvocation(
            tool="Bash",
            tool_use_id="toolu_x",
            input={"command": "pytest -q tests/test_billing.py", "description": "run tests"},
            policy_result="allowed",
            policy_rule="allow-all",
            **common,
        ).to_json_dict(),
        "result": ToolResult(
            tool="Bash",
            tool_use_id="toolu_x",
            status="success",
            output={"stdout": "....F.\n1 failed, 5 passed in 0.41s\n", "stderr": ""},
            duration_ms=412,
            **common,
        ).to_json_dict(),
        "cost": Cost(
            model="claude-sonnet-4-5",
            input_tokens=2300,
            output_tokens=410,
            cost_usd=0.0131,
            **common,
        ).to_json_dict(),
        "end": SessionEnd(reason="completed", raw_reason="exit", **common).to_json_dict(),
    }


def _kind(position: int) -> str:
    if position == 0:
        return "start"
    if position == SESSION_LENGTH - 1:
        return "end"
    return ("prompt", "call", "result", "call", "result", "cost")[(position - 1) % 6]


class Workload:
    """Rows in seq order; remembers each session's developer, project and first day."""

    def __init__(self, count: int, seed: int = 7, span_seconds: float = YEAR_SECONDS) -> None:
        self.count = count
        self.span_seconds = span_seconds
        """The events are spread evenly over this much time from YEAR_START."""
        self.rng = random.Random(seed)
        self.templates = _templates()
        self.sessions: dict[str, tuple[str, str, str]] = {}
        self.developer_days: set[tuple[str, str]] = set()

    def save(self, path: Path) -> None:
        """What the queries sample from, so a cached ledger needs no regeneration."""
        path.write_bytes(
            orjson.dumps({"sessions": self.sessions, "developerDays": sorted(self.developer_days)})
        )

    @classmethod
    def restore(cls, count: int, path: Path) -> Workload:
        saved = orjson.loads(path.read_bytes())
        workload = cls(count)
        workload.sessions = {key: tuple(value) for key, value in saved["sessions"].items()}
        workload.developer_days = {tuple(pair) for pair in saved["developerDays"]}  # type: ignore[misc]
        return workload

    def _new_session(self) -> list[Any]:
        session = f"sess_{uuid.UUID(int=self.rng.getrandbits(128)).hex[:16]}"
        developer = f"dev_{self.rng.randrange(DEVELOPERS):03d}"
        project = f"github.com/acme/project-{self.rng.randrange(PROJECTS):02d}"
        return [session, developer, project, 0]

    def _uuid7(self, moment: datetime) -> str:
        """A UUIDv7 of ``moment``, as trailguard.ids makes them: time-ordered."""
        millis = int(moment.timestamp() * 1000)
        random_bits = self.rng.getrandbits(74)
        value = (millis << 80) | (0x7 << 76) | ((random_bits >> 62) << 64) | (0b10 << 62)
        return str(uuid.UUID(int=value | (random_bits & ((1 << 62) - 1))))

    def rows(self) -> Iterator[tuple[Any, ...]]:
        active = [self._new_session() for _ in range(CONCURRENT_SESSIONS)]
        step = self.span_seconds / self.count
        dumps = orjson.dumps
        sort = orjson.OPT_SORT_KEYS
        sha256 = hashlib.sha256
        for seq in range(self.count):
            slot = self.rng.randrange(CONCURRENT_SESSIONS)
            session, developer, project, position = active[slot]
            moment = YEAR_START + timedelta(seconds=seq * step)
            timestamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
            kind = _kind(position)
            document = dict(self.templates[kind])
            document.update(
                eventId=self._uuid7(moment),
                seq=seq,
                timestamp=timestamp,
                sessionId=session,
                developerId=developer,
                projectId=project,
            )
            if "toolUseId" in document:
                document["toolUseId"] = f"toolu_{session[5:]}_{(position + 1) // 2}"
            if position == 0:
                self.sessions[session] = (developer, project, timestamp[:10])
            self.developer_days.add((developer, timestamp[:10]))
            body = dumps(document, option=sort)
            yield (
                seq,
                document["eventId"],
                timestamp,
                document["eventType"],
                session,
                developer,
                project,
                document.get("tool"),
                sha256(b"\x00" + body).digest(),
                body,
            )
            active[slot][3] = position + 1
            if position + 1 == SESSION_LENGTH:
                active[slot] = self._new_session()


def load(workload: Workload, pg_url: str | None, sqlite_path: Path | None) -> dict[str, float]:
    """Load the workload into PostgreSQL at ``pg_url`` and SQLite at ``sqlite_path`` (either
    may be None: not loaded)."""
    owner = open_connection(pg_url) if pg_url else None
    if owner is not None:
        schema.install(owner, None)
    lite = SQLiteStore(sqlite_path) if sqlite_path else None
    lite_db = lite._db if lite else None  # loaded below the writer, as a bulk import would
    if lite_db is not None:
        lite_db.execute("PRAGMA cache_size = -1048576")  # 1 GiB for the load only
    timings = {"generate": 0.0, "postgres": 0.0, "sqlite": 0.0}
    chunk: list[tuple[Any, ...]] = []
    rows = workload.rows()
    months: set[str] = set()
    columns = (
        'seq, event_id, "timestamp", event_type, session_id, developer_id, project_id, tool, '
        "leaf_hash, body"
    )
    lite_insert = (
        f"INSERT INTO events ({columns.replace(chr(34), '')}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    done = 0
    while True:
        started = time.perf_counter()
        chunk = [row for _, row in zip(range(CHUNK), rows, strict=False)]
        timings["generate"] += time.perf_counter() - started
        if not chunk:
            break
        if owner is not None:
            started = time.perf_counter()
            with owner.transaction():
                for month in sorted({row[2][:7] for row in chunk} - months):
                    owner.execute("SELECT ensure_month_partition(%s)", (month,))
                    months.add(month)
                with (
                    owner.cursor() as cursor,
                    cursor.copy(f"COPY events ({columns}) FROM STDIN") as copy,
                ):
                    for row in chunk:
                        copy.write_row(row)
            timings["postgres"] += time.perf_counter() - started
        if lite_db is not None:
            started = time.perf_counter()
            lite_db.execute("BEGIN")
            lite_db.executemany(lite_insert, chunk)
            lite_db.execute("COMMIT")
            timings["sqlite"] += time.perf_counter() - started
        done += len(chunk)
        if done % 1_000_000 == 0 or done == workload.count:
            rates = ", ".join(
                f"{name} {done / timings[name]:,.0f}/s"
                for name in ("postgres", "sqlite")
                if timings[name]
            )
            print(f"  loaded {done:,} events ({rates})", flush=True)
    if owner is not None:
        started = time.perf_counter()
        # What autovacuum does on a live database (after inserts too, since PostgreSQL 13):
        # statistics, hint bits and the visibility map, so no query pays for them.
        for (partition,) in owner.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = 'trailguard.events'::regclass"
        ).fetchall():
            owner.execute(f"VACUUM (ANALYZE) {partition}")
        owner.execute("ANALYZE trailguard.events")
        # SQLite is left without statistics, as trailguard's ledgers are (it never runs ANALYZE).
        timings["analyze"] = time.perf_counter() - started
        owner.close()
    if lite is not None:
        lite.close()
    return timings


def _timed(samples: list[Any], run: Any, before_each: Any = None) -> tuple[list[float], int]:
    times: list[float] = []
    rows = 0
    for sample in samples:
        if before_each is not None:
            before_each()
        started = time.perf_counter()
        rows += run(sample)
        times.append((time.perf_counter() - started) * 1000)
    return times, rows


def measure(
    store: Store,
    workload: Workload,
    samples: int,
    seed: int,
    *,
    months: set[str] | None = None,
    before_each: Any = None,
) -> dict[str, Any]:
    """p50/p99 of the three queries over sampled sessions and developer days (only those of
    ``months`` when given); ``before_each`` runs before every timed query (untimed)."""
    rng = random.Random(seed)
    every_session = sorted(
        s for s, (_, _, day) in workload.sessions.items() if months is None or day[:7] in months
    )
    every_day = sorted(d for d in workload.developer_days if months is None or d[1][:7] in months)
    sessions = rng.sample(every_session, min(samples, len(every_session)))
    developer_days = rng.sample(every_day, min(samples, len(every_day)))
    reports = [rng.sample(every_session, 10) for _ in range(max(5, samples // 5))]

    def session_day(session: str) -> int:
        day = workload.sessions[session][2]
        following = (datetime.fromisoformat(day) + timedelta(days=1)).strftime("%Y-%m-%d")
        found = store.query(
            EventFilter(session_id=session, since=f"{day}T00:00:00.000Z",
                        until=f"{following}T00:00:00.000Z")
        )  # fmt: skip
        return sum(1 for _ in found)

    def developer_day(key: tuple[str, str]) -> int:
        developer, day = key
        following = (datetime.fromisoformat(day) + timedelta(days=1)).strftime("%Y-%m-%d")
        found = store.query(
            EventFilter(developer_id=developer, since=f"{day}T00:00:00.000Z",
                        until=f"{following}T00:00:00.000Z")
        )  # fmt: skip
        return sum(1 for _ in found)

    def report(chosen: list[str]) -> int:
        return sum(sum((session_report(store, s) or _Empty()).counts.values()) for s in chosen)

    result: dict[str, Any] = {}
    session_day(sessions[0])  # warm the connection, not the data
    for name, items, run in (
        ("session_day", sessions, session_day),
        ("developer_day", developer_days, developer_day),
        ("report_10_sessions", reports, report),
    ):
        times, rows = _timed(items, run, before_each)
        result[name] = {
            "p50_ms": round(percentile(times, 50), 2),
            "p99_ms": round(percentile(times, 99), 2),
            "rows_per_query": round(rows / len(items), 1),
        }
    return result


class _Empty:
    counts: dict[str, int] = {}  # noqa: RUF012 - a stand-in for a missing report


_EXPLAIN_COLUMNS = (
    'seq, event_id, "timestamp", event_type, session_id, developer_id, project_id, tool, '
    "leaf_hash, body"
)


def explain(
    pg_url: str, workload: Workload, seed: int, months: set[str] | None = None, label: str = ""
) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the statements PostgresStore.query runs for one sample of
    each query, of ``months`` when given (the first run of each is also the cold one: its
    buffers say what was read)."""
    rng = random.Random(seed)
    session = rng.choice(
        sorted(s for s, v in workload.sessions.items() if months is None or v[2][:7] in months)
    )
    developer, developer_day = rng.choice(
        sorted(d for d in workload.developer_days if months is None or d[1][:7] in months)
    )
    day = workload.sessions[session][2]

    def bounds(day: str) -> tuple[str, str]:
        following = (datetime.fromisoformat(day) + timedelta(days=1)).strftime("%Y-%m-%d")
        return f"{day}T00:00:00.000Z", f"{following}T00:00:00.000Z"

    statements = {
        "session X on date D": (
            'session_id = %s AND "timestamp" >= %s AND "timestamp" < %s',
            (session, *bounds(day)),
        ),
        "a developer's day": (
            'developer_id = %s AND "timestamp" >= %s AND "timestamp" < %s',
            (developer, *bounds(developer_day)),
        ),
        "one session of a report (no time bound)": ("session_id = %s", (session,)),
    }
    conn = open_connection(pg_url, read_only=True)
    try:
        for name, (where, params) in statements.items():
            query = (
                f"SELECT {_EXPLAIN_COLUMNS} FROM events WHERE {where} "
                'ORDER BY "timestamp", seq LIMIT 4096'
            )
            for attempt in ("first run", "second run"):
                section(f"EXPLAIN (ANALYZE, BUFFERS){label}: {name}, {attempt}")
                rows = conn.execute(
                    f"EXPLAIN (ANALYZE, BUFFERS, SETTINGS) {query}",
                    params,  # type: ignore[arg-type]
                ).fetchall()
                for (line,) in rows:
                    print(f"  {line}")
    finally:
        conn.close()


def _drop_from_os_cache(paths: Iterator[Path] | list[Path]) -> None:
    """posix_fadvise DONTNEED on each file: only these files leave the OS page cache."""
    for path in paths:
        try:
            descriptor = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def os_cache_evicter(admin: psycopg.Connection[Any], database: str) -> Any:
    """A function dropping the database's files from the OS page cache, so the next query
    reads from disk what is not in shared_buffers. Needs the server's data directory to be
    readable (the benchmark runs as root or as the server's user)."""
    row = admin.execute("SHOW data_directory").fetchone()
    oid = admin.execute("SELECT oid FROM pg_database WHERE datname = %s", (database,)).fetchone()
    assert row is not None
    assert oid is not None
    directory = Path(str(row[0])) / "base" / str(oid[0])
    return lambda: _drop_from_os_cache(directory.iterdir())


def _database_exists(admin: psycopg.Connection[Any], name: str) -> bool:
    return (
        admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        is not None
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="200,000 events")
    parser.add_argument("--keep", action="store_true", help="keep the database and the files")
    parser.add_argument("--dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--cache", type=Path, help="keep the built ledgers here and reuse them")
    parser.add_argument("--stores", default="postgres,sqlite", help="which stores (both)")
    parser.add_argument("--build-only", action="store_true", help="build (or find) and stop")
    parser.add_argument("--explain", action="store_true", help="print PostgreSQL's plans too")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="drop the database's files (both stores') from the OS cache before each query",
    )
    parser.add_argument(
        "--packed-months",
        default="",
        help="months repacked in session order (repack_month_partition): PostgreSQL is then "
        "measured on sessions of those months and of the others separately",
    )
    args = parser.parse_args()
    count = 200_000 if args.quick else args.events
    stores = [name.strip() for name in args.stores.split(",") if name.strip()]
    with scratch_dir(args.dir, args.keep) as scratch:
        env = print_header(f"retrieval over {count:,} events: PostgreSQL vs SQLite", scratch)
        cached = args.cache is not None
        if cached:
            args.cache.mkdir(parents=True, exist_ok=True)
        database = f"tg_retrieval_{count}" if cached else f"tg_bench_{uuid.uuid4().hex[:8]}"
        sqlite_path = (args.cache if cached else scratch) / f"retrieval-{count}.sqlite3"
        saved = (args.cache if cached else scratch) / f"retrieval-{count}.json"
        admin = psycopg.connect(ADMIN_URL, autocommit=True)
        pg_url = ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
        version = admin.execute("SHOW server_version").fetchone()
        env["postgres"] = str(version[0]) if version else "?"
        print(f"postgresql {env['postgres']}, database {database}")
        try:
            have_pg = _database_exists(admin, database) and saved.exists()
            have_lite = sqlite_path.exists() and saved.exists()
            build_pg = "postgres" in stores and not have_pg
            build_lite = "sqlite" in stores and not have_lite
            results: dict[str, Any] = {"events": count, "load_events_per_s": {}}
            if build_pg or build_lite:
                if build_pg:
                    admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
                    admin.execute(f"CREATE DATABASE {database}")
                if build_lite:
                    sqlite_path.unlink(missing_ok=True)
                workload = Workload(count)
                section("load (COPY into the partitioned table / executemany into SQLite)")
                timings = load(
                    workload, pg_url if build_pg else None, sqlite_path if build_lite else None
                )
                workload.save(saved)
                generated = count / timings["generate"]
                metric("generate rows (RFC 8785 bytes, SHA-256 leaves)", generated, "events/s")
                for name, label in (("postgres", "PostgreSQL COPY, 7 indexes, triggers"),
                                    ("sqlite", "SQLite executemany, 5 indexes")):  # fmt: skip
                    if timings[name]:
                        metric(label, count / timings[name], "events/s")
                        results["load_events_per_s"][name] = round(count / timings[name])
            else:
                workload = Workload.restore(count, saved)
                print(f"reusing the cached ledgers ({database}, {sqlite_path})")
            if "postgres" in stores:
                sizes = admin.execute(f"SELECT pg_database_size('{database}')").fetchone()
                metric("PostgreSQL database size", (sizes[0] if sizes else 0) / 2**20, "MiB")
            if "sqlite" in stores:
                metric("SQLite file size", sqlite_path.stat().st_size / 2**20, "MiB")
            if args.build_only:
                return
            packed = {m.strip() for m in args.packed_months.split(",") if m.strip()}
            every_month = {day[:7] for _, _, day in workload.sessions.values()}
            if args.explain and "postgres" in stores and packed:
                explain(pg_url, workload, 13, packed, " of a repacked month")
                explain(pg_url, workload, 13, every_month - packed, " of a month not repacked")
            elif args.explain and "postgres" in stores:
                explain(pg_url, workload, seed=13)
            openers = {
                "postgres": lambda: PostgresStore(pg_url, read_only=True),
                "sqlite": lambda: SQLiteStore(sqlite_path, read_only=True),
            }
            runs: list[tuple[str, str, set[str] | None]] = []
            for name in stores:
                if name == "postgres" and packed:
                    runs.append((name, "postgres_packed", packed))
                    runs.append((name, "postgres_unpacked", every_month - packed))
                else:
                    runs.append((name, name, None))
            evicters = {
                "postgres": os_cache_evicter(admin, database) if args.cold else None,
                "sqlite": (lambda: _drop_from_os_cache([sqlite_path])) if args.cold else None,
            }
            for name, label, months in runs:
                store = openers[name]()
                cold = " cold" if args.cold else ""
                section(f"queries on {label}{cold} ({args.samples} samples each)")
                measured = measure(
                    store, workload, args.samples, seed=11, months=months,
                    before_each=evicters[name],
                )  # fmt: skip
                store.close()
                for query, figures in measured.items():
                    metric(f"{query} p50", figures["p50_ms"], "ms")
                    metric(f"{query} p99", figures["p99_ms"], "ms")
                    metric(f"{query} rows per query", figures["rows_per_query"])
                results[label] = measured
            if "postgres_packed" in results:
                results["postgres"] = results["postgres_packed"]
            section("targets")
            if "postgres" in results:
                target(
                    f"session X on date D, PostgreSQL p50 < {TARGET_SESSION_DAY_MS:g} ms",
                    results["postgres"]["session_day"]["p50_ms"] < TARGET_SESSION_DAY_MS,
                )
            if "postgres" in results and "sqlite" in results:
                for query in ("session_day", "developer_day", "report_10_sessions"):
                    ratio = results["postgres"][query]["p50_ms"] / max(
                        results["sqlite"][query]["p50_ms"], 1e-6
                    )
                    metric(f"{query}: PostgreSQL p50 / SQLite p50", ratio)
            print_result({"benchmark": "retrieval_scale", "env": env, **results})
        finally:
            if not args.keep and not cached:
                admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            admin.close()


if __name__ == "__main__":
    main()
