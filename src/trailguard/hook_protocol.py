"""Claude Code's hook protocol, the part trailguard writes: the answers that gate a tool call.

Standard library only, and nothing imported at module level beyond it: the command hook client
(``trailguard hook``, started once per tool call) and the gateway both build their answers
here, so a deny means the same thing whichever of them says it. See docs/hook-protocol.md and
Claude Code's hooks reference for the shapes.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs the hook client start-up time; annotations are strings
    from typing import Any

GATING_EVENTS = frozenset({"PreToolUse", "PermissionRequest"})
"""Events whose answer decides whether a tool runs: every failure must answer deny."""


def deny(hook_event_name: str, reason: str) -> dict[str, Any]:
    """Refuse a tool call (PreToolUse) or a permission (PermissionRequest), saying why."""
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
    """Hand a PreToolUse decision to the developer, saying why."""
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "ask",
            "permissionDecisionReason": reason,
        }
    }


def failure_answer(hook_event_name: str, reason: str) -> dict[str, Any]:
    """What to answer when the event could not be recorded: deny for a gating event (fail
    closed), nothing for the others (their spooled copy is replayed later)."""
    return deny(hook_event_name, reason) if hook_event_name in GATING_EVENTS else {}
