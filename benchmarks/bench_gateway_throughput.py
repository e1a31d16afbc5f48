"""Gateway throughput: hook requests per second into ``trailguard serve``, every one committed.

``trailguard serve`` runs as a subprocess on a fresh data directory with its default checkpoint
settings; an agent token is made with ``trailguard token create``. ``--clients`` concurrent
clients (threads, split over ``--procs`` client processes), each with one keep-alive HTTP/1.1
connection over a plain socket and its own session, send a SessionStart and then alternate
realistic PreToolUse / PostToolUse payloads (Bash commands of ~80 characters, tool output of
~300-700 bytes, 1 in 10 about 4 KB) as fast as they are answered: a short warm-up, then the
measured window. Every answer must be ``200``. Afterwards the gateway is stopped with SIGTERM
and the ledger (``ledger.sqlite3``) is read with sqlite3: the ``tool_invocation`` +
``tool_result`` rows must equal the PreToolUse/PostToolUse requests answered ``200``, and the
``session_start`` rows the SessionStarts (gateway_start/stop, checkpoint rows are not hooks).

Baseline, in the same run and alternating with trailguard in ``--rounds`` rounds: the same load
against a minimal ASGI app under the same uvicorn (one worker, same ``log_level``) that reads
the body and answers ``{}`` without recording anything: the ceiling of the HTTP stack here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from array import array
from dataclasses import dataclass, field
from multiprocessing.pool import Pool as ProcessPool
from pathlib import Path
from typing import Any

from _common import (
    _COMMANDS,
    _WORDS,
    _stdout,
    _text,
    add_common_arguments,
    free_port,
    ledger_counts,
    metric,
    percentile,
    print_header,
    print_result,
    scratch_dir,
    section,
    serve_with_agent_token,
    stop_process,
    target,
    tree_cpu_seconds,
    wait_ready,
)

TARGET_RATE = 1_500  # hook requests/s
HOOK_PATH = "/hooks/claude-code"
HOOK_EVENTS = ("session_start", "tool_invocation", "tool_result")
NOT_HOOKS = (
    "checkpoint",
    "gateway_start",
    "gateway_stop",
    # Written by the gateway beside a hook event, not one per hook request:
    "infra_operation",
    "policy_change",
    "alert",
    "token_change",  # `token create` before the run, appended by the gateway's reaper
)

BASELINE_APP = r"""
import sys

import uvicorn


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

# -- payloads --------------------------------------------------------------------------------------

_PRE = (
    b'{"session_id":"%s","transcript_path":"/home/dev/.claude/projects/-home-dev-backend/%s.jsonl",'
    b'"cwd":"/home/dev/backend","permission_mode":"acceptEdits","effort":{"level":"medium"},'
    b'"hook_event_name":"PreToolUse","tool_name":"Bash",'
    b'"tool_input":{"command":%s,"description":%s},"tool_use_id":"%s"}'
)
_POST = (
    b'{"session_id":"%s","transcript_path":"/home/dev/.claude/projects/-home-dev-backend/%s.jsonl",'
    b'"cwd":"/home/dev/backend","permission_mode":"acceptEdits","hook_event_name":"PostToolUse",'
    b'"tool_name":"Bash","tool_input":{"command":%s,"description":%s},'
    b'"tool_response":{"stdout":%s,"stderr":"","interrupted":false,"isImage":false,'
    b'"noOutputExpected":false},"tool_use_id":"%s","duration_ms":%d}'
)


def session_start_body(session: bytes) -> bytes:
    payload = {
        "session_id": session.decode(),
        "transcript_path": f"/home/dev/.claude/projects/-home-dev-backend/{session.decode()}.jsonl",
        "cwd": "/home/dev/backend",
        "hook_event_name": "SessionStart",
        "source": "startup",
        "trailguard": {
            "context": {
                "osUser": "dev",
                "hostname": "bench-host",
                "gitEmail": "dev@acme.example",
                "gitRemote": "git@github.com:acme/backend.git",
                "gitBranch": "feature/bench",
                "permissionMode": "acceptEdits",
                "permissions": {"allow": ["Bash(git:*)"], "deny": [], "ask": []},
                "model": "claude-opus-5-5",
                "agentVersion": "2.1.328",
            },
            "observedAt": "2026-01-01T00:00:00.000Z",
        },
    }
    return json.dumps(payload, separators=(",", ":")).encode()


