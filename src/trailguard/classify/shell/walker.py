"""The walk over the syntax tree: statements, pipelines, redirects, substitutions and strings
another shell parses, into SimpleCommands."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from tree_sitter import Node

from trailguard.classify.model import Redirect, SimpleCommand
from trailguard.classify.shell import limits
from trailguard.classify.shell.documents import _dec, _Doc, _enc, _names, _prepare
from trailguard.classify.shell.engine import _engine, _ParseTimeout
from trailguard.classify.shell.limits import _MAX_ERRORS, _MAX_PIPED_FROM, MAX_DEPTH, MAX_NESTING
from trailguard.classify.shell.words import _basename, _eval_word, _Word, _words
from trailguard.classify.shell.wrappers import (
    _PREFIX_WRAPPERS,
    _login_shell,
    _options,
)

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


class _Walker:
    def __init__(self) -> None:
        self.out: list[SimpleCommand] = []
        self._meta: list[tuple[int, str]] = []  # (ctx.sub, program label) per command
        self.errors: list[str] = []
        self._attached: dict[tuple[int, int], tuple[Sequence[Node], int]] = {}
        self.deadline = time.monotonic() + limits.PARSE_TIME_BUDGET

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
            self._error(f"{prefix}parsing took longer than {limits.PARSE_TIME_BUDGET} s: gave up")
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
            self._error(f"{label}: parsing took longer than {limits.PARSE_TIME_BUDGET} s: gave up")
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
