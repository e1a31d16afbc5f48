"""The auditor's query command: events with filters, as a table, JSON, JSON lines or CSV."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console

from trailguard.cli._common import (
    DataDir,
    app,
    cell,
    csv_cell,
    fail,
    open_read_only,
    out,
    record_read,
    resolve_data_dir,
)

# -- query ----------------------------------------------------------------------------------------


@app.command()
def query(
    data_dir: DataDir = None,
    session: Annotated[str | None, typer.Option()] = None,
    developer: Annotated[str | None, typer.Option()] = None,
    project: Annotated[str | None, typer.Option()] = None,
    since: Annotated[str | None, typer.Option(help="Date or RFC 3339 time (inclusive).")] = None,
    until: Annotated[str | None, typer.Option(help="Date or RFC 3339 time (exclusive).")] = None,
    date: Annotated[str | None, typer.Option(help="One UTC day, YYYY-MM-DD.")] = None,
    event_type: Annotated[str | None, typer.Option("--type", help="Event type.")] = None,
    tool: Annotated[str | None, typer.Option()] = None,
    decision: Annotated[str | None, typer.Option(help="allowed or denied")] = None,
    limit: Annotated[int | None, typer.Option()] = None,
    output_format: Annotated[str, typer.Option("--format", help="table, json, jsonl or csv")] = (
        "table"
    ),
) -> None:
    """Events in chronological order. Works while the gateway runs."""
    import csv

    from rich.table import Table

    from trailguard.retrieval import EventQuery, QueryError, query_events

    if output_format not in ("table", "json", "jsonl", "csv"):
        fail("--format must be table, json, jsonl or csv")
    try:
        event_query = EventQuery.build(
            session=session,
            developer=developer,
            project=project,
            since=since,
            until=until,
            day=date,
            event_type=event_type,
            tool=tool,
            decision=decision,
            limit=limit,
        )
    except QueryError as exc:
        fail(str(exc))
    directory = resolve_data_dir(data_dir)
    store = open_read_only(directory)
    shown = 0

    def counted(documents: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        nonlocal shown
        for document in documents:
            shown += 1
            yield document

    try:
        found = counted(query_events(store, event_query))
        if output_format == "jsonl":
            for document in found:
                sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
        elif output_format == "json":
            sys.stdout.write(json.dumps(list(found), ensure_ascii=False, indent=2) + "\n")
        elif output_format == "csv":
            columns = [
                "seq",
                "timestamp",
                "eventType",
                "sessionId",
                "developerId",
                "projectId",
                "tool",
                "toolUseId",
                "policyResult",
                "policyRule",
                "eventId",
            ]
            writer = csv.writer(sys.stdout)
            writer.writerow(columns)
            for document in found:
                writer.writerow([csv_cell(document.get(column, "")) for column in columns])
        else:
            table = Table(
                "seq", "time", "type", "session", "developer", "tool", "decision", "detail"
            )
            for column in table.columns:
                column.overflow = "fold"  # an audit table wraps; it never cuts values off
            for document in found:
                table.add_row(
                    str(document["seq"]),
                    document["timestamp"],
                    document["eventType"],
                    cell(document.get("sessionId")),
                    cell(document.get("developerId")),
                    cell(document.get("tool")),
                    cell(document.get("policyResult")),
                    cell(_detail(document)),
                )
            # Piped or captured output is not cut to 80 columns either.
            wide = out if out.is_terminal else Console(width=200, highlight=False)
            wide.print(table)
    finally:
        store.close()
        filters = {
            "session": session, "developer": developer, "project": project, "since": since,
            "until": until, "date": date, "type": event_type, "tool": tool,
            "decision": decision, "limit": limit,
        }  # fmt: skip
        record_read(directory, "cli query", filters, shown)


def _detail(document: dict[str, Any]) -> str:
    for key in ("input", "prompt", "error", "reason", "message", "name"):
        value = document.get(key)
        if value:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            return text if len(text) <= 80 else text[:77] + "..."
    return ""
