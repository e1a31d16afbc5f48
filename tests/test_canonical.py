"""RFC 8785 (JCS) canonical JSON: the orjson fast path must agree with the reference encoder."""

from __future__ import annotations

import json
import struct

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from trailguard.ledger.canonical import canonical_json

MAX_SAFE_INTEGER = 2**53 - 1

# Text with every code point except lone surrogates: control characters, non-BMP, U+2028, ...
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
ascii_text = st.text(st.characters(max_codepoint=0x7F), max_size=12)
safe_ints = st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)


def _json_values(scalars, keys):
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5)
        ),
        max_leaves=25,
    )


any_json = _json_values(
    st.none() | st.booleans() | safe_ints | finite_floats | any_text, any_text | ascii_text
)
# The domain the fast path claims: no floats and ASCII keys (values may be any text).
fast_path_json = _json_values(st.none() | st.booleans() | safe_ints | any_text, ascii_text)


def _reference(value) -> bytes:
    return bytes(rfc8785.dumps(value))


@settings(max_examples=200, deadline=None)
@given(any_json)
def test_canonical_json_matches_the_rfc8785_reference_for_any_json_value(value):
    assert canonical_json(value) == _reference(value)


@settings(max_examples=200, deadline=None)
@given(fast_path_json)
def test_canonical_json_matches_the_rfc8785_reference_on_the_fast_path_domain(value):
    assert canonical_json(value) == _reference(value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(any_text, safe_ints | any_text, max_size=8))
def test_object_keys_are_sorted_by_utf16_code_units(value):
    encoded = canonical_json(value)
    keys = list(json.loads(encoded))
    assert keys == sorted(value, key=lambda k: k.encode("utf-16-be"))


def test_rfc8785_sorting_example_orders_keys_by_utf16_code_units():
    # RFC 8785 §3.2.3: the input object and the property order the RFC gives for it.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    expected = (
        '{"\\r":"Carriage Return",'
        '"1":"One",'
        '"\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis",'
        '"\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face",'
        '"\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    ).encode()
    assert canonical_json(value) == expected


def test_rfc8785_main_example_is_serialised_as_the_rfc_shows():
    # RFC 8785 §3.2.2: input (as JSON text) and its canonical form.
    source = r"""{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }"""
    expected = (
        r'{"literals":[null,true,false],'
        r'"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    ).encode()
    assert canonical_json(json.loads(source)) == expected


def test_fast_path_example_with_escapes_is_serialised_as_jcs_requires():
    value = {"b": [1, None, True], "a": '\x00\x1f\t\n\r\b\f"\\/\x7f\u2028é\U0001f600'}
    expected = (
        '{"a":"\\u0000\\u001f\\t\\n\\r\\b\\f\\"\\\\/\x7f\u2028é\U0001f600","b":[1,null,true]}'
    ).encode()
    assert canonical_json(value) == expected


# RFC 8785 Appendix B: IEEE 754 bit patterns and their JCS serialisation.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B, ids=[b for b, _ in APPENDIX_B])
def test_rfc8785_appendix_b_number_is_serialised_as_the_rfc_shows(bits, expected):
    (number,) = struct.unpack(">d", bytes.fromhex(bits))
    assert canonical_json(number) == expected.encode()
    assert canonical_json([number]) == f"[{expected}]".encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, b"1"),
        (-1.0, b"-1"),
        (1e21, b"1e+21"),
        (1e20, b"100000000000000000000"),
        (1e-7, b"1e-7"),
        (1e-6, b"0.000001"),
        (0.5, b"0.5"),
        (-0.0, b"0"),
        ({"x": 2.0}, b'{"x":2}'),
        (MAX_SAFE_INTEGER, b"9007199254740991"),
        (-MAX_SAFE_INTEGER, b"-9007199254740991"),
        (True, b"true"),
        (None, b"null"),
        ([], b"[]"),
        ({}, b"{}"),
    ],
    ids=repr,
)
def test_number_and_literal_serialisation_follows_ecmascript(value, expected):
    assert canonical_json(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        [1, float("nan")],
        {"k": float("inf")},
        "\ud800",
        "ok\udfffok",
        ["\ud800"],
        {"\ud800": 1},
        {"a": "\ud800"},
        2**53,
        -(2**53),
        [2**53],
        {"n": 2**64},
        {"é": 2**53},
    ],
    ids=repr,
)
def test_value_without_a_canonical_form_raises_value_error(value):
    with pytest.raises(ValueError, match="cannot be canonicalised"):
        canonical_json(value)


def test_deeply_nested_value_is_canonicalised_like_the_reference():
    value: list = []
    for _ in range(300):
        value = [value]
    assert canonical_json(value) == _reference(value)
