"""Durable append throughput of the trailguard ledger: single-event commits and batched appends.

Baseline, measured interleaved in the same run: raw SQLite inserts of the same rows into the same
schema (WAL, synchronous=FULL), one commit per row and one commit per 5000-row chunk.
"""

from __future__ import annotations

import argparse
import gc
import math
import sqlite3
import time
from pathlib import Path

from _common import (
    WORKLOADS,
    add_common_arguments,
    make_events,
    metric,
    percentile,
    print_header,
    print_result,
    scratch_dir,
    section,
    target,
)
from trailguard.events import Event
from trailguard.ledger.writer import Ledger, LedgerConfig, encode_row, prepare_event
from trailguard.store.base import LedgerRow
from trailguard.store.sqlite import MIGRATIONS, _split_statements

TARGET_BATCHED_RATE = 50_000  # events/s
TARGET_BATCHED_SHARE_OF_RAW = 1 / 3

INSERT = (
    f"INSERT INTO events ({', '.join(LedgerRow._fields)}) "
    f"VALUES ({', '.join('?' * len(LedgerRow._fields))})"
)


def raw_database(path: Path) -> sqlite3.Connection:
    """A fresh database with trailguard's schema, opened the way the store opens it."""
    db = sqlite3.connect(path, isolation_level=None)
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise SystemExit(f"{path}: could not switch to WAL (got {mode})")
    db.execute("PRAGMA synchronous = FULL")
    for migration in MIGRATIONS:
        for statement in _split_statements(migration):
            db.execute(statement)
    return db


def open_ledger(data_dir: Path, checkpoint_every: int) -> Ledger:
    return Ledger.open(
        data_dir,
        config=LedgerConfig(
            checkpoint_every_events=checkpoint_every,
            checkpoint_interval_seconds=10.0,
        ),
        run_reason="benchmark",
    )


def segments(total: int, parts: int, multiple: int) -> list[tuple[int, int]]:
    """Split range(total) into about ``parts`` slices whose sizes are multiples of ``multiple``."""
    size = max(multiple, math.ceil(total / parts / multiple) * multiple)
    return [(start, min(start + size, total)) for start in range(0, total, size)]


def bench_single(
    scratch: Path, events: list[Event], rows: list[LedgerRow], rounds: int, checkpoint_every: int
) -> dict[str, float]:
    """(a) Ledger.append per event vs (b) BEGIN; INSERT; COMMIT per row, in alternating rounds."""
    ledger = open_ledger(scratch / "single-trailguard", checkpoint_every)
    raw = raw_database(scratch / "single-raw.sqlite3")
    ledger_latency: list[float] = []
    raw_latency: list[float] = []
    ledger_time = raw_time = 0.0
    clock = time.perf_counter
    try:
        for number, (start, end) in enumerate(segments(len(events), rounds, 1)):

            def run_ledger(start: int = start, end: int = end) -> float:
                began = clock()
                for event in events[start:end]:
                    t0 = clock()
                    ledger.append(event)
                    ledger_latency.append(clock() - t0)
                return clock() - began

            def run_raw(start: int = start, end: int = end) -> float:
                began = clock()
                for row in rows[start:end]:
                    t0 = clock()
                    raw.execute("BEGIN")
                    raw.execute(INSERT, row)
                    raw.execute("COMMIT")
                    raw_latency.append(clock() - t0)
                return clock() - began

            gc.collect()
            if number % 2 == 0:
                ledger_time += run_ledger()
                raw_time += run_raw()
            else:
                raw_time += run_raw()
                ledger_time += run_ledger()
        stored = raw.execute("SELECT count(*) FROM events").fetchone()[0]
        assert stored == len(rows), f"raw database holds {stored} rows, expected {len(rows)}"
    finally:
        raw.close()
        ledger.close()
    return {
        "tg_single_events_per_s": len(events) / ledger_time,
        "tg_single_p50_ms": percentile(ledger_latency, 50) * 1e3,
        "tg_single_p99_ms": percentile(ledger_latency, 99) * 1e3,
        "raw_single_events_per_s": len(rows) / raw_time,
        "raw_single_p50_ms": percentile(raw_latency, 50) * 1e3,
        "raw_single_p99_ms": percentile(raw_latency, 99) * 1e3,
    }


