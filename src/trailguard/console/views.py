"""What each console page shows, read from the ledger and the gateway state with the same
functions the CLI uses (``retrieval``, ``cost.report``, ``GatewayState.sessions``).

Functions here are synchronous and run in worker threads, never on the event loop that answers
PreToolUse. They return plain data for the templates; nothing here builds HTML.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from trailguard.console import charts
from trailguard.cost.report import read_cost
from trailguard.display import printable
from trailguard.retrieval import (
    EventQuery,
    QueryError,
    SessionReport,
    SessionReportBuilder,
    parse_time,
    query_event_bodies,
    query_events,
    session_report,
)
from trailguard.store.base import EventFilter, Store
from trailguard.store.state import GatewayStateStore, SessionSummary

__all__ = [
    "END_REASONS",
    "EventPage",
    "SessionFilters",
    "SessionIndex",
    "SessionPage",
    "SessionView",
    "list_sessions",
    "newest_first",
    "session_view",
]

PER_PAGE: Final = 25
END_REASONS: Final = ("completed", "timed_out", "killed", "budget_exhausted")
STATES: Final = ("active", "ended", *END_REASONS, "never_started")
SORTS: Final = {
    "started": lambda s: s.started_at or s.last_event_at,
    "last": lambda s: s.last_event_at,
    "developer": lambda s: (s.developer_id or "", s.started_at or s.last_event_at),
    "project": lambda s: (s.project_id or "", s.started_at or s.last_event_at),
}
HAS: Final = ("denials", "gaps", "alerts")
MAX_TEXT: Final = 256


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    if len(value) > MAX_TEXT:
        raise QueryError(f"{name}: at most {MAX_TEXT} characters")
    return value


def _page(params: Mapping[str, str]) -> int:
    raw = params.get("page", "1").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise QueryError(f"page: a number from 1, got {raw[:20]!r}")
    return int(raw)


def _choice(params: Mapping[str, str], name: str, allowed: Iterable[str]) -> str | None:
    value = _text(params, name)
    options = tuple(allowed)
    if value is not None and value not in options:
        raise QueryError(f"{name}: one of {', '.join(options)}, got {value[:40]!r}")
    return value


# -- sessions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionFilters:
    developer: str | None = None
    project: str | None = None
    since: str | None = None
    until: str | None = None
    state: str | None = None
    has: tuple[str, ...] = ()
    sort: str = "started"
    order: str = "desc"
    page: int = 1

    @classmethod
    def parse(cls, params: Mapping[str, str], has: Iterable[str] = ()) -> SessionFilters:
        """From query parameters; QueryError names the one that cannot be used."""
        since, until = _text(params, "since"), _text(params, "until")
        if since:
            parse_time(since, name="since")
        if until:
            parse_time(until, name="until")
        wanted = tuple(dict.fromkeys(h for h in has if h))
        for item in wanted:
            if item not in HAS:
                raise QueryError(f"has: one of {', '.join(HAS)}, got {item[:40]!r}")
        return cls(
            developer=_text(params, "developer"),
            project=_text(params, "project"),
            since=since,
            until=until,
            state=_choice(params, "state", STATES),
            has=wanted,
            sort=_choice(params, "sort", SORTS) or "started",
            order=_choice(params, "order", ("asc", "desc")) or "desc",
            page=_page(params),
        )

    def as_query(self) -> dict[str, Any]:
        """What was asked, for the audit record (and the page's links)."""
        values: dict[str, Any] = {
            "developer": self.developer,
            "project": self.project,
            "since": self.since,
            "until": self.until,
            "state": self.state,
            "has": list(self.has) or None,
            "sort": self.sort,
            "order": self.order,
            "page": self.page,
        }
        return {key: value for key, value in values.items() if value is not None}

    def link_params(self, **changes: Any) -> list[tuple[str, str]]:
        """Query parameters for a link to this list with ``changes`` (e.g. another page)."""
        values = self.as_query() | changes
        pairs: list[tuple[str, str]] = []
        for key, value in values.items():
            if key == "has":
                pairs.extend(("has", item) for item in value or ())
            elif value is not None:
                pairs.append((key, str(value)))
        return pairs


@dataclass
class SessionRow:
    summary: SessionSummary
    report: SessionReport | None

    @property
    def alerts(self) -> int:
        return self.report.counts.get("alert", 0) if self.report else 0


@dataclass
class SessionPage:
    filters: SessionFilters
    rows: list[SessionRow]
    matched: int | None
    """How many sessions match (None when a gaps filter makes counting cost a full scan)."""
    has_next: bool
    fingerprint: str


def _candidates(state: GatewayStateStore, filters: SessionFilters) -> list[SessionSummary]:
    active = None
    if filters.state == "active":
        active = True
    elif filters.state is not None and filters.state != "never_started":
        active = False
    found = list(
        state.sessions(
            developer_id=filters.developer,
            project_id=filters.project,
            since=parse_time(filters.since, name="since") if filters.since else None,
            until=parse_time(filters.until, name="until") if filters.until else None,
            active=active,
        )
    )
    if filters.state in END_REASONS:
        found = [s for s in found if s.end_reason == filters.state]
    elif filters.state == "never_started":
        found = [s for s in found if s.never_started]
    found.sort(key=SORTS[filters.sort], reverse=filters.order == "desc")
    return found


def sessions_fingerprint(summaries: list[SessionSummary]) -> str:
    """Changes whenever a listed session gets an event, ends or appears."""
    digest = hashlib.sha256()
    for summary in summaries:
        digest.update(
            f"{summary.session_id}\0{summary.last_event_at}\0{summary.ended_at}\0".encode()
        )
    return digest.hexdigest()[:24]


class SessionIndex:
    """Every session's report, kept current by reading only the events appended since the last
    look (the first look reads the whole ledger once). Built with the same
    :class:`SessionReportBuilder` as ``trailguard sessions show``, so both say the same
    (without ``calls``: the list does not show them).

    Lives in the renderer process; one per data directory."""

    def __init__(self) -> None:
        self._builders: dict[str, SessionReportBuilder] = {}
        self._next_seq = 0
        self._lock = threading.Lock()

    def refresh(self, store: Store) -> None:
        with self._lock:
            if store.tree_size() < self._next_seq:  # the ledger was replaced: start again
                self._builders.clear()
                self._next_seq = 0
            for row in store.rows(self._next_seq):
                self._next_seq = row.seq + 1
                if row.session_id is None:
                    continue
                builder = self._builders.get(row.session_id)
                if builder is None:
                    builder = self._builders[row.session_id] = SessionReportBuilder(
                        row.session_id, keep_calls=False
                    )
                builder.add(orjson.loads(row.body))

    def report(self, session_id: str) -> SessionReport | None:
        with self._lock:
            builder = self._builders.get(session_id)
            return builder.report() if builder is not None else None


def _has(report: SessionReport | None, wanted: tuple[str, ...]) -> bool:
    if report is None:
        return not wanted
    return (
        ("denials" not in wanted or report.denials > 0)
        and ("gaps" not in wanted or not report.complete)
        and ("alerts" not in wanted or report.counts.get("alert", 0) > 0)
    )


def sessions_fingerprint_for(state: GatewayStateStore, filters: SessionFilters) -> str:
    return sessions_fingerprint(_candidates(state, filters))


def list_sessions(
    state: GatewayStateStore,
    store: Store,
    filters: SessionFilters,
    per_page: int = PER_PAGE,
    index: SessionIndex | None = None,
) -> SessionPage:
    """The page of sessions ``filters`` asks for — the CLI's ``sessions list`` — each with its
    report (denials, gaps, alerts, cost: ``sessions show``), from ``index`` when given."""
    candidates = _candidates(state, filters)
    fingerprint = sessions_fingerprint(candidates)
    if index is not None:
        index.refresh(store)

    def report_of(session_id: str) -> SessionReport | None:
        return index.report(session_id) if index else session_report(store, session_id)

    first = (filters.page - 1) * per_page
    if not filters.has:
        shown = candidates[first : first + per_page]
        rows = [SessionRow(s, report_of(s.session_id)) for s in shown]
        return SessionPage(
            filters, rows, len(candidates), first + per_page < len(candidates), fingerprint
        )
    matching = (
        SessionRow(summary, report)
        for summary in candidates
        if _has(report := report_of(summary.session_id), filters.has)
    )
    if index is not None:  # reports are cheap: count them all
        every = list(matching)
        return SessionPage(
            filters,
            every[first : first + per_page],
            len(every),
            first + per_page < len(every),
            fingerprint,
        )
    rows, has_next = [], False
    for number, row in enumerate(matching):
        if number < first:
            continue
        if len(rows) == per_page:
            has_next = True
            break
        rows.append(row)
    return SessionPage(filters, rows, None, has_next, fingerprint)


# -- one session ----------------------------------------------------------------------------------


@dataclass
class Entry:
    """One line of a session's timeline: an event, and for a tool call its result, its
    operations, its share of the model spend, and whether it is a gap."""

    event: dict[str, Any]
    anchor: str
    result: dict[str, Any] | None = None
    cost_usd: float | None = None
    gap: bool = False

    @property
    def kind(self) -> str:
        return str(self.event.get("eventType"))


@dataclass
class Subagent:
    agent_id: str
    agent_type: str | None
    anchor: str
    entries: list[Entry] = field(default_factory=list)


@dataclass
class SessionView:
    report: SessionReport
    summary: SessionSummary | None
    items: list[Entry | Subagent]
    """This page's part of the timeline."""
    cost: dict[str, Any]
    chart: charts.TimelineChart
    event_count: int
    last_seq: int
    start: dict[str, Any] | None
    page: int = 1
    pages: int = 1
    page_links: dict[int, str] = field(default_factory=dict)
    """Page number -> URL of that page of the timeline."""

    @property
    def fingerprint(self) -> str:
        return f"{self.event_count}-{self.last_seq}"


def _anchor(event: dict[str, Any]) -> str:
    return f"ev-{event.get('seq')}"


def _gap_ids(report: SessionReport) -> set[str]:
    return {gap.split(":", 1)[0] for gap in report.gaps}


def build_timeline(
    events: list[dict[str, Any]], report: SessionReport, per_call: dict[str, float]
) -> list[Entry | Subagent]:
    """Events in order, results folded into their invocation, linked ``infra_operation``
    events folded into the call that performed them, and a subagent's events nested under it
    (at its first event)."""
    gaps = _gap_ids(report)
    invocations: dict[str, Entry] = {}
    items: list[Entry | Subagent] = []
    subagents: dict[str, Subagent] = {}
    invoked = {e.get("toolUseId") for e in events if e.get("eventType") == "tool_invocation"}
    for event in events:
        kind = event.get("eventType")
        tool_use_id = event.get("toolUseId")
        if kind == "infra_operation" and tool_use_id in invoked:
            continue  # the same operation is listed under its tool call
        if kind == "tool_result" and tool_use_id in invocations:
            entry = invocations[tool_use_id]
            if entry.result is None:
                entry.result = event
                continue
        entry = Entry(event, _anchor(event))
        if kind == "tool_invocation" and tool_use_id:
            invocations[tool_use_id] = entry
            entry.cost_usd = per_call.get(tool_use_id)
            entry.gap = tool_use_id in gaps
        elif kind == "tool_result":
            entry.gap = True  # a result with no invocation before it
        agent_id = event.get("agentId")
        if isinstance(agent_id, str) and agent_id:
            group = subagents.get(agent_id)
            if group is None:
                payload = event.get("payload") or {}
                agent_type = payload.get("agent_type") if isinstance(payload, dict) else None
                group = Subagent(agent_id, agent_type, f"agent-{len(subagents) + 1}")
                subagents[agent_id] = group
                items.append(group)
            group.entries.append(entry)
        else:
            items.append(entry)
    return items


TIMELINE_PAGE: Final = 500
"""Timeline entries per page: a session of 10,000 events is 8 MB of HTML on one page."""


def session_view(
    store: Store,
    state: GatewayStateStore,
    session_id: str,
    *,
    page: int = 1,
    page_link: Callable[[int], str] = lambda number: f"?page={number}",
    per_page: int = TIMELINE_PAGE,
) -> SessionView | None:
    """Everything the session page shows, or None for a session with no events: the report
    (``sessions show``), the cost (``cost --session``), the picture of the whole session, and
    page ``page`` of its timeline."""
    report = session_report(store, session_id)
    if report is None:
        return None
    events = list(query_events(store, EventQuery.build(session=session_id)))
    cost = read_cost(store, session=session_id)
    per_call = {entry["toolUseId"]: entry["usd"] for entry in cost["perToolCall"]}
    items = build_timeline(events, report, per_call)
    pages = max(1, -(-len(items) // per_page))
    if page > pages:
        raise QueryError(f"page: this session's timeline has {pages} page(s), not {page}")
    links: dict[int, str] = {}
    for number, item in enumerate(items):
        on = number // per_page + 1
        for entry in item.entries if isinstance(item, Subagent) else [item]:
            fragment = "#" + entry.anchor
            links[entry.event["seq"]] = fragment if on == page else page_link(on) + fragment
    start = next((e for e in events if e.get("eventType") == "session_start"), None)
    return SessionView(
        report=report,
        summary=state.session(session_id),
        items=items[(page - 1) * per_page : page * per_page],
        cost=cost,
        chart=charts.timeline_chart(events, links, per_call),
        event_count=sum(report.counts.values()),
        last_seq=max((e["seq"] for e in events), default=-1),
        start=start,
        page=page,
        pages=pages,
        page_links={number: page_link(number) for number in range(1, pages + 1)},
    )


def session_fingerprint(store: Store, session_id: str) -> str:
    """Changes when the session gets an event (cheap: no event is decoded)."""
    count, last = 0, -1
    for row in store.query(EventFilter(session_id=session_id)):
        count += 1
        last = max(last, row.seq)
    return f"{count}-{last}"


def session_exists(store: Store, session_id: str) -> bool:
    return bool(list(store.query(EventFilter(session_id=session_id, limit=1))))


# -- lists of events across sessions --------------------------------------------------------------


@dataclass
class EventPage:
    events: list[dict[str, Any]]
    matched: int
    page: int
    per_page: int
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    """For infrastructure operations: the tool call that asked for each, by toolUseId."""

    @property
    def has_next(self) -> bool:
        return self.page * self.per_page < self.matched


def newest_first(
    documents: Iterator[dict[str, Any]], page: int, per_page: int = PER_PAGE
) -> EventPage:
    """Page ``page`` of ``documents`` (oldest first, as the ledger answers) in newest-first
    order, keeping only ``page * per_page`` documents in memory."""
    window: deque[dict[str, Any]] = deque(maxlen=page * per_page)
    matched = 0
    for document in documents:
        window.append(document)
        matched += 1
    newest = list(reversed(window))
    return EventPage(newest[(page - 1) * per_page :], matched, page, per_page)


@dataclass(frozen=True)
class ListFilters:
    """Filters of the cross-session lists (denials, infrastructure, alerts, access)."""

    values: dict[str, str]
    page: int

    @classmethod
    def parse(cls, params: Mapping[str, str], names: Iterable[str]) -> ListFilters:
        values = {name: value for name in names if (value := _text(params, name)) is not None}
        for name in ("since", "until"):
            if name in values:
                parse_time(values[name], name=name)
        return cls(values, _page(params))

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def as_query(self) -> dict[str, Any]:
        return {**self.values, "page": self.page}

    def link_params(self, **changes: Any) -> list[tuple[str, str]]:
        return [(k, str(v)) for k, v in (self.as_query() | changes).items() if v is not None]


def _contains(value: object, needle: str | None) -> bool:
    return needle is None or needle.lower() in str(value or "").lower()


def _base_query(filters: ListFilters, **extra: Any) -> EventQuery:
    return EventQuery.build(
        session=filters.get("session"),
        developer=filters.get("developer"),
        project=filters.get("project"),
        since=filters.get("since"),
        until=filters.get("until"),
        **extra,
    )


DENIAL_FILTERS: Final = ("decision", "rule", "action", "risk", "tool", *("developer", "project"))
TIME_FILTERS: Final = ("since", "until", "session")


def denials(store: Store, filters: ListFilters) -> EventPage:
    """Refused (or asked) tool calls, newest first: ``query --decision denied`` plus the
    rule, action and risk filters."""
    decision = filters.get("decision") or "denied"
    if decision not in ("denied", "ask"):
        raise QueryError(f"decision: denied or ask, got {decision[:20]!r}")
    risk = filters.get("risk")
    if risk is not None and risk not in charts.RISK_ORDER:
        raise QueryError(f"risk: one of {', '.join(charts.RISK_ORDER)}, got {risk[:20]!r}")

    def wanted(document: dict[str, Any]) -> bool:
        operations = document.get("operations") or []
        rule = filters.get("rule")
        return (
            (rule is None or document.get("policyRule") == rule)
            and (
                filters.get("action") is None
                or any(_contains(op.get("action"), filters.get("action")) for op in operations)
            )
            and (risk is None or any(op.get("risk") == risk for op in operations))
        )

    query = _base_query(filters, decision=decision, tool=filters.get("tool"))
    # The API's fast path: only the calls with this decision are decoded.
    found = (orjson.loads(body) for body in query_event_bodies(store, query))
    return newest_first((d for d in found if wanted(d)), filters.page)


INFRA_FILTERS: Final = ("action", "resource", "risk", "access", "kind", "developer", "project")


def infrastructure(store: Store, filters: ListFilters) -> EventPage:
    """``infra_operation`` events, newest first, each with the decision of the tool call that
    asked for it (when the ledger has that call)."""
    risk = filters.get("risk")
    if risk is not None and risk not in charts.RISK_ORDER:
        raise QueryError(f"risk: one of {', '.join(charts.RISK_ORDER)}, got {risk[:20]!r}")

    def wanted(document: dict[str, Any]) -> bool:
        operation = document.get("operation") or {}
        return (
            _contains(operation.get("action"), filters.get("action"))
            and _contains(operation.get("resource"), filters.get("resource"))
            and (risk is None or operation.get("risk") == risk)
            and (filters.get("access") is None or operation.get("access") == filters.get("access"))
            and (filters.get("kind") is None or operation.get("kind") == filters.get("kind"))
        )

    query = _base_query(filters, event_type="infra_operation")
    page = newest_first((d for d in query_events(store, query) if wanted(d)), filters.page)
    wanted_ids = {e["toolUseId"] for e in page.events if e.get("toolUseId")}
    for session_id in {e.get("sessionId") for e in page.events if e.get("toolUseId")}:
        if not session_id:
            continue
        calls = EventQuery.build(session=session_id, event_type="tool_invocation")
        for call in query_events(store, calls):
            if call.get("toolUseId") in wanted_ids:
                page.calls[call["toolUseId"]] = call
    return page


ALERT_FILTERS: Final = ("type", "severity", "developer", "project")
SEVERITIES: Final = ("info", "low", "medium", "high", "critical")


def alerts(store: Store, filters: ListFilters) -> EventPage:
    """Alerts and budget thresholds crossed, newest first; ``severity`` is a minimum."""
    severity = filters.get("severity")
    if severity is not None and severity not in SEVERITIES:
        raise QueryError(f"severity: one of {', '.join(SEVERITIES)}, got {severity[:20]!r}")
    least = SEVERITIES.index(severity) if severity else 0

    def wanted(document: dict[str, Any]) -> bool:
        return _contains(document.get("alertType"), filters.get("type")) and (
            SEVERITIES.index(document.get("severity", "info")) >= least
            if document.get("severity") in SEVERITIES
            else least == 0
        )

    query = _base_query(filters, event_type="alert")
    return newest_first((d for d in query_events(store, query) if wanted(d)), filters.page)


ACCESS_FILTERS: Final = ("developer", "action", "outcome", "actor")


def access_log(store: Store, filters: ListFilters) -> EventPage:
    """Every ``audit_access``: who read what (API, console, CLI), newest first."""

    def wanted(document: dict[str, Any]) -> bool:
        return (
            _contains(document.get("action"), filters.get("action"))
            and _contains(document.get("actor"), filters.get("actor"))
            and (
                filters.get("outcome") is None or document.get("outcome") == filters.get("outcome")
            )
        )

    query = EventQuery.build(
        developer=filters.get("developer"),
        since=filters.get("since"),
        until=filters.get("until"),
        event_type="audit_access",
    )
    return newest_first((d for d in query_events(store, query) if wanted(d)), filters.page)


def cost_view(store: Store, filters: ListFilters) -> dict[str, Any]:
    """``trailguard cost`` over the filters, with its charts and the thresholds crossed."""
    report = read_cost(
        store,
        developer=filters.get("developer"),
        project=filters.get("project"),
        since=filters.get("since"),
        until=filters.get("until"),
    )
    thresholds = list(query_events(store, _base_query(filters, event_type="budget_threshold")))
    per_model = [(model, row["usd"] or 0.0) for model, row in report["perModel"].items()]
    return {
        "report": report,
        "thresholds": thresholds[-200:][::-1],
        "per_day": charts.column_chart(
            list(report["perDay"].items())[-90:], title="Model spend per day (USD, UTC days)"
        ),
        "per_developer": charts.bar_list(
            list(report["perDeveloper"].items()),
            title="Model spend per developer (USD)",
            width=charts.HALF_WIDTH,
        ),
        "per_project": charts.bar_list(
            list(report["perProject"].items()),
            title="Model spend per project (USD)",
            width=charts.HALF_WIDTH,
        ),
        "per_model": charts.bar_list(per_model, title="Model spend per model (USD)"),
        "top_calls": sorted(report["perToolCall"], key=lambda e: -e["usd"])[:20],
    }


# -- text helpers for the templates ---------------------------------------------------------------


def shown(value: object) -> str:
    """Agent-controlled text as shown on a page: control characters and bidi overrides
    escaped (HTML escaping is the template's)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return printable(value)
    return printable(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True))


def input_text(event: dict[str, Any]) -> str:
    """A tool call's input as an auditor reads it: a shell command as the command."""
    value = event.get("input")
    if isinstance(value, dict) and isinstance(value.get("command"), str) and len(value) <= 2:
        return shown(value["command"])
    return shown(value)


def output_text(result: dict[str, Any]) -> str:
    output = result.get("output")
    if isinstance(output, dict) and isinstance(output.get("stdout"), str):
        text = output["stdout"]
        if output.get("stderr"):
            text += "\n--- stderr ---\n" + str(output["stderr"])
        return shown(text)
    return shown(output)
