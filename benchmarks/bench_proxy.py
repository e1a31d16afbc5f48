"""Anthropic API proxy overhead: streamed Messages requests through ``trailguard serve``'s
``/anthropic`` pass-through against the same upstream called directly, in one run.

The upstream is a small streaming Messages API server in this script (asyncio, stdlib only, its
own process). Each ``POST /v1/messages`` is read in full and answered ``200`` with a chunked
``text/event-stream``: ``message_start`` + ``content_block_start`` + ``ping`` at once (in the
same write as the response head), then ``--deltas`` ``content_block_delta`` chunks every
``--pause-ms``, then after one more pause the closing chunk (a ``tool_use`` block,
``message_delta`` with the usage, ``message_stop``). Every answer has its own ``request-id``,
message id and ``tool_use`` id, so the gateway records each one.

``trailguard serve`` runs as a subprocess on a fresh data directory with ``--anthropic-upstream``
pointing at that upstream; (a) "direct" requests go to ``<upstream>/v1/messages?beta=true``,
(b) "proxy" requests to ``<gateway>/anthropic/v1/messages?beta=true``, with the same bytes
otherwise: a Claude Code-like request (``x-api-key``, ``anthropic-version``, ``anthropic-beta``,
``x-claude-code-session-id``, JSON body of ``--body-kb`` KB with ``"stream": true``). The client is
this one process: plain sockets, one keep-alive HTTP/1.1 connection per client and server, a small
incremental chunked-body reader with ``time.perf_counter`` stamps.

1. Latency, sequential: ``--pairs`` pairs of one direct and one proxied request (order alternating
   pair by pair), in ``--rounds`` rounds, ``--gap-ms`` between requests, after a few untimed
   warm-up requests. Time to first byte (TTFB) is from just before the request is sent to the
   arrival of the first byte of the response *body* (the ``message_start`` event); the time to the
   response head is printed too. Added TTFB is reported as the median of the paired differences
   (proxy - direct of the same pair) and as the difference of the medians; the same for the total
   time (to the last byte). "spread" (first body byte to last byte) shows the stream is not
   buffered: it stays near ``(deltas + 1) x pause`` through the proxy.
2. Concurrent streams: ``--clients`` threads, each with its own connection and session id, send
   the same requests back to back for ``--seconds`` per server (split into ``--load-rounds``
   alternating segments, each after a ``--warmup``): streams/s (complete 200 streams finished in
   the window), TTFB under load, failures, server CPU. Variant "paced" uses the stream above;
   "unpaced" the same chunks with no pauses (the proxy's per-stream cost then sets the rate).

``--tls``: the upstream speaks TLS with a certificate for 127.0.0.1 signed by a CA made for the
run (``cryptography``); the gateway trusts that CA through ``SSL_CERT_FILE``, as it would a
corporate one, and the direct client through its own context. The gateway still listens in
plain HTTP, as it does for Claude Code on 127.0.0.1.

Finally the gateway is stopped with SIGTERM and ``ledger.sqlite3`` read with sqlite3: there must
be one ``cost`` event per proxied request answered 200 (warm-ups included); the script exits
non-zero otherwise. The sessions are not registered through hooks (no ``SessionStart``), no
budgets are configured, and the model (``claude-opus-5-5``) is in the price table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    _text,
    add_common_arguments,
    cpu_seconds,
    create_token,
    free_port,
    ledger_counts,
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
TARGET_ADDED_TTFB_MS = 2.0
MODEL = "claude-opus-5-5"
WARMUP_REQUESTS = 5
STREAM_END = b'data: {"type":"message_stop"}\n\n'

UPSTREAM_APP = r"""
import asyncio
import os
import socket
import sys

PORT = int(sys.argv[1])
MODEL = sys.argv[2].encode()
TLS = None
if len(sys.argv) > 4:  # --tls: certificate and key files
    import ssl

    TLS = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    TLS.load_cert_chain(sys.argv[3], sys.argv[4])
RUN = os.urandom(5).hex().encode()
counter = 0


def event(name, data):
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


DELTA = event(
    b"content_block_delta",
    b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":'
    b'"Let me look at the failing test and the module it imports before changing anything. "}}',
)


