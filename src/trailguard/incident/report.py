"""The incident report: a header (scope, time range, who generated it, the checkpoint its events
were verified against and the result), a summary per session, one chronological timeline across
the sessions, the external side effects and the policy versions in force.

Everything here is data for the renderers (``html``, ``markdown``) and the JSON form; nothing
is escaped here, and every string that came from an agent stays exactly as recorded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from trailguard import __version__
from trailguard.cost.accounting import is_correction
from trailguard.events import ACCESS_LEVELS, RISK_LEVELS, EventType, format_timestamp
from trailguard.incident.records import (
    LeafSource,
    Scope,
    Verification,
    collect,
    collect_context,
    verify_rows,
)
from trailguard.ledger.canonical import canonical_json
from trailguard.ledger.note import Verifier
from trailguard.retrieval import SessionReport, summarize_session
from trailguard.store.base import LedgerRow, Store

REPORT_FORMAT = "trailguard-incident-report/v1"
INPUT_LIMIT = 4000
"""Characters of a tool input shown before it is shortened (with its length and SHA-256)."""
OUTPUT_LIMIT = 2000
"""Characters of a tool output shown before it is shortened."""

SIDE_EFFECT_ACCESS = frozenset(ACCESS_LEVELS[ACCESS_LEVELS.index("write") :])
"""Operations on outside systems that change something (write, delete, admin)."""


@dataclass(frozen=True)
class Shown:
    """A tool input or output as displayed: whole, or its start with the full value's size."""

    text: str
    shortened: bool = False
    length: int | None = None
    """Bytes of the full stored value's canonical JSON (RFC 8785), when shortened."""
    sha256: str | None = None
    """``sha256:<hex>`` of the same bytes, when shortened: anyone can recompute it."""

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "shortened": self.shortened,
            "length": self.length,
            "sha256": self.sha256,
        }


def _display_text(value: Any, *, is_input: bool) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if is_input and isinstance(value.get("command"), str):
            return str(value["command"])
        if not is_input and isinstance(value.get("stdout"), str):
            text = str(value["stdout"])
            if value.get("stderr"):
                text += f"\n[stderr]\n{value['stderr']}"
            return text
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONEncodeError:  # nested deeper than orjson goes
        return json.dumps(value, ensure_ascii=False, indent=2)


def shown(value: Any, limit: int, *, is_input: bool) -> Shown | None:
    """``value`` for display, cut to ``limit`` characters with the full value's length and
    SHA-256 (of its canonical JSON, as the capture stage hashes values it truncates)."""
    if value is None:
        return None
    text = _display_text(value, is_input=is_input)
    if len(text) <= limit:
        return Shown(text)
    encoded = canonical_json(value)
    return Shown(
        text[:limit],
        shortened=True,
        length=len(encoded),
        sha256="sha256:" + hashlib.sha256(encoded).hexdigest(),
    )


@dataclass(frozen=True)
class Entry:
    """One event as a row of the timeline."""

    seq: int
    time: str
    event_type: str
    title: str
    """What happened, in one line (agent text inside it is shown as recorded)."""
    session_id: str | None = None
    session_number: int = 0
    """1 for the first session of the report, 2 for the next...; 0 for none."""
    developer_id: str | None = None
    tool: str | None = None
    tool_use_id: str | None = None
    agent_id: str | None = None
    decision: str | None = None
    rule: str | None = None
    reason: str | None = None
    policy_version: str | None = None
    risk: str | None = None
    """The highest risk among the event's operations."""
    operations: tuple[dict[str, Any], ...] = ()
    input: Shown | None = None
    output: Shown | None = None
    status: str | None = None
    severity: str | None = None
    notes: tuple[str, ...] = ()
    context: bool = False
    """Not part of the scope: a policy change or gateway start/stop around it."""

    @property
    def highlight(self) -> str | None:
        """Why a reader's eye should stop here: denied, ask, critical, high, alert, error."""
        if self.decision in ("denied", "ask"):
            return self.decision
        if self.risk in ("critical", "high"):
            return self.risk
        if self.event_type in ("alert", "budget_threshold"):
            return "alert"
        if self.status == "error":
            return "error"
        return None


