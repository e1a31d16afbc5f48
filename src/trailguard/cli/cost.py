"""`trailguard cost`: what the agents' model requests cost, per session, tool call and model."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from trailguard.cli._common import (
    DataDir,
    StoreOption,
    app,
    fail,
    open_read_only,
    out,
    record_read,
    resolve_location,
)
from trailguard.cost.usage import split_evenly


def cost_report(
    documents: list[dict[str, Any]],
    tools: dict[str, str],
    attributions: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Totals from ``cost`` events: per tool call (a response's cost split evenly over the tool
    calls it emitted, also when a later source named them: ``attributions``, by request or
    message id), overhead (responses that called no tool), and per model."""
    attributions = attributions or {}
    total = Decimal(0)
    overhead = Decimal(0)
    unknown = 0
    per_call: dict[str, dict[str, Any]] = {}
    rollups: dict[str, dict[str, Decimal]] = {
        "perDay": defaultdict(Decimal),
        "perDeveloper": defaultdict(Decimal),
        "perProject": defaultdict(Decimal),
    }
    per_model: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "requests": 0,
            "priced": 0,
            "inputTokens": 0,
            "outputTokens": 0,
            "cacheWriteTokens": 0,
            "cacheReadTokens": 0,
            "usd": Decimal(0),
        }
    )
    for event in documents:
        model = event.get("model") or "(unknown)"
        row = per_model[model]
        row["requests"] += 1
        row["inputTokens"] += event.get("inputTokens", 0)
        row["outputTokens"] += event.get("outputTokens", 0)
        row["cacheWriteTokens"] += event.get("cacheWrite5mTokens", 0) + event.get(
            "cacheWrite1hTokens", 0
        )
        row["cacheReadTokens"] += event.get("cacheReadTokens", 0)
        if event.get("costUsd") is None:
            unknown += 1
            continue
        row["priced"] += 1
        amount = Decimal(str(event["costUsd"]))
        row["usd"] += amount
        total += amount
        rollups["perDay"][event["timestamp"][:10]] += amount
        rollups["perDeveloper"][event.get("developerId") or "(unknown)"] += amount
        rollups["perProject"][event.get("projectId") or "(unknown)"] += amount
        tool_use_ids = event.get("toolUseIds") or attributions.get(event.get("requestId") or "", [])
        if not tool_use_ids:
            overhead += amount
            continue
        tokens = event.get("outputTokens", 0) // len(tool_use_ids)
        for tool_use_id, share in zip(
            tool_use_ids, split_evenly(amount, len(tool_use_ids)), strict=True
        ):
            entry = per_call.setdefault(
                tool_use_id,
                {
                    "toolUseId": tool_use_id,
                    "tool": tools.get(tool_use_id),
                    "outputTokens": 0,
                    "usd": Decimal(0),
                },
            )
            entry["usd"] += share
            entry["outputTokens"] += tokens
    return {
        "totalUsd": float(round(total, 6)),
        "overheadUsd": float(round(overhead, 6)),
        "requests": len(documents),
        "unknownCostRequests": unknown,
        "perToolCall": [{**entry, "usd": float(entry["usd"])} for entry in per_call.values()],
        "perModel": {
            # A model whose every request was unpriced has an unknown cost, not $0.
            model: {key: value for key, value in row.items() if key != "priced"}
            | {"usd": float(round(row["usd"], 6)) if row["priced"] else None}
            for model, row in per_model.items()
        },
        **{
            name: {key: float(round(usd, 6)) for key, usd in sorted(values.items())}
            for name, values in rollups.items()
        },
    }


@app.command()
def cost(
    data_dir: DataDir = None,
    store_url: StoreOption = None,
    session: Annotated[str | None, typer.Option()] = None,
    developer: Annotated[str | None, typer.Option()] = None,
    project: Annotated[str | None, typer.Option()] = None,
    since: Annotated[str | None, typer.Option(help="Date or RFC 3339 time (inclusive).")] = None,
    until: Annotated[str | None, typer.Option(help="Date or RFC 3339 time (exclusive).")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Model spend: total, per tool call, per model (JSON: totalUsd, perToolCall, perModel)."""
    from trailguard.cost.accounting import COST_ATTRIBUTION
    from trailguard.retrieval import EventQuery, QueryError, query_events

    if output_format not in ("table", "json"):
        fail("--format must be table or json")
    try:
        costs = EventQuery.build(
            session=session,
            developer=developer,
            project=project,
            since=since,
            until=until,
            event_type="cost",
        )
        invocations = EventQuery.build(
            session=session,
            developer=developer,
            project=project,
            since=since,
            until=until,
            event_type="tool_invocation",
        )
        late = EventQuery.build(session=session, event_type="agent_event")
    except QueryError as exc:
        fail(str(exc))
    location = resolve_location(data_dir, store_url)
    store = open_read_only(location)
    try:
        documents = list(query_events(store, costs))
        tools = {
            e["toolUseId"]: e["tool"]
            for e in query_events(store, invocations)
            if e.get("toolUseId")
        }
        attributions: dict[str, list[str]] = {}
        for event in query_events(store, late):
            payload = event.get("payload") or {}
            if event.get("name") == COST_ATTRIBUTION and payload.get("toolUseIds"):
                for key in (payload.get("requestId"), payload.get("messageId")):
                    if key:
                        attributions[key] = list(payload["toolUseIds"])
    finally:
        store.close()
    record_read(
        location,
        "cli cost",
        {"session": session, "developer": developer, "project": project, "since": since,
         "until": until},
        len(documents),
    )  # fmt: skip
    report = cost_report(documents, tools, attributions)
    if output_format == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    out.print(f"total       ${report['totalUsd']:.4f} over {report['requests']} model requests")
    out.print(f"overhead    ${report['overheadUsd']:.4f} (responses that called no tool)")
    if report["unknownCostRequests"]:
        out.print(
            f"[yellow]unknown     {report['unknownCostRequests']} request(s) with no price[/]"
        )
    models = Table("model", "requests", "input", "output", "cache write", "cache read", "USD")
    for model, row in report["perModel"].items():
        models.add_row(
            model,
            str(row["requests"]),
            str(row["inputTokens"]),
            str(row["outputTokens"]),
            str(row["cacheWriteTokens"]),
            str(row["cacheReadTokens"]),
            f"{row['usd']:.4f}" if row["usd"] is not None else "unknown",
        )
    out.print(models)
    days = Table("day", "USD")
    for day, usd in report["perDay"].items():
        days.add_row(day, f"{usd:.4f}")
    out.print(days)
    calls = Table("toolUseId", "tool", "output tokens", "USD")
    for entry in sorted(report["perToolCall"], key=lambda e: -e["usd"]):
        calls.add_row(
            entry["toolUseId"],
            entry["tool"] or "",
            str(entry["outputTokens"]),
            f"{entry['usd']:.4f}",
        )
    out.print(calls)
