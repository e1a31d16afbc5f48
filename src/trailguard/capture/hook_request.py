"""The edge of the hook path: a Claude Code hook payload parsed once into a typed request.

Everything after this module sees ``HookRequest`` values, never the raw dict. Fields trailguard
models are typed; fields it does not model are kept (``unmodelled``), never dropped, so a newer
Claude Code loses nothing. Essential fields of the wrong type are refused with an error naming
the field; optional ones of the wrong type are kept as sent among the unmodelled fields, so a
tool result is not lost because one side field changed shape. The ``trailguard`` key is the hook
client's envelope (docs/hook-protocol.md): claims of the developer's machine, typed here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from trailguard.errors import InvalidInputError, excerpt

__all__ = [
    "ClientContext",
    "ClientEnvelope",
    "HookPayloadError",
    "HookRequest",
    "SpoolProblem",
    "UsageEntry",
    "parse_hook_request",
    "parse_usage_entries",
]

MAX_ID_LENGTH: Final = 256
MAX_INTEGER: Final = 2**53 - 1
"""I-JSON (RFC 7493 §2.2): integers outside ±(2**53 - 1) cannot be stored canonically (RFC
8785 §3.2.2.3). They are refused at the edge, so nothing later can fail on the client's data."""
MAX_USAGE_ENTRIES: Final = 500
MAX_SPOOL_PROBLEMS: Final = 200


class HookPayloadError(InvalidInputError):
    """A hook payload that cannot be recorded; the message names the field."""


# Fields the envelope (every hook event) carries, typed on HookRequest itself.
_ENVELOPE: Final = (
    "session_id",
    "hook_event_name",
    "transcript_path",
    "cwd",
    "permission_mode",
    "agent_id",
    "agent_type",
)
_TOOL_EVENTS: Final = frozenset(
    {"PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest", "PermissionDenied"}
)
_REQUIRED_TEXT: Final = {
    "PreToolUse": ("tool_name",),
    "PostToolUse": ("tool_name",),
    "PostToolUseFailure": ("tool_name",),
    "PermissionDenied": ("tool_name",),
    "UserPromptSubmit": ("prompt",),
}
"""Per event, fields without which the event means nothing: refused when missing or mistyped."""
_OPTIONAL_TEXT: Final = (
    "tool_name",
    "tool_use_id",
    "prompt",
    "prompt_id",
    "source",
    "reason",
    "error",
    "model",
    "version",
)
_IDENTIFIERS: Final = frozenset({"session_id", "hook_event_name", "tool_name", "tool_use_id"})
_ABSENT: Final = object()


@dataclass(frozen=True)
class UsageEntry:
    """Model usage the command hook client read from the session transcript (a claim)."""

    usage: dict[str, Any]
    message_id: str | None = None
    model: str | None = None
    request_id: str | None = None
    tool_use_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpoolProblem:
    """A spooled event the hook client gave up replaying and moved aside (a claim)."""

    event_id: str | None
    hook_event_name: str | None
    session_id: str | None
    tries: int | None
    last_error: str | None
    moved_at: str | None
    sha256: str | None


@dataclass(frozen=True)
class ClientContext:
    """What the developer's machine says at SessionStart: recorded beside the token's identity,
    never trusted over it."""

    os_user: str | None = None
    git_email: str | None = None
    hostname: str | None = None
    git_remote: str | None = None
    git_branch: str | None = None
    permission_mode: str | None = None
    model: str | None = None
    agent_version: str | None = None
    permissions: dict[str, Any] | None = None
    hooks: dict[str, Any] | None = None
    """The effective hook configuration the client saw (files, hashes, trailguard present)."""
    unmodelled: dict[str, Any] = field(default_factory=dict)

    @property
    def claimed_identity(self) -> dict[str, str]:
        return {
            name: value
            for name, value in (
                ("osUser", self.os_user),
                ("gitEmail", self.git_email),
                ("hostname", self.hostname),
            )
            if value
        }


