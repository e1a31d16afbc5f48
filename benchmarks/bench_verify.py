"""Full offline verification throughput of verify_ledger, with one worker and with one per CPU.

Baseline, in the same run: one process reading every stored body in seq order and SHA-256-ing
it as a leaf (the floor any verifier pays for recomputing the leaf hashes).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import resource
import sqlite3
import time
from pathlib import Path

from _common import (
    WORKLOADS,
    add_common_arguments,
    build_ledger,
    make_events,
    metric,
    print_header,
    print_result,
    scratch_dir,
    section,
    target,
)
from trailguard.ledger.keys import VERIFIER_KEY_FILE, load_verifier
from trailguard.ledger.verify import VerificationReport, verify_ledger
from trailguard.store.sqlite import DATABASE_FILE, SQLiteStore

TARGET_RATE = 250_000  # events/s


def read_and_hash(database: Path) -> tuple[int, float]:
    """The baseline: SELECT body ORDER BY seq and SHA-256(0x00 || body) each, one process."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        sha256 = hashlib.sha256
        count = 0
        started = time.perf_counter()
        for (body,) in db.execute("SELECT body FROM events ORDER BY seq"):
            sha256(b"\x00" + body).digest()
            count += 1
        return count, time.perf_counter() - started
    finally:
        db.close()


def cpu_so_far() -> float:
    """CPU seconds of this process and its reaped children (the verifier's worker processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def verify(data_dir: Path, workers: int) -> tuple[VerificationReport, float, float]:
    """Returns the report, the wall seconds and the CPU seconds (all processes) it took."""
    opener = functools.partial(SQLiteStore.in_data_dir, data_dir, read_only=True)
    verifier = load_verifier(str(data_dir / VERIFIER_KEY_FILE))
    store = opener()
    try:
        cpu = cpu_so_far()
        started = time.perf_counter()
        report = verify_ledger(store, opener, verifier, workers=workers)
        return report, time.perf_counter() - started, cpu_so_far() - cpu
    finally:
        store.close()


def check(report: VerificationReport, rows: int, checkpoints: int, workers: int) -> None:
    """Fail loudly unless verification found the ledger intact and saw all of it."""
    problems = [str(finding) for finding in report.findings]
    if report.events != rows:
        problems.append(f"verified {report.events} events, the database holds {rows}")
    if report.checkpoints != checkpoints:
        problems.append(f"verified {report.checkpoints} checkpoints, expected {checkpoints}")
    if not report.intact or problems:
        raise SystemExit(
            f"verification with workers={workers} did not report an intact ledger:\n  "
            + "\n  ".join(problems[:20])
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--events", type=int, help="events in the ledger (300000)")
    parser.add_argument("--checkpoint-every", type=int, default=1000, help="events per checkpoint")
    parser.add_argument(
        "--workers",
        help="comma-separated worker counts to time (default: 1 and os.cpu_count())",
    )
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each; best is kept")
    parser.add_argument("--mix", choices=sorted(WORKLOADS), default="sample", help="event mix")
    args = parser.parse_args()
    count = args.events or (50_000 if args.quick else 300_000)
    cpus = os.cpu_count() or 1
    if args.workers:
        worker_counts = [int(part) for part in args.workers.split(",")]
    else:
        worker_counts = sorted({1, cpus})

    with scratch_dir(args.dir, args.keep) as scratch:
        env = print_header("trailguard offline verification benchmark", scratch)
        data_dir = scratch / "ledger"
        database = data_dir / DATABASE_FILE
        build_seconds = build_ledger(data_dir, make_events(args.mix, count), args.checkpoint_every)
        db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        rows, body_bytes = db.execute("SELECT count(*), sum(length(body)) FROM events").fetchone()
        checkpoints = db.execute(
            "SELECT count(*) FROM events WHERE event_type = 'checkpoint'"
        ).fetchone()[0]
        db.close()
        file_bytes = database.stat().st_size
        print(
            f"mix {args.mix}; built {count:,} events ({rows:,} rows with gateway events and "
            f"{checkpoints:,} checkpoints) in {build_seconds:.1f} s (not timed); "
            f"{file_bytes / 2**20:.1f} MiB; best of {args.repeat}"
        )

        read_and_hash(database)  # warm the page cache so every timed pass reads from memory
        baseline = float("inf")
        timings = {workers: float("inf") for workers in worker_counts}
        cpu_timings = dict(timings)
        for _ in range(args.repeat):
            hashed, seconds = read_and_hash(database)
            assert hashed == rows, f"baseline read {hashed} rows, expected {rows}"
            baseline = min(baseline, seconds)
            for workers in worker_counts:
                report, seconds, cpu = verify(data_dir, workers)
                check(report, rows, checkpoints, workers)
                timings[workers] = min(timings[workers], seconds)
                cpu_timings[workers] = min(cpu_timings[workers], cpu)

    baseline_rate = rows / baseline
    section(f"verification of {rows:,} stored events ({checkpoints:,} signed checkpoints)")
    result: dict[str, object] = {
        "benchmark": "verify",
        "mix": args.mix,
        "events": count,
        "rows": rows,
        "checkpoints": checkpoints,
        "mean_body_bytes": round(body_bytes / rows, 1),
        "database_bytes": file_bytes,
        "build_seconds": round(build_seconds, 2),
        "baseline_events_per_s": round(baseline_rate, 1),
    }
    metric("baseline: read + SHA-256 every body (1 process)", baseline_rate, "events/s")
    metric("baseline time", baseline, "s")
    metric("load average (1 min) at the end", os.getloadavg()[0])
    result["loadavg_1min"] = round(os.getloadavg()[0], 2)
    for workers in worker_counts:
        rate = rows / timings[workers]
        metric(f"verify_ledger workers={workers}", rate, "events/s")
        metric(f"verify_ledger workers={workers} time", timings[workers], "s")
        metric(f"ratio verify workers={workers} / baseline", rate / baseline_rate, "x")
        metric(f"verify_ledger workers={workers} per CPU-second", rows / cpu_timings[workers],
               "events/cpu-s")  # fmt: skip
        result[f"verify_w{workers}_events_per_s"] = round(rate, 1)
        result[f"verify_w{workers}_seconds"] = round(timings[workers], 3)
        result[f"verify_w{workers}_ratio_to_baseline"] = round(rate / baseline_rate, 4)
        result[f"verify_w{workers}_cpu_seconds"] = round(cpu_timings[workers], 3)
    metric("mean canonical body size", body_bytes / rows, "bytes/event")
    metric("database size", file_bytes / 2**20, "MiB")

    section("targets")
    for workers in worker_counts:
        met = rows / timings[workers] >= TARGET_RATE
        label = " (default)" if workers == cpus else ""
        target(f"workers={workers}{label} >= {TARGET_RATE:,} events/s", met)
        result[f"target_w{workers}_met"] = met
    result["report_intact"] = True
    result["env"] = env
    print_result(result)


if __name__ == "__main__":
    main()
