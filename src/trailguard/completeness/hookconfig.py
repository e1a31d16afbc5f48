"""Comparing two summaries of the effective hook configuration (``hookConfig``, made by the hook
client at SessionStart and ConfigChange): did trailguard's hooks get removed or weakened?"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ESSENTIAL = ("PreToolUse", "PostToolUse")
"""Without these, tool calls are not decided or not resolved."""


def _events(config: Mapping[str, Any], key: str) -> set[str]:
    value = config.get(key)
    return {e for e in value if isinstance(e, str)} if isinstance(value, list) else set()


def _disabled(config: Mapping[str, Any]) -> list[str]:
    value = config.get("disableAllHooks")
    if value is True:
        return ["(a settings file)"]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def usable(config: Any) -> bool:
    """Whether ``config`` is a summary the client could make (not an error report)."""
    return isinstance(config, Mapping) and "trailguardEvents" in config


def weakenings(config: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[str]:
    """What makes ``config`` weaker than ``previous`` (or, without one, weaker than a working
    install): each as a sentence an auditor can read. Empty: nothing was weakened."""
    found: list[str] = []
    disabled = _disabled(config)
    if disabled and not (previous is not None and _disabled(previous)):
        found.append(f"disableAllHooks is set in {', '.join(disabled)}")
    events = _events(config, "trailguardEvents")
    if previous is None:
        missing = [e for e in ESSENTIAL if e not in events]
        if missing:
            found.append(f"trailguard's {', '.join(missing)} hook is not installed")
        return found
    removed = sorted(_events(previous, "trailguardEvents") - events)
    if removed:
        found.append(f"trailguard's hooks were removed for {', '.join(removed)}")
    unblocked = sorted(
        (_events(previous, "failClosedEvents") & events) - _events(config, "failClosedEvents")
    )
    if unblocked:
        found.append(
            f"onFailure: block was dropped for {', '.join(unblocked)} (tools would run "
            "unrecorded while the gateway is unreachable)"
        )
    managed_only = previous.get("allowManagedHooksOnly") is True
    if managed_only and config.get("allowManagedHooksOnly") is not True:
        found.append("allowManagedHooksOnly was turned off")
    return found