def stream_parts(ident):
    first = (
        event(
            b"message_start",
            b'{"type":"message_start","message":{"id":"msg_bench%s","type":"message",'
            b'"role":"assistant","model":"%s","content":[],"stop_reason":null,'
            b'"stop_sequence":null,"usage":{"input_tokens":3900,'
            b'"cache_creation_input_tokens":0,"cache_read_input_tokens":1500,'
            b'"output_tokens":1}}}' % (ident, MODEL),
        )
        + event(
            b"content_block_start",
            b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
        )
        + event(b"ping", b'{"type":"ping"}')
    )
    last = (
        event(b"content_block_stop", b'{"type":"content_block_stop","index":0}')
        + event(
            b"content_block_start",
            b'{"type":"content_block_start","index":1,"content_block":{"type":"tool_use",'
            b'"id":"toolu_bench%s","name":"Bash","input":{}}}' % ident,
        )
        + event(
            b"content_block_delta",
            b'{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta",'
            b'"partial_json":"{\\"command\\": \\"pytest -q tests/test_config.py\\"}"}}',
        )
        + event(b"content_block_stop", b'{"type":"content_block_stop","index":1}')
        + event(
            b"message_delta",
            b'{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},'
            b'"usage":{"output_tokens":240}}',
        )
        + event(b"message_stop", b'{"type":"message_stop"}')
    )
    return first, last


