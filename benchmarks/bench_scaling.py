"""Cost as work grows: curves, not points.

(1) Hook latency and gateway memory against the size of the ledger and the number of concurrent
sessions. For each ledger size (1 k, 100 k, 1 M events already in the ledger; ``--quick``:
1 k, 10 k, 100 k) a copy of a cached ledger (the real writer's, ``sample`` mix, a checkpoint
every 1000 events) is served by ``trailguard serve``; then for each concurrency (1, 16, 64
sessions) that many keep-alive clients (threads), each its own session, send a SessionStart
and then PreToolUse/PostToolUse pairs back to back (the payloads of
bench_gateway_throughput.py): p50/p99 of PreToolUse and of every hook as the client times it,
requests/s, and the gateway's resident memory (RSS of its process tree, the peak of samples
every 0.2 s). Baseline, in the same run at each concurrency: the same clients against the
minimal uvicorn app that answers ``{}`` without recording (the HTTP stack and the client's own
cost at that concurrency).

(2) Retrieval of "everything session X did on date D" (SQLiteStore.query with a session and a
day; p50/p99 over ``--samples`` random (session, day) pairs taken from the ledger) at 10 k,
1 M and 10 M events (``--quick``: 10 k, 100 k, 1 M), on the workload of
bench_retrieval_scale.py (a team's sessions, ~200 events each, 32 at a time) at its rate of
10 M events a year: a bigger ledger is a longer history, so a session's day holds about as many
events at every size. Baseline, in the same run: the same rows read by primary key
(``WHERE seq IN (...)``), the floor of reading them.

Ledgers are built once and cached under ``.cache/scaling/`` keyed by size (``--rebuild``
makes them again). The figures go to ``docs/img/scaling-*.png`` (``--plot-dir``), drawn with
matplotlib; the numbers to the RESULT line and ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    add_common_arguments,
    build_ledger,
    create_token,
    free_port,
    make_events,
    metric,
    percentile,
    print_header,
    print_result,
    scratch_dir,
    section,
    stop_process,
    wait_ready,
)
from bench_gateway_throughput import (
    _POST,
    _PRE,
    BASELINE_APP,
    Connection,
    Pool,
    request_bytes,
    session_start_body,
)
from bench_retrieval_scale import CHUNK, YEAR_SECONDS, Workload
from trailguard.store.base import EventFilter
from trailguard.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "scaling"
TRAILGUARD = Path(sys.executable).with_name("trailguard")
LEDGER_SIZES = (1_000, 100_000, 1_000_000)
LEDGER_SIZES_QUICK = (1_000, 10_000, 100_000)
SESSIONS = (1, 16, 64)
RETRIEVAL_SIZES = (10_000, 1_000_000, 10_000_000)
RETRIEVAL_SIZES_QUICK = (10_000, 100_000, 1_000_000)


# -- (1) hooks against ledger size and concurrency -------------------------------------------------


def cached_ledger(events: int, rebuild: bool) -> Path:
    """A closed ledger of ``events`` events built by the real writer, cached by size."""
    path = CACHE / f"ledger-{events}"
    if path.exists() and not rebuild and (path / "complete").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    print(f"  building a {events:,}-event ledger in {path} (cached for later runs)", flush=True)
    seconds = build_ledger(path, make_events("sample", events), 1000)
    (path / "complete").write_text(f"{events} events built in {seconds:.1f} s\n")
    print(f"  built in {seconds:.1f} s", flush=True)
    return path


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and every process below it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


@dataclass
class Latencies:
    pre: array[float] = field(default_factory=lambda: array("d"))
    every: array[float] = field(default_factory=lambda: array("d"))
    answered: int = 0
    errors: list[str] = field(default_factory=list)


def one_session(port: int, token: str, seed: int, t0: float, t_end: float, into: Latencies) -> None:
    """SessionStart, then PreToolUse/PostToolUse pairs until ``t_end``; latencies of requests
    that start in [t0, t_end)."""
    pool = Pool(seed)
    rng = pool.rng
    session = str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode()
    connection = Connection(port)
    clock = time.monotonic
    pre, every = array("d"), array("d")
    errors: list[str] = []
    answered = 0

    def send(body: bytes) -> float:
        nonlocal answered
        began = clock()
        try:
            status, answer = connection.exchange(request_bytes(port, token, body))
        except OSError as exc:
            status, answer = 0, repr(exc).encode()
        if status == 200:
            answered += 1
        elif len(errors) < 3:
            errors.append(f"{status} {answer[:160]!r}")
        return began

    try:
        send(session_start_body(session))
        number = 0
        while clock() < t_end:
            number += 1
            use_id = b"toolu_%06d%018d" % (seed % 1_000_000, number)
            i = rng.randrange(len(pool.commands))
            command, description = pool.commands[i], pool.descriptions[i]
            began = send(_PRE % (session, session, command, description, use_id))
            if t0 <= began < t_end:
                pre.append(clock() - began)
                every.append(pre[-1])
            output = pool.outputs[rng.randrange(len(pool.outputs))]
            body = _POST % (session, session, command, description, output, use_id, 40)
            began = send(body)
            if t0 <= began < t_end:
                every.append(clock() - began)
    finally:
        connection.close()
    into.pre.extend(pre)
    into.every.extend(every)
    into.answered += answered
    into.errors += errors


def drive(pid: int, port: int, token: str, sessions: int, warmup: float, seconds: float) -> dict:
    """``sessions`` concurrent clients for warm-up + ``seconds``; figures of the window."""
    latencies = Latencies()
    began = time.monotonic()
    t0 = began + warmup
    t_end = t0 + seconds
    peak = [tree_rss(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak.append(tree_rss(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    seed = random.randrange(1 << 30)
    threads = [
        threading.Thread(
            target=one_session, args=(port, token, seed + n, t0, t_end, latencies), daemon=True
        )
        for n in range(sessions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    sampler.join()
    pre, every = list(latencies.pre), list(latencies.every)
    return {
        "pre_p50_ms": round(percentile(pre, 50) * 1e3, 3),
        "pre_p99_ms": round(percentile(pre, 99) * 1e3, 3),
        "all_p50_ms": round(percentile(every, 50) * 1e3, 3),
        "all_p99_ms": round(percentile(every, 99) * 1e3, 3),
        "requests_per_s": round(len(every) / seconds, 1),
        "rss_peak_mib": round(max(peak) / 2**20, 1),
        "rss_end_mib": round(peak[-1] / 2**20, 1),
        "errors": latencies.errors,
    }


def start(command: list[str], port: int, log: Path) -> subprocess.Popen[Any]:
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file
        )
    try:
        wait_ready(process, f"http://127.0.0.1:{port}/healthz", log)
    except BaseException:
        stop_process(process)
        raise
    return process


def hooks_at(ledger: Path, scratch: Path, args: argparse.Namespace, events: int) -> dict:
    """Serve a copy of ``ledger``; drive every concurrency; figures by concurrency."""
    data_dir = scratch / f"serve-{events}"
    shutil.copytree(ledger, data_dir, ignore=shutil.ignore_patterns("complete", "writer.lock"))
    log = scratch / f"serve-{events}.log"
    port = free_port()
    started = time.perf_counter()
    process = start(
        [
            str(TRAILGUARD),
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--hook-rate",
            "0",
        ],
        port,
        log,
    )
    figures: dict[str, Any] = {"start_seconds": round(time.perf_counter() - started, 2)}
    try:
        token = create_token(data_dir, "dev_bench", "agent")
        figures["rss_idle_mib"] = round(tree_rss(process.pid) / 2**20, 1)
        drive(process.pid, port, token, 2, 0.0, max(1.0, args.warmup))  # warm, not measured
        for sessions in args.sessions:
            figures[str(sessions)] = measured = drive(
                process.pid, port, token, sessions, args.warmup, args.seconds
            )
            print(
                f"  {events:>10,} events, {sessions:>3} sessions: PreToolUse p50 "
                f"{measured['pre_p50_ms']:.2f} ms p99 {measured['pre_p99_ms']:.2f} ms, "
                f"{measured['requests_per_s']:,.0f} req/s, RSS {measured['rss_peak_mib']:.0f} MiB"
                + (f", errors {measured['errors']}" if measured["errors"] else ""),
                flush=True,
            )
    finally:
        stop_process(process)
        shutil.rmtree(data_dir, ignore_errors=True)
    return figures


def hooks_baseline(scratch: Path, args: argparse.Namespace) -> dict:
    port = free_port()
    log = scratch / "baseline.log"
    process = start([sys.executable, "-c", BASELINE_APP, str(port)], port, log)
    figures: dict[str, Any] = {}
    try:
        drive(process.pid, port, "none", 2, 0.0, max(1.0, args.warmup))  # warm, not measured
        for sessions in args.sessions:
            figures[str(sessions)] = measured = drive(
                process.pid, port, "none", sessions, args.warmup, args.seconds
            )
            print(
                f"  baseline uvicorn {{}}, {sessions:>3} sessions: p50 "
                f"{measured['pre_p50_ms']:.2f} ms p99 {measured['pre_p99_ms']:.2f} ms, "
                f"RSS {measured['rss_peak_mib']:.0f} MiB",
                flush=True,
            )
    finally:
        stop_process(process)
    return figures


# -- (2) retrieval against ledger size -------------------------------------------------------------


def cached_retrieval_db(events: int, rebuild: bool) -> Path:
    """bench_retrieval_scale.py's year of sessions in a SQLite ledger file, cached by size."""
    path = CACHE / f"retrieval-{events}.sqlite3"
    done = path.with_suffix(".complete")
    if path.exists() and done.exists() and not rebuild:
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    for stale in (path, done, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    print(f"  building a {events:,}-event retrieval ledger in {path} (cached)", flush=True)
    started = time.perf_counter()
    store = SQLiteStore(path)
    db = store._db  # a bulk import below the writer, as bench_retrieval_scale.py loads it
    db.execute("PRAGMA cache_size = -524288")  # 512 MiB for the load only, not the queries
    insert = "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    # The team's rate stays what a year of 10 M events is: a bigger ledger is a longer history.
    rows = Workload(events, span_seconds=YEAR_SECONDS * events / 10_000_000).rows()
    loaded = 0
    while chunk := [row for _, row in zip(range(CHUNK), rows, strict=False)]:
        db.execute("BEGIN")
        db.executemany(insert, chunk)
        db.execute("COMMIT")
        loaded += len(chunk)
        if loaded % 1_000_000 == 0:
            print(f"    {loaded:,} events ({time.perf_counter() - started:.0f} s)", flush=True)
    store.close()
    done.write_text(f"{events} events built in {time.perf_counter() - started:.1f} s\n")
    return path


def retrieval_at(path: Path, samples: int, seed: int) -> dict:
    """p50/p99 of "session X on date D" for sessions and days drawn from the ledger itself."""
    raw = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    (high,) = raw.execute("SELECT max(seq) FROM events").fetchone()
    rng = random.Random(seed)
    pairs = []
    for seq in rng.sample(range(high + 1), samples):
        session, timestamp = raw.execute(
            "SELECT session_id, timestamp FROM events WHERE seq = ?", (seq,)
        ).fetchone()
        pairs.append((session, timestamp[:10]))
    store = SQLiteStore(path, read_only=True)
    times, floor, rows = [], [], 0
    try:
        for session, day in [pairs[0], *pairs]:  # the first one warms the connection
            following = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
            began = time.perf_counter()
            found = [
                row.seq
                for row in store.query(
                    EventFilter(
                        session_id=session,
                        since=f"{day}T00:00:00.000Z",
                        until=f"{following}T00:00:00.000Z",
                    )
                )
            ]
            times.append(time.perf_counter() - began)
            rows += len(found)
            marks = ",".join("?" * len(found))
            began = time.perf_counter()
            raw.execute(f"SELECT * FROM events WHERE seq IN ({marks})", found).fetchall()
            floor.append(time.perf_counter() - began)
    finally:
        store.close()
        raw.close()
    times, floor = times[1:], floor[1:]
    return {
        "p50_ms": round(percentile(times, 50) * 1e3, 3),
        "p99_ms": round(percentile(times, 99) * 1e3, 3),
        "baseline_p50_ms": round(percentile(floor, 50) * 1e3, 3),
        "baseline_p99_ms": round(percentile(floor, 99) * 1e3, 3),
        "rows_per_query": round(rows / (len(pairs) + 1), 1),
        "file_mib": round(path.stat().st_size / 2**20, 1),
    }


# -- plots -----------------------------------------------------------------------------------------


def plot(results: dict[str, Any], out: Path, caption: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    hooks = results.get("hooks", {})
    sizes = [int(size) for size in hooks.get("sizes", {})]
    sessions = [int(s) for s in hooks.get("baseline", {})]
    if sizes:
        figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=False)
        for axis, quantile in zip(axes, ("p50", "p99"), strict=True):
            for size in sizes:
                by = hooks["sizes"][str(size)]
                axis.plot(
                    sessions,
                    [by[str(s)][f"pre_{quantile}_ms"] for s in sessions],
                    marker="o",
                    label=f"{size:,} events in the ledger",
                )
            base = hooks["baseline"]
            axis.plot(
                sessions,
                [base[str(s)][f"pre_{quantile}_ms"] for s in sessions],
                marker="s",
                linestyle="--",
                color="grey",
                label="baseline: uvicorn {}",
            )
            axis.set_xscale("log", base=2)
            axis.set_xticks(sessions, [str(s) for s in sessions])
            axis.set_xlabel("concurrent sessions")
            axis.set_ylabel(f"PreToolUse {quantile} (ms, client-timed)")
            axis.set_yscale("log")
            axis.grid(True, which="both", alpha=0.3)
            axis.set_title(f"hook latency {quantile}")
        axes[0].legend(fontsize=8)
        figure.suptitle(results.get("hooks_caption", caption), fontsize=8)
        figure.tight_layout()
        written.append(out / "scaling-hook-latency.png")
        figure.savefig(written[-1], dpi=110)
        plt.close(figure)

        figure, axis = plt.subplots(figsize=(6.5, 4.2))
        for s in sessions:
            axis.plot(
                sizes,
                [hooks["sizes"][str(size)][str(s)]["rss_peak_mib"] for size in sizes],
                marker="o",
                label=f"{s} concurrent session{'s' if s > 1 else ''}",
            )
        axis.plot(
            sizes,
            [hooks["sizes"][str(size)]["rss_idle_mib"] for size in sizes],
            marker="s",
            linestyle=":",
            color="black",
            label="idle, after start",
        )
        axis.set_xscale("log")
        axis.set_xlabel("events in the ledger")
        axis.set_ylabel("gateway RSS, process tree (MiB, peak)")
        axis.set_ylim(bottom=0)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
        axis.set_title("gateway memory")
        figure.suptitle(results.get("hooks_caption", caption), fontsize=7)
        figure.tight_layout()
        written.append(out / "scaling-memory.png")
        figure.savefig(written[-1], dpi=110)
        plt.close(figure)

    retrieval = results.get("retrieval", {})
    if retrieval:
        sizes = [int(size) for size in retrieval]
        figure, axis = plt.subplots(figsize=(6.5, 4.2))
        for key, label, style in (
            ("p50_ms", "SQLiteStore.query p50", "-"),
            ("p99_ms", "SQLiteStore.query p99", "-"),
            ("baseline_p50_ms", "baseline: same rows by seq, p50", "--"),
        ):
            axis.plot(
                sizes,
                [retrieval[str(size)][key] for size in sizes],
                marker="o",
                linestyle=style,
                label=label,
            )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("events in the ledger")
        axis.set_ylabel('"session X on date D" (ms)')
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
        axis.set_title("retrieval (SQLite)")
        figure.suptitle(results.get("retrieval_caption", caption), fontsize=7)
        figure.tight_layout()
        written.append(out / "scaling-retrieval.png")
        figure.savefig(written[-1], dpi=110)
        plt.close(figure)
    return written


# -- main ------------------------------------------------------------------------------------------


def sizes_argument(text: str) -> tuple[int, ...]:
    return tuple(int(part.replace("_", "")) for part in text.split(",") if part)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--ledger-sizes", type=sizes_argument, help="events already in the ledger")
    parser.add_argument("--sessions", type=sizes_argument, default=SESSIONS)
    parser.add_argument("--retrieval-sizes", type=sizes_argument, help="events for retrieval")
    parser.add_argument("--seconds", type=float, help="measured seconds per point (5 / 2)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per point (1 / 0.5)")
    parser.add_argument("--samples", type=int, default=60, help="retrieval queries per size")
    parser.add_argument("--skip-hooks", action="store_true")
    parser.add_argument("--skip-retrieval", action="store_true")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached ledgers")
    parser.add_argument("--plot-dir", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        help="only redraw the plots from these --json files (hooks from one run, retrieval "
        "from another: later files add to earlier ones)",
    )
    args = parser.parse_args()
    if args.from_json:
        merged: dict[str, Any] = {}
        captions = []
        for saved in (json.loads(path.read_text()) for path in args.from_json):
            caption = saved.pop("caption")
            captions.append(caption)
            for part in ("hooks", "retrieval"):
                if part in saved:
                    saved.setdefault(f"{part}_caption", caption)
            merged |= saved
        for path in plot(merged, args.plot_dir, "\n".join(dict.fromkeys(captions))):
            print(f"wrote {path}")
        return
    args.ledger_sizes = args.ledger_sizes or (LEDGER_SIZES_QUICK if args.quick else LEDGER_SIZES)
    args.retrieval_sizes = args.retrieval_sizes or (
        RETRIEVAL_SIZES_QUICK if args.quick else RETRIEVAL_SIZES
    )
    args.seconds = args.seconds or (2.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)

    with scratch_dir(args.dir, args.keep) as scratch:
        env = print_header("trailguard: cost as work grows", scratch)
        env["load_at_start"] = round(os.getloadavg()[0], 2)
        results: dict[str, Any] = {"benchmark": "scaling", "env": env}
        if not args.skip_hooks:
            section("(1) hook latency and gateway memory: ledger size x concurrent sessions")
            ledgers = {size: cached_ledger(size, args.rebuild) for size in args.ledger_sizes}
            hooks: dict[str, Any] = {"baseline": hooks_baseline(scratch, args), "sizes": {}}
            for size, ledger in ledgers.items():
                hooks["sizes"][str(size)] = hooks_at(ledger, scratch, args, size)
            results["hooks"] = hooks
        if not args.skip_retrieval:
            section('(2) retrieval of "session X on date D" (SQLite) against ledger size')
            retrieval: dict[str, Any] = {}
            for size in args.retrieval_sizes:
                path = cached_retrieval_db(size, args.rebuild)
                retrieval[str(size)] = measured = retrieval_at(path, args.samples, seed=11)
                metric(f"{size:,} events: p50", measured["p50_ms"], "ms")
                metric(f"{size:,} events: p99", measured["p99_ms"], "ms")
                metric(
                    f"{size:,} events: baseline (same rows by seq) p50",
                    measured["baseline_p50_ms"],
                    "ms",
                )
                metric(f"{size:,} events: rows per query", measured["rows_per_query"])
            results["retrieval"] = retrieval
        env["load_at_end"] = round(os.getloadavg()[0], 2)

    if "hooks" in results:
        section("hook latency (PreToolUse, client-timed) and gateway RSS")
        for size, by in results["hooks"]["sizes"].items():
            for sessions in args.sessions:
                point = by[str(sessions)]
                base = results["hooks"]["baseline"][str(sessions)]
                label = f"{int(size):,} events, {sessions} sessions"
                metric(
                    f"{label}: p50 / p99",
                    f"{point['pre_p50_ms']:.2f} / {point['pre_p99_ms']:.2f}",
                    "ms",
                )
                metric(
                    f"{label}: p50 / baseline p50",
                    point["pre_p50_ms"] / max(base["pre_p50_ms"], 1e-9),
                    "x",
                )
                metric(f"{label}: RSS peak", point["rss_peak_mib"], "MiB")
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    results["caption"] = (
        f"{today}, {platform.machine()}, {os.cpu_count()} CPUs shared (load "
        f"{env['load_at_start']:.1f} -> {env['load_at_end']:.1f}), python {env['python']}, "
        f"sqlite {env['sqlite']}; benchmarks/bench_scaling.py"
    )
    for part in ("hooks", "retrieval"):
        if part in results:
            results[f"{part}_caption"] = results["caption"]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    for path in plot(results, args.plot_dir, results["caption"]):
        print(f"wrote {path}")
    print_result(results)


if __name__ == "__main__":
    main()
