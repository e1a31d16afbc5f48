"""The ``trailguard`` command: a thin layer over the ledger, store and gateway modules.

Exit codes: 0 success; 1 the check failed (ledger not intact, proof invalid, lines skipped);
2 usage or input error (bad option, missing file, no such ledger); 3 internal error (a bug).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from trailguard import __version__

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


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _resolve(data_dir: Path | None) -> Path:
    return (data_dir or default_data_dir()).expanduser().absolute()


def _open_read_only(data_dir: Path) -> Any:
    from trailguard.store.base import StoreError
    from trailguard.store.sqlite import SQLiteStore

    try:
        return SQLiteStore.in_data_dir(data_dir, read_only=True)
    except StoreError as exc:
        _fail(str(exc))


def _verifier_for(store: Any, data_dir: Path, key: str | None) -> tuple[Any, str]:
    """The verifier key to check with, and a description of where it came from."""
    from trailguard.ledger.keys import SigningKeyError, load_verifier
    from trailguard.ledger.note import NoteError, Verifier

    if key is not None:
        try:
            return load_verifier(key), "given with --key"
        except SigningKeyError as exc:
            _fail(str(exc))
    pinned = store.get_meta("verifier_key")
    if pinned is None:
        _fail(f"{data_dir} records no verifier key; pass --key")
    try:
        return Verifier.from_string(pinned), "recorded in the data directory (not independent)"
    except NoteError as exc:
        _fail(f"the verifier key recorded in {data_dir} is unusable ({exc}); pass --key")


# -- info -----------------------------------------------------------------------------------------


@app.command()
def info(data_dir: DataDir = None) -> None:
    """Show the ledger's location, size, latest checkpoint and signing key."""
    from trailguard.events import EventType
    from trailguard.ledger.keys import SIGNING_KEY_FILE
    from trailguard.ledger.note import Verifier
    from trailguard.ledger.writer import WriterLock

    directory = _resolve(data_dir)
    store = _open_read_only(directory)
    try:
        pinned = store.get_meta("verifier_key")
        verifier = Verifier.from_string(pinned) if pinned else None
        last = store.last_row_of_type(EventType.CHECKPOINT.value)
        size = store.tree_size()
        out.print(f"trailguard {__version__}")
        out.print(f"data directory   {directory}")
        out.print(f"log origin       {store.get_meta('origin')}")
        out.print(f"events           {size}")
        out.print(
            "latest checkpoint "
            + (f"seq {last.seq} (covers {last.seq} events)" if last else "none yet")
        )
        out.print(f"writer running   {'yes' if WriterLock.is_held(directory) else 'no'}")
        if verifier is not None:
            out.print(f"key name         {verifier.name}")
            out.print(f"key fingerprint  {verifier.key_id.hex()}")
            out.print(f"verifier key     {verifier.to_string()}")
        key_file = directory / SIGNING_KEY_FILE
        if key_file.exists():
            out.print(f"signing key file {key_file} (mode {key_file.stat().st_mode & 0o777:04o})")
    finally:
        store.close()


# -- verify ---------------------------------------------------------------------------------------


