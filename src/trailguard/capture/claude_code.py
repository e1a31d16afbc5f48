"""Claude Code hook requests as audit events: the "build" stage of the hook path.

Every request becomes exactly one event: the hooks trailguard models get their own type, any
other hook (Stop, Notification, SubagentStart, names a newer Claude Code invents...) becomes an
``agent_event``. Fields trailguard does not map are kept in ``extra``, never dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from pydantic import JsonValue, ValidationError

from trailguard.capture.hook_request import (
    ClientContext,
    HookPayloadError,
    HookRequest,
    parse_hook_request,
)
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
from trailguard.urls import strip_url_credentials

__all__ = [
    "DEFAULT_INPUT_CAP",
    "DEFAULT_OUTPUT_CAP",
    "Attribution",
    "CappedValue",
    "HookPayloadError",
    "cap_value",
    "event_from_hook",
    "event_from_request",
    "project_id_from_remote",
]

DEFAULT_OUTPUT_CAP = 64 * 1024
"""Tool outputs larger than this (canonical JSON bytes) are stored truncated with their hash."""
DEFAULT_INPUT_CAP = 64 * 1024
"""Tool inputs larger than this are stored truncated with their hash (the decision saw all)."""


@dataclass(frozen=True)
class Attribution:
    """Who and what an event belongs to, decided by trailguard, not by the payload."""

    developer_id: str | None = None
    project_id: str | None = None
    source: str = "hook"
    timestamp: str | None = None
    event_id: str | None = None
    observed_at: str | None = None
    """When the hook client says it saw the event: a claim, recorded beside ``timestamp``."""


_SCP_REMOTE = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$")  # git@github.com:org/repo.git
_URL_REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://(?:[^@/]*@)?([^/:]+)(?::\d+)?/(.+)$", re.I)


def project_id_from_remote(remote: str | None) -> str | None:
    """``github.com/org/repo`` from any form of a git remote URL, credentials dropped."""
    if not remote:
        return None
    remote = strip_url_credentials(remote.strip()).split("?", 1)[0]
    match = _URL_REMOTE.match(remote) or _SCP_REMOTE.match(remote)
    if match is None:
        return None
    host, path = match.group(1).lower(), match.group(2).strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    return f"{host}/{path}" if path else None


@dataclass(frozen=True)
class CappedValue:
    value: Any
    """The value itself, or a prefix of its canonical JSON when longer than the cap."""
    truncated: bool
    length: int
    """Length of the full value's canonical JSON, in bytes."""
    sha256: str
    """``sha256:<hex>`` of the full value's canonical JSON."""


_CUT_AT: Final = frozenset(b' \t\n",;:&|()[]{}<>')
_CUT_SEARCH: Final = 512


def _cut_point(encoded: bytes, cap: int) -> int:
    """Where to cut ``encoded`` to at most ``cap`` bytes: just after a separator (space, quote,
    comma...) within the last bytes before the cap, so that a secret is never stored cut in
    half (a half that the redactor could no longer recognise); at the cap when there is none."""
    for index in range(cap - 1, max(cap - _CUT_SEARCH, 0) - 1, -1):
        if encoded[index] in _CUT_AT:
            return index + 1
    return cap


def cap_value(value: Any, cap: int) -> CappedValue:
    """``value`` as stored: whole when its canonical JSON fits in ``cap`` bytes, else at most
    the first ``cap`` bytes of it (never splitting a character or, where avoidable, a word),
    with the full length and SHA-256. Truncating before redaction bounds the redactor's work
    per request: only what is stored needs redacting."""
    encoded = canonical_json(value)
    digest = "sha256:" + hashlib.sha256(encoded).hexdigest()
    if len(encoded) <= cap:
        return CappedValue(value, False, len(encoded), digest)
    preview = encoded[: _cut_point(encoded, cap)].decode("utf-8", errors="ignore")
    return CappedValue(preview, True, len(encoded), digest)


