"""JSON for the hook client through the interpreter's own C accelerator, ``_json``.

``import json`` imports ``re`` and ``enum`` for its pure-Python fallbacks, which the C scanner
and encoder never use: that is most of the client's start-up on every tool call. ``loads`` and
``dumps`` here give what ``json.loads`` and ``json.dumps`` give (tests/test_hook_client_json.py
compares them); whatever the fast path does not take (another encoding, a syntax error, no
``_json``) goes to ``json`` itself, so errors read exactly as ``json``'s.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_accelerator: Any
try:
    import _json as _accelerator
except ImportError:  # an interpreter without the accelerator
    _accelerator = None

_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_WHITESPACE = " \t\n\r"


class _DecoderSettings:
    """What the C scanner reads from ``json.JSONDecoder``: its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_scan: Callable[[str, int], tuple[Any, int]] | None = (
    _accelerator.make_scanner(_DecoderSettings()) if _accelerator is not None else None
)


def loads(data: bytes | str) -> Any:
    """``json.loads(data)``."""
    if _scan is not None:
        try:
            text = data.decode("utf-8", "surrogatepass") if isinstance(data, bytes) else data
            start = len(text) - len(text.lstrip(_WHITESPACE))
            value, end = _scan(text, start)
            if not text[end:].strip(_WHITESPACE):
                return value
        except Exception:  # noqa: S110 - json below says what is wrong, in its own words
            pass
    import json

    return json.loads(data)


def _unserializable(value: object) -> object:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def dumps(value: Any, *, compact: bool = False) -> str:
    """``json.dumps(value)``, or with ``separators=(",", ":")`` when ``compact``."""
    item, key = (",", ":") if compact else (", ", ": ")
    if _accelerator is None:
        import json

        return json.dumps(value, separators=(item, key))
    escape = _accelerator.encode_basestring_ascii
    if isinstance(value, str):
        return str(escape(value))
    # The arguments json.JSONEncoder passes for its defaults (a fresh dict of markers catches
    # cycles): markers, default, encoder, indent, separators, sort_keys, skipkeys, allow_nan.
    encode = _accelerator.make_encoder(
        {}, _unserializable, escape, None, key, item, False, False, True
    )
    return "".join(encode(value, 0))