@app.command()
def verify(
    data_dir: DataDir = None,
    trusted_checkpoint: Annotated[
        Path | None,
        typer.Option(help="A signed checkpoint kept off this host (from `trailguard checkpoint`)."),
    ] = None,
    key: KeyOption = None,
    workers: Annotated[int | None, typer.Option(help="Processes to use [default: CPUs].")] = None,
    output_format: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Recompute and check every leaf, checkpoint root, signature and seq. Exit 0 if intact."""
    from trailguard.ledger.verify import Finding, verify_ledger
    from trailguard.ledger.writer import WriterLock
    from trailguard.store.sqlite import SQLiteStore

    if output_format not in ("text", "json"):
        _fail("--format must be text or json")
    directory = _resolve(data_dir)
    store = _open_read_only(directory)
    trusted_text = None
    if trusted_checkpoint is not None:
        from trailguard.ledger.checkpoint import CheckpointError, read_unverified

        try:
            trusted_text = trusted_checkpoint.read_text(encoding="utf-8")
            read_unverified(trusted_text)
        except (OSError, UnicodeDecodeError, CheckpointError) as exc:
            _fail(f"{trusted_checkpoint} is not a readable signed checkpoint: {exc}")
    verifier, key_origin = _verifier_for(store, directory, key)
    writer_running = WriterLock.is_held(directory)
    opener = functools.partial(SQLiteStore.in_data_dir, directory, read_only=True)
    with Progress(
        TextColumn("verifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("verify", total=None)
        report = verify_ledger(
            store,
            opener,
            verifier,
            trusted_checkpoint=trusted_text,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            workers=workers,
            writer_running=writer_running,
        )
    store.close()
    findings = list(report.findings)
    if report.events and report.last_event_type != "gateway_stop" and not writer_running:
        findings.append(
            Finding(
                "warning",
                "ledger",
                "the last writer did not record gateway_stop and none is running now: it "
                "crashed, was killed, or the end of the log was removed (check against a "
                "trusted checkpoint)",
            )
        )
    if key is None:
        findings.append(
            Finding(
                "warning",
                "ledger",
                "no --key: the verifier key was read from the data directory being verified, so "
                "a log rewritten and re-signed with a replaced key would pass; pin the key",
            )
        )
    if trusted_text is None:
        findings.append(
            Finding(
                "warning",
                "ledger",
                "no --trusted-checkpoint: a truncated tail, a rollback, or history rewritten by "
                "someone holding the signing key cannot be detected without one",
            )
        )
    if output_format == "json":
        out.print_json(
            json.dumps(
                {
                    "intact": report.intact,
                    "events": report.events,
                    "unsignedEvents": report.unsigned_events,
                    "keyPinned": key is not None,
                    "checkpoints": report.checkpoints,
                    "latestCheckpointSize": report.latest_checkpoint_size,
                    "key": verifier.to_string(),
                    "keySource": key_origin,
                    "findings": [
                        {
                            "severity": f.severity,
                            "where": f.where,
                            "problem": f.problem,
                            "expected": f.expected,
                            "found": f.found,
                        }
                        for f in findings
                    ],
                }
            )
        )
    else:
        out.print(f"key       {verifier.name}+{verifier.key_id.hex()} ({key_origin})")
        out.print(f"events    {report.events}")
        out.print(
            f"checkpoints {report.checkpoints}, latest covers {report.latest_checkpoint_size}"
        )
        shown = 0
        for finding in findings:
            if finding.severity == "failure" and shown >= 200:
                continue
            shown += finding.severity == "failure"
            colour = "red" if finding.severity == "failure" else "yellow"
            out.print(f"[{colour}]{finding.severity.upper()}[/] {finding}")
        hidden = len(report.failures) - min(len(report.failures), 200)
        if hidden:
            out.print(f"... and {hidden} more failures (use --format json for all)")
        if report.intact:
            covered = report.events - report.unsigned_events
            scope = (
                f"all {report.events} events"
                if not report.unsigned_events
                else f"{covered} of {report.events} events (the rest await the running writer)"
            )
            against = "the pinned key" if key is not None else "the key recorded in the data dir"
            out.print(f"[bold green]INTACT[/]: {scope} verified against {against}")
        else:
            out.print(f"[bold red]NOT INTACT[/]: {len(report.failures)} failure(s)")
    raise typer.Exit(0 if report.intact else 1)


# -- checkpoint, proof, verify-proof --------------------------------------------------------------


@app.command()
def checkpoint(data_dir: DataDir = None, key: KeyOption = None) -> None:
    """Print the latest signed checkpoint, after checking its signature and root. Keep a copy
    off this host: with it, `verify --trusted-checkpoint` detects truncation and rewrites."""
    from trailguard.ledger.proof import ProofBundleError, latest_checkpoint_note

    directory = _resolve(data_dir)
    store = _open_read_only(directory)
    try:
        verifier, _ = _verifier_for(store, directory, key)
        sys.stdout.write(latest_checkpoint_note(store, verifier))
    except ProofBundleError as exc:
        _fail(str(exc), 1)
    finally:
        store.close()


@app.command()
def proof(
    event: Annotated[str, typer.Option("--event", help="The eventId to prove.")],
    data_dir: DataDir = None,
    key: KeyOption = None,
) -> None:
    """Print an inclusion proof of one event against the latest signed checkpoint (JSON)."""
    from trailguard.ledger.proof import ProofBundleError, build_inclusion_proof

    directory = _resolve(data_dir)
    store = _open_read_only(directory)
    try:
        verifier, _ = _verifier_for(store, directory, key)
        bundle = build_inclusion_proof(store, event, verifier)
    except ProofBundleError as exc:
        _fail(str(exc), 1)
    finally:
        store.close()
    sys.stdout.write(json.dumps(bundle, indent=2) + "\n")


@app.command("verify-proof")
def verify_proof(
    proof_file: Annotated[Path, typer.Argument(help="A proof bundle from `trailguard proof`.")],
    key: Annotated[str, typer.Option("--key", help="The log's verifier key, or a file of it.")],
) -> None:
    """Check an inclusion proof offline, with only the log's public key."""
    from trailguard.ledger.keys import SigningKeyError, load_verifier
    from trailguard.ledger.proof import ProofBundleError, verify_inclusion_bundle

    try:
        verifier = load_verifier(key)
    except SigningKeyError as exc:
        _fail(str(exc))
    try:
        bundle = json.loads(proof_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        _fail(f"cannot read proof {proof_file}: {exc}")
    try:
        verified = verify_inclusion_bundle(bundle, verifier)
    except ProofBundleError as exc:
        out.print(f"[bold red]INVALID[/]: {exc}")
        raise typer.Exit(1) from None
    event = verified.event
    out.print(
        f"[bold green]VALID[/]: event {event.get('eventId')} ({event.get('eventType')}, "
        f"{event.get('timestamp')}) is entry {verified.leaf_index} of "
        f"{verified.checkpoint.origin} at tree size {verified.checkpoint.tree_size}, signed by "
        f"{verifier.name}+{verifier.key_id.hex()}"
    )


# -- ingest ---------------------------------------------------------------------------------------


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="JSONL file: one Claude Code hook payload a line.")],
    data_dir: DataDir = None,
    developer: Annotated[
        str | None, typer.Option(help="developerId to record (the file's author is not trusted).")
    ] = None,
    project: Annotated[str | None, typer.Option(help="projectId to record.")] = None,
) -> None:
    """Append hook payloads saved by other tools. Bad lines are reported and skipped (exit 1)."""
    from trailguard.capture.hook_log import import_hook_log
    from trailguard.ledger.writer import Ledger, LedgerError

    if not file.is_file():
        _fail(f"{file} is not a readable file")
    try:
        ledger = Ledger.open(_resolve(data_dir), run_reason="ingest")
    except (LedgerError, OSError, ValueError) as exc:
        _fail(str(exc))
    try:
        with err.status(f"importing {file}") as status:
            result = import_hook_log(
                ledger,
                file,
                developer_id=developer,
                project_id=project,
                progress=lambda line: status.update(f"importing {file}: line {line}"),
            )
    except LedgerError as exc:
        _fail(f"import stopped: {exc}; events acknowledged before this are stored", 1)
    finally:
        ledger.close(reason="ingest finished")
    for problem in result.problems:
        err.print(f"[yellow]skipped[/] {file}:{problem}")
    out.print(
        f"{result.appended} event(s) appended, {result.already_recorded} already recorded, "
        f"{len(result.problems)} line(s) skipped, from {file}"
    )
    raise typer.Exit(1 if result.problems else 0)


