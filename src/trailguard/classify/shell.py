"""Bash tool-call text → the SimpleCommands the shell would run.

The parser is tree-sitter-bash plus the parts of the shell a syntax tree does not give:

* words lose their quotes and escapes (``'r''m'`` → ``rm``, ``$'\\x72m'`` → ``rm``);
* wrappers are stripped and recorded in ``via`` (``sudo``, ``env``, ``timeout``, ``xargs``...);
  strings that another shell will parse (``bash -c``, ``eval``, ``ssh host CMD``, ``watch``,
  ``su -c``, ``trap``) are parsed recursively;
* commands in ``$(...)``, backticks, process substitutions and compound statements are commands
  too; a variable, substitution or glob in *command position* makes the command unresolved.

Heredocs are cut out of the script before the real parse (tree-sitter-bash mis-parses a heredoc
followed by ``&&``, ``;``, ``|``, another redirect or a second heredoc on the same line): each
``<<DELIM`` becomes an input redirect from a unique placeholder word and its body is removed;
offsets are mapped back so that ``SimpleCommand.text`` is always original source text. A few
other tree-sitter-bash mistakes are corrected too (``a && b > f`` gives the redirect to ``b``
only; ``r\\<newline>m`` is one word; ``cat > f <<< x`` and ``<>`` are redirects, not errors).

This feeds a policy engine, so when in doubt the parser flags (``unresolved``) rather than guesses.
"""

from __future__ import annotations

import functools
import re
import shlex
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import tree_sitter_bash
from tree_sitter import Language, Node, Parser, Point, Query, QueryCursor, Tree

from trailguard.classify.model import Redirect, SimpleCommand

__all__ = ["MAX_DEPTH", "MAX_NESTING", "PARSE_TIME_BUDGET", "ParsedShell", "parse_shell"]

MAX_NESTING = 8
"""How many strings-parsed-by-another-shell deep (``bash -c "sh -c '...'"``) the parser follows."""
MAX_DEPTH = 100
"""How deep in the syntax tree (nested substitutions, subshells, blocks) the parser follows."""
PARSE_TIME_BUDGET = 2.0
"""Seconds of tree-sitter parsing one parse_shell call may use (pathological input: some
heredoc-heavy scripts make tree-sitter-bash quadratic); past it the rest is unresolved."""
_SMALL_INPUT = 4096
_MAX_ERRORS = 20
_MAX_PIPED_FROM = 64
_MAX_HEREDOC_PASSES = 8


@dataclass(frozen=True)
class ParsedShell:
    commands: tuple[SimpleCommand, ...]
    errors: tuple[str, ...]
    """Parse errors, described (``syntax error at line 1, column 5: '$(('``)."""


def parse_shell(script: str) -> ParsedShell:
    """Parse a shell script (a Bash tool call's ``command``) into the commands it runs."""
    walker = _Walker()
    walker.parse_text(script, _Ctx(), 0, "")
    return ParsedShell(tuple(walker.out), tuple(walker.errors))


# --------------------------------------------------------------------------------------------
# tree-sitter, created once per process on first use


class _ParseTimeout(Exception):
    pass


class _Engine:
    def __init__(self) -> None:
        language = Language(tree_sitter_bash.language())
        self._parser = Parser(language)
        self._heredoc_query = Query(language, "(heredoc_start) @start")
        self._lock = threading.Lock()  # a Parser is not safe to share between threads

    def parse(self, data: bytes, deadline: float) -> Tree:
        """Parse ``data``; raise _ParseTimeout past ``deadline`` (time.monotonic())."""
        if len(data) <= _SMALL_INPUT:  # the common case: fast, and no input this small is slow
            if time.monotonic() > deadline:
                raise _ParseTimeout
            with self._lock:
                return self._parser.parse(data)
        view = memoryview(data)

        def read(offset: int, _point: Point) -> memoryview:
            return view[offset:]

        def cancel(_offset: int, _has_error: bool) -> bool:
            return time.monotonic() > deadline

        with self._lock:
            try:
                return self._parser.parse(read, progress_callback=cancel)
            except ValueError as exc:  # cancelled
                self._parser.reset()
                raise _ParseTimeout from exc

    def heredoc_starts(self, root: Node) -> list[Node]:
        return QueryCursor(self._heredoc_query).captures(root).get("start", [])


@functools.cache
def _engine() -> _Engine:
    return _Engine()


# --------------------------------------------------------------------------------------------
# documents: the text tree-sitter parsed, mapped back to the original text


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


def _enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _dec(data: bytes) -> str:
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace")


@dataclass(frozen=True)
class _Heredoc:
    body: str
    quoted: bool
    """Quoted delimiter: the body is literal (no expansion, no substitution)."""
    raw: str
    """Original text of the body and its delimiter line, appended to the command's text."""


_Segment = tuple[int, int, int, int, bool]
"""(new_start, new_end, old_start, old_end, copied): a piece of rewritten text and its source."""


def _segment_start(segment: _Segment) -> int:
    return segment[0]


def _map_pos(levels: Sequence[Sequence[_Segment]], pos: int, *, end: bool) -> int:
    """Map an offset in the rewritten text back through each rewrite to the original."""
    for segments in reversed(levels):
        if end and pos == 0:
            return 0
        new_start, _, old_start, old_end, copied = segments[
            bisect_right(segments, pos - 1 if end else pos, key=_segment_start) - 1
        ]
        # inside a replacement: its start, or for an end offset its end
        pos = old_start + (pos - new_start) if copied else (old_end if end else old_start)
    return pos


@dataclass
class _Doc:
    orig: bytes
    data: bytes
    """What tree-sitter parsed: ``orig`` with heredocs replaced by placeholders."""
    levels: list[list[_Segment]] = field(default_factory=list)
    """One segment list per rewrite pass, mapping ``data`` back to ``orig``."""
    heredocs: dict[str, _Heredoc] = field(default_factory=dict)
    label: str = ""

    def orig_start(self, pos: int) -> int:
        return _map_pos(self.levels, pos, end=False) if self.levels else pos

    def orig_end(self, pos: int) -> int:
        return _map_pos(self.levels, pos, end=True) if self.levels else pos

    def text(self, start: int, end: int) -> str:
        """Original text of the parsed range [start, end)."""
        return _dec(self.orig[self.orig_start(start) : self.orig_end(end)])

    def node_text(self, node: Node) -> str:
        return self.text(node.start_byte, node.end_byte)

    def raw(self, node: Node) -> str:
        """Parsed text of a node (placeholders included)."""
        return _dec(self.data[node.start_byte : node.end_byte])

    def where(self, pos: int) -> str:
        opos = self.orig_start(pos)
        line = self.orig.count(b"\n", 0, opos) + 1
        column = opos - (self.orig.rfind(b"\n", 0, opos) + 1) + 1
        return f"line {line}, column {column}"


_META = frozenset(b" \t\n;&|<>()")


