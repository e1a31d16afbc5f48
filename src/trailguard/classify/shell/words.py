"""Shell words as the shell sees them: quotes and escapes removed, ``$'...'`` decoded, and
what makes a word dynamic (expansions, globs)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from tree_sitter import Node

from trailguard.classify.shell.documents import _dec, _Doc, _enc, _names

# --------------------------------------------------------------------------------------------
# words


class _Word(NamedTuple):
    value: str
    """Quotes removed and escapes resolved; dynamic parts kept as their source text."""
    static: bool
    """No expansion or substitution in it."""
    glob: bool
    """Unquoted glob or brace characters (the shell may turn it into other words)."""
    src: str
    start: int = -1
    end: int = -1


_UNQUOTED_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_DQUOTE_ESCAPE = re.compile(r'\\([$`"\\\n])')
_GLOB = re.compile(r"[*?]|\[.*\]|[{}]")
_DYNAMIC_TYPES = _names(
    """simple_expansion expansion command_substitution process_substitution
    arithmetic_expansion"""
)


def _unescape_unquoted(raw: str) -> str:
    if "\\" not in raw:
        return raw
    return _UNQUOTED_ESCAPE.sub(lambda m: "" if m[1] == "\n" else m[1], raw)


def _unescape_dquoted(raw: str) -> str:
    if "\\" not in raw:
        return raw
    return _DQUOTE_ESCAPE.sub(lambda m: "" if m[1] == "\n" else m[1], raw)


def _has_glob(raw: str) -> bool:
    if raw in ("[", "[["):
        return False
    stripped = _UNQUOTED_ESCAPE.sub("x", raw) if "\\" in raw else raw
    return _GLOB.search(stripped) is not None


_ANSI_SIMPLE = {
    **{k: v.encode() for k, v in zip("abfnrtv", "\a\b\f\n\r\t\v", strict=True)},
    **{k: k.encode() for k in "\\'\"?"},
    "e": b"\x1b",
    "E": b"\x1b",
}
_OCT = re.compile(r"[0-7]{1,3}")
_HEX = {"x": re.compile(r"[0-9a-fA-F]{1,2}"), "u": re.compile(r"[0-9a-fA-F]{1,4}")}
_HEX["U"] = re.compile(r"[0-9a-fA-F]{1,8}")


def _ansi_c(body: str) -> str:
    """Decode the inside of ``$'...'`` the way bash does."""
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c != "\\" or i + 1 >= n:
            out += _enc(c)
            i += 1
            continue
        d = body[i + 1]
        if d in _ANSI_SIMPLE:
            out += _ANSI_SIMPLE[d]
            i += 2
        elif d in "01234567":
            m = _OCT.match(body, i + 1)
            assert m is not None
            out.append(int(m[0], 8) & 0xFF)
            i = m.end()
        elif d in _HEX and (m := _HEX[d].match(body, i + 2)) is not None:
            value = int(m[0], 16)
            if d == "x":
                out.append(value)
            else:
                out += _enc(chr(value) if value <= 0x10FFFF else "\ufffd")
            i = m.end()
        elif d == "c" and i + 2 < n:
            out.append(ord(body[i + 2]) & 0x1F)
            i += 3
        else:
            out += _enc("\\" + d)
            i += 2
    nul = out.find(0)
    if nul >= 0:  # bash strings end at NUL
        del out[nul:]
    return out.decode("utf-8", "replace")


def _eval_word(node: Node, doc: _Doc, raw: str | None = None) -> tuple[str, bool, bool]:
    """(value, static, glob) of a literal node (``raw``: its text, if known)."""
    t = node.type
    if raw is None:
        raw = doc.raw(node)
    if t == "word":
        return _unescape_unquoted(raw), True, _has_glob(raw)
    if t == "number":
        return raw, True, False
    if t == "raw_string":
        return raw[1:-1], True, False
    if t == "ansi_c_string":
        return _ansi_c(raw[2:-1]), True, False
    if t == "string":
        return _eval_dquoted(node, doc)
    if t in ("translated_string", "concatenation", "command_name"):
        parts: list[str] = []
        static, glob = True, False
        unquoted: list[str] = []
        pos = node.start_byte
        for child in node.children:
            if child.start_byte > pos:  # text tree-sitter left out: keep it literally
                gap = _dec(doc.data[pos : child.start_byte])
                parts.append(_unescape_unquoted(gap))
                unquoted.append(gap)
            pos = child.end_byte
            if t == "translated_string" and child.type == "$":
                continue
            value, child_static, child_glob = _eval_word(child, doc)
            parts.append(value)
            static &= child_static
            glob |= child_glob
            unquoted.append(doc.raw(child) if child.type == "word" else "x")
        if pos < node.end_byte:
            parts.append(_unescape_unquoted(_dec(doc.data[pos : node.end_byte])))
        if not glob and any("{" in u or "}" in u for u in unquoted):
            glob = True
        return "".join(parts), static, glob
    if t in _DYNAMIC_TYPES:
        return doc.node_text(node), False, False
    if t == "brace_expression":
        return raw, True, True
    if t == "$":  # a lone dollar sign is literal
        return raw, True, False
    return raw, False, False


def _eval_dquoted(node: Node, doc: _Doc) -> tuple[str, bool, bool]:
    parts: list[str] = []
    static = True
    children = node.children
    pos = node.start_byte + 1
    end = node.end_byte - 1 if len(children) >= 2 and children[-1].type == '"' else node.end_byte
    for child in children:
        if child.start_byte < pos or child.end_byte > end:
            continue  # the quotes
        if child.start_byte > pos:
            parts.append(_unescape_dquoted(_dec(doc.data[pos : child.start_byte])))
        pos = child.end_byte
        if child.type == "string_content":
            parts.append(_unescape_dquoted(doc.raw(child)))
        elif not child.is_named:
            parts.append(doc.raw(child))
        else:
            value, child_static, _ = _eval_word(child, doc)
            parts.append(value)
            static &= child_static
    if pos < end:
        parts.append(_unescape_dquoted(_dec(doc.data[pos:end])))
    return "".join(parts), static, False


def _words(nodes: Sequence[Node], doc: _Doc) -> list[_Word]:
    """Evaluate argument nodes; nodes with no space between them are one shell word."""
    words: list[_Word] = []
    prev_end = -1
    for node in nodes:
        start, end = node.start_byte, node.end_byte
        src = _dec(doc.data[start:end])
        value, static, glob = _eval_word(node, doc, src)
        if words and start == prev_end:
            last = words[-1]
            if last.value == "$" and last.static and node.type == "string":
                value_so_far = ""  # $"..." split by the grammar: a translated string
            else:
                value_so_far = last.value
            words[-1] = _Word(
                value_so_far + value,
                last.static and static,
                last.glob or glob,
                _dec(doc.data[last.start : end]),
                last.start,
                end,
            )
        else:
            words.append(_Word(value, static, glob, src, start, end))
        prev_end = end
    return words


_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=", re.ASCII)


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]