# -- serve ----------------------------------------------------------------------------------------


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str, typer.Option(help="Address to bind. Keep 127.0.0.1 unless fronted.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8787,
    checkpoint_every: Annotated[int, typer.Option(help="Sign a checkpoint every N events.")] = 1000,
    checkpoint_interval: Annotated[
        float, typer.Option(help="...or every T seconds with new events.")
    ] = 10.0,
    signing_key: Annotated[
        Path | None,
        typer.Option(help="Signing key file (else $TRAILGUARD_SIGNING_KEY or the data dir's)."),
    ] = None,
    idle_timeout: Annotated[
        float, typer.Option(help="End a session as timed_out after this many idle seconds.")
    ] = 1800.0,
) -> None:
    """Run the gateway on the embedded SQLite ledger."""
    import uvicorn

    from trailguard.gateway.app import create_app
    from trailguard.ledger.keys import SigningKeyError
    from trailguard.ledger.writer import Ledger, LedgerConfig, LedgerError

    if checkpoint_every < 1 or checkpoint_interval <= 0 or idle_timeout <= 0:
        _fail("--checkpoint-every must be >= 1, --checkpoint-interval and --idle-timeout > 0")
    directory = _resolve(data_dir)
    try:
        ledger = Ledger.open(
            directory,
            config=LedgerConfig(
                checkpoint_every_events=checkpoint_every,
                checkpoint_interval_seconds=checkpoint_interval,
            ),
            key_file=signing_key,
        )
    except (LedgerError, SigningKeyError, OSError) as exc:
        _fail(str(exc))
    err.print(f"trailguard {__version__}: ledger {directory}, log {ledger.origin}")
    err.print(f"listening on http://{host}:{port} (Ctrl-C to stop)")
    try:
        # The app's shutdown closes the ledger: uvicorn re-raises SIGTERM/SIGINT once it has
        # shut down, so code after run() may never execute.
        uvicorn.run(
            create_app(ledger, idle_timeout=idle_timeout),
            host=host,
            port=port,
            log_level="warning",
        )
    finally:
        ledger.close(reason="shutdown")


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


