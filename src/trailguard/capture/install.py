"""Add trailguard's hooks to a Claude Code settings file, and take them out again.

``install`` merges the hooks trailguard needs into a settings file (project
``.claude/settings.json``, user ``~/.claude/settings.json`` or the managed
``/etc/claude-code/managed-settings.json``) and keeps everything else in it: other settings,
their order, and the user's own hooks. ``uninstall`` removes trailguard's hooks and nothing else.

How trailguard's hooks are recognised
-------------------------------------
Claude Code may reject unknown keys in settings, so trailguard adds no marker to its hooks. A hook
is trailguard's when its structure says so:

- an ``http`` hook whose ``url`` ends with ``/hooks/claude-code`` (the gateway endpoint), or
- a ``command`` hook whose command runs ``trailguard hook``: after optional leading
  ``NAME=value`` environment assignments, the program is ``trailguard`` (with any directory, e.g.
  ``/opt/venv/bin/trailguard``) followed by the word ``hook``, or a ``python...`` program followed
  (after plain flags such as ``-I -S``) by ``-m trailguard hook`` or by
  ``<dir>/trailguard/__main__.py hook`` (:func:`default_hook_command`). Arguments after ``hook``
  are allowed. ``trailguard hooks`` or ``echo trailguard hook`` are not trailguard's. The rule
  lives in ``hook_client/settings.py``, which the hook client uses for its SessionStart report.

``install`` therefore refuses a ``hook_command`` this rule would not recognise, because
``uninstall`` (which is not told the command) could then never remove it.

Layout
------
Each covered event gets one group of trailguard's own, appended after the user's groups for that
event (never mixed into them): ``{"matcher": "*", "hooks": [...]}`` for tool events,
``{"hooks": [...]}`` for the others. Installing again first takes out every trailguard hook (in
any event and any group), then appends the groups again, so a new URL or mode replaces the old
entries and an unchanged install leaves the file byte-identical (and unwritten).

The file is written atomically (temporary file in the same directory, fsync, ``os.replace``) as
JSON with two-space indentation and a final newline; its permission bits are kept (new files get
0644). A file that cannot be read as settings is never modified. An empty (whitespace-only) file
counts as ``{}``. ``allowManagedHooksOnly`` is set only when asked, and never removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from trailguard.capture.hook_client.settings import (
    HOOK_PATH,
    is_trailguard_command,
    is_trailguard_hook,
)
from trailguard.errors import InvalidInputError

Scope = Literal["project", "user", "managed"]
Mode = Literal["http", "command"]

DEFAULT_HOOK_COMMAND = "trailguard hook"
HOOK_TIMEOUT = 30
TOKEN_ENV = "TRAILGUARD_TOKEN"  # noqa: S105 - the name of the variable, not a secret
MANAGED_SETTINGS = Path("/etc/claude-code/managed-settings.json")
MANAGED_FILE_NAME = MANAGED_SETTINGS.name
DEFAULT_FILE_MODE = 0o644

TOOL_EVENTS: tuple[str, ...] = (
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionRequest",
    "PermissionDenied",
)
EVENTS: tuple[str, ...] = (
    "SessionStart",
    "SessionEnd",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionRequest",
    "PermissionDenied",
    "SubagentStart",
    "SubagentStop",
    "Stop",
    "StopFailure",
    "PreCompact",
    "PostCompact",
    "Notification",
    "ConfigChange",
    "UserPromptExpansion",
    "InstructionsLoaded",
    "CwdChanged",
    "DirectoryAdded",
    "WorktreeCreate",
    "WorktreeRemove",
    "TaskCreated",
    "TaskCompleted",
    "Elicitation",
    "ElicitationResult",
    "PreModelSwitch",
    "PostModelSwitch",
    "PreSkillShellCommand",
)
"""The hook events trailguard records, in the order they are written: what an auditor needs
(the session, every tool call and permission, subagents, what the agent was told and where it
worked, configuration changes, model switches, MCP elicitations, and — new in 2.1.332 — shell
commands a skill runs, PreSkillShellCommand; 2.1.328 accepts the unknown name and ignores it).
Left out as noise: PostToolBatch, FileChanged, MessageDisplay, TeammateIdle; Setup runs only as
a command at installation time. Every other event a newer Claude Code sends is still
kept (as ``agent_event``) when a hook delivers it."""

COMMAND_EVENTS: frozenset[str] = frozenset({"SessionStart", "ConfigChange"})
"""Events that run ``trailguard hook`` even in http mode: Claude Code does not call SessionStart
HTTP hooks, and both need the local machine (context at the start; the settings files, read
again, at a configuration change)."""

ALL_HOOK_EVENTS: tuple[str, ...] = (
    "PreToolUse", "PostToolUse", "PostToolUseFailure", "PostToolBatch", "Notification",
    "UserPromptSubmit", "UserPromptExpansion", "SessionStart", "SessionEnd", "Stop",
    "StopFailure", "SubagentStart", "SubagentStop", "PreCompact", "PostCompact",
    "PreModelSwitch", "PostModelSwitch", "PermissionRequest", "PermissionDenied", "Setup",
    "TeammateIdle", "TaskCreated", "TaskCompleted", "Elicitation", "ElicitationResult",
    "ConfigChange", "WorktreeCreate", "WorktreeRemove", "InstructionsLoaded", "CwdChanged",
    "FileChanged", "DirectoryAdded", "MessageDisplay",
)  # fmt: skip
"""Every hook event of Claude Code 2.1.328 (33, in its own order, read from the binary); 2.1.332
adds PreSkillShellCommand (34)."""

ALLOW_MANAGED_HOOKS_ONLY = "allowManagedHooksOnly"


class InstallError(InvalidInputError):
    """The settings file or an argument cannot be used; the message says what to do."""


@dataclass(frozen=True)
class InstallResult:
    """What ``install`` or ``uninstall`` did.

    ``added`` names the events whose trailguard hooks were added or replaced (and
    ``allowManagedHooksOnly`` when install turned it on); ``removed`` names the events whose
    trailguard hooks were removed or replaced. Both are empty when ``changed`` is false.
    """

    path: Path
    changed: bool
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Paths and the hooks section


def settings_path(
    scope: Scope, *, project_dir: Path | None = None, home: Path | None = None
) -> Path:
    """The settings file Claude Code reads for ``scope``.

    ``project``: ``<project_dir or cwd>/.claude/settings.json``; ``user``:
    ``<home or ~>/.claude/settings.json``; ``managed``: ``/etc/claude-code/managed-settings.json``.
    """
    if scope == "project":
        return (
            (project_dir if project_dir is not None else Path.cwd()) / ".claude" / "settings.json"
        )
    if scope == "user":
        return (home if home is not None else Path.home()) / ".claude" / "settings.json"
    if scope == "managed":
        return MANAGED_SETTINGS
    raise InstallError(f"unknown scope {scope!r}: use one of {', '.join(get_args(Scope))}")


def normalize_gateway_url(gateway_url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing ``/``; InstallError otherwise."""
    if not isinstance(gateway_url, str) or not gateway_url.strip():
        raise InstallError("gateway URL is empty: give one like http://127.0.0.1:8787")
    url = gateway_url.strip()
    hint = "give the gateway's base URL, like http://127.0.0.1:8787 or https://audit.example.com"
    if any(c.isspace() for c in url):
        raise InstallError(f"gateway URL {gateway_url!r} contains whitespace: {hint}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InstallError(
            f"gateway URL {gateway_url!r} must start with http:// or https://: {hint}"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise InstallError(f"gateway URL {gateway_url!r} has an invalid port: {hint}") from None
    if not parts.hostname:
        raise InstallError(f"gateway URL {gateway_url!r} has no host: {hint}")
    if parts.username is not None or parts.password is not None:
        raise InstallError(
            f"gateway URL {gateway_url!r} contains credentials: remove them; the hook sends "
            f"the token from ${TOKEN_ENV}"
        )
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise InstallError(f"gateway URL {gateway_url!r} has a query or fragment: {hint}")
    path = parts.path.rstrip("/")
    if path.endswith(HOOK_PATH):
        raise InstallError(
            f"gateway URL {gateway_url!r} already ends with {HOOK_PATH}: give the base URL "
            f"without it ({url[: url.rfind(HOOK_PATH)] or 'http://host:port'}); "
            "trailguard adds the endpoint itself"
        )
    return f"{parts.scheme}://{parts.netloc}{path}"


def default_hook_command() -> str:
    """The command hook ``trailguard install`` writes unless given ``--hook-command``: this
    interpreter runs ``trailguard/__main__.py`` by path with ``-I -S``.

    ``-S`` skips the ``site`` module (site-packages, ``.pth`` files) and ``-I`` the
    environment's ``PYTHON*`` settings: the hook starts almost as fast as a bare interpreter,
    and writes its bytecode cache even where ``PYTHONDONTWRITEBYTECODE`` is set. The script
    finds its own package (``trailguard/__main__.py``) and the client needs nothing else, so this
    works in a virtual environment, a system install and an editable checkout alike. The
    console script (``trailguard hook``) works too, but pays for ``site`` and its own imports on
    every tool call."""
    import sys

    import trailguard

    script = Path(trailguard.__file__).with_name("__main__.py")
    return f"{shlex.quote(sys.executable)} -I -S {shlex.quote(str(script))} hook"


def _check_hook_command(hook_command: str) -> str:
    if not isinstance(hook_command, str) or not hook_command.strip():
        raise InstallError("hook command is empty: use 'trailguard hook' or a path to it")
    if "\n" in hook_command or "\r" in hook_command:
        raise InstallError(f"hook command {hook_command!r} must be a single line")
    if not is_trailguard_command(hook_command):
        raise InstallError(
            f"hook command {hook_command!r} does not run 'trailguard hook', so uninstall could "
            "not recognise it: use 'trailguard hook', '/path/to/trailguard hook' or "
            "'/path/to/python -m trailguard hook'"
        )
    return hook_command


def _command_hook(hook_command: str, base_url: str, *, block_on_failure: bool) -> dict[str, Any]:
    # The gateway goes on the command line: the hook must reach the gateway it was installed
    # for, whatever TRAILGUARD_URL or hook.json say on this machine.
    command = f"{hook_command} --gateway {shlex.quote(base_url)}"
    hook: dict[str, Any] = {"type": "command", "command": command, "timeout": HOOK_TIMEOUT}
    if block_on_failure:
        hook["onFailure"] = "block"
    return hook


def _http_hook(base_url: str) -> dict[str, Any]:
    return {
        "type": "http",
        "url": base_url + HOOK_PATH,
        "headers": {"Authorization": f"Bearer ${TOKEN_ENV}"},
        "allowedEnvVars": [TOKEN_ENV],
        "onFailure": "block",
        "timeout": HOOK_TIMEOUT,
    }


def trailguard_hooks(
    gateway_url: str, mode: Mode, *, hook_command: str = DEFAULT_HOOK_COMMAND
) -> dict[str, list[dict[str, Any]]]:
    """The ``hooks`` section trailguard needs, keyed by event name (fresh objects every call).

    ``http``: every event posts to ``<gateway_url>/hooks/claude-code`` and blocks when the
    gateway cannot be reached, except SessionStart, which Claude Code only runs as a command hook
    (and which collects context on the local machine). ``command``: every event runs
    ``hook_command``, which itself denies when the gateway is down; ``onFailure: block`` covers a
    crash of the client.
    """
    base_url = normalize_gateway_url(gateway_url)
    hook_command = _check_hook_command(hook_command)
    if mode not in get_args(Mode):
        raise InstallError(f"unknown mode {mode!r}: use 'http' or 'command'")
    section: dict[str, list[dict[str, Any]]] = {}
    for event in EVENTS:
        if mode == "command":
            hook = _command_hook(hook_command, base_url, block_on_failure=True)
        elif event in COMMAND_EVENTS:
            hook = _command_hook(hook_command, base_url, block_on_failure=False)
        else:
            hook = _http_hook(base_url)
        group: dict[str, Any] = {"matcher": "*"} if event in TOOL_EVENTS else {}
        group["hooks"] = [hook]
        section[event] = [group]
    return section


# ---------------------------------------------------------------------------------------------
# Recognising trailguard's hooks


# ---------------------------------------------------------------------------------------------
# Reading, checking and writing the settings file


def _read_settings(path: Path) -> tuple[dict[str, Any], bool]:
    """The parsed settings and whether the file exists; InstallError if it cannot be used."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}, False
    except OSError as exc:
        raise InstallError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InstallError(
            f"{path} is not UTF-8 text (byte {exc.start}): fix or move it, then run again; "
            "it was not modified"
        ) from None
    if not text.strip():
        return {}, True

    def _reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InstallError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
            "Fix or move the file, then run again; it was not modified."
        ) from None
    except ValueError as exc:
        raise InstallError(
            f"{path} is not valid JSON: {exc}. Fix or move the file, then run again; "
            "it was not modified."
        ) from None
    if not isinstance(data, dict):
        raise InstallError(
            f"{path}: the top level must be a JSON object ({{...}}), found "
            f"{_json_type(data)}. Fix or move the file, then run again; it was not modified."
        )
    _check_hooks_shape(path, data)
    return data, True


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _check_hooks_shape(path: Path, data: dict[str, Any]) -> None:
    if "hooks" not in data:
        return
    fix = "Fix it as Claude Code documents hooks, then run again; the file was not modified."
    hooks = data["hooks"]
    if not isinstance(hooks, dict):
        raise InstallError(f'{path}: "hooks" must be an object, found {_json_type(hooks)}. {fix}')
    for event, groups in hooks.items():
        where = f"hooks.{event}"
        if not isinstance(groups, list):
            raise InstallError(
                f"{path}: {where} must be an array of matcher groups, found "
                f"{_json_type(groups)}. {fix}"
            )
        for i, group in enumerate(groups):
            if not isinstance(group, dict):
                raise InstallError(
                    f"{path}: {where}[{i}] must be an object, found {_json_type(group)}. {fix}"
                )
            if "hooks" in group and not isinstance(group["hooks"], list):
                raise InstallError(
                    f"{path}: {where}[{i}].hooks must be an array, found "
                    f"{_json_type(group['hooks'])}. {fix}"
                )


def _serialise(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _fingerprint(data: Any) -> str:
    """Order- and type-sensitive comparison text (``1 == True`` must not hide a change)."""
    return json.dumps(data, ensure_ascii=False)


def _write_atomically(path: Path, content: bytes) -> None:
    target = path.resolve() if path.is_symlink() else path
    directory = target.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            st: os.stat_result | None = target.stat()
        except FileNotFoundError:
            st = None
        mode = (st.st_mode & 0o7777) if st is not None else DEFAULT_FILE_MODE
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(content)
                tmp.flush()
                os.fchmod(tmp.fileno(), mode)
                if st is not None and (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
                    with contextlib.suppress(PermissionError):
                        os.fchown(tmp.fileno(), st.st_uid, st.st_gid)
                os.fsync(tmp.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        _fsync_directory(directory)
    except OSError as exc:
        hint = " (run as root for managed settings)" if isinstance(exc, PermissionError) else ""
        raise InstallError(
            f"cannot write {path}: {exc.strerror or exc}{hint}; it was not modified"
        ) from None


def _fsync_directory(directory: Path) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# ---------------------------------------------------------------------------------------------
# Merging


def _trailguard_entries(hooks: dict[str, Any]) -> dict[str, list[Any]]:
    """Trailguard's hook dicts per event, in file order (events without any are left out)."""
    found: dict[str, list[Any]] = {}
    for event, groups in hooks.items():
        mine = [
            hook for group in groups for hook in group.get("hooks", []) if is_trailguard_hook(hook)
        ]
        if mine:
            found[event] = mine
    return found


def _strip_trailguard(hooks: dict[str, Any]) -> set[str]:
    """Remove trailguard's hook dicts in place; return the events whose list this emptied.

    Groups left empty by the removal are dropped; the user's own empty groups or events stay.
    """
    emptied: set[str] = set()
    for event, groups in hooks.items():
        kept_groups: list[Any] = []
        removed_any = False
        for group in groups:
            entries = group.get("hooks")
            if not entries:
                kept_groups.append(group)
                continue
            kept = [hook for hook in entries if not is_trailguard_hook(hook)]
            if len(kept) == len(entries):
                kept_groups.append(group)
                continue
            removed_any = True
            if kept:
                group["hooks"] = kept
                kept_groups.append(group)
        if removed_any:
            groups[:] = kept_groups
            if not kept_groups:
                emptied.add(event)
    return emptied


def _diff(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> tuple[list[str], list[str]]:
    added: list[str] = []
    removed: list[str] = []
    for event in [*before, *(e for e in after if e not in before)]:
        old, new = before.get(event, []), after.get(event, [])
        if _fingerprint(old) == _fingerprint(new):
            continue
        if old:
            removed.append(event)
        if new:
            added.append(event)
    return added, removed


def install(
    path: Path,
    gateway_url: str,
    mode: Mode = "http",
    *,
    hook_command: str = DEFAULT_HOOK_COMMAND,
    allow_managed_hooks_only: bool = False,
) -> InstallResult:
    """Merge trailguard's hooks into the settings file at ``path`` (created if missing).

    Every other setting and every hook of the user's stays as it was. Earlier trailguard hooks
    are replaced, so running it again with the same arguments changes nothing.
    ``allow_managed_hooks_only`` sets ``allowManagedHooksOnly: true`` and is accepted only for a
    ``managed-settings.json`` file.
    """
    path = Path(path)
    if allow_managed_hooks_only and path.name != MANAGED_FILE_NAME:
        raise InstallError(
            f"allowManagedHooksOnly is only honoured in {MANAGED_FILE_NAME}, not in {path}: "
            f"install into the managed scope ({MANAGED_SETTINGS}) or drop the option"
        )
    wanted = trailguard_hooks(gateway_url, mode, hook_command=hook_command)
    data, _exists = _read_settings(path)
    before_text = _fingerprint(data)

    hooks: dict[str, Any] = data.setdefault("hooks", {})
    before = _trailguard_entries(hooks)
    emptied = _strip_trailguard(hooks)
    for event, groups in wanted.items():
        hooks.setdefault(event, []).extend(groups)
    for event in emptied - wanted.keys():
        del hooks[event]
    added, removed = _diff(before, _trailguard_entries(hooks))

    if allow_managed_hooks_only and data.get(ALLOW_MANAGED_HOOKS_ONLY) is not True:
        data[ALLOW_MANAGED_HOOKS_ONLY] = True
        added.append(ALLOW_MANAGED_HOOKS_ONLY)

    if _fingerprint(data) == before_text:
        return InstallResult(path=path, changed=False, added=[], removed=[])
    _write_atomically(path, _serialise(data))
    return InstallResult(path=path, changed=True, added=added, removed=removed)


def uninstall(path: Path) -> InstallResult:
    """Remove trailguard's hooks from the settings file at ``path``; leave everything else.

    Groups, events and the ``hooks`` object that only held trailguard's hooks go with them. A
    missing file, or one without trailguard hooks, is left alone (``changed=False``).
    """
    path = Path(path)
    data, exists = _read_settings(path)
    hooks = data.get("hooks")
    if not exists or not isinstance(hooks, dict):
        return InstallResult(path=path, changed=False, added=[], removed=[])
    before = _trailguard_entries(hooks)
    if not before:
        return InstallResult(path=path, changed=False, added=[], removed=[])
    for event in _strip_trailguard(hooks):
        del hooks[event]
    if not hooks:
        del data["hooks"]
    _write_atomically(path, _serialise(data))
    return InstallResult(path=path, changed=True, added=[], removed=list(before))
