"""Classification: what a tool call does to the outside world, as Operations.

``classify_tool_call`` is the entry point: Bash commands are parsed with tree-sitter-bash and
each command goes to the classifier of its program (aws, git, psql, curl, kubectl, terraform...);
file, web and MCP tools are classified from their input. A command that cannot be known
statically becomes a ``shell:Unresolved`` operation, which policy decides (default: ask).
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Mapping
from functools import cache
from types import ModuleType
from typing import Any

from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.classify.script import ScriptState
from trailguard.events import Operation

log = logging.getLogger("trailguard.classify")

__all__ = ["ClassifyContext", "classify_command", "classify_script", "classify_tool_call"]

# Modules exposing PROGRAMS and classify(command, context) -> list[Operation].
_SHELL_CLASSIFIERS = (
    "aws",
    "git",
    "sql",
    "http",
    "files",
    "kubernetes",
    "terraform",
    "containers",
    "gcloud",
    "azure",
    "github",
    "packages",
)
_FILE_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit", "Read", "Glob", "Grep"})
_WEB_TOOLS = frozenset({"WebFetch"})
_AGENT_TOOLS = frozenset({"Task", "Agent"})
_QUIET_PROGRAMS = frozenset(
    {
        "ls",
        "cat",
        "echo",
        "printf",
        "pwd",
        "cd",
        "head",
        "tail",
        "wc",
        "sort",
        "uniq",
        "grep",
        "rg",
        "egrep",
        "fgrep",
        "which",
        "type",
        "true",
        "false",
        "test",
        "[",
        "date",
        "whoami",
        "id",
        "uname",
        "env",
        "printenv",
        "basename",
        "dirname",
        "realpath",
        "readlink",
        "stat",
        "file",
        "du",
        "df",
        "ps",
        "sleep",
        "diff",
        "cmp",
        "less",
        "more",
        "tr",
        "cut",
        "awk",
        "jq",
        "yq",
        "column",
        "seq",
        "tree",
        "history",
        "export",
        "set",
        "unset",
        "alias",
        "exit",
        "return",
        "read",
        "wait",
        "xxd",
        "od",
        "hexdump",
        "md5sum",
        "sha256sum",
        "sha1sum",
        "base64",
        "nproc",
        "free",
        "uptime",
        "hostname",
        "find",  # its -exec commands are commands of their own; -delete is files.py's
    }
)
"""Programs that only read or print: recorded on the tool call, no operation of their own."""
_DOWNLOADERS = re.compile(r"\b(curl|wget)\b")
_RUNS_TEXT = re.compile(r"\b(sh|bash|zsh|dash|source|eval|python3?|perl|ruby|node)\b")


@cache
def _every_command_rules() -> tuple[
    Callable[[SimpleCommand, ClassifyContext], list[Operation]], ...
]:
    """Rules that look at every command whatever its program: redirects, reads of sensitive
    files, and an interpreter fed by a download (``curl ... | sh``)."""
    from trailguard.classify import files, http

    return (files.classify_redirects, files.classify_reads, http.classify_pipeline_to_shell)


@cache
def _classifiers() -> dict[str, Callable[[SimpleCommand, ClassifyContext], list[Operation]]]:
    by_program: dict[str, Callable[[SimpleCommand, ClassifyContext], list[Operation]]] = {}
    for name in _SHELL_CLASSIFIERS:
        module: ModuleType = importlib.import_module(f"trailguard.classify.{name}")
        for program in module.PROGRAMS:
            by_program.setdefault(program, module.classify)
    return by_program


def _clip(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, marked ``…`` where cut: the redaction stage then
    knows a token there may be cut short (and replaces it as the whole token's echo)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unresolved(command: SimpleCommand, why: str) -> Operation:
    return Operation(
        kind="shell",
        action="shell:Unresolved",
        resource=_clip(command.text) or None,
        access="admin",
        risk="high",
        flags=["unresolved"],
        attributes={"why": _clip(why)},
        raw=command.text,
    )


def _downloaded(command: SimpleCommand) -> Operation:
    return Operation(
        kind="shell",
        action="shell:ExecuteDownloaded",
        resource=_clip(command.text) or None,
        access="admin",
        risk="critical",
        flags=["download-to-shell"],
        raw=command.text,
    )


def classify_command(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    """The operations of one parsed shell command (never raises: a classifier bug becomes an
    unresolved operation, so policy still decides)."""
    if command.unresolved is not None:
        unresolved = [_unresolved(command, command.unresolved)]
        if _DOWNLOADERS.search(command.text) and _RUNS_TEXT.search(command.text):
            unresolved.append(_downloaded(command))  # sh -c "$(curl …)"
        return unresolved
    operations: list[Operation] = []
    try:
        for rule in _every_command_rules():
            operations.extend(rule(command, context))
        program = command.program
        classifier = _classifiers().get(program)
        if classifier is not None:
            operations.extend(classifier(command, context))
        if not operations and program and program not in _QUIET_PROGRAMS:
            # Something ran that no classifier describes (python script.py, make, npm test):
            # recorded as an execution so the record shows it and policy can still decide it.
            operations.append(
                Operation(
                    kind="exec",
                    action="exec:Run",
                    resource=program,
                    access="write",
                    risk="low",
                    raw=command.text,
                )
            )
    except Exception as exc:  # a classifier bug must not let a command through unexamined
        # the command's length only: its text is not redacted yet and may hold a secret
        log.exception("classifier failed on a command of %d characters", len(command.text))
        return [_unresolved(command, f"classifier error: {type(exc).__name__}")]
    unique: dict[tuple[str, str | None, str], Operation] = {}
    for operation in operations:  # a path seen by two rules (redirect and argument) once
        unique.setdefault((operation.action, operation.resource, operation.access), operation)
    return list(unique.values())


def classify_script(script: str, context: ClassifyContext) -> list[Operation]:
    """The operations of a shell script run from inside another command (a client's shell
    escape: ``psql``'s ``\\!``), as :func:`classify_tool_call` classifies a Bash command."""
    from trailguard.classify.shell import parse_shell

    return _classify_script(parse_shell(script).commands, context)


def _classify_script(
    commands: tuple[SimpleCommand, ...], context: ClassifyContext
) -> list[Operation]:
    """Classify a script's commands in order, each as it will really run given what earlier
    commands of the same call set up (see classify/script.py)."""
    state = ScriptState(environment=dict(context.env))
    operations: list[Operation] = []
    for command in commands:
        if state.observe(command):
            state.previous = command
            continue
        for effective in state.expand(command):
            found = classify_command(effective, context)
            operations.extend(found)
            for operation in found:
                output = operation.attributes.get("output")
                if operation.kind == "http" and output:
                    state.downloaded.add(output.rsplit("/", 1)[-1])
            if state.runs_download(effective):
                operations.append(_downloaded(effective))
        state.previous = command
    return operations


def classify_tool_call(
    tool: str, tool_input: Any, context: ClassifyContext | None = None
) -> list[Operation]:
    """Every operation one Claude Code tool call performs."""
    context = context or ClassifyContext()
    data: Mapping[str, Any] = tool_input if isinstance(tool_input, Mapping) else {}
    if tool == "Bash":
        from trailguard.classify.shell import parse_shell

        script = data.get("command")
        if not isinstance(script, str):
            return []
        parsed = parse_shell(script)
        operations = _classify_script(parsed.commands, context)
        if parsed.errors and not any(op.action == "shell:Unresolved" for op in operations):
            operations.append(
                _unresolved(SimpleCommand(argv=(), text=script), "; ".join(parsed.errors))
            )
        return operations
    if tool in _FILE_TOOLS:
        from trailguard.classify import files

        return files.classify_tool(tool, dict(data), context)
    if tool in _WEB_TOOLS:
        from trailguard.classify import http

        return http.classify_webfetch(dict(data), context)
    if tool.startswith("mcp__"):
        from trailguard.classify import mcp

        return mcp.classify_tool(tool, dict(data), context)
    if tool in _AGENT_TOOLS:
        description = data.get("description") or data.get("subagent_type")
        return [
            Operation(
                kind="agent",
                action="agent:Spawn",
                resource=_clip(str(description)) if description else None,
                access="write",
                risk="low",
            )
        ]
    return []
