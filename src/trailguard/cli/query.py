"""The auditor's query command: events with filters, as a table, JSON, JSON lines or CSV."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Annotated, Any

import typer
from rich.console import Console

from trailguard.cli._common import (
    DataDir,
    DeveloperOption,
    ProjectOption,
    SessionOption,
    SinceOption,
    StoreOption,
    UntilOption,
    app,
    cell,
    csv_cell,
    fail,
    open_read_only,
    out,
    record_read,
    resolve_location,
    resolve_session_id,
)
from trailguard.cost.accounting import is_correction

# -- query ----------------------------------------------------------------------------------------


@app.command()
def query(
    data_dir: DataDir = None,
    store_url: StoreOption = None,
    session: SessionOption = None,
    developer: DeveloperOption = None,
    project: ProjectOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    date: Annotated[str | None, typer.Option(help="One UTC day, YYYY-MM-DD.")] = None,
    event_type: Annotated[
        str | None, typer.Option("--type", help="Event type, e.g. tool_invocation, alert.")
    ] = None,
    tool: Annotated[
        str | None,
        typer.Option(help="Tool name, e.g. Bash or mcp__github__create_issue (any case)."),
    ] = None,
    decision: Annotated[str | None, typer.Option(help="allowed, denied or ask")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many events.")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table, json, jsonl or csv")] = (
        "table"
    ),
    archive: Annotated[
        str | None,
        typer.Option(
            "--archive",
            help="Also the archived events (s3://... or file://...): only the segments the "
            "archive's indexes name are fetched, each checked against its signed checkpoint.",
        ),
    ] = None,
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
    directory = resolve_location(data_dir, store_url)
    store = open_read_only(directory)
    if session is not None and archive is None:
        session = resolve_session_id(store, session)
        event_query = replace(event_query, filter=replace(event_query.filter, session_id=session))
    shown = 0

    def counted(documents: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        nonlocal shown
        for document in documents:
            shown += 1
            yield document

    try:
        if archive is not None:
            found = counted(_with_archive(store, directory, archive, event_query))
        else:
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
            writer.writerow([*columns, "input", "output", "detail"])
            for document in found:
                writer.writerow(
                    [csv_cell(document.get(column, "")) for column in columns]
                    + [
                        csv_cell(_input_of(document)),
                        csv_cell(_output_of(document)),
                        csv_cell(_detail(document)),
                    ]
                )
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
                    cell(
                        f"{document['policyResult']} ({document.get('policyRule')})"
                        if document.get("policyResult") in ("denied", "ask")
                        else document.get("policyResult")
                    ),
                    cell(_short(_detail(document), 160)),
                )
            # Piped or captured output is not cut to 80 columns either.
            wide = out if out.is_terminal else Console(width=200, highlight=False)
            wide.print(table)
    finally:
        store.close()
        filters = {
            "session": session, "developer": developer, "project": project, "since": since,
            "until": until, "date": date, "type": event_type, "tool": tool,
            "decision": decision, "limit": limit, "archive": archive,
        }  # fmt: skip
        record_read(directory, "cli query", filters, shown)


def _with_archive(
    store: Any, directory: Any, archive: str, event_query: Any
) -> Iterator[dict[str, Any]]:
    """Archived and hot events together, in (timestamp, seq) order, each seq once: the hot
    store answers for what it still holds, the archive for what was pruned from it."""
    import heapq

    from trailguard.archive.backends import open_archive
    from trailguard.archive.index import archived_events
    from trailguard.cli._common import verifier_for
    from trailguard.errors import TrailguardError
    from trailguard.retrieval import query_events

    verifier, _ = verifier_for(store, directory, None)
    unlimited = replace(event_query, filter=replace(event_query.filter, limit=None), offset=0)
    hot_from = next(iter(store.seqs()), None)
    try:
        old = sorted(
            archived_events(open_archive(archive), unlimited, verifier, below=hot_from),
            key=lambda document: (document["timestamp"], document["seq"]),
        )
    except TrailguardError as exc:
        fail(f"cannot read the archive {archive}: {exc}", 1)
    merged = heapq.merge(
        old,
        query_events(store, unlimited),
        key=lambda document: (document["timestamp"], document["seq"]),
    )
    skipped = produced = 0
    for document in merged:
        if skipped < event_query.offset:
            skipped += 1
            continue
        yield document
        produced += 1
        if event_query.filter.limit is not None and produced >= event_query.filter.limit:
            return


def _text_of(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _input_of(document: dict[str, Any]) -> str:
    value = document.get("input")
    command = value.get("command") if isinstance(value, dict) else None
    if isinstance(command, str):
        return command
    return "" if value is None else _text_of(value)


def _output_of(document: dict[str, Any]) -> str:
    output = document.get("output")
    stdout = output.get("stdout") if isinstance(output, dict) else None
    if isinstance(stdout, str) and isinstance(output, dict):
        text = stdout + (f" | stderr: {output['stderr']}" if output.get("stderr") else "")
    else:
        text = "" if output is None else _text_of(output)
    if document.get("outputTruncated"):
        text += (
            f" [truncated: {document.get('outputLength')} bytes, {document.get('outputSha256')}]"
        )
    return text


def _detail(document: dict[str, Any]) -> str:
    """What an auditor needs to see of an event in one cell."""
    kind = document.get("eventType")
    if kind == "tool_invocation":
        text = _input_of(document)
        if document.get("policyResult") in ("denied", "ask"):
            text += f"  [{document['policyResult']} by {document.get('policyRule')}: "
            text += f"{document.get('policyReason') or ''}]"
        return text
    if kind == "tool_result":
        text = f"{document.get('status')}: "
        if document.get("error"):
            text += str(document["error"]) + " "
        return text + _output_of(document)
    if kind == "infra_operation":
        operation = document.get("operation") or {}
        return (
            f"{operation.get('action')} on {operation.get('resource') or operation.get('kind')} "
            f"({operation.get('access')}, risk {operation.get('risk')})"
        )
    if kind == "cost":
        usd = document.get("costUsd")
        return ("correction to the proxy's figure, " if is_correction(document) else "") + (
            f"{document.get('model')}: {document.get('inputTokens', 0)} in, "
            f"{document.get('outputTokens', 0)} out, {document.get('cacheReadTokens', 0)} cache "
            f"read; " + (f"${usd:.4f}" if usd is not None else "cost unknown")
        )
    if kind == "alert":
        return (
            f"{document.get('alertType')} ({document.get('severity')}): {document.get('message')}"
        )
    if kind == "session_end":
        return f"{document.get('reason')}" + (
            f" ({document['rawReason']})" if document.get("rawReason") else ""
        )
    if kind == "downstream_record":
        from trailguard.cli.correlate import describe_record

        joined = document.get("toolUseId") or "no tool call"
        return f"{describe_record(document)} -> {joined}"
    if kind == "audit_access":
        who = document.get("developerId") or document.get("actor")
        return f"{document.get('action')} by {who}: {_text_of(document.get('query') or {})}"
    for key in ("prompt", "message", "name", "description", "reason"):
        value = document.get(key)
        if value:
            return _text_of(value)
    return ""
