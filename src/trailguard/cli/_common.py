"""Shared pieces of the ``trailguard`` command: the Typer app, consoles, common options, and
the helpers every command uses to fail clearly and open the store."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

from trailguard import display
from trailguard.cli._commands import LAZY_COMMANDS

printable = display.printable
"""Agent-controlled text made safe for a terminal (see trailguard.display)."""

COMMAND_ORDER = (
    # run it
    "serve", "init", "install", "hook", "token", "sessions",
    # read the record
    "query", "cost", "report", "evidence", "completeness", "correlate", "secrets",
    # check the record
    "verify", "checkpoint", "proof", "verify-proof", "info", "archive", "sinks", "migrate",
    # the rest
    "ingest", "classify", "policy", "version",
    # groups' own commands, in the order people use them
    "create", "list", "show", "kill", "revoke", "test", "check", "replay", "scan", "update-rules",
)  # fmt: skip


class CommandGroup(TyperGroup):
    """Commands in the order a user meets them (not alphabetical), each with its whole first
    sentence of help (click cuts them at 45 characters). ``ctx`` and ``formatter`` are typer's
    vendored click types, which it does not export."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: index for index, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda name: (rank.get(name, len(rank)), name))

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=300)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class LazyCommandGroup(CommandGroup):
    """The top-level group: each command's module is imported only when that command runs
    (or its own help is asked for), so ``trailguard report`` does not pay for the gateway's,
    the archive's or the correlator's imports, and ``--help`` imports none of them."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = set(super().list_commands(ctx)) | set(LAZY_COMMANDS)
        rank = {name: index for index, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda name: (rank.get(name, len(rank)), name))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in LAZY_COMMANDS:
            command = self._load(cmd_name)
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None and name in LAZY_COMMANDS:
                rows.append((name, LAZY_COMMANDS[name][1]))
            elif command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=300)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def _load(self, name: str) -> Any:
        """Import the module of ``name`` and turn what it registered on ``app`` into click
        commands (all of that module's, so a second command of it costs nothing)."""
        from typer.main import get_command_from_info, get_command_name, get_group_from_info

        importlib.import_module(f"trailguard.cli.{LAZY_COMMANDS[name][0]}")
        short, markup = app.pretty_exceptions_short, app.rich_markup_mode
        for info in app.registered_commands:
            command_name = info.name or get_command_name(info.callback.__name__)  # type: ignore[union-attr]
            if command_name not in self.commands:
                command = get_command_from_info(
                    info, pretty_exceptions_short=short, rich_markup_mode=markup
                )
                self.add_command(command, command_name)
        for group in app.registered_groups:
            if group.name and group.name not in self.commands:
                sub_group = get_group_from_info(
                    group,
                    pretty_exceptions_short=short,
                    suggest_commands=app.suggest_commands,
                    rich_markup_mode=markup,
                )
                self.add_command(sub_group, group.name)
        return self.commands.get(name)


app = typer.Typer(
    cls=LazyCommandGroup,
    name="trailguard",
    help="A tamper-evident audit trail for AI coding agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: wrapped to the terminal (never cut at 80 columns), no "<bool>" metavars.
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    """A tamper-evident audit trail for AI coding agents."""


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
STORE_ENV = "TRAILGUARD_STORE"
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help=f"A shared ledger on PostgreSQL (postgresql://user@host/db) instead of a data "
        f"directory [default: ${STORE_ENV}]",
        show_default=False,
    ),
]
SessionOption = Annotated[
    str | None,
    typer.Option("--session", help="A session id, or an unambiguous start of one."),
]
DeveloperOption = Annotated[
    str | None, typer.Option("--developer", help="A developerId (as the token names it).")
]
ProjectOption = Annotated[
    str | None, typer.Option("--project", help="A projectId, e.g. github.com/acme/backend.")
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="From this time (inclusive): a date (2026-04-15) or an RFC 3339 time with a zone "
        "(2026-04-15T14:32:07Z).",
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option("--until", help="Up to this time (exclusive), in the same forms as --since."),
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


def resolve_location(data_dir: Path | None, store: str | None) -> Any:
    """The ledger a command works on: ``--store URL`` (or $TRAILGUARD_STORE), else the data
    directory. Returns a trailguard.store.backend.Backend."""
    from trailguard.store.backend import DataDirBackend, PostgresBackend

    url = store or (None if data_dir else os.environ.get(STORE_ENV)) or None
    if url is None:
        return DataDirBackend(resolve_data_dir(data_dir))
    if data_dir is not None:
        fail("give either --data-dir or --store, not both")
    if not url.startswith(("postgresql://", "postgres://")):
        fail(f"--store must be a postgresql:// URL, got {url[:40]!r}")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        fail("a PostgreSQL store needs the [postgres] extra: pip install 'trailguard[postgres]'")
    return PostgresBackend(url)


def _backend(location: Any) -> Any:
    from trailguard.store.backend import DataDirBackend

    return DataDirBackend(location) if isinstance(location, Path) else location


def open_read_only(location: Any) -> Any:
    """A read-only store of a data directory (a Path) or of a Backend."""
    from trailguard.store.base import StoreError

    try:
        return _backend(location).open_reader()
    except StoreError as exc:
        fail(str(exc))


def open_state(location: Any) -> Any:
    """The gateway state of a data directory (a Path) or of a Backend."""
    from trailguard.store.base import StoreError

    try:
        return _backend(location).open_state()
    except StoreError as exc:
        fail(str(exc))


def opener_of(location: Any) -> Any:
    """A picklable function opening read-only stores (for the verifier's worker processes)."""
    import functools

    from trailguard.store.backend import PostgresBackend

    backend = _backend(location)
    if isinstance(backend, PostgresBackend):
        from trailguard.store.postgres import PostgresStore

        return functools.partial(PostgresStore, backend.url, read_only=True)
    from trailguard.store.sqlite import SQLiteStore

    return functools.partial(SQLiteStore.in_data_dir, backend.data_dir, read_only=True)


def verifier_for(store: Any, data_dir: Any, key: str | None) -> tuple[Any, str]:
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
        origin = "recorded in the data directory, so not independent: pass --key for that"
        return Verifier.from_string(pinned), origin
    except NoteError as exc:
        fail(f"the verifier key recorded in {data_dir} is unusable ({exc}); pass --key")


def cli_actor() -> str:
    """Who runs this CLI, as recorded with what it changes or reads: ``os:<user>``."""
    import getpass

    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"os:uid-{os.getuid()}"


def record_from_cli(state: Any, data_dir: Any, events: list[Any]) -> None:
    """Queue ``events`` for the ledger: the gateway (its only writer) appends them within a
    second, or at its next start when none runs now (said on stderr)."""
    state.enqueue_events([event.model_dump_json(by_alias=True) for event in events])
    if not _backend(data_dir).writer_running():
        err.print(
            "[yellow]note:[/] no gateway runs on this data directory: the record of this "
            "command is queued and appended to the ledger when it next starts"
        )


def resolve_session_id(store: Any, given: str) -> str:
    """The full id of the session ``given`` names: itself, or the one session whose id starts
    with it. Fails (exit 2) naming the candidates or the closest ids when there is no match:
    a typo must never act on, or report on, a session that does not exist."""
    import difflib

    if not given:
        fail("session id must not be empty")
    candidates = store.session_ids(given, limit=6)
    if given in candidates:
        return given
    if len(candidates) == 1:
        return str(candidates[0])
    if candidates:
        more = ", ..." if len(candidates) > 5 else ""
        fail(
            f"{given!r} is the start of several sessions ({', '.join(candidates[:5])}{more}): "
            "give more of the id"
        )
    near = difflib.get_close_matches(given, store.session_ids(given[:4], limit=200), n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else " (see `trailguard sessions list`)"
    fail(f"no session {given!r} in this ledger{hint}")


def cell(value: object) -> Any:
    """A table cell for agent-controlled text: printable, and never parsed as rich markup."""
    from rich.text import Text

    return Text(printable("" if value is None else value))


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A CSV field a spreadsheet will not run: a leading ``= + - @`` (a formula, e.g.
    ``=HYPERLINK(...)``) is prefixed with ``'`` (OWASP's CSV-injection advice)."""
    text = "" if value is None else value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def record_read(
    data_dir: Any, action: str, query: dict[str, Any], result_count: int | None
) -> None:
    """Record that a person read the record from the CLI (PCI DSS 10.2: access to audit logs
    is itself logged). A read that cannot be recorded (a read-only copy) is said, not hidden."""
    from trailguard.events import AuditAccess
    from trailguard.store.base import StoreError

    event = AuditAccess(
        action=action,
        actor=cli_actor(),
        query={k: v for k, v in query.items() if v is not None},
        result_count=result_count,
        source="cli",
    )
    try:
        state = _backend(data_dir).open_state()
        try:
            state.enqueue_events([event.model_dump_json(by_alias=True)])
        finally:
            state.close()
    except StoreError as exc:
        err.print(f"[yellow]warning:[/] this read could not be recorded in the ledger: {exc}")
