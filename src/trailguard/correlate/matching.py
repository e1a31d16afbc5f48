"""Joining a downstream record to the tool call that caused it (pure functions).

A tool call of the session is a candidate when the record's time falls in its window: from its
PreToolUse (the gateway's receipt time, minus the clock-skew allowance) to its result (plus the
allowance; a call without a result stays open until the session ended). Denied calls never ran
and are never candidates. Among candidates the call whose classified operations best explain
the record wins:

``exact``    an operation's IAM action is the record's and its resource agrees (the same ARN,
             one under a ``prefix/*`` the call declared, or the identifier it named)
``action``   the action agrees and there is no resource on one side to compare
``related``  a read of what the call declared (``ListObjectsV2`` of the bucket an ``aws s3
             sync`` writes to), or the credential calls an AWS CLI makes for it
             (``sts:AssumeRole`` for a profile with a role)
``time``     only the window holds it: the call did something its operations did not declare
             (or the declared action on another resource)
``none``     no call's window holds it

Ties go to the call whose window is nearest the record's time (CloudTrail's whole second is an
interval), then to the one that started last.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from trailguard.events import MatchLevel, Operation

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "Match",
    "Observed",
    "SessionTimeline",
    "ToolCall",
    "parse_time",
]

DEFAULT_CLOCK_SKEW: Final = timedelta(seconds=2)
"""CloudTrail's eventTime has whole seconds and comes from AWS's clock; the window is
widened by this much on each side."""

_RANK: Final[Mapping[MatchLevel, int]] = {"none": 0, "time": 1, "related": 2, "action": 3,
                                           "exact": 4}  # fmt: skip
EXPLAINED: Final = frozenset({"exact", "action", "related"})

# What an AWS SDK or the CLI calls on its own to get credentials for a profile.
_CREDENTIAL_ACTIONS: Final = frozenset(
    {
        "sts:AssumeRole",
        "sts:AssumeRoleWithWebIdentity",
        "sts:AssumeRoleWithSAML",
        "sts:GetSessionToken",
        "sso:GetRoleCredentials",
        "sso-oauth:CreateToken",
    }
)
_MAX_RESOURCE_TOKEN: Final = 2048


def parse_time(text: str) -> datetime:
    """A ledger timestamp (``2026-04-15T14:32:07.123Z``) as an aware datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass(frozen=True)
class ToolCall:
    tool_use_id: str
    tool: str
    started: datetime
    ended: datetime | None
    decision: str | None
    operations: tuple[Operation, ...] = ()


@dataclass(frozen=True)
class Observed:
    """What matching needs of a downstream record."""

    time: datetime
    precision: timedelta = timedelta(0)
    """How much the time was rounded down: CloudTrail's eventTime has whole seconds, so the
    call happened in [time, time + 1 s)."""
    actions: tuple[str, ...] = ()
    """IAM actions the record's call needed (none for an application log)."""
    access: str | None = None
    resources: tuple[str, ...] = ()
    """ARNs the record names."""
    names: frozenset[str] = frozenset()
    """Other identifiers in the request (a table name, an instance id, a queue URL)."""


@dataclass(frozen=True)
class Match:
    level: MatchLevel
    tool_use_id: str | None
    reason: str
    candidates: int = 0
    denied_call: str | None = None
    """A denied call of the session that asked for this very action (it ran anyway?)."""
    foreign_principal: bool = False
    """The record's AWS identity is not the one the session's explained calls used."""

    @property
    def explained(self) -> bool:
        return self.level in EXPLAINED


def _s3_bucket(arn: str) -> str | None:
    if not arn.startswith("arn:aws:s3:::"):
        return None
    return arn.removeprefix("arn:aws:s3:::").split("/", 1)[0] or None


def _agrees(token: str, observed: Observed) -> bool:
    """Whether one resource the classifier named is one the record names: the same ARN, an
    ARN under a trailing-``*`` prefix (``arn:aws:s3:::logs/*``), or the same identifier."""
    if token.startswith("arn:"):
        if token.endswith("*"):
            prefix = token[:-1]
            return any(arn.startswith(prefix) for arn in observed.resources)
        return token in observed.resources
    if token in observed.names:
        return True
    last = token.rstrip("/").rsplit("/", 1)[-1] if "://" in token else token
    return any(arn.endswith((f":{last}", f"/{last}")) for arn in observed.resources) or (
        last in observed.names
    )


def resource_agreement(resource: str | None, observed: Observed) -> bool | None:
    """True when the operation's resource is one the record names, False when both name
    resources and they differ, None when one side names none."""
    if not resource or len(resource) > _MAX_RESOURCE_TOKEN:
        return None
    if not observed.resources and not observed.names:
        return None
    tokens = [resource] if resource.startswith("arn:") else [t for t in resource.split(",") if t]
    return any(_agrees(token, observed) for token in tokens)


def _same_scope(resource: str | None, observed: Observed) -> bool:
    """Whether a read in the record concerns what the operation targets: the same S3 bucket,
    or an agreeing resource; an operation or record without resources is in scope."""
    agreement = resource_agreement(resource, observed)
    if agreement is not False:
        return True
    bucket = _s3_bucket(resource or "")
    return bucket is not None and any(_s3_bucket(arn) == bucket for arn in observed.resources)


def _service(action: str) -> str:
    return action.split(":", 1)[0]