async def handle(reader, writer):
    global counter
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ")[:2]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            if not target.startswith("/v1/messages"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
                continue
            pause = float(headers.get("x-bench-pause-ms", "20")) / 1000
            deltas = int(headers.get("x-bench-deltas", "5"))
            counter += 1
            ident = b"%s%08d" % (RUN, counter)
            first, last = stream_parts(ident)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"cache-control: no-cache\r\nrequest-id: req_bench%s\r\n"
                b"anthropic-organization-id: org-bench\r\n"
                b"transfer-encoding: chunked\r\n\r\n" % ident
                + chunk(first)
            )
            await writer.drain()
            for _ in range(deltas):
                if pause:
                    await asyncio.sleep(pause)
                writer.write(chunk(DELTA))
                await writer.drain()
            if pause:
                await asyncio.sleep(pause)
            writer.write(chunk(last) + b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", PORT, backlog=1024, ssl=TLS)
    async with server:
        await server.serve_forever()


asyncio.run(main())
"""

# -- TLS -------------------------------------------------------------------------------------------


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 it signs: ca.pem, server.pem, server.key."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench_proxy CA")])
    host = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    valid = {"not_valid_before": now, "not_valid_after": now + datetime.timedelta(days=1)}
    ca = (
        x509.CertificateBuilder(subject_name=ca_name, issuer_name=ca_name, **valid)
        .public_key(ca_key.public_key()).serial_number(1)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    server = (
        x509.CertificateBuilder(subject_name=host, issuer_name=ca_name, **valid)
        .public_key(key.public_key()).serial_number(2)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    files = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


# -- requests --------------------------------------------------------------------------------------


def request_body(kb: int, seed: int = 7) -> bytes:
    """A Claude Code-shaped Messages request of about ``kb`` KB (system text, tools, messages)."""
    rng = random.Random(seed)
    tools = [
        {
            "name": name,
            "description": _text(rng, 600),
            "input_schema": {
                "type": "object",
                "properties": {"command": {"type": "string", "description": _text(rng, 80)}},
                "required": ["command"],
            },
        }
        for name in ("Bash", "Read", "Write", "Edit", "Glob", "Grep", "Task", "WebFetch")
    ]
    payload: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 32000,
        "stream": True,
        "system": [{"type": "text", "text": ""}],
        "tools": tools,
        "messages": [{"role": "user", "content": "Fix the failing test in tests/test_config.py"}],
        "metadata": {"user_id": "user_bench"},
    }
    size = len(json.dumps(payload, separators=(",", ":")))
    payload["system"][0]["text"] = _text(rng, max(0, kb * 1024 - size))
    return json.dumps(payload, separators=(",", ":")).encode()


def request_bytes(
    port: int, path: str, body: bytes, session: str, pause_ms: float, deltas: int, token: str = ""
) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "accept: application/json\r\ncontent-type: application/json\r\n"
        "user-agent: claude-cli/2.1.328 (external, sdk-cli)\r\n"
        "x-api-key: sk-ant-bench-not-a-real-key\r\nanthropic-version: 2023-06-01\r\n"
        "anthropic-beta: claude-code-20250219,interleaved-thinking-2025-05-14\r\n"
        f"x-app: cli\r\nx-claude-code-session-id: {session}\r\n"
        f"x-bench-pause-ms: {pause_ms:g}\r\nx-bench-deltas: {deltas}\r\n"
        + (f"x-trailguard-token: {token}\r\n" if token else "")
        + f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


# -- the client ------------------------------------------------------------------------------------


@dataclass
class Exchange:
    status: int
    began: float
    head: float  # seconds from sending to the end of the response head
    first_body: float  # ... to the arrival of the body's first byte
    total: float  # ... to the last byte
    complete: bool  # 200, and the stream ended with message_stop
    detail: str = ""


class Connection:
    """One keep-alive HTTP/1.1 connection reading chunked (or Content-Length) answers."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.tls = tls
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_hostname="127.0.0.1")
        self.sock, self.buffer = sock, b""
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def exchange(self, request: bytes) -> Exchange:
        clock = time.perf_counter
        sock = self.sock or self._connect()
        buffer = self.buffer
        last_recv = 0.0

        def more() -> None:
            nonlocal buffer, last_recv
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed by the server")
            last_recv = clock()
            buffer += data

        began = clock()
        try:
            sock.sendall(request)
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                more()
            head_at = last_recv if last_recv else clock()
            head = buffer[:end].decode("latin-1")
            status = int(head[9:12])
            length: int | None = None
            chunked = close = False
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                name, value = name.strip().lower(), value.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "transfer-encoding" and "chunked" in value:
                    chunked = True
                elif name == "connection" and value == "close":
                    close = True
            pos = end + 4
            body = bytearray()
            first_at: float | None = None
            if chunked:
                while True:
                    while (eol := buffer.find(b"\r\n", pos)) < 0:
                        more()
                    size = int(buffer[pos:eol].split(b";")[0], 16)
                    pos = eol + 2
                    if size == 0:
                        while True:  # trailer lines, then the blank line
                            while (eol := buffer.find(b"\r\n", pos)) < 0:
                                more()
                            blank = eol == pos
                            pos = eol + 2
                            if blank:
                                break
                        break
                    while len(buffer) <= pos:
                        more()
                    if first_at is None:
                        first_at = last_recv if last_recv else clock()
                    while len(buffer) < pos + size + 2:
                        more()
                    body += buffer[pos : pos + size]
                    pos += size + 2
            else:
                length = length or 0
                while len(buffer) < pos + length:
                    more()
                first_at = last_recv if last_recv else clock()
                body += buffer[pos : pos + length]
                pos += length
            ended = last_recv if last_recv else clock()
            self.buffer = buffer[pos:]
            if close:
                self.close()
        except (OSError, ValueError) as exc:
            self.close()
            now = clock() - began
            return Exchange(0, began, now, now, now, False, repr(exc)[:200])
        complete = status == 200 and bytes(body).endswith(STREAM_END)
        detail = "" if complete else f"{status} {bytes(body[-200:])!r}"
        return Exchange(
            status,
            began,
            head_at - began,
            (first_at if first_at is not None else ended) - began,
            ended - began,
            complete,
            detail,
        )


@dataclass
class Target:
    name: str
    port: int
    path: str
    token: str = ""
    """An agent token, sent as X-Trailguard-Token as Claude Code's hooks set it up to do."""
    tls: ssl.SSLContext | None = None
    """Set for the upstream with --tls."""

    def connection(self) -> Connection:
        return Connection(self.port, self.tls)

    def request(self, body: bytes, session: str, pause_ms: float, deltas: int) -> bytes:
        return request_bytes(self.port, self.path, body, session, pause_ms, deltas, self.token)


@dataclass
class Tally:
    """What one target saw: answers, failures, timings."""

    complete: int = 0  # 200 answers whose stream ended with message_stop, any phase
    failures: int = 0
    samples: list[str] = field(default_factory=list)
    measured: int = 0  # complete streams that ended inside the measured window
    ttfb: array[float] = field(default_factory=lambda: array("d"))
    total: array[float] = field(default_factory=lambda: array("d"))

    def add(self, exchange: Exchange) -> None:
        if exchange.complete:
            self.complete += 1
        else:
            self.failures += 1
            if len(self.samples) < 5:
                self.samples.append(exchange.detail)

    def merge(self, other: Tally) -> None:
        self.complete += other.complete
        self.failures += other.failures
        self.samples += other.samples[: max(0, 5 - len(self.samples))]
        self.measured += other.measured
        self.ttfb.extend(other.ttfb)
        self.total.extend(other.total)


