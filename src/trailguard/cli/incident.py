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
    UntilOption,
    app,
    cli_actor,
    err,
    fail,
    open_read_only,
    record_read,
    resolve_data_dir,
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
           since: str | None, until: str | None) -> Any:  # fmt: skip
    from trailguard.incident.records import Scope, ScopeError
    from trailguard.retrieval import QueryError, parse_time

    try:
        return Scope(
            sessions=tuple(resolve_session_id(store, s) for s in sessions or ()),
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


def _write(output: Path | None, text: str) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")


@app.command()
def report(
    data_dir: DataDir = None,
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
) -> None:
    """A chronological incident report across sessions, each event verified against the latest
    signed checkpoint. Exit 1 if an event does not verify (the report says which)."""
    from trailguard.incident.report import build_report

    chosen = _report_format(output_format, output)
    directory = resolve_data_dir(data_dir)
    store = open_read_only(directory)
    try:
        scope = _scope(store, session, developer, project, since, until)
        verifier, key_source = verifier_for(store, directory, key)
        built = build_report(
            store,
            scope,
            verifier,
            key_source=key_source,
            key_pinned=key is not None,
            generated_by=cli_actor(),
        )
    finally:
        store.close()
    record_read(
        directory,
        "cli report",
        scope.to_json() | {"format": chosen, "output": str(output) if output else None},
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