def _capped_mapping(value: dict[str, Any] | None, cap: int) -> dict[str, Any] | None:
    """Unmodelled fields as stored: kept whole up to ``cap`` bytes, else as a preview with the
    full length and hash (a hostile agent must not grow the ledger by megabytes per event)."""
    if value is None or not _may_exceed(value, cap):
        return value
    capped = cap_value(value, cap)
    if not capped.truncated:
        return value
    return {
        "trailguardTruncated": {
            "preview": capped.value,
            "length": capped.length,
            "sha256": capped.sha256,
        }
    }


def _may_exceed(value: Any, cap: int) -> bool:
    """Whether ``value``'s canonical JSON may be longer than ``cap`` bytes, cheaply: compact
    JSON is never more than a few bytes per float from it, so only near the cap is it measured."""
    try:
        return len(orjson.dumps(value)) > cap // 2
    except (orjson.JSONEncodeError, TypeError):
        return True


def event_from_hook(
    payload: Mapping[str, Any],
    attribution: Attribution,
    *,
    output_cap: int = DEFAULT_OUTPUT_CAP,
    input_cap: int = DEFAULT_INPUT_CAP,
) -> Event:
    """The audit event for one raw hook payload (parsed with ``parse_hook_request`` first).

    Raises HookPayloadError naming the field when the payload cannot be an event."""
    return event_from_request(
        parse_hook_request(payload), attribution, output_cap=output_cap, input_cap=input_cap
    )


def event_from_request(
    request: HookRequest,
    attribution: Attribution,
    *,
    output_cap: int = DEFAULT_OUTPUT_CAP,
    input_cap: int = DEFAULT_INPUT_CAP,
) -> Event:
    """The audit event for one typed hook request.

    A request that passed ``parse_hook_request`` always maps: an EventValidationError from here
    is trailguard's bug, not the client's (the gateway answers it 5xx)."""
    try:
        return _build(request, attribution, output_cap, input_cap)
    except ValidationError as exc:
        raise describe_validation_error(exc) from None


def _common(request: HookRequest, attribution: Attribution) -> dict[str, Any]:
    common: dict[str, Any] = {
        "session_id": request.session_id,
        "developer_id": attribution.developer_id,
        "project_id": attribution.project_id,
        "source": attribution.source,
    }
    if attribution.timestamp is not None:
        common["timestamp"] = attribution.timestamp
    if attribution.event_id is not None:
        common["event_id"] = attribution.event_id
    if attribution.observed_at is not None:
        common["observed_at"] = attribution.observed_at
    return common


def _session_start(
    request: HookRequest, common: dict[str, Any], context: ClientContext | None, cap: int
) -> SessionStart:
    # ``context`` is what the hook client collected on the developer's machine: claims,
    # recorded beside the token's identity and never trusted over it.
    claimed: dict[str, JsonValue] = dict(context.claimed_identity) if context else {}
    remote = context.git_remote if context else None
    return SessionStart(
        **common,
        agent="claude-code",
        agent_version=request.text("version") or (context.agent_version if context else None),
        model=request.text("model") or (context.model if context else None),
        permission_mode=request.permission_mode or (context.permission_mode if context else None),
        permissions=context.permissions if context else None,
        claimed_identity=claimed or None,
        git_remote=strip_url_credentials(remote) if remote else None,
        git_branch=context.git_branch if context else None,
        cwd=request.cwd,
        start_source=request.text("source"),
        hook_config=_capped_mapping(context.hooks, cap) if context is not None else None,
        extra=_capped_mapping(
            request.unmapped("model", "permission_mode", "cwd", "source", "version"), cap
        ),
    )


_RESULT_STATUS: Final[dict[str, Literal["success", "error", "denied"]]] = {
    "PostToolUse": "success",
    "PostToolUseFailure": "error",
}
_ERROR_FIELD = {"PostToolUseFailure": "error", "PermissionDenied": "reason"}