# -- processes -------------------------------------------------------------------------------------


# -- phases ----------------------------------------------------------------------------------------


@dataclass
class Paired:
    direct: list[Exchange] = field(default_factory=list)
    proxy: list[Exchange] = field(default_factory=list)


def latency_phase(
    direct: Target,
    proxy: Target,
    body: bytes,
    pairs: int,
    rounds: int,
    gap: float,
    pause_ms: float,
    deltas: int,
    tallies: dict[str, Tally],
) -> Paired:
    """Sequential pairs, one request at a time, the order alternating pair by pair."""
    connections = {direct.name: direct.connection(), proxy.name: proxy.connection()}
    requests = {
        target_.name: target_.request(body, "bench-latency", pause_ms, deltas)
        for target_ in (direct, proxy)
    }
    paired = Paired()
    try:
        for _ in range(WARMUP_REQUESTS):
            for name in (direct.name, proxy.name):
                tallies[name].add(connections[name].exchange(requests[name]))
                time.sleep(gap)
        per_round = [pairs // rounds + (1 if n < pairs % rounds else 0) for n in range(rounds)]
        number = 0
        for count in per_round:
            for _ in range(count):
                order = (direct.name, proxy.name) if number % 2 == 0 else (proxy.name, direct.name)
                number += 1
                outcome: dict[str, Exchange] = {}
                for name in order:
                    outcome[name] = connections[name].exchange(requests[name])
                    tallies[name].add(outcome[name])
                    time.sleep(gap)
                paired.direct.append(outcome[direct.name])
                paired.proxy.append(outcome[proxy.name])
            time.sleep(0.2)  # between rounds: let the gateway's ledger settle
    finally:
        for connection in connections.values():
            connection.close()
    return paired


@dataclass
class Load:
    """The measured concurrent-stream segments of one target in one variant."""

    tally: Tally = field(default_factory=Tally)
    seconds: float = 0.0
    server_cpu: float = 0.0  # the target server's CPU seconds during the measured windows
    upstream_cpu: float = 0.0  # the upstream's, same windows
    client_cpu: float = 0.0  # this process's, whole segments
    client_seconds: float = 0.0


def load_segment(
    target_: Target,
    load: Load,
    clients: int,
    warmup: float,
    duration: float,
    body: bytes,
    variant: str,
    pause_ms: float,
    deltas: int,
    server_pid: int,
    upstream_pid: int,
    tallies: dict[str, Tally],
) -> None:
    began = time.monotonic()
    t0 = began + 0.1 + warmup
    t_end = t0 + duration
    results: list[Tally] = []
    lock = threading.Lock()
    cpu_at: dict[str, float] = {}

    def sample(key: str, at: float) -> None:
        time.sleep(max(0.0, at - time.monotonic()))
        cpu_at[key] = cpu_seconds(server_pid)
        cpu_at["up_" + key] = cpu_seconds(upstream_pid)

    def work(number: int) -> None:
        tally = Tally()
        connection = target_.connection()
        request = target_.request(body, f"bench-{variant}-{number:02d}", pause_ms, deltas)
        clock = time.monotonic
        try:
            while clock() < t_end:
                started = clock()
                exchange = connection.exchange(request)
                ended = clock()
                tally.add(exchange)
                if exchange.complete and t0 <= ended <= t_end:
                    tally.measured += 1
                if exchange.complete and t0 <= started < t_end:
                    tally.ttfb.append(exchange.first_body)
                    tally.total.append(exchange.total)
                if not exchange.complete:
                    time.sleep(0.01)  # a failing server is not hammered in a tight loop
        finally:
            connection.close()
        with lock:
            results.append(tally)

    cpu_before = sum(os.times()[:2])
    sampler = threading.Thread(target=lambda: (sample("t0", t0), sample("t_end", t_end)))
    workers = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(clients)]
    sampler.start()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    sampler.join()
    for tally in results:
        load.tally.merge(tally)
        tallies[target_.name].complete += tally.complete
        tallies[target_.name].failures += tally.failures
    load.seconds += duration
    load.server_cpu += cpu_at.get("t_end", 0.0) - cpu_at.get("t0", 0.0)
    load.upstream_cpu += cpu_at.get("up_t_end", 0.0) - cpu_at.get("up_t0", 0.0)
    load.client_cpu += sum(os.times()[:2]) - cpu_before
    load.client_seconds += time.monotonic() - began


