"""Claude Code hook payloads (the JSON a hook receives on stdin or by HTTP) as audit events.

Every payload becomes exactly one event: the events trailguard models get their own type, any
other hook (Stop, Notification, SubagentStart, names a newer Claude Code invents...) becomes an
``agent_event``. Fields trailguard does not map are kept in ``extra``, never dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from trailguard.errors import InvalidInputError
from trailguard.events import (
    AgentEvent,
    Event,
    Prompt,
    SessionEnd,
    SessionStart,
    ToolInvocation,
    ToolResult,
    describe_validation_error,
)
from trailguard.ledger.canonical import canonical_json

DEFAULT_OUTPUT_CAP = 64 * 1024
"""Tool outputs larger than this (canonical JSON bytes) are stored truncated with their hash."""

# Fields every hook payload carries; consumed into the envelope (or kept in extra).
_ENVELOPE_FIELDS = frozenset({"session_id", "hook_event_name"})


class HookPayloadError(InvalidInputError):
    """A hook payload that cannot be recorded; the message names the field."""


@dataclass(frozen=True)
class Attribution:
    """Who and what an event belongs to, decided by trailguard, not by the payload."""

    developer_id: str | None = None
    project_id: str | None = None
    source: str = "hook"
    timestamp: str | None = None
    event_id: str | None = None


def _text(payload: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise HookPayloadError(f"{name}: field required")
        return None
    if not isinstance(value, str):
        raise HookPayloadError(f"{name}: must be a string, got {type(value).__name__}")
    return value


def _object(payload: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = payload.get(name)
    if value is not None and not isinstance(value, dict):
        raise HookPayloadError(f"{name}: must be an object, got {type(value).__name__}")
    return value


_SCP_REMOTE = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$")  # git@github.com:org/repo.git
_URL_REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://(?:[^@/]*@)?([^/:]+)(?::\d+)?/(.+)$", re.I)


def project_id_from_remote(remote: str | None) -> str | None:
    """``github.com/org/repo`` from any form of a git remote URL, credentials dropped."""
    if not remote:
        return None
    remote = remote.strip()
    match = _URL_REMOTE.match(remote) or _SCP_REMOTE.match(remote)
    if match is None:
        return None
    host, path = match.group(1).lower(), match.group(2).strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    return f"{host}/{path}" if path else None


def strip_credentials(remote: str | None) -> str | None:
    """A remote URL without any ``user:password@`` part (a token in a remote is a secret)."""
    if not remote:
        return remote
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^@/]*@", r"\1", remote.strip(), flags=re.I)


def _context_text(context: Mapping[str, Any], name: str) -> str | None:
    value = context.get(name)
    return value if isinstance(value, str) and value else None


def cap_output(output: Any, cap: int) -> tuple[Any, bool, int, str]:
    """(stored output, truncated?, full length in bytes, SHA-256 of the full canonical JSON)."""
    encoded = canonical_json(output)
    digest = "sha256:" + hashlib.sha256(encoded).hexdigest()
    if len(encoded) <= cap:
        return output, False, len(encoded), digest
    preview = encoded[:cap].decode("utf-8", errors="ignore")
    return preview, True, len(encoded), digest


def event_from_hook(
    payload: Mapping[str, Any],
    attribution: Attribution,
    *,
    output_cap: int = DEFAULT_OUTPUT_CAP,
    context: Mapping[str, Any] | None = None,
) -> Event:
    """The audit event for one Claude Code hook payload.

    Raises HookPayloadError (naming the field) when the payload cannot be an event,
    trailguard.events.EventValidationError when a mapped value breaks the event model, and
    ValueError when the tool output cannot be stored canonically (e.g. an integer over 2**53).
    """
    try:
        return _event_from_hook(payload, attribution, output_cap, context or {})
    except ValidationError as exc:
        raise describe_validation_error(exc) from None


def _event_from_hook(
    payload: Mapping[str, Any],
    attribution: Attribution,
    output_cap: int,
    context: Mapping[str, Any],
) -> Event:
    if not isinstance(payload, Mapping):
        raise HookPayloadError("hook payload must be a JSON object")
    name = _text(payload, "hook_event_name", required=True)
    if not name:
        raise HookPayloadError("hook_event_name: must not be empty")
    session_id = _text(payload, "session_id", required=True)
    if not session_id:
        raise HookPayloadError("session_id: must not be empty")
    common: dict[str, Any] = {
        "session_id": session_id,
        "developer_id": attribution.developer_id,
        "project_id": attribution.project_id,
        "source": attribution.source,
    }
    if attribution.timestamp is not None:
        common["timestamp"] = attribution.timestamp
    if attribution.event_id is not None:
        common["event_id"] = attribution.event_id

    def extra(*mapped: str) -> dict[str, Any] | None:
        kept = {
            key: value
            for key, value in payload.items()
            if key not in _ENVELOPE_FIELDS and key not in mapped
        }
        return kept or None

    if name == "SessionStart":
        # ``context`` is what the hook client collected on the developer's machine: claims,
        # recorded beside the token's identity and never trusted over it.
        claimed = {
            key: value
            for key in ("osUser", "gitEmail", "hostname")
            if (value := _context_text(context, key)) is not None
        }
        permissions = context.get("permissions")
        return SessionStart(
            **common,
            agent="claude-code",
            agent_version=_text(payload, "version") or _context_text(context, "agentVersion"),
            model=_text(payload, "model") or _context_text(context, "model"),
            permission_mode=_text(payload, "permission_mode")
            or _context_text(context, "permissionMode"),
            permissions=permissions if isinstance(permissions, dict) else None,
            claimed_identity=claimed or None,
            git_remote=strip_credentials(_context_text(context, "gitRemote")),
            git_branch=_context_text(context, "gitBranch"),
            cwd=_text(payload, "cwd"),
            start_source=_text(payload, "source"),
            extra=extra("model", "permission_mode", "cwd", "source", "version"),
        )
    if name == "SessionEnd":
        return SessionEnd(
            **common,
            reason="completed",
            raw_reason=_text(payload, "reason"),
            extra=extra("reason"),
        )
    if name == "UserPromptSubmit":
        return Prompt(
            **common,
            prompt=_text(payload, "prompt", required=True) or "",
            prompt_id=_text(payload, "prompt_id"),
            extra=extra("prompt", "prompt_id"),
        )
    if name == "PreToolUse":
        return ToolInvocation(
            **common,
            tool=_text(payload, "tool_name", required=True) or "",
            tool_use_id=_text(payload, "tool_use_id"),
            agent_id=_text(payload, "agent_id"),
            input=payload.get("tool_input"),
            extra=extra("tool_name", "tool_use_id", "agent_id", "tool_input"),
        )
    if name in ("PostToolUse", "PostToolUseFailure", "PermissionDenied"):
        status = {"PostToolUse": "success", "PostToolUseFailure": "error"}.get(name, "denied")
        output, truncated, length, digest = cap_output(payload.get("tool_response"), output_cap)
        mapped = ["tool_name", "tool_use_id", "agent_id", "tool_response"]
        duration = payload.get("duration_ms")
        if isinstance(duration, int) and not isinstance(duration, bool) and duration >= 0:
            mapped.append("duration_ms")
        else:
            duration = None  # kept as sent in extra
        error_field = {"PostToolUseFailure": "error", "PermissionDenied": "reason"}.get(name)
        error = payload.get(error_field) if error_field else None
        if isinstance(error, str) and error_field:
            mapped.append(error_field)
        else:
            error = None
        return ToolResult(
            **common,
            tool=_text(payload, "tool_name", required=True) or "",
            tool_use_id=_text(payload, "tool_use_id"),
            agent_id=_text(payload, "agent_id"),
            status=status,
            output=output,
            error=error,
            duration_ms=duration,
            output_truncated=truncated,
            output_length=length,
            output_sha256=digest,
            extra=extra(*mapped),
        )
    return AgentEvent(
        **common,
        name=name,
        agent_id=_text(payload, "agent_id"),
        payload=extra("agent_id"),
    )