class Pool:
    """Pre-encoded JSON strings (commands, descriptions, outputs) to splice into payloads."""

    def __init__(self, seed: int, size: int = 64) -> None:
        rng = random.Random(seed)
        dump = lambda text: json.dumps(text).encode()  # noqa: E731
        self.commands = [
            dump(rng.choice(_COMMANDS).format(w=rng.choice(_WORDS))) for _ in range(size)
        ]
        self.descriptions = [dump(_text(rng, 30)) for _ in range(size)]
        sizes = [
            rng.randint(3500, 4500) if rng.random() < 0.1 else rng.randint(300, 700)
            for _ in range(size)
        ]
        self.outputs = [dump(_stdout(rng, n)) for n in sizes]
        self.rng = rng


def request_bytes(port: int, token: str, body: bytes) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % (HOOK_PATH.encode(), port, token.encode(), len(body))
    ) + body


# -- the load generator ----------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection; ``exchange`` returns (status, body)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buffer = sock, b""
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        sock = self.sock or self._connect()
        try:
            sock.sendall(request)
            buffer = self.buffer
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed by the server")
                buffer += chunk
            head = buffer[:end].decode("latin-1")
            status = int(head[9:12])
            length = 0
            close = False
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            start = end + 4
            while len(buffer) < start + length:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed mid-response")
                buffer += chunk
            body = buffer[start : start + length]
            self.buffer = buffer[start + length :]
            if close:
                self.close()
            return status, body
        except BaseException:
            self.close()
            raise


@dataclass
class Stats:
    ok_sessions: int = 0  # SessionStart answered 200
    ok_tools: int = 0  # PreToolUse / PostToolUse answered 200
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    measured: int = 0  # 200 answers that arrived inside the measured window
    latencies: array[float] = field(default_factory=lambda: array("d"))
    slowest: float = 0.0  # the slowest answer of any phase, warm-up and overrun included
    over_1s: int = 0  # answers of any phase that took more than a second

    def merge(self, other: Stats) -> None:
        self.ok_sessions += other.ok_sessions
        self.ok_tools += other.ok_tools
        self.errors += other.errors
        self.error_samples += other.error_samples[: max(0, 5 - len(self.error_samples))]
        self.measured += other.measured
        self.latencies.extend(other.latencies)
        self.slowest = max(self.slowest, other.slowest)
        self.over_1s += other.over_1s


def client(port: int, token: str, seed: int, t0: float, t_end: float) -> Stats:
    """One client: a session of its own, then PreToolUse/PostToolUse pairs until ``t_end``.
    Throughput counts the 200 answers that arrive in [t0, t_end]; latencies are kept for every
    request that starts in that window, however late its answer comes."""
    stats = Stats()
    pool = Pool(seed)
    rng = pool.rng
    session = str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode()
    connection = Connection(port)
    clock = time.monotonic

    def send(body: bytes, kind: str) -> None:
        request = request_bytes(port, token, body)
        began = clock()
        try:
            status, answer = connection.exchange(request)
        except OSError as exc:
            status, answer = 0, repr(exc).encode()
        ended = clock()
        stats.slowest = max(stats.slowest, ended - began)
        stats.over_1s += ended - began > 1.0
        if status == 200:
            if kind == "session":
                stats.ok_sessions += 1
            else:
                stats.ok_tools += 1
        else:
            stats.errors += 1
            if len(stats.error_samples) < 5:
                stats.error_samples.append(f"{status} {answer[:200]!r}")
        if status == 200 and t0 <= ended <= t_end:
            stats.measured += 1
        if t0 <= began < t_end:  # a request stalled past the window still counts its latency
            stats.latencies.append(ended - began)

    try:
        send(session_start_body(session), "session")
        number = 0
        while clock() < t_end:
            number += 1
            use_id = b"toolu_%06d%018d" % (seed % 1_000_000, number)
            i = rng.randrange(len(pool.commands))
            command, description = pool.commands[i], pool.descriptions[i]
            send(_PRE % (session, session, command, description, use_id), "tool")
            if clock() >= t_end:
                break
            output = pool.outputs[rng.randrange(len(pool.outputs))]
            duration = rng.randint(5, 30000)
            send(_POST % (session, session, command, description, output, use_id, duration), "tool")
    finally:
        connection.close()
    return stats


