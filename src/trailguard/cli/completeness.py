"""``trailguard completeness``: the figure an auditor asks for first, over sessions; and the
completeness block ``sessions show`` prints for one session."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from trailguard.cli._common import (
    DataDir,
    DeveloperOption,
    ProjectOption,
    SinceOption,
    UntilOption,
    app,
    cell,
    fail,
    open_read_only,
    out,
    record_read,
    resolve_data_dir,
)

SOURCE_NAMES = {"hook": "hooks", "proxy": "API proxy", "otlp": "telemetry",
                "transcript": "transcript"}  # fmt: skip


def _sources_line(by_source: dict[str, int]) -> str:
    return ", ".join(f"{SOURCE_NAMES[source]} {count}" for source, count in by_source.items())


@app.command()
def completeness(
    data_dir: DataDir = None,
    since: SinceOption = None,
    until: UntilOption = None,
    developer: DeveloperOption = None,
    project: ProjectOption = None,
    output_format: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Over sessions: tool calls seen, by each source, recorded with a decision, ended with a
    result, gaps and unaudited sessions. Exit 1 when anything is incomplete."""
    from trailguard.completeness.report import figures
    from trailguard.retrieval import QueryError, parse_time

    if output_format not in ("text", "json"):
        fail(f"--format must be text or json, got {output_format!r}")
    try:
        since_at = parse_time(since, name="since") if since else None
        until_at = parse_time(until, name="until") if until else None
    except QueryError as exc:
        fail(str(exc))
    directory = resolve_data_dir(data_dir)
    store = open_read_only(directory)
    try:
        found = figures(store, since=since_at, until=until_at, developer=developer, project=project)
    finally:
        store.close()
    totals = found.totals()
    record_read(
        directory,
        "cli completeness",
        {"since": since, "until": until, "developer": developer, "project": project},
        totals["sessions"],
    )
    if output_format == "json":
        sys.stdout.write(json.dumps(found.to_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        _print_totals(totals)
        for session in found.sessions:
            if not session.complete:
                out.print("")
                print_session(session.to_json())
    incomplete = (
        totals["gaps"] or totals["unauditedSessions"] or totals["sessionsWithWeakenedHooks"]
    )
    raise typer.Exit(1 if incomplete else 0)


def _print_totals(totals: dict[str, Any]) -> None:
    window = f"{totals['since'] or 'the start'} to {totals['until'] or 'now'}"
    seen = totals["toolCallsSeen"]
    rows = [
        ("window", window),
        ("sessions", f"{totals['sessions']}: {totals['completeSessions']} complete, "
         f"{totals['unauditedSessions']} unaudited (no hook ever reported them), "
         f"{totals['sessionsWithWeakenedHooks']} with weakened hooks"),
        ("tool calls", f"{seen} seen by any source"),
        ("seen by", _sources_line(totals["seenBySource"])),
        ("decided", f"{totals['recordedWithDecision']} recorded with a policy decision"),
        ("ended", f"{totals['endedWithResult']} with a result, error or denial"),
        ("gaps", f"{totals['gaps']}: " + ", ".join(
            f"{kind} {n}" for kind, n in totals["gapsByKind"].items())),
        ("pending", f"{totals['pending']} seen elsewhere, not yet due at the hooks"),
    ]  # fmt: skip
    for label, value in rows:
        out.print(f"{label:<11} {value}")
    if seen and not totals["gaps"] and not totals["unauditedSessions"]:
        out.print(f"[green]complete[/]: every one of {seen} tool calls is recorded")


def print_session(report: dict[str, Any]) -> None:
    """The completeness block of one session (``sessions show`` prints it too)."""
    status = "[green]complete[/]" if report["complete"] else "[red]incomplete[/]"
    out.print(f"{status} session ", cell(report["sessionId"]), sep="")
    if report["unaudited"]:
        out.print(
            "  [red]unaudited[/]: model traffic or telemetry, but no hook ever reported this "
            "session (hooks missing, disabled or bypassed)"
        )
    out.print(
        f"  tool calls {report['toolCallsSeen']} seen; by source: "
        f"{_sources_line(report['seenBySource'])}; {report['recordedWithDecision']} decided, "
        f"{report['endedWithResult']} ended"
        + (f", {report['inFlight']} in flight" if report["inFlight"] else "")
        + (f", {report['pending']} awaiting hooks" if report["pending"] else "")
    )
    for gap in report["gaps"]:
        tool = gap["tool"] or "tool unknown"
        agent = f" (subagent {gap['agentId']})" if gap["agentId"] else ""
        out.print(
            f"  gap {gap['kind']}: ",
            cell(f"{gap['toolUseId']} {tool}{agent}: {gap['detail']}"),
            sep="",
        )
        if gap["input"] is not None:
            text = gap["input"] if isinstance(gap["input"], str) else json.dumps(gap["input"])
            out.print("      input ", cell(text[:300]), sep="")
    for finding in report["hooksWeakened"]:
        out.print(
            "  [red]hooks weakened[/] ",
            cell(f"{finding['what']} at {finding['at']}: {'; '.join(finding['weakenings'])}"),
            sep="",
        )
    if report["subagents"]:
        out.print("  subagents:")
        for agent in report["subagents"]:
            out.print(
                "    ",
                cell(f"{agent['agentId']} ({agent['agentType'] or 'type not reported'})"),
                sep="",
            )
            for call in agent["toolCalls"]:
                mark = "recorded" if call["recorded"] else "NOT recorded by a hook"
                out.print("      ", cell(f"{call['toolUseId']} {call['tool']}: {mark}"), sep="")