# -- reporting -------------------------------------------------------------------------------------


def ms(values: list[float] | array[float], pct: float) -> float | None:
    return round(percentile(list(values), pct) * 1e3, 3) if len(values) else None


def show_ms(label: str, value: float | None) -> None:
    metric(label, "no data" if value is None else value, "ms")


def paired_report(paired: Paired) -> dict[str, Any]:
    pairs = [
        (d, p)
        for d, p in zip(paired.direct, paired.proxy, strict=True)
        if d.complete and p.complete
    ]
    out: dict[str, Any] = {"pairs_used": len(pairs)}
    if not pairs:
        return out
    for key, attribute in (("ttfb", "first_body"), ("head", "head"), ("total", "total")):
        direct = [getattr(d, attribute) for d, _ in pairs]
        proxy = [getattr(p, attribute) for _, p in pairs]
        diffs = [b - a for a, b in zip(direct, proxy, strict=True)]
        out |= {
            f"direct_{key}_p50_ms": ms(direct, 50),
            f"direct_{key}_p99_ms": ms(direct, 99),
            f"proxy_{key}_p50_ms": ms(proxy, 50),
            f"proxy_{key}_p99_ms": ms(proxy, 99),
            f"added_{key}_paired_median_ms": round(statistics.median(diffs) * 1e3, 3),
            f"added_{key}_paired_p90_ms": ms(diffs, 90),
            f"added_{key}_median_diff_ms": round(
                (statistics.median(proxy) - statistics.median(direct)) * 1e3, 3
            ),
        }
    spread_d = [d.total - d.first_body for d, _ in pairs]
    spread_p = [p.total - p.first_body for _, p in pairs]
    out |= {"direct_spread_p50_ms": ms(spread_d, 50), "proxy_spread_p50_ms": ms(spread_p, 50)}
    return out


