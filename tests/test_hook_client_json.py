"""The hook client's JSON (``_json`` without ``json``) gives exactly what ``json`` gives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trailguard.capture.hook_client import fastjson

VALUES: list[Any] = [
    {},
    [],
    "",
    "plain",
    0,
    -1,
    10**40,
    2.5,
    -0.0,
    1e-300,
    True,
    None,
    {"hook_event_name": "PreToolUse", "tool_input": {"command": "echo 'hi' > \"x\"\n\t"}},
    {"unicode": "héllo wörld ✓ 日本語 \U0001f600", "control": "\x00\x1f\x7f", "lone": "\ud800"},
    {"nested": [[[{"a": [1, 2.0, None, False]}]]], "": "empty key", "1": 1},
    {"floats": [0.1, 1.0, 123456789.123456789, 1.7976931348623157e308, 5e-324]},
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("compact", [False, True])
def test_dumps_matches_json(value: Any, compact: bool) -> None:
    separators = (",", ":") if compact else (", ", ": ")
    assert fastjson.dumps(value, compact=compact) == json.dumps(value, separators=separators)


@pytest.mark.parametrize("value", VALUES)
def test_loads_reads_back_what_json_writes(value: Any) -> None:
    text = json.dumps(value, indent=2, ensure_ascii=False)
    assert fastjson.loads(text) == json.loads(text)
    raw = text.encode("utf-8", "surrogatepass")
    assert fastjson.loads(raw) == json.loads(raw)
    padded = f" \n\t{text}\r\n "
    assert fastjson.loads(padded) == json.loads(padded) == value


def test_non_finite_numbers_round_trip_like_json() -> None:
    text = json.dumps([float("nan"), float("inf"), float("-inf")])
    assert fastjson.dumps(fastjson.loads(text)) == text == "[NaN, Infinity, -Infinity]"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"{",
        b'{"a": 1,}',
        b"[1, 2] trailing",
        b"{'single': 1}",
        b'"\\x"',
        b'{"a": "line\nbreak"}',
        b"\xff\xfe{\x00}\x00",
        b"\xef\xbb\xbf{}",
        '{"a": "é"}'.encode("utf-16"),
        b"\xc3\x28",
        b"NaNa",
    ],
)
def test_anything_else_reads_or_fails_exactly_as_json(raw: bytes) -> None:
    try:
        expected: Any = json.loads(raw)
    except Exception as exc:  # the same type and message, json's own
        with pytest.raises(type(exc)) as caught:
            fastjson.loads(raw)
        assert str(caught.value) == str(exc)
    else:
        assert fastjson.loads(raw) == expected


def test_what_json_cannot_write_fails_the_same_way() -> None:
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        fastjson.dumps({"a": {1}})
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular reference"):
        fastjson.dumps(cycle)
