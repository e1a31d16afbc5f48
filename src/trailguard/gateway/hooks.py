"""One Claude Code hook request through the gateway: the pipeline's stages (gateway/pipeline.py)
composed with their side effects — session state, the durable append, cost. The answer is sent
only after the events are committed, so for PreToolUse the record exists before the tool runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from trailguard.capture.claude_code import DEFAULT_OUTPUT_CAP
from trailguard.capture.hook_request import HookRequest
from trailguard.completeness.live import transcript_sighting
from trailguard.errors import ConflictError, SessionOwnershipError
from trailguard.events import Alert, Event, SessionEnd, utc_now
from trailguard.gateway import pipeline
from trailguard.gateway.costs import BUDGET_RULE, CostRecorder, from_transcript
from trailguard.gateway.sessions import SessionRegistry
from trailguard.gateway.shared_changes import ChangeWatch
from trailguard.ledger.log import EventLog
from trailguard.policy.store import PolicyStore
from trailguard.redact import Redactor
from trailguard.store.gateway_state import Identity

_T = TypeVar("_T")


@dataclass(frozen=True)
class HookReply:
    status: int
    body: dict[str, Any]


class HookHandler:
    """Composes the stages for one request. CPU-bound stages (classify, decide, build, redact)
    run on ``executor`` so a large request never holds up the event loop that answers others."""

    def __init__(
        self,
        ledger: EventLog,
        sessions: SessionRegistry,
        policies: PolicyStore,
        redactor: Redactor,
        costs: CostRecorder | None = None,
        *,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        executor: Executor | None = None,
    ) -> None:
        self.ledger = ledger
        self.sessions = sessions
        self.policies = policies
        self.redactor = redactor
        self.costs = costs
        self.output_cap = output_cap
        self.executor = executor
        self.watch: ChangeWatch | None = None
        """Set for one of several workers (``serve --workers N``)."""

    async def _off_loop(self, work: Callable[[], _T], *, inline: bool = False) -> _T:
        if self.executor is None or inline:
            return work()
        return await asyncio.get_running_loop().run_in_executor(self.executor, work)

    def _stop(self, session_id: str) -> pipeline.Stop | None:
        """Why the session may not go on: killed, or out of budget."""
        killed = self.sessions.kill_request(session_id)
        if killed is not None:
            by = killed.requested_by or "an admin"
            when = (
                f"{killed.requested_at}: {killed.reason}" if killed.reason else killed.requested_at
            )
            return pipeline.Stop(
                pipeline.KILLED_RULE,
                f"trailguard: session {session_id} was killed by {by} at {when}",
            )
        exhausted = self.costs.exhausted(session_id) if self.costs is not None else None
        if exhausted is not None:
            return pipeline.Stop(BUDGET_RULE, exhausted.reason())
        return None

    def _session_notes(self, context: pipeline.HookContext) -> list[Event]:
        """Session bookkeeping for this request, and the alerts it raises."""
        request = context.request
        developer = context.identity.developer_id
        if request.hook_event_name == "SessionStart":
            self.sessions.start(
                request.session_id, developer, context.project_id, context.received_at
            )
            return []
        _, unknown = self.sessions.touch(request.session_id, developer, context.received_at)
        if not unknown:
            return []
        return [
            Alert(
                session_id=request.session_id,
                alert_type="session_not_started",
                severity="medium",
                message=f"{request.hook_event_name} arrived for session {request.session_id}, "
                "which never started (no SessionStart was recorded): the session is flagged",
                source="gateway",
            )
        ]

    def _loop_alerts(self, request: HookRequest) -> list[Event]:
        if self.costs is None or request.client.spooled:
            return []
        loops = self.costs.loops
        tool = request.tool_name or ""
        if request.hook_event_name == "PreToolUse":
            return list(loops.tool_call(request.session_id, tool, request.tool_input))
        if request.hook_event_name == "PostToolUseFailure":
            return list(loops.tool_failed(request.session_id, tool, request.tool_input))
        return []

    async def handle(
        self,
        request: HookRequest,
        identity: Identity,
        event_id: str | None = None,
        *,
        inline: bool = False,
    ) -> HookReply:
        """Record one hook request and answer it. Raises ConflictError for a replayed event id
        (nothing recorded twice). ``inline``: a small request, whose stages run on the event
        loop rather than on ``executor``."""
        if self.watch is not None and self.watch.stale():
            # Another worker killed a session, exhausted a budget or changed the policy since
            # this one last looked: take it in before this request is decided.
            await asyncio.to_thread(self.watch.refresh)
        session_id = request.session_id
        session = self.sessions.get(session_id)
        if session is not None and session.developer_id not in (None, identity.developer_id):
            # A session belongs to whoever opened it: nothing from anyone else is recorded into
            # it (the refusal is recorded, under the refused identity, not the session).
            raise SessionOwnershipError(
                f"session {session_id} belongs to another developer; this token "
                f"({identity.token_id}) may not add to, end or restart it",
                {
                    "targetSessionId": session_id,
                    "hookEventName": request.hook_event_name,
                    "tokenId": identity.token_id,
                },
            )
        context = pipeline.normalise(
            request,
            identity,
            session=session,
            received_at=utc_now(),
            event_id=event_id,
        )
        policy_set = self.policies.current
        stop = self._stop(session_id)
        loop_alerts = self._loop_alerts(request)

        def process() -> pipeline.HookOutcome:
            verdict = (
                pipeline.classify_and_decide(context, policy_set)
                if context.decides and stop is None
                else None
            )
            built = pipeline.build(
                context,
                verdict=verdict,
                stop=stop,
                notes=tuple(loop_alerts),
                output_cap=self.output_cap,
            )
            return pipeline.redact(built, self.redactor)

        outcome = await self._off_loop(process, inline=inline)
        sighting = transcript_sighting(session_id, request.client.usage)
        notes = [
            pipeline.replace_attribution(note, identity.developer_id, context.project_id)
            for note in (*self._session_notes(context), *([sighting] if sighting else []))
        ]
        if notes:
            notes = [pipeline.redact_event(self.redactor, note) for note in notes]
        events = [*outcome.events, *notes]
        receipts = await asyncio.wrap_future(self.ledger.submit_many(events))
        receipt = receipts[outcome.primary]
        event = outcome.event
        if isinstance(event, SessionEnd):
            self.sessions.end(session_id, event.reason, event.raw_reason, context.received_at)
        if receipt.duplicate:
            raise ConflictError(
                f"event {receipt.event_id} is already recorded (at seq {receipt.seq}); "
                "a replay is not recorded twice"
            )
        if self.costs is not None:
            # Usage the hook client read from the transcript: counted once across sources.
            await self.costs.record(from_transcript(session_id, request.client.usage))
        return HookReply(200, outcome.answer)
