"""Commands on the ledger itself: info, verify, checkpoint, proof, verify-proof, ingest."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from trailguard import __version__
from trailguard.cli._common import (
    DataDir,
    KeyOption,
    StoreOption,
    app,
    err,
    fail,
    open_read_only,
    opener_of,
    out,
    resolve_data_dir,
    resolve_location,
    verifier_for,
)

# -- info -----------------------------------------------------------------------------------------


@app.command()
def info(data_dir: DataDir = None, store_url: StoreOption = None) -> None:
    """Show the ledger's location, size, latest checkpoint and signing key."""
    from trailguard.events import EventType
    from trailguard.ledger.keys import SIGNING_KEY_FILE
    from trailguard.ledger.note import Verifier

    location = resolve_location(data_dir, store_url)
    shared = hasattr(location, "url")
    store = open_read_only(location)
    try:
        pinned = store.get_meta("verifier_key")
        verifier = Verifier.from_string(pinned) if pinned else None
        last = store.last_row_of_type(EventType.CHECKPOINT.value)
        size = store.tree_size()
        rows: list[tuple[str, str]] = [
            ("shared store" if shared else "data directory", location.description),
            ("log origin", str(store.get_meta("origin"))),
            ("events", str(size)),
            (
                "latest checkpoint",
                f"seq {last.seq}, covering the {last.seq} events before it" if last else "none yet",
            ),
            (
                "sequencer runs" if shared else "writer running",
                "yes" if location.writer_running() else "no",
            ),
        ]
        if verifier is not None:
            rows += [
                ("key name", verifier.name),
                ("key fingerprint", verifier.key_id.hex()),
                ("verifier key", verifier.to_string()),
            ]
        key_file = Path(location.description) / SIGNING_KEY_FILE
        if not shared and key_file.exists():
            mode = key_file.stat().st_mode & 0o777
            rows.append(("signing key file", f"{key_file}, mode {mode:04o}"))
        width = max(len(label) for label, _ in rows)
        out.print(f"trailguard {__version__}")
        for label, value in rows:
            out.print(f"{label:<{width}}  {value}")
    finally:
        store.close()


# -- verify ---------------------------------------------------------------------------------------