def explain(call: ToolCall, observed: Observed) -> tuple[MatchLevel, str]:
    """How well ``call``'s classified operations explain the record."""
    aws_operations = [op for op in call.operations if op.kind == "aws"]
    best: tuple[MatchLevel, str] = (
        "time",
        f"in the time window of {call.tool} call {call.tool_use_id}, which declared "
        + (
            ", ".join(sorted({op.action for op in call.operations}))
            if call.operations
            else "no operations"
        ),
    )
    if not observed.actions:
        return best
    for op in aws_operations:
        if op.action in observed.actions:
            agreement = resource_agreement(op.resource, observed)
            if agreement is True:
                return "exact", f"{op.action} on {op.resource}, as classified"
            if agreement is None and _RANK[best[0]] < _RANK["action"]:
                best = ("action", f"{op.action}, as classified (no resource to compare)")
            elif agreement is False and best[0] == "time":
                # The action the call declared, on something else: the classified resource is
                # not what ran (a variable, a rewrite), so the record is not explained by it.
                best = (
                    "time",
                    f"the call declared {op.action} on {op.resource}, but the record is on "
                    f"{', '.join(observed.resources[:2]) or 'other resources'}",
                )
    if _RANK[best[0]] >= _RANK["related"]:
        return best
    if aws_operations and any(action in _CREDENTIAL_ACTIONS for action in observed.actions):
        return "related", "credentials the AWS CLI or SDK fetched for the call's operations"
    if observed.access == "read":
        for op in aws_operations:
            if any(_service(op.action) == _service(a) for a in observed.actions) and _same_scope(
                op.resource, observed
            ):
                return "related", f"a read the call's {op.action} on {op.resource} makes"
    return best


@dataclass
class SessionTimeline:
    """A session's tool calls, from its ledger documents, in order of their PreToolUse."""

    calls: list[ToolCall] = field(default_factory=list)
    ended_at: datetime | None = None
    _starts: list[datetime] = field(default_factory=list, repr=False)
    _latest_end: list[datetime] = field(default_factory=list, repr=False)
    """``_latest_end[i]``: the latest window end among ``calls[: i + 1]`` (an open call: max)."""

    def __post_init__(self) -> None:
        self.calls.sort(key=lambda call: call.started)
        self._starts = [call.started for call in self.calls]
        latest = datetime.min.replace(tzinfo=UTC)
        self._latest_end = []
        for call in self.calls:
            end = call.ended or self.ended_at or datetime.max.replace(tzinfo=UTC)
            latest = max(latest, end)
            self._latest_end.append(latest)

    @classmethod
    def from_documents(cls, documents: Iterable[Mapping[str, Any]]) -> SessionTimeline:
        invocations: dict[str, Mapping[str, Any]] = {}
        results: dict[str, datetime] = {}
        ended_at: datetime | None = None
        for document in documents:
            kind = document.get("eventType")
            tool_use_id = document.get("toolUseId")
            if kind == "tool_invocation" and tool_use_id and tool_use_id not in invocations:
                invocations[tool_use_id] = document
            elif kind == "tool_result" and tool_use_id and tool_use_id not in results:
                results[tool_use_id] = parse_time(document["timestamp"])
            elif kind == "session_end" and ended_at is None:
                ended_at = parse_time(document["timestamp"])
        calls = []
        for tool_use_id, document in invocations.items():
            operations = []
            for raw in document.get("operations") or []:
                try:
                    operations.append(Operation.model_validate(raw))
                except ValueError:
                    continue  # an operation this version cannot read explains nothing
            calls.append(
                ToolCall(
                    tool_use_id=tool_use_id,
                    tool=str(document.get("tool")),
                    started=parse_time(document["timestamp"]),
                    ended=results.get(tool_use_id),
                    decision=document.get("policyResult"),
                    operations=tuple(operations),
                )
            )
        return cls(calls, ended_at)

    def _window(self, call: ToolCall) -> tuple[datetime, datetime | None]:
        return call.started, call.ended or self.ended_at

    def match(self, observed: Observed, *, skew: timedelta = DEFAULT_CLOCK_SKEW) -> Match:
        """The call that best explains ``observed``, and how sure the join is."""
        ranked: list[tuple[int, timedelta, datetime, ToolCall, MatchLevel, str]] = []
        earliest, latest = observed.time, observed.time + observed.precision
        # Only calls that started before the record's interval (plus the allowance), walking
        # back until every earlier call had ended before it.
        index = bisect.bisect_right(self._starts, latest + skew)
        for position in range(index - 1, -1, -1):
            if self._latest_end[position] < earliest - skew:
                break
            call = self.calls[position]
            if call.decision == "denied":
                continue
            start, end = self._window(call)
            # How far the record's interval lies outside the call's window (0: they overlap).
            gap = max(start - latest, (earliest - end) if end is not None else timedelta(0))
            gap = max(gap, timedelta(0))
            if gap > skew:
                continue
            level, reason = explain(call, observed)
            ranked.append((_RANK[level], -gap, call.started, call, level, reason))
        denied = self._denied_call_for(observed)
        if not ranked:
            return Match(
                "none",
                None,
                "no tool call of the session was running at that time",
                0,
                denied,
            )
        ranked.sort(key=lambda entry: (entry[0], entry[1], entry[2]), reverse=True)
        _, _, _, call, level, reason = ranked[0]
        return Match(level, call.tool_use_id, reason, len(ranked), denied)

    def _denied_call_for(self, observed: Observed) -> str | None:
        for call in self.calls:
            if call.decision != "denied" or call.started > observed.time:
                continue
            for op in call.operations:
                if (
                    op.action in observed.actions
                    and resource_agreement(op.resource, observed) is not False
                ):
                    return call.tool_use_id
        return None
