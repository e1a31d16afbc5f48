"""Incident export on a large ledger: a 10-session report, an evidence bundle, and verifying it.

The ledger holds N realistic events (sessions of ~400 events, a checkpoint every 1000); ten
sessions spread over it are reported on. Measured, best of --repeat: building the report (read
both sessions' events, verify each against the latest signed tree head with an inclusion proof,
summarise), rendering HTML, Markdown and JSON, `trailguard report` end to end as a process
(Python start and imports included), the evidence bundle, and verifying the bundle with
trailguard and with the standalone script.

Baseline, in the same run: reading the same sessions' events and decoding their JSON
(`retrieval.query_events`, what `trailguard query --session` does), the floor of any report.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    add_common_arguments,
    build_ledger,
    make_events,
    metric,
    print_header,
    print_result,
    scratch_dir,
    section,
    target,
)
from trailguard.incident import standalone
from trailguard.incident.bundle import export_bundle, verify_bundle
from trailguard.incident.html import render_html
from trailguard.incident.markdown import render_markdown
from trailguard.incident.records import Scope
from trailguard.incident.report import build_report
from trailguard.ledger.keys import VERIFIER_KEY_FILE, load_verifier
from trailguard.retrieval import EventQuery, query_events
from trailguard.store.sqlite import SQLiteStore

TARGET_SECONDS = 2.0
TRAILGUARD = Path(sys.executable).with_name("trailguard")


def best(repeat: int, work: Callable[[], Any]) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--events", type=int, help="events in the ledger (1000000)")
    parser.add_argument("--sessions", type=int, default=10, help="sessions in the report (10)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    events = args.events or (50_000 if args.quick else 1_000_000)

    with scratch_dir(args.dir, args.keep) as scratch:
        env = print_header(f"incident report: {args.sessions} sessions of {events:,}", scratch)
        data_dir = scratch / "ledger"
        built = build_ledger(data_dir, make_events("realistic", events), 1000)
        store = SQLiteStore.in_data_dir(data_dir, read_only=True)
        verifier = load_verifier(str(data_dir / VERIFIER_KEY_FILE))
        every = store.session_ids(limit=10**9)
        sessions = tuple(every[i * len(every) // args.sessions] for i in range(args.sessions))
        scope = Scope(sessions=sessions)
        section("setup (not timed)")
        metric("ledger built", built, "s")
        metric("events in the ledger", store.tree_size())
        metric("sessions in the ledger", len(every))

        def baseline() -> int:
            return sum(
                1
                for session in sessions
                for _ in query_events(store, EventQuery.build(session=session))
            )

        def report() -> Any:
            return build_report(store, scope, verifier, key_source="bench", key_pinned=True,
                                generated_by="bench")  # fmt: skip

        base_s, count = best(args.repeat, baseline)
        report_s, made = best(args.repeat, report)
        assert made.header.verification.intact, made.header.verification.problems[:3]
        assert len(made.timeline) == count
        html_s, html = best(args.repeat, lambda: render_html(made))
        md_s, _ = best(args.repeat, lambda: render_markdown(made))
        json_s, _ = best(args.repeat, lambda: __import__("json").dumps(made.to_json()))
        output = scratch / "report.html"
        command = [str(TRAILGUARD), "report", "--data-dir", str(data_dir), "-o", str(output),
                   *(f"--session={s}" for s in sessions)]  # fmt: skip

        def process(argv: list[str]) -> Callable[[], float]:
            def run() -> float:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                subprocess.run(argv, check=True, capture_output=True)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

            return run

        start_s, start_cpu = best(args.repeat, process([str(TRAILGUARD), "version"]))
        cli_s, cli_cpu = best(args.repeat, process(command))
        bundle_s, exported = best(
            args.repeat,
            lambda: export_bundle(
                store, scope, verifier, key_source="bench", key_pinned=True, generated_by="bench"
            ),
        )
        check_s, checked = best(args.repeat, lambda: verify_bundle(exported.data, verifier))
        assert checked.valid, checked.failures[:3]
        key = standalone.Key(verifier.to_string())
        standalone_s, (failures, _) = best(
            args.repeat, lambda: standalone.verify(exported.data, key)
        )
        assert not failures, failures[:3]
        store.close()

        section(f"{args.sessions} sessions, {count:,} events (best of {args.repeat})")
        metric("baseline: read + decode the events", base_s, "s")
        metric("build_report (read, verify each, summarise)", report_s, "s")
        metric("  ratio to the baseline", report_s / base_s, "x")
        metric("render HTML", html_s, "s")
        metric("  HTML size", len(html.encode()) // 1024, "KiB")
        metric("render Markdown", md_s, "s")
        metric("render JSON", json_s, "s")
        metric("baseline: `trailguard version` (process start)", start_s, "s")
        metric("  its CPU time", start_cpu, "s")
        metric("`trailguard report -o report.html` (process)", cli_s, "s")
        metric("  its CPU time (wall time minus waiting on a busy machine)", cli_cpu, "s")
        metric("evidence bundle (report, proofs, zip)", bundle_s, "s")
        metric("  bundle size", len(exported.data) // 1024, "KiB")
        metric("evidence verify (trailguard)", check_s, "s")
        metric("evidence verify (standalone script)", standalone_s, "s")
        target(f"report end to end < {TARGET_SECONDS} s", cli_s < TARGET_SECONDS)
        print_result(
            {
                "benchmark": "report",
                "env": env,
                "ledger_events": events,
                "sessions": args.sessions,
                "report_events": count,
                "baseline_s": round(base_s, 4),
                "build_report_s": round(report_s, 4),
                "render_html_s": round(html_s, 4),
                "render_md_s": round(md_s, 4),
                "render_json_s": round(json_s, 4),
                "cli_start_s": round(start_s, 4),
                "cli_start_cpu_s": round(start_cpu, 4),
                "cli_report_s": round(cli_s, 4),
                "cli_report_cpu_s": round(cli_cpu, 4),
                "bundle_s": round(bundle_s, 4),
                "bundle_bytes": len(exported.data),
                "verify_bundle_s": round(check_s, 4),
                "verify_standalone_s": round(standalone_s, 4),
                "target_met": cli_s < TARGET_SECONDS,
            }
        )


if __name__ == "__main__":
    main()
