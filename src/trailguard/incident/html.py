"""The incident report as one self-contained HTML file: inline styles, no script, no external
font, image or stylesheet, and a Content-Security-Policy that forbids loading any. Every value
is escaped by Jinja2's autoescaping: agents write tool inputs and outputs, and a report is read
by the people investigating them."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import (
    BytecodeCache,
    Environment,
    FileSystemBytecodeCache,
    PackageLoader,
    StrictUndefined,
)

from trailguard.incident.report import IncidentReport

SESSION_COLOURS = (
    "#2f6fde", "#d9480f", "#2b8a3e", "#ae3ec9", "#e8590c", "#1098ad", "#c2255c", "#5f3dc4",
    "#5c940d", "#495057",
)  # fmt: skip
"""One colour per session (cycled), chosen to stay apart when printed."""


def colour(number: int) -> str:
    """The session's stripe colour; session 0 (no session) has none."""
    return "transparent" if number <= 0 else SESSION_COLOURS[(number - 1) % len(SESSION_COLOURS)]


def short(session_id: str) -> str:
    """A session id short enough for the timeline column (the full id is in the summary)."""
    return session_id if len(session_id) <= 14 else session_id[:13] + "…"


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


def _bytecode_cache() -> BytecodeCache | None:
    """The compiled report template kept between runs, in the user's own cache directory
    (``$XDG_CACHE_HOME/trailguard/templates``, mode 0700): compiling it costs a `trailguard
    report` process 0.1-0.3 s, more than rendering a small report. Jinja2 checks each cached
    entry against the template's source, so an edited template is recompiled. None (no cache)
    where the directory cannot be made or written, or belongs to someone else."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    directory = Path(base) / "trailguard" / "templates"
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = directory.stat()
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o022 or not os.access(directory, os.W_OK):
        return None  # compiled code someone else could write would run as this user
    return FileSystemBytecodeCache(str(directory))


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("trailguard.incident", "templates"),
        bytecode_cache=_bytecode_cache(),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=False,
    )
    environment.filters["tojson_pretty"] = _pretty
    environment.globals.update(colour=colour, short=short)
    return environment


def render_html(report: IncidentReport) -> str:
    return _environment().get_template("report.html.j2").render(report=report, header=report.header)
