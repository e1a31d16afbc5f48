"""What the ledger keeps of a classified tool call: its operations after the redaction stage.

Classifiers describe a command as written; only the redaction stage (``gateway/pipeline.py``
``redact``) replaces secrets. Tests of a classifier's handling of credentials go through both.
"""

from __future__ import annotations

from typing import Any

from trailguard.classify import ClassifyContext, classify_tool_call
from trailguard.events import Operation, ToolInvocation
from trailguard.redact import Redactor

KEY = b"classifier-tests-redaction-key"
CONTEXT = ClassifyContext(cwd="/home/dev/app", home="/home/dev", project_root="/home/dev/app")


def stored_operations(tool: str, tool_input: dict[str, Any]) -> list[Operation]:
    """The operations of one tool call as the ledger stores them (classified, then redacted
    together with the tool input, as the hook path does)."""
    return redacted(tool, tool_input, classify_tool_call(tool, tool_input, CONTEXT))


def redacted(tool: str, tool_input: dict[str, Any], operations: list[Operation]) -> list[Operation]:
    """``operations`` after the redaction stage, in the tool call event they belong to."""
    event = ToolInvocation(tool=tool, input=tool_input, operations=operations)
    result: ToolInvocation = Redactor(KEY).redact_event(event)
    return result.operations


def stored_command(command: str) -> list[Operation]:
    """:func:`stored_operations` of a Bash command."""
    return stored_operations("Bash", {"command": command})
