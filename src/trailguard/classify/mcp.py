"""MCP tool calls (``mcp__<server>__<tool>``) as ``mcp:<server>.<tool>`` operations.

Claude Code names MCP tools ``mcp__<server>__<tool>``. The name is split on the first two
``__`` separators: everything between them is the server, everything after is the tool, so a
tool may itself contain ``__`` (``mcp__github__repos__list`` → server ``github``, tool
``repos__list``) and a server may contain single underscores (``mcp__claude_ai_Gmail__search``),
but a server containing ``__`` cannot be told apart and is cut at its first ``__``.

The access is guessed from the verbs in the tool name (words split on ``_``, ``-``, ``.`` and
camelCase): any delete verb makes it a delete, else any admin verb an admin change, else any
write verb a write, else any read verb a read; a name without a known verb is a write (flag
``unknown-verb``). Reads are low risk, writes and deletes medium, admin changes high. Inputs that
name a file (``path``, ``file_path``...) get the sensitive-path rules of files.py; URLs lose
their credentials.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from trailguard.classify._tool_common import classifier_error
from trailguard.classify.files import resolve_path, sensitive_class
from trailguard.classify.http import url_has_credentials
from trailguard.classify.model import ClassifyContext
from trailguard.events import Access, Operation, Risk
from trailguard.urls import strip_url_credentials

__all__ = ["classify_tool", "split_tool_name", "tool_access"]


_READ_VERBS = frozenset(
    {
        "get", "list", "read", "search", "fetch", "find", "query", "show", "describe", "view",
        "retrieve", "lookup", "count", "check", "inspect", "browse", "navigate", "snapshot",
        "screenshot", "explain", "status", "info", "diff", "analyze", "download",
        "export", "preview", "summarize", "resolve", "load", "open", "scan", "validate",
        "verify", "watch", "wait", "hover", "ls", "cat", "head", "tail", "stat", "lint",
        "recall", "glob", "grep", "think",
    }
)  # fmt: skip
_WRITE_VERBS = frozenset(
    {
        "create", "update", "write", "send", "post", "put", "add", "set", "edit", "modify",
        "insert", "upload", "publish", "push", "merge", "commit", "run", "execute", "exec",
        "invoke", "apply", "deploy", "start", "stop", "restart", "move", "rename", "copy",
        "fill", "click", "type", "press", "submit", "approve", "assign", "comment", "reply",
        "close", "enable", "disable", "install", "trigger", "schedule", "import", "sync",
        "save", "patch", "upsert", "append", "replace", "fork", "transfer", "archive", "label",
        "mark", "toggle", "change", "configure", "register", "store", "remember", "drag",
        "evaluate", "eval", "resize", "mkdir", "touch", "dispatch", "cancel",
        "rerun", "retry", "scale", "build", "generate", "make", "new", "init", "request",
        "lock", "unlock", "pin", "unpin", "star", "unstar", "react", "mention", "tag",
    }
)  # fmt: skip
_DELETE_VERBS = frozenset(
    {
        "delete", "remove", "destroy", "drop", "purge", "erase", "clear", "truncate", "unlink",
        "uninstall", "kill", "terminate", "wipe", "rm", "rmdir", "trash", "discard", "prune",
        "deregister", "unregister", "detach", "reset", "forget",
    }
)  # fmt: skip
_ADMIN_VERBS = frozenset(
    {"grant", "revoke", "invite", "permission", "permissions", "share", "unshare", "impersonate"}
)

_RISK: dict[Access, Risk] = {"read": "low", "write": "medium", "delete": "medium", "admin": "high"}

_PATH_KEYS = ("path", "file_path", "filepath", "filename", "file", "source", "destination",
              "target", "directory", "dir", "notebook_path")  # fmt: skip
_RESOURCE_KEYS = (
    "url", "uri", "path", "file_path", "filepath", "repository", "repo", "table", "database",
    "bucket", "channel", "project", "project_id", "name", "id",
)  # fmt: skip


def split_tool_name(tool: str) -> tuple[str, str] | None:
    """``mcp__server__tool`` → (server, tool); None for names not of that shape."""
    if not tool.startswith("mcp__"):
        return None
    server, sep, name = tool[len("mcp__") :].partition("__")
    if not sep or not server or not name:
        return None
    return server, name


def _words(name: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return [w for w in re.split(r"[\s_\-.:/]+", spaced.lower()) if w]


def tool_access(tool_name: str) -> tuple[Access, bool]:
    """The access a tool name suggests, and whether a verb was recognised at all."""
    words = set(_words(tool_name))
    if words & _DELETE_VERBS:
        return "delete", True
    if words & _ADMIN_VERBS:
        return "admin", True
    if words & _WRITE_VERBS:
        return "write", True
    if words & _READ_VERBS:
        return "read", True
    return "write", False


def classify_tool(
    tool: str, tool_input: Mapping[str, Any] | None, context: ClassifyContext
) -> list[Operation]:
    """One ``mcp:<server>.<tool>`` operation; [] for tool names that are not MCP tools."""
    try:
        return _classify(tool, tool_input if isinstance(tool_input, Mapping) else {}, context)
    except Exception:  # a classifier must never break the hook
        return [classifier_error("mcp:Unknown", raw=tool if isinstance(tool, str) else None)]


def _classify(
    tool: str, tool_input: Mapping[str, Any], context: ClassifyContext
) -> list[Operation]:
    parts = split_tool_name(tool)
    if parts is None:
        return []
    server, name = parts
    access, known = tool_access(name)
    risk: Risk = _RISK[access]
    flags: list[str] = [] if known else ["unknown-verb"]
    attributes: dict[str, str] = {"server": server, "tool": name}

    resource: str | None = None
    owner = tool_input.get("owner")
    repo = tool_input.get("repo") or tool_input.get("repository")
    if isinstance(owner, str) and isinstance(repo, str) and owner and repo:
        resource = f"{owner}/{repo}"
    for key in _RESOURCE_KEYS:
        if resource is not None:
            break
        value = tool_input.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            resource = str(value)
    if resource is not None and "://" in resource:
        if url_has_credentials(resource):
            flags.append("credentials")
        resource = strip_url_credentials(resource)
    if resource is not None:
        resource = resource[:1000]

    for key in _PATH_KEYS:
        value = tool_input.get(key)
        if not isinstance(value, str) or not value or "://" in value:
            continue
        resolved, _path_flags = resolve_path(value, context)
        kind = sensitive_class(resolved, context)
        if kind is not None:
            flags.append("sensitive")
            attributes["sensitive"] = kind
            risk = "high"
            break

    return [
        Operation(
            kind="mcp",
            action=f"mcp:{server}.{name}",
            resource=resource,
            access=access,
            risk=risk,
            flags=flags,
            attributes=attributes,
            raw=tool,
        )
    ]