def _lex_delimiter(data: bytes, pos: int) -> tuple[bytes, int, bool]:
    """The heredoc delimiter word at ``pos``: (unquoted delimiter, end offset, was it quoted)."""
    out = bytearray()
    quoted = False
    i, n = pos, len(data)
    while i < n:
        c = data[i]
        if c in _META:
            break
        if c == 0x27:  # '
            j = data.find(b"'", i + 1)
            j = n if j < 0 else j
            out += data[i + 1 : j]
            i, quoted = j + 1, True
        elif c == 0x22:  # "
            i += 1
            while i < n and data[i] != 0x22:
                if data[i] == 0x5C and i + 1 < n and data[i + 1] in b'"\\$`':
                    i += 1
                out.append(data[i])
                i += 1
            i, quoted = i + 1, True
        elif c == 0x5C:  # backslash
            if i + 1 < n:
                out.append(data[i + 1])
            i, quoted = i + 2, True
        elif c == 0x24 and i + 1 < n and data[i + 1] in b"'\"":  # $'...' / $"..."
            i += 1
        else:
            out.append(c)
            i += 1
    return bytes(out), min(i, n), quoted


def _line_end(data: bytes, pos: int) -> int:
    """Offset of the newline that ends the logical line containing ``pos`` (len(data) if none)."""
    n = len(data)
    i = pos
    while i < n:
        c = data[i]
        if c == 0x0A:
            return i
        if c == 0x5C:
            i += 2
            continue
        if c in (0x22, 0x27):
            j = i + 1
            while j < n and data[j] != c:
                j += 2 if c == 0x22 and data[j] == 0x5C else 1
            if j >= n:  # unterminated quote: fall back to the physical line
                nl = data.find(b"\n", i)
                return n if nl < 0 else nl
            i = j + 1
            continue
        if c == 0x23 and (i == 0 or data[i - 1] in b" \t;&|()"):  # comment
            nl = data.find(b"\n", i)
            return n if nl < 0 else nl
        i += 1
    return n


def _prepare(script: str, label: str, deadline: float) -> tuple[_Doc, Tree, list[str]]:
    """Parse ``script``, first cutting heredoc bodies out (see the module docstring).

    Repeated while the parse shows new heredocs: tree-sitter-bash sees the second heredoc of
    ``cat <<A <<B`` only once the first one is gone.
    """
    orig = _enc(script)
    engine = _engine()
    doc = _Doc(orig, orig, label=label)
    tree = engine.parse(orig, deadline)
    notes: list[str] = []
    if b"<<" not in orig:
        return doc, _join_continuations(doc, tree, deadline), notes
    base = b"TGHD"
    while base in orig:
        base += b"X"
    for _ in range(_MAX_HEREDOC_PASSES):
        ops = _heredoc_ops(doc.data, tree, engine)
        if not ops:
            break
        data, segments, missing = _cut_heredocs(doc.data, ops, base, doc.heredocs)
        for pos, delim in missing:
            notes.append(
                f"here-document at {doc.where(pos)} delimited by end of input (wanted {delim!r})"
            )
        doc.levels.append(segments)
        doc.data = data
        tree = engine.parse(data, deadline)
    return doc, _join_continuations(doc, tree, deadline), notes


def _join_continuations(doc: _Doc, tree: Tree, deadline: float) -> Tree:
    if b"\\\n" not in doc.data:
        return tree
    edits = _continuations(doc.data, tree)
    if not edits:
        return tree
    doc.data, segments = _apply_edits(doc.data, edits)
    doc.levels.append(segments)
    return _engine().parse(doc.data, deadline)


_NOT_HEREDOC_CONTEXTS = _names(
    """string raw_string ansi_c_string translated_string comment heredoc_body
    arithmetic_expansion c_style_for_statement"""
)


def _heredoc_ops(data: bytes, tree: Tree, engine: _Engine) -> list[tuple[int, bool, int]]:
    """Heredoc operators: (offset, is ``<<-``, offset of the delimiter word), in order.

    tree-sitter-bash finds some; on each line where it found one, a scan of the line finds
    those it missed (``cat <<A <<B``, ``cat <<A | sh <<B``), as long as tree-sitter does not
    place them in a string, comment or arithmetic.
    """
    found: dict[int, tuple[int, bool, int]] = {}
    lines: set[int] = set()
    for start in engine.heredoc_starts(tree.root_node):
        op = start.prev_sibling
        if op is not None and op.type in ("<<", "<<-"):
            found[op.start_byte] = (op.start_byte, op.type == "<<-", start.start_byte)
            lines.add(data.rfind(b"\n", 0, op.start_byte) + 1)
    root = tree.root_node
    for line_start in lines:
        for op_pos, dash, delim_pos in _scan_heredoc_ops(data, line_start):
            if op_pos in found:
                continue
            node: Node | None = root.descendant_for_byte_range(op_pos, op_pos + 2)
            while node is not None:
                if node.type in _NOT_HEREDOC_CONTEXTS or (
                    node.type == "compound_statement" and data.startswith(b"((", node.start_byte)
                ):
                    break
                node = node.parent
            else:
                found[op_pos] = (op_pos, dash, delim_pos)
    return sorted(found.values())


def _scan_heredoc_ops(data: bytes, pos: int) -> list[tuple[int, bool, int]]:
    """``<<`` and ``<<-`` operators on the line from ``pos``, outside quotes and comments."""
    out: list[tuple[int, bool, int]] = []
    end = _line_end(data, pos)
    i = pos
    while i < end:
        c = data[i]
        if c == 0x5C:  # backslash
            i += 2
        elif c == 0x27 or (c == 0x24 and data[i + 1 : i + 2] == b"'"):  # '...' or $'...'
            ansi = c == 0x24
            i += 2 if ansi else 1
            while i < end and data[i] != 0x27:
                i += 2 if ansi and data[i] == 0x5C else 1
            i += 1
        elif c == 0x22:  # "..."
            i += 1
            while i < end and data[i] != 0x22:
                i += 2 if data[i] == 0x5C else 1
            i += 1
        elif c == 0x23 and (i == 0 or data[i - 1] in b" \t\n;&|()"):  # comment
            break
        elif data.startswith(b"<<<", i):
            i += 3
        elif data.startswith(b"<<", i):
            dash = data.startswith(b"<<-", i)
            j = i + (3 if dash else 2)
            while j < end and data[j] in b" \t":
                j += 1
            if j < end:
                out.append((i, dash, j))
            i = j
        else:
            i += 1
    return out


