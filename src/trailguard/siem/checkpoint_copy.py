"""A signed checkpoint found in text copied from a SIEM: a syslog line with a CEF or JSON
payload, a webhook or HEC body, an OCSF event, or the note itself.

The signature is not checked here (``verify`` does that with the pinned key); this only finds
the note, undoing the escaping each format applied (JSON string escapes, CEF's ``\\n`` and
``\\=``). When the text holds several checkpoints the one of the largest tree wins: it covers
the most.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Final

from trailguard.ledger.checkpoint import CheckpointError, SignedCheckpoint, read_unverified

_NOTE: Final = re.compile(
    r"(?P<note>[^\s\\=|\"]+\n\d{1,20}\n[A-Za-z0-9+/]{43}=\n\n(?:\u2014 [^\s]+ [A-Za-z0-9+/=]+\n)+)"
)
_MAX_TEXT: Final = 16 * 1024 * 1024


def _unescape_cef(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m[1], m[1]), text)


def _json_values(text: str) -> Iterator[Any]:
    decoder = json.JSONDecoder()
    position = 0
    while (start := _next_json_start(text, position)) != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            position = start + 1
            continue
        yield value
        position = end


def _next_json_start(text: str, position: int) -> int:
    braces = [i for i in (text.find("{", position), text.find("[", position)) if i != -1]
    return min(braces) if braces else -1


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _candidates(text: str) -> Iterator[str]:
    yield text
    for value in _json_values(text):
        for string in _strings(value):
            if "\u2014 " in string:
                yield from (m["note"] for m in _NOTE.finditer(string))
    for variant in (text, _unescape_cef(text)):
        yield from (m["note"] for m in _NOTE.finditer(variant))


def find_checkpoint(text: str) -> SignedCheckpoint:
    """The checkpoint of the largest tree in ``text``. Raises CheckpointError when there is
    none."""
    if len(text) > _MAX_TEXT:
        raise CheckpointError(f"the text is over {_MAX_TEXT // (1024 * 1024)} MiB")
    best: SignedCheckpoint | None = None
    for candidate in _candidates(text):
        try:
            found = read_unverified(candidate)
        except CheckpointError:
            continue
        if best is None or found.tree_size > best.tree_size:
            best = found
    if best is None:
        raise CheckpointError(
            "no signed checkpoint found (expected a note, or a syslog line, JSON event or OCSF "
            "event carrying one as a sink received it)"
        )
    return best
