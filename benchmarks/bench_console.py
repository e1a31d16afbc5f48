"""Auditor console page render times against a real `trailguard serve` on a large ledger, with
the same run's baselines: the JSON API's answer for the same data (`/v1/events`), the HTTP floor
(`/healthz`), and an agent's PreToolUse latency while auditors load the heaviest pages.

    .venv/bin/python benchmarks/bench_console.py [--quick]

Each page is fetched over HTTP with a signed-in console session (cookie), so the figure is what
a browser waits for the HTML: authentication, the ledger reads, the audit_access record (a
durable append), and rendering.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from _common import (
    add_common_arguments,
    create_token,
    free_port,
    metric,
    percentile,
    print_header,
    print_result,
    realistic_events,
    scratch_dir,
    section,
    stop_process,
    target,
    wait_ready,
)
from trailguard.events import (
    AuditAccess,
    Cost,
    Event,
    InfraOperation,
    Operation,
    SessionEnd,
    SessionStart,
    ToolInvocation,
)
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.gateway_state import GatewayState, SessionSummary

TRAILGUARD = Path(sys.executable).with_name("trailguard")
BIG_SESSION = "sess_big_000001"
AGENT_SESSION = "ae1e1885-0000-4000-8000-00000000b001"
S3 = Operation(
    kind="aws",
    action="s3:DeleteObject",
    resource="arn:aws:s3:::logs/*",
    access="delete",
    risk="critical",
    flags=["recursive"],
)


def enrich(events: Iterator[Event]) -> Iterator[Event]:
    """The realistic mix with what the console shows besides tool calls: one denied call with
    an operation in 40, a cost event after each prompt's calls."""
    number = 0
    for event in events:
        number += 1
        if isinstance(event, ToolInvocation) and number % 40 == 0:
            denied = event.model_copy(
                update={
                    "policy_result": "denied",
                    "policy_rule": "no-aws-destructive-in-prod",
                    "policy_reason": "deleting under a production profile needs a human",
                    "operations": [S3],
                }
            )
            yield denied
            yield InfraOperation(
                session_id=denied.session_id,
                developer_id=denied.developer_id,
                project_id=denied.project_id,
                tool_use_id=denied.tool_use_id,
                operation=S3,
            )
            continue
        yield event
        if isinstance(event, ToolInvocation) and number % 3 == 0:
            yield Cost(
                session_id=event.session_id,
                developer_id=event.developer_id,
                project_id=event.project_id,
                model="claude-opus-5-5",
                request_id=f"req_{number}",
                tool_use_ids=[event.tool_use_id or ""],
                input_tokens=3900,
                output_tokens=240,
                cache_read_tokens=1500,
                cost_usd=0.0207,
                source="proxy",
            )


def one_big_session(count: int) -> Iterator[Event]:
    """``count`` events in one session (the realistic mix's calls under one id)."""
    yield SessionStart(session_id=BIG_SESSION, developer_id="dev_jordan", project_id="proj_big")
    produced = 1
    for event in enrich(realistic_events(count * 2, seed=7)):
        if isinstance(event, SessionStart | SessionEnd):
            continue
        if produced >= count - 1:
            break
        yield event.model_copy(update={"session_id": BIG_SESSION, "project_id": "proj_big"})
        produced += 1
    yield SessionEnd(session_id=BIG_SESSION, reason="completed", project_id="proj_big")


def reads(count: int) -> Iterator[Event]:
    for number in range(count):
        yield AuditAccess(
            developer_id="aud_sam",
            action="GET /v1/events",
            outcome="allowed",
            query={"session": f"sess_{number % 97}"},
            result_count=number % 500,
            source="gateway",
        )