def bench_batched(
    scratch: Path,
    events: list[Event],
    rows: list[LedgerRow],
    rounds: int,
    chunk: int,
    checkpoint_every: int,
) -> dict[str, float]:
    """(c) Ledger.append_many vs (d) executemany in ``chunk``-row transactions, alternating."""
    ledger = open_ledger(scratch / "batched-trailguard", checkpoint_every)
    raw = raw_database(scratch / "batched-raw.sqlite3")
    size_before = ledger.tree_size
    ledger_time = raw_time = 0.0
    clock = time.perf_counter
    try:
        for number, (start, end) in enumerate(segments(len(events), rounds, chunk)):

            def run_ledger(start: int = start, end: int = end) -> float:
                began = clock()
                ledger.append_many(events[start:end], chunk=chunk)
                return clock() - began

            def run_raw(start: int = start, end: int = end) -> float:
                began = clock()
                for first in range(start, end, chunk):
                    raw.execute("BEGIN")
                    raw.executemany(INSERT, rows[first : min(first + chunk, end)])
                    raw.execute("COMMIT")
                return clock() - began

            gc.collect()
            if number % 2 == 0:
                ledger_time += run_ledger()
                raw_time += run_raw()
            else:
                raw_time += run_raw()
                ledger_time += run_ledger()
        checkpoints = ledger.tree_size - size_before - len(events)
        stored = raw.execute("SELECT count(*) FROM events").fetchone()[0]
        assert stored == len(rows), f"raw database holds {stored} rows, expected {len(rows)}"
    finally:
        raw.close()
        ledger.close()
    return {
        "tg_batched_events_per_s": len(events) / ledger_time,
        "raw_batched_events_per_s": len(rows) / raw_time,
        "tg_batched_checkpoints": checkpoints,
    }