def _cut_heredocs(
    data: bytes, ops: list[tuple[int, bool, int]], base: bytes, heredocs: dict[str, _Heredoc]
) -> tuple[bytes, list[_Segment], list[tuple[int, str]]]:
    """One rewrite pass: each heredoc operator becomes ``<PLACEHOLDER``, each body goes.

    Adds the bodies to ``heredocs``; returns the new text, its segments, and the heredocs whose
    delimiter never came (offset, delimiter).
    """
    n = len(data)
    edits: list[tuple[int, int, bytes]] = []  # (start, end, replacement), non-overlapping
    bodies: list[tuple[int, int]] = []
    missing: list[tuple[int, str]] = []
    body_starts: list[int] = []
    cursor = 0  # end of the last heredoc body consumed
    last_edit_end = 0
    line_end = -1
    for op_pos, dash, delim_pos in ops:
        if op_pos < last_edit_end:
            continue
        i = bisect_right(body_starts, op_pos) - 1
        if i >= 0 and op_pos < bodies[i][1]:
            continue  # inside a body we already consumed: not a real operator
        delim, word_end, quoted = _lex_delimiter(data, delim_pos)
        if word_end > line_end:  # else: another heredoc on the same line
            line_end = _line_end(data, word_end)
        body_start = cursor if cursor > line_end else min(line_end + 1, n)
        pos = body_start
        region_end = body_end = n
        found = False
        while pos < n:
            nl = data.find(b"\n", pos)
            end = n if nl < 0 else nl
            line = data[pos:end]
            if (line.lstrip(b"\t") if dash else line) == delim:
                body_end, region_end, found = pos, (n if nl < 0 else nl + 1), True
                break
            pos = end + 1
        if not found:
            missing.append((op_pos, _dec(delim)))
        body = data[body_start:body_end]
        if dash:
            body = b"\n".join(line.lstrip(b"\t") for line in body.split(b"\n"))
        placeholder = base + str(len(heredocs)).encode()
        raw = data[body_start:region_end]
        heredocs[_dec(placeholder)] = _Heredoc(
            body=_dec(body), quoted=quoted, raw=_dec(raw[:-1] if raw.endswith(b"\n") else raw)
        )
        # An input redirect from the placeholder "file": tree-sitter-bash parses it after any
        # other redirect (it does not parse `cat > f <<<word`).
        edits.append((op_pos, word_end, b"<" + placeholder))
        if region_end > body_start:
            edits.append((body_start, region_end, b""))
            bodies.append((body_start, region_end))
            body_starts.append(body_start)
        cursor = max(cursor, region_end)
        last_edit_end = word_end
    data, segments = _apply_edits(data, edits)
    return data, segments, missing


def _apply_edits(data: bytes, edits: list[tuple[int, int, bytes]]) -> tuple[bytes, list[_Segment]]:
    """Replace each (start, end) range by its bytes; the segments map the result back."""
    edits.sort()
    pieces: list[bytes] = []
    segments: list[_Segment] = []
    new_pos = old_pos = 0
    for e_start, e_end, replacement in edits:
        if e_start < old_pos:  # overlapping edit (should not happen): drop it
            continue
        if e_start > old_pos:
            length = e_start - old_pos
            pieces.append(data[old_pos:e_start])
            segments.append((new_pos, new_pos + length, old_pos, e_start, True))
            new_pos += length
        if replacement:
            pieces.append(replacement)
            segments.append((new_pos, new_pos + len(replacement), e_start, e_end, False))
            new_pos += len(replacement)
        old_pos = e_end
    pieces.append(data[old_pos:])
    segments.append((new_pos, new_pos + len(data) - old_pos, old_pos, len(data), True))
    return b"".join(pieces), segments


_LITERAL_CONTEXTS = _names("raw_string ansi_c_string comment heredoc_body heredoc_content")


def _continuations(data: bytes, tree: Tree) -> list[tuple[int, int, bytes]]:
    """Edits removing each backslash-newline the shell removes (all but those in single quotes,
    comments and heredoc bodies): bash joins ``r\\<newline>m`` into ``rm`` before it reads
    words, tree-sitter-bash makes two words of it."""
    edits: list[tuple[int, int, bytes]] = []
    root = tree.root_node
    i = data.find(b"\\\n")
    while i >= 0:
        run = i
        while run > 0 and data[run - 1] == 0x5C:
            run -= 1
        if (i - run) % 2 == 0:  # an odd number of backslashes: the last one escapes the newline
            node: Node | None = root.descendant_for_byte_range(i, i + 1)
            while node is not None and node.type not in _LITERAL_CONTEXTS:
                node = node.parent
            if node is None:
                edits.append((i, i + 2, b""))
        i = data.find(b"\\\n", i + 2)
    return edits


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


# --------------------------------------------------------------------------------------------
# the walk


_STATEMENTS = _names(
    """program list pipeline command redirected_statement subshell compound_statement do_group
    if_statement elif_clause else_clause while_statement for_statement c_style_for_statement
    case_statement case_item function_definition negated_command test_command
    declaration_command unset_command variable_assignment variable_assignments heredoc_redirect
    comment ERROR"""
)
_INPUT = re.compile(r"[0-9]*<(?!>)")
_REDIRECTS = frozenset({"file_redirect", "heredoc_redirect", "herestring_redirect"})
_SUBSTITUTIONS = frozenset({"command_substitution", "process_substitution"})


@dataclass(frozen=True, slots=True)
class _Ctx:
    """What the commands of a region inherit from around them."""

    via: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    redirects: tuple[Redirect, ...] = ()
    stdin: str | None = None
    piped_from: tuple[str, ...] = ()
    nesting: int = 0
    sub: int = 0
    """Command-substitution depth, to tell a pipeline stage's own commands from nested ones."""

    # (dataclasses.replace is slow for the hot paths)
    def stage(self, piped_from: tuple[str, ...], stdin: str | None, first: bool) -> _Ctx:
        """For a pipeline stage; after the first, stdin is the pipe, not an inherited input."""
        redirects = self.redirects
        if not first and redirects:
            redirects = tuple(r for r in redirects if not _INPUT.match(r.operator))
        return _Ctx(self.via, self.env, redirects, stdin, piped_from, self.nesting, self.sub)

    def substitution(self) -> _Ctx:
        """For the commands of a ``$(...)``: no redirects or stdin of the command around it."""
        return _Ctx(self.via, self.env, (), None, self.piped_from, self.nesting, self.sub + 1)

    def io(self, redirects: tuple[Redirect, ...], stdin: str | None) -> _Ctx:
        return _Ctx(self.via, self.env, redirects, stdin, self.piped_from, self.nesting, self.sub)


@dataclass(slots=True)
class _Cur:
    """The command being unwrapped."""

    text: str
    via: list[str]
    env: dict[str, str]
    redirects: tuple[Redirect, ...]
    stdin: str | None

    def copy(self) -> _Cur:
        return _Cur(self.text, list(self.via), dict(self.env), self.redirects, self.stdin)


def _is_token(node: Node, token: str) -> bool:
    """Is ``node`` exactly the one token ``token``? (Trees parsed from a read callback have
    no ``Node.text``.)"""
    return (
        node.end_byte - node.start_byte == len(token)
        and node.child_count == 1
        and node.children[0].type == token
    )


def _is_benign_error(node: Node) -> bool:
    """Errors tree-sitter-bash makes of valid redirects.

    ``<>`` (read-write) becomes ``<`` and an error ``>``; a here-string after another redirect
    (``cat > f <<< x``) becomes an error ``<<`` and a redirect ``< x``.
    """
    if _is_token(node, ">"):
        prev, parent = node.prev_sibling, node.parent
        return (
            prev is not None
            and prev.type == "<"
            and parent is not None
            and parent.type == "file_redirect"
        )
    return _herestring_split(node.next_sibling, node)


