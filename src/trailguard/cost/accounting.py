"""From model requests to dollars: one ``cost`` event per model request, counted once.

Usage reaches the gateway up to three ways (the API proxy, OpenTelemetry, the transcript read
by the hook client). Each observation carries whatever ids its source knows — the proxy both
the request id and the message id, telemetry the request id, the transcript the message id — and
a fingerprint of the usage itself; an observation matching a recorded one on any key in the same
session is the same request and is not counted again.

A response's cost is attributed to the tool calls it emitted (split evenly); a response that
called no tool is session overhead. Running totals feed the budgets.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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
        self._seen: dict[str, list[UsageObservation]] = defaultdict(list)
        self.sessions: dict[str, SessionSpend] = defaultdict(SessionSpend)
        self._warned_models: set[str] = set()
        self._pending: OrderedDict[tuple[str, str], tuple[str, ...]] = OrderedDict()
        """(session, request id) → tool calls named before the request's usage arrived."""

    def record(
        self, observation: UsageObservation, *, developer_id: str | None, project_id: str | None
    ) -> list[Cost | Alert | AgentEvent]:
        """The events for a new observation: one ``cost`` event (plus a warning the first time a
        model has no price), or nothing when this request was already counted."""
        session = observation.session_id or ""
        with self._lock:
            if observation.request_id:
                named = self._pending.pop((session, observation.request_id), ())
                if named:
                    ids = tuple(dict.fromkeys((*observation.tool_use_ids, *named)))
                    observation = replace(observation, tool_use_ids=ids)
            earlier = self._remember(session, observation)
            if earlier is not None:
                return self._late_attribution(earlier, observation, session)
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
                spend.total += amount
                if observation.tool_use_ids:
                    shares = split_evenly(amount, len(observation.tool_use_ids))
                    for tool_use_id, share in zip(observation.tool_use_ids, shares, strict=True):
                        spend.per_tool_call[tool_use_id] = (
                            spend.per_tool_call.get(tool_use_id, Decimal(0)) + share
                        )
                else:
                    spend.overhead += amount
        usage = observation.usage
        events.append(
            Cost(
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
                extra=_cost_extra(self.prices.version, observation.message_id),
            )
        )
        return events

    def note_counted_elsewhere(self, cost: Mapping[str, Any]) -> None:
        """A ``cost`` event another process sharing the ledger recorded (its ledger JSON): the
        request it counted is counted, so the same request reported here by another source is
        not counted again. Spend is not added here (budgets read it on their own)."""
        if cost.get("eventType", "cost") != "cost":
            return
        extra = cost.get("extra") or {}
        request_id = cost.get("requestId")
        message_id = extra.get("messageId") if isinstance(extra, Mapping) else None
        observation = UsageObservation(
            source=cast(Source, cost.get("source") or "proxy"),
            session_id=cost.get("sessionId"),
            model=cost.get("model"),
            usage=Usage(
                input_tokens=int(cost.get("inputTokens") or 0),
                output_tokens=int(cost.get("outputTokens") or 0),
                cache_write_5m_tokens=int(cost.get("cacheWrite5mTokens") or 0),
                cache_write_1h_tokens=int(cost.get("cacheWrite1hTokens") or 0),
                cache_read_tokens=int(cost.get("cacheReadTokens") or 0),
            ),
            request_id=None if request_id == message_id else request_id,
            message_id=message_id,
            tool_use_ids=tuple(cost.get("toolUseIds") or ()),
        )
        with self._lock:
            self._remember(observation.session_id or "", observation)

    def _remember(self, session: str, observation: UsageObservation) -> UsageObservation | None:
        """Note a request as counted; returns the earlier observation of the same request,
        if any (merged with this one: a third source then matches on either's ids)."""
        seen = self._seen[session]
        for index, earlier in enumerate(seen):
            if observation.same_request(earlier):
                seen[index] = _merged(earlier, observation)
                return earlier
        seen.append(observation)
        return None

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
            seen = self._seen.get(session, [])
            for index, earlier in enumerate(seen):
                if earlier.request_id == request_id:
                    later = replace(earlier, source=source, tool_use_ids=tool_use_ids)
                    seen[index] = _merged(earlier, later)
                    return self._late_attribution(earlier, later, session)
            key = (session, request_id)
            known = self._pending.pop(key, ())
            self._pending[key] = tuple(dict.fromkeys((*known, *tool_use_ids)))
            while len(self._pending) > MAX_PENDING_ATTRIBUTIONS:
                self._pending.popitem(last=False)
            return []

    def _late_attribution(
        self, earlier: UsageObservation, later: UsageObservation, session: str
    ) -> list[Cost | Alert | AgentEvent]:
        """A request counted with fewer tool calls than a later source names (telemetry's
        ``api_request`` knows none; its ``tool_decision`` records name them one by one): the
        ledger records the attribution, and the request's cost is split again over all of
        them, moving from overhead (or from the calls known before) to the calls."""
        calls = tuple(dict.fromkeys((*earlier.tool_use_ids, *later.tool_use_ids)))
        if calls == earlier.tool_use_ids:
            return []
        price = self.prices.price_for(earlier.model or later.model or "")
        if price is None:
            return []
        amount = cost_usd(earlier.usage, price)
        spend = self.sessions[session]
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


def _merged(first: UsageObservation, second: UsageObservation) -> UsageObservation:
    return UsageObservation(
        source=first.source,
        session_id=first.session_id,
        model=first.model or second.model,
        usage=first.usage,
        request_id=first.request_id or second.request_id,
        message_id=first.message_id or second.message_id,
        tool_use_ids=tuple(dict.fromkeys((*first.tool_use_ids, *second.tool_use_ids))),
        reported_cost_usd=first.reported_cost_usd
        if first.reported_cost_usd is not None
        else second.reported_cost_usd,
    )