def bench_gap(
    scratch: Path, events: list[Event], chunk: int, checkpoint_every: int
) -> dict[str, float]:
    """Where (c) loses to (d): the encoding alone, the splice and leaf hash alone, and the
    writer fed events prepared beforehand (what gateway workers send the writer process)."""
    clock = time.perf_counter
    gc.collect()
    began = clock()
    prepared = [prepare_event(event) for event in events]
    prepare_seconds = clock() - began
    began = clock()
    for seq, entry in enumerate(prepared):
        entry.row(seq)
    row_seconds = clock() - began
    ledger = open_ledger(scratch / "prepared-trailguard", checkpoint_every)
    try:
        gc.collect()
        began = clock()
        pending = []
        for first in range(0, len(prepared), chunk):
            pending.append(ledger.submit_prepared(prepared[first : first + chunk]))
            if len(pending) > 1:
                pending.pop(0).result()
        for future in pending:
            future.result()
        writer_seconds = clock() - began
    finally:
        ledger.close()
    return {
        "prepare_events_per_s": len(events) / prepare_seconds,
        "splice_hash_events_per_s": len(events) / row_seconds,
        "tg_prepared_events_per_s": len(events) / writer_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--single", type=int, help="events for single-event commits (5000)")
    parser.add_argument("--batched", type=int, help="events for batched appends (100000)")
    parser.add_argument("--chunk", type=int, default=5000, help="events per batched transaction")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per comparison")
    parser.add_argument(
        "--checkpoint-every", type=int, default=1000, help="checkpoint_every_events"
    )
    parser.add_argument("--mix", choices=sorted(WORKLOADS), default="sample", help="event mix")
    args = parser.parse_args()
    single = args.single or (1000 if args.quick else 5000)
    batched = args.batched or (20_000 if args.quick else 100_000)

    with scratch_dir(args.dir, args.keep) as scratch:
        env = print_header("trailguard durable append benchmark", scratch)
        print(
            f"mix {args.mix}; single: {single:,} events; batched: {batched:,} events in "
            f"{args.chunk:,}-event transactions; checkpoint_every_events={args.checkpoint_every}; "
            f"{args.rounds} interleaved rounds"
        )

        # Inputs are built before any timing: events for trailguard, the identical encoded rows
        # for raw SQLite. Freezing them keeps the cyclic GC from rescanning them while timing.
        started = time.perf_counter()
        single_events = list(make_events(args.mix, single))
        batched_events = list(make_events(args.mix, batched))
        single_rows = [encode_row(event, seq) for seq, event in enumerate(single_events)]
        batched_rows = [encode_row(event, seq) for seq, event in enumerate(batched_events)]
        body_bytes = sum(len(row.body) for row in batched_rows) / len(batched_rows)
        gc.collect()
        gc.freeze()
        print(f"built inputs in {time.perf_counter() - started:.1f} s")

        result = bench_single(
            scratch, single_events, single_rows, args.rounds, args.checkpoint_every
        )
        result |= bench_batched(
            scratch, batched_events, batched_rows, args.rounds, args.chunk, args.checkpoint_every
        )
        result |= bench_gap(scratch, batched_events, args.chunk, args.checkpoint_every)

    single_ratio = result["tg_single_events_per_s"] / result["raw_single_events_per_s"]
    batched_ratio = result["tg_batched_events_per_s"] / result["raw_batched_events_per_s"]
    rate_met = result["tg_batched_events_per_s"] >= TARGET_BATCHED_RATE
    share_met = batched_ratio >= TARGET_BATCHED_SHARE_OF_RAW

    section(f"single-event durable commits ({single:,} events, each its own fsync'd commit)")
    metric("(a) trailguard Ledger.append", result["tg_single_events_per_s"], "events/s")
    metric("(a) trailguard append latency p50", result["tg_single_p50_ms"], "ms")
    metric("(a) trailguard append latency p99", result["tg_single_p99_ms"], "ms")
    metric("(b) raw SQLite BEGIN/INSERT/COMMIT", result["raw_single_events_per_s"], "events/s")
    metric("(b) raw SQLite commit latency p50", result["raw_single_p50_ms"], "ms")
    metric("(b) raw SQLite commit latency p99", result["raw_single_p99_ms"], "ms")
    metric("ratio (a)/(b)", single_ratio, "x")

    section(f"batched appends ({batched:,} events, {args.chunk:,} per transaction)")
    metric("(c) trailguard Ledger.append_many", result["tg_batched_events_per_s"], "events/s")
    metric("(c) checkpoints signed during (c)", result["tg_batched_checkpoints"], "checkpoints")
    metric("(d) raw SQLite executemany", result["raw_batched_events_per_s"], "events/s")
    metric("ratio (c)/(d)", batched_ratio, "x")
    metric("mean canonical body size", body_bytes, "bytes/event")

    section("where (c) loses to (d), same events")
    metric("(e) prepare_event alone (model dump + RFC 8785)", result["prepare_events_per_s"],
           "events/s")  # fmt: skip
    metric("(f) splice seq + leaf hash alone", result["splice_hash_events_per_s"], "events/s")
    serial = 1 / sum(
        1 / result[key]
        for key in ("raw_batched_events_per_s", "prepare_events_per_s", "splice_hash_events_per_s")
    )
    metric("(d)+(e)+(f) one after another, estimated", serial, "events/s")
    metric("(g) writer fed prepared events (as from gateway workers)",
           result["tg_prepared_events_per_s"], "events/s")  # fmt: skip
    metric("ratio (g)/(d)", result["tg_prepared_events_per_s"] / result["raw_batched_events_per_s"],
           "x")  # fmt: skip

    section("targets")
    target(f"batched >= {TARGET_BATCHED_RATE:,} events/s", rate_met)
    target("batched >= 1/3 of raw SQLite batched", share_met)

    print_result(
        {
            "benchmark": "append",
            "mix": args.mix,
            "single_events": single,
            "batched_events": batched,
            "chunk": args.chunk,
            "checkpoint_every_events": args.checkpoint_every,
            **{key: round(value, 4) for key, value in result.items()},
            "single_ratio": round(single_ratio, 4),
            "batched_ratio": round(batched_ratio, 4),
            "mean_body_bytes": round(body_bytes, 1),
            "target_batched_rate_met": rate_met,
            "target_batched_share_met": share_met,
            "env": env,
        }
    )


if __name__ == "__main__":
    main()