def _herestring_split(redirect: Node | None, error: Node | None) -> bool:
    """Is ``redirect`` the ``< x`` half of a here-string split as ``ERROR(<<) < x``?"""
    return (
        redirect is not None
        and error is not None
        and error.type == "ERROR"
        and _is_token(error, "<<")
        and redirect.type == "file_redirect"
        and redirect.start_byte == error.end_byte
        and redirect.child_count > 0
        and redirect.children[0].type == "<"
    )


def _error_nodes(node: Node) -> Iterable[Node]:
    if not node.has_error:
        return
    stack = [node]
    while stack:
        n = stack.pop()
        if n.is_missing or (n.is_error and not _is_benign_error(n)):
            yield n
        elif n.has_error:
            stack.extend(reversed(n.children))


def _has_real_error(node: Node) -> bool:
    return next(iter(_error_nodes(node)), None) is not None


def _static_output(command: SimpleCommand, ctx: _Ctx) -> str | None:
    """What ``cat`` (of its heredoc) or ``echo`` (of static words) writes to the pipe."""
    if command.unresolved is not None or command.via != ctx.via:
        return None
    if any(">" in r.operator and not r.operator.startswith("2") for r in command.redirects):
        return None  # its output goes elsewhere
    args = list(command.argv[1:])
    if command.program == "cat" and args in ([], ["-"]):
        return command.stdin
    if command.program != "echo" or any("$" in a or "`" in a for a in args):
        return None
    newline = "\n"
    while args and args[0] in ("-n", "-E", "-nE", "-En"):
        newline = "" if "n" in args.pop(0) else newline
    if args and args[0].startswith("-e"):
        return None  # escapes interpreted: not worth guessing
    return " ".join(args) + newline


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _snippet(text: str, limit: int = 60) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


_BACKTICKS = re.compile(rb"(?<!\\)`((?:\\.|[^`\\])*)`", re.DOTALL)
_BACKTICK_ESCAPE = re.compile(r"\\([$`\\])")
_RESERVED = _names("then else elif fi do done esac in }")
_LONE_EXPANSION = re.compile(
    r"\$\(.*\)|`.*`|\$\{.*\}|\$[A-Za-z_][A-Za-z0-9_]*|\$[0-9@*#?$!-]", re.DOTALL
)
_SSH_COMMAND_OPTION = re.compile(
    r"\s*(ProxyCommand|LocalCommand|KnownHostsCommand)\s*(?:=\s*|\s+)(.*)", re.I | re.S
)
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=", re.ASCII)


