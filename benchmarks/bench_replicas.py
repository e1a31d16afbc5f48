"""Hook throughput of two gateway replicas on one PostgreSQL ledger, with the SQLite gateway
measured in the same run as the baseline.

Two ``trailguard serve --store postgresql://…`` processes (same signing key; one becomes the
sequencer) each take half of ``--clients`` keep-alive clients (the clients of
bench_gateway_throughput: a session each, then PreToolUse / PostToolUse pairs as fast as they
are answered); then one ``trailguard serve --data-dir`` takes all of them. Every answer must be
200, and afterwards every answered tool hook must be a row of the ledger.

Run: .venv/bin/python benchmarks/bench_replicas.py [--quick]
PostgreSQL: $TRAILGUARD_BENCH_POSTGRES (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from _common import (
    free_port,
    ledger_counts,
    metric,
    percentile,
    print_header,
    print_result,
    scratch_dir,
    section,
    stop_process,
    wait_ready,
)
from bench_gateway_throughput import TRAILGUARD, Stats, run_clients

ADMIN_URL = os.environ.get(
    "TRAILGUARD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def start(arguments: list[str], log: Path) -> tuple[subprocess.Popen[Any], int]:
    port = free_port()
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [str(TRAILGUARD), "serve", *arguments, "--port", str(port), "--hook-rate", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    wait_ready(process, f"http://127.0.0.1:{port}/healthz", log)
    return process, port


def token(location: list[str]) -> str:
    made = subprocess.run(
        [str(TRAILGUARD), "token", "create", "--developer", "dev_bench", *location],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        raise SystemExit(f"token create failed: {made.stderr}")
    return made.stdout.strip().splitlines()[-1]


def drive(
    pool: Any, ports: list[int], secret: str, clients: int, warmup: float, seconds: float
) -> Stats:
    t0 = time.monotonic() + 0.3 + warmup
    t_end = t0 + seconds
    shares = [clients // len(ports) + (n < clients % len(ports)) for n in range(len(ports))]
    pending = [
        pool.apply_async(run_clients, (port, secret, share, 17 + n, t0, t_end))
        for n, (port, share) in enumerate(zip(ports, shares, strict=True))
    ]
    merged = Stats()
    for result in pending:
        stats, _ = result.get()
        merged.merge(stats)
    return merged


def summary(stats: Stats, seconds: float) -> dict[str, Any]:
    latencies = [value * 1000 for value in stats.latencies]
    return {
        "requests_per_s": round(stats.measured / seconds),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "errors": stats.errors,
        "answered_tool_hooks": stats.ok_tools,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--dir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    warmup = 1.0 if args.quick else 2.0
    with scratch_dir(args.dir, args.keep) as scratch, contextlib.ExitStack() as stack:
        env = print_header("two gateway replicas on PostgreSQL vs one SQLite gateway", scratch)
        admin = psycopg.connect(ADMIN_URL, autocommit=True)
        database = f"tg_bench_{uuid.uuid4().hex[:8]}"
        admin.execute(f"CREATE DATABASE {database}")
        stack.callback(admin.close)
        stack.callback(admin.execute, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        url = ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
        pool = stack.enter_context(multiprocessing.get_context("fork").Pool(2))
        results: dict[str, Any] = {"clients": args.clients, "seconds": seconds}

        key = scratch / "shared.key"
        replicas = []
        for name in ("a", "b"):
            shared = ["--store", url, "--signing-key", str(key)]
            process, port = start(shared, scratch / f"replica-{name}.log")
            stack.callback(stop_process, process)
            replicas.append((process, port))
        secret = token(["--store", url])
        section(f"two replicas, {args.clients} clients split over them, {seconds:g} s")
        stats = drive(pool, [p for _, p in replicas], secret, args.clients, warmup, seconds)
        for process, _ in replicas:
            stop_process(process)
        with psycopg.connect(url) as conn:
            stored = conn.execute(
                "SELECT count(*) FROM trailguard.events WHERE event_type IN "
                "('tool_invocation', 'tool_result')"
            ).fetchone()
            gaps = conn.execute(
                "SELECT count(*) - (max(seq) + 1) FROM trailguard.events"
            ).fetchone()
        results["postgres"] = summary(stats, seconds) | {
            "stored_tool_rows": int(stored[0]) if stored else 0,
            "seq_gaps": int(gaps[0]) if gaps else -1,
        }

        data_dir = scratch / "sqlite-data"
        data_dir.mkdir()
        process, port = start(["--data-dir", str(data_dir)], scratch / "sqlite.log")
        stack.callback(stop_process, process)
        secret = token(["--data-dir", str(data_dir)])
        section(f"one SQLite gateway, the same {args.clients} clients, {seconds:g} s")
        stats = drive(pool, [port], secret, args.clients, warmup, seconds)
        stop_process(process)
        counts = ledger_counts(data_dir)
        results["sqlite"] = summary(stats, seconds) | {
            "stored_tool_rows": counts.get("tool_invocation", 0) + counts.get("tool_result", 0)
        }
        for name in ("postgres", "sqlite"):
            figures = results[name]
            section(name)
            metric("hook requests/s", figures["requests_per_s"], "req/s")
            metric("latency p50", figures["p50_ms"], "ms")
            metric("latency p99", figures["p99_ms"], "ms")
            metric("errors", figures["errors"])
            metric("answered tool hooks / stored rows",
                   f"{figures['answered_tool_hooks']} / {figures['stored_tool_rows']}")  # fmt: skip
        section("ratio")
        metric(
            "two replicas / one SQLite gateway (requests/s)",
            results["postgres"]["requests_per_s"] / max(1, results["sqlite"]["requests_per_s"]),
        )
        print_result({"benchmark": "replicas", "env": env, **results})


if __name__ == "__main__":
    main()