@app.command()
def verify(
    data_dir: DataDir = None,
    store_url: StoreOption = None,
    trusted_checkpoint: Annotated[
        str | None,
        typer.Option(
            help="A signed checkpoint kept off this host: a file from `trailguard checkpoint`, "
            "one as a SIEM sink received it (a syslog line, a JSON or OCSF event), or an "
            "archive URL (s3://..., file://...) to take the newest one exported there."
        ),
    ] = None,
    key: KeyOption = None,
    workers: Annotated[int | None, typer.Option(help="Processes to use [default: CPUs].")] = None,
    output_format: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Recompute and check every leaf, checkpoint root, signature and seq. Exit 0 if intact."""
    from trailguard.ledger.verify import Finding, verify_ledger

    if output_format not in ("text", "json"):
        fail("--format must be text or json")
    location = resolve_location(data_dir, store_url)
    directory = location.description
    store = open_read_only(location)
    trusted_text = None
    verifier, key_origin = verifier_for(store, directory, key)
    if trusted_checkpoint is not None and trusted_checkpoint.startswith(("s3://", "file://")):
        from trailguard.archive.backends import open_archive
        from trailguard.archive.seal import latest_exported_checkpoint
        from trailguard.errors import TrailguardError

        try:
            trusted_text = latest_exported_checkpoint(
                open_archive(trusted_checkpoint), verifier
            ).note
        except TrailguardError as exc:
            fail(f"no trusted checkpoint from {trusted_checkpoint}: {exc}")
    elif trusted_checkpoint is not None:
        from trailguard.ledger.checkpoint import CheckpointError, read_unverified
        from trailguard.siem.checkpoint_copy import find_checkpoint

        try:
            trusted_text = Path(trusted_checkpoint).read_text(encoding="utf-8")
            try:
                read_unverified(trusted_text)
            except CheckpointError:  # as a SIEM received it: a syslog line, JSON, OCSF...
                trusted_text = find_checkpoint(trusted_text).note
        except (OSError, UnicodeDecodeError, CheckpointError) as exc:
            fail(f"{trusted_checkpoint} is not a readable signed checkpoint: {exc}")
    writer_running = location.writer_running()
    opener = opener_of(location)
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
    findings = list(report.findings)
    if (
        report.archived
        and trusted_checkpoint is not None
        and trusted_checkpoint.startswith(("s3://", "file://"))
    ):
        from trailguard.archive.backends import open_archive
        from trailguard.archive.prune import check_pruned_range

        for problem in check_pruned_range(store, open_archive(trusted_checkpoint), verifier):
            report.findings.append(Finding("failure", f"seq 0..{report.archived - 1}", problem))
            findings.append(report.findings[-1])
    store.close()
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
                    "signedHeadSize": report.signed_head_size,
                    "quarantined": report.quarantined,
                    "archived": report.archived,
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
        out.print(
            f"events    {report.events}"
            + (f" (seq 0..{report.archived - 1} archived, pruned here)" if report.archived else "")
        )
        out.print(
            f"checkpoints {report.checkpoints}, latest covers {report.latest_checkpoint_size}"
        )
        if report.signed_head_size is not None:
            out.print(f"signed head covers {report.signed_head_size}")
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
def checkpoint(
    data_dir: DataDir = None, store_url: StoreOption = None, key: KeyOption = None
) -> None:
    """Print the latest signed checkpoint, after checking its signature and root. Keep a copy
    off this host: with it, `verify --trusted-checkpoint` detects truncation and rewrites."""
    from trailguard.ledger.proof import ProofBundleError, latest_checkpoint_note

    location = resolve_location(data_dir, store_url)
    directory = location.description
    store = open_read_only(location)
    try:
        verifier, _ = verifier_for(store, directory, key)
        sys.stdout.write(latest_checkpoint_note(store, verifier))
    except ProofBundleError as exc:
        fail(str(exc), 1)
    finally:
        store.close()


@app.command()
def proof(
    event: Annotated[
        str | None, typer.Option("--event", help="The eventId to prove (inclusion proof).")
    ] = None,
    consistency: Annotated[
        bool,
        typer.Option(
            "--consistency", help="Prove instead that the log of --from events only grew."
        ),
    ] = False,
    from_size: Annotated[
        int | None,
        typer.Option("--from", help="With --consistency: the tree size of the old checkpoint."),
    ] = None,
    to_size: Annotated[
        int | None,
        typer.Option(
            "--to", help="With --consistency: a signed checkpoint's size [default: the latest]."
        ),
    ] = None,
    data_dir: DataDir = None,
    store_url: StoreOption = None,
    key: KeyOption = None,
) -> None:
    """Print an inclusion proof of one event, or (--consistency --from SIZE) a consistency
    proof from an older tree size, against a signed checkpoint (JSON)."""
    from trailguard.ledger.proof import (
        ProofBundleError,
        build_consistency_proof,
        build_inclusion_proof,
    )

    if consistency == (event is not None):
        fail("give either --event ID (inclusion) or --consistency --from SIZE")
    if consistency and from_size is None:
        fail("--consistency needs --from SIZE: the tree size of the checkpoint you hold")
    if not consistency and (from_size is not None or to_size is not None):
        fail("--from and --to go with --consistency")
    location = resolve_location(data_dir, store_url)
    directory = location.description
    store = open_read_only(location)
    try:
        verifier, _ = verifier_for(store, directory, key)
        if consistency:
            assert from_size is not None
            bundle = build_consistency_proof(store, verifier, from_size, to_size)
        else:
            assert event is not None
            bundle = build_inclusion_proof(store, event, verifier)
    except ProofBundleError as exc:
        fail(str(exc), 1)
    finally:
        store.close()
    sys.stdout.write(json.dumps(bundle, indent=2) + "\n")


@app.command("verify-proof")
def verify_proof(
    proof_file: Annotated[Path, typer.Argument(help="A proof bundle from `trailguard proof`.")],
    key: Annotated[str, typer.Option("--key", help="The log's verifier key, or a file of it.")],
    trusted_checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="For a consistency proof: the old checkpoint you hold (its root is then "
            "taken from it, not from the proof)."
        ),
    ] = None,
) -> None:
    """Check an inclusion or consistency proof offline, with only the log's public key."""
    from trailguard.ledger.keys import SigningKeyError, load_verifier
    from trailguard.ledger.proof import (
        CONSISTENCY_FORMAT,
        ProofBundleError,
        verify_consistency_bundle,
        verify_inclusion_bundle,
    )

    try:
        verifier = load_verifier(key)
    except SigningKeyError as exc:
        fail(str(exc))
    try:
        bundle = json.loads(proof_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"cannot read proof {proof_file}: {exc}")
    trusted_text = None
    if trusted_checkpoint is not None:
        try:
            trusted_text = trusted_checkpoint.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {trusted_checkpoint}: {exc}")
    signer = f"{verifier.name}+{verifier.key_id.hex()}"
    try:
        if isinstance(bundle, dict) and bundle.get("format") == CONSISTENCY_FORMAT:
            checked = verify_consistency_bundle(bundle, verifier, trusted_text)
            old = (
                "the trusted checkpoint's root"
                if checked.trusted
                else "the root the proof states (pass --trusted-checkpoint to check it against "
                "the checkpoint you hold)"
            )
            out.print(
                f"[bold green]VALID[/]: the log of {checked.first} events ({old}) is a prefix "
                f"of {checked.checkpoint.origin} at tree size {checked.checkpoint.tree_size}, "
                f"signed by {signer}"
            )
            return
        if trusted_text is not None:
            fail("--trusted-checkpoint goes with a consistency proof")
        verified = verify_inclusion_bundle(bundle, verifier)
    except ProofBundleError as exc:
        out.print(f"[bold red]INVALID[/]: {escape(str(exc))}")
        raise typer.Exit(1) from None
    event = verified.event
    out.print(
        f"[bold green]VALID[/]: event {event.get('eventId')} ({event.get('eventType')}, "
        f"{event.get('timestamp')}) is entry {verified.leaf_index} of "
        f"{verified.checkpoint.origin} at tree size {verified.checkpoint.tree_size}, signed by "
        f"{signer}"
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
        fail(f"{file} is not a readable file")
    try:
        ledger = Ledger.open(resolve_data_dir(data_dir), run_reason="ingest")
    except (LedgerError, OSError, ValueError) as exc:
        fail(str(exc))
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
        fail(f"import stopped: {exc}; events acknowledged before this are stored", 1)
    finally:
        ledger.close(reason="ingest finished")
    for problem in result.problems:
        err.print(f"[yellow]skipped[/] {file}:{problem}")
    out.print(
        f"{result.appended} event(s) appended, {result.already_recorded} already recorded, "
        f"{len(result.problems)} line(s) skipped, from {file}"
    )
    raise typer.Exit(1 if result.problems else 0)