class _Walker:
    def __init__(self) -> None:
        self.out: list[SimpleCommand] = []
        self._meta: list[tuple[int, str]] = []  # (ctx.sub, program label) per command
        self.errors: list[str] = []
        self._attached: dict[tuple[int, int], tuple[Sequence[Node], int]] = {}
        self.deadline = time.monotonic() + PARSE_TIME_BUDGET

    # ---- output

    def _error(self, message: str) -> None:
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(message)
        elif len(self.errors) == _MAX_ERRORS:
            self.errors.append("too many parse errors; the rest are not listed")

    def _emit(
        self,
        ctx: _Ctx,
        cur: _Cur,
        argv: Sequence[str],
        unresolved: str | None = None,
        label: str | None = None,
    ) -> None:
        command = SimpleCommand(
            argv=tuple(argv),
            text=cur.text,
            env=dict(cur.env),
            redirects=cur.redirects,
            stdin=cur.stdin,
            piped_from=ctx.piped_from,
            via=tuple(cur.via),
            unresolved=unresolved,
        )
        self.out.append(command)
        if label is None:
            label = _basename(argv[0]) if argv else ""
        self._meta.append((ctx.sub, label))

    def _unresolved(self, ctx: _Ctx, text: str, reason: str, label: str = "") -> None:
        cur = _Cur(text, list(ctx.via), dict(ctx.env), ctx.redirects, ctx.stdin)
        self._emit(ctx, cur, (), reason, label)

    # ---- documents

    def parse_text(self, script: str, ctx: _Ctx, depth: int, label: str) -> None:
        prefix = f"{label}: " if label else ""
        try:
            doc, tree, notes = _prepare(script, label, self.deadline)
        except _ParseTimeout:
            self._error(f"{prefix}parsing took longer than {PARSE_TIME_BUDGET} s: gave up")
            self._unresolved(ctx, script, "too complex to parse in time")
            return
        for note in notes:
            self._error(prefix + note)
        root = tree.root_node
        for bad in _error_nodes(root):
            where = doc.where(bad.start_byte)
            if bad.is_missing:
                self._error(f"{prefix}missing {bad.type!r} at {where}")
            else:
                self._error(
                    f"{prefix}syntax error at {where}: {_snippet(doc.node_text(bad), 40)!r}"
                )
        self._walk(root, doc, ctx, depth)

    # ---- statements

    def _walk(self, node: Node, doc: _Doc, ctx: _Ctx, depth: int) -> None:
        if depth > MAX_DEPTH:
            self._unresolved(ctx, doc.node_text(node), "nesting too deep to analyse")
            return
        attached = self._attached.pop((id(doc), node.id), None) if self._attached else None
        if attached is not None:  # redirects tree-sitter hung on the list this node ends
            self._redirected(node, doc, ctx, depth, *attached)
        else:
            self._walk_node(node, doc, ctx, depth)

    def _walk_node(self, node: Node, doc: _Doc, ctx: _Ctx, depth: int) -> None:
        t = node.type
        if t == "command":
            self._command(node, doc, ctx, depth, (), (node.start_byte, node.end_byte))
        elif t == "redirected_statement":
            self._redirected(node, doc, ctx, depth)
        elif t == "list":
            stack = list(reversed(node.named_children))
            while stack:  # lists nest to the left; flatten them without recursion
                child = stack.pop()
                if child.type == "list":
                    stack.extend(reversed(child.named_children))
                else:
                    self._walk_child(child, doc, ctx, depth)
        elif t == "pipeline":
            self._pipeline(node, doc, ctx, depth)
        elif t in {"declaration_command", "unset_command"}:
            self._declaration(node, doc, ctx, depth)
        elif t in {"variable_assignment", "variable_assignments"}:
            self._assignments(node, doc, ctx, depth)
        elif t == "ERROR":
            self._error_region(node, doc, ctx, depth)
        elif t == "comment":
            return
        elif t == "compound_statement" and node.end_byte - node.start_byte == 2:
            # the command `{}` (tree-sitter makes it an empty block): an xargs/find placeholder
            self._unresolved(ctx, doc.node_text(node), "placeholder in command position: {}")
        else:  # containers: blocks, loops, conditionals, functions, assignments, tests
            for child in node.named_children:
                self._walk_child(child, doc, ctx, depth)

    def _walk_child(self, child: Node, doc: _Doc, ctx: _Ctx, depth: int) -> None:
        if child.type in _STATEMENTS:
            self._walk(child, doc, ctx, depth + 1)
        else:
            self._subs(child, doc, ctx, depth)

    def _pipeline(self, node: Node, doc: _Doc, ctx: _Ctx, depth: int) -> None:
        piped_from = ctx.piped_from
        stdin = ctx.stdin  # the first stage's; the others read the pipe
        first = True
        for stage in node.named_children:
            if stage.type == "comment":
                continue
            mark = len(self.out)
            self._walk_child(stage, doc, ctx.stage(piped_from, stdin, first), depth)
            first = False
            direct = [k for k in range(mark, len(self.out)) if self._meta[k][0] == ctx.sub]
            new = [self._meta[k][1] for k in direct]
            if any(label not in piped_from for label in new):
                # each program once, in order of first appearance (bounds the size)
                piped_from = tuple(dict.fromkeys((*piped_from, *new)))[:_MAX_PIPED_FROM]
            # `cat <<EOF | sh`, `echo 'ls' | sh`: what goes down the pipe is known text
            stdin = _static_output(self.out[direct[0]], ctx) if len(direct) == 1 else None

    def _error_region(self, node: Node, doc: _Doc, ctx: _Ctx, depth: int) -> None:
        garbage = node.child_count == 0 and bool(doc.raw(node).strip())
        stack = list(reversed(node.children))
        while stack:
            child = stack.pop()
            if child.type == "ERROR":
                if child.child_count == 0 and doc.raw(child).strip():
                    garbage = True
                stack.extend(reversed(child.children))
            elif child.type in _STATEMENTS:
                self._walk(child, doc, ctx, depth + 1)
            elif child.is_named:
                garbage = True
                self._subs(child, doc, ctx, depth)
        if garbage:
            text = doc.node_text(node)
            self._unresolved(ctx, text, f"parse error: {_snippet(text)}", "")

    def _subs(self, node: Node, doc: _Doc, ctx: _Ctx, depth: int) -> None:
        """Walk the commands of substitutions anywhere under ``node`` (a word, a redirect...)."""
        if node.child_count == 0:
            return
        text = doc.data[node.start_byte : node.end_byte]
        if b"(" not in text and b"`" not in text:
            return  # no $(...), <(...), >(...) or `...`: decided without walking the subtree
        sub_ctx: _Ctx | None = None
        stack = [node]
        while stack:
            n = stack.pop()
            if n.type in _SUBSTITUTIONS:
                if sub_ctx is None:
                    sub_ctx = ctx.substitution()
                for child in n.named_children:
                    self._walk_child(child, doc, sub_ctx, depth + 1)
            elif n.child_count:
                stack.extend(reversed(n.children))

    def _declaration(self, node: Node, doc: _Doc, ctx: _Ctx, depth: int) -> None:
        self._subs(node, doc, ctx, depth)
        argv: list[str] = []
        for child in node.children:
            if not child.is_named:
                if not argv:
                    argv.append(doc.raw(child))  # export / local / declare / unset ...
                continue
            if child.type == "variable_assignment":
                name = child.child_by_field_name("name")
                value = child.child_by_field_name("value")
                argv.append(
                    (doc.raw(name) if name else "")
                    + "="
                    + (_eval_word(value, doc)[0] if value else "")
                )
            elif child.type != "comment":
                argv.append(_eval_word(child, doc)[0])
        cur = _Cur(doc.node_text(node), list(ctx.via), dict(ctx.env), ctx.redirects, ctx.stdin)
        self._emit(ctx, cur, argv)

    def _assignments(self, node: Node, doc: _Doc, ctx: _Ctx, depth: int) -> None:
        """``a=rm`` alone runs nothing; it is reported as argv () with env {"a": "rm"}."""
        self._subs(node, doc, ctx, depth)
        env: dict[str, str] = {}
        for assignment in [node] if node.type == "variable_assignment" else node.named_children:
            if assignment.type != "variable_assignment":
                continue
            name = assignment.child_by_field_name("name")
            value = assignment.child_by_field_name("value")
            env[doc.raw(name) if name else ""] = _words([value], doc)[0].value if value else ""
        cur = _Cur(doc.node_text(node), list(ctx.via), env, ctx.redirects, ctx.stdin)
        self._emit(ctx, cur, ())

    def _redirected(
        self,
        node: Node,
        doc: _Doc,
        ctx: _Ctx,
        depth: int,
        extra: Sequence[Node] = (),
        end: int = -1,
    ) -> None:
        """A statement with redirects: ``node`` is a redirected_statement, or (when ``extra``
        redirects are given) the last command of a list or pipeline they belong to."""
        end = node.end_byte if end < 0 else end
        if node.type == "redirected_statement":
            body = node.child_by_field_name("body")
            redirect_nodes = [c for c in node.children if c.type in _REDIRECTS]
            redirect_nodes.extend(extra)
        else:
            body, redirect_nodes = node, list(extra)
        if body is not None and body.type in ("list", "pipeline"):
            # tree-sitter-bash hangs `a && b > f` and `a | b > f` on the whole list or pipeline;
            # the shell gives the redirects to the last command (b) only.
            last = body
            while last.type in ("list", "pipeline") and last.named_child_count:
                last = last.named_children[-1]
            if last is not body and last.type != "comment":
                self._attached[id(doc), last.id] = (redirect_nodes, end)
                self._walk_child(body, doc, ctx, depth)
                return
        if body is not None and body.type == "command":
            self._command(body, doc, ctx, depth, redirect_nodes, (node.start_byte, end))
            return
        redirects: list[Redirect] = []
        stdin = ctx.stdin
        raws: list[str] = []
        for r in redirect_nodes:
            self._subs(r, doc, ctx, depth)
            got = self._redirect(r, doc, ctx, depth, [], raws)
            if got is not None:
                redirects.append(got[0])
                if got[1] is not None:
                    stdin = got[1]
        inner = ctx.io(ctx.redirects + tuple(redirects), stdin)
        if body is None:  # only redirects: `> file` truncates it
            text = "\n".join([doc.text(node.start_byte, end), *raws])
            cur = _Cur(text, list(ctx.via), {}, inner.redirects, stdin)
            self._emit(ctx, cur, ())
        elif body is node:
            self._walk_node(node, doc, inner, depth)
        else:
            self._walk_child(body, doc, inner, depth)

    def _redirect(
        self,
        node: Node,
        doc: _Doc,
        ctx: _Ctx,
        depth: int,
        extra_args: list[Node],
        heredoc_raws: list[str],
    ) -> tuple[Redirect, str | None] | None:
        """A redirect node → (Redirect, stdin text or None); extra words go to ``extra_args``."""
        t = node.type
        op_parts: list[str] = []
        target: Node | None = None
        if t == "file_redirect":
            fd = ""
            for child in node.children:
                if child.type == "file_descriptor":
                    fd = doc.raw(child)
                elif not child.is_named or child.type == "ERROR":
                    op_parts.append(doc.raw(child))
                elif target is None:
                    target = child
                else:  # `echo > f x`: x is an argument of echo
                    extra_args.append(child)
            op = "".join(op_parts)
            word = _words([target], doc)[0] if target is not None else None
            value = word.value if word is not None else ""
            if op == "<" and word is not None:
                heredoc = doc.heredocs.get(value) if word.static else None
                if heredoc is not None:  # a heredoc the pre-pass replaced
                    heredoc_raws.append(heredoc.raw)
                    if not heredoc.quoted:
                        self._heredoc_subs(heredoc.body, doc, ctx, depth)
                    stdin = heredoc.body if fd in ("", "0") else None
                    return Redirect(fd + "<<", heredoc.body), stdin
                if _herestring_split(node, node.prev_sibling):
                    return Redirect(fd + "<<<", value), (value if fd in ("", "0") else None)
            return Redirect(fd + op, value), None
        if t == "herestring_redirect":
            for child in node.children:
                if child.type == "file_descriptor":
                    op_parts.append(doc.raw(child))
                elif child.is_named and target is None:
                    target = child
            if target is None:
                return None
            fd = "".join(op_parts)
            value = _words([target], doc)[0].value
            return Redirect(fd + "<<<", value), (value if fd in ("", "0") else None)
        if t == "heredoc_redirect":  # only if the pre-pass missed it
            return self._native_heredoc(node, doc, ctx, depth)
        return None

    def _native_heredoc(
        self, node: Node, doc: _Doc, ctx: _Ctx, depth: int
    ) -> tuple[Redirect, str | None]:
        body = ""
        dash = False
        for child in node.children:
            if child.type == "heredoc_body":
                body = doc.raw(child)
                self._subs(child, doc, ctx, depth)
            elif child.type == "<<-":
                dash = True
            elif child.type in _STATEMENTS:
                self._error(f"{doc.label or 'script'}: here-document layout not understood")
                self._walk_child(child, doc, ctx, depth)
        if dash:
            body = "\n".join(line.lstrip("\t") for line in body.split("\n"))
        return Redirect("<<", body), body

    def _heredoc_subs(self, body: str, doc: _Doc, ctx: _Ctx, depth: int) -> None:
        """Command substitutions in an unquoted heredoc body run; find them."""
        if "$(" not in body and "`" not in body:
            return
        delim = "TGEOF"
        lines = set(body.split("\n"))
        while delim in lines:
            delim += "X"
        synthetic = f": <<{delim}\n{body}{'' if body.endswith(chr(10)) else chr(10)}{delim}\n"
        data = _enc(synthetic)
        label = f"{doc.label}: heredoc" if doc.label else "heredoc"
        try:
            tree = _engine().parse(data, self.deadline)
        except _ParseTimeout:
            self._error(f"{label}: parsing took longer than {PARSE_TIME_BUDGET} s: gave up")
            self._unresolved(ctx, body, "heredoc too complex to parse in time")
            return
        sub_doc = _Doc(data, data, label=label)
        for bad in _error_nodes(tree.root_node):
            self._error(f"{label}: syntax error at {sub_doc.where(bad.start_byte)}")
        self._subs(tree.root_node, sub_doc, ctx, depth + 1)
        if "`" not in body:
            return
        # tree-sitter-bash does not see backticks in a heredoc body: find them outside the
        # $(...) it did see, and parse their contents.
        masked = bytearray(data)
        stack = [tree.root_node]
        while stack:
            n = stack.pop()
            if n.type in _SUBSTITUTIONS:
                masked[n.start_byte : n.end_byte] = b" " * (n.end_byte - n.start_byte)
            else:
                stack.extend(n.children)
        sub_ctx = ctx.substitution()
        for m in _BACKTICKS.finditer(bytes(masked)):
            inner = _dec(data[m.start(1) : m.end(1)])
            self.parse_text(_BACKTICK_ESCAPE.sub(r"\1", inner), sub_ctx, depth + 1, label)

    # ---- simple commands

    def _command(
        self,
        node: Node,
        doc: _Doc,
        ctx: _Ctx,
        depth: int,
        outer_redirects: Sequence[Node],
        span: tuple[int, int],
    ) -> None:
        if node.start_byte == node.end_byte:
            return  # a MISSING command (`a &&`): the error is reported already
        text = doc.text(*span)
        self._subs(node, doc, ctx, depth)
        for r in outer_redirects:
            self._subs(r, doc, ctx, depth)
        if (node.has_error and _has_real_error(node)) or any(
            r.has_error and _has_real_error(r) for r in outer_redirects
        ):
            self._unresolved(ctx, text, f"parse error in command: {_snippet(text)}", "")
            return

        env = dict(ctx.env)
        word_nodes: list[Node] = []
        redirect_nodes: list[Node] = []
        seen_name = False
        for child in node.children:
            t = child.type
            if t in _REDIRECTS:
                redirect_nodes.append(child)
            elif seen_name:
                if t != "comment":
                    word_nodes.append(child)  # arguments (and `$` of a split `$"..."`)
            elif t == "variable_assignment":
                name = child.child_by_field_name("name")
                value = child.child_by_field_name("value")
                env[doc.raw(name) if name else ""] = _words([value], doc)[0].value if value else ""
            elif t == "command_name":
                seen_name = True
                word_nodes.append(child.children[0] if child.child_count == 1 else child)
        redirect_nodes.extend(outer_redirects)

        redirects = list(ctx.redirects)
        stdin = ctx.stdin
        extra: list[Node] = []
        raws: list[str] = []
        for r in redirect_nodes:
            got = self._redirect(r, doc, ctx, depth, extra, raws)
            if got is not None:
                redirects.append(got[0])
                if got[1] is not None:
                    stdin = got[1]
        words = _words(word_nodes, doc)
        if extra:
            words += _words(extra, doc)
        if raws:
            text = "\n".join([text, *raws])
        cur = _Cur(text, list(ctx.via), env, tuple(redirects), stdin)
        self._dispatch(words, cur, doc, ctx, depth)

    def _dispatch(self, words: list[_Word], cur: _Cur, doc: _Doc, ctx: _Ctx, depth: int) -> None:
        """Strip wrappers off ``words`` and emit what is left."""
        for _ in range(64):  # each round strips one wrapper
            if not words:
                self._emit(ctx, cur, ())
                return
            head = words[0]
            if not head.static or head.glob:
                if head.glob:
                    why = "glob or brace expansion in command position"
                elif "$(" in head.src or "`" in head.src or "<(" in head.src:
                    why = "command substitution in command position"
                else:
                    why = "variable in command position"
                self._emit(ctx, cur, (), f"{why}: {head.value}", head.value)
                return
            if head.src in _RESERVED:  # `then ls` alone: tree-sitter makes it a command
                message = f"syntax error: unexpected {head.src!r}"
                self._error(f"{doc.label}: {message}" if doc.label else message)
                self._emit(ctx, cur, (), f"parse error: unexpected {head.src!r}", head.value)
                return
            program = _basename(head.value)
            strip = _PREFIX_WRAPPERS.get(program)
            if strip is not None:
                stripped = strip(words[1:])
                if stripped is None or not stripped[0]:
                    break  # not used as a wrapper here (or wraps nothing): a plain command
                rest, env_add = stripped
                cur.via.append(program)
                cur.env.update(env_add)
                words = rest
                continue
            special = _SPECIAL.get(program)
            if special is not None and special(self, words, cur, doc, ctx, depth):
                return
            break
        else:
            self._emit(ctx, cur, (), "too many nested wrappers", words[0].value if words else "")
            return
        self._emit(ctx, cur, [w.value for w in words])
        if cur.stdin is not None and _login_shell(words):
            program = _basename(words[0].value)
            shell = cur.copy()
            shell.via.append(program)  # via ("sudo", "sudo stdin") like ("sudo", "bash stdin")
            self._stdin_script(shell, f"{program} stdin", ctx, depth)

    # ---- wrappers that parse a string or run a second command

    def _nested(
        self,
        script_words: Sequence[_Word],
        label: str,
        cur: _Cur,
        ctx: _Ctx,
        depth: int,
        *,
        keep_env: bool = True,
        keep_redirects: bool = True,
    ) -> None:
        """Parse a string another shell will parse (``bash -c``, ``eval``, ``ssh host``...)."""
        script = " ".join(w.value for w in script_words)
        via = (*cur.via, label)
        if not all(w.static for w in script_words):
            # The outer shell expands it first: flag it, then parse what can be seen of it
            # (unless nothing can: `eval "$(ssh-agent -s)"`).
            reason = f"dynamic {label} string: {_snippet(script)}"
            marker = _Cur(cur.text, list(via), cur.env, cur.redirects, cur.stdin)
            self._emit(ctx, marker, (), reason)
            if _LONE_EXPANSION.fullmatch(script.strip()):
                return
        if ctx.nesting + 1 > MAX_NESTING:
            self._emit(
                ctx,
                _Cur(script, list(via), cur.env, cur.redirects, cur.stdin),
                (),
                f"nesting limit ({MAX_NESTING}) exceeded: {_snippet(script)}",
            )
            return
        inner = replace(
            ctx,
            via=via,
            env=tuple(cur.env.items()) if keep_env else (),
            redirects=cur.redirects if keep_redirects else (),
            stdin=cur.stdin,
            nesting=ctx.nesting + 1,
        )
        self.parse_text(script, inner, depth + 1, label)

    def _shell(self, words: list[_Word], cur: _Cur, doc: _Doc, ctx: _Ctx, depth: int) -> bool:
        args = words[1:]
        has_c = has_s = False
        i = 0
        while i < len(args):
            a = args[i]
            if not a.static:
                break
            v = a.value
            if v in ("-", "--"):
                i += 1
                break
            if v.startswith("--"):
                i += 2 if v in ("--rcfile", "--init-file") else 1
                continue
            if len(v) > 1 and v[0] in "-+":
                takes = sum(1 for ch in v[1:] if ch in "oO")
                has_c |= v[0] == "-" and "c" in v[1:]
                has_s |= v[0] == "-" and "s" in v[1:]
                i += 1 + takes
                continue
            break
        program = _basename(words[0].value)
        if has_c and i < len(args):
            self._nested([args[i]], f"{program} -c", cur, ctx, depth)
            return True
        if has_c or (i < len(args) and not has_s) or cur.stdin is None:
            return False  # `bash script.sh`, `curl ... | sh`: a plain command
        # The shell runs a script it reads from a heredoc or here-string: parse that too.
        self._emit(ctx, cur, [w.value for w in words])
        self._stdin_script(cur, f"{program} stdin", ctx, depth)
        return True

    def _stdin_script(self, cur: _Cur, label: str, ctx: _Ctx, depth: int) -> None:
        script = cur.stdin or ""
        inner = _Cur(
            cur.text,
            list(cur.via),
            cur.env,
            tuple(r for r in cur.redirects if r.operator not in ("<<", "<<<")),
            None,
        )
        self._nested([_Word(script, True, False, script)], label, inner, ctx, depth)

    def _eval(self, words: list[_Word], cur: _Cur, doc: _Doc, ctx: _Ctx, depth: int) -> bool:
        args = words[1:]
        if args and args[0].value == "--":
            args = args[1:]
        if not args:
            return False
        self._nested(args, "eval", cur, ctx, depth)
        return True

    def _su(self, words: list[_Word], cur: _Cur, doc: _Doc, ctx: _Ctx, depth: int) -> bool:
        args = words[1:]
        command: _Word | None = None
        for i, a in enumerate(args):
            v = a.value
            if v in ("-c", "--command", "--session-command") and i + 1 < len(args):
                command = args[i + 1]
            elif v.startswith(("--command=", "--session-command=")):
                value = v.split("=", 1)[1]
                command = _Word(value, a.static, False, a.src, a.start, a.end)
        if command is None:
            return False
        self._emit(ctx, cur, [w.value for w in words])
        self._nested([command], _basename(words[0].value), cur.copy(), ctx, depth)
        return True

    def _trap(self, words: list[_Word], cur: _Cur, doc: _Doc, ctx: _Ctx, depth: int) -> bool:
        args = words[1:]
        if args and args[0].value == "--":
            args = args[1:]
        if len(args) < 2 or args[0].value.startswith("-") or not args[0].value.strip():
            return False
        self._emit(ctx, cur, [w.value for w in words])
        self._nested([args[0]], "trap", cur.copy(), ctx, depth)
        return True

    def _watch(self, words: list[_Word], cur: _Cur, doc: _Doc, ctx: _Ctx, depth: int) -> bool:
        args = words[1:]
        parsed = _options(args, "nq", {"interval", "equexit", "shotsdir"})
        start, shorts, longs = parsed
        rest = args[start:]
        if not rest:
            return False
        if "x" in shorts or "exec" in longs:
            cur.via.append("watch")
            self._dispatch(rest, cur, doc, ctx, depth)
        else:
            self._nested(rest, "watch", cur, ctx, depth)
        return True

    def _ssh(self, words: list[_Word], cur: _Cur, doc: _Doc, ctx: _Ctx, depth: int) -> bool:
        args = words[1:]
        with_arg = "BbcDEeFIiJLlmOoPpQRSWw"
        i, _, _ = _options(args, with_arg, set())
        if i >= len(args):
            return False
        host = args[i]
        i += 1
        while i < len(args) and args[i].static and args[i].value.startswith("-"):
            if args[i].value == "--":
                i += 1
                break
            j, _, _ = _options(args[i : i + 2], with_arg, set(), single=True)
            i += j
        self._emit(ctx, cur, [w.value for w in words])
        for k, a in enumerate(args[:i]):  # -o ProxyCommand=... runs a local command
            option = args[k + 1] if a.value == "-o" and k + 1 < i else None
            if option is None and a.value.startswith("-o") and a.value != "-o":
                option = a._replace(value=a.value[2:])
            m = _SSH_COMMAND_OPTION.match(option.value) if option is not None else None
            if m is not None and option is not None:
                command = option._replace(value=m[2])
                self._nested([command], f"ssh -o {m[1]}", cur.copy(), ctx, depth)
        remote = args[i:]
        inner = _Cur(cur.text, list(cur.via), {}, (), cur.stdin)
        label = f"ssh {host.value}"
        if remote:
            self._nested(remote, label, inner, ctx, depth, keep_env=False, keep_redirects=False)
        elif cur.stdin is not None:  # `ssh host <<EOF`: the remote shell runs the heredoc
            self._stdin_script(inner, label, ctx, depth)
        return True

    def _find(self, words: list[_Word], cur: _Cur, doc: _Doc, ctx: _Ctx, depth: int) -> bool:
        self._emit(ctx, cur, [w.value for w in words])
        i = 1
        while i < len(words):
            flag = words[i].value
            if flag in ("-exec", "-execdir", "-ok", "-okdir") and words[i].static:
                j = i + 1
                while j < len(words) and words[j].value not in (";", "+"):
                    j += 1
                inner = words[i + 1 : j]
                if inner:
                    sub = cur.copy()
                    sub.via.append("find -exec")  # -execdir, -ok, -okdir too (argv says which)
                    if inner[0].start >= 0 and inner[-1].end >= 0:
                        sub.text = doc.text(inner[0].start, inner[-1].end)
                    self._dispatch(list(inner), sub, doc, ctx, depth)
                i = j + 1
            else:
                i += 1
        return True


