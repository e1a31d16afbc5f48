"""``trailguard secrets``: the redaction rules against the stored record and against text."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from trailguard.cli._common import (
    CommandGroup,
    DataDir,
    SinceOption,
    UntilOption,
    app,
    cell,
    fail,
    open_read_only,
    out,
    record_read,
    resolve_data_dir,
)

secrets_app = typer.Typer(
    cls=CommandGroup,
    help="Redaction rules: scan the stored record with today's rules, check text, update the "
    "token formats.",
    no_args_is_help=True,
)
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("scan")
def scan(
    data_dir: DataDir = None,
    since: SinceOption = None,
    until: UntilOption = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Run the current redaction rules over stored events and list every event holding
    something they now catch (by field and rule, never the text). Exit 1 when any does.
    Nothing can be rewritten: rotate what is listed."""
    from trailguard.redact.scan import scan_documents
    from trailguard.retrieval import EventQuery, QueryError, query_events

    if output_format not in ("table", "json"):
        fail("--format must be table or json")
    try:
        event_query = EventQuery.build(since=since, until=until)
    except QueryError as exc:
        fail(str(exc))
    directory = resolve_data_dir(data_dir)
    store = open_read_only(directory)
    try:
        found = list(scan_documents(query_events(store, event_query)))
    finally:
        store.close()
    record_read(directory, "secrets_scan", {"since": since, "until": until}, len(found))
    if output_format == "json":
        sys.stdout.write(json.dumps([asdict(f) for f in found], indent=2) + "\n")
    else:
        from rich.table import Table

        table = Table("seq", "time", "type", "session", "fields", "rules", box=None)
        for f in found:
            table.add_row(
                str(f.seq),
                f.timestamp,
                f.event_type,
                cell(f.session_id or ""),
                cell(", ".join(f.fields)),
                cell(", ".join(f.rules)),
            )
        if found:
            out.print(table)
        out.print(
            f"{len(found)} stored event(s) hold something the current rules redact"
            + (": rotate those secrets (the ledger cannot be rewritten)" if found else "")
        )
    if found:
        raise typer.Exit(1)


@secrets_app.command("check")
def check(
    file: Annotated[
        Path | None, typer.Argument(help="A file to check; standard input when omitted.")
    ] = None,
) -> None:
    """Print text as trailguard would store it, and the rules that fired. Exit 1 when any did."""
    from trailguard.redact import Redactor

    if file is None:
        text = sys.stdin.read()
    else:
        try:
            text = file.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror or exc}")
    redacted, findings = Redactor(b"trailguard-secrets-check").redact_text(text)
    sys.stdout.write(redacted if redacted.endswith("\n") or not redacted else redacted + "\n")
    rules = sorted({f.kind for f in findings})
    summary = f"{len(findings)} secret(s) redacted" + (f": {', '.join(rules)}" if rules else "")
    sys.stderr.write(summary + "\n")
    if findings:
        raise typer.Exit(1)


@secrets_app.command("update-rules")
def update_rules(
    toml: Annotated[Path, typer.Argument(help="A gitleaks configuration (config/gitleaks.toml).")],
    version: Annotated[
        str, typer.Option("--version", help="Its gitleaks version or commit, recorded with it.")
    ],
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write [default: $TRAILGUARD_SECRET_RULES, else "
            "~/.config/trailguard/secret-rules.json].",
        ),
    ] = None,
) -> None:
    """Convert a gitleaks rule set (gitleaks.toml) into the token formats trailguard uses."""
    from trailguard.redact.update import RuleSetError, rules_file, write

    if not toml.is_file():
        fail(f"{toml} is not a file: give the path of a gitleaks.toml")
    target = out_file or rules_file()
    try:
        converted = write(toml, version=version, out=target)
    except RuleSetError as exc:
        from rich.markup import escape

        fail(escape(f"{toml}: {exc}"))
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc} (use --out)")
    out.print(
        f"{len(converted.rules) - 1} rules written to {target}; skipped: "
        + (", ".join(f"{k} ({v})" for k, v in converted.skipped.items()) or "none")
    )
