"""``trailguard correlate``: bring downstream records (CloudTrail, application logs) into the
trail, joined to the session and tool call that caused them.

Without a running gateway the command appends to the ledger itself (like ``ingest``); while one
runs on the data directory (or with ``--gateway``) it sends the files to the gateway's
``POST /v1/correlate/...`` with ``$TRAILGUARD_TOKEN``, which joins and records them.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from trailguard.cli._common import (
    CommandGroup,
    DataDir,
    SinceOption,
    UntilOption,
    app,
    cli_actor,
    err,
    fail,
    out,
    resolve_data_dir,
)
from trailguard.display import printable

Kind = Literal["cloudtrail", "jsonl"]

correlate_app = typer.Typer(
    cls=CommandGroup,
    help="Join CloudTrail records and application logs to sessions and their tool calls.",
    no_args_is_help=True,
)
app.add_typer(correlate_app, name="correlate")

MAX_REQUEST_BYTES = 16 * 1024 * 1024
"""Raw bytes of files sent per request to a gateway (base64 makes it a third more)."""

Paths = Annotated[
    list[str],
    typer.Argument(
        help="Files, directory trees (AWSLogs/<account>/CloudTrail/...), or s3://bucket/prefix.",
        show_default=False,
    ),
]
ClockSkew = Annotated[
    float,
    typer.Option(
        help="Seconds a record may fall outside a tool call's window and still be joined to it "
        "(CloudTrail times have whole seconds, from AWS's clock)."
    ),
]
Gateway = Annotated[
    str | None,
    typer.Option(
        help="Send the files to this gateway (with $TRAILGUARD_TOKEN) instead of writing the "
        "ledger here [default: $TRAILGUARD_URL or http://127.0.0.1:8787 when a gateway runs on "
        "the data directory]."
    ),
]
OutputFormat = Annotated[str, typer.Option("--format", help="text or json")]
S3Endpoint = Annotated[
    str | None,
    typer.Option(
        help="S3-compatible endpoint for s3:// paths [default: AWS, or $AWS_ENDPOINT_URL_S3]."
    ),
]
Profile = Annotated[str | None, typer.Option(help="AWS profile for s3:// paths.")]
Region = Annotated[str | None, typer.Option(help="AWS region for s3:// paths.")]


def _read_sources(
    paths: list[str], endpoint: str | None, profile: str | None, region: str | None
) -> tuple[list[Any], list[Any]]:
    """(digest files, log files) as RawFile, digests first; a source that names nothing
    fails the command before anything is recorded."""
    from trailguard.correlate.run import RawFile
    from trailguard.correlate.sources import S3Options, SourceError, expand_sources

    options = S3Options(endpoint_url=endpoint, profile=profile, region=region)
    digests: list[RawFile] = []
    logs: list[Any] = []
    try:
        for source in expand_sources(paths, options):
            if source.is_digest:
                signature = None
                if source.metadata is not None:
                    signature = source.metadata().get("signature")
                digests.append(RawFile(source.name, source.read(), True, signature))
            else:
                logs.append(source)
    except SourceError as exc:
        fail(str(exc))
    return digests, logs


def _batches(logs: list[Any]) -> Iterator[list[Any]]:
    """Log files read in batches of about MAX_REQUEST_BYTES (read lazily, one batch at a time)."""
    from trailguard.correlate.run import RawFile
    from trailguard.correlate.sources import SourceError

    batch: list[RawFile] = []
    size = 0
    for source in logs:
        try:
            raw = source.read()
        except SourceError as exc:
            fail(str(exc))
        if batch and size + len(raw) > MAX_REQUEST_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(RawFile(source.name, raw))
        size += len(raw)
    if batch:
        yield batch


def _time_bounds(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    from trailguard.retrieval import QueryError, parse_time

    try:
        return (
            parse_time(since, name="since") if since else None,
            parse_time(until, name="until") if until else None,
        )
    except QueryError as exc:
        fail(str(exc))


def _run(
    kind: Kind,
    paths: list[str],
    *,
    data_dir: Path | None,
    since: str | None,
    until: str | None,
    clock_skew: float,
    gateway: str | None,
    output_format: str,
    fields: Any = None,
    s3: tuple[str | None, str | None, str | None] = (None, None, None),
) -> None:
    from trailguard.ledger.writer import WriterLock

    if output_format not in ("text", "json"):
        fail("--format must be text or json")
    if not 0 <= clock_skew <= 600:
        fail("--clock-skew must be between 0 and 600 seconds")
    since_at, until_at = _time_bounds(since, until)
    directory = resolve_data_dir(data_dir)
    if gateway is None and WriterLock.is_held(directory):
        gateway = os.environ.get("TRAILGUARD_URL") or "http://127.0.0.1:8787"
    digests, logs = _read_sources(paths, *s3)
    if not logs:
        fail(f"no log files in {', '.join(paths)} (looked for .json, .json.gz, .jsonl)")
    if gateway is not None:
        report = _through_gateway(
            gateway, kind, digests, logs, since_at, until_at, clock_skew, fields
        )
    else:
        report = _into_ledger(
            directory, kind, digests, logs, since_at, until_at, clock_skew, fields
        )
    _print_report(kind, report, output_format)
    raise typer.Exit(1 if report["problems"] else 0)


def _into_ledger(
    directory: Path,
    kind: Kind,
    digests: list[Any],
    logs: list[Any],
    since: str | None,
    until: str | None,
    clock_skew: float,
    fields: Any,
) -> dict[str, Any]:
    from trailguard.correlate.digest import DigestSet, PinnedKeys, PublicKeyError
    from trailguard.correlate.importer import Correlator, ImportOptions, count_receipts
    from trailguard.correlate.run import correlate_files
    from trailguard.ledger.keys import redaction_key
    from trailguard.ledger.writer import EventRejectedError, Ledger, LedgerError
    from trailguard.redact import Redactor
    from trailguard.store.base import StoreError
    from trailguard.store.sqlite import SQLiteStore

    if not (directory / "ledger.sqlite3").exists():
        fail(f"{directory} holds no ledger (run `trailguard init` or `serve` first)")
    try:
        keys = PinnedKeys.load(directory)
    except PublicKeyError as exc:
        fail(str(exc))
    try:
        ledger = Ledger.open(directory, run_reason="correlate")
    except (LedgerError, OSError, ValueError) as exc:
        fail(str(exc))
    try:
        reader = SQLiteStore.in_data_dir(directory, read_only=True)
        correlator = Correlator(
            reader,
            Redactor(redaction_key(directory)),
            ImportOptions(
                imported_by=cli_actor(),
                skew=timedelta(seconds=clock_skew),
                since=since,
                until=until,
            ),
        )
        digest_set = DigestSet(keys)
        for batch in _batches(logs):
            events = correlate_files(
                correlator,
                [*digests, *batch],
                kind,
                fields=fields,
                digests=digest_set,
            )
            digests = []  # added once; the set keeps them for the later batches
            try:
                receipts = ledger.append_many(events)
            except EventRejectedError as exc:
                receipts = exc.receipts
                correlator.report.problems.append(f"rejected by the ledger: {exc}")
            count_receipts(correlator.report, receipts, events)
        reader.close()
    except (LedgerError, StoreError) as exc:
        fail(f"import stopped: {exc}; records acknowledged before this are stored", 1)
    finally:
        ledger.close(reason="correlate finished")
    result: dict[str, Any] = correlator.report.to_json()
    return result


def _through_gateway(
    url: str,
    kind: Kind,
    digests: list[Any],
    logs: list[Any],
    since: str | None,
    until: str | None,
    clock_skew: float,
    fields: Any,
) -> dict[str, Any]:
    import httpx

    token = os.environ.get("TRAILGUARD_TOKEN")
    if not token:
        fail(
            "a gateway runs on this data directory (or --gateway was given): set "
            "TRAILGUARD_TOKEN to an admin token (`trailguard token create --role admin`), or "
            "an agent token to import records of its own sessions"
        )

    def encoded(file: Any) -> dict[str, Any]:
        return {
            "name": file.name,
            "content": base64.b64encode(file.raw).decode("ascii"),
            "digest": file.digest,
            "signature": file.signature,
        }

    total: dict[str, Any] = {}
    endpoint = f"{url.rstrip('/')}/v1/correlate/{kind}"
    with httpx.Client(timeout=120) as client:
        for batch in _batches(logs):
            body: dict[str, Any] = {
                "files": [encoded(f) for f in [*digests, *batch]],
                "since": since,
                "until": until,
                "clockSkewSeconds": clock_skew,
            }
            if fields is not None:
                body["fields"] = {
                    "session": fields.session,
                    "time": fields.time,
                    "id": fields.id,
                    "name": fields.name,
                    "app": fields.app,
                }
            try:
                response = client.post(
                    endpoint, json=body, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.HTTPError as exc:
                fail(f"cannot reach the gateway at {url}: {exc}")
            if response.status_code != 200:
                try:
                    detail = response.json().get("detail")
                except ValueError:
                    detail = response.text[:300]
                fail(f"the gateway refused the import ({response.status_code}): {detail}")
            _add_reports(total, response.json())
    return total


def _add_reports(total: dict[str, Any], report: dict[str, Any]) -> None:
    for key, value in report.items():
        if isinstance(value, int):
            total[key] = total.get(key, 0) + value
        elif isinstance(value, dict):
            merged = total.setdefault(key, {})
            for name, count in value.items():
                merged[name] = merged.get(name, 0) + count
        elif isinstance(value, list):
            total.setdefault(key, []).extend(value)


def _print_report(kind: Kind, report: dict[str, Any], output_format: str) -> None:
    if output_format == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    for problem in report.get("problems", []):
        err.print("[yellow]skipped[/] ", printable(problem), sep="")
    label = "CloudTrail records" if kind == "cloudtrail" else "log entries"
    out.print(
        f"{report.get('files', 0)} file(s), {report.get('records', 0)} {label}: "
        f"{report.get('attributed', 0)} joined to sessions ({report.get('appended', 0)} new, "
        f"{report.get('alreadyRecorded', 0)} already recorded), "
        f"{report.get('unrelated', 0)} name no trailguard session, "
        f"{report.get('outsideRange', 0)} outside --since/--until"
    )
    matches = report.get("matches") or {}
    if matches:
        order = ["exact", "action", "related", "time", "none"]
        shown = ", ".join(f"{level} {matches[level]}" for level in order if matches.get(level))
        line = f"matched to tool calls: {shown}"
        if kind == "cloudtrail":
            line += f"; {report.get('unexplained', 0)} unexplained (alerted)"
        out.print(line)
    if kind == "cloudtrail":
        out.print(f"{report.get('verified', 0)} verified by a CloudTrail digest")
    if report.get("conflicts"):
        out.print(
            f"[red]{report['conflicts']} record id(s) claimed by two different records[/] "
            "(conflicting_record alerts)"
        )
    for title, key in (
        ("sessions not in this ledger", "unknownSessions"),
        ("sessions refused (not this token's)", "refusedSessions"),
    ):
        named = report.get(key) or {}
        if named:
            listed = ", ".join(f"{printable(s)} ({n})" for s, n in list(named.items())[:10])
            more = f" and {len(named) - 10} more" if len(named) > 10 else ""
            out.print(f"{title}: {listed}{more}")


@correlate_app.command("cloudtrail")
def correlate_cloudtrail(
    paths: Paths,
    data_dir: DataDir = None,
    since: SinceOption = None,
    until: UntilOption = None,
    clock_skew: ClockSkew = 2.0,
    gateway: Gateway = None,
    s3_endpoint_url: S3Endpoint = None,
    profile: Profile = None,
    region: Region = None,
    output_format: OutputFormat = "text",
) -> None:
    """Record every CloudTrail record whose userAgent carries app/trailguard-<session> as an
    event of that session, joined to the tool call that caused it. Importing twice records
    each once. Exit 1 when records or files were skipped."""
    _run(
        "cloudtrail",
        paths,
        data_dir=data_dir,
        since=since,
        until=until,
        clock_skew=clock_skew,
        gateway=gateway,
        output_format=output_format,
        s3=(s3_endpoint_url, profile, region),
    )


@correlate_app.command("jsonl")
def correlate_jsonl(
    paths: Paths,
    session_field: Annotated[
        str,
        typer.Option(
            help="Field holding the session id (dotted for nested: ctx.session_id); an "
            "application logs it from $TRAILGUARD_SESSION_ID.",
            show_default=False,
        ),
    ],
    time_field: Annotated[
        str | None,
        typer.Option(help="Field holding the entry's time [default: timestamp, time, ts, ...]."),
    ] = None,
    id_field: Annotated[
        str | None, typer.Option(help="Field holding the entry's own unique id, if any.")
    ] = None,
    name_field: Annotated[
        str | None, typer.Option(help="Field shown as the entry's name [default: event, msg].")
    ] = None,
    app_name: Annotated[
        str | None, typer.Option("--app", help="The application's name, recorded with each entry.")
    ] = None,
    data_dir: DataDir = None,
    since: SinceOption = None,
    until: UntilOption = None,
    clock_skew: ClockSkew = 2.0,
    gateway: Gateway = None,
    output_format: OutputFormat = "text",
) -> None:
    """Record every entry of a JSON-lines application log that names a session, joined to the
    tool call running at its time. Importing twice records each once."""
    from trailguard.correlate.importer import AppLogFields

    if not session_field.strip():
        fail("--session-field must name a field")
    _run(
        "jsonl",
        paths,
        data_dir=data_dir,
        since=since,
        until=until,
        clock_skew=clock_skew,
        gateway=gateway,
        output_format=output_format,
        fields=AppLogFields(session_field, time_field, id_field, name_field, app_name),
    )


@correlate_app.command("trust-keys")
def correlate_trust_keys(
    keys_file: Annotated[
        Path, typer.Argument(help="Output of `aws cloudtrail list-public-keys` (JSON).")
    ],
    data_dir: DataDir = None,
) -> None:
    """Pin the CloudTrail public keys that digests are checked against; records covered by a
    digest they verify are marked digest_verified. The change is recorded in the ledger."""
    from trailguard.correlate.digest import KEYS_FILE, PinnedKeys, PublicKeyError
    from trailguard.events import Alert
    from trailguard.ledger.keys import write_file_durably
    from trailguard.store.base import StoreError
    from trailguard.store.gateway_state import GatewayState

    directory = resolve_data_dir(data_dir)
    if not (directory / "ledger.sqlite3").exists():
        fail(f"{directory} holds no ledger (run `trailguard init` or `serve` first)")
    try:
        data = keys_file.read_bytes()
        keys = PinnedKeys.from_json(data, str(keys_file))
    except OSError as exc:
        fail(f"{keys_file}: cannot be read ({exc.strerror})")
    except PublicKeyError as exc:
        fail(str(exc))
    try:
        # Public keys, but who may change them matters: 0644, replacing the previous list.
        write_file_durably(directory / KEYS_FILE, data.decode(), mode=0o644, replace=True)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot write {directory / KEYS_FILE}: {exc}")
    fingerprints = sorted(keys.keys)
    event = Alert(
        alert_type="cloudtrail_keys_pinned",
        severity="info",
        message=f"{cli_actor()} pinned {len(fingerprints)} CloudTrail public key(s) for digest "
        "validation",
        details={"fingerprints": list[Any](fingerprints), "by": cli_actor()},
        source="cli",
    )
    try:
        state = GatewayState(directory)
        try:
            from trailguard.cli._common import record_from_cli

            record_from_cli(state, directory, [event])
        finally:
            state.close()
    except StoreError as exc:
        fail(f"keys written, but the change could not be recorded: {exc}", 1)
    out.print(f"pinned {len(fingerprints)} key(s) in {directory / KEYS_FILE}")


# -- the session timeline --------------------------------------------------------------------------


def describe_record(record: dict[str, Any]) -> str:
    """One line an auditor reads: when, what, on what, by whom, from where, and how sure."""
    when = record.get("recordTime") or "(no time)"
    if record.get("system") == "cloudtrail":
        what = f"CloudTrail {record.get('name')}"
        resources = record.get("resources") or []
        if resources:
            what += f" on {resources[0]}" + (
                f" (+{len(resources) - 1} more)" if len(resources) > 1 else ""
            )
        if record.get("principal"):
            what += f" by {record['principal']}"
        if record.get("sourceIp"):
            what += f" from {record['sourceIp']}"
        if record.get("errorCode"):
            what += f", failed: {record['errorCode']}"
        flags = [str(record.get("match")), str(record.get("authenticity"))]
    else:
        what = f"{record.get('service') or 'application'} {record.get('name') or 'log entry'}"
        flags = [str(record.get("match"))]
    return f"{when} {what} [{', '.join(flags)}]"


def _distinct(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[str]]:
    """One record per (recordId, content), the digest-verified copy preferred; and the ids
    claimed by records of different content (conflicts)."""
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    contents: dict[str, set[str]] = {}
    for record in records:
        key = (str(record.get("recordId")), str(record.get("recordSha256")))
        contents.setdefault(key[0], set()).add(key[1])
        if key not in chosen or record.get("authenticity") == "digest_verified":
            chosen[key] = record
    conflicts = {record_id for record_id, shas in contents.items() if len(shas) > 1}
    ordered = sorted(chosen.values(), key=lambda r: (r.get("recordTime") or "", r["eventId"]))
    return ordered, conflicts


def print_downstream(report: Any) -> None:
    """The downstream records of ``sessions show``, under the tool calls they belong to."""
    from trailguard.cli._common import cell
    from trailguard.cli.query import _input_of, _short

    records, conflicts = _distinct(report.downstream)
    trail = [r for r in records if r.get("system") == "cloudtrail"]
    verified = sum(r.get("authenticity") == "digest_verified" for r in trail)
    unexplained = sum(r.get("match") in ("time", "none") for r in trail)
    applications = len(records) - len(trail)
    summary = (
        f"{len(trail)} CloudTrail record(s) ({verified} verified by a digest), "
        f"{applications} application log entr{'y' if applications == 1 else 'ies'}; "
        f"{unexplained} unexplained"
    )
    out.print("downstream  ", cell(summary), sep="")
    calls = sorted(report.calls.items(), key=lambda item: item[1]["timestamp"])
    for tool_use_id, invocation in calls:
        text = f"{tool_use_id} {invocation.get('tool')} at {invocation['timestamp']}: "
        out.print("  ", cell(text + _short(_input_of(invocation), 160)), sep="")
        for record in records:
            if record.get("toolUseId") == tool_use_id:
                line = describe_record(record)
                if record.get("match") == "time":
                    line += " (not among the call's classified operations)"
                out.print("    -> ", cell(line), sep="")
    loose = [r for r in records if r.get("toolUseId") not in report.calls]
    if loose:
        out.print("  not joined to any tool call:")
        for record in loose:
            out.print(
                "    -> ", cell(f"{describe_record(record)}: {record.get('matchReason')}"), sep=""
            )
    for record_id in sorted(conflicts):
        out.print(
            "  [red]conflict[/]: ",
            cell(f"record id {record_id} is claimed by records of different content"),
            sep="",
        )