def _tool_result(
    request: HookRequest, common: dict[str, Any], output_cap: int, cap: int
) -> ToolResult:
    name = request.hook_event_name
    mapped = ["tool_name", "tool_use_id", "agent_id", "agent_type", "tool_response"]
    duration = request.duration_ms
    if duration is not None:
        mapped.append("duration_ms")
    error_field = _ERROR_FIELD.get(name)
    error = request.text(error_field) if error_field else None
    if error is not None and error_field is not None:
        mapped.append(error_field)
    response = request.fields.get("tool_response")
    if response is None and error is not None:
        # A failed call has no response: the error text is its output, measured as such.
        response = error
    capped = cap_value(response, output_cap) if response is not None else None
    return ToolResult(
        **common,
        tool=request.tool_name or "",
        tool_use_id=request.tool_use_id,
        agent_id=request.agent_id,
        agent_type=request.agent_type,
        status=_RESULT_STATUS.get(name, "denied"),
        output=capped.value if capped else None,
        error=error,
        duration_ms=duration,
        output_truncated=capped.truncated if capped else False,
        output_length=capped.length if capped else None,
        output_sha256=capped.sha256 if capped else None,
        extra=_capped_mapping(request.unmapped(*mapped), cap),
    )


def _build(
    request: HookRequest, attribution: Attribution, output_cap: int, input_cap: int
) -> Event:
    name = request.hook_event_name
    common = _common(request, attribution)
    cap = input_cap
    if name == "SessionStart":
        return _session_start(request, common, request.client.context, cap)
    if name == "SessionEnd":
        return SessionEnd(
            **common,
            reason="completed",
            raw_reason=request.text("reason"),
            extra=_capped_mapping(request.unmapped("reason"), cap),
        )
    if name == "UserPromptSubmit":
        prompt = request.text("prompt") or ""
        if len(prompt) > cap // 4 and _may_exceed(prompt, cap):
            prompt_capped = cap_value(prompt, cap)
            if prompt_capped.truncated:
                common["extra"] = {
                    "promptTruncated": True,
                    "promptLength": prompt_capped.length,
                    "promptSha256": prompt_capped.sha256,
                }
                prompt = prompt_capped.value
        extra = _capped_mapping(request.unmapped("prompt", "prompt_id"), cap)
        if "extra" in common:
            extra = (extra or {}) | common.pop("extra")
        return Prompt(
            **common,
            prompt=prompt,
            prompt_id=request.text("prompt_id"),
            extra=extra,
        )
    if name == "PreToolUse":
        tool_input = request.tool_input
        capped = cap_value(tool_input, input_cap) if _may_exceed(tool_input, input_cap) else None
        truncated = capped is not None and capped.truncated
        return ToolInvocation(
            **common,
            tool=request.tool_name or "",
            tool_use_id=request.tool_use_id,
            agent_id=request.agent_id,
            agent_type=request.agent_type,
            input=capped.value if capped and truncated else tool_input,
            input_truncated=True if truncated else None,
            input_length=capped.length if capped and truncated else None,
            input_sha256=capped.sha256 if capped and truncated else None,
            extra=_capped_mapping(
                request.unmapped(
                    "tool_name", "tool_use_id", "agent_id", "agent_type", "tool_input"
                ),
                cap,
            ),
        )
    if name in ("PostToolUse", "PostToolUseFailure", "PermissionDenied"):
        return _tool_result(request, common, output_cap, cap)
    payload = request.unmapped("agent_id", "agent_type")
    context = request.client.context
    if context is not None and context.hooks is not None:
        # ConfigChange: the hook client read the settings files again (a claim).
        payload = (payload or {}) | {"trailguardHookConfig": context.hooks}
    return AgentEvent(
        **common,
        name=name,
        agent_id=request.agent_id,
        agent_type=request.agent_type,
        payload=_capped_mapping(payload, cap),
    )
