"""RFC 8785 (JSON Canonicalization Scheme) bytes of an event: the exact bytes that are hashed
and stored.

``rfc8785`` is the reference implementation. It is pure Python (about 60 µs per event), so values
inside a domain where plain sorted, compact JSON is provably the same bytes are encoded with orjson
instead; property tests compare both encoders over that domain.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import rfc8785

# Integers JCS can represent exactly (RFC 8785 §3.2.2.3 follows IEEE 754 doubles).
_MAX_SAFE_INTEGER = 2**53 - 1


def _is_sorted_json_enough(value: Any) -> bool:
    """True when orjson with sorted keys emits exactly the RFC 8785 bytes of ``value``.

    That holds for strings, safe integers, booleans, null, lists, and objects whose keys are
    ASCII (UTF-16 and code point order then agree, RFC 8785 §3.2.3). Floats are left to rfc8785:
    JCS formats them as ECMAScript does (``1`` not ``1.0``, ``1e+21``), which orjson does not.
    """
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return bool(-_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii() or not _is_sorted_json_enough(item):
                return False
        return True
    if kind is list:
        return all(_is_sorted_json_enough(item) for item in value)
    return False


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value.

    Raises ValueError for values JSON cannot represent canonically (NaN, lone surrogates,
    integers beyond 2**53).
    """
    try:
        if _is_sorted_json_enough(value):
            try:
                return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
            except orjson.JSONEncodeError:
                pass  # nesting deeper than orjson allows, or a lone surrogate: rfc8785 decides
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError, UnicodeError) as exc:
        raise ValueError(f"value cannot be canonicalised: {exc}") from None
    except RecursionError:
        raise ValueError("value cannot be canonicalised: nested too deeply") from None


def canonical_document(document: dict[str, Any], free_form: Iterable[str]) -> bytes:
    """``canonical_json(document)`` for an event document whose top-level keys are ASCII and
    whose values are plain (strings, integers, booleans, lists and objects of them) except
    those under ``free_form`` (``Event.free_form_fields()``): only those are inspected."""
    try:
        if all(_is_sorted_json_enough(document[key]) for key in free_form):
            try:
                # OPT_STRICT_INTEGER refuses integers beyond 2**53 instead of encoding them.
                options = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
                return orjson.dumps(document, option=options)
            except orjson.JSONEncodeError:
                pass
        return bytes(rfc8785.dumps(document))
    except (rfc8785.CanonicalizationError, TypeError, UnicodeError) as exc:
        raise ValueError(f"value cannot be canonicalised: {exc}") from None
    except RecursionError:
        raise ValueError("value cannot be canonicalised: nested too deeply") from None
