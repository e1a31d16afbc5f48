"""Claude Code's settings files as the hook client reads them: permission rules and which of
the hooks are trailguard's (SessionStart context and ConfigChange only)."""

from __future__ import annotations

import json
import os

from trailguard.capture.hook_client.config import env, home
from trailguard.capture.hook_client.support import describe_exception, sha256_hex

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    Json = dict[str, Any]


def _settings_paths(cwd: str | None, environ: Mapping[str, str]) -> list[str]:
    config_dir = env(environ, "CLAUDE_CONFIG_DIR") or os.path.join(home(environ), ".claude")
    paths = [os.path.join(config_dir, "settings.json")]
    if cwd:
        paths += [
            os.path.join(cwd, ".claude", "settings.json"),
            os.path.join(cwd, ".claude", "settings.local.json"),
        ]
    paths.append("/etc/claude-code/managed-settings.json")
    return paths


def read_permissions(cwd: str | None, environ: Mapping[str, str]) -> tuple[Json, str | None]:
    """Merged ``permissions`` allow/deny/ask rules of the settings files that exist (user,
    project, local project, managed), each rule once, in file order; plus ``sources`` (the files
    read) and, if a file is unparseable, ``unreadable``. Returns (permissions, model) where
    model is the ``model`` setting of the highest-precedence file that sets one."""
    merged: dict[str, list[str]] = {"allow": [], "deny": [], "ask": []}
    sources: list[str] = []
    unreadable: list[str] = []
    model: str | None = None
    for path in _settings_paths(cwd, environ):
        try:
            with open(path, "rb") as handle:
                settings = json.loads(handle.read())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            unreadable.append(f"{path}: {describe_exception(exc)}")
            continue
        sources.append(path)
        if not isinstance(settings, dict):
            continue
        if isinstance(settings.get("model"), str):
            model = settings["model"]  # later files take precedence (managed last)
        permissions = settings.get("permissions")
        if not isinstance(permissions, dict):
            continue
        for kind, rules in merged.items():
            found = permissions.get(kind)
            if isinstance(found, list):
                rules.extend(r for r in found if isinstance(r, str) and r not in rules)
    result: Json = {**merged, "sources": sources}
    if unreadable:
        result["unreadable"] = unreadable
    return result, model


HOOK_PATH = "/hooks/claude-code"
ENTRY_SCRIPT = "trailguard/__main__.py"
"""What ``python -I -S <site-packages>/trailguard/__main__.py hook`` runs: ``install``'s default
command hook, which starts without the ``site`` machinery (see ``trailguard/__main__.py``)."""
_OPTIONS_WITH_VALUES = frozenset("cmWXQ")


def _program_name(token: str) -> str:
    name = token.replace("\\", "/").rsplit("/", 1)[-1]
    return name.removesuffix(".exe")


def _is_env_assignment(token: str) -> bool:
    name, sep, _ = token.partition("=")
    return bool(sep) and name.isidentifier()


def is_trailguard_command(command: str) -> bool:
    """Whether a command hook's command runs ``trailguard hook``: after optional ``NAME=value``
    assignments, ``[dir/]trailguard hook``, or ``python... [-flags] -m trailguard hook``, or
    ``python... [-flags] <dir>/trailguard/__main__.py hook``; arguments may follow ``hook``."""
    import shlex

    try:
        tokens = shlex.split(command)
    except ValueError:
        return False
    while tokens and _is_env_assignment(tokens[0]):
        tokens = tokens[1:]
    if len(tokens) < 2:
        return False
    program, rest = _program_name(tokens[0]), tokens[1:]
    if program == "trailguard":
        return rest[0] == "hook"
    if not program.startswith("python"):
        return False
    while rest and rest[0].startswith("-") and len(rest[0]) > 1 and rest[0][1:].isalpha():
        if set(rest[0][1:]) & _OPTIONS_WITH_VALUES:
            break  # -m, -c, -X...: no more plain flags
        rest = rest[1:]
    if rest[:3] == ["-m", "trailguard", "hook"]:
        return True
    script = rest[0].replace("\\", "/") if rest else ""
    return script.endswith("/" + ENTRY_SCRIPT) and rest[1:2] == ["hook"]


def is_trailguard_hook(hook: object) -> bool:
    """Whether one hook (an entry of a group's ``hooks`` list) is trailguard's: an http hook to
    the gateway endpoint, or a command hook that runs ``trailguard hook``."""
    if not isinstance(hook, dict):
        return False
    kind = hook.get("type")
    if kind == "http":
        url = hook.get("url")
        return isinstance(url, str) and url.endswith(HOOK_PATH)
    command = hook.get("command")
    return kind == "command" and isinstance(command, str) and is_trailguard_command(command)


def read_hook_config(cwd: str | None, environ: Mapping[str, str]) -> Json:
    """What the settings files say about trailguard's hooks: per file, the events with a
    trailguard hook, those that block when the gateway cannot be reached (``onFailure: block``
    or a command hook, which denies by itself), ``disableAllHooks`` and
    ``allowManagedHooksOnly``; the union over files; and a SHA-256 of exactly this summary, so
    a later session (or a ConfigChange) with different hooks is visible. A claim of the
    developer's machine, like the rest of the context."""
    files: list[Json] = []
    events: set[str] = set()
    fail_closed: set[str] = set()
    disabled: list[str] = []
    managed_only = False
    for path in _settings_paths(cwd, environ):
        entry: Json = {"path": path}
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            continue
        except OSError as exc:
            entry["unreadable"] = describe_exception(exc)
            files.append(entry)
            continue
        entry["fileSha256"] = sha256_hex(raw)
        try:
            settings = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            entry["unreadable"] = f"not JSON: {describe_exception(exc)}"
            files.append(entry)
            continue
        if not isinstance(settings, dict):
            settings = {}
        mine: set[str] = set()
        blocking: set[str] = set()
        hooks = settings.get("hooks")
        for event, groups in hooks.items() if isinstance(hooks, dict) else ():
            for group in groups if isinstance(groups, list) else ():
                entries = group.get("hooks") if isinstance(group, dict) else None
                for hook in entries if isinstance(entries, list) else ():
                    if is_trailguard_hook(hook):
                        mine.add(event)
                        if hook.get("onFailure") == "block" or hook.get("type") == "command":
                            blocking.add(event)
        entry["trailguardEvents"] = sorted(mine)
        entry["failClosedEvents"] = sorted(blocking)
        if settings.get("disableAllHooks") is True:
            entry["disableAllHooks"] = True
            disabled.append(path)
        if settings.get("allowManagedHooksOnly") is True:
            entry["allowManagedHooksOnly"] = True
            managed_only = managed_only or path.endswith("managed-settings.json")
        events |= mine
        fail_closed |= blocking
        files.append(entry)
    summary: Json = {
        "trailguardEvents": sorted(events),
        "failClosedEvents": sorted(fail_closed),
        "disableAllHooks": disabled,
        "allowManagedHooksOnly": managed_only,
        "files": [{k: v for k, v in f.items() if k != "fileSha256"} for f in files],
    }
    summary["sha256"] = sha256_hex(json.dumps(summary, sort_keys=True).encode("utf-8"))
    summary["files"] = files
    return summary
