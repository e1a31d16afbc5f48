"""ArcSight CEF (``CEF:0``) lines for syslog sinks, escaped as the CEF specification requires.

Header fields escape ``\\`` and ``|`` and cannot hold line breaks (they become spaces);
extension values escape ``\\`` and ``=``, and line breaks become ``\\n`` / ``\\r``. Every other
control character of agent-controlled text becomes U+FFFD, so no value can end the line, start
a new key, or drive a terminal. The event id is ``externalId`` and the position ``cn1``
(``cn1Label=seq``); a checkpoint carries its whole signed note in ``cs6``.
"""

from __future__ import annotations

import re
from typing import Any, Final

from trailguard import __version__
from trailguard.siem.risk import cef_severity, epoch_ms

_HEADER_BREAKS: Final = re.compile(r"[\r\n]+")
_CONTROLS: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HEADER_START: Final = f"CEF:0|trailguard|trailguard|{__version__}"
MAX_VALUE: Final = 4000
"""Longest extension value sent (characters); the json format carries whole events."""


_HEADER_SPECIAL: Final = re.compile(r"[\\|\x00-\x1f\x7f]")
_EXTENSION_SPECIAL: Final = re.compile(r"[\\=\x00-\x1f\x7f]")
_EXTENSION_ESCAPES: Final = {"\\": "\\\\", "=": "\\=", "\n": "\\n", "\r": "\\r", "\t": "\t"}


def escape_header(value: str) -> str:
    """A CEF header field: backslash and pipe escaped, line breaks and controls removed."""
    if not _HEADER_SPECIAL.search(value):
        return value
    value = _CONTROLS.sub("\ufffd", _HEADER_BREAKS.sub(" ", value))
    return value.replace("\\", "\\\\").replace("|", "\\|")


def escape_extension(value: str) -> str:
    """A CEF extension value: backslash and equals escaped, CR and LF as ``\\r`` / ``\\n``."""
    if not _EXTENSION_SPECIAL.search(value):
        return value
    return _EXTENSION_SPECIAL.sub(lambda m: _EXTENSION_ESCAPES.get(m[0], "\ufffd"), value)


def _text(value: Any, limit: int = MAX_VALUE) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        import orjson

        value = orjson.dumps(value).decode()
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _name(doc: dict[str, Any]) -> str:
    kind = doc.get("eventType", "event")
    if kind == "tool_invocation":
        return f"{doc.get('tool')} {doc.get('policyResult') or 'recorded'}"
    if kind == "tool_result":
        return f"{doc.get('tool')} {doc.get('status')}"
    if kind == "alert":
        return _text(doc.get("message"), 200)
    if kind == "infra_operation":
        operation = doc.get("operation") or {}
        return f"{operation.get('action')} ({operation.get('access')})"
    if kind == "session_end":
        return f"session end: {doc.get('reason')}"
    if kind == "checkpoint":
        return f"signed checkpoint, tree size {doc.get('treeSize')}"
    return str(kind)


def _signature(doc: dict[str, Any]) -> str:
    kind = str(doc.get("eventType", "event"))
    if kind == "alert":
        return f"alert:{doc.get('alertType')}"
    if kind == "tool_invocation" and doc.get("policyResult"):
        return f"tool_invocation:{doc['policyResult']}"
    return kind


def format_cef(doc: dict[str, Any], *, hostname: str) -> str:
    """The CEF line of one stored event (its parsed canonical JSON)."""
    extension: list[tuple[str, Any]] = [
        ("rt", epoch_ms(doc.get("timestamp"))),
        ("externalId", doc.get("eventId")),
        ("cn1", doc.get("seq")),
        ("cn1Label", "seq"),
        ("cat", doc.get("eventType")),
        ("dvchost", hostname),
        ("suser", doc.get("developerId")),
        ("cs1", doc.get("sessionId")),
        ("cs1Label", "sessionId"),
        ("cs2", doc.get("projectId")),
        ("cs2Label", "projectId"),
    ]
    kind = doc.get("eventType")
    if "tool" in doc:
        extension += [("cs3", doc.get("tool")), ("cs3Label", "tool")]
    if kind == "tool_invocation":
        actions = [op.get("action") for op in doc.get("operations") or []]
        extension += [
            ("act", doc.get("policyResult")),
            ("cs4", doc.get("policyRule")),
            ("cs4Label", "policyRule"),
            ("cs5", ",".join(str(a) for a in actions) or None),
            ("cs5Label", "operations"),
            ("reason", doc.get("policyReason")),
            ("msg", doc.get("input")),
        ]
    elif kind == "tool_result":
        extension += [
            ("outcome", doc.get("status")),
            ("msg", doc.get("error") or doc.get("output")),
        ]
    elif kind == "infra_operation":
        operation = doc.get("operation") or {}
        extension += [
            ("act", operation.get("action")),
            ("cs5", operation.get("resource")),
            ("cs5Label", "resource"),
        ]
    elif kind == "alert":
        extension += [
            ("msg", doc.get("message")),
            ("cs4", doc.get("alertType")),
            ("cs4Label", "alertType"),
        ]
    elif kind == "checkpoint":
        extension += [("cs6", doc.get("note")), ("cs6Label", "checkpointNote")]
    elif kind == "session_end":
        extension += [("reason", doc.get("reason")), ("msg", doc.get("rawReason"))]
    elif kind == "prompt":
        extension += [("msg", doc.get("prompt"))]
    present = {key for key, value in extension if value is not None and value != ""}
    # A label without its value says nothing: labels go out only with their field.
    parts = [
        f"{key}={escape_extension(_text(value))}"
        for key, value in extension
        if key in present and (not key.endswith("Label") or key[:-5] in present)
    ]
    header = (
        f"{_HEADER_START}|{escape_header(_signature(doc)[:1023])}|"
        f"{escape_header(_name(doc)[:512])}|{cef_severity(doc)}"
    )
    return f"{header}|{' '.join(parts)}"


__all__ = ["escape_extension", "escape_header", "format_cef"]
