"""Completeness figures from the ledger: per session (``sessions show``, ``GET
/v1/sessions/{id}/completeness``) and over sessions (``trailguard completeness``, ``GET
/v1/completeness``). Read from the ledger alone, with the same rules as the live alerts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from trailguard.completeness.reconcile import (
    DEFAULT_GRACE,
    DEFAULT_MAX_WAIT,
    DEFAULT_UNAUDITED_GRACE,
    OTHER_SOURCES,
    SOURCES,
    Call,
    Reconciler,
    SessionState,
)
from trailguard.events import format_timestamp
from trailguard.store.base import EventFilter, Store


@dataclass(frozen=True)
class Rules:
    grace: timedelta = DEFAULT_GRACE
    max_wait: timedelta = DEFAULT_MAX_WAIT
    unaudited_grace: timedelta = DEFAULT_UNAUDITED_GRACE


@dataclass
class Gap:
    kind: str
    """``no_hook`` (another source saw the call, no hook reported it), ``no_result``,
    ``result_without_invocation``, ``input_mismatch``."""
    tool_use_id: str
    tool: str | None
    sources: list[str]
    detail: str
    input: Any = None
    agent_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "toolUseId": self.tool_use_id,
            "tool": self.tool,
            "sources": self.sources,
            "agentId": self.agent_id,
            "input": self.input,
            "detail": self.detail,
        }


@dataclass
class SessionCompleteness:
    session_id: str
    developer_id: str | None
    project_id: str | None
    hooked: bool
    unaudited: bool
    seen: int
    by_source: dict[str, int]
    decided: int
    resolved: int
    gaps: list[Gap] = field(default_factory=list)
    pending: int = 0
    """Seen by another source, not yet due at the hooks."""
    in_flight: int = 0
    """Invoked, no result yet, session still open."""
    weakened: list[dict[str, Any]] = field(default_factory=list)
    agents: list[dict[str, Any]] = field(default_factory=list)
    other_sources: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.hooked and not self.unaudited and not self.gaps

    def to_json(self) -> dict[str, Any]:
        return {
            "sessionId": self.session_id,
            "developerId": self.developer_id,
            "projectId": self.project_id,
            "complete": self.complete,
            "hooked": self.hooked,
            "unaudited": self.unaudited,
            "toolCallsSeen": self.seen,
            "seenBySource": self.by_source,
            "recordedWithDecision": self.decided,
            "endedWithResult": self.resolved,
            "pending": self.pending,
            "inFlight": self.in_flight,
            "gaps": [gap.to_json() for gap in self.gaps],
            "hooksWeakened": self.weakened,
            "subagents": self.agents,
            "modelTrafficFrom": self.other_sources,
        }


def _gaps(state: SessionState, call: Call, now: datetime, rules: Rules) -> list[Gap]:
    found: list[Gap] = []
    sources = call.others
    if call.invoked_at is None and (
        call.gap_alerted
        or state.missing_hook(call, now, grace=rules.grace, max_wait=rules.max_wait)
    ):
        found.append(
            Gap(
                "no_hook",
                call.tool_use_id,
                call.tool,
                sources,
                f"seen by {', '.join(sources)} at {call.first_seen_elsewhere}; no hook reported "
                "it (no PreToolUse)",
                call.input,
                call.agent_id,
            )
        )
    elif call.invoked_at is None and call.resolved is not None:
        found.append(
            Gap(
                "result_without_invocation",
                call.tool_use_id,
                call.tool,
                ["hook", *sources],
                f"a {call.resolved} result at {call.result_at} with no recorded invocation",
                agent_id=call.agent_id,
            )
        )
    elif call.invoked_at is not None and call.resolved is None and state.ended_at is not None:
        found.append(
            Gap(
                "no_result",
                call.tool_use_id,
                call.tool,
                ["hook", *sources],
                f"invoked at {call.invoked_at} ({call.decision}); no result, error or denial "
                "before the session ended",
                agent_id=call.agent_id,
            )
        )
    mismatched = call.mismatched_keys() if call.invoked_at is not None else []
    if mismatched:
        found.append(
            Gap(
                "input_mismatch",
                call.tool_use_id,
                call.tool,
                ["hook", *sources],
                f"the hook reported {', '.join(mismatched)} differently from the model's own "
                "tool_use (seen by the proxy)",
                call.input,
                call.agent_id,
            )
        )
    return found


DEFAULT_RULES = Rules()


def evaluate(
    state: SessionState, now: datetime | None = None, rules: Rules = DEFAULT_RULES
) -> SessionCompleteness:
    """The completeness of one reconciled session at ``now`` (default: the current time)."""
    now = now or datetime.now(UTC)
    calls = list(state.calls.values())
    by_source = dict.fromkeys(SOURCES, 0)
    report = SessionCompleteness(
        session_id=state.session_id,
        developer_id=state.developer_id,
        project_id=state.project_id,
        hooked=state.hooked,
        unaudited=state.unaudited_alerted or state.unaudited(now, rules.unaudited_grace),
        seen=len(calls),
        by_source=by_source,
        decided=sum(1 for c in calls if c.invoked_at is not None and c.decision is not None),
        resolved=sum(1 for c in calls if c.resolved is not None),
        other_sources=sorted(state.other_sources),
    )
    for call in calls:
        if call.invoked_at is not None:
            by_source["hook"] += 1
        for source in OTHER_SOURCES:
            by_source[source] += source in call.seen_by
        gaps = _gaps(state, call, now, rules)
        report.gaps.extend(gaps)
        if not gaps and call.invoked_at is None and call.others:
            report.pending += 1
        if call.invoked_at is not None and call.resolved is None and state.ended_at is None:
            report.in_flight += 1
    report.weakened = [
        {
            "at": finding.at,
            "what": finding.what,
            "weakenings": finding.weakenings,
            "comparedWith": finding.compared_with,
        }
        for finding in state.findings
    ]
    for agent_id, agent_type in state.agents.items():
        mine = [c for c in calls if c.agent_id == agent_id]
        report.agents.append(
            {
                "agentId": agent_id,
                "agentType": agent_type,
                "toolCalls": [
                    {
                        "toolUseId": c.tool_use_id,
                        "tool": c.tool,
                        "recorded": c.invoked_at is not None,
                    }
                    for c in mine
                ],
            }
        )
    return report


def _documents(store: Store, event_filter: EventFilter) -> Iterable[dict[str, Any]]:
    for row in store.query(event_filter):
        yield orjson.loads(row.body)


def session_completeness(
    store: Store, session_id: str, *, now: datetime | None = None, rules: Rules = DEFAULT_RULES
) -> SessionCompleteness | None:
    reconciler = Reconciler().add_all(_documents(store, EventFilter(session_id=session_id)))
    state = reconciler.sessions.get(session_id)
    return evaluate(state, now, rules) if state is not None else None


@dataclass
class Figures:
    """The figure an auditor asks for first, over sessions."""

    sessions: list[SessionCompleteness]
    since: str | None = None
    until: str | None = None

    def totals(self) -> dict[str, Any]:
        by_source = {source: sum(s.by_source[source] for s in self.sessions) for source in SOURCES}
        gaps = [gap for s in self.sessions for gap in s.gaps]
        return {
            "since": self.since,
            "until": self.until,
            "sessions": len(self.sessions),
            "completeSessions": sum(1 for s in self.sessions if s.complete),
            "unauditedSessions": sum(1 for s in self.sessions if s.unaudited),
            "sessionsWithWeakenedHooks": sum(1 for s in self.sessions if s.weakened),
            "toolCallsSeen": sum(s.seen for s in self.sessions),
            "seenBySource": by_source,
            "recordedWithDecision": sum(s.decided for s in self.sessions),
            "endedWithResult": sum(s.resolved for s in self.sessions),
            "gaps": len(gaps),
            "gapsByKind": {
                kind: sum(1 for g in gaps if g.kind == kind)
                for kind in ("no_hook", "no_result", "result_without_invocation", "input_mismatch")
            },
            "pending": sum(s.pending for s in self.sessions),
        }

    def to_json(self) -> dict[str, Any]:
        return self.totals() | {
            "perSession": [s.to_json() for s in self.sessions if not s.complete]
        }


def figures(
    store: Store,
    *,
    since: str | None = None,
    until: str | None = None,
    developer: str | None = None,
    project: str | None = None,
    now: datetime | None = None,
    rules: Rules = DEFAULT_RULES,
) -> Figures:
    """Over every session with an event in [since, until): each session read whole."""
    session_ids: dict[str, None] = {}
    for row in store.query(
        EventFilter(since=since, until=until, developer_id=developer, project_id=project)
    ):
        if row.session_id:
            session_ids.setdefault(row.session_id, None)
    now = now or datetime.now(UTC)
    found = [
        report
        for session_id in session_ids
        if (report := session_completeness(store, session_id, now=now, rules=rules)) is not None
    ]
    return Figures(found, since, until)


def now_text() -> str:
    return format_timestamp(datetime.now(UTC))