def build(data_dir: Path, background: int, big: int, accesses: int) -> dict[str, int]:
    """The ledger and the gateway state's session summaries (not timed)."""
    ledger = Ledger.open(
        data_dir,
        config=LedgerConfig(checkpoint_every_events=1000, checkpoint_interval_seconds=3600.0),
        run_reason="benchmark",
    )
    summaries: dict[str, dict[str, Any]] = {}

    def noted(events: Iterator[Event]) -> Iterator[Event]:
        for event in events:
            if event.session_id:
                entry = summaries.setdefault(
                    event.session_id,
                    {"developer": event.developer_id, "project": event.project_id, "start": None},
                )
                if isinstance(event, SessionStart):
                    entry["start"] = event.timestamp
                entry["last"] = event.timestamp
                if isinstance(event, SessionEnd):
                    entry["end"] = event.timestamp
            yield event

    try:
        ledger.append_many(noted(enrich(realistic_events(background))), chunk=1000)
        ledger.append_many(noted(one_big_session(big)), chunk=1000)
        ledger.append_many(reads(accesses), chunk=1000)
        size = ledger.tree_size
    finally:
        ledger.close()
    state = GatewayState(data_dir)
    try:
        for session_id, entry in summaries.items():
            state.save_session(
                SessionSummary(
                    session_id,
                    entry["developer"],
                    entry["project"],
                    entry["start"],
                    entry["last"],
                    entry.get("end"),
                    "completed" if entry.get("end") else None,
                    None,
                    entry["start"] is None,
                )
            )
    finally:
        state.close()
    return {"events": size, "sessions": len(summaries)}