@dataclass(frozen=True)
class ClientEnvelope:
    """The ``trailguard`` key the hook client adds to a payload."""

    context: ClientContext | None = None
    spooled: bool = False
    observed_at: str | None = None
    """When the client says it received the hook; for spooled events, a claim about the past."""
    usage: tuple[UsageEntry, ...] = ()
    spool_problems: tuple[SpoolProblem, ...] = ()
    unmodelled: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HookRequest:
    """One hook event as Claude Code sent it, typed. ``fields`` holds every payload field other
    than the envelope and the ``trailguard`` key, as sent (tool_input, tool_response, ...);
    ``mistyped`` names optional fields kept as sent because their type was unexpected."""

    hook_event_name: str
    session_id: str
    fields: Mapping[str, Any]
    transcript_path: str | None = None
    cwd: str | None = None
    permission_mode: str | None = None
    agent_id: str | None = None
    agent_type: str | None = None
    client: ClientEnvelope = field(default_factory=ClientEnvelope)
    mistyped: frozenset[str] = frozenset()

    # -- typed views of per-event fields ----------------------------------------------------

    def unmapped(self, *mapped: str) -> dict[str, Any] | None:
        """Every payload field except the session id, the event name and ``mapped`` ones, as
        sent: what an event keeps in ``extra`` so that nothing the agent sent is dropped."""
        kept: dict[str, Any] = {
            name: value
            for name in _ENVELOPE[2:]
            if name not in mapped and (value := getattr(self, name)) is not None
        }
        kept.update((k, v) for k, v in self.fields.items() if k not in mapped)
        return kept or None

    def text(self, name: str) -> str | None:
        """A string field, or None when absent or not a string (then it stays in ``fields``)."""
        value = self.fields.get(name)
        return value if isinstance(value, str) else None

    @property
    def is_tool_event(self) -> bool:
        return self.hook_event_name in _TOOL_EVENTS

    @property
    def tool_name(self) -> str | None:
        return self.text("tool_name")

    @property
    def tool_use_id(self) -> str | None:
        return self.text("tool_use_id")

    @property
    def tool_input(self) -> Any:
        return self.fields.get("tool_input")

    @property
    def command(self) -> str | None:
        """The Bash command, when this is a Bash-like call with a string ``command``."""
        tool_input = self.tool_input
        command = tool_input.get("command") if isinstance(tool_input, dict) else None
        return command if isinstance(command, str) else None

    @property
    def duration_ms(self) -> int | None:
        value = self.fields.get("duration_ms")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        return None

    @property
    def home(self) -> str | None:
        """The agent's home directory, from its transcript path (``<home>/.claude/projects/…``)."""
        transcript = self.transcript_path
        if transcript and "/.claude/projects/" in transcript:
            return transcript.split("/.claude/projects/", 1)[0] or None
        return None


def parse_hook_request(payload: Any) -> HookRequest:
    """Parse a decoded hook payload; raises HookPayloadError naming the first bad field."""
    if not isinstance(payload, dict):
        raise HookPayloadError("payload must be a JSON object (a Claude Code hook event)")
    _check_integers(payload, "")
    name = _identifier(payload, "hook_event_name")
    session_id = _identifier(payload, "session_id")
    for required in _REQUIRED_TEXT.get(name, ()):
        value = payload.get(required, _ABSENT)
        if value is _ABSENT or value is None:
            raise HookPayloadError(f"{required}: field required for {name}")
        if not isinstance(value, str):
            raise HookPayloadError(f"{required}: must be a string, got {type(value).__name__}")
        if required in _IDENTIFIERS:
            _identifier(payload, required)
    envelope: dict[str, str | None] = {}
    mistyped: set[str] = set()
    for key in _ENVELOPE[2:]:
        value = payload.get(key)
        if value is None or isinstance(value, str):
            envelope[key] = value
        else:
            mistyped.add(key)
    tool_use_id = payload.get("tool_use_id")
    if isinstance(tool_use_id, str):
        _identifier(payload, "tool_use_id")
    fields = {
        key: value
        for key, value in payload.items()
        if key != "trailguard" and (key not in _ENVELOPE or key in mistyped)
    }
    mistyped.update(
        key for key in _OPTIONAL_TEXT if key in fields and not isinstance(fields[key], str | None)
    )
    return HookRequest(
        hook_event_name=name,
        session_id=session_id,
        fields=fields,
        transcript_path=envelope.get("transcript_path"),
        cwd=envelope.get("cwd"),
        permission_mode=envelope.get("permission_mode"),
        agent_id=envelope.get("agent_id"),
        agent_type=envelope.get("agent_type"),
        client=_client_envelope(payload.get("trailguard")),
        mistyped=frozenset(mistyped),
    )


# -- helpers ----------------------------------------------------------------------------------


