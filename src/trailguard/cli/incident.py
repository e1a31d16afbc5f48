"""Incident export: `report` (HTML, Markdown, JSON), and `evidence export | verify | soc2`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from trailguard.cli._common import (
    DataDir,
    DeveloperOption,
    KeyOption,
    ProjectOption,
    SinceOption,
    StoreOption,
    UntilOption,
    app,
    cli_actor,
    err,
    fail,
    open_read_only,
    opener_of,
    record_read,
    resolve_location,
    resolve_session_id,
    verifier_for,
)

SessionsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--session",
        help="A session id, or an unambiguous start of one; repeat for several sessions.",
    ),
]
REPORT_FORMATS = {"html": "html", "md": "md", "markdown": "md", "json": "json"}


def _report_format(given: str | None, output: Path | None) -> str:
    if given is not None:
        if given not in REPORT_FORMATS:
            fail(f"--format must be html, md or json, got {given!r}")
        return REPORT_FORMATS[given]
    suffix = output.suffix.lstrip(".").lower() if output is not None else ""
    return REPORT_FORMATS.get(suffix, "md")


def _scope(store: Any, sessions: list[str] | None, developer: str | None, project: str | None,
           since: str | None, until: str | None, archive: Any = None) -> Any:  # fmt: skip
    from trailguard.incident.records import Scope, ScopeError
    from trailguard.retrieval import QueryError, parse_time

    def resolve(session: str) -> str:
        if archive is not None and not store.session_ids(session, limit=1):
            from trailguard.archive.index import find

            if find(archive, session=session):
                return session  # pruned from the hot store: the archive's index knows it
        return str(resolve_session_id(store, session))

    try:
        return Scope(
            sessions=tuple(resolve(s) for s in sessions or ()),
            developer=developer,
            project=project,
            since=parse_time(since, name="--since") if since else None,
            until=parse_time(until, name="--until") if until else None,
        )
    except (ScopeError, QueryError) as exc:
        fail(str(exc))


def render(report: Any, output_format: str) -> str:
    """The report in ``html``, ``md`` or ``json``."""
    if output_format == "html":
        from trailguard.incident.html import render_html

        return render_html(report)
    if output_format == "md":
        from trailguard.incident.markdown import render_markdown

        return render_markdown(report)
    import json

    return json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n"


def _open_archive(url: str | None) -> Any:
    """The archive at ``url`` (None: none given); a URL that cannot be opened fails (exit 2)."""
    if url is None:
        return None
    from trailguard.archive.backends import open_archive
    from trailguard.errors import TrailguardError

    try:
        return open_archive(url)
    except TrailguardError as exc:
        fail(f"cannot open the archive {url}: {exc}")


ArchiveOption = Annotated[
    str | None,
    typer.Option(
        "--archive",
        help="Also the events pruned to the archive (s3://... or file://...), each segment "
        "checked against its signed checkpoint.",
    ),
]


def _write_whole(output: Path, data: bytes) -> None:
    """Write ``output`` so that it is never seen half written: a temporary file beside it,
    fsynced, then renamed over it."""
    import os

    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, output)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        fail(f"cannot write {output}: {exc.strerror}")


def _write(output: Path | None, text: str) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        _write_whole(output, text.encode())


@app.command()
def report(
    data_dir: DataDir = None,
    store_url: StoreOption = None,
    session: SessionsOption = None,
    developer: DeveloperOption = None,
    project: ProjectOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    output_format: Annotated[
        str | None,
        typer.Option(
            "--format", help="html, md or json [default: from the -o file's suffix, else md]"
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    key: KeyOption = None,
    archive: ArchiveOption = None,
) -> None:
    """A chronological incident report across sessions, each event verified against the latest
    signed checkpoint. Exit 1 if an event does not verify (the report says which)."""
    from trailguard.errors import TrailguardError
    from trailguard.incident.report import build_report

    chosen = _report_format(output_format, output)
    location = resolve_location(data_dir, store_url)
    store = open_read_only(location)
    try:
        verifier, key_source = verifier_for(store, location.description, key)
        opened = _open_archive(archive)
        scope = _scope(store, session, developer, project, since, until, opened)
        archived: list[dict[str, Any]] = []
        if opened is not None:
            from trailguard.archive.index import archived_events
            from trailguard.retrieval import EventQuery

            hot_from = next(iter(store.seqs()), None)
            try:
                for event_filter in scope.filters():
                    archived += archived_events(
                        opened, EventQuery(event_filter), verifier, below=hot_from
                    )
            except TrailguardError as exc:
                fail(f"cannot read the archive {archive}: {exc}", 1)
        built = build_report(
            store,
            scope,
            verifier,
            key_source=key_source,
            key_pinned=key is not None,
            generated_by=cli_actor(),
            archived=archived,
            archive=archive,
        )
    finally:
        store.close()
    record_read(
        location,
        "cli report",
        scope.to_json()
        | {"format": chosen, "output": str(output) if output else None, "archive": archive},
        len(built.timeline),
    )
    _write(output, render(built, chosen))
    verification = built.header.verification
    colour = "green" if verification.intact else "red"
    err.print(
        f"{len(built.timeline)} event(s) in {len(built.sessions)} session(s)"
        + (f" written to {output}" if output else "")
        + f"; [{colour}]{escape(verification.summary())}[/]"
    )
    if not built.timeline:
        err.print("[yellow]note:[/] nothing in the ledger matches this scope")
    raise typer.Exit(0 if verification.intact else 1)


# -- evidence -------------------------------------------------------------------------------------

evidence_app = typer.Typer(
    help="Evidence anyone can check offline: bundles of events with their proofs, and the "
    "SOC 2 evidence pack.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(evidence_app, name="evidence")


@evidence_app.command("export")
def evidence_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="The bundle to write (.zip).")],
    data_dir: DataDir = None,
    store_url: StoreOption = None,
    session: SessionsOption = None,
    developer: DeveloperOption = None,
    project: ProjectOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    from_checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="A checkpoint of this log you already hold: the bundle then proves the log "
            "only grew since."
        ),
    ] = None,
    key: KeyOption = None,
    archive: ArchiveOption = None,
) -> None:
    """Write an evidence bundle: the events' exact bytes, an inclusion proof for each against
    one signed checkpoint, consistency proofs, the public key, the report, a manifest and
    VERIFY.md. It verifies offline with `evidence verify` or the script inside it. With
    --archive, events pruned from the hot store come from the archive, proven against the same
    checkpoint through the archive's hash tiles."""
    from trailguard.errors import TrailguardError
    from trailguard.incident.bundle import BundleExportError, export_bundle

    trusted_text = None
    if from_checkpoint is not None:
        try:
            trusted_text = from_checkpoint.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read --from-checkpoint {from_checkpoint}: {exc}")
    location = resolve_location(data_dir, store_url)
    store = open_read_only(location)
    try:
        opened = _open_archive(archive)
        scope = _scope(store, session, developer, project, since, until, opened)
        verifier, key_source = verifier_for(store, location.description, key)
        archived: list[Any] = []
        leaves = None
        if opened is not None:
            from trailguard.archive.evidence import TileLeaves, archived_rows

            leaves = TileLeaves(opened, store)
            try:
                archived = archived_rows(opened, scope.filters(), verifier, below=leaves.boundary)
            except TrailguardError as exc:
                fail(f"cannot read the archive {archive}: {exc}", 1)
        exported = export_bundle(
            store,
            scope,
            verifier,
            key_source=key_source,
            key_pinned=key is not None,
            generated_by=cli_actor(),
            from_checkpoint=trusted_text,
            archive=archive,
            archived_rows=archived,
            leaves=leaves,
        )
    except BundleExportError as exc:
        fail(str(exc), 1)
    except TrailguardError as exc:
        if archive is None:
            raise
        fail(f"cannot prove the archived events with the archive {archive}: {exc}", 1)
    finally:
        store.close()
    _write_whole(output, exported.data)
    record_read(
        location,
        "cli evidence export",
        scope.to_json()
        | {
            "output": str(output),
            "manifestSha256": exported.manifest_sha256,
            "fromCheckpoint": str(from_checkpoint) if from_checkpoint else None,
            "archive": archive,
        },
        exported.events,
    )
    err.print(
        f"{exported.events} event(s) with their proofs written to {escape(str(output))} "
        f"({len(exported.data):,} bytes; manifest SHA-256 {exported.manifest_sha256}, also "
        "recorded in the ledger)"
    )


