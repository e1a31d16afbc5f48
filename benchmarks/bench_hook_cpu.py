"""CPU per hook request inside the gateway: the app called through raw ASGI in one process (no
uvicorn, no sockets, no client), so what is counted is trailguard's own work per request: auth,
parse, classify, Cedar, build, redact, canonicalise, and the ledger writer thread's commit.

``--clients`` concurrent sessions (asyncio tasks) send a SessionStart, then the realistic
PreToolUse/PostToolUse pairs of ``bench_gateway_throughput.py``, after a warm-up of the same
shape. Each measurement runs in a fresh process on a fresh data directory (default ledger
settings, fsync'd commits); the figure is that process's CPU time (all threads) per request,
which moves far less than wall time when the machine is shared.

Baseline, in the same run and alternating in ``--rounds`` rounds: the same driver against a
do-nothing ASGI app answering ``{}`` (the cost of the driver itself). ``--compare-with PATH``
adds another checkout's ``src`` (before/after in one run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import bench_gateway_throughput as load
from _common import add_common_arguments, metric, print_header, print_result, scratch_dir, section

HOOK_PATH = b"/hooks/claude-code"


def _scope(token: bytes, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": HOOK_PATH.decode(),
        "raw_path": HOOK_PATH,
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8787"),
            (b"authorization", b"Bearer " + token),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8787),
    }


async def _call(app: Any, token: bytes, body: bytes) -> int:
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # the client never disconnects
        return {"type": "http.disconnect"}

    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(_scope(token, body), receive, send)
    return status[0]


async def _sessions(app: Any, token: bytes, clients: int, pairs: int, seed: int) -> int:
    """``clients`` concurrent sessions of ``pairs`` Pre/PostToolUse pairs; returns the number
    of requests, raising if any was not answered 200."""

    async def session(number: int) -> int:
        pool = load.Pool(seed + number)
        rng = pool.rng
        session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode()
        statuses = [await _call(app, token, load.session_start_body(session_id))]
        for call in range(pairs):
            use_id = b"toolu_%06d%018d" % (seed + number, call)
            i = rng.randrange(len(pool.commands))
            command, description = pool.commands[i], pool.descriptions[i]
            pre = load._PRE % (session_id, session_id, command, description, use_id)
            statuses.append(await _call(app, token, pre))
            output = pool.outputs[rng.randrange(len(pool.outputs))]
            post = load._POST % (session_id, session_id, command, description, output, use_id, 5)
            statuses.append(await _call(app, token, post))
        bad = [s for s in statuses if s != 200]
        if bad:
            raise SystemExit(f"a hook request was answered {bad[0]}")
        return len(statuses) - 1  # the SessionStart is not a tool hook

    counts = await asyncio.gather(*(session(n) for n in range(clients)))
    return sum(counts)


async def _noop(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


async def _child(kind: str, data_dir: Path, clients: int, pairs: int) -> dict[str, float]:
    if kind == "noop":
        await _sessions(_noop, b"none", clients, max(1, pairs // 4), seed=1)
        started, cpu = time.perf_counter(), time.process_time()
        requests = await _sessions(_noop, b"none", clients, pairs, seed=100)
        return _figures(requests, started, cpu)

    from trailguard.gateway.app import create_app
    from trailguard.ledger.writer import Ledger

    trailguard = str(Path(sys.executable).with_name("trailguard"))
    subprocess.run(
        [trailguard, "init", "--data-dir", str(data_dir)], check=True, capture_output=True
    )
    made = subprocess.run(
        [trailguard, "token", "create", "--developer", "dev_bench", "--role", "agent",
         "--data-dir", str(data_dir)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    token = made.stdout.strip().splitlines()[-1].encode()
    ledger = Ledger.open(data_dir)
    app = create_app(ledger, idle_timeout=3600)
    try:
        async with app.router.lifespan_context(app):
            await _sessions(app, token, clients, max(1, pairs // 4), seed=1)  # warm-up
            started, cpu = time.perf_counter(), time.process_time()
            requests = await _sessions(app, token, clients, pairs, seed=100)
            return _figures(requests, started, cpu)
    finally:
        ledger.close()


def _figures(requests: int, started: float, cpu: float) -> dict[str, float]:
    return {
        "requests": requests,
        "cpu_us_per_request": (time.process_time() - cpu) / requests * 1e6,
        "wall_us_per_request": (time.perf_counter() - started) / requests * 1e6,
    }


def _measure(
    kind: str, src: Path | None, scratch: Path, clients: int, pairs: int
) -> dict[str, Any]:
    data_dir = scratch / f"{kind}-{time.monotonic_ns()}"
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    process = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--data", str(data_dir),
         "--clients", str(clients), "--pairs", str(pairs)],
        capture_output=True, text=True, env=env, timeout=900, check=False,
    )  # fmt: skip
    if process.returncode != 0:
        raise SystemExit(f"{kind} ({src or 'this checkout'}) failed:\n{process.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(process.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--clients", type=int, default=16, help="concurrent sessions")
    parser.add_argument("--pairs", type=int, help="Pre/PostToolUse pairs per session (200 / 60)")
    parser.add_argument("--rounds", type=int, help="alternations (3 / 2)")
    parser.add_argument("--compare-with", type=Path, help="another checkout (its src/ is used)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    pairs = args.pairs or (60 if args.quick else 200)
    if args.child:
        figures = asyncio.run(_child(args.child, args.data, args.clients, pairs))
        print(json.dumps(figures))
        return
    rounds = args.rounds or (2 if args.quick else 3)
    variants: list[tuple[str, str, Path | None]] = [("tg", "trailguard", None)]
    if args.compare_with is not None:
        variants.append(("other", f"trailguard at {args.compare_with}", args.compare_with / "src"))
    variants.append(("noop", "baseline: do-nothing ASGI app", None))
    with scratch_dir(args.dir, args.keep) as scratch:
        env = print_header("CPU per hook request, in process (raw ASGI)", scratch)
        samples: dict[str, list[dict[str, Any]]] = {key: [] for key, _, _ in variants}
        for _ in range(rounds):
            for key, _, src in variants:
                kind = "noop" if key == "noop" else "gateway"
                samples[key].append(_measure(kind, src, scratch, args.clients, pairs))
        result: dict[str, Any] = {"benchmark": "hook_cpu", "clients": args.clients,
                                  "pairs": pairs, "rounds": rounds}  # fmt: skip
        section(f"{args.clients} sessions x {pairs} pairs, {rounds} rounds (median of rounds)")
        for key, label, _ in variants:
            cpu = statistics.median(s["cpu_us_per_request"] for s in samples[key])
            wall = statistics.median(s["wall_us_per_request"] for s in samples[key])
            metric(f"{label}: CPU per request", round(cpu), "us")
            metric(f"{label}: wall per request", round(wall), "us")
            result[f"{key}_cpu_us"] = round(cpu, 1)
            result[f"{key}_wall_us"] = round(wall, 1)
        if "other_cpu_us" in result:
            metric(
                "trailguard / the other checkout, CPU",
                result["tg_cpu_us"] / result["other_cpu_us"],
                "x",
            )
            result["ratio_to_other"] = round(result["tg_cpu_us"] / result["other_cpu_us"], 3)
        metric("load average (1 min) at the end", os.getloadavg()[0])
        result["loadavg_1min"] = os.getloadavg()[0]
        result["env"] = env
        print_result(result)


if __name__ == "__main__":
    main()
