"""Reading the record: event queries with filters, session reports and their completeness.

Shared by the CLI (reading the database directly, also while the gateway runs) and the
gateway's /v1 API, so both answer the same question the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import orjson

from trailguard.errors import InvalidInputError
from trailguard.events import EventType, format_timestamp
from trailguard.store.base import EventFilter, Store

Decision = Literal["allowed", "denied", "ask"]


class QueryError(InvalidInputError):
    """A filter value that cannot be used; the message names it."""


def parse_time(text: str, *, name: str) -> str:
    """An RFC 3339 time (any offset) or a date, as the ledger's UTC millisecond form."""
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                raise QueryError(f"{name}: {text!r} has no time zone; add Z or +HH:MM")
        return format_timestamp(moment)
    except (ValueError, OverflowError):
        raise QueryError(
            f"{name}: {text!r} is neither a date (2026-04-15) nor an RFC 3339 time "
            "(2026-04-15T14:32:07Z)"
        ) from None


def day_bounds(day: str) -> tuple[str, str]:
    """[start, end) of a UTC calendar day given as YYYY-MM-DD."""
    try:
        start = datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC)
    except ValueError:
        raise QueryError(f"--date: {day!r} is not a date like 2026-04-15") from None
    return format_timestamp(start), format_timestamp(start + timedelta(days=1))