# --------------------------------------------------------------------------------------------
# option parsing for wrappers


def _options(
    args: Sequence[_Word], with_arg: str, long_with_arg: set[str], *, single: bool = False
) -> tuple[int, set[str], set[str]]:
    """getopt-style scan: (index of the first operand, short flags seen, long options seen).

    ``with_arg``: short options that take an argument; ``long_with_arg``: long ones that take
    one when it is not attached with ``=``. ``single``: look at one option only.
    """
    shorts: set[str] = set()
    longs: set[str] = set()
    i = 0
    while i < len(args):
        a = args[i]
        v = a.value
        if not a.static:
            return i, shorts, longs
        if v == "--":
            return i + 1, shorts, longs
        if not v.startswith("-") or v == "-":
            return i, shorts, longs
        if v.startswith("--"):
            name = v[2:].split("=", 1)[0]
            longs.add(name)
            i += 2 if ("=" not in v and name in long_with_arg) else 1
        else:
            i += 1
            for j, ch in enumerate(v[1:], start=1):
                shorts.add(ch)
                if ch in with_arg:
                    if j == len(v) - 1:
                        i += 1  # the argument is the next word
                    break  # the rest of this word is the argument
        if single:
            return i, shorts, longs
    return i, shorts, longs


def _login_shell(words: Sequence[_Word]) -> bool:
    """``sudo -s``, ``sudo -i``, ``doas -s``, ``su [user]``: a shell that reads its stdin."""
    program = _basename(words[0].value)
    if program in ("su", "runuser"):
        return True  # with -c it was handled as a command string
    if program not in ("sudo", "doas"):
        return False
    return any(
        w.value in ("--shell", "--login")
        or (w.value.startswith("-") and not w.value.startswith("--") and "s" in w.value[1:])
        or (program == "sudo" and w.value.startswith("-") and "i" in w.value[1:2])
        for w in words[1:]
    )


