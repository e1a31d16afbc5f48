"""Agent-controlled text made safe to show a person, wherever it is shown (terminal, console).

Control characters and bidi overrides are shown as ``\\xNN`` / ``\\uNNNN`` escapes, never
interpreted: escape sequences could retitle or rewrite a terminal, and U+202E could make
``rm -rf /`` read as something harmless in a table or a web page."""

from __future__ import annotations

import re

__all__ = ["printable"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(value: object) -> str:
    """``value`` as text with every control character and bidi override escaped."""
    text = value if isinstance(value, str) else str(value)
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)
