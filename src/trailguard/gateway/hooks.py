"""One Claude Code hook request through the gateway: capture, session bookkeeping, decision,
durable append, and the answer Claude Code expects. The answer is sent only after the event is
committed, so for PreToolUse the record exists before the tool can run."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from trailguard.capture.claude_code import (
    DEFAULT_OUTPUT_CAP,
    Attribution,
    event_from_hook,
    project_id_from_remote,
)
from trailguard.events import (
    AgentEvent,
    Alert,
    Event,
    SessionEnd,
    SessionStart,
    ToolInvocation,
    utc_now,
)
from trailguard.gateway.sessions import SessionRegistry
from trailguard.ledger.writer import Ledger
from trailguard.store.gateway_state import Identity

ALLOW_ALL_RULE = "allow-all"
ALLOW_ALL_REASON = "no policy engine is configured yet: every tool call is allowed and recorded"
KILLED_RULE = "session-killed"
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_DECISION_EVENTS = ("PreToolUse", "PermissionRequest")


@dataclass(frozen=True)
class HookReply:
    status: int
    body: dict[str, Any]


def deny(hook_event_name: str, reason: str) -> dict[str, Any]:
    """The hook output that refuses a tool call (PreToolUse) or a permission (PermissionRequest)."""
    if hook_event_name == "PermissionRequest":
        return {
            "hookSpecificOutput": {
                "hookEventName": "PermissionRequest",
                "decision": {"behavior": "deny", "message": reason},
            }
        }
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
    }


class HookHandler:
    def __init__(
        self, ledger: Ledger, sessions: SessionRegistry, *, output_cap: int = DEFAULT_OUTPUT_CAP
    ) -> None:
        self.ledger = ledger
        self.sessions = sessions
        self.output_cap = output_cap

    async def handle(
        self, payload: dict[str, Any], identity: Identity, event_id: str | None
    ) -> HookReply:
        """Record one hook payload and answer it. Raises HookPayloadError / EventValidationError
        (the caller's 400) for payloads that cannot be an event."""
        client = payload.pop("trailguard", None)
        client = client if isinstance(client, dict) else {}
        context = client.get("context") if isinstance(client.get("context"), dict) else None
        spooled = client.get("spooled") is True
        observed_at = client.get("observedAt")
        timestamp = (
            observed_at
            if spooled and isinstance(observed_at, str) and _TIMESTAMP.match(observed_at)
            else utc_now()
        )
        name = payload.get("hook_event_name")
        session_id = payload.get("session_id")
        known = self.sessions.get(session_id) if isinstance(session_id, str) else None
        project_id = known.project_id if known else None
        if name == "SessionStart" and context is not None:
            project_id = project_id_from_remote(context.get("gitRemote")) or project_id

        event = event_from_hook(
            payload,
            Attribution(
                developer_id=identity.developer_id,
                project_id=project_id,
                source="spool" if spooled else "hook",
                timestamp=timestamp,
                event_id=event_id,
            ),
            output_cap=self.output_cap,
            context=context,
        )
        session_id = event.session_id
        assert session_id is not None  # event_from_hook requires it
        events: list[Event] = []
        response: dict[str, Any] = {}

        if isinstance(event, SessionStart):
            self.sessions.start(session_id, identity.developer_id, project_id, timestamp)
        else:
            _, unknown = self.sessions.touch(session_id, identity.developer_id, timestamp)
            if unknown:
                events.append(
                    Alert(
                        session_id=session_id,
                        developer_id=identity.developer_id,
                        alert_type="session_not_started",
                        severity="medium",
                        message=f"{name} arrived for session {session_id}, which never started "
                        "(no SessionStart was recorded): the session is flagged",
                        source="gateway",
                    )
                )

        if isinstance(event, SessionEnd) and known is not None and known.ended_at is not None:
            # Already ended (killed, timed out): the agent's own end is kept, not a second end.
            event = AgentEvent(
                event_id=event.event_id,
                timestamp=event.timestamp,
                session_id=session_id,
                developer_id=event.developer_id,
                project_id=event.project_id,
                source=event.source,
                name="SessionEnd",
                payload={"reason": event.raw_reason, "endedEarlierAs": known.end_reason},
            )

        killed = self.sessions.kill_request(session_id)
        if killed is not None:
            by = killed.requested_by or "an admin"
            reason = f"trailguard: session {session_id} was killed by {by} at " + (
                f"{killed.requested_at}: {killed.reason}" if killed.reason else killed.requested_at
            )
            response = {"continue": False, "stopReason": reason}
            if name in _DECISION_EVENTS:
                response |= deny(str(name), reason)
            if isinstance(event, ToolInvocation):
                event = event.model_copy(
                    update={
                        "policy_result": "denied",
                        "policy_rule": KILLED_RULE,
                        "policy_reason": reason,
                    }
                )
        elif isinstance(event, ToolInvocation):
            event = event.model_copy(
                update={
                    "policy_result": "allowed",
                    "policy_rule": ALLOW_ALL_RULE,
                    "policy_reason": ALLOW_ALL_REASON,
                }
            )

        events.append(event)
        receipts = await asyncio.wrap_future(self.ledger.submit_many(events))
        if isinstance(event, SessionEnd):
            self.sessions.end(session_id, event.reason, event.raw_reason, timestamp)
        if receipts[-1].duplicate and event_id is not None:
            return HookReply(
                409,
                {
                    "detail": f"event {event_id} is already recorded (at seq {receipts[-1].seq}); "
                    "a replay is not recorded twice"
                },
            )
        return HookReply(200, response)
