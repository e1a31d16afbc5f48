"""The gateway side of cost: usage observations in, ``cost`` / ``budget_threshold`` / ``alert``
events out, and the session ended ``budget_exhausted`` when a budget runs out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from trailguard.capture.anthropic_proxy import ModelRequestRecord
from trailguard.capture.hook_request import UsageEntry
from trailguard.capture.otlp import ApiRequestUsage
from trailguard.cost.accounting import CostAccountant, UsageObservation
from trailguard.cost.budgets import BudgetTracker, Exhausted
from trailguard.cost.loops import LoopDetector
from trailguard.cost.usage import Usage
from trailguard.events import Cost, Event, SessionEnd, utc_now
from trailguard.gateway.fact_ids import FactIds
from trailguard.gateway.sessions import SessionRegistry
from trailguard.gateway.shared_changes import SESSIONS, SPEND, SharedChanges
from trailguard.gateway.shared_spend import SharedSpend
from trailguard.ledger.log import EventLog
from trailguard.retrieval import EventQuery, query_events
from trailguard.store.base import Store

BUDGET_RULE = "budget-exhausted"


def today() -> str:
    """The UTC date, ``2026-04-15`` (the budgets' day; asked several times per hook)."""
    return datetime.now(UTC).date().isoformat()


def preload_budgets(store: Store, budgets: BudgetTracker) -> None:
    """Count today's spend already in the ledger, so a restart does not reset budgets."""
    day = today()
    for event in query_events(store, EventQuery.build(event_type="cost", day=day)):
        if event.get("costUsd") is None:
            continue
        amount = Decimal(str(event["costUsd"]))
        for scope, key in budgets.keys(
            event.get("sessionId"), event.get("developerId"), event.get("projectId"), day
        ):
            budgets.preload(scope, key, amount)


class CostRecorder:
    def __init__(
        self,
        ledger: EventLog,
        sessions: SessionRegistry,
        accountant: CostAccountant,
        budgets: BudgetTracker,
        loops: LoopDetector,
    ) -> None:
        self.ledger = ledger
        self.sessions = sessions
        self.accountant = accountant
        self.budgets = budgets
        self.loops = loops
        self.shared_spend: SharedSpend | None = None
        """Set for a replica of a shared ledger: the other replicas' spend counts too."""
        self.changes: SharedChanges | None = None
        """Set for one of several workers: an exhausted budget is announced to the others."""
        self.facts: FactIds | None = None
        """Ids of the ends it records (a budget's end noticed by two workers is one fact)."""

    def exhausted(self, session_id: str | None) -> Exhausted | None:
        """The budget this session's activity has exhausted, if any."""
        config = self.budgets.config
        # The session's developer and project matter only to their daily budgets: without
        # those, its summary (a state.sqlite3 query for a session no hook registered, on
        # every proxied model request) is not needed.
        needs_owner = config.developer_day_usd is not None or config.project_day_usd is not None
        summary = self.sessions.get(session_id) if session_id and needs_owner else None
        return self.budgets.exhausted(
            session_id,
            summary.developer_id if summary else None,
            summary.project_id if summary else None,
            today(),
        )

    def refusal(self, session_id: str | None) -> str | None:
        """Why a model request of this session must be refused (for the API proxy)."""
        exhausted = self.exhausted(session_id)
        return exhausted.reason() if exhausted else None

    def events_for(self, observations: Sequence[UsageObservation]) -> list[Event]:
        """Cost, threshold, spike and end events for new observations (not yet appended)."""
        return self._count(observations)[0]

    def _count(self, observations: Sequence[UsageObservation]) -> tuple[list[Event], bool]:
        """``events_for``, and whether a budget they fall under is now exhausted."""
        events: list[Event] = []
        stopped = False
        for observation in observations:
            session_id = observation.session_id
            summary = self.sessions.get(session_id) if session_id else None
            developer = summary.developer_id if summary else observation.developer_id
            project = summary.project_id if summary else None
            for event in self.accountant.record(
                observation, developer_id=developer, project_id=project
            ):
                events.append(event)
                if isinstance(event, Cost) and event.cost_usd is not None:
                    amount = Decimal(str(event.cost_usd))
                    events.extend(
                        self.budgets.add(
                            amount,
                            session_id=session_id,
                            developer_id=developer,
                            project_id=project,
                            day=today(),
                        )
                    )
                    if session_id:
                        events.extend(self.loops.spend(session_id, amount))
            if self.shared_spend is not None:
                self.shared_spend.mine(e.event_id for e in events if isinstance(e, Cost))
            exhausted = self.budgets.exhausted(session_id, developer, project, today())
            stopped = stopped or exhausted is not None
            if exhausted and session_id and summary is not None and summary.ended_at is None:
                end = SessionEnd(
                    session_id=session_id,
                    developer_id=developer,
                    project_id=project,
                    reason="budget_exhausted",
                    raw_reason=exhausted.reason(),
                    source="gateway",
                )
                if self.facts is not None:  # two workers may both see it: recorded once
                    fact = self.facts.budget_end(
                        session_id, exhausted.scope, exhausted.key, exhausted.limit
                    )
                    end = end.model_copy(update={"event_id": fact})
                events.append(end)
                self.sessions.end(session_id, "budget_exhausted", exhausted.reason(), utc_now())
        return events, stopped

    async def record(
        self,
        observations: Sequence[UsageObservation],
        tool_calls: Sequence[tuple[str | None, str, tuple[str, ...]]] = (),
    ) -> None:
        """Count new usage, then attribute ``tool_calls`` — ``(session, request id, tool use
        ids)`` that a source without usage names (telemetry) — to the requests they came from."""
        if self.shared_spend is not None:
            # Another process may have counted one of these requests from another source.
            for session in {o.session_id for o in observations if o.session_id}:
                await asyncio.to_thread(self.shared_spend.catch_up, session)
        events, stopped = self._count(observations)
        for session_id, request_id, tool_use_ids in tool_calls:
            events.extend(
                self.accountant.attribute_tool_calls(session_id, request_id, tool_use_ids, "otlp")
            )
        if events:
            await asyncio.wrap_future(self.ledger.submit_many(events))
        if stopped and self.changes is not None:
            # Durable now: the other workers take in the spend and the ends before they answer.
            for event in events:
                if isinstance(event, SessionEnd):
                    await asyncio.to_thread(self.sessions.persist, event.session_id or "")
            self.changes.bump(SESSIONS, SPEND)


def from_proxy(record: ModelRequestRecord) -> UsageObservation | None:
    """The usage the API proxy saw (None for a request that produced no message)."""
    if record.message_id is None and not record.usage:
        return None
    usage = dict(record.usage)
    split = {
        key.split(".", 1)[1]: value
        for key, value in usage.items()
        if key.startswith("cache_creation.")
    }
    if split:
        usage["cache_creation"] = split  # type: ignore[assignment]
    return UsageObservation(
        source="proxy",
        session_id=record.session_id,
        model=record.model,
        usage=Usage.from_anthropic(usage),
        request_id=record.request_id,
        message_id=record.message_id,
        tool_use_ids=record.tool_use_ids,
        developer_id=record.developer_id,
    )


def from_telemetry(usage: ApiRequestUsage) -> UsageObservation:
    remainder = max(
        usage.cache_creation_tokens
        - usage.cache_creation_5m_tokens
        - usage.cache_creation_1h_tokens,
        0,
    )
    return UsageObservation(
        source="otlp",
        session_id=usage.session_id,
        model=usage.model,
        usage=Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_write_5m_tokens=usage.cache_creation_5m_tokens + remainder,
            cache_write_1h_tokens=usage.cache_creation_1h_tokens,
            cache_read_tokens=usage.cache_read_tokens,
        ),
        request_id=usage.request_id,
        reported_cost_usd=usage.cost_usd,
    )


def from_transcript(session_id: str, entries: Sequence[UsageEntry]) -> list[UsageObservation]:
    """The usage entries the hook client read from the transcript (``trailguard.usage``)."""
    return [
        UsageObservation(
            source="transcript",
            session_id=session_id,
            model=entry.model,
            usage=Usage.from_anthropic(entry.usage),
            request_id=entry.request_id,
            message_id=entry.message_id,
            tool_use_ids=entry.tool_use_ids,
        )
        for entry in entries
    ]
