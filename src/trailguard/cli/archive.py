"""The compliance archive's commands: run (export), status, verify, find, prune, hold,
checkpoint. See docs/archive-format.md for what lands in the archive."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from trailguard.cli._common import (
    CommandGroup,
    DataDir,
    DeveloperOption,
    KeyOption,
    ProjectOption,
    app,
    cell,
    err,
    fail,
    open_read_only,
    out,
    record_from_cli,
    resolve_data_dir,
    verifier_for,
)
from trailguard.errors import TrailguardError


class _ArchiveCommands(CommandGroup):
    """The archive's commands in the order an operator, then an auditor, uses them."""

    ORDER = ("run", "status", "verify", "find", "checkpoint", "prune", "hold")

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: self.ORDER.index(n) if n in self.ORDER else 99)


archive_app = typer.Typer(
    cls=_ArchiveCommands,
    help="The write-once compliance archive: sealed segments in S3 Object Lock.",
    no_args_is_help=True,
)
app.add_typer(archive_app, name="archive")

ArchiveOption = Annotated[
    str,
    typer.Option(
        "--archive",
        help="s3://BUCKET/PREFIX (Object Lock; standard AWS configuration, AWS_ENDPOINT_URL for "
        "S3-compatible servers) or file:///PATH (a local directory, not write-once).",
    ),
]
RetentionOption = Annotated[
    str | None,
    typer.Option("--retention", help="soc2 (1 year) or hipaa (6 years) [default: soc2]."),
]
RetentionDaysOption = Annotated[
    int | None, typer.Option("--retention-days", help="Retention in days instead of a preset.")
]
LockModeOption = Annotated[
    str, typer.Option("--lock-mode", help="COMPLIANCE (nobody can shorten it) or GOVERNANCE.")
]
HotDaysOption = Annotated[
    int, typer.Option("--hot-days", help="Days of events the hot store keeps.")
]


ServeArchiveOption = Annotated[
    str | None,
    typer.Option(
        "--archive",
        help="Archive to s3://BUCKET/PREFIX (Object Lock) on a schedule, export every "
        "checkpoint there each minute, and prune the hot store after verifying.",
    ),
]
ArchiveEveryOption = Annotated[
    str, typer.Option("--archive-every", help="How often to seal and prune: 1h, 1d, 7d...")
]


def archive_schedule(
    url: str | None,
    every: str,
    retention: str | None,
    retention_days: int | None,
    lock_mode: str,
    hot_days: int,
) -> Any:
    """For `serve`: checks the archive options (and the bucket's Object Lock) before anything
    is recorded, and returns a function that starts the archive job on the opened ledger."""
    if url is None:
        return None
    from trailguard.archive.scheduler import ArchiveScheduler, ScheduleConfig, parse_interval
    from trailguard.archive.seal import SealConfig, check_bucket

    try:
        every_seconds = parse_interval(every)
    except TrailguardError as exc:
        fail(str(exc))
    policy = _retention(retention, retention_days, lock_mode, hot_days)
    target = _archive(url)
    try:
        check_bucket(target)
    except TrailguardError as exc:
        fail(f"--archive: {exc}. Nothing was recorded.")
    config = ScheduleConfig(every_seconds, hot_days, SealConfig(retention=policy))

    def start(ledger: Any, data_dir: Path) -> ArchiveScheduler:
        scheduler = ArchiveScheduler(ledger, data_dir, target, config)
        scheduler.start()
        err.print(f"archiving to {url} every {every} ({policy.describe()}, hot {hot_days} days)")
        return scheduler

    return start


def _archive(url: str) -> Any:
    from trailguard.archive.backends import open_archive

    try:
        return open_archive(url)
    except TrailguardError as exc:
        fail(str(exc))


def _retention(preset: str | None, days: int | None, mode: str, hot_days: int = 90) -> Any:
    from trailguard.archive.layout import Retention

    try:
        return Retention.build(preset, days, mode, hot_days)
    except TrailguardError as exc:
        fail(str(exc))


def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _alert(directory: Path, alert_type: str, severity: str, message: str, **details: Any) -> None:
    """Queue an alert for the ledger (its one writer appends it)."""
    from trailguard.events import Alert
    from trailguard.store.base import StoreError
    from trailguard.store.gateway_state import GatewayState

    try:
        state = GatewayState(directory)
        try:
            record_from_cli(
                state,
                directory,
                [
                    Alert(
                        alert_type=alert_type,
                        severity=severity,  # type: ignore[arg-type]
                        message=message,
                        details=details,
                        source="cli",
                    )
                ],
            )
        finally:
            state.close()
    except StoreError as exc:
        err.print(f"[yellow]warning:[/] could not record this in the ledger: {exc}")