_Strip = Callable[[list[_Word]], tuple[list[_Word], dict[str, str]] | None]


def _assignments(args: list[_Word]) -> tuple[list[_Word], dict[str, str]]:
    env: dict[str, str] = {}
    i = 0
    while i < len(args) and _ASSIGNMENT.match(args[i].value):
        name, value = args[i].value.split("=", 1)
        env[name] = value
        i += 1
    return args[i:], env


def _simple_strip(
    with_arg: str,
    long_with_arg: Iterable[str] = (),
    *,
    refuse: str = "",
    refuse_long: Iterable[str] = (),
    operands: int = 0,
    assignments: bool = False,
) -> _Strip:
    """A wrapper ``prog [options] [operands] command...``; ``refuse``: flags meaning no command."""
    long_set = set(long_with_arg)
    refuse_set = set(refuse_long)

    def strip(args: list[_Word]) -> tuple[list[_Word], dict[str, str]] | None:
        i, shorts, longs = _options(args, with_arg, long_set)
        if shorts & set(refuse) or longs & refuse_set:
            return None
        rest = args[i + operands :] if len(args) >= i + operands else []
        if assignments:
            return _assignments(rest)
        return rest, {}

    return strip


def _strip_env(args: list[_Word]) -> tuple[list[_Word], dict[str, str]] | None:
    i = 0
    while i < len(args):
        a = args[i]
        v = a.value
        if not a.static or not v.startswith("-"):
            break
        if v == "--":
            i += 1
            break
        if v in ("-S", "--split-string") or v.startswith(("-S", "--split-string=")):
            if v in ("-S", "--split-string"):
                if i + 1 >= len(args):
                    return None
                split, i = args[i + 1].value, i + 2
            else:
                split, i = (v.split("=", 1)[1] if v.startswith("--") else v[2:]), i + 1
            try:
                parts = shlex.split(split)
            except ValueError:
                return None
            fake = [_Word(p, args[i - 1].static, _has_glob(p), p) for p in parts]
            return _assignments(fake + list(args[i:]))
        if v in ("-u", "-C", "-P", "--unset", "--chdir"):
            i += 2
        else:
            i += 1
    return _assignments(list(args[i:]))


