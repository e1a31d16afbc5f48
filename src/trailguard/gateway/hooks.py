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
from trailguard.classify import ClassifyContext, classify_tool_call
from trailguard.events import (
    AgentEvent,
    Alert,
    Event,
    InfraOperation,
    Operation,
    SessionEnd,
    SessionStart,
    ToolInvocation,
    utc_now,
)
from trailguard.gateway.costs import BUDGET_RULE, CostRecorder, from_transcript
from trailguard.gateway.sessions import SessionRegistry
from trailguard.ledger.canonical import canonical_json
from trailguard.ledger.writer import Ledger
from trailguard.policy.engine import Decision, DecisionRequest, decide
from trailguard.policy.store import PolicyStore
from trailguard.redact import Redactor
from trailguard.store.gateway_state import Identity

KILLED_RULE = "session-killed"
GATEWAY_DOWN_RULE = "gateway-unreachable"
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


def ask(reason: str) -> dict[str, Any]:
    """The PreToolUse output that hands the decision to the developer."""
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "ask",
            "permissionDecisionReason": reason,
        }
    }


def _home_from(payload: dict[str, Any]) -> str | None:
    """The agent's home directory, from its transcript path (``<home>/.claude/projects/...``)."""
    transcript = payload.get("transcript_path")
    if isinstance(transcript, str) and "/.claude/projects/" in transcript:
        return transcript.split("/.claude/projects/", 1)[0] or None
    return None


class HookHandler:
    def __init__(
        self,
        ledger: Ledger,
        sessions: SessionRegistry,
        policies: PolicyStore,
        redactor: Redactor,
        costs: CostRecorder | None = None,
        *,
        output_cap: int = DEFAULT_OUTPUT_CAP,
    ) -> None:
        self.ledger = ledger
        self.sessions = sessions
        self.policies = policies
        self.redactor = redactor
        self.costs = costs
        self.output_cap = output_cap

    def _decide(
        self, payload: dict[str, Any], identity: Identity, project_id: str | None
    ) -> tuple[list[Operation], Decision]:
        """Classify the tool call and decide it, on the input as the agent sent it."""
        tool = str(payload.get("tool_name") or "")
        tool_input = payload.get("tool_input")
        cwd = payload.get("cwd") if isinstance(payload.get("cwd"), str) else None
        context = ClassifyContext(cwd=cwd, home=_home_from(payload), project_root=cwd)
        operations = classify_tool_call(tool, tool_input, context)
        command = tool_input.get("command") if isinstance(tool_input, dict) else None
        decision = decide(
            self.policies.current,
            DecisionRequest(
                developer_id=identity.developer_id,
                tool=tool,
                operations=operations,
                project_id=project_id,
                session_id=payload.get("session_id")
                if isinstance(payload.get("session_id"), str)
                else None,
                command=command if isinstance(command, str) else None,
            ),
        )
        return operations, decision

    def _stopped(self, session_id: str) -> tuple[str | None, str | None]:
        """(rule, reason) when the session may not go on: killed, or out of budget."""
        killed = self.sessions.kill_request(session_id)
        if killed is not None:
            by = killed.requested_by or "an admin"
            when = (
                f"{killed.requested_at}: {killed.reason}" if killed.reason else killed.requested_at
            )
            return KILLED_RULE, f"trailguard: session {session_id} was killed by {by} at {when}"
        exhausted = self.costs.exhausted(session_id) if self.costs is not None else None
        if exhausted is not None:
            return BUDGET_RULE, exhausted.reason()
        return None, None

    def _redact_operation(self, operation: Operation) -> Operation:
        redacted, _ = self.redactor.redact_value(operation.model_dump())
        return Operation.model_validate(redacted)

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

        operations: list[Operation] = []
        decision: Decision | None = None
        loop_alerts: list[Event] = []
        if name == "PreToolUse" and not spooled:
            operations, decision = self._decide(payload, identity, project_id)
        if self.costs is not None and isinstance(session_id, str) and not spooled:
            tool = str(payload.get("tool_name") or "")
            if name == "PreToolUse":
                loop_alerts += self.costs.loops.tool_call(
                    session_id, tool, payload.get("tool_input")
                )
            elif name == "PostToolUseFailure":
                loop_alerts += self.costs.loops.tool_failed(
                    session_id, tool, payload.get("tool_input")
                )
        # Nothing unredacted goes further than this line: not the ledger, not an error message.
        payload, _ = self.redactor.redact_value(payload)
        if context is not None:
            context, _ = self.redactor.redact_value(context)
        operations = [self._redact_operation(operation) for operation in operations]

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

        stop_rule, stop_reason = self._stopped(session_id)
        if stop_rule is not None and stop_reason is not None:
            response = {"continue": False, "stopReason": stop_reason}
            if name in _DECISION_EVENTS:
                response |= deny(str(name), stop_reason)
            if isinstance(event, ToolInvocation):
                event = event.model_copy(
                    update={
                        "policy_result": "denied",
                        "policy_rule": stop_rule,
                        "policy_reason": stop_reason,
                    }
                )
        elif isinstance(event, ToolInvocation) and spooled:
            # The hook client refused this call while the gateway was unreachable (fail-closed).
            event = event.model_copy(
                update={
                    "policy_result": "denied",
                    "policy_rule": GATEWAY_DOWN_RULE,
                    "policy_reason": "the audit gateway was unreachable; the hook client denied "
                    "the call and spooled it",
                }
            )
        elif isinstance(event, ToolInvocation) and decision is not None:
            event = event.model_copy(
                update={
                    "operations": operations,
                    "policy_result": decision.result,
                    "policy_rule": decision.rule,
                    "policy_reason": decision.reason,
                    "policy_version": decision.version,
                }
            )
            message = f"trailguard policy {decision.rule}: {decision.reason}"
            if decision.result == "denied":
                response = deny("PreToolUse", message)
            elif decision.result == "ask":
                response = ask(message)
            events.extend(
                InfraOperation(
                    session_id=session_id,
                    developer_id=event.developer_id,
                    project_id=event.project_id,
                    tool_use_id=event.tool_use_id,
                    operation=operation,
                    source="gateway",
                )
                for operation in operations
            )

        # Refuse what the ledger could not store before anything of this request is appended.
        canonical_json(event.to_json_dict())
        # The invocation first, then its operations (listed after it, linked by toolUseId).
        position = next(
            (i for i, e in enumerate(events) if isinstance(e, InfraOperation)), len(events)
        )
        events.insert(position, event)
        events.extend(
            alert.model_copy(
                update={"developer_id": identity.developer_id, "project_id": project_id}
            )
            for alert in loop_alerts
        )
        receipts = await asyncio.wrap_future(self.ledger.submit_many(events))
        hook_receipt = receipts[position]
        if isinstance(event, SessionEnd):
            self.sessions.end(session_id, event.reason, event.raw_reason, timestamp)
        if self.costs is not None and not hook_receipt.duplicate:
            # Usage the hook client read from the transcript: counted once across sources.
            await self.costs.record(from_transcript(session_id, client.get("usage")))
        if hook_receipt.duplicate and event_id is not None:
            return HookReply(
                409,
                {
                    "detail": f"event {event_id} is already recorded (at seq {hook_receipt.seq}); "
                    "a replay is not recorded twice"
                },
            )
        return HookReply(200, response)
