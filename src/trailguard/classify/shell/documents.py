"""The text tree-sitter parses, mapped back to the original: heredocs cut out before the
parse (tree-sitter-bash mis-parses several heredoc forms), line continuations joined."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from tree_sitter import Node, Tree

from trailguard.classify.shell.engine import _Engine, _engine
from trailguard.classify.shell.limits import _MAX_HEREDOC_PASSES

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
