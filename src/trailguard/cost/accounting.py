"""From model requests to dollars: one ``cost`` event per model request, counted once.

Usage reaches the gateway up to three ways (the API proxy, OpenTelemetry, the transcript read
by the hook client). Each observation carries whatever ids its source knows — the proxy both
the request id and the message id, telemetry the request id, the transcript the message id — and
a fingerprint of the usage itself; an observation matching a recorded one on any key in the same
session is the same request and is not counted again.

Telemetry and the transcript are claims of the developer's machine; the proxy's figure is the
gateway's own observation and wins whichever arrives first: a request counted from a smaller
claim is charged the difference when the proxy reports it (a ``cost`` event marked
``correction``), and every mismatch raises a ``usage_claim_mismatch`` alert.

A response's cost is attributed to the tool calls it emitted (split evenly); a response that
called no tool is session overhead. Running totals feed the budgets.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Mapping
from dataclasses import astuple, dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal, cast

from pydantic import JsonValue

from trailguard.cost.prices import PriceTable
from trailguard.cost.usage import Usage, cost_usd, split_evenly
from trailguard.events import AgentEvent, Alert, Cost

Source = Literal["proxy", "otlp", "transcript"]
COST_ATTRIBUTION = "cost_attribution"
"""agent_event name recording the tool calls a request counted earlier turned out to emit."""
MAX_PENDING_ATTRIBUTIONS = 10_000
"""Tool calls named for requests whose usage has not arrived yet, kept at most (oldest go)."""
OBSERVED: frozenset[Source] = frozenset({"proxy"})
"""Sources the gateway observes itself, on the wire; the others are the client's claims."""
USAGE_CLAIM_MISMATCH = "usage_claim_mismatch"
"""Alert type: the API proxy observed other usage for a model request than a claim reported."""


@dataclass(frozen=True)
class UsageObservation:
    source: Source
    session_id: str | None
    model: str | None
    usage: Usage
    request_id: str | None = None
    message_id: str | None = None
    tool_use_ids: tuple[str, ...] = ()
    reported_cost_usd: float | None = None
    """What the source itself says it cost (telemetry's cost_usd), kept for comparison."""
    developer_id: str | None = None
    """The reporting token's developer, for a session the gateway does not know yet."""

    @property
    def fingerprint(self) -> tuple[object, ...]:
        u = self.usage
        return (
            self.model,
            u.input_tokens,
            u.output_tokens,
            u.cache_write_5m_tokens,
            u.cache_write_1h_tokens,
            u.cache_read_tokens,
        )

    def same_request(self, other: UsageObservation) -> bool:
        """Whether two observations describe one model request. A shared id decides; without
        one, equal usage from two different sources whose ids do not contradict counts as the
        same request (two requests with equal usage from one source stay two)."""
        for mine, theirs in (
            (self.request_id, other.request_id),
            (self.message_id, other.message_id),
        ):
            if mine and theirs and mine == theirs:
                return True
        if self.source == other.source:
            return False
        contradicts = (self.request_id and other.request_id) or (
            self.message_id and other.message_id
        )
        return not contradicts and self.fingerprint == other.fingerprint


def _cost_extra(price_table: str, message_id: str | None) -> dict[str, JsonValue]:
    extra: dict[str, JsonValue] = {"priceTable": price_table}
    if message_id:
        extra["messageId"] = message_id
    return extra


def is_correction(cost: Mapping[str, Any]) -> bool:
    """Whether a ``cost`` event (ledger JSON) is a correction: the difference charged when the
    API proxy observed more than a claim reported for a request already counted."""
    extra = cost.get("extra")
    return isinstance(extra, Mapping) and isinstance(extra.get("correction"), Mapping)


def _token_fields(usage: Usage) -> dict[str, int]:
    """The usage under the ``cost`` event's field names."""
    return {
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "cacheWrite5mTokens": usage.cache_write_5m_tokens,
        "cacheWrite1hTokens": usage.cache_write_1h_tokens,
        "cacheReadTokens": usage.cache_read_tokens,
    }


def _usage_of(fields: Mapping[str, Any]) -> Usage:
    """The usage in a ``cost`` event's ledger JSON (or in its correction's ``observed``)."""
    return Usage(
        input_tokens=int(fields.get("inputTokens") or 0),
        output_tokens=int(fields.get("outputTokens") or 0),
        cache_write_5m_tokens=int(fields.get("cacheWrite5mTokens") or 0),
        cache_write_1h_tokens=int(fields.get("cacheWrite1hTokens") or 0),
        cache_read_tokens=int(fields.get("cacheReadTokens") or 0),
    )