_PREFIX_WRAPPERS: dict[str, _Strip] = {
    "sudo": _simple_strip(
        "CDgpRrTtUu",
        {
            "user",
            "group",
            "prompt",
            "close-from",
            "role",
            "type",
            "other-user",
            "chdir",
            "command-timeout",
            "host",
            "chroot",
        },
        refuse="ehlVvK",
        refuse_long={"edit", "help", "list", "version", "validate", "remove-timestamp"},
        assignments=True,
    ),
    "doas": _simple_strip("uC", refuse="CLs"),
    "env": _strip_env,
    "time": _simple_strip("fo", {"format", "output"}),
    "nohup": _simple_strip(""),
    "timeout": _simple_strip("sk", {"signal", "kill-after"}, operands=1),
    "nice": _simple_strip("n", {"adjustment"}),
    "ionice": _simple_strip(
        "cnpPu",
        {"class", "classdata", "pid", "pgid", "uid"},
        refuse="pPu",
        refuse_long={"pid", "pgid", "uid"},
    ),
    "command": _simple_strip("", refuse="vV"),
    "exec": _simple_strip("a"),
    "builtin": _simple_strip(""),
    "stdbuf": _simple_strip("ioe", {"input", "output", "error"}),
    "xargs": _simple_strip(
        "adEILnPs",
        {"arg-file", "delimiter", "max-args", "max-procs", "max-chars", "process-slot-var"},
    ),
    "setsid": _simple_strip(""),
    "chroot": _simple_strip("", {"userspec", "groups"}, operands=1),
    "busybox": _simple_strip(""),
    "coproc": _simple_strip(""),
}
"""Wrappers ``prog [options] command...``: the function returns (command words, env) or None."""

_Special = Callable[[_Walker, list[_Word], _Cur, _Doc, _Ctx, int], bool]
_SPECIAL: dict[str, _Special] = {
    **dict.fromkeys(("bash", "sh", "zsh", "dash", "ksh", "mksh", "ash", "fish"), _Walker._shell),
    "eval": _Walker._eval,
    "su": _Walker._su,
    "runuser": _Walker._su,
    "trap": _Walker._trap,
    "watch": _Walker._watch,
    "ssh": _Walker._ssh,
    "find": _Walker._find,
}
"""Commands that run a string or another command; the function returns True when it emitted."""