# -- run ------------------------------------------------------------------------------------------


@archive_app.command("run")
def run(
    archive: ArchiveOption,
    data_dir: DataDir = None,
    retention: RetentionOption = None,
    retention_days: RetentionDaysOption = None,
    lock_mode: LockModeOption = "COMPLIANCE",
    segment_events: Annotated[
        int, typer.Option(help="Cut a segment at the first checkpoint past this many events.")
    ] = 100_000,
    daily: Annotated[
        bool, typer.Option("--daily/--no-daily", help="Also cut at the first checkpoint of a day.")
    ] = True,
    parquet: Annotated[
        bool, typer.Option("--parquet/--no-parquet", help="Also write a Parquet copy by date.")
    ] = True,
    key: KeyOption = None,
) -> None:
    """Seal every checkpointed event not yet archived, read each segment back and verify it,
    and export every signed checkpoint. Idempotent and resumable: safe to run from cron."""
    from trailguard.archive.layout import format_time
    from trailguard.archive.seal import ArchiveIntegrityError, SealConfig, archive_ledger
    from trailguard.archive.state import write_state
    from trailguard.archive.verify import check_uploaded_segment

    policy = _retention(retention, retention_days, lock_mode)
    target = _archive(archive)
    directory = resolve_data_dir(data_dir)
    store = open_read_only(directory)
    started = datetime.now(UTC)
    try:
        verifier, _ = verifier_for(store, directory, key)
        config = SealConfig(
            retention=policy, segment_events=segment_events, daily=daily, parquet=parquet
        )
        with _progress("archiving") as bar:
            task = bar.add_task("archive", total=None)
            result = archive_ledger(
                store,
                verifier,
                target,
                config,
                now=started,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                read_back=check_uploaded_segment,
            )
    except ArchiveIntegrityError as exc:
        write_state(directory, archive=archive, lastRunAt=format_time(started), lastError=str(exc))
        _alert(directory, "archive_refused", "critical", f"archiving to {archive} stopped: {exc}")
        fail(str(exc), 1)
    except TrailguardError as exc:
        write_state(directory, archive=archive, lastRunAt=format_time(started), lastError=str(exc))
        fail(str(exc), 2 if exc.http_status < 500 else 1)
    finally:
        store.close()
    write_state(
        directory,
        archive=archive,
        lastRunAt=format_time(started),
        lastError=None,
        archivedSize=result.archived_size,
        retention=policy.describe(),
    )
    sealed = result.sealed
    if sealed:
        out.print(
            f"sealed {len(sealed)} segment(s), seq {sealed[0].first_seq}..{sealed[-1].last_seq}, "
            f"each read back and verified"
        )
    else:
        out.print("nothing new to seal")
    out.print(
        f"the archive covers seq 0..{result.archived_size - 1} of {result.ledger_size} events; "
        f"{result.checkpoints_exported} new checkpoint(s) exported; locked {policy.describe()}"
        if result.archived_size
        else f"the archive is empty ({result.ledger_size} events in the ledger)"
    )


# -- status ---------------------------------------------------------------------------------------


