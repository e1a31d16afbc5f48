"""Shared pieces of the ``trailguard`` command: the Typer app, consoles, common options, and
the helpers every command uses to fail clearly and open the store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

app = typer.Typer(
    name="trailguard",
    help="A tamper-evident audit trail for AI coding agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DATA_DIR_ENV = "TRAILGUARD_DATA_DIR"


def default_data_dir() -> Path:
    """``$TRAILGUARD_DATA_DIR``, else ``$XDG_DATA_HOME/trailguard`` (~/.local/share/trailguard)."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "trailguard"


DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help=f"Ledger directory [default: ${DATA_DIR_ENV} or ~/.local/share/trailguard]",
        show_default=False,
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="Verifier key (name+id+key) or a file holding it. Pin it: the default is the key "
        "recorded in the data directory itself.",
    ),
]


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def resolve_data_dir(data_dir: Path | None) -> Path:
    return (data_dir or default_data_dir()).expanduser().absolute()


def open_read_only(data_dir: Path) -> Any:
    from trailguard.store.base import StoreError
    from trailguard.store.sqlite import SQLiteStore

    try:
        return SQLiteStore.in_data_dir(data_dir, read_only=True)
    except StoreError as exc:
        fail(str(exc))


def verifier_for(store: Any, data_dir: Path, key: str | None) -> tuple[Any, str]:
    """The verifier key to check with, and a description of where it came from."""
    from trailguard.ledger.keys import SigningKeyError, load_verifier
    from trailguard.ledger.note import NoteError, Verifier

    if key is not None:
        try:
            return load_verifier(key), "given with --key"
        except SigningKeyError as exc:
            fail(str(exc))
    pinned = store.get_meta("verifier_key")
    if pinned is None:
        fail(f"{data_dir} records no verifier key; pass --key")
    try:
        return Verifier.from_string(pinned), "recorded in the data directory (not independent)"
    except NoteError as exc:
        fail(f"the verifier key recorded in {data_dir} is unusable ({exc}); pass --key")