def _max_risk(operations: Sequence[dict[str, Any]]) -> str | None:
    risks = [str(op["risk"]) for op in operations if op.get("risk") in RISK_LEVELS]
    return max(risks, key=RISK_LEVELS.index) if risks else None


def _operation_text(op: dict[str, Any]) -> str:
    target = op.get("resource") or op.get("kind") or ""
    return f"{op.get('action')} on {target} ({op.get('access')}, risk {op.get('risk')})"


def _truncation_note(document: dict[str, Any], what: str) -> str | None:
    if not document.get(f"{what}Truncated"):
        return None
    return (
        f"the gateway stored this {what} truncated: the whole {what} was "
        f"{document.get(f'{what}Length')} bytes, {document.get(f'{what}Sha256')}"
    )


def entry_of(document: dict[str, Any], session_number: int, *, context: bool = False) -> Entry:
    """The timeline row of one event document."""
    kind = str(document.get("eventType"))
    base: dict[str, Any] = {
        "seq": int(document.get("seq") or 0),
        "time": str(document.get("timestamp")),
        "event_type": kind,
        "session_id": document.get("sessionId"),
        "session_number": session_number,
        "developer_id": document.get("developerId"),
        "agent_id": document.get("agentId"),
        "context": context,
    }
    notes = []
    if document.get("source") == "spool":
        notes.append(
            f"replayed from the client's spool; observed at {document.get('observedAt')} "
            "(the client's claim)"
        )
    if kind == EventType.TOOL_INVOCATION:
        operations = tuple(document.get("operations") or ())
        note = _truncation_note(document, "input")
        return Entry(
            **base,
            title=f"{document.get('tool')} called",
            tool=document.get("tool"),
            tool_use_id=document.get("toolUseId"),
            decision=document.get("policyResult"),
            rule=document.get("policyRule"),
            reason=document.get("policyReason"),
            policy_version=document.get("policyVersion"),
            risk=_max_risk(operations),
            operations=operations,
            input=shown(document.get("input"), INPUT_LIMIT, is_input=True),
            notes=(*notes, *([note] if note else [])),
        )
    if kind == EventType.TOOL_RESULT:
        note = _truncation_note(document, "output")
        error = document.get("error")
        output = document.get("output")
        if error and output is None:
            output = error
        duration = document.get("durationMs")
        return Entry(
            **base,
            title=f"{document.get('tool')} {document.get('status')}"
            + (f" after {duration} ms" if duration is not None else ""),
            tool=document.get("tool"),
            tool_use_id=document.get("toolUseId"),
            status=document.get("status"),
            output=shown(output, OUTPUT_LIMIT, is_input=False),
            notes=(*notes, *([note] if note else [])),
        )
    if kind == EventType.INFRA_OPERATION:
        op = document.get("operation") or {}
        return Entry(
            **base,
            title=_operation_text(op),
            tool_use_id=document.get("toolUseId"),
            risk=op.get("risk"),
            operations=(op,),
        )
    if kind == EventType.ALERT:
        return Entry(
            **base,
            title=f"alert {document.get('alertType')}: {document.get('message')}",
            severity=document.get("severity"),
            notes=tuple(notes),
        )
    if kind == EventType.BUDGET_THRESHOLD:
        return Entry(
            **base,
            title=f"budget {document.get('scope')} at {document.get('percent')} %: "
            f"${document.get('spentUsd')} of ${document.get('limitUsd')}",
            severity="high" if (document.get("percent") or 0) >= 100 else "medium",
        )
    if kind == EventType.COST:
        usd = document.get("costUsd")
        what = (
            "correction to the proxy's figure, model request"
            if is_correction(document)
            else "model request"
        )
        return Entry(
            **base,
            title=f"{what} {document.get('model')}: {document.get('inputTokens', 0)} in, "
            f"{document.get('outputTokens', 0)} out, "
            + (f"${usd:.4f}" if isinstance(usd, int | float) else "cost unknown"),
        )
    if kind == EventType.SESSION_START:
        return Entry(
            **base,
            title=f"session started ({document.get('startSource') or 'start'}), permission mode "
            f"{document.get('permissionMode') or 'not reported'}",
            notes=tuple(notes),
        )
    if kind == EventType.SESSION_END:
        raw = document.get("rawReason")
        return Entry(
            **base,
            title=f"session ended: {document.get('reason')}" + (f" ({raw})" if raw else ""),
            severity="high" if document.get("reason") in ("killed", "budget_exhausted") else None,
        )
    if kind == EventType.PROMPT:
        return Entry(
            **base,
            title="the developer's prompt",
            input=shown(document.get("prompt"), INPUT_LIMIT, is_input=True),
            notes=tuple(notes),
        )
    if kind == EventType.AGENT_EVENT:
        name = str(document.get("name"))
        payload = document.get("payload")
        return Entry(
            **base,
            title=("subagent " if name.startswith("Subagent") else "agent event ") + name,
            input=shown(payload, INPUT_LIMIT, is_input=False) if payload else None,
            notes=tuple(notes),
        )
    if kind == EventType.POLICY_CHANGE:
        return Entry(
            **base,
            title=f"policy {document.get('policyVersion')} in force: "
            f"{document.get('description') or ''}",
            policy_version=document.get("policyVersion"),
        )
    if kind == EventType.AUDIT_ACCESS:
        who = document.get("developerId") or document.get("actor")
        return Entry(
            **base,
            title=f"record read: {document.get('action')} by {who} "
            f"({document.get('outcome') or 'allowed'})",
        )
    if kind == EventType.TOKEN_CHANGE:
        return Entry(
            **base,
            title=f"token {document.get('tokenId')} {document.get('action')} for "
            f"{document.get('subjectDeveloperId')} ({document.get('role')})",
        )
    if kind in (EventType.GATEWAY_START, EventType.GATEWAY_STOP):
        detail = document.get("reason") or (
            "after a crash" if document.get("previousStopClean") is False else ""
        )
        return Entry(
            **base,
            title=f"gateway {'started' if kind == EventType.GATEWAY_START else 'stopped'} "
            f"{detail}".strip(),
            severity="medium" if document.get("previousStopClean") is False else None,
        )
    return Entry(**base, title=kind)