@dataclass(frozen=True)
class EventQuery:
    filter: EventFilter = field(default_factory=EventFilter)
    decision: Decision | None = None
    """Only tool invocations with this policy result."""
    offset: int = 0

    @classmethod
    def build(
        cls,
        *,
        session: str | None = None,
        developer: str | None = None,
        project: str | None = None,
        since: str | None = None,
        until: str | None = None,
        day: str | None = None,
        event_type: str | None = None,
        tool: str | None = None,
        decision: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> EventQuery:
        """Validate user-given filters (CLI options or query parameters)."""
        if event_type is not None and event_type not in {t.value for t in EventType}:
            known = ", ".join(t.value for t in EventType)
            raise QueryError(f"type: unknown event type {event_type!r} (one of {known})")
        if decision is not None and decision not in ("allowed", "denied", "ask"):
            raise QueryError(f"decision: must be allowed, denied or ask, got {decision!r}")
        if limit is not None and limit < 1:
            raise QueryError("limit: must be at least 1")
        if offset < 0:
            raise QueryError("offset: must not be negative")
        since_at = parse_time(since, name="since") if since else None
        until_at = parse_time(until, name="until") if until else None
        if day is not None:
            day_start, day_end = day_bounds(day)
            since_at = max(since_at or day_start, day_start)
            until_at = min(until_at or day_end, day_end)
        if decision is not None:
            event_type = event_type or EventType.TOOL_INVOCATION.value
        return cls(
            EventFilter(
                session_id=session,
                developer_id=developer,
                project_id=project,
                event_type=event_type,
                tool=tool,
                since=since_at,
                until=until_at,
                limit=limit,
            ),
            decision,  # type: ignore[arg-type]
            offset,
        )


def query_events(store: Store, query: EventQuery) -> Iterator[dict[str, Any]]:
    """Matching events, oldest first, as their JSON documents."""
    wanted = query.filter.limit
    store_filter = (
        replace(query.filter, limit=None) if query.decision or query.offset else query.filter
    )
    produced = skipped = 0
    for row in store.query(store_filter):
        document: dict[str, Any] = orjson.loads(row.body)
        if query.decision is not None and document.get("policyResult") != query.decision:
            continue
        if skipped < query.offset:
            skipped += 1
            continue
        yield document
        produced += 1
        if wanted is not None and produced >= wanted:
            return


@dataclass
class SessionReport:
    session_id: str
    developer_id: str | None = None
    project_id: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    end_reason: str | None = None
    raw_end_reason: str | None = None
    never_started: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    tool_calls: int = 0
    cost_usd: float = 0.0
    """Known model spend of the session (requests with an unknown price are not in it)."""
    gaps: list[str] = field(default_factory=list)
    """toolUseIds without an invocation, or without a result, error or denial."""
    claimed_identity: dict[str, Any] = field(default_factory=dict)
    """What the developer's machine said at SessionStart (OS user, git email, host): claims."""
    git_remote: str | None = None
    git_branch: str | None = None
    permission_mode: str | None = None
    """From session_start, else from the first event that carried it."""
    model: str | None = None
    agent_version: str | None = None
    denials: int = 0
    asks: int = 0
    ended_by: str | None = None
    """For a killed session: who asked for the kill (their reason is ``raw_end_reason``)."""
    downstream: list[dict[str, Any]] = field(default_factory=list)
    """Imported CloudTrail records and application log entries (``downstream_record``)."""
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The tool invocations downstream records joined, by toolUseId."""

    @property
    def complete(self) -> bool:
        return not self.gaps

    def to_json(self) -> dict[str, Any]:
        """The camelCase JSON form, like every other document trailguard prints."""
        return {
            "sessionId": self.session_id,
            "developerId": self.developer_id,
            "projectId": self.project_id,
            "startedAt": self.started_at,
            "endedAt": self.ended_at,
            "endReason": self.end_reason,
            "rawEndReason": self.raw_end_reason,
            "endedBy": self.ended_by,
            "neverStarted": self.never_started,
            "claimedIdentity": self.claimed_identity,
            "gitRemote": self.git_remote,
            "gitBranch": self.git_branch,
            "permissionMode": self.permission_mode,
            "model": self.model,
            "agentVersion": self.agent_version,
            "counts": dict(self.counts),
            "toolCalls": self.tool_calls,
            "denials": self.denials,
            "asks": self.asks,
            "costUsd": self.cost_usd,
            "complete": self.complete,
            "gaps": self.gaps,
            "downstream": [
                {key: record.get(key) for key in _DOWNSTREAM_KEYS} for record in self.downstream
            ],
        }


_DOWNSTREAM_KEYS = (
    "eventId", "system", "recordId", "recordTime", "name", "service", "action", "resources",
    "principal", "sourceIp", "region", "errorCode", "toolUseId", "match", "matchReason",
    "authenticity", "importedBy", "recordSha256",
)  # fmt: skip


def session_report(store: Store, session_id: str) -> SessionReport | None:
    """Who, what project, when, how it ended, counts, and completeness, from the ledger alone."""
    return summarize_session(
        session_id,
        (orjson.loads(row.body) for row in store.query(EventFilter(session_id=session_id))),
    )


def summarize_session(session_id: str, documents: Iterable[dict[str, Any]]) -> SessionReport | None:
    """The session report of ``documents`` (the session's events, oldest first); ``None`` when
    there are none."""
    builder = SessionReportBuilder(session_id)
    found = False
    for document in documents:
        found = True
        builder.add(document)
    return builder.report() if found else None


class SessionReportBuilder:
    """Folds one session's events, oldest first, into its :class:`SessionReport`, one event at
    a time: :func:`summarize_session` uses it, and so can a long-lived reader (the console)
    that keeps reports current by reading only what was appended since.

    ``keep_calls=False`` keeps only each invocation's tool and time, not the whole document:
    the report's ``calls`` (invocations joined by downstream records) is then empty."""

    def __init__(self, session_id: str, *, keep_calls: bool = True) -> None:
        self._report = SessionReport(session_id)
        self._invoked: dict[str, tuple[str | None, str]] = {}
        """toolUseId -> (tool, timestamp) of each invocation."""
        self._documents: dict[str, dict[str, Any]] | None = {} if keep_calls else None
        self._resolved: set[str] = set()
        self._orphans: list[str] = []

    def add(self, document: dict[str, Any]) -> None:
        report = self._report
        kind = document["eventType"]
        report.counts[kind] += 1
        report.developer_id = report.developer_id or document.get("developerId")
        report.project_id = report.project_id or document.get("projectId")
        extra = document.get("extra") or {}
        if report.permission_mode is None and isinstance(extra.get("permission_mode"), str):
            report.permission_mode = extra["permission_mode"]
        if kind == EventType.SESSION_START:
            report.started_at = report.started_at or document["timestamp"]
            report.claimed_identity = document.get("claimedIdentity") or {}
            report.git_remote = document.get("gitRemote")
            report.git_branch = document.get("gitBranch")
            report.permission_mode = document.get("permissionMode") or report.permission_mode
            report.model = document.get("model") or report.model
            report.agent_version = document.get("agentVersion")
        elif kind == EventType.SESSION_END:
            report.ended_at = document["timestamp"]
            report.end_reason = document.get("reason")
            report.raw_end_reason = document.get("rawReason")
            report.ended_by = extra.get("requestedBy") if isinstance(extra, dict) else None
        elif kind == EventType.COST:
            report.model = report.model or document.get("model")
            if document.get("costUsd") is not None:
                report.cost_usd += document["costUsd"]
        elif kind == EventType.ALERT and document.get("alertType") == "session_not_started":
            report.never_started = True
        elif kind == EventType.TOOL_INVOCATION and document.get("toolUseId"):
            tool_use_id = document["toolUseId"]
            self._invoked[tool_use_id] = (document.get("tool"), document["timestamp"])
            if self._documents is not None:
                self._documents[tool_use_id] = document
            report.denials += document.get("policyResult") == "denied"
            report.asks += document.get("policyResult") == "ask"
            if document.get("policyResult") == "denied":
                self._resolved.add(tool_use_id)
        elif kind == EventType.DOWNSTREAM_RECORD:
            report.downstream.append(document)
        elif kind == EventType.TOOL_RESULT and document.get("toolUseId"):
            self._resolved.add(document["toolUseId"])
            if document["toolUseId"] not in self._invoked:
                self._orphans.append(f"{document['toolUseId']}: result without an invocation")

    def report(self) -> SessionReport:
        """The report of the events added so far (a copy: adding more does not change it)."""
        report = self._report
        documents = self._documents or {}
        return replace(
            report,
            counts=Counter(report.counts),
            claimed_identity=dict(report.claimed_identity),
            downstream=list(report.downstream),
            never_started=report.never_started or report.started_at is None,
            tool_calls=len(self._invoked),
            calls={
                record["toolUseId"]: documents[record["toolUseId"]]
                for record in report.downstream
                if record.get("toolUseId") in documents
            },
            gaps=[
                *self._orphans,
                *(
                    f"{tool_use_id}: {tool} invoked at {timestamp} has no result, error or denial"
                    for tool_use_id, (tool, timestamp) in self._invoked.items()
                    if tool_use_id not in self._resolved
                ),
            ],
        )


def query_event_bodies(store: Store, query: EventQuery) -> Iterator[bytes]:
    """Matching events, oldest first, as their stored canonical JSON bytes: what the API
    returns without decoding them (only a ``decision`` filter looks inside, at tool calls)."""
    wanted = query.filter.limit
    store_filter = (
        replace(query.filter, limit=None) if query.decision or query.offset else query.filter
    )
    wanted_result = f'"policyResult":"{query.decision}"'.encode() if query.decision else None
    produced = skipped = 0
    for row in store.query(store_filter):
        body = bytes(row.body)
        if wanted_result is not None and wanted_result not in body:
            # Canonical bytes are compact with sorted keys: the field's form is fixed, but a
            # string value could contain it, so a match is confirmed by decoding below.
            continue
        if wanted_result is not None and orjson.loads(body).get("policyResult") != query.decision:
            continue
        if skipped < query.offset:
            skipped += 1
            continue
        yield body
        produced += 1
        if wanted is not None and produced >= wanted:
            return
