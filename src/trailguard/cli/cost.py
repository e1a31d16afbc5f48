"""`trailguard cost`: what the agents' model requests cost, per session, tool call and model."""

from __future__ import annotations

import json
import sys
from typing import Annotated

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
from trailguard.cost.report import cost_report

__all__ = ["cost", "cost_report"]


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
    from trailguard.cost.report import read_cost
    from trailguard.retrieval import QueryError

    if output_format not in ("table", "json"):
        fail("--format must be table or json")
    location = resolve_location(data_dir, store_url)
    store = open_read_only(location)
    try:
        report = read_cost(
            store, session=session, developer=developer, project=project, since=since, until=until
        )
    except QueryError as exc:
        fail(str(exc))
    finally:
        store.close()
    record_read(
        location,
        "cli cost",
        {"session": session, "developer": developer, "project": project, "since": since,
         "until": until},
        report["requests"],
    )  # fmt: skip
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
