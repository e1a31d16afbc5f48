"""SIEM forwarding: events/s per sink to a local receiver, and sink lag under hook load.

(1) Throughput. A ledger of ``--events`` realistic events is built (not timed). For each sink a
forwarder starts at cursor 0 and the time until its cursor reaches the head (everything
acknowledged) gives events/s. Sinks: syslog over TLS to the real rsyslog (``rsyslogd`` with
``rsyslog-gnutls``, own process) in json, cef and ocsf; Splunk HEC (the test double of
tests/siem_receivers.py, in its own process) without and with indexer acknowledgement; signed
webhooks (same) in json and ocsf. Baseline, same run, same receivers: the rows read from the
ledger and their stored bytes sent over the same kind of connection in the same batches, with
no formatting, no cursor, no acknowledgement wait (syslog: octet-counted frames on one TLS
socket; HTTP: one POST per batch with httpx).

(2) Lag under load. ``trailguard serve`` (subprocess) with three sinks (syslog+tls to rsyslog,
HEC with ack, a webhook) takes ``--rate`` hook requests/s (PreToolUse/PostToolUse pairs, paced,
``--clients`` keep-alive connections) for ``--seconds``; ``/metrics`` is sampled every 0.5 s
for each sink's lag (events, seconds). Baseline, same run: the same load on a gateway without
sinks; the hook latency of both is reported, so the cost of streaming to the hook path shows.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from _common import (
    add_common_arguments,
    build_ledger,
    cpu_seconds,
    free_port,
    ledger_counts,
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
    Connection,
    Pool,
    request_bytes,
    session_start_body,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from siem_receivers import HecReceiver, Rsyslog, WebhookReceiver, make_certificates

TRAILGUARD = Path(sys.executable).with_name("trailguard")
HEC_TOKEN = "00000000-fake-hec-token-0000-000000000000"
WEBHOOK_KEY = b"fake-webhook-hmac-key-for-benchmarks"


# -- receivers in their own processes ------------------------------------------------------------


def _serve_receiver(kind: str, port: int, ready: Any, stop: Any, count: Any) -> None:
    receiver: HecReceiver | WebhookReceiver
    if kind == "hec":
        receiver = HecReceiver(HEC_TOKEN, ack=False, port=port)
    elif kind == "hec-ack":
        receiver = HecReceiver(HEC_TOKEN, ack=True, port=port)
    else:
        receiver = WebhookReceiver(WEBHOOK_KEY, port=port)
    receiver.start()
    ready.set()
    while not stop.wait(0.2):
        count.value = len(receiver.events)
    count.value = len(receiver.events)
    receiver.stop()


class ReceiverProcess:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.port = free_port()
        context = multiprocessing.get_context("fork")
        self._ready, self._stop = context.Event(), context.Event()
        self.count = context.Value("q", 0)
        self._process = context.Process(
            target=_serve_receiver,
            args=(kind, self.port, self._ready, self._stop, self.count),
            daemon=True,
        )

    def __enter__(self) -> ReceiverProcess:
        self._process.start()
        if not self._ready.wait(20):
            raise SystemExit(f"the {self.kind} receiver did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._process.join(timeout=10)


def _secret(scratch: Path, name: str, value: bytes) -> Path:
    path = scratch / name
    path.write_bytes(value)
    path.chmod(0o600)
    return path


# -- (1) throughput ------------------------------------------------------------------------------


def forward_all(data_dir: Path, url: str, name: str) -> tuple[float, int]:
    """Seconds for a fresh forwarder to have every event acknowledged, and events sent."""
    from trailguard.ledger.keys import load_verifier
    from trailguard.siem.config import parse_sink_url
    from trailguard.siem.cursors import CursorStore
    from trailguard.siem.forwarder import Forwarder
    from trailguard.store.sqlite import SQLiteStore

    config = parse_sink_url(url + f"&name={name}")
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    head = store.tree_size()
    store.close()
    cursors = CursorStore(data_dir)
    forwarder = Forwarder(
        config,
        data_dir=data_dir,
        verifier=load_verifier(str(data_dir / "signing.pub")),
        cursors=cursors,
        hostname=socket.gethostname(),
        record_alert=lambda alert: None,  # a fresh sink far behind: its lag alert is expected
        poll_interval=0.01,
    )
    started = time.perf_counter()
    forwarder.start()
    while forwarder.status.cursor < head:
        if time.perf_counter() - started > 600:
            raise SystemExit(f"{name}: no progress ({forwarder.status})")
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    forwarder.stop()
    cursors.close()
    return elapsed, forwarder.status.delivered


def baseline_syslog(data_dir: Path, port: int, ca: Path, batch: int) -> float:
    import ssl

    from trailguard.store.sqlite import SQLiteStore

    context = ssl.create_default_context(cafile=str(ca))
    started = time.perf_counter()
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        frames: list[bytes] = []
        for row in store.rows():
            frame = b"<110>1 " + row.timestamp.encode() + b" host trailguard 1 - - " + row.body
            frames.append(b"%d %b" % (len(frame), frame))
            if len(frames) >= batch:
                sock.sendall(b"".join(frames))
                frames = []
        if frames:
            sock.sendall(b"".join(frames))
    store.close()
    return time.perf_counter() - started


def _measured(results: dict[str, Any], key: str, label: str, size: int, work: Any) -> None:
    """Run ``work``; report events/s (wall) and this process's CPU per event, which the
    machine's other load disturbs far less than the wall time."""
    cpu = time.process_time()
    wall = time.perf_counter()
    work()
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    results[key] = {"events_per_s": size / wall, "cpu_us_per_event": cpu / size * 1e6}
    metric(label, f"{size / wall:,.0f} events/s, {cpu / size * 1e6:.1f} us CPU/event")


