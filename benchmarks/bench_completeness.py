"""The completeness watcher's cost per ledger event: decoding each event and reconciling it
(``Reconciler.add``), over a realistic proxied mix (SessionStart, per model response a
``proxy.tool_uses`` record and a ``cost`` event, per tool call PreToolUse, an operation and
PostToolUse); the watcher's judgement of what is due (``due_alerts``) right after all of it
and on a tick with nothing new; and a report over every session (``evaluate``).

Baseline in the same run: decoding the same canonical bytes alone (``orjson.loads``), which the
watcher must do anyway to read the ledger.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import orjson

from _common import metric, print_result, section
from trailguard.completeness.reconcile import Reconciler
from trailguard.completeness.report import DEFAULT_RULES, evaluate
from trailguard.completeness.watcher import due_alerts
from trailguard.events import (
    AgentEvent,
    Cost,
    Event,
    InfraOperation,
    Operation,
    SessionStart,
    ToolInvocation,
    ToolResult,
)
from trailguard.ledger.canonical import canonical_json


def session_events(index: int, calls: int) -> list[Event]:
    session = f"sess-{index:06d}"
    events: list[Event] = [SessionStart(session_id=session, source="hook", cwd="/home/dev/app")]
    for call in range(calls):
        tool_use_id = f"toolu_{index:06d}_{call:03d}"
        command = {"command": f"pytest tests/test_{call}.py -q", "description": "run tests"}
        events += [
            AgentEvent(
                session_id=session,
                name="proxy.tool_uses",
                source="proxy",
                payload={
                    "requestId": f"req_{call}",
                    "messageId": f"msg_{call}",
                    "agentId": None,
                    "toolUses": [{"id": tool_use_id, "tool": "Bash", "input": command}],
                },
            ),
            Cost(
                session_id=session,
                source="proxy",
                model="claude-opus-5-5",
                tool_use_ids=[tool_use_id],
                input_tokens=3900,
                output_tokens=240,
            ),
            ToolInvocation(
                session_id=session,
                source="hook",
                tool="Bash",
                tool_use_id=tool_use_id,
                input=command,
                policy_result="allowed",
            ),
            InfraOperation(
                session_id=session,
                tool_use_id=tool_use_id,
                source="gateway",
                operation=Operation(kind="exec", action="exec:Run", access="write", risk="low"),
            ),
            ToolResult(
                session_id=session,
                source="hook",
                tool="Bash",
                tool_use_id=tool_use_id,
                status="success",
                output={"stdout": "4 passed", "stderr": ""},
            ),
        ]
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=20, help="tool calls per session")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200 sessions, one round")
    args = parser.parse_args()
    sessions, rounds = (200, 1) if args.quick else (args.sessions, args.rounds)
    bodies = [
        canonical_json(event.to_json_dict() | {"seq": seq})
        for seq, event in enumerate(
            e for index in range(sessions) for e in session_events(index, args.calls)
        )
    ]
    best_decode = best_reconcile = best_judge = best_due = best_idle = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for body in bodies:
            orjson.loads(body)
        best_decode = min(best_decode, time.perf_counter() - started)
        reconciler = Reconciler()
        started = time.perf_counter()
        for body in bodies:
            reconciler.add(orjson.loads(body))
        best_reconcile = min(best_reconcile, time.perf_counter() - started)
        now = datetime.now(UTC)
        waiting: set[str] = set()
        started = time.perf_counter()
        alerts = due_alerts(reconciler, now, DEFAULT_RULES, waiting, known=lambda _: True)
        best_due = min(best_due, time.perf_counter() - started)
        started = time.perf_counter()
        alerts += due_alerts(reconciler, now, DEFAULT_RULES, waiting, known=lambda _: True)
        best_idle = min(best_idle, time.perf_counter() - started)
        assert not alerts, "a generated session raised an alert"
        started = time.perf_counter()
        reports = [evaluate(state, now) for state in reconciler.sessions.values()]
        best_judge = min(best_judge, time.perf_counter() - started)
        assert all(report.complete for report in reports), "a generated session is incomplete"
    count = len(bodies)
    section(f"{count:,} events, {sessions:,} sessions x {args.calls} tool calls, best of {rounds}")
    metric("baseline: decode only", count / best_decode, "events/s")
    metric("decode + reconcile", count / best_reconcile, "events/s")
    metric("reconcile alone, per event", (best_reconcile - best_decode) / count * 1e6, "µs")
    metric("watcher: what is due, all sessions new", best_due * 1000, "ms")
    metric("watcher: a tick with nothing new", best_idle * 1000, "ms")
    metric("report: evaluate every session", best_judge * 1000, "ms")
    print_result(
        {
            "events": count,
            "decodePerSecond": round(count / best_decode),
            "reconcilePerSecond": round(count / best_reconcile),
            "reconcileMicrosPerEvent": round((best_reconcile - best_decode) / count * 1e6, 2),
            "dueMillis": round(best_due * 1000, 1),
            "idleTickMillis": round(best_idle * 1000, 3),
            "reportMillis": round(best_judge * 1000, 1),
            "ratio": round(best_decode / best_reconcile, 2),
        }
    )


if __name__ == "__main__":
    main()
