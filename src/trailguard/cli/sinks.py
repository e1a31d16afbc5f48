"""``trailguard sinks``: the SIEM sinks' cursors, lag and errors; checking a sink configuration;
resuming a paused sink."""

from __future__ import annotations

import json
from datetime import UTC, datetime
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


def _head(store: Any) -> int:
    from trailguard.ledger.checkpoint import CheckpointError, read_unverified
    from trailguard.store.base import SIGNED_HEAD_KEY

    text = store.get_meta(SIGNED_HEAD_KEY)
    if text is None:
        return int(store.tree_size())
    try:
        return read_unverified(text).tree_size
    except CheckpointError:
        return int(store.tree_size())


def _lag_seconds(store: Any, cursor: int, head: int) -> float:
    if cursor >= head:
        return 0.0
    row = store.row_by_seq(cursor)
    if row is None:
        return 0.0
    moment = datetime.strptime(row.timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - moment).total_seconds())


@sinks_app.command("status")
def status(
    data_dir: DataDir = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Each sink's state, cursor, lag (events and seconds), deliveries and last error."""
    from trailguard.ledger.writer import WriterLock

    if output_format not in ("table", "json"):
        fail("--format must be table or json")
    directory = resolve_data_dir(data_dir)
    store = open_read_only(directory)
    cursors = _cursor_store(directory)
    try:
        head = _head(store)
        running = WriterLock.is_held(directory)
        rows = []
        for record in cursors.all():
            state = record.state if running else "stopped (no gateway runs)"
            rows.append(
                {
                    "name": record.name,
                    "destination": record.destination,
                    "state": state,
                    "stateReason": record.state_reason,
                    "cursor": record.cursor,
                    "ledgerHead": head,
                    "lagEvents": max(0, head - record.cursor),
                    "lagSeconds": round(_lag_seconds(store, record.cursor, head), 1),
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
