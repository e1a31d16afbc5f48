"""The incident report as one self-contained HTML file: inline styles, no script, no external
font, image or stylesheet, and a Content-Security-Policy that forbids loading any. Every value
is escaped by Jinja2's autoescaping: agents write tool inputs and outputs, and a report is read
by the people investigating them."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

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


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("trailguard.incident", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=False,
    )
    environment.filters["tojson_pretty"] = _pretty
    environment.globals.update(colour=colour, short=short)
    return environment


def render_html(report: IncidentReport) -> str:
    return _environment().get_template("report.html.j2").render(report=report, header=report.header)