def throughput(scratch: Path, events: int, batch: int) -> dict[str, Any]:
    section(f"(1) events/s per sink, {events:,} realistic events, batches of {batch}")
    data_dir = scratch / "throughput"
    build_ledger(data_dir, make_events("realistic", events), 1000)
    from trailguard.store.sqlite import SQLiteStore

    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    size = store.tree_size()
    store.close()
    certs = make_certificates(scratch / "certs")
    rsyslog = Rsyslog(scratch / "rsyslog", certs)
    rsyslog.start()
    results: dict[str, Any] = {}
    token = _secret(scratch, "hec.token", HEC_TOKEN.encode())
    key = _secret(scratch, "webhook.key", WEBHOOK_KEY)

    def run(key: str, label: str, work: Any) -> None:
        _measured(results, key, label, size, work)

    def hec_body(bodies: list[bytes]) -> bytes:
        return b"\n".join(b'{"time":0,"event":' + body + b"}" for body in bodies)

    def webhook_body(bodies: list[bytes]) -> bytes:
        return b"[" + b",".join(bodies) + b"]"

    def signed(body: bytes) -> dict[str, str]:
        from trailguard.siem.http import sign

        return {"X-Trailguard-Signature": sign(WEBHOOK_KEY, body, int(time.time()))}

    try:
        tls = f"syslog+tls://127.0.0.1:{rsyslog.port}?ca={certs.ca}&batch_size={batch}"
        for fmt in ("json", "cef", "ocsf"):
            url = f"{tls}&format={fmt}"
            run(f"syslog_tls_{fmt}", f"syslog+tls {fmt} (rsyslog)",
                lambda url=url, fmt=fmt: forward_all(data_dir, url, f"syslog-{fmt}"))  # fmt: skip
        run("baseline_syslog_tls_raw", "baseline: stored bytes over one TLS socket",
            lambda: baseline_syslog(data_dir, rsyslog.port, certs.ca, batch))  # fmt: skip
        with ReceiverProcess("hec") as receiver:
            url = f"http://127.0.0.1:{receiver.port}/services/collector/event"
            auth = {"Authorization": f"Splunk {HEC_TOKEN}"}
            run("baseline_hec_raw", "baseline: stored bytes POSTed to HEC",
                lambda: _baseline_post(data_dir, url, batch, hec_body, lambda _: auth))  # fmt: skip
        for kind, extra in (("hec", ""), ("hec-ack", "&ack=true")):
            with ReceiverProcess(kind) as receiver:
                url = (
                    f"splunk-hec+http://127.0.0.1:{receiver.port}?token_file={token}"
                    f"&batch_size={batch}{extra}"
                )
                label = f"Splunk HEC{' with indexer ack' if extra else ''} (test double)"
                run(kind.replace("-", "_"), label,
                    lambda url=url, kind=kind: forward_all(data_dir, url, kind))  # fmt: skip
        for fmt in ("json", "ocsf"):
            with ReceiverProcess("webhook") as receiver:
                url = (
                    f"webhook+http://127.0.0.1:{receiver.port}/in?secret_file={key}"
                    f"&batch_size={batch}&format={fmt}"
                )
                name = f"webhook-{fmt}"
                run(f"webhook_{fmt}", f"signed webhook {fmt}",
                    lambda url=url, name=name: forward_all(data_dir, url, name))  # fmt: skip
        with ReceiverProcess("webhook") as receiver:
            # The baseline signs too, one signature per batch computed the same way.
            url = f"http://127.0.0.1:{receiver.port}/in"
            run("baseline_webhook_raw", "baseline: stored bytes POSTed, signed",
                lambda: _baseline_post(data_dir, url, batch, webhook_body, signed))  # fmt: skip
    finally:
        rsyslog.stop()
    results["events"] = size
    results["rsyslog_lines"] = len(rsyslog.lines())
    return results