@dataclass(frozen=True)
class SideEffect:
    """An operation with write, delete or admin access on an outside system."""

    seq: int
    time: str
    session_id: str | None
    session_number: int
    tool: str | None
    tool_use_id: str | None
    action: str
    resource: str | None
    access: str
    risk: str
    decision: str | None
    outcome: str
    """``ran (success)``, ``ran (error)``, ``denied: did not run``, ``no result recorded``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "timestamp": self.time,
            "sessionId": self.session_id,
            "tool": self.tool,
            "toolUseId": self.tool_use_id,
            "action": self.action,
            "resource": self.resource,
            "access": self.access,
            "risk": self.risk,
            "decision": self.decision,
            "outcome": self.outcome,
        }


@dataclass(frozen=True)
class PolicyVersion:
    version: str
    tool_calls: int
    first_used: str
    last_used: str
    denials: int

    def to_json(self) -> dict[str, Any]:
        return {
            "policyVersion": self.version,
            "toolCalls": self.tool_calls,
            "firstUsed": self.first_used,
            "lastUsed": self.last_used,
            "denials": self.denials,
        }


@dataclass(frozen=True)
class SessionSummary:
    report: SessionReport
    number: int
    permissions: dict[str, Any] | None
    events_in_scope: int

    def to_json(self) -> dict[str, Any]:
        return self.report.to_json() | {
            "number": self.number,
            "permissions": self.permissions,
            "eventsInScope": self.events_in_scope,
        }


@dataclass(frozen=True)
class Header:
    scope: Scope
    first_event: str | None
    last_event: str | None
    generated_at: str
    generated_by: str
    origin: str | None
    verification: Verification
    trailguard_version: str = __version__

    @property
    def time_range(self) -> str:
        if self.first_event is None:
            return "no events"
        return f"{self.first_event} to {self.last_event}"

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope.to_json(),
            "scopeDescription": self.scope.describe(),
            "firstEvent": self.first_event,
            "lastEvent": self.last_event,
            "generatedAt": self.generated_at,
            "generatedBy": self.generated_by,
            "trailguardVersion": self.trailguard_version,
            "logOrigin": self.origin,
            "verification": self.verification.to_json(),
        }


@dataclass(frozen=True)
class Totals:
    """The numbers at the top of a report."""

    events: int
    tool_calls: int
    denied: int
    asked: int
    high_risk: int
    """Tool calls with an operation of high or critical risk."""
    alerts: int
    side_effects: int
    gaps: int
    cost_usd: float

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "toolCalls": self.tool_calls,
            "denied": self.denied,
            "asked": self.asked,
            "highRiskToolCalls": self.high_risk,
            "alerts": self.alerts,
            "sideEffects": self.side_effects,
            "gaps": self.gaps,
            "costUsd": round(self.cost_usd, 6),
        }


@dataclass
class IncidentReport:
    header: Header
    sessions: list[SessionSummary]
    timeline: list[dict[str, Any]]
    """The scope's events in their ledger JSON form, in time order."""
    context: list[dict[str, Any]]
    entries: list[Entry]
    """Timeline and context merged, as rendered."""
    side_effects: list[SideEffect]
    policy_versions: list[PolicyVersion]
    policy_changes: list[dict[str, Any]]
    rows: list[LedgerRow] = field(repr=False, default_factory=list)
    """The stored rows behind ``timeline`` and ``context`` (exact bytes, for bundles)."""

    @property
    def totals(self) -> Totals:
        invocations = [e for e in self.entries if e.event_type == EventType.TOOL_INVOCATION]
        return Totals(
            events=len(self.timeline),
            tool_calls=len(invocations),
            denied=sum(e.decision == "denied" for e in invocations),
            asked=sum(e.decision == "ask" for e in invocations),
            high_risk=sum(e.risk in ("high", "critical") for e in invocations),
            alerts=sum(e.event_type == EventType.ALERT for e in self.entries if not e.context),
            side_effects=len(self.side_effects),
            gaps=sum(len(s.report.gaps) for s in self.sessions),
            cost_usd=sum(s.report.cost_usd for s in self.sessions),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "header": self.header.to_json(),
            "totals": self.totals.to_json(),
            "sessions": [s.to_json() for s in self.sessions],
            "timeline": self.timeline,
            "context": self.context,
            "sideEffects": [s.to_json() for s in self.side_effects],
            "policyVersions": [p.to_json() for p in self.policy_versions],
            "policyChanges": self.policy_changes,
        }