# -- tokens ---------------------------------------------------------------------------------------

token_app = typer.Typer(help="API tokens: they decide who a request is from.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _gateway_state(data_dir: Path | None) -> Any:
    from trailguard.store.base import StoreError
    from trailguard.store.gateway_state import GatewayState

    try:
        return GatewayState(_resolve(data_dir))
    except StoreError as exc:
        _fail(str(exc))


@token_app.command("create")
def token_create(
    developer: Annotated[str, typer.Option(help="The developerId this token stands for.")],
    role: Annotated[str, typer.Option(help="agent (hooks), auditor (read), admin")] = "agent",
    data_dir: DataDir = None,
) -> None:
    """Create a token; it is printed once, as the last line, and stored only as a hash."""
    state = _gateway_state(data_dir)
    try:
        token, token_id = state.create_token(developer, role)  # type: ignore[arg-type]
    except ValueError as exc:
        _fail(str(exc))
    finally:
        state.close()
    err.print(f"token {token_id} for {developer} ({role}); it is not shown again:")
    out.print(token)


@token_app.command("list")
def token_list(data_dir: DataDir = None) -> None:
    """List tokens (ids, developers, roles; never the tokens themselves)."""
    state = _gateway_state(data_dir)
    try:
        for token_id, developer, role, created, revoked in state.tokens():
            status = f"revoked {revoked}" if revoked else "active"
            out.print(f"{token_id}  {developer}  {role}  created {created}  {status}")
    finally:
        state.close()


@token_app.command("revoke")
def token_revoke(token_id: str, data_dir: DataDir = None) -> None:
    """Revoke a token by its id (tok_...); requests with it get 401 from then on."""
    state = _gateway_state(data_dir)
    try:
        if not state.revoke_token(token_id):
            _fail(f"no active token {token_id}", 1)
    finally:
        state.close()
    out.print(f"revoked {token_id}")


# -- sessions -------------------------------------------------------------------------------------

sessions_app = typer.Typer(help="Agent sessions: list, show, kill.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")


@sessions_app.command("list")
def sessions_list(
    data_dir: DataDir = None,
    developer: Annotated[str | None, typer.Option()] = None,
    project: Annotated[str | None, typer.Option()] = None,
    since: Annotated[
        str | None, typer.Option(help="Active at or after (date or RFC 3339).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Started before.")] = None,
    active: Annotated[bool | None, typer.Option("--active/--ended")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Sessions, oldest first."""
    from rich.table import Table

    from trailguard.retrieval import QueryError, parse_time

    try:
        since_at = parse_time(since, name="--since") if since else None
        until_at = parse_time(until, name="--until") if until else None
    except QueryError as exc:
        _fail(str(exc))
    state = _gateway_state(data_dir)
    try:
        found = list(
            state.sessions(
                developer_id=developer,
                project_id=project,
                since=since_at,
                until=until_at,
                active=active,
            )
        )
    finally:
        state.close()
    if output_format == "json":
        out.print_json(json.dumps([s.__dict__ for s in found]))
        return
    table = Table("session", "developer", "project", "started", "last event", "ended", "reason")
    for s in found:
        table.add_row(
            s.session_id,
            s.developer_id or "",
            s.project_id or "",
            s.started_at or "(never started)",
            s.last_event_at,
            s.ended_at or "",
            s.end_reason or "",
        )
    out.print(table)


@sessions_app.command("show")
def sessions_show(
    session_id: str,
    data_dir: DataDir = None,
    output_format: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Who, project, start, end and why, event counts, and a completeness line."""
    from trailguard.retrieval import session_report

    store = _open_read_only(_resolve(data_dir))
    try:
        report = session_report(store, session_id)
    finally:
        store.close()
    if report is None:
        _fail(f"no events for session {session_id}", 1)
    if output_format == "json":
        document = dict(report.__dict__)
        document["counts"] = dict(report.counts)
        document["complete"] = report.complete
        out.print_json(json.dumps(document))
        return
    out.print(f"session     {report.session_id}")
    out.print(f"developer   {report.developer_id}")
    out.print(f"project     {report.project_id}")
    out.print(f"started     {report.started_at or '(never started: flagged)'}")
    ended = f"{report.ended_at} ({report.end_reason}"
    ended += f", agent said {report.raw_end_reason!r})" if report.raw_end_reason else ")"
    out.print(f"ended       {ended if report.ended_at else '(open)'}")
    counts = ", ".join(f"{kind} {n}" for kind, n in sorted(report.counts.items()))
    out.print(f"events      {sum(report.counts.values())}: {counts}")
    if report.complete:
        out.print(
            f"[green]complete[/]: all {report.tool_calls} tool calls have an invocation and a "
            "result, error or denial"
        )
    else:
        out.print(
            f"[red]incomplete[/]: {len(report.gaps)} gap(s) in {report.tool_calls} tool calls"
        )
        for gap in report.gaps:
            out.print(f"  gap {gap}")


@sessions_app.command("kill")
def sessions_kill(
    session_id: str,
    data_dir: DataDir = None,
    reason: Annotated[str | None, typer.Option(help="Recorded with the session's end.")] = None,
    by: Annotated[
        str | None, typer.Option(help="Who asks (default: the OS user running this).")
    ] = None,
) -> None:
    """Kill a session: the gateway records session_end (killed) and from then on denies every
    hook of it with continue=false."""
    import getpass

    state = _gateway_state(data_dir)
    try:
        new = state.request_kill(session_id, by or getpass.getuser(), reason)
    finally:
        state.close()
    out.print(
        f"session {session_id}: kill requested"
        if new
        else f"session {session_id} was already killed"
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
        _fail("--format must be table, json, jsonl or csv")
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
        _fail(str(exc))
    store = _open_read_only(_resolve(data_dir))
    try:
        found = query_events(store, event_query)
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
                writer.writerow([document.get(column, "") for column in columns])
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
                    str(document.get("sessionId") or ""),
                    str(document.get("developerId") or ""),
                    str(document.get("tool") or ""),
                    str(document.get("policyResult") or ""),
                    _detail(document),
                )
            # Piped or captured output is not cut to 80 columns either.
            wide = out if out.is_terminal else Console(width=200, highlight=False)
            wide.print(table)
    finally:
        store.close()


def _detail(document: dict[str, Any]) -> str:
    for key in ("input", "prompt", "error", "reason", "message", "name"):
        value = document.get(key)
        if value:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            return text if len(text) <= 80 else text[:77] + "..."
    return ""


# -- install --------------------------------------------------------------------------------------


@app.command()
def install(
    gateway: Annotated[str, typer.Option(help="Gateway URL, e.g. http://127.0.0.1:8787")] = (
        "http://127.0.0.1:8787"
    ),
    project_dir: Annotated[
        Path | None, typer.Option("--project", help="Install into DIR/.claude/settings.json")
    ] = None,
    user: Annotated[bool, typer.Option("--user", help="Install into ~/.claude/settings.json")] = (
        False
    ),
    managed: Annotated[
        bool, typer.Option("--managed", help="Install into /etc/claude-code/managed-settings.json")
    ] = False,
    mode: Annotated[str, typer.Option(help="http (default) or command")] = "http",
    hook_command: Annotated[
        str | None, typer.Option(help="Command hook to run [default: this trailguard's path]")
    ] = None,
    allow_managed_hooks_only: Annotated[
        bool, typer.Option(help="With --managed: ignore hooks from user and project settings.")
    ] = False,
    uninstall: Annotated[bool, typer.Option("--uninstall", help="Remove trailguard's hooks.")] = (
        False
    ),
) -> None:
    """Merge trailguard's hooks into a Claude Code settings file, idempotently."""
    from trailguard.capture import install as installer

    scopes = [
        name
        for name, chosen in (("project", project_dir), ("user", user), ("managed", managed))
        if chosen
    ]
    if len(scopes) != 1:
        _fail("choose exactly one of --project DIR, --user, --managed")
    if mode not in ("http", "command"):
        _fail("--mode must be http or command")
    if allow_managed_hooks_only and not managed:
        _fail("--allow-managed-hooks-only only applies with --managed")
    path = installer.settings_path(scopes[0], project_dir=project_dir)  # type: ignore[arg-type]
    if hook_command is None:
        executable = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
        hook_command = (
            f"{executable} hook"
            if executable and executable.name == "trailguard"
            else "trailguard hook"
        )
    try:
        if uninstall:
            result = installer.uninstall(path)
        else:
            result = installer.install(
                path,
                gateway,
                mode,  # type: ignore[arg-type]
                hook_command=hook_command,
                allow_managed_hooks_only=allow_managed_hooks_only,
            )
    except (installer.InstallError, OSError) as exc:
        _fail(str(exc))
    verb = "removed from" if uninstall else "installed in"
    if result.changed:
        out.print(f"trailguard hooks {verb} {result.path}")
    else:
        out.print(f"{result.path} already up to date")
    if not uninstall and mode == "http":
        err.print(
            "HTTP hooks send $TRAILGUARD_TOKEN: set it in the environment Claude Code runs in."
        )


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help="The command hook client (Claude Code runs it; reads the hook JSON on stdin).",
)
def hook() -> None:
    from trailguard.capture import hook_client

    raise typer.Exit(hook_client.main(sys.stdin.buffer, sys.stdout, os.environ))
