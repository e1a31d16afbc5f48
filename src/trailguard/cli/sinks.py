"""``trailguard sinks``: the SIEM sinks' cursors, lag and errors; checking a sink configuration;
resuming a paused sink."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from trailguard.cli._common import (
    CommandGroup,
    DataDir,
    app,
    cell,
    err,
    fail,
    open_read_only,
    out,
    resolve_data_dir,
)

sinks_app = typer.Typer(
    cls=CommandGroup,
    help="SIEM sinks: their cursors and lag (status), a configuration check (check), resume.",
    no_args_is_help=True,
)
app.add_typer(sinks_app, name="sinks")

SinkOption = Annotated[
    list[str] | None, typer.Option("--sink", help="A sink URL, as `serve --sink` takes it.")
]
SinksFileOption = Annotated[
    Path | None, typer.Option("--sinks-file", help="A TOML file of [[sinks]] tables.")
]


def _cursor_store(directory: Path) -> Any:
    from trailguard.siem.cursors import CursorStore
    from trailguard.store.base import StoreError

    try:
        return CursorStore(directory, create=False)
    except StoreError as exc:
        fail(str(exc))


@sinks_app.command("status")
def status(
    data_dir: DataDir = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Each sink's state, cursor, lag (events and seconds), deliveries and last error."""
    from trailguard.ledger.writer import WriterLock
    from trailguard.siem.status import ledger_head, status_of

    if output_format not in ("table", "json"):
        fail("--format must be table or json")
    directory = resolve_data_dir(data_dir)
    store = open_read_only(directory)
    cursors = _cursor_store(directory)
    try:
        head = ledger_head(store)
        running = WriterLock.is_held(directory)
        rows = []
        for record in cursors.all():
            status = status_of(record, store, head, running=running)
            rows.append(
                {
                    "name": record.name,
                    "destination": record.destination,
                    "state": status.state if running else "stopped (no gateway runs)",
                    "stateReason": record.state_reason,
                    "cursor": record.cursor,
                    "ledgerHead": head,
                    "lagEvents": status.lag_events,
                    "lagSeconds": round(status.lag_seconds, 1),
                    "delivered": record.delivered,
                    "lastDeliveredAt": record.last_delivered_at,
                    "failures": record.failures,
                    "lastError": record.last_error,
                    "lastErrorAt": record.last_error_at,
                }
            )
    finally:
        cursors.close()
        store.close()
    if output_format == "json":
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print("no sinks have run on this data directory")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("sink", "state", "cursor", "lag", "delivered", "last delivered", "last error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            cell(row["name"]),
            cell(row["state"]),
            f"{row['cursor']:,} / {row['ledgerHead']:,}",
            f"{row['lagEvents']:,} events, {row['lagSeconds']:.0f} s",
            f"{row['delivered']:,}",
            cell(row["lastDeliveredAt"] or "-"),
            cell(f"{row['lastErrorAt']}: {row['lastError']}" if row["lastError"] else "-"),
        )
    out.print(table)


@sinks_app.command("check")
def check(sink: SinkOption = None, sinks_file: SinksFileOption = None) -> None:
    """Validate sink URLs and a [[sinks]] file as `serve` would (files, secrets, parameters),
    and print what each sink will do. Connects to nothing."""
    from trailguard.siem.config import SinkConfigError, load_sinks

    if not sink and sinks_file is None:
        fail("give --sink URL (repeatable) or --sinks-file FILE")
    try:
        configs = load_sinks(sink or (), [sinks_file] if sinks_file else ())
    except SinkConfigError as exc:
        fail(str(exc))
    for config in configs:
        filters = []
        if config.types:
            filters.append("types " + ",".join(sorted(config.types)))
        if config.min_risk:
            filters.append(f"min_risk {config.min_risk} (checkpoints always)")
        out.print(
            f"{config.name}: {config.destination}, format {config.format}, batches of "
            f"{config.batch_size}, from the {config.start} of the ledger, "
            + (", ".join(filters) if filters else "every event")
            + (", indexer acknowledgement" if config.ack else "")
        )
        for warning in config.warnings:
            err.print(f"[yellow]warning:[/] {config.name}: {warning}")


@sinks_app.command("resume")
def resume(name: str, data_dir: DataDir = None) -> None:
    """Resume a paused sink from its cursor (the running gateway picks it up within a second)."""
    from trailguard.store.base import StoreError

    directory = resolve_data_dir(data_dir)
    cursors = _cursor_store(directory)
    try:
        record = cursors.get(name)
        if record is None:
            known = ", ".join(r.name for r in cursors.all()) or "none"
            fail(f"no sink named {name!r} (known: {known})")
        if record.state != "paused":
            err.print(f"sink {name} is {record.state}, not paused; nothing to resume")
            return
        cursors.request_resume(name)
    except StoreError as exc:
        fail(str(exc))
    finally:
        cursors.close()
    out.print(f"asked the gateway to resume {name} at seq {record.cursor}")
