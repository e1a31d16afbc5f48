"""What one PostgreSQL sequencer sustains: two replicas (each its own intake writer; one of
them the sequencer) taking appends from 16 threads, against the SQLite ledger writer on the
same workload and machine as the baseline.

Two measurements per store:
  - durable appends, one event per call, 16 concurrent callers (as hooks arrive): events/s and
    p50/p99 latency from submit to acknowledgement (for the shared ledger: in the intake, then
    sequenced and signed);
  - batches of 500 events per call from 4 callers: the sequencer's ceiling in events/s.

Run: .venv/bin/python benchmarks/bench_sequencer.py [--quick]
PostgreSQL: $TRAILGUARD_BENCH_POSTGRES (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from _common import metric, percentile, print_header, print_result, sample_events, scratch_dir
from _common import section as heading
from trailguard.ledger.shared import SharedLedger
from trailguard.ledger.writer import Ledger, LedgerConfig

ADMIN_URL = os.environ.get(
    "TRAILGUARD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CONFIG = LedgerConfig(checkpoint_every_events=1000, checkpoint_interval_seconds=10.0)


def run_callers(ledgers: list[Any], callers: int, per_caller: int, batch: int) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()

    def caller(number: int) -> None:
        ledger = ledgers[number % len(ledgers)]
        events = list(sample_events(per_caller, session=f"sess_{number}"))
        mine: list[float] = []
        for start in range(0, len(events), batch):
            began = time.perf_counter()
            ledger.submit_many(events[start : start + batch]).result()
            mine.append((time.perf_counter() - began) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(callers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return {
        "events_per_s": round(callers * per_caller / elapsed),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--dir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    singles = 60 if args.quick else 250
    batched = 2000 if args.quick else 25_000
    with scratch_dir(args.dir, args.keep) as scratch:
        env = print_header("the shared ledger's sequencer vs the SQLite writer", scratch)
        admin = psycopg.connect(ADMIN_URL, autocommit=True)
        database = f"tg_bench_{uuid.uuid4().hex[:8]}"
        admin.execute(f"CREATE DATABASE {database}")
        url = ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
        results: dict[str, Any] = {}
        try:
            for name in ("sqlite", "postgres"):
                if name == "sqlite":
                    ledgers: list[Any] = [Ledger.open(scratch / "ledger", config=CONFIG)]
                else:
                    key = scratch / "shared.key"
                    ledgers = [SharedLedger.open(url, config=CONFIG, key_file=key) for _ in "ab"]
                try:
                    shape = "two replicas, one sequencer" if len(ledgers) > 1 else "one writer"
                    heading(f"{name}: {shape}")
                    single = run_callers(ledgers, 16, singles, 1)
                    metric("16 callers, one event per call", single["events_per_s"], "events/s")
                    metric("  latency p50", single["p50_ms"], "ms")
                    metric("  latency p99", single["p99_ms"], "ms")
                    bulk = run_callers(ledgers, 4, batched, 500)
                    metric("4 callers, 500 events per call", bulk["events_per_s"], "events/s")
                    results[name] = {"single": single, "batched": bulk}
                finally:
                    for ledger in ledgers:
                        ledger.close()
            heading("ratios (postgres / sqlite)")
            for kind in ("single", "batched"):
                ratio = (
                    results["postgres"][kind]["events_per_s"]
                    / results["sqlite"][kind]["events_per_s"]
                )
                metric(f"{kind} events/s", ratio)
            print_result({"benchmark": "sequencer", "env": env, **results})
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            admin.close()


if __name__ == "__main__":
    main()