def _side_effects(
    documents: Sequence[dict[str, Any]], numbers: dict[str | None, int]
) -> list[SideEffect]:
    outcomes: dict[str, str] = {}
    for document in documents:
        if document.get("eventType") == EventType.TOOL_RESULT and document.get("toolUseId"):
            outcomes[document["toolUseId"]] = f"ran ({document.get('status')})"
    effects = []
    for document in documents:
        if document.get("eventType") != EventType.TOOL_INVOCATION:
            continue
        decision = document.get("policyResult")
        tool_use_id = document.get("toolUseId")
        if decision == "denied":
            outcome = "denied: did not run"
        else:
            outcome = outcomes.get(tool_use_id or "", "no result recorded")
        for op in document.get("operations") or ():
            if op.get("access") in SIDE_EFFECT_ACCESS:
                effects.append(
                    SideEffect(
                        seq=document["seq"],
                        time=document["timestamp"],
                        session_id=document.get("sessionId"),
                        session_number=numbers.get(document.get("sessionId"), 0),
                        tool=document.get("tool"),
                        tool_use_id=tool_use_id,
                        action=str(op.get("action")),
                        resource=op.get("resource"),
                        access=str(op.get("access")),
                        risk=str(op.get("risk")),
                        decision=decision,
                        outcome=outcome,
                    )
                )
    return effects


def _policy_versions(documents: Sequence[dict[str, Any]]) -> list[PolicyVersion]:
    seen: dict[str, list[Any]] = {}
    for document in documents:
        if document.get("eventType") != EventType.TOOL_INVOCATION:
            continue
        version = document.get("policyVersion") or "(none: not decided by trailguard)"
        row = seen.setdefault(version, [0, document["timestamp"], document["timestamp"], 0])
        row[0] += 1
        row[2] = document["timestamp"]
        row[3] += document.get("policyResult") == "denied"
    return [PolicyVersion(v, n, first, last, d) for v, (n, first, last, d) in seen.items()]