def signed_in(base: str, auditor: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=120, follow_redirects=True)
    page = client.get("/ui/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', page.text)
    if nonce is None:
        raise SystemExit("no sign-in form")
    answer = client.post("/ui/login", data={"token": auditor, "csrf": nonce.group(1)})
    if answer.status_code != 200 or "Sessions" not in answer.text:
        raise SystemExit(f"sign-in failed: {answer.status_code}")
    return client


def timed(client: httpx.Client, path: str, repeat: int, **headers: str) -> tuple[list[float], int]:
    client.get(path, headers=headers)  # warm
    samples = []
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        answer = client.get(path, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        if answer.status_code not in (200, 204):
            raise SystemExit(f"{path} answered {answer.status_code}: {answer.text[:300]}")
        size = len(answer.content)
    return samples, size


def pre_tool_use(number: int) -> dict[str, Any]:
    return {
        "session_id": AGENT_SESSION,
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "git status && ls -la src", "description": "look"},
        "tool_use_id": f"toolu_bench_{number:06d}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    args = parser.parse_args()
    background = 30_000 if args.quick else 200_000
    big = 2_000 if args.quick else 10_000
    accesses = 5_000 if args.quick else 20_000
    repeat = 5 if args.quick else 15
    hooks = 100 if args.quick else 400
    results: dict[str, Any] = {}

    with scratch_dir(args.dir, args.keep) as scratch, contextlib.ExitStack() as stack:
        env = print_header("trailguard: auditor console page render times", scratch)
        data_dir = scratch / "data"
        started = time.perf_counter()
        sizes = build(data_dir, background, big, accesses)
        print(
            f"ledger of {sizes['events']:,} events in {sizes['sessions']:,} sessions, built in "
            f"{time.perf_counter() - started:.0f} s (not timed); {repeat} fetches per page"
        )
        auditor = create_token(data_dir, "aud_sam", "auditor")
        agent = create_token(data_dir, "dev_jordan", "agent")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = scratch / "gateway.log"
        with log.open("ab") as log_file:
            gateway = subprocess.Popen(
                [str(TRAILGUARD), "serve", "--data-dir", str(data_dir), "--port", str(port)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file,
            )  # fmt: skip
        stack.callback(stop_process, gateway)
        wait_ready(gateway, f"{base}/healthz", log)
        client = signed_in(base, auditor)
        stack.callback(client.close)
        api = stack.enter_context(
            httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {auditor}"})
        )
        small = next(
            iter(json.loads(api.get("/v1/events?type=session_start&limit=1").text)["events"])
        )
        small_session = small["sessionId"]
        small_events = len(
            json.loads(api.get(f"/v1/events?session={small_session}&limit=10000").text)["events"]
        )
        live = client.get("/ui/sessions").text
        fingerprint = re.search(r'data-live-fingerprint="([^"]+)"', live).group(1)  # type: ignore[union-attr]

        pages = [
            ("HTTP floor: GET /healthz (baseline)", api, "/healthz"),
            (
                f"API: /v1/events of a {small_events}-event session (baseline)",
                api,
                f"/v1/events?session={small_session}&limit=10000",
            ),
            (
                f"API: /v1/events of the {big:,}-event session (baseline)",
                api,
                f"/v1/events?session={BIG_SESSION}&limit=10000",
            ),
            ("console: sessions list (25 of all)", client, "/ui/sessions"),
            ("console: sessions with denials", client, "/ui/sessions?has=denials"),
            (
                "console: sessions list live poll, unchanged (204)",
                client,
                f"/ui/live/sessions?fp={fingerprint}",
            ),
            (f"console: a {small_events}-event session", client, f"/ui/sessions/{small_session}"),
            (f"console: the {big:,}-event session", client, f"/ui/sessions/{BIG_SESSION}"),
            ("console: denials", client, "/ui/denials"),
            ("console: infrastructure", client, "/ui/infrastructure"),
            ("console: alerts", client, "/ui/alerts"),
            ("console: cost (all, with charts)", client, "/ui/cost"),
            ("console: access log", client, "/ui/access"),
            ("console: integrity", client, "/ui/integrity"),
        ]
        timings: dict[str, dict[str, float]] = {}
        section("page fetch times (ms; bytes of the answer)")
        for label, used, path in pages:
            samples, size = timed(used, path, repeat)
            timings[label] = {
                "p50": percentile(samples, 50),
                "p95": percentile(samples, 95),
                "bytes": size,
            }
            metric(f"{label}: p50", timings[label]["p50"], "ms")
            metric(f"{label}: p95", timings[label]["p95"], f"ms  ({size:,} bytes)")
        results["pages"] = timings

        section(f"PreToolUse latency of an agent ({hooks} calls per phase)")
        hook_client = stack.enter_context(
            httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {agent}"})
        )

        def hook_latencies(first: int) -> list[float]:
            samples = []
            for number in range(first, first + hooks):
                started = time.perf_counter()
                answer = hook_client.post("/hooks/claude-code", json=pre_tool_use(number))
                samples.append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:
                    raise SystemExit(f"hook answered {answer.status_code}")
            return samples

        hook_client.post(
            "/hooks/claude-code",
            json={"session_id": AGENT_SESSION, "hook_event_name": "SessionStart"},
        )
        hook_latencies(0)  # warm
        idle = hook_latencies(1000)
        stop = threading.Event()
        loaded = [0]

        def browse() -> None:
            reader = signed_in(base, auditor)
            while not stop.is_set():
                for path in (f"/ui/sessions/{BIG_SESSION}", "/ui/cost", "/ui/sessions"):
                    reader.get(path)
                    loaded[0] += 1
            reader.close()

        threads = [threading.Thread(target=browse, daemon=True) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        busy = hook_latencies(10_000)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        for label, values in (("idle gateway (baseline)", idle), ("two auditors browsing", busy)):
            metric(f"{label}: p50", percentile(values, 50), "ms")
            metric(f"{label}: p99", percentile(values, 99), "ms")
        metric("console pages served meanwhile", loaded[0])
        results["preToolUse"] = {
            "idleP50": percentile(idle, 50),
            "idleP99": percentile(idle, 99),
            "browsingP50": percentile(busy, 50),
            "browsingP99": percentile(busy, 99),
            "pagesServed": loaded[0],
        }

    section("targets")
    session_page = timings[f"console: a {small_events}-event session"]["p50"]
    target("a session page (p50) renders in under 500 ms", session_page < 500)
    list_page = timings["console: sessions list (25 of all)"]["p50"]
    target("the sessions list (p50) renders in under 500 ms", list_page < 500)
    ratio = results["preToolUse"]["browsingP99"] / results["preToolUse"]["idleP99"]
    target("PreToolUse p99 while auditors browse within 3x of idle", ratio <= 3)
    print_result({"environment": env, "ledger": sizes, **results})


if __name__ == "__main__":
    main()
