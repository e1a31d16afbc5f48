"""One party must not slow another's tool calls: PreToolUse latency of a developer while
(a) two auditors read /v1/events?limit=10000 from a 30 k-event ledger, and (b) a neighbouring
agent posts megabyte tool inputs. The baseline is the same developer's latency on an idle
gateway, measured in the same run (issue 8: p99 within 3x of idle while the reads run).

    .venv/bin/python benchmarks/bench_interference.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
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
    target,
    wait_ready,
)

TRAILGUARD = Path(sys.executable).with_name("trailguard")
SESSION = "ae1e1885-0000-4000-8000-00000000b001"


class HookClient:
    """One keep-alive HTTP/1.1 connection posting PreToolUse hooks; returns seconds per call."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buffer = b""

    def post(self, body: bytes) -> float:
        head = (
            f"POST /hooks/claude-code HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        started = time.perf_counter()
        self.sock.sendall(head + body)
        status = self._read_response()
        elapsed = time.perf_counter() - started
        if status != 200:
            raise SystemExit(f"hook answered {status}")
        return elapsed

    def _read_response(self) -> int:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            rest += self.sock.recv(65536)
        self.buffer = rest[length:]
        return status

    def close(self) -> None:
        self.sock.close()


def pre_tool_use(number: int, command: str = "git status && ls -la src") -> bytes:
    return json.dumps(
        {
            "session_id": SESSION,
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": command, "description": "look around"},
            "tool_use_id": f"toolu_bench_{number:06d}",
            "cwd": "/home/dev/app",
        }
    ).encode()


def measure(client: HookClient, calls: int, first: int) -> list[float]:
    return [client.post(pre_tool_use(first + i)) * 1000 for i in range(calls)]


def in_background(
    work: Callable[[threading.Event], None], count: int
) -> tuple[threading.Event, list[threading.Thread]]:
    stop = threading.Event()
    threads = [threading.Thread(target=work, args=(stop,), daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return stop, threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    args = parser.parse_args()
    calls = 150 if args.quick else 600
    ledger_events = 10_000 if args.quick else 30_000
    results: dict[str, Any] = {}

    with scratch_dir(args.dir, args.keep) as scratch, contextlib.ExitStack() as stack:
        env = print_header("trailguard: one party's load against another's tool calls", scratch)
        data_dir = scratch / "data"
        build_ledger(data_dir, make_events("realistic", ledger_events), 1000)
        agent = create_token(data_dir, "dev_jordan", "agent")
        neighbour = create_token(data_dir, "dev_noisy", "agent")
        auditor = create_token(data_dir, "aud_sam", "auditor")
        port = free_port()
        log = scratch / "gateway.log"
        with log.open("ab") as log_file:
            gateway = subprocess.Popen(
                [str(TRAILGUARD), "serve", "--data-dir", str(data_dir), "--port", str(port)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file,
            )  # fmt: skip
        stack.callback(stop_process, gateway)
        wait_ready(gateway, f"http://127.0.0.1:{port}/healthz", log)
        print(f"ledger of {ledger_events:,} events; {calls} PreToolUse calls per phase")

        client = HookClient(port, agent)
        stack.callback(client.close)
        measure(client, 30, 0)  # warm-up
        idle = measure(client, calls, 1000)

        reads = [0]

        def read_events(stop: threading.Event) -> None:
            url = f"http://127.0.0.1:{port}/v1/events?limit=10000"
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {auditor}"})
            while not stop.is_set():
                with urllib.request.urlopen(request, timeout=120) as response:
                    response.read()
                reads[0] += 1

        stop, threads = in_background(read_events, 2)
        time.sleep(0.5)
        beside_reads = measure(client, calls, 10_000)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)

        big_inputs = [0]
        megabyte = "x" * (1 << 20)

        def post_megabytes(stop: threading.Event) -> None:
            noisy = HookClient(port, neighbour)
            number = 0
            while not stop.is_set():
                noisy.post(pre_tool_use(500_000 + number, f"echo {megabyte}"))
                number += 1
                big_inputs[0] += 1
            noisy.close()

        stop, threads = in_background(post_megabytes, 2)
        time.sleep(0.5)
        beside_megabytes = measure(client, calls, 20_000)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)

    section("PreToolUse latency of one developer (ms)")
    for label, values in (
        ("idle gateway (baseline)", idle),
        ("two auditors reading 10,000 events each", beside_reads),
        ("a neighbour posting 1 MiB inputs (2 clients)", beside_megabytes),
    ):
        metric(f"{label}: p50", percentile(values, 50), "ms")
        metric(f"{label}: p99", percentile(values, 99), "ms")
    metric("full reads completed meanwhile", reads[0])
    metric("megabyte hook requests completed meanwhile", big_inputs[0])
    read_ratio = percentile(beside_reads, 99) / percentile(idle, 99)
    megabyte_ratio = percentile(beside_megabytes, 99) / percentile(idle, 99)
    metric("p99 beside reads / idle p99", read_ratio, "x")
    metric("p99 beside megabyte inputs / idle p99", megabyte_ratio, "x")
    target("p99 beside the reads within 3x of idle", read_ratio <= 3.0)
    results = {
        "env": env,
        "idle_p50_ms": percentile(idle, 50),
        "idle_p99_ms": percentile(idle, 99),
        "reads_p50_ms": percentile(beside_reads, 50),
        "reads_p99_ms": percentile(beside_reads, 99),
        "megabyte_p50_ms": percentile(beside_megabytes, 50),
        "megabyte_p99_ms": percentile(beside_megabytes, 99),
        "reads_completed": reads[0],
        "megabyte_requests": big_inputs[0],
    }
    print_result(results)


if __name__ == "__main__":
    main()