def _usd(amount: Decimal | None) -> str:
    return "an unknown amount" if amount is None else f"${amount.normalize():f}"


def _figure(observation: UsageObservation, amount: Decimal | None) -> dict[str, JsonValue]:
    return {
        "source": observation.source,
        "model": observation.model,
        **_token_fields(observation.usage),
        "costUsd": float(amount) if amount is not None else None,
    }


@dataclass
class _Counted:
    """One model request as remembered: what its sources told (merged; an observed figure
    replaces a claimed one) and what the ledger has charged for it so far (None: unknown)."""

    observation: UsageObservation
    charged: Decimal | None


@dataclass
class SessionSpend:
    total: Decimal = Decimal(0)
    unknown_requests: int = 0
    """Requests whose model has no price: their cost is unknown, never counted as zero."""
    per_tool_call: dict[str, Decimal] = field(default_factory=dict)
    overhead: Decimal = Decimal(0)


class CostAccountant:
    """Thread-safe: the proxy, the OTLP route and hook handlers report concurrently."""

    def __init__(self, prices: PriceTable) -> None:
        self.prices = prices
        self._lock = threading.Lock()
        self._seen: dict[str, list[_Counted]] = defaultdict(list)
        self.sessions: dict[str, SessionSpend] = defaultdict(SessionSpend)
        self._warned_models: set[str] = set()
        self._pending: OrderedDict[tuple[str, str], tuple[str, ...]] = OrderedDict()
        """(session, request id) → tool calls named before the request's usage arrived."""

    def record(
        self, observation: UsageObservation, *, developer_id: str | None, project_id: str | None
    ) -> list[Cost | Alert | AgentEvent]:
        """The events for a new observation: one ``cost`` event (plus a warning the first time a
        model has no price); for a request already counted, nothing, unless the proxy's figure
        overrules a claim counted first (:meth:`_overrule`)."""
        session = observation.session_id or ""
        with self._lock:
            if observation.request_id:
                named = self._pending.pop((session, observation.request_id), ())
                if named:
                    ids = tuple(dict.fromkeys((*observation.tool_use_ids, *named)))
                    observation = replace(observation, tool_use_ids=ids)
            counted = self._find(session, observation)
            if counted is not None:
                return self._again(counted, observation, developer_id, project_id)
            price = self.prices.price_for(observation.model or "")
            spend = self.sessions[session]
            events: list[Cost | Alert | AgentEvent] = []
            amount: Decimal | None = None
            if price is None:
                spend.unknown_requests += 1
                model = observation.model or "(none)"
                if model not in self._warned_models:
                    self._warned_models.add(model)
                    events.append(
                        Alert(
                            session_id=observation.session_id,
                            developer_id=developer_id,
                            project_id=project_id,
                            alert_type="unknown_model_price",
                            severity="medium",
                            message=f"no price for model {model!r} in price table "
                            f"{self.prices.version}: its cost is recorded as unknown",
                            source="gateway",
                        )
                    )
            else:
                amount = cost_usd(observation.usage, price)
                _spend_on(spend, amount, observation.tool_use_ids)
            self._seen[session].append(_Counted(observation, amount))
        events.append(
            self._cost_event(
                observation,
                observation.usage,
                amount,
                developer_id=developer_id,
                project_id=project_id,
                extra=_cost_extra(self.prices.version, observation.message_id),
            )
        )
        return events

    @staticmethod
    def _cost_event(
        observation: UsageObservation,
        usage: Usage,
        amount: Decimal | None,
        *,
        developer_id: str | None,
        project_id: str | None,
        extra: dict[str, JsonValue],
    ) -> Cost:
        return Cost(
            session_id=observation.session_id,
            developer_id=developer_id,
            project_id=project_id,
            model=observation.model,
            request_id=observation.request_id or observation.message_id,
            tool_use_ids=list(observation.tool_use_ids),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_write_5m_tokens=usage.cache_write_5m_tokens,
            cache_write_1h_tokens=usage.cache_write_1h_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cost_usd=float(amount) if amount is not None else None,
            source=observation.source,
            extra=extra,
        )

    def note_counted_elsewhere(self, cost: Mapping[str, Any]) -> None:
        """A ``cost`` event another process sharing the ledger recorded (its ledger JSON): the
        request it counted is counted, so the same request reported here by another source is
        not counted again, and a correction (the proxy's figure overruling a claim) stands for
        the observed figure. Spend is not added here (budgets read it on their own)."""
        if cost.get("eventType", "cost") != "cost":
            return
        extra = cost.get("extra") or {}
        extra = extra if isinstance(extra, Mapping) else {}
        correction = extra.get("correction")
        correction = correction if isinstance(correction, Mapping) else {}
        observed = correction.get("observed")
        figure = observed if isinstance(observed, Mapping) else cost
        request_id = cost.get("requestId")
        message_id = extra.get("messageId")
        observation = UsageObservation(
            source=cast(Source, cost.get("source") or "proxy"),
            session_id=cost.get("sessionId"),
            model=figure.get("model") or cost.get("model"),
            usage=_usage_of(figure),
            request_id=None if request_id == message_id else request_id,
            message_id=message_id,
            tool_use_ids=tuple(cost.get("toolUseIds") or ()),
        )
        amount = None if cost.get("costUsd") is None else Decimal(str(cost["costUsd"]))
        session = observation.session_id or ""
        with self._lock:
            counted = self._find(session, observation)
            if counted is None:
                self._seen[session].append(_Counted(observation, amount))
                return
            counted.observation = _merged(counted.observation, observation)
            if amount is not None:
                counted.charged = (counted.charged or Decimal(0)) + amount

    def _find(self, session: str, observation: UsageObservation) -> _Counted | None:
        """The request counted earlier that ``observation`` reports again, if any."""
        for counted in self._seen[session]:
            if observation.same_request(counted.observation):
                return counted
        return None

    def _again(
        self,
        counted: _Counted,
        observation: UsageObservation,
        developer_id: str | None,
        project_id: str | None,
    ) -> list[Cost | Alert | AgentEvent]:
        """A request counted earlier, reported again: its ids and tool calls are merged in (a
        third source then matches on either's ids), and the proxy's figure overrules a claim."""
        earlier = counted.observation
        counted.observation = _merged(earlier, observation)
        events = self._late_attribution(counted, earlier, observation)
        if observation.source in OBSERVED and earlier.source not in OBSERVED:
            events.extend(self._overrule(counted, earlier, observation, developer_id, project_id))
        return events

    def _overrule(
        self,
        counted: _Counted,
        claim: UsageObservation,
        observed: UsageObservation,
        developer_id: str | None,
        project_id: str | None,
    ) -> list[Cost | Alert | AgentEvent]:
        """The proxy observed a request that was counted from a claim (telemetry, transcript):
        when the observed figure costs more than was charged, the difference is charged (a
        ``cost`` event of its own: the ledger is never rewritten) and a high alert names both
        figures. An observed figure below the claim is a medium alert: the larger charge
        stands, since a cost event is never negative and over-counting cannot evade a budget."""
        if claim.fingerprint == observed.fingerprint:
            return []
        price = self.prices.price_for(observed.model or "")
        true = cost_usd(observed.usage, price) if price is not None else None
        charged = counted.charged
        events: list[Cost | Alert | AgentEvent] = []
        difference = Decimal(0)
        if true is None:
            outcome = "the observed model has no price: the claim's charge stands"
        elif true <= (charged or Decimal(0)):
            outcome = "the claim's charge stands (a charge is never taken back)"
        else:
            difference = true - (charged or Decimal(0))
            counted.charged = true
            spend = self.sessions[observed.session_id or ""]
            if charged is None and spend.unknown_requests > 0:
                spend.unknown_requests -= 1
            calls = counted.observation.tool_use_ids
            _spend_on(spend, difference, calls)
            pairs = zip(astuple(observed.usage), astuple(claim.usage), strict=True)
            more = Usage(*(max(seen - said, 0) for seen, said in pairs))
            correction: dict[str, JsonValue] = {
                "claimedSource": claim.source,
                "claimedUsd": float(charged) if charged is not None else None,
                "observed": _figure(observed, true),
            }
            events.append(
                self._cost_event(
                    replace(observed, tool_use_ids=calls),
                    more,
                    difference,
                    developer_id=developer_id,
                    project_id=project_id,
                    extra={
                        **_cost_extra(self.prices.version, observed.message_id),
                        "correction": correction,
                    },
                )
            )
            outcome = f"the difference, {_usd(difference)}, is charged now"
        request_id = observed.request_id or observed.message_id or claim.request_id
        session = observed.session_id or claim.session_id
        seen, said = observed.usage, claim.usage
        events.append(
            Alert(
                session_id=session,
                developer_id=developer_id,
                project_id=project_id,
                alert_type=USAGE_CLAIM_MISMATCH,
                severity="high" if difference > 0 else "medium",
                message=f"model request {request_id} of session {session}: the {claim.source} "
                f"claimed {said.input_tokens} input / {said.output_tokens} output tokens of "
                f"{claim.model} ({_usd(charged)}), the API proxy observed "
                f"{seen.input_tokens} / {seen.output_tokens} of {observed.model} "
                f"({_usd(true)}); {outcome}",
                details={
                    "requestId": request_id,
                    "messageId": observed.message_id or claim.message_id,
                    "claimed": _figure(claim, charged),
                    "observed": _figure(observed, true),
                    "chargedUsd": float(difference),
                },
                source="gateway",
            )
        )
        return events

    def attribute_tool_calls(
        self,
        session_id: str | None,
        request_id: str,
        tool_use_ids: tuple[str, ...],
        source: Source,
    ) -> list[Cost | Alert | AgentEvent]:
        """Tool calls that a source without usage of its own names for a model request
        (telemetry's ``tool_decision`` / ``tool_result`` carry ``request_id`` and
        ``tool_use_id``): the request's cost moves from overhead to those calls. When the
        request's usage has not arrived yet, they are kept until it does."""
        session = session_id or ""
        with self._lock:
            for counted in self._seen.get(session, []):
                earlier = counted.observation
                if earlier.request_id == request_id:
                    later = replace(earlier, source=source, tool_use_ids=tool_use_ids)
                    counted.observation = _merged(earlier, later)
                    return self._late_attribution(counted, earlier, later)
            key = (session, request_id)
            known = self._pending.pop(key, ())
            self._pending[key] = tuple(dict.fromkeys((*known, *tool_use_ids)))
            while len(self._pending) > MAX_PENDING_ATTRIBUTIONS:
                self._pending.popitem(last=False)
            return []

    def _late_attribution(
        self, counted: _Counted, earlier: UsageObservation, later: UsageObservation
    ) -> list[Cost | Alert | AgentEvent]:
        """A request counted with fewer tool calls than a later source names (telemetry's
        ``api_request`` knows none; its ``tool_decision`` records name them one by one): the
        ledger records the attribution, and the request's cost is split again over all of
        them, moving from overhead (or from the calls known before) to the calls."""
        calls = tuple(dict.fromkeys((*earlier.tool_use_ids, *later.tool_use_ids)))
        if calls == earlier.tool_use_ids or counted.charged is None:
            return []
        amount = counted.charged
        spend = self.sessions[earlier.session_id or ""]
        if earlier.tool_use_ids:
            old_shares = split_evenly(amount, len(earlier.tool_use_ids))
            for tool_use_id, share in zip(earlier.tool_use_ids, old_shares, strict=True):
                spend.per_tool_call[tool_use_id] -= share
        else:
            spend.overhead -= amount
        for tool_use_id, share in zip(calls, split_evenly(amount, len(calls)), strict=True):
            spend.per_tool_call[tool_use_id] = (
                spend.per_tool_call.get(tool_use_id, Decimal(0)) + share
            )
        return [
            AgentEvent(
                session_id=earlier.session_id,
                name=COST_ATTRIBUTION,
                payload={
                    "requestId": earlier.request_id or later.request_id,
                    "messageId": earlier.message_id or later.message_id,
                    "toolUseIds": list(calls),
                    "source": later.source,
                },
                source="gateway",
            )
        ]

    def session_total(self, session_id: str) -> Decimal:
        with self._lock:
            return self.sessions[session_id].total if session_id in self.sessions else Decimal(0)


def _spend_on(spend: SessionSpend, amount: Decimal, calls: tuple[str, ...]) -> None:
    """Add a charge to the session: split evenly over the tool calls, else overhead."""
    spend.total += amount
    if not calls:
        spend.overhead += amount
        return
    for tool_use_id, share in zip(calls, split_evenly(amount, len(calls)), strict=True):
        spend.per_tool_call[tool_use_id] = spend.per_tool_call.get(tool_use_id, Decimal(0)) + share


def _merged(first: UsageObservation, second: UsageObservation) -> UsageObservation:
    """One request's two reports as one: ids and tool calls united; the figure (source, model,
    usage) the first's, unless only the second was observed by the gateway itself."""
    figure = second if second.source in OBSERVED and first.source not in OBSERVED else first
    other = first if figure is second else second
    return UsageObservation(
        source=figure.source,
        session_id=first.session_id,
        model=figure.model or other.model,
        usage=figure.usage,
        request_id=first.request_id or second.request_id,
        message_id=first.message_id or second.message_id,
        tool_use_ids=tuple(dict.fromkeys((*first.tool_use_ids, *second.tool_use_ids))),
        reported_cost_usd=first.reported_cost_usd
        if first.reported_cost_usd is not None
        else second.reported_cost_usd,
    )
