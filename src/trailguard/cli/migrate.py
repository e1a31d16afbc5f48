"""`trailguard migrate`: a data directory's ledger copied into a shared PostgreSQL ledger."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from trailguard.cli._common import app, err, fail, out, resolve_location


@app.command()
def migrate(
    source: Annotated[Path, typer.Option("--from", help="The data directory to copy.")],
    target: Annotated[
        str, typer.Option("--to", help="An empty PostgreSQL database: postgresql://owner@host/db")
    ],
    workers: Annotated[int, typer.Option(help="Processes verifying the copy.")] = 1,
) -> None:
    """Copy a ledger into PostgreSQL exactly (same bytes, roots, checkpoints, key, tokens and
    sessions) and verify the copy. Stop the gateway on the data directory first."""
    location = resolve_location(None, target)
    directory = source.expanduser().absolute()
    if not (directory / "ledger.sqlite3").exists():
        fail(f"no ledger in {directory}: is --from right?")
    from trailguard.ledger.writer import WriterLock
    from trailguard.store.base import StoreError
    from trailguard.store.postgres.migrate import migrate as copy_ledger

    if WriterLock.is_held(directory):
        fail(f"a gateway is writing {directory}: stop it first, so the copy is the whole ledger")
    with Progress(
        TextColumn("copying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("copy", total=None)
        try:
            result = copy_ledger(
                directory,
                location.url,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                workers=workers,
            )
        except StoreError as exc:
            fail(str(exc), 1)
    state = ", ".join(f"{n} {table}" for table, n in result.state_rows.items()) or "none"
    out.print(
        f"copied {result.events} events and {result.tree_nodes} cached subtrees to "
        f"{location.description}; root {base64.b64encode(result.root).decode()} equal to the "
        f"source's; gateway state: {state}"
    )
    out.print(
        f"[bold green]INTACT[/]: the copy verifies ({result.report.checkpoints} checkpoints). "
        f"Start replicas with --store and --signing-key {directory / 'signing.key'}"
    )
