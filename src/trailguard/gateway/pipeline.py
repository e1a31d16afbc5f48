"""The hook path as pure stages, in one direction:

    parse (capture/hook_request) → normalise → classify + decide → build events → redact → append

Each stage is a function of typed values with no I/O, so each can be tested alone and run off
the event loop; ``gateway/hooks.py`` composes them with the side effects (session state, the
ledger, cost). Nothing unredacted leaves ``redact``: not the ledger, not a log line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Final

from trailguard.capture.claude_code import (
    DEFAULT_INPUT_CAP,
    DEFAULT_OUTPUT_CAP,
    Attribution,
    event_from_request,
    project_id_from_remote,
)
from trailguard.capture.hook_request import HookRequest
from trailguard.classify import ClassifyContext, classify_tool_call
from trailguard.errors import excerpt
from trailguard.events import (
    AgentEvent,
    Alert,
    Event,
    InfraOperation,
    Operation,
    SessionEnd,
    ToolInvocation,
    parse_timestamp,
)
from trailguard.hook_protocol import GATING_EVENTS, ask, deny
from trailguard.policy.engine import Decision, DecisionRequest, decide
from trailguard.policy.loader import PolicySet
from trailguard.redact import Redactor
from trailguard.retrieval import QueryError, parse_time
from trailguard.store.gateway_state import Identity, SessionSummary

__all__ = [
    "GATEWAY_DOWN_RULE",
    "KILLED_RULE",
    "MAX_CLASSIFIED_COMMAND",
    "HookContext",
    "HookOutcome",
    "Stop",
    "Verdict",
    "build",
    "classify_and_decide",
    "normalise",
    "redact",
]

KILLED_RULE: Final = "session-killed"
GATEWAY_DOWN_RULE: Final = "gateway-unreachable"
OVERSIZED_RULE: Final = "too-large-to-examine"
MAX_CLASSIFIED_COMMAND: Final = 256 * 1024
"""A command longer than this is not parsed (the work per request is bounded): the call is
asked, never silently allowed."""
DECISION_EVENTS: Final = GATING_EVENTS


# -- stage values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HookContext:
    """A parsed request with what the gateway decided about it: who (the token), which session
    and project, when (the gateway's own receipt time), and the event id to use."""

    request: HookRequest
    identity: Identity
    received_at: str
    session: SessionSummary | None
    """The session as the gateway knew it before this request (None: never seen)."""
    project_id: str | None
    event_id: str | None = None
    observed_at: str | None = None
    """The client's claimed observation time, when it is a time (a claim, recorded as such)."""
    notes: tuple[Event, ...] = ()
    """Alerts about the request's claims (project, time, spool problems), to be recorded."""

    @property
    def spooled(self) -> bool:
        return self.request.client.spooled

    @property
    def decides(self) -> bool:
        """Whether this request asks for a policy decision now. A spooled event was already
        refused by the hook client while the gateway was down: it is history, not a request."""
        return self.request.hook_event_name == "PreToolUse" and not self.spooled


@dataclass(frozen=True)
class Verdict:
    operations: tuple[Operation, ...]
    decision: Decision


@dataclass(frozen=True)
class Stop:
    """Why the session may not go on (killed, out of budget): every hook answers
    ``continue: false`` and a tool call is denied with ``rule``."""

    rule: str
    reason: str


@dataclass(frozen=True)
class HookOutcome:
    events: list[Event]
    """In append order: the hook's own event first, then its operations, then notes."""
    primary: int
    """Index in ``events`` of the hook's own event."""
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def event(self) -> Event:
        return self.events[self.primary]


# -- normalise --------------------------------------------------------------------------------

CLAIM_SKEW: Final = timedelta(seconds=60)
"""How far in the future a client's clock may be before its time claim is implausible."""
LIVE_CLAIM_DISTANCE: Final = timedelta(minutes=5)
"""How far from receipt a live (not spooled) event's claimed time may be."""


def _claimed_time(
    request: HookRequest,
    identity: Identity,
    session: SessionSummary | None,
    received_at: str,
    notes: list[Event],
) -> str | None:
    """The client's ``observedAt``, as the ledger's time form when it is one; a claim that is
    not a time, or not plausible, raises an alert (and is never used as the event's time)."""
    claim = request.client.observed_at
    if claim is None:
        return None
    problems: list[str] = []
    try:
        observed = parse_time(claim, name="observedAt")
    except QueryError:
        observed = None
        problems.append("is not an RFC 3339 time")
    if observed is not None:
        received = parse_timestamp(received_at)
        moment = parse_timestamp(observed)
        if moment > received + CLAIM_SKEW:
            problems.append("is in the future")
        if identity.created_at and observed < identity.created_at:
            problems.append(f"is before the token existed ({identity.created_at})")
        if session is not None and session.started_at and observed < session.started_at:
            problems.append(f"is before the session started ({session.started_at})")
        if not request.client.spooled and abs(received - moment) > LIVE_CLAIM_DISTANCE:
            problems.append("is far from the time the gateway received it, for a live event")
    if problems:
        notes.append(
            Alert(
                alert_type="implausible_time_claim",
                severity="medium",
                message=f"{request.hook_event_name} claims it was observed at {excerpt(claim)}, "
                f"which {' and '.join(problems)}; recorded at the gateway's receipt time "
                f"{received_at}",
                details={
                    "claimedObservedAt": claim[:64],
                    "receivedAt": received_at,
                    "spooled": request.client.spooled,
                },
                session_id=request.session_id,
                source="gateway",
            )
        )
    return observed


def _spool_problem_alerts(request: HookRequest) -> list[Event]:
    return [
        Alert(
            alert_type="spooled_event_abandoned",
            severity="high",
            message="the hook client gave up replaying a spooled "
            f"{problem.hook_event_name or 'event'} ({problem.event_id or 'no id'}) after "
            f"{problem.tries or '?'} tries and moved it "
            f"aside on the developer's machine: {excerpt(problem.last_error or 'no reason given')}",
            details={
                "eventId": problem.event_id,
                "hookEventName": problem.hook_event_name,
                "claimedSessionId": problem.session_id,
                "tries": problem.tries,
                "lastError": (problem.last_error or "")[:500],
                "movedAt": problem.moved_at,
                "sha256": problem.sha256,
            },
            source="gateway",
        )
        for problem in request.client.spool_problems
    ]


def normalise(
    request: HookRequest,
    identity: Identity,
    *,
    session: SessionSummary | None,
    received_at: str,
    event_id: str | None = None,
) -> HookContext:
    """Attribute the request: identity from the token, the project from the session (or, at
    SessionStart, from the remote the client claims, if the token may work on it), time from
    the gateway's clock. What the client claims is checked here; doubts become alerts."""
    notes: list[Event] = []
    project_id = session.project_id if session else None
    bound = identity.projects
    context = request.client.context
    claimed = (
        project_id_from_remote(context.git_remote)
        if request.hook_event_name == "SessionStart" and context is not None
        else None
    )
    if claimed is not None:
        if bound and claimed not in bound:
            notes.append(
                Alert(
                    alert_type="project_claim_refused",
                    severity="high",
                    message=f"session {request.session_id} claims project {claimed!r}, but this "
                    f"token ({identity.token_id}) is bound to {', '.join(bound)}: the claim is "
                    "recorded, not used",
                    details={"claimedProject": claimed, "tokenProjects": list(bound)},
                    session_id=request.session_id,
                    source="gateway",
                )
            )
        else:
            project_id = claimed
    if project_id is None and len(bound) == 1 and (session is None or session.project_id is None):
        project_id = bound[0]
    observed_at = _claimed_time(request, identity, session, received_at, notes)
    notes.extend(_spool_problem_alerts(request))
    return HookContext(
        request, identity, received_at, session, project_id, event_id, observed_at, tuple(notes)
    )


# -- classify + decide ------------------------------------------------------------------------


def _oversized(command: str) -> Operation:
    return Operation(
        kind="shell",
        action="shell:Unresolved",
        resource=None,
        access="admin",
        risk="high",
        flags=["unresolved", "oversized"],
        attributes={"why": f"command of {len(command)} characters is too large to examine"},
        raw=command[:200],
    )


def classify_and_decide(context: HookContext, policy_set: PolicySet) -> Verdict:
    """Classify the tool call into operations and decide it, on the input as the agent sent it
    (unredacted: the policy must see what will actually run)."""
    request = context.request
    tool = request.tool_name or ""
    command = request.command
    if command is not None and len(command) > MAX_CLASSIFIED_COMMAND:
        operations = [_oversized(command)]
    else:
        where = ClassifyContext(cwd=request.cwd, home=request.home, project_root=request.cwd)
        operations = classify_tool_call(tool, request.tool_input, where)
    decision = decide(
        policy_set,
        DecisionRequest(
            developer_id=context.identity.developer_id,
            tool=tool,
            operations=operations,
            project_id=context.project_id,
            session_id=request.session_id,
            # Policies see the command's start when it is too large to examine (the call is
            # asked, at least): Cedar's own work must stay bounded too.
            command=command[:4096]
            if command and len(command) > MAX_CLASSIFIED_COMMAND
            else command,
        ),
    )
    return Verdict(tuple(operations), decision)


# -- build events -----------------------------------------------------------------------------


def build(
    context: HookContext,
    *,
    verdict: Verdict | None = None,
    stop: Stop | None = None,
    notes: tuple[Event, ...] = (),
    output_cap: int = DEFAULT_OUTPUT_CAP,
    input_cap: int = DEFAULT_INPUT_CAP,
) -> HookOutcome:
    """The events one hook request records and the answer it gets. ``notes`` (alerts about the
    request) are appended after the hook's own event and its operations."""
    request = context.request
    identity = context.identity
    event = event_from_request(
        request,
        Attribution(
            developer_id=identity.developer_id,
            project_id=context.project_id,
            source="spool" if context.spooled else "hook",
            timestamp=context.received_at,
            event_id=context.event_id,
            observed_at=context.observed_at,
        ),
        output_cap=output_cap,
        input_cap=input_cap,
    )
    session = context.session
    ended = session is not None and session.ended_at is not None
    ended_as = session.end_reason if session is not None and ended else None
    if not ended and stop is not None and stop.rule == KILLED_RULE:
        ended, ended_as = True, "killed"  # the gateway records that end (now, or its reaper)
    if isinstance(event, SessionEnd) and ended:
        # Already ended (killed, timed out): the agent's own end is kept, not a second end.
        event = AgentEvent(
            event_id=event.event_id,
            timestamp=event.timestamp,
            session_id=event.session_id,
            developer_id=event.developer_id,
            project_id=event.project_id,
            source=event.source,
            name="SessionEnd",
            payload={"reason": event.raw_reason, "endedEarlierAs": ended_as},
        )

    answer: dict[str, Any] = {}
    operations: list[Event] = []
    name = request.hook_event_name
    if stop is not None:
        answer = {"continue": False, "stopReason": stop.reason}
        if name in DECISION_EVENTS:
            answer |= deny(name, stop.reason)
        if isinstance(event, ToolInvocation):
            event = event.model_copy(
                update={
                    "policy_result": "denied",
                    "policy_rule": stop.rule,
                    "policy_reason": stop.reason,
                }
            )
    elif isinstance(event, ToolInvocation) and context.spooled:
        event = event.model_copy(
            update={
                "policy_result": "denied",
                "policy_rule": GATEWAY_DOWN_RULE,
                "policy_reason": "the audit gateway was unreachable; the hook client denied "
                "the call and spooled it",
            }
        )
    elif isinstance(event, ToolInvocation) and verdict is not None:
        decision = verdict.decision
        event = event.model_copy(
            update={
                "operations": list(verdict.operations),
                "policy_result": decision.result,
                "policy_rule": decision.rule,
                "policy_reason": decision.reason,
                "policy_version": decision.version,
            }
        )
        message = f"trailguard policy {decision.rule}: {decision.reason}"
        if decision.result == "denied":
            answer = deny("PreToolUse", message)
        elif decision.result == "ask":
            answer = ask(message)
        operations = [
            InfraOperation(
                session_id=event.session_id,
                developer_id=event.developer_id,
                project_id=event.project_id,
                tool_use_id=event.tool_use_id,
                operation=operation,
                source="gateway",
                timestamp=event.timestamp,
            )
            for operation in verdict.operations
        ]
    attributed = [
        replace_attribution(note, identity.developer_id, context.project_id)
        for note in (*context.notes, *notes)
    ]
    return HookOutcome([event, *operations, *attributed], 0, answer)


def replace_attribution(event: Event, developer_id: str | None, project_id: str | None) -> Event:
    """``event`` with the developer and project filled in where it has none."""
    update: dict[str, Any] = {}
    if event.developer_id is None and developer_id is not None:
        update["developer_id"] = developer_id
    if event.project_id is None and project_id is not None:
        update["project_id"] = project_id
    return event.model_copy(update=update) if update else event


# -- redact -----------------------------------------------------------------------------------


def redact_event(redactor: Redactor, event: Event) -> Event:
    """``event`` with every secret in its agent-controlled fields replaced by a tag."""
    redacted: Event = redactor.redact_event(event)
    return redacted


def redact(outcome: HookOutcome, redactor: Redactor) -> HookOutcome:
    """Every event of the outcome with its secrets replaced by tags: the last stage before the
    ledger. The answer is not redacted: it goes back to the agent that sent the secret."""
    redacted: list[Event] = redactor.redact_events(list(outcome.events))
    return replace(outcome, events=redacted)