def build_report(
    store: Store,
    scope: Scope,
    verifier: Verifier,
    *,
    key_source: str,
    key_pinned: bool,
    generated_by: str,
    keep_paths: bool = False,
    now: datetime | None = None,
    archived: Sequence[dict[str, Any]] = (),
    archive: str | None = None,
    archived_rows: Sequence[LedgerRow] = (),
    leaves: LeafSource | None = None,
) -> IncidentReport:
    """Read the scope's events, verify them against the latest signed tree head, and build the
    report. ``keep_paths`` keeps each event's inclusion path (for an evidence bundle).
    ``archived``: the scope's events read (and checked) from ``archive``, for those pruned
    from the hot store; a seq the hot store still holds is taken from it. ``archived_rows``:
    the same as rows, proven against the head like the hot ones, with ``leaves`` supplying the
    pruned leaf hashes (trailguard.archive.evidence)."""
    rows = collect(store, scope)
    hot_seqs = {row.seq for row in rows}
    from_archive = [row for row in archived_rows if row.seq not in hot_seqs]
    if from_archive:
        rows = sorted([*from_archive, *rows], key=lambda row: (row.timestamp, row.seq))
    context_rows = collect_context(store, rows[0].timestamp, rows[-1].timestamp) if rows else []
    # The head is read after the events, so it covers every one of them unless the ledger was
    # written behind the writer's back (then the event is named as unsigned).
    timeline = [orjson.loads(row.body) for row in rows]
    context = [orjson.loads(row.body) for row in context_rows]
    hot_timeline = list(timeline)
    verification = verify_rows(
        store,
        [*rows, *context_rows],
        verifier,
        key_source=key_source,
        key_pinned=key_pinned,
        keep_paths=keep_paths,
        documents={
            row.seq: document
            for row, document in zip([*rows, *context_rows], [*hot_timeline, *context], strict=True)
        },
        leaf_source=leaves,
    )
    if from_archive:
        verification.archive, verification.archived = archive, len(from_archive)
        verification.archived_proven = True
    if archive is not None and not archived_rows:
        hot = {row.seq for row in rows}
        older = [d for d in archived if d.get("seq") not in hot]
        timeline = sorted([*older, *timeline], key=lambda d: (d["timestamp"], d["seq"]))
        verification.archive, verification.archived = archive, len(older)
    numbers: dict[str | None, int] = {}
    by_session: dict[str, list[dict[str, Any]]] = {}
    for document in timeline:
        session_id = document.get("sessionId")
        if session_id is not None:
            if session_id not in numbers:
                numbers[session_id] = len(numbers) + 1
            by_session.setdefault(session_id, []).append(document)
    sessions = []
    for session_id, documents in by_session.items():
        summary = summarize_session(session_id, documents)
        assert summary is not None  # every session here has events
        start = next((d for d in documents if d.get("eventType") == EventType.SESSION_START), None)
        sessions.append(
            SessionSummary(
                summary,
                numbers[session_id],
                start.get("permissions") if start else None,
                len(documents),
            )
        )
    entries = [entry_of(d, numbers.get(d.get("sessionId"), 0)) for d in timeline]
    if context:
        entries += [entry_of(d, 0, context=True) for d in context]
        entries.sort(key=lambda e: (e.time, e.seq))
    header = Header(
        scope=scope,
        first_event=timeline[0]["timestamp"] if timeline else None,
        last_event=timeline[-1]["timestamp"] if timeline else None,
        generated_at=format_timestamp(now or datetime.now(UTC)),
        generated_by=generated_by,
        origin=store.get_meta("origin"),
        verification=verification,
    )
    return IncidentReport(
        header=header,
        sessions=sessions,
        timeline=timeline,
        context=context,
        entries=entries,
        side_effects=_side_effects(timeline, numbers),
        policy_versions=_policy_versions(timeline),
        policy_changes=[d for d in context if d.get("eventType") == EventType.POLICY_CHANGE],
        rows=sorted([*rows, *context_rows], key=lambda r: r.seq),
    )