def _identifier(payload: Mapping[str, Any], name: str, where: str = "") -> str:
    value = payload.get(name)
    label = f"{where}{name}"
    if value is None:
        raise HookPayloadError(f"{label}: field required")
    if not isinstance(value, str):
        raise HookPayloadError(f"{label}: must be a string, got {type(value).__name__}")
    if not value:
        raise HookPayloadError(f"{label}: must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise HookPayloadError(f"{label}: at most {MAX_ID_LENGTH} characters, got {len(value)}")
    if not value.isprintable():
        raise HookPayloadError(f"{label}: must not contain control characters")
    return value


def _check_integers(value: Any, path: str, depth: int = 0) -> None:
    """Refuse integers that RFC 8785 cannot represent exactly (and absurd nesting)."""
    if depth > 200:
        raise HookPayloadError(f"{path or '(payload)'}: nested too deeply to examine")
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -MAX_INTEGER <= value <= MAX_INTEGER:
            raise HookPayloadError(
                f"{path or '(payload)'}: integer {excerpt(str(value), 24)} is outside the "
                "range JSON numbers can carry exactly (±2**53); send it as a string"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, int | dict | list):
                _check_integers(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, int | dict | list):
                _check_integers(item, f"{path}[{index}]", depth + 1)


def _optional_text(mapping: Mapping[str, Any], name: str, where: str) -> str | None:
    value = mapping.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise HookPayloadError(f"{where}{name}: must be a string, got {type(value).__name__}")
    return value or None


def _optional_object(mapping: Mapping[str, Any], name: str, where: str) -> dict[str, Any] | None:
    value = mapping.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise HookPayloadError(f"{where}{name}: must be an object, got {type(value).__name__}")
    return value


_CONTEXT_TEXT: Final = {
    "osUser": "os_user",
    "gitEmail": "git_email",
    "hostname": "hostname",
    "gitRemote": "git_remote",
    "gitBranch": "git_branch",
    "permissionMode": "permission_mode",
    "model": "model",
    "agentVersion": "agent_version",
}


def _client_context(value: Any) -> ClientContext | None:
    where = "trailguard.context."
    if value is None:
        return None
    if not isinstance(value, dict):
        raise HookPayloadError(f"trailguard.context: must be an object, got {type(value).__name__}")
    texts = {attr: _optional_text(value, key, where) for key, attr in _CONTEXT_TEXT.items()}
    return ClientContext(
        **texts,
        permissions=_optional_object(value, "permissions", where),
        hooks=_optional_object(value, "hooks", where),
        unmodelled={
            key: item
            for key, item in value.items()
            if key not in _CONTEXT_TEXT and key not in ("permissions", "hooks")
        },
    )


def parse_usage_entries(value: Any) -> tuple[UsageEntry, ...]:
    """The hook client's ``trailguard.usage`` list. Lenient on purpose: the entries are copied
    from Claude Code's internal transcript format, so a malformed one is skipped (and a field
    of the wrong type dropped) rather than costing the hook event it rides on."""
    if not isinstance(value, list):
        return ()
    entries: list[UsageEntry] = []
    for item in value[:MAX_USAGE_ENTRIES]:
        if not isinstance(item, dict) or not isinstance(item.get("usage"), dict):
            continue
        ids = item.get("toolUseIds")
        entries.append(
            UsageEntry(
                usage=item["usage"],
                message_id=_text_or_none(item.get("messageId")),
                model=_text_or_none(item.get("model")),
                request_id=_text_or_none(item.get("requestId")),
                tool_use_ids=tuple(i for i in ids if isinstance(i, str))
                if isinstance(ids, list)
                else (),
            )
        )
    return tuple(entries)


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _spool_problems(value: Any) -> tuple[SpoolProblem, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise HookPayloadError("trailguard.spoolProblems: must be a list")
    problems: list[SpoolProblem] = []
    for index, item in enumerate(value[:MAX_SPOOL_PROBLEMS]):
        where = f"trailguard.spoolProblems[{index}]."
        if not isinstance(item, dict):
            raise HookPayloadError(f"{where[:-1]}: must be an object")
        tries = item.get("tries")
        problems.append(
            SpoolProblem(
                event_id=_optional_text(item, "eventId", where),
                hook_event_name=_optional_text(item, "hookEventName", where),
                session_id=_optional_text(item, "sessionId", where),
                tries=tries if isinstance(tries, int) and not isinstance(tries, bool) else None,
                last_error=_optional_text(item, "lastError", where),
                moved_at=_optional_text(item, "movedAt", where),
                sha256=_optional_text(item, "sha256", where),
            )
        )
    return tuple(problems)


_ENVELOPE_KEYS: Final = frozenset({"context", "spooled", "observedAt", "usage", "spoolProblems"})


def _client_envelope(value: Any) -> ClientEnvelope:
    if value is None:
        return ClientEnvelope()
    if not isinstance(value, dict):
        raise HookPayloadError(f"trailguard: must be an object, got {type(value).__name__}")
    spooled = value.get("spooled", False)
    if not isinstance(spooled, bool):
        raise HookPayloadError("trailguard.spooled: must be true or false")
    return ClientEnvelope(
        context=_client_context(value.get("context")),
        spooled=spooled,
        observed_at=_optional_text(value, "observedAt", "trailguard."),
        usage=parse_usage_entries(value.get("usage")),
        spool_problems=_spool_problems(value.get("spoolProblems")),
        unmodelled={k: v for k, v in value.items() if k not in _ENVELOPE_KEYS},
    )
