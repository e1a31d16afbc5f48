"""The console's templates: one Jinja2 environment (autoescaping everything) and the filters
the templates use to show agent-controlled text. Importable without FastAPI: the page renderer
process builds pages with it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from urllib.parse import quote, urlencode

from jinja2 import ChainableUndefined, Environment, PackageLoader, select_autoescape

from trailguard import __version__
from trailguard.console import charts, views
from trailguard.events import parse_timestamp

__all__ = ["environment", "session_href"]


def session_href(session_id: str) -> str:
    """The console URL of a session's page, for any id an agent may have chosen: ``/`` and
    ``?`` are escaped, and ids a browser would resolve as path segments (``.``, ``..``) use
    the query form."""
    if session_id in (".", "..") or not session_id:
        return "/ui/session?" + urlencode({"id": session_id})
    return "/ui/sessions/" + quote(session_id, safe="")


def _when(timestamp: object) -> str:
    if not isinstance(timestamp, str) or len(timestamp) < 19:
        return ""
    return f"{timestamp[:10]} {timestamp[11:23]}"


def _ago(timestamp: object) -> str:
    if not isinstance(timestamp, str):
        return ""
    try:
        moment = parse_timestamp(timestamp)
    except ValueError:
        return ""
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _pairs(pairs: list[tuple[str, str]]) -> str:
    return urlencode(pairs)


def _json(value: object) -> str:
    return views.shown(json.dumps(value, ensure_ascii=False, sort_keys=True))


@cache
def environment() -> Environment:
    """The console's template environment (one per process; templates are never reloaded)."""
    environment = Environment(
        loader=PackageLoader("trailguard.console", "templates"),
        autoescape=select_autoescape(["html", "svg"], default_for_string=True, default=True),
        undefined=ChainableUndefined,  # event documents omit absent fields
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    environment.filters.update(
        usd=charts.usd,
        shown=views.shown,
        when=_when,
        ago=_ago,
        qs=_pairs,
        compact_json=_json,
        input_text=views.input_text,
        output_text=views.output_text,
    )
    environment.globals.update(session_href=session_href, version=__version__)
    return environment