def run_clients(
    port: int, token: str, threads: int, seed: int, t0: float, t_end: float
) -> tuple[Stats, float]:
    """``threads`` clients in this process; returns their merged stats and this process's CPU
    seconds (user + system) spent while they ran."""
    results: list[Stats] = []
    lock = threading.Lock()
    cpu_before = sum(os.times()[:2])

    def work(number: int) -> None:
        stats = client(port, token, seed * 1000 + number, t0, t_end)
        with lock:
            results.append(stats)

    workers = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    merged = Stats()
    for stats in results:
        merged.merge(stats)
    return merged, sum(os.times()[:2]) - cpu_before


# -- processes -------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[Any]
    port: int
    token: str = "none"  # the baseline checks no token
    data_dir: Path | None = None
    log: Path | None = None
    stats: Stats = field(default_factory=Stats)
    seconds: float = 0.0  # measured window, summed over rounds
    server_cpu: float = 0.0  # server CPU seconds during the measured windows
    client_cpu: float = 0.0  # client CPU seconds during whole segments (warm-up included)
    client_seconds: float = 0.0


def drive(
    server: Server,
    executor: ProcessPool | None,
    clients: int,
    procs: int,
    warmup: float,
    duration: float,
    seed: int,
) -> None:
    """One segment: warm-up + measured window of ``clients`` clients over ``procs`` processes."""
    began = time.monotonic()
    t0 = began + 0.2 + warmup  # 0.2 s for the client processes to pick up their work
    t_end = t0 + duration
    shares = [clients // procs + (1 if n < clients % procs else 0) for n in range(procs)]
    cpu_at: dict[str, float] = {}

    def sample_cpu(key: str, at: float) -> None:
        time.sleep(max(0.0, at - time.monotonic()))
        cpu_at[key] = tree_cpu_seconds(server.process.pid)

    sampler = threading.Thread(
        target=lambda: (sample_cpu("t0", t0), sample_cpu("t_end", t_end)), daemon=True
    )
    sampler.start()
    if executor is None:
        outcomes = [run_clients(server.port, server.token, clients, seed, t0, t_end)]
    else:
        pending = [
            executor.apply_async(
                run_clients, (server.port, server.token, share, seed * 100 + n, t0, t_end)
            )
            for n, share in enumerate(shares)
        ]
        outcomes = [result.get() for result in pending]
    sampler.join()
    for stats, cpu in outcomes:
        server.stats.merge(stats)
        server.client_cpu += cpu
    server.client_seconds += time.monotonic() - began
    server.seconds += duration
    server.server_cpu += cpu_at.get("t_end", 0.0) - cpu_at.get("t0", 0.0)


# -- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--seconds", type=float, help="measured seconds per server (20 / 5)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per segment (2 / 1)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--procs", type=int, default=1, help="client processes")
    parser.add_argument("--rounds", type=int, default=2, help="trailguard/baseline alternations")
    parser.add_argument(
        "--workers",
        default="1,2",
        help="comma-separated `serve --workers` counts, each measured as its own server (1,2)",
    )
    parser.add_argument(
        "--compare-with",
        type=Path,
        help="another checkout: its `serve` (its src/) is measured too, alternating with this one",
    )
    args = parser.parse_args()
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    procs = max(1, min(args.procs, args.clients))
    worker_counts = [int(n) for n in args.workers.split(",") if n.strip()]

    with scratch_dir(args.dir, args.keep) as scratch, contextlib.ExitStack() as stack:
        env = print_header("trailguard gateway throughput", scratch)
        print(
            f"{args.clients} clients in {procs} process(es), keep-alive HTTP/1.1; "
            f"{seconds:g} s measured per server in {args.rounds} round(s), {warmup:g} s warm-up "
            f"before each; trailguard with --workers {', '.join(map(str, worker_counts))}"
        )
        gateways = [start_gateway(stack, scratch, workers) for workers in worker_counts]
        if args.compare_with is not None:
            others = [
                start_gateway(stack, scratch, workers, args.compare_with / "src")
                for workers in worker_counts
            ]
            print(f"other_wN: trailguard serve from {args.compare_with}")
        else:
            others = []

        base_log = scratch / "baseline.log"
        base_port = free_port()
        with base_log.open("ab") as log_file:
            base_process = subprocess.Popen(
                [sys.executable, "-c", BASELINE_APP, str(base_port)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        stack.callback(stop_process, base_process)
        wait_ready(base_process, f"http://127.0.0.1:{base_port}/healthz", base_log)
        baseline = Server("base", base_process, base_port)

        executor: ProcessPool | None = None
        if procs > 1:  # forked now (all of them), before anything is timed; terminated on exit
            executor = stack.enter_context(multiprocessing.get_context("fork").Pool(procs))

        segment = seconds / args.rounds
        servers = [*gateways, *others, baseline]
        for number in range(args.rounds):
            shift = number % len(servers)
            for server in servers[shift:] + servers[:shift]:
                drive(server, executor, args.clients, procs, warmup, segment, number + 1)

        checked = [*gateways, *others]
        checks = [check_ledger(gateway) for gateway in checked]

    results: dict[str, Any] = {}
    section(f"hook requests ({args.clients} clients, {seconds:g} s measured per server)")
    for server in servers:
        key = server.name
        if server is baseline:
            label = "(b) baseline uvicorn {}"
        elif server in others:
            label = f"(c) the other checkout, --workers {key.removeprefix('other_w')}"
        else:
            label = f"(a) trailguard serve --workers {key.removeprefix('tg_w')}"
        results |= report_server(server, key, label)
    base_rate = max(results["base_requests_per_s"], 1e-9)
    for gateway in gateways:
        ratio = results[f"{gateway.name}_requests_per_s"] / base_rate
        results[f"{gateway.name}_ratio"] = round(ratio, 4)
        metric(f"ratio {gateway.name} / baseline", ratio, "x")
    best = max(gateways, key=lambda g: results[f"{g.name}_requests_per_s"])
    if len(gateways) > 1:
        first = results[f"{gateways[0].name}_requests_per_s"]
        for gateway in gateways[1:]:
            gain = results[f"{gateway.name}_requests_per_s"] / max(first, 1e-9)
            metric(f"{gateway.name} / {gateways[0].name}", gain, "x")

    for gateway, other in zip(gateways, others, strict=False):
        gain = results[f"{gateway.name}_requests_per_s"] / max(
            results[f"{other.name}_requests_per_s"], 1e-9
        )
        results[f"{gateway.name}_to_other"] = round(gain, 3)
        metric(f"{gateway.name} / {other.name} (this checkout / the other)", gain, "x")

    committed = True
    for gateway, (ok, lines, counts, exit_code, errors) in zip(checked, checks, strict=True):
        committed &= ok
        section(f"ledger of {gateway.name} after SIGTERM (exit code {exit_code})")
        for line in lines:
            metric(*line)
        print(f"  rows by event_type: {json.dumps(counts, sort_keys=True)}")
        results[f"{gateway.name}_ledger_counts"] = counts
        results[f"{gateway.name}_stderr_lines"] = len(errors)
        if errors:
            print(f"  gateway stderr: {len(errors)} line(s) besides the banner, e.g.")
            for line in errors[:5]:
                print(f"    {line}")

    all_ok = all(server.stats.errors == 0 for server in servers)
    rate_met = results[f"{best.name}_requests_per_s"] >= TARGET_RATE
    section("targets")
    target("every request answered 200", all_ok)
    target("every answered hook committed to the ledger", committed)
    target(f"trailguard ({best.name}) >= {TARGET_RATE:,} hook requests/s", rate_met)
    samples = [sample for server in servers for sample in server.stats.error_samples]
    if samples:
        section("problems")
        for sample in samples[:5]:
            print(f"  answer: {sample}")

    print_result(
        {
            "benchmark": "gateway_throughput",
            "clients": args.clients,
            "client_procs": procs,
            "seconds": seconds,
            "rounds": args.rounds,
            "workers": worker_counts,
            **results,
            "tg_requests_per_s": results[f"{best.name}_requests_per_s"],
            "tg_best": best.name,
            "target_all_200_met": all_ok,
            "target_committed_met": committed,
            "target_rate_met": rate_met,
            "env": env,
        }
    )
    if not committed:
        raise SystemExit("a ledger does not hold every hook request answered 200")


def start_gateway(
    stack: contextlib.ExitStack, scratch: Path, workers: int, src: Path | None = None
) -> Server:
    """``trailguard serve --workers N`` on a fresh data directory, with an agent token; from
    another checkout's ``src`` if given (then named ``other_wN``)."""
    name = f"{'other' if src else 'tg'}_w{workers}"
    data_dir = scratch / f"gateway-{name}"
    data_dir.mkdir()
    log = scratch / f"gateway-{name}.log"
    process, port, token = serve_with_agent_token(
        stack, data_dir, log, "--workers", str(workers), developer="dev_bench", src=src
    )
    return Server(name, process, port, token, data_dir=data_dir, log=log)


def check_ledger(
    gateway: Server,
) -> tuple[bool, list[tuple[str, int, str]], dict[str, int], int | None, list[str]]:
    """Stop ``gateway`` and compare its ledger with what it answered 200."""
    assert gateway.data_dir is not None
    assert gateway.log is not None
    exit_code = stop_process(gateway.process)
    counts = ledger_counts(gateway.data_dir)
    errors = [  # anything but the start-up banner
        line
        for line in gateway.log.read_text(errors="replace").splitlines()
        if line.strip() and not line.startswith(("trailguard ", "listening on "))
    ]
    stats = gateway.stats
    tool_rows = counts.get("tool_invocation", 0) + counts.get("tool_result", 0)
    hook_rows = sum(n for kind, n in counts.items() if kind not in NOT_HOOKS)
    answered = stats.ok_sessions + stats.ok_tools
    committed = (
        tool_rows == stats.ok_tools
        and counts.get("session_start", 0) == stats.ok_sessions
        and hook_rows == answered
    )
    lines = [
        ("PreToolUse/PostToolUse answered 200", stats.ok_tools, "requests"),
        ("tool_invocation + tool_result rows", tool_rows, "events"),
        ("SessionStart answered 200", stats.ok_sessions, "requests"),
        ("session_start rows", counts.get("session_start", 0), "events"),
        ("hook events in the ledger (one per hook request)", hook_rows, "events"),
        ("checkpoint rows", counts.get("checkpoint", 0), "events"),
    ]
    return committed, lines, counts, exit_code, errors


def report_server(server: Server, key: str, label: str) -> dict[str, Any]:
    stats = server.stats
    rate = stats.measured / server.seconds
    latencies = list(stats.latencies)
    results: dict[str, Any] = {
        f"{key}_requests_per_s": round(rate, 1),
        f"{key}_p50_ms": round(percentile(latencies, 50) * 1e3, 3) if latencies else None,
        f"{key}_p99_ms": round(percentile(latencies, 99) * 1e3, 3) if latencies else None,
        f"{key}_max_ms": round(max(latencies) * 1e3, 3) if latencies else None,
        f"{key}_slowest_any_phase_ms": round(stats.slowest * 1e3, 3),
        f"{key}_answers_over_1s": stats.over_1s,
        f"{key}_errors": stats.errors,
        f"{key}_server_cores": round(server.server_cpu / server.seconds, 2),
        f"{key}_client_cores": round(server.client_cpu / server.client_seconds, 2),
    }
    metric(f"{label} throughput", rate, "requests/s")
    for name in ("p50", "p99", "max"):
        value = results[f"{key}_{name}_ms"]
        metric(f"{label} latency {name}", "no data" if value is None else value, "ms")
    metric(f"{label} slowest answer, any phase", stats.slowest * 1e3, "ms")
    metric(f"{label} answers that took > 1 s, any phase", stats.over_1s)
    metric(f"{label} non-200 answers / failures", stats.errors)
    metric(f"{label} server CPU (all its processes)", results[f"{key}_server_cores"], "cores")
    metric(f"{label} client CPU", results[f"{key}_client_cores"], "cores")
    return results


if __name__ == "__main__":
    main()