# -- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--pairs", type=int, help="sequential direct/proxy pairs (300 / 30)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the sequential pairs")
    parser.add_argument("--gap-ms", type=float, default=10.0, help="pause between requests")
    parser.add_argument(
        "--seconds", type=float, help="measured concurrent-stream seconds per server (10 / 3)"
    )
    parser.add_argument("--warmup", type=float, help="warm-up seconds per segment (1 / 0.3)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent streams")
    parser.add_argument("--load-rounds", type=int, default=2, help="proxy/direct alternations")
    parser.add_argument(
        "--variants", default="paced,unpaced", help="concurrent-stream variants to run"
    )
    parser.add_argument("--deltas", type=int, default=5, help="content_block_delta chunks")
    parser.add_argument("--pause-ms", type=float, default=20.0, help="pause between chunks")
    parser.add_argument("--body-kb", type=int, default=32, help="request body size")
    parser.add_argument(
        "--tls", action="store_true", help="the upstream speaks TLS (a CA made for the run)"
    )
    args = parser.parse_args()
    pairs = args.pairs or (30 if args.quick else 300)
    rounds = max(1, min(args.rounds, pairs))
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if any(v not in ("paced", "unpaced") for v in variants):
        raise SystemExit("--variants takes paced and/or unpaced")
    body = request_body(args.body_kb)
    gap = args.gap_ms / 1000

    with scratch_dir(args.dir, args.keep) as scratch, contextlib.ExitStack() as stack:
        env = print_header("trailguard Anthropic API proxy overhead", scratch)
        stream_ms = (args.deltas + 1) * args.pause_ms
        print(
            f"upstream stream: message_start at once, {args.deltas} deltas every "
            f"{args.pause_ms:g} ms, end after {stream_ms:g} ms; request body {len(body):,} bytes; "
            f"{pairs} sequential pairs in {rounds} round(s); {args.clients} concurrent streams, "
            f"{seconds:g} s per server per variant ({', '.join(variants) or 'none'})"
        )
        up_port = free_port()
        up_log = scratch / "upstream.log"
        tls: ssl.SSLContext | None = None
        tls_files: list[str] = []
        scheme = "http"
        if args.tls:
            ca_file, cert_file, key_file = make_certificates(scratch)
            tls = ssl.create_default_context(cafile=str(ca_file))
            tls_files, scheme = [str(cert_file), str(key_file)], "https"
        with up_log.open("ab") as log_file:
            upstream = subprocess.Popen(
                [sys.executable, "-c", UPSTREAM_APP, str(up_port), MODEL, *tls_files],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        stack.callback(stop_process, upstream)
        wait_ready(upstream, f"{scheme}://127.0.0.1:{up_port}/healthz", up_log, context=tls)

        data_dir = scratch / "gateway-data"
        data_dir.mkdir()
        gw_log = scratch / "gateway.log"
        gw_port = free_port()
        gw_env = os.environ | {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        if args.tls:  # the gateway trusts the bench's CA as it would a corporate one
            gw_env["SSL_CERT_FILE"] = str(scratch / "ca.pem")
        with gw_log.open("ab") as log_file:
            gateway = subprocess.Popen(
                [str(TRAILGUARD), "serve", "--data-dir", str(data_dir), "--port", str(gw_port),
                 "--anthropic-upstream", f"{scheme}://127.0.0.1:{up_port}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file,
                env=gw_env,
            )  # fmt: skip
        stack.callback(stop_process, gateway)
        wait_ready(gateway, f"http://127.0.0.1:{gw_port}/healthz", gw_log)

        # The same agent token goes to both (the upstream ignores it): the proxy looks it up.
        token = create_token(data_dir, "dev_bench", "agent")
        direct = Target("direct", up_port, "/v1/messages?beta=true", token, tls)
        proxy = Target("proxy", gw_port, "/anthropic/v1/messages?beta=true", token)
        tallies = {"direct": Tally(), "proxy": Tally()}

        paired = latency_phase(
            direct, proxy, body, pairs, rounds, gap, args.pause_ms, args.deltas, tallies
        )

        loads: dict[str, dict[str, Load]] = {}
        for variant in variants:
            pause_ms = args.pause_ms if variant == "paced" else 0.0
            loads[variant] = {"direct": Load(), "proxy": Load()}
            segment = seconds / args.load_rounds
            for number in range(args.load_rounds):
                order = (proxy, direct) if number % 2 == 0 else (direct, proxy)
                for target_ in order:
                    load_segment(
                        target_, loads[variant][target_.name], args.clients, warmup, segment,
                        body, variant, pause_ms, args.deltas,
                        gateway.pid if target_ is proxy else upstream.pid, upstream.pid, tallies,
                    )  # fmt: skip
                    time.sleep(0.3)

        gateway_exit = stop_process(gateway)
        counts = ledger_counts(data_dir)
        gateway_errors = [
            line
            for line in gw_log.read_text(errors="replace").splitlines()
            if line.strip() and not line.startswith(("trailguard ", "listening on "))
        ]

    # -- report --
    results: dict[str, Any] = paired_report(paired)
    used = results["pairs_used"]
    section(
        f"sequential streamed requests ({used} complete pairs of {pairs}, {rounds} round(s)); "
        "TTFB = first byte of the body (message_start)"
    )
    for label, key in (("TTFB", "ttfb"), ("time to head", "head"), ("total time", "total")):
        for who in ("direct", "proxy"):
            for pct in ("p50", "p99"):
                show_ms(f"({'a' if who == 'direct' else 'b'}) {who:<6} {label} {pct}",
                        results.get(f"{who}_{key}_{pct}_ms"))  # fmt: skip
        show_ms(f"added {label}: median of paired diffs",
                results.get(f"added_{key}_paired_median_ms"))  # fmt: skip
        show_ms(f"added {label}: p90 of paired diffs", results.get(f"added_{key}_paired_p90_ms"))
        show_ms(f"added {label}: difference of medians",
                results.get(f"added_{key}_median_diff_ms"))  # fmt: skip
    show_ms("(a) direct first -> last body byte p50", results.get("direct_spread_p50_ms"))
    show_ms("(b) proxy  first -> last body byte p50", results.get("proxy_spread_p50_ms"))

    for variant, by_target in loads.items():
        shape = (
            f"{args.deltas} deltas every {args.pause_ms:g} ms"
            if variant == "paced"
            else "same chunks, no pauses"
        )
        section(f"concurrent streams, {variant} ({shape}; {args.clients} clients, "
                f"{seconds:g} s per server)")  # fmt: skip
        for who in ("direct", "proxy"):
            load = by_target[who]
            tally = load.tally
            rate = tally.measured / load.seconds if load.seconds else 0.0
            key = f"{variant}_{who}"
            results |= {
                f"{key}_streams_per_s": round(rate, 1),
                f"{key}_ttfb_p50_ms": ms(tally.ttfb, 50),
                f"{key}_ttfb_p99_ms": ms(tally.ttfb, 99),
                f"{key}_total_p50_ms": ms(tally.total, 50),
                f"{key}_failures": tally.failures,
                f"{key}_upstream_cores": round(load.upstream_cpu / load.seconds, 2),
                f"{key}_client_cores": round(load.client_cpu / load.client_seconds, 2),
            }
            label = f"({'a' if who == 'direct' else 'b'}) {who:<6}"
            metric(f"{label} throughput", rate, "streams/s")
            show_ms(f"{label} TTFB p50", results[f"{key}_ttfb_p50_ms"])
            show_ms(f"{label} TTFB p99", results[f"{key}_ttfb_p99_ms"])
            show_ms(f"{label} total time p50", results[f"{key}_total_p50_ms"])
            metric(f"{label} failed / incomplete streams", tally.failures)
            if who == "proxy":
                results[f"{key}_gateway_cores"] = round(load.server_cpu / load.seconds, 2)
                metric(f"{label} gateway CPU", results[f"{key}_gateway_cores"], "cores")
            metric(f"{label} upstream CPU", results[f"{key}_upstream_cores"], "cores")
            metric(f"{label} client CPU", results[f"{key}_client_cores"], "cores")
        ratio = results[f"{variant}_proxy_streams_per_s"] / max(
            results[f"{variant}_direct_streams_per_s"], 1e-9
        )
        results[f"{variant}_ratio"] = round(ratio, 4)
        metric("ratio (b)/(a)", ratio, "x")

    proxied = tallies["proxy"].complete
    cost_rows = counts.get("cost", 0)
    section(f"ledger after SIGTERM (gateway exit code {gateway_exit})")
    metric("proxied streams answered 200 and complete", proxied, "requests")
    metric("proxied requests that failed", tallies["proxy"].failures, "requests")
    metric("cost rows", cost_rows, "events")
    print(f"  rows by event_type: {json.dumps(counts, sort_keys=True)}")

    failures = tallies["direct"].failures + tallies["proxy"].failures
    recorded = cost_rows == proxied and tallies["proxy"].failures == 0
    added = results.get("added_ttfb_paired_median_ms")
    ttfb_met = added is not None and added <= TARGET_ADDED_TTFB_MS
    section("targets")
    target("every stream answered 200 and complete", failures == 0)
    target("a cost event per proxied request", recorded)
    target(f"added TTFB p50 (paired) <= {TARGET_ADDED_TTFB_MS:g} ms", ttfb_met)
    samples = tallies["direct"].samples + tallies["proxy"].samples
    for load_pair in loads.values():
        for load in load_pair.values():
            samples += load.tally.samples
    if samples or gateway_errors:
        section("problems")
        for sample in samples[:5]:
            print(f"  answer: {sample}")
        if gateway_errors:
            print(f"  gateway stderr: {len(gateway_errors)} line(s) besides the banner, e.g.")
        for line in gateway_errors[:5]:
            print(f"    {line}")

    print_result(
        {
            "benchmark": "proxy",
            "pairs": pairs,
            "rounds": rounds,
            "clients": args.clients,
            "seconds": seconds,
            "deltas": args.deltas,
            "pause_ms": args.pause_ms,
            "body_bytes": len(body),
            **results,
            "proxied_complete": proxied,
            "cost_rows": cost_rows,
            "ledger_counts": counts,
            "failures": failures,
            "gateway_exit_code": gateway_exit,
            "gateway_stderr_lines": len(gateway_errors),
            "target_all_complete_met": failures == 0,
            "target_cost_recorded_met": recorded,
            "target_added_ttfb_met": ttfb_met,
            "env": env,
        }
    )
    if cost_rows < proxied:
        raise SystemExit("the ledger lacks a cost event for a proxied request answered 200")


if __name__ == "__main__":
    main()