@archive_app.command("status")
def status(
    archive: Annotated[
        str | None,
        typer.Option("--archive", help="The archive [default: the one the last run used]."),
    ] = None,
    data_dir: DataDir = None,
    key: KeyOption = None,
    output_format: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """The last archived seq, the lag behind the ledger, the last and next run, the retention,
    and the Object Lock found on the bucket."""
    from trailguard.archive.layout import parse_time
    from trailguard.archive.seal import check_bucket, last_sealed, sealed_manifest_keys
    from trailguard.archive.state import read_state
    from trailguard.store.base import PRUNED_BEFORE_KEY

    directory = resolve_data_dir(data_dir)
    state = read_state(directory)
    url = archive or state.get("archive")
    if not url:
        fail("no archive given and none recorded in this data directory: pass --archive URL")
    target = _archive(url)
    store = open_read_only(directory)
    try:
        verifier, _ = verifier_for(store, directory, key)
        size = store.tree_size()
        pruned_before = int(store.get_meta(PRUNED_BEFORE_KEY) or 0)
        try:
            lock = check_bucket(target)
        except TrailguardError as exc:
            lock = f"REFUSED: {exc}"
        try:
            sealed = last_sealed(target, verifier)
            segments = len(sealed_manifest_keys(target))
        except TrailguardError as exc:
            fail(f"cannot read {url}: {exc}", 1)
    finally:
        store.close()
    archived = sealed.manifest.tree_size if sealed else 0
    lag_seconds = None
    if sealed is not None:
        lag_seconds = (
            datetime.now(UTC) - parse_time(sealed.manifest.last_timestamp)
        ).total_seconds()
    document = {
        "archive": url,
        "objectLock": lock,
        "segments": segments,
        "lastArchivedSeq": archived - 1 if archived else None,
        "ledgerEvents": size,
        "lagEvents": size - archived,
        "lastArchivedEventAgeSeconds": lag_seconds,
        "retention": sealed.manifest.retention.describe() if sealed else state.get("retention"),
        "retainUntil": sealed.manifest.retain_until if sealed else None,
        "hotStoreStartsAt": pruned_before,
        "lastRunAt": state.get("lastRunAt"),
        "lastError": state.get("lastError"),
        "nextRunAt": state.get("nextRunAt"),
    }
    if output_format == "json":
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    out.print(f"archive          {url}")
    out.print(f"object lock      {lock}")
    out.print(
        f"last archived    seq {archived - 1} ({segments} segment(s))"
        if archived
        else "last archived    nothing yet"
    )
    out.print(f"ledger           {size} events; lag {size - archived} events")
    if lag_seconds is not None:
        out.print(f"last archived event {lag_seconds / 3600:.1f} h ago")
    out.print(f"retention        {document['retention'] or 'unknown'}")
    out.print(f"hot store        from seq {pruned_before}")
    out.print(f"last run         {state.get('lastRunAt') or 'never (from this data directory)'}")
    if state.get("lastError"):
        out.print(f"[red]last error[/]       {state['lastError']}")
    out.print(
        f"next run         {state.get('nextRunAt') or 'on demand (no gateway runs on a schedule)'}"
    )


# -- verify ---------------------------------------------------------------------------------------


@archive_app.command("verify")
def verify(
    archive: ArchiveOption,
    key: Annotated[str, typer.Option("--key", help="The log's verifier key, or a file of it.")],
    retention: RetentionOption = None,
    retention_days: RetentionDaysOption = None,
    lock_mode: Annotated[
        str | None,
        typer.Option("--lock-mode", help="Require this lock mode [default: each manifest's]."),
    ] = None,
    trusted_checkpoint: Annotated[
        Path | None, typer.Option(help="A signed checkpoint kept elsewhere, to check against.")
    ] = None,
    parquet: Annotated[
        bool, typer.Option("--parquet/--no-parquet", help="Compare the Parquet copies too.")
    ] = True,
    output_format: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Verify the whole archive from its objects and the public key alone (no data directory):
    every object, leaf, root, signature, consistency proof, seq and (on S3) lock. Exit 0 if
    intact, 1 naming each failure."""
    from trailguard.archive.verify import LockPolicy, verify_archive
    from trailguard.ledger.keys import SigningKeyError, load_verifier

    if output_format not in ("text", "json"):
        fail("--format must be text or json")
    try:
        verifier = load_verifier(key)
    except SigningKeyError as exc:
        fail(str(exc))
    expected = None
    if retention is not None or retention_days is not None:
        expected = _retention(retention, retention_days, lock_mode or "COMPLIANCE")
    if lock_mode is not None and lock_mode.upper() not in ("COMPLIANCE", "GOVERNANCE"):
        fail(f"--lock-mode must be COMPLIANCE or GOVERNANCE, got {lock_mode!r}")
    trusted = None
    if trusted_checkpoint is not None:
        try:
            trusted = trusted_checkpoint.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {trusted_checkpoint}: {exc}")
    target = _archive(archive)
    policy = LockPolicy(expected, lock_mode.upper() if lock_mode else None)
    try:
        with _progress("verifying") as bar:
            task = bar.add_task("verify", total=None)
            report = verify_archive(
                target,
                verifier,
                lock_policy=policy,
                trusted_checkpoint=trusted,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                check_parquet=parquet,
            )
    except TrailguardError as exc:
        fail(f"cannot read {archive}: {exc}", 1)
    if output_format == "json":
        sys.stdout.write(
            json.dumps(
                {
                    "intact": report.intact,
                    "segments": report.segments,
                    "events": report.events,
                    "treeSize": report.tree_size,
                    "checkpointsInEvents": report.checkpoints_in_events,
                    "checkpointObjects": report.checkpoint_objects,
                    "latestCheckpointSize": report.latest_checkpoint.tree_size
                    if report.latest_checkpoint
                    else None,
                    "objects": report.objects,
                    "lockedObjects": report.locked_objects,
                    "legalHolds": report.legal_holds,
                    "findings": [
                        {
                            "severity": f.severity,
                            "where": f.where,
                            "problem": f.problem,
                            "expected": f.expected,
                            "found": f.found,
                        }
                        for f in report.findings
                    ],
                },
                indent=2,
            )
            + "\n"
        )
    else:
        out.print(f"key       {verifier.name}+{verifier.key_id.hex()}")
        out.print(f"segments  {report.segments}, events seq 0..{report.tree_size - 1}")
        out.print(
            f"objects   {report.objects} ({report.locked_objects} locked, "
            f"{report.legal_holds} under legal hold)"
        )
        latest = report.latest_checkpoint
        out.print(
            f"checkpoints {report.checkpoints_in_events} in the events, "
            f"{report.checkpoint_objects} exported"
            + (f", latest covers {latest.tree_size}" if latest else "")
        )
        shown = 0
        for finding in report.findings:
            if finding.severity == "failure" and shown >= 200:
                continue
            shown += finding.severity == "failure"
            colour = "red" if finding.severity == "failure" else "yellow"
            out.print(f"[{colour}]{finding.severity.upper()}[/] {finding}")
        if report.intact:
            out.print(
                f"[bold green]INTACT[/]: {report.events} events in {report.segments} segment(s) "
                f"verified against {verifier.name}+{verifier.key_id.hex()}"
            )
        else:
            out.print(f"[bold red]NOT INTACT[/]: {len(report.failures)} failure(s)")
    raise typer.Exit(0 if report.intact else 1)


# -- find -----------------------------------------------------------------------------------------


@archive_app.command("find")
def find(
    archive: ArchiveOption,
    session: Annotated[str | None, typer.Option("--session", help="A session id.")] = None,
    developer: DeveloperOption = None,
    project: ProjectOption = None,
    date: Annotated[str | None, typer.Option("--date", help="One UTC day, YYYY-MM-DD.")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Which archived segments hold a session, developer, project or date, from the archive's
    indexes alone (no segment is fetched)."""
    from rich.table import Table

    from trailguard.archive.index import find as find_in_index
    from trailguard.retrieval import QueryError, day_bounds

    if output_format not in ("table", "json"):
        fail("--format must be table or json")
    if date is not None:
        try:
            day_bounds(date)
        except QueryError as exc:
            fail(str(exc))
    target = _archive(archive)
    try:
        hits = find_in_index(
            target, session=session, developer=developer, project=project, day=date
        )
    except TrailguardError as exc:
        fail(str(exc), 2 if exc.http_status < 500 else 1)
    if output_format == "json":
        sys.stdout.write(json.dumps([hit.to_json() for hit in hits], indent=2) + "\n")
        return
    table = Table("segment", "first seq", "last seq", "events", "object")
    for hit in hits:
        table.add_row(
            f"{hit.first_seq}..{hit.tree_size - 1}",
            str(hit.matched_first),
            str(hit.matched_last),
            str(hit.count),
            cell(hit.events_key),
        )
    out.print(table)
    out.print(f"{len(hits)} segment(s), {sum(hit.count for hit in hits)} event(s)")


# -- prune ----------------------------------------------------------------------------------------


@archive_app.command("prune")
def prune(
    archive: ArchiveOption,
    data_dir: DataDir = None,
    hot_days: HotDaysOption = 90,
    key: KeyOption = None,
    lock_mode: Annotated[
        str | None,
        typer.Option("--lock-mode", help="Require this lock mode [default: each manifest's]."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check, but remove nothing.")] = False,
    allow_not_write_once: Annotated[
        bool,
        typer.Option(
            "--allow-not-write-once", help="Prune after archiving to a file:// directory."
        ),
    ] = False,
) -> None:
    """Remove events older than --hot-days from the hot store, only after reading their
    segments back from the archive and verifying them. Needs the gateway stopped (it prunes
    on its own schedule when it runs with --archive)."""
    from trailguard.archive.prune import prune_hot_store
    from trailguard.archive.seal import ArchiveIntegrityError
    from trailguard.archive.verify import LockPolicy
    from trailguard.ledger.writer import LedgerError, WriterLock
    from trailguard.store.base import StoreError
    from trailguard.store.sqlite import SQLiteStore

    if hot_days < 0:
        fail("--hot-days must be 0 or more")
    if lock_mode is not None and lock_mode.upper() not in ("COMPLIANCE", "GOVERNANCE"):
        fail(f"--lock-mode must be COMPLIANCE or GOVERNANCE, got {lock_mode!r}")
    target = _archive(archive)
    directory = resolve_data_dir(data_dir)
    open_read_only(directory).close()  # a clear error for a wrong --data-dir
    lock = WriterLock(directory)
    try:
        lock.acquire()
    except LedgerError as exc:
        fail(
            f"{exc}. A gateway started with --archive prunes on its own schedule; to prune "
            "now, stop it first"
        )
    try:
        store = SQLiteStore.in_data_dir(directory)
        try:
            verifier, _ = verifier_for(store, directory, key)
            result = prune_hot_store(
                store,
                target,
                verifier,
                hot_days=hot_days,
                lock_policy=LockPolicy(mode=lock_mode.upper() if lock_mode else None),
                allow_not_write_once=allow_not_write_once,
                dry_run=dry_run,
            )
        finally:
            store.close()
    except ArchiveIntegrityError as exc:
        _alert(directory, "archive_prune_refused", "critical", f"prune refused: {exc}")
        fail(f"nothing was pruned: {exc}", 1)
    except (TrailguardError, StoreError) as exc:
        fail(f"nothing was pruned: {exc}", 2 if exc.http_status < 500 else 1)
    finally:
        lock.release()
    plan = result.plan
    if plan.boundary <= plan.pruned_before:
        out.print(plan.reason)
        return
    if dry_run:
        out.print(
            f"would remove seq {plan.pruned_before}..{plan.boundary - 1} "
            f"({result.verified_events} events, each verified in the archive); nothing removed"
        )
        return
    _alert(
        directory,
        "hot_events_pruned",
        "info",
        f"events seq {plan.pruned_before}..{plan.boundary - 1} were removed from the hot store "
        f"after their segments in {archive} were read back and verified",
        archive=archive,
        prunedFrom=plan.pruned_before,
        prunedBefore=plan.boundary,
        removed=result.removed,
    )
    out.print(
        f"removed seq {plan.pruned_before}..{plan.boundary - 1} ({result.removed} events) from "
        f"the hot store, each verified in {archive} first"
    )


# -- hold -----------------------------------------------------------------------------------------


@archive_app.command("hold")
def hold(
    archive: ArchiveOption,
    session: Annotated[str, typer.Option("--session", help="The session to hold.")],
    release: Annotated[bool, typer.Option("--release", help="Lift the hold instead.")] = False,
) -> None:
    """Put a legal hold on every archived object holding a session's events (incident
    response): they cannot be deleted, whatever their retention, until it is released."""
    from trailguard.archive import layout
    from trailguard.archive.index import find as find_in_index

    target = _archive(archive)
    try:
        hits = find_in_index(target, session=session)
        if not hits:
            fail(f"no archived segment holds session {session!r}", 1)
        count = 0
        for hit in hits:
            manifest_key = layout.manifest_key(hit.first_seq, hit.tree_size)
            from trailguard.archive.layout import Manifest

            manifest = Manifest.from_bytes(target.get(manifest_key).data)
            keys = [manifest_key] + [e.key for e in manifest.files if e.role != "tile"]
            for key in keys:
                target.set_legal_hold(key, not release)
                count += 1
    except TrailguardError as exc:
        fail(str(exc), 2 if exc.http_status < 500 else 1)
    verb = "released the legal hold on" if release else "put a legal hold on"
    out.print(f"{verb} {count} object(s) of {len(hits)} segment(s) holding session {session}")


# -- checkpoint -----------------------------------------------------------------------------------


@archive_app.command("checkpoint")
def checkpoint(
    archive: ArchiveOption,
    key: Annotated[str, typer.Option("--key", help="The log's verifier key, or a file of it.")],
) -> None:
    """Print the newest signed checkpoint exported to the archive (its signature checked):
    a trusted checkpoint for `trailguard verify` that the ledger's host does not control."""
    from trailguard.archive.seal import latest_exported_checkpoint
    from trailguard.ledger.keys import SigningKeyError, load_verifier

    try:
        verifier = load_verifier(key)
    except SigningKeyError as exc:
        fail(str(exc))
    try:
        signed = latest_exported_checkpoint(_archive(archive), verifier)
    except TrailguardError as exc:
        fail(str(exc), 1)
    sys.stdout.write(signed.note)