@evidence_app.command("verify")
def evidence_verify(
    bundle: Annotated[Path, typer.Argument(help="A bundle from `evidence export`.")],
    key: Annotated[str, typer.Option("--key", help="The log's verifier key, or a file of it.")],
    trusted_checkpoint: Annotated[
        Path | None, typer.Option(help="A checkpoint of this log you kept off its host.")
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Check an evidence bundle offline, with no data directory: every failure is named (a
    changed event, a missing one, a proof that does not match, a wrong key). Exit 0 if valid."""
    import json

    from trailguard.incident.bundle import BundleError, verify_bundle
    from trailguard.ledger.keys import SigningKeyError, load_verifier

    if output_format not in ("text", "json"):
        fail("--format must be text or json")
    try:
        verifier = load_verifier(key)
    except SigningKeyError as exc:
        fail(str(exc))
    try:
        data = bundle.read_bytes()
        trusted = trusted_checkpoint.read_text(encoding="utf-8") if trusted_checkpoint else None
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {exc.filename if isinstance(exc, OSError) else 'a file'}: {exc}")
    try:
        result = verify_bundle(data, verifier, trusted_checkpoint=trusted)
    except BundleError as exc:
        fail(f"{bundle} is not an evidence bundle: {exc}")
    if output_format == "json":
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
        raise typer.Exit(0 if result.valid else 1)
    from trailguard.cli._common import out
    from trailguard.display import printable

    for finding in result.findings:
        colour = "red" if finding.severity == "failure" else "yellow"
        out.print(f"[{colour}]{finding.severity.upper()}[/] {escape(printable(str(finding)))}")
    checkpoint = result.checkpoint
    if result.valid and checkpoint is not None:
        trusted_note = (
            f"; consistent with your checkpoint of size {result.trusted.tree_size}"
            if result.trusted
            else ""
        )
        out.print(
            f"[bold green]VALID[/]: {result.proven} of {result.events} events are entries of "
            f"{escape(checkpoint.origin)} at tree size {checkpoint.tree_size}, signed by "
            f"{verifier.name}+{verifier.key_id.hex()}{trusted_note}"
        )
    else:
        out.print(f"[bold red]INVALID[/]: {len(result.failures)} failure(s)")
    raise typer.Exit(0 if result.valid else 1)


@evidence_app.command("soc2")
def evidence_soc2(
    period: Annotated[
        str,
        typer.Option(
            help="START..END: dates or RFC 3339 times; a date as END includes that whole day "
            "(2026-01-01..2026-12-31 is the year)."
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to write the pack to.")],
    data_dir: DataDir = None,
    store_url: StoreOption = None,
    trusted_checkpoint: Annotated[
        Path | None, typer.Option(help="A checkpoint kept off the host, for the integrity check.")
    ] = None,
    key: KeyOption = None,
    workers: Annotated[int | None, typer.Option(help="Processes for the verify run.")] = None,
    archive: Annotated[
        str | None,
        typer.Option(
            "--archive",
            help="The compliance archive (s3://... or file://...): verified, with its lock mode "
            "and retention.",
        ),
    ] = None,
) -> None:
    """The SOC 2 evidence pack of a period: completeness, policy decisions, integrity (a full
    verify), retention, access and identity changes, each naming its Trust Services Criteria,
    as CSV and JSON with one HTML summary."""
    import json

    from trailguard.cli._common import csv_cell
    from trailguard.incident.soc2 import PeriodError, build_pack, parse_period, write_pack
    from trailguard.store.backend import DataDirBackend
    from trailguard.store.sqlite import DATABASE_FILE

    try:
        start, end = parse_period(period)
    except PeriodError as exc:
        fail(str(exc))
    trusted_text = None
    if trusted_checkpoint is not None:
        try:
            trusted_text = trusted_checkpoint.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read --trusted-checkpoint {trusted_checkpoint}: {exc}")
    if output.exists() and not output.is_dir():
        fail(f"{output} exists and is not a directory")
    location = resolve_location(data_dir, store_url)
    store = open_read_only(location)
    state = location.open_state()
    try:
        queued = sum(
            json.loads(document).get("eventType") == "audit_access"
            for _, document in state.pending_events(limit=1_000_000)
        )
    finally:
        state.close()
    opened = None
    if archive is not None:
        from trailguard.archive.backends import open_archive
        from trailguard.errors import TrailguardError

        try:
            opened = open_archive(archive)
        except TrailguardError as exc:
            fail(f"cannot open the archive {archive}: {exc}")
    ledger_file = (
        location.data_dir / DATABASE_FILE if isinstance(location, DataDirBackend) else None
    )
    try:
        verifier, _ = verifier_for(store, location.description, key)
        with err.status("building the pack (a full verify of the ledger is part of it)"):
            pack = build_pack(
                store,
                opener_of(location),
                verifier,
                start=start,
                end=end,
                generated_by=cli_actor(),
                key_pinned=key is not None,
                trusted_checkpoint=trusted_text,
                ledger_bytes=ledger_file.stat().st_size if ledger_file else None,
                workers=workers,
                writer_running=location.writer_running(),
                queued_reads=queued,
                archive=opened,
            )
    finally:
        store.close()
    try:
        sums = write_pack(pack, output, csv_cell)
    except OSError as exc:
        fail(f"cannot write the pack to {output}: {exc.strerror}")
    completeness = pack.sections["completeness"]
    record_read(
        location,
        "cli evidence soc2",
        {"period": period, "start": start, "end": end, "output": str(output),
         "packSha256": sums["pack.json"], "archive": archive},
        completeness["events"],
    )  # fmt: skip
    archived = pack.sections["integrity"]["archive"]
    intact = pack.sections["integrity"]["verify"]["intact"] and (
        not isinstance(archived, dict) or archived["intact"]
    )
    err.print(
        f"pack for {start} to {end} written to {escape(str(output))}: "
        f"{completeness['sessions']} session(s), {completeness['toolCalls']} tool call(s), "
        f"{completeness['gaps']} gap(s); ledger "
        + ("[green]intact[/]" if intact else "[red]NOT intact (see integrity)[/]")
    )
    raise typer.Exit(0 if intact else 1)