def _baseline_post(
    data_dir: Path,
    url: str,
    batch: int,
    join: Any,
    headers: Any,
) -> float:
    """Seconds to POST every stored body, ``batch`` at a time, joined by ``join``."""
    import httpx

    from trailguard.store.sqlite import SQLiteStore

    started = time.perf_counter()
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    with httpx.Client() as client:
        bodies: list[bytes] = []

        def post() -> None:
            body = join(bodies)
            client.post(url, content=body, headers=headers(body)).raise_for_status()

        for row in store.rows():
            bodies.append(bytes(row.body))
            if len(bodies) >= batch:
                post()
                bodies = []
        if bodies:
            post()
    store.close()
    return time.perf_counter() - started


# -- (2) lag under hook load --------------------------------------------------------------------


def _paced_client(
    port: int,
    token: str,
    rate: float,
    until: float,
    seed: int,
    latencies: list[float],
    errors: list[int],
) -> None:
    pool = Pool(seed)
    connection = Connection(port)
    session = f"sess_bench_{seed:04d}".encode()
    connection.exchange(request_bytes(port, token, session_start_body(session)))
    interval = 1.0 / rate
    next_at = time.perf_counter()
    number = 0
    while next_at < until:
        now = time.perf_counter()
        if now < next_at:
            time.sleep(next_at - now)
        number += 1
        use_id = b"toolu_%04d%07d" % (seed, number // 2)
        command = pool.rng.choice(pool.commands)
        description = pool.rng.choice(pool.descriptions)
        if number % 2:
            body = _PRE % (session, session, command, description, use_id)
        else:
            output = pool.rng.choice(pool.outputs)
            body = _POST % (session, session, command, description, output, use_id, 12)
        sent = time.perf_counter()
        status, _ = connection.exchange(request_bytes(port, token, body))
        latencies.append(time.perf_counter() - sent)
        if status != 200:
            errors.append(status)
        next_at += interval
    connection.close()


def _metrics(port: int, auditor: str) -> dict[str, dict[str, float]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {auditor}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    found: dict[str, dict[str, float]] = {}
    for match in re.finditer(
        r'^trailguard_sink_(lag_events|lag_seconds)\{sink="([^"]+)"\} (\S+)$', text, re.M
    ):
        found.setdefault(match[2], {})[match[1]] = float(match[3])
    return found


def under_load(scratch: Path, rate: float, seconds: float, clients: int, with_sinks: bool,
               sinks: list[str], round_number: int) -> dict[str, Any]:  # fmt: skip
    data_dir = scratch / f"load-{'sinks' if with_sinks else 'bare'}-{round_number}"
    subprocess.run([str(TRAILGUARD), "init", "--data-dir", str(data_dir)], check=True,
                   capture_output=True)  # fmt: skip
    from trailguard.store.gateway_state import GatewayState

    state = GatewayState(data_dir)
    token, _ = state.create_token("dev_bench", "agent")
    auditor, _ = state.create_token("aud_bench", "auditor")
    state.close()
    port = free_port()
    argv = [
        str(TRAILGUARD),
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--hook-rate",
        "0",
    ]
    for sink in sinks if with_sinks else []:
        argv += ["--sink", sink]
    log = data_dir.parent / f"{data_dir.name}.log"
    with log.open("w") as output:
        server = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)
    samples: dict[str, list[tuple[float, float]]] = {}
    try:
        wait_ready(server, f"http://127.0.0.1:{port}/healthz", log)
        # The sink worker's start (imports, sending the first events) is not part of the load.
        time.sleep(1.0)
        deadline = time.perf_counter() + 60
        while with_sinks and time.perf_counter() < deadline:
            lags = _metrics(port, auditor)
            if len(lags) == len(sinks) and all(v.get("lag_events") == 0 for v in lags.values()):
                break
            time.sleep(0.1)

        def worker_pids() -> list[int]:
            children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text()
            return [int(pid) for pid in children.split()]

        gateway_cpu_start = cpu_seconds(server.pid)
        worker_cpu_start = sum(cpu_seconds(pid) for pid in worker_pids())
        events_start = sum(ledger_counts(data_dir).values())
        latencies: list[float] = []
        errors: list[int] = []
        until = time.perf_counter() + seconds
        threads = [
            threading.Thread(
                target=_paced_client,
                args=(port, token, rate / clients, until, seed, latencies, errors),
            )
            for seed in range(clients)
        ]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
            if with_sinks:
                for sink, values in _metrics(port, auditor).items():
                    samples.setdefault(sink, []).append(
                        (values.get("lag_events", 0.0), values.get("lag_seconds", 0.0))
                    )
        for thread in threads:
            thread.join()
        gateway_cpu = cpu_seconds(server.pid) - gateway_cpu_start
        worker_cpu = sum(cpu_seconds(pid) for pid in worker_pids()) - worker_cpu_start
        events = sum(ledger_counts(data_dir).values()) - events_start
        caught_up_after = None
        if with_sinks:
            started = time.perf_counter()
            while time.perf_counter() - started < 120:
                lags = _metrics(port, auditor)
                if all(v.get("lag_events", 1) == 0 for v in lags.values()):
                    caught_up_after = time.perf_counter() - started
                    break
                time.sleep(0.05)
    finally:
        stop_process(server)
    return {
        "latencies": latencies,
        "errors": errors,
        "requests": len(latencies),
        "samples": samples,
        "caught_up_after": caught_up_after,
        "gateway_cpu": gateway_cpu,
        "worker_cpu": worker_cpu,
        "events": events,
    }


def _empty_run() -> dict[str, Any]:
    return {
        "latencies": [],
        "errors": [],
        "requests": 0,
        "samples": {},
        "caught_up_after": 0.0,
        "gateway_cpu": 0.0,
        "worker_cpu": 0.0,
        "events": 0,
    }


def lag(scratch: Path, rate: float, seconds: float, clients: int, rounds: int) -> dict[str, Any]:
    section(
        f"(2) sink lag while the gateway takes {rate:g} hook requests/s for {seconds:g} s, "
        f"{rounds} rounds alternating with the baseline"
    )
    certs = make_certificates(scratch / "certs-load")
    rsyslog = Rsyslog(scratch / "rsyslog-load", certs)
    rsyslog.start()
    token = _secret(scratch, "hec-load.token", HEC_TOKEN.encode())
    key = _secret(scratch, "webhook-load.key", WEBHOOK_KEY)
    results: dict[str, Any] = {}
    try:
        with ReceiverProcess("hec-ack") as hec, ReceiverProcess("webhook") as webhook:
            sinks = [
                f"syslog+tls://127.0.0.1:{rsyslog.port}?ca={certs.ca}&format=cef&name=syslog",
                f"splunk-hec+http://127.0.0.1:{hec.port}?token_file={token}&ack=true&name=hec",
                f"webhook+http://127.0.0.1:{webhook.port}/in?secret_file={key}&format=ocsf&name=webhook",
            ]
            runs: dict[bool, dict[str, Any]] = {}
            for number in range(rounds):  # alternating, so load from elsewhere hits both alike
                for with_sinks in (False, True) if number % 2 == 0 else (True, False):
                    run = under_load(scratch, rate, seconds, clients, with_sinks, sinks, number)
                    merged = runs.setdefault(with_sinks, _empty_run())
                    for key in ("latencies", "errors"):
                        merged[key] += run[key]
                    for key in ("requests", "gateway_cpu", "worker_cpu", "events"):
                        merged[key] += run[key]
                    for sink, values in run["samples"].items():
                        merged["samples"].setdefault(sink, []).extend(values)
                    merged["caught_up_after"] = max(
                        merged["caught_up_after"], run["caught_up_after"] or 0.0
                    )
    finally:
        rsyslog.stop()
    for with_sinks, run in runs.items():
        label = "with 3 sinks" if with_sinks else "baseline, no sinks"
        latencies = run["latencies"]
        achieved = run["requests"] / (seconds * rounds)
        metric(f"{label}: hook requests/s achieved", achieved, "req/s")
        metric(f"{label}: hook latency p50", percentile(latencies, 50) * 1000, "ms")
        metric(f"{label}: hook latency p99", percentile(latencies, 99) * 1000, "ms")
        metric(f"{label}: non-200 answers", len(run["errors"]))
        metric(
            f"{label}: gateway CPU per hook request",
            run["gateway_cpu"] / max(1, run["requests"]) * 1000,
            "ms",
        )
        if with_sinks:
            metric(
                f"{label}: sink worker CPU per event (3 sinks)",
                run["worker_cpu"] / max(1, run["events"]) * 1e6,
                "us",
            )
        key_name = "sinks" if with_sinks else "bare"
        results[f"{key_name}_rate"] = achieved
        results[f"{key_name}_p50_ms"] = percentile(latencies, 50) * 1000
        results[f"{key_name}_p99_ms"] = percentile(latencies, 99) * 1000
        results[f"{key_name}_errors"] = len(run["errors"])
        results[f"{key_name}_gateway_cpu_ms_per_request"] = (
            run["gateway_cpu"] / max(1, run["requests"]) * 1000
        )
        if with_sinks:
            results["worker_cpu_us_per_event"] = run["worker_cpu"] / max(1, run["events"]) * 1e6
    run = runs[True]
    for sink, values in sorted(run["samples"].items()):
        events = [e for e, _ in values]
        delays = [s for _, s in values]
        metric(f"{sink}: lag events p50 / max", f"{percentile(events, 50):.0f} / {max(events):.0f}")
        metric(
            f"{sink}: lag seconds p50 / max", f"{percentile(delays, 50):.2f} / {max(delays):.2f}"
        )
        results[f"lag_{sink}"] = {
            "events_p50": percentile(events, 50),
            "events_max": max(events),
            "seconds_p50": percentile(delays, 50),
            "seconds_max": max(delays),
        }
    metric("all sinks caught up after the load stopped in", run["caught_up_after"] or -1, "s")
    results["caught_up_after_s"] = run["caught_up_after"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--events", type=int, default=None, help="ledger size for (1)")
    parser.add_argument("--batch", type=int, default=200, help="sink batch_size")
    parser.add_argument("--rate", type=float, default=300.0, help="hook requests/s for (2)")
    parser.add_argument("--seconds", type=float, default=None, help="length of the load in (2)")
    parser.add_argument("--clients", type=int, default=6, help="paced connections for (2)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds in (2)")
    args = parser.parse_args()
    events = args.events or (5_000 if args.quick else 30_000)
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    with scratch_dir(args.dir, args.keep) as scratch:
        env = print_header("SIEM forwarding: throughput per sink and lag under hook load", scratch)
        results = {"env": env, "throughput": throughput(scratch, events, args.batch)}
        rounds = args.rounds or (1 if args.quick else 2)
        results["lag"] = lag(scratch, args.rate, seconds, args.clients, rounds)
    print_result(results)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
    os._exit(0)
