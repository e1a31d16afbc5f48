"""Build ``tests/corpus/external/gitleaks.jsonl`` from a gitleaks source checkout.

Usage::

    python tests/corpus/tools/gitleaks_corpus.py GITLEAKS_CHECKOUT [--out FILE] [--seed N]

gitleaks validates every rule of its default configuration against true and false positives
declared next to the rule (``cmd/generate/config/rules/*.go``: ``tps := ...``, ``fps := ...``,
passed to ``utils.Validate``). Those declarations are small Go expressions: string literals,
``utils.GenerateSampleSecrets(id, secret)`` (the secret placed in ~30 configuration and code
contexts), ``secrets.NewSecret(regex)`` (a random string matching a regex), ``append``,
``fmt.Sprintf``. This script evaluates that subset of Go in Python - it does not build or run
gitleaks - and writes one JSON line per case. The secret of each true positive is what gitleaks'
own rule regex (``config/gitleaks.toml``, its ``secretGroup``) captures in it, so the corpus
says what gitleaks, not trailguard, takes for the secret.

Random values are drawn with a fixed seed and marked fake where the rule's alphabet allows it
(``FAKE``, ``fake``, ``dead``...), then checked again against the rule's regex.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # Python 3.11+
    import re._parser as sre_parse  # type: ignore[import-not-found]
    from re import _constants as sre_c  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_constants as sre_c  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

# --------------------------------------------------------------------------------------------
# A string generator for regular expressions (what gitleaks' ``secrets.NewSecret`` does)
# --------------------------------------------------------------------------------------------

_FAKE_MARKS = ("FAKE", "fake", "Fake", "dead", "beef", "0000")


class RegexGenerator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.marked = False

    def generate(self, pattern: str) -> str:
        self.marked = False
        parsed = sre_parse.parse(_go_to_python(pattern))
        return self._seq(parsed)

    def _seq(self, items: Any) -> str:
        return "".join(self._item(op, av) for op, av in items)

    def _chars(self, av: Any) -> list[str]:
        chars: list[str] = []
        negate = False
        for op, arg in av:
            if op is sre_c.NEGATE:
                negate = True
            elif op is sre_c.LITERAL:
                chars.append(chr(arg))
            elif op is sre_c.RANGE:
                chars.extend(chr(c) for c in range(arg[0], arg[1] + 1))
            elif op is sre_c.CATEGORY:
                chars.extend(_category(arg))
        if negate:
            printable = [chr(c) for c in range(0x21, 0x7F)]
            chars = [c for c in printable if c not in chars]
        return sorted(set(chars))

    def _item(self, op: Any, av: Any) -> str:
        if op is sre_c.LITERAL:
            return chr(av)
        if op is sre_c.NOT_LITERAL:
            return "x" if chr(av) != "x" else "y"
        if op is sre_c.ANY:
            return self.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789")
        if op is sre_c.IN:
            return self.rng.choice(self._chars(av))
        if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
            low, high, sub = av
            if high == sre_c.MAXREPEAT:
                high = low + 2
            count = self.rng.randint(low, min(high, low + 2)) if high > low else low
            if len(sub) == 1 and sub[0][0] is sre_c.IN and count >= 12 and not self.marked:
                chars = set(self._chars(sub[0][1]))
                body = [self._item(*sub[0]) for _ in range(count)]
                for mark in _FAKE_MARKS:
                    if set(mark) <= chars:
                        at = count // 3
                        body[at : at + len(mark)] = list(mark)
                        self.marked = True
                        break
                return "".join(body)
            return "".join(self._seq(sub) for _ in range(count))
        if op is sre_c.SUBPATTERN:
            return self._seq(av[-1])
        if op is sre_c.BRANCH:
            return self._seq(self.rng.choice(av[1]))
        if op in (sre_c.AT, sre_c.ASSERT, sre_c.ASSERT_NOT):
            return ""
        if op is sre_c.GROUPREF:
            return ""
        raise ValueError(f"cannot generate {op}")


def _category(cat: Any) -> list[str]:
    name = str(cat)
    if "DIGIT" in name:
        return list("0123456789")
    if "WORD" in name:
        return list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
    if "SPACE" in name:
        return [" "]
    return list("abc")


def _go_to_python(pattern: str) -> str:
    """RE2 syntax that Python's ``re`` spells differently."""
    pattern = pattern.replace(r"\z", r"\Z").replace("(?P<", "(?P<")
    posix = {
        "[:alnum:]": "a-zA-Z0-9",
        "[:alpha:]": "a-zA-Z",
        "[:digit:]": "0-9",
        "[:xdigit:]": "0-9a-fA-F",
        "[:upper:]": "A-Z",
        "[:lower:]": "a-z",
        "[:space:]": r"\s",
        "[:punct:]": r"!-/:-@\[-`{-~",
    }
    for k, v in posix.items():
        pattern = pattern.replace(k, v)
    return pattern


def compile_go(pattern: str) -> re.Pattern[str] | None:
    """A gitleaks (RE2) pattern as a Python regex; flags in the middle become global."""
    pattern = _go_to_python(pattern)
    flags = 0
    if "(?i)" in pattern[1:] or pattern.startswith("(?i)"):
        pattern = pattern.replace("(?i)", "")
        flags |= re.IGNORECASE
    if "(?s)" in pattern:
        pattern = pattern.replace("(?s)", "")
        flags |= re.DOTALL
    if "(?m)" in pattern:
        pattern = pattern.replace("(?m)", "")
        flags |= re.MULTILINE
    try:
        return re.compile(pattern, flags)
    except re.error:
        return None


# --------------------------------------------------------------------------------------------
# A Go-expression evaluator for the subset the rule files use
# --------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r]+) | (?P<nl>\n) | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<raw>`[^`]*`) | (?P<str>"(?:[^"\\\n]|\\.)*") | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<num>[0-9]+(?:\.[0-9]+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>:=|\.\.\.|\+=|==|!=|&&|\|\||[-+*/%=(){}\[\],.;:<>!&|])
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass
class Tok:
    kind: str
    value: Any


def tokenize(src: str) -> list[Tok]:
    toks: list[Tok] = []
    pos = 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None:
            raise ValueError(f"cannot tokenize at {src[pos : pos + 30]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        text = m.group(0)
        if kind in {"ws", "comment"}:
            if kind == "comment" and "\n" in text:
                kind, text = "nl", "\n"
            else:
                continue
        if kind == "nl":
            last = toks[-1] if toks else None
            if last is not None and (
                last.kind in {"str", "num", "ident", "char"}
                or (last.kind == "op" and last.value in {")", "]", "}"})
            ):
                toks.append(Tok("op", ";"))
            continue
        if kind == "raw":
            toks.append(Tok("str", text[1:-1].replace("\r", "")))
        elif kind == "str":
            toks.append(Tok("str", _go_unquote(text)))
        else:
            toks.append(Tok(kind, text))
    toks.append(Tok("eof", None))
    return toks


def _go_unquote(text: str) -> str:
    body = text[1:-1]
    out: list[str] = []
    i = 0
    simple = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'", "a": "\a"}
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt == "x":
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        elif nxt == "u":
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            out.append(nxt)
            i += 2
    return "".join(out)


class Opaque:
    """A value the evaluator does not model (a compiled regex, a config struct)."""


@dataclass
class Rule:
    fields: dict[str, Any] = field(default_factory=dict)


class Evaluator:
    def __init__(self, gen: RegexGenerator) -> None:
        self.gen = gen
        self.env: dict[str, Any] = {}
        self.toks: list[Tok] = []
        self.i = 0
        self.results: list[tuple[str | None, list[Any], list[Any]]] = []
        self.rule_ids: list[str] = []
        self.where = ""

    # -- token helpers
    def peek(self, k: int = 0) -> Tok:
        return self.toks[self.i + k]

    def take(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def accept(self, value: str) -> bool:
        t = self.peek()
        if (t.kind == "op" and t.value == value) or (t.kind == "ident" and t.value == value):
            self.i += 1
            return True
        return False

    def expect(self, value: str) -> None:
        if not self.accept(value):
            raise SyntaxError(f"expected {value!r}, got {self.peek().value!r}")

    # -- statements
    def run_body(self, toks: list[Tok]) -> None:
        self.toks, self.i = toks, 0
        while self.peek().kind != "eof":
            start = self.i
            try:
                self.statement()
            except (SyntaxError, ValueError, KeyError, IndexError, TypeError) as exc:
                first, second = self.toks[start], self.toks[start + 1]
                if first.kind == "ident" and second.value in {":=", "="}:
                    self.env[first.value] = Opaque()
                near = [t.value for t in self.toks[start : start + 12]]
                print(f"  {self.where}: skipped a statement: {exc!r} near {near}", file=sys.stderr)
                self.i = start
                self.skip_statement()

    def skip_statement(self) -> None:
        depth = 0
        while self.peek().kind != "eof":
            t = self.take()
            if t.kind == "op" and t.value in "({[":
                depth += 1
            elif t.kind == "op" and t.value in ")}]":
                depth -= 1
            elif t.kind == "op" and t.value == ";" and depth <= 0:
                return

    def statement(self) -> None:
        t = self.peek()
        if t.kind == "op" and t.value == ";":
            self.take()
            return
        if t.kind == "ident" and t.value == "return":
            self.take()
            value = self.expr()
            if isinstance(value, tuple) and value and value[0] == "validated":
                self.results.append(value[1])
            self.accept(";")
            return
        if t.kind == "ident" and t.value == "var":
            self.take()
            if self.accept("("):
                while not self.accept(")"):
                    if self.accept(";"):
                        continue
                    name = self.take().value
                    self.expect("=")
                    self.env[name] = self.expr()
                self.accept(";")
                return
            name = self.take().value
            if not self.accept("="):
                self.skip_statement()
                self.env[name] = []
                return
            self.env[name] = self.expr()
            self.accept(";")
            return
        if t.kind == "ident" and t.value in {"for", "if", "switch"}:
            self.skip_block()
            return
        # assignment: a[, b] (:=|=|+=) expr
        names = [self.take().value]
        while self.accept("."):
            names[-1] += "." + self.take().value
        while self.accept(","):
            names.append(self.take().value)
        if self.accept(":=") or self.accept("="):
            value = self.expr()
            for name in names:
                self.env[name] = value
        elif self.accept("+="):
            self.env[names[0]] = self.env[names[0]] + self.expr()
        else:
            # a bare call: evaluate it for side effects (none matter), skip
            self.i -= 1
            self.skip_statement()
            return
        self.accept(";")

    def skip_block(self) -> None:
        while not (self.peek().kind == "op" and self.peek().value == "{"):
            self.take()
        depth = 0
        while True:
            t = self.take()
            if t.kind == "op" and t.value == "{":
                depth += 1
            elif t.kind == "op" and t.value == "}":
                depth -= 1
                if depth == 0:
                    return

    # -- expressions
    def expr(self) -> Any:
        left = self.unary()
        while self.peek().kind == "op" and self.peek().value == "+":
            self.take()
            right = self.unary()
            left = left + right
        return left

    def unary(self) -> Any:
        if self.accept("&") or self.accept("*"):
            return self.unary()
        return self.postfix(self.primary())

    def postfix(self, value: Any) -> Any:
        while True:
            if self.peek().kind == "op" and self.peek().value == "[":
                self.take()
                index = self.expr()
                if self.accept(":"):
                    end = self.expr() if self.peek().value != "]" else None
                    self.expect("]")
                    value = value[index:end]
                else:
                    self.expect("]")
                    value = value[index]
                continue
            return value

    def primary(self) -> Any:
        t = self.take()
        if t.kind == "str":
            return t.value
        if t.kind == "num":
            return float(t.value) if "." in t.value else int(t.value)
        if t.kind == "op" and t.value == "(":
            v = self.expr()
            self.expect(")")
            return v
        if t.kind == "op" and t.value == "{":
            self.i -= 1
            return self.composite(list_form=True)
        if t.kind == "op" and t.value == "[":
            # []string{...} / []*config.Allowlist{...} / []byte(x)
            self.expect("]")
            self.type_name()
            if self.accept("("):
                v = self.expr()
                self.expect(")")
                return v
            return self.composite(list_form=True)
        if t.kind == "ident" and t.value == "map":
            self.expect("[")
            self.type_name()
            self.expect("]")
            if self.accept("["):
                self.expect("]")
            self.type_name()
            return self.composite(list_form=False)
        if t.kind == "ident":
            name = t.value
            while (
                self.peek().kind == "op"
                and self.peek().value == "."
                and self.peek(1).kind == "ident"
            ):
                self.take()
                name += "." + self.take().value
            if self.peek().kind == "op" and self.peek().value == "(":
                self.take()
                args: list[Any] = []
                spread = False
                while not self.accept(")"):
                    args.append(self.expr())
                    if self.accept("..."):
                        spread = True
                    self.accept(",")
                return self.call(name, args, spread)
            if (self.peek().kind == "op" and self.peek().value == "{" and name[:1].isupper()) or (
                "." in name and self.peek().value == "{"
            ):
                return self.composite(list_form=False, struct=name)
            if name in self.env:
                return self.env[name]
            if name in {"true", "false", "nil"} or "." in name or name[:1].isupper():
                return Opaque()
            raise KeyError(name)
        raise SyntaxError(f"unexpected {t.value!r}")

    def type_name(self) -> None:
        self.accept("*")
        self.take()
        while self.accept("."):
            self.take()

    def composite(self, *, list_form: bool, struct: str | None = None) -> Any:
        self.expect("{")
        items: list[Any] = []
        keyed: dict[Any, Any] = {}
        while not self.accept("}"):
            if self.peek().kind == "op" and self.peek().value == "{":
                # elided type: {Paths: ...}
                items.append(self.composite(list_form=False))
            else:
                first = (
                    self.expr()
                    if not (self.peek().kind == "ident" and self.peek(1).value == ":")
                    else None
                )
                if first is None:
                    key = self.take().value
                    self.expect(":")
                    keyed[key] = self.expr()
                elif self.accept(":"):
                    keyed[first] = self.expr()
                else:
                    items.append(first)
            self.accept(",")
            self.accept(";")
        if struct is not None:
            if "RuleID" in keyed and isinstance(keyed["RuleID"], str):
                self.rule_ids.append(keyed["RuleID"])
            return Rule(keyed)
        if list_form:
            return items
        return keyed

    def call(self, name: str, args: list[Any], spread: bool) -> Any:
        short = name.rsplit(".", maxsplit=1)[-1]
        if short == "NewSecret":
            return self.gen.generate(args[0])
        if short == "newPlausibleSecret":  # generic.go: a NewSecret with a digit in it
            while True:
                value = self.gen.generate(args[0])
                if re.search("[1-9]", value):
                    return value
        if short == "EncodeToString" and "base64" in name:
            import base64

            data = args[0].encode()
            if "RawURL" in name:
                return base64.urlsafe_b64encode(data).decode().rstrip("=")
            if "URL" in name:
                return base64.urlsafe_b64encode(data).decode()
            if "Raw" in name:
                return base64.b64encode(data).decode().rstrip("=")
            return base64.b64encode(data).decode()
        if name == "string":
            return args[0]
        helpers = {
            "Numeric": r"[0-9]{%s}",
            "Hex": r"[a-f0-9]{%s}",
            "AlphaNumeric": r"[a-z0-9]{%s}",
            "AlphaNumericExtendedShort": r"[a-z0-9_-]{%s}",
            "AlphaNumericExtended": r"[a-z0-9=_\-]{%s}",
            "AlphaNumericExtendedLong": r"[a-z0-9\/=_\+\-]{%s}",
        }
        if short in helpers and name.startswith("utils."):
            return helpers[short] % args[0]
        if short == "Hex8_4_4_4_12":
            return r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        if short == "GenerateSampleSecrets":
            # Every secret in CONTEXTS_PER_SECRET of the ~26 contexts, rotating, so each context
            # is exercised about equally often without multiplying the corpus by 26.
            global _ROTATION  # noqa: PLW0603 - one rotation across every rule file
            cases = [Case(text, args[1], ctx) for ctx, text in sample_contexts(args[0], args[1])]
            picked = [cases[(_ROTATION + k) % len(cases)] for k in range(CONTEXTS_PER_SECRET)]
            _ROTATION += CONTEXTS_PER_SECRET
            return picked
        if short == "GenerateSampleSecret":
            return Case(f'{args[0]}_api_token = "{args[1]}"', args[1], "sample secret")
        if name == "append":
            base = list(args[0])
            rest = args[1:]
            if spread and rest:
                return (
                    base + list(rest[-1]) if len(rest) == 1 else base + rest[:-1] + list(rest[-1])
                )
            return base + rest
        if name == "fmt.Sprintf":
            fmt = args[0]
            return fmt.replace("%%", "\0") % tuple(args[1:]) if "%" in fmt else fmt
        if name == "strings.Repeat":
            return args[0] * args[1]
        if name == "strings.ToUpper":
            return args[0].upper()
        if name == "strings.ToLower":
            return args[0].lower()
        if name == "strings.ReplaceAll":
            return args[0].replace(args[1], args[2])
        if name == "strings.Join":
            return args[1].join(args[0])
        if short in {"Validate", "ValidateWithPaths"}:
            rule = args[0]
            rid = rule.fields.get("RuleID") if isinstance(rule, Rule) else None
            tps, fps = args[1], args[2]
            tps = tps if isinstance(tps, list | dict) else []
            fps = fps if isinstance(fps, list | dict) else []
            if isinstance(tps, dict):
                tps = list(tps.values())
            if isinstance(fps, dict):
                fps = list(fps.values())
            return ("validated", (rid, tps, fps))
        return Opaque()


@dataclass
class Case:
    text: str
    secret: str
    context: str

    def __radd__(self, other: Any) -> Any:  # pragma: no cover - not used by the rules
        return NotImplemented


_SAMPLES: list[tuple[str, str]] = []
_ROTATION = 0
CONTEXTS_PER_SECRET = 3


def sample_contexts(identifier: str, secret: str) -> list[tuple[str, str]]:
    return [
        (
            ctx,
            tpl.replace("{i}", identifier)
            .replace("{I}", identifier.upper())
            .replace("{s}", secret),
        )
        for ctx, tpl in _SAMPLES
    ]


def load_samples(generate_go: str) -> None:
    """The ``samples`` map of ``utils.GenerateSampleSecrets`` (its live entries, not TODOs)."""
    body = generate_go.split("samples := map[string]string{", 1)[1].split("\n\t}\n", 1)[0]
    toks = tokenize(body)
    i = 0
    while toks[i].kind != "eof":
        if toks[i].kind == "str" and toks[i + 1].value == ":" and toks[i + 2].kind == "str":
            _SAMPLES.append((toks[i].value, toks[i + 2].value))
            i += 3
        else:
            i += 1
    _SAMPLES.sort()


# --------------------------------------------------------------------------------------------
# Files, functions, cases
# --------------------------------------------------------------------------------------------


def top_level(toks: list[Tok], keyword: str) -> list[tuple[str, list[Tok]]]:
    """Top-level ``func`` bodies, or ``var`` declarations as assignment statements."""
    found: list[tuple[str, list[Tok]]] = []
    i = 0
    depth = 0
    while toks[i].kind != "eof":
        t = toks[i]
        if t.kind == "op" and t.value in "({[":
            depth += 1
        elif t.kind == "op" and t.value in ")}]":
            depth -= 1
        elif depth == 0 and t.kind == "ident" and t.value == keyword:
            if keyword == "func":
                name = toks[i + 1].value
                j = i + 1
                while not (toks[j].kind == "op" and toks[j].value == "{"):
                    j += 1
                start, d = j + 1, 0
                while True:
                    if toks[j].kind == "op" and toks[j].value == "{":
                        d += 1
                    elif toks[j].kind == "op" and toks[j].value == "}":
                        d -= 1
                        if d == 0:
                            break
                    j += 1
                found.append((name, [*toks[start:j], Tok("op", ";"), Tok("eof", None)]))
                i = j + 1
                continue
            j = i + 1
            if toks[j].value == "(":
                j += 1
                start, d = j, 1
                while d:
                    if toks[j].kind == "op" and toks[j].value in "({[":
                        d += 1
                    elif toks[j].kind == "op" and toks[j].value in ")}]":
                        d -= 1
                    j += 1
                body = toks[start : j - 1]
            else:
                start, d = j, 0
                while not (d == 0 and toks[j].kind == "op" and toks[j].value == ";"):
                    if toks[j].kind == "op" and toks[j].value in "({[":
                        d += 1
                    elif toks[j].kind == "op" and toks[j].value in ")}]":
                        d -= 1
                    j += 1
                body = toks[start:j]
            found.append(("var", [*body, Tok("op", ";"), Tok("eof", None)]))
            i = j
            continue
        i += 1
    return found


def secret_of(text: str, rule: dict[str, Any] | None, fallback: str | None) -> str | None:
    """What gitleaks' rule takes for the secret in ``text``."""
    if rule is not None and "regex" in rule:
        regex = compile_go(rule["regex"])
        if regex is not None:
            for m in regex.finditer(text):
                group = rule.get("secretGroup", 0)
                if group and group <= (regex.groups or 0) and m.group(group):
                    return m.group(group)
                if not group and regex.groups:
                    for g in m.groups():
                        if g:
                            return g
                return m.group(0)
    return fallback


def entropy(value: str) -> float:
    """Shannon entropy in bits per character, as gitleaks computes it on a secret."""
    import math
    from collections import Counter

    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


class Flagger:
    """Which gitleaks rules would report ``text``: each rule's regex, secret group, entropy
    threshold, keywords, its allowlists (regexes and stop words) and the global allowlist - an
    approximation of gitleaks' detector (path conditions are not applied)."""

    def __init__(self, toml: dict[str, Any]) -> None:
        self.rules: list[tuple[dict[str, Any], re.Pattern[str]]] = []
        for rule in toml["rules"]:
            regex = compile_go(rule["regex"]) if "regex" in rule else None
            if regex is not None:
                self.rules.append((rule, regex))
        glob = toml.get("allowlist", {})
        self.global_regexes = [r for r in map(compile_go, glob.get("regexes", [])) if r]
        self.global_stopwords = [w.lower() for w in glob.get("stopwords", [])]

    def _allowed(self, rule: dict[str, Any], secret: str, match: str, line: str) -> bool:
        if any(r.search(secret) for r in self.global_regexes):
            return True
        low = secret.lower()
        if any(w in low for w in self.global_stopwords):
            return True
        for allow in rule.get("allowlists", []):
            target = {"match": match, "line": line}.get(allow.get("regexTarget", ""), secret)
            regexes = [r for r in map(compile_go, allow.get("regexes", [])) if r]
            hit_regex = any(r.search(target) for r in regexes)
            hit_stop = any(w.lower() in low for w in allow.get("stopwords", []))
            if hit_regex or hit_stop:
                return True
        return False

    def flags(self, text: str) -> list[str]:
        found = []
        low = text.lower()
        for rule, regex in self.rules:
            keywords = rule.get("keywords", [])
            if keywords and not any(k.lower() in low for k in keywords):
                continue
            for m in regex.finditer(text):
                group = rule.get("secretGroup", 0)
                if group and group <= regex.groups:
                    secret = m.group(group) or ""
                else:
                    secret = next((g for g in m.groups() if g), m.group(0))
                if rule.get("entropy") and entropy(secret) < rule["entropy"]:
                    continue
                line_start = text.rfind("\n", 0, m.start()) + 1
                line_end = text.find("\n", m.end())
                line = text[line_start : line_end if line_end != -1 else len(text)]
                if self._allowed(rule, secret, m.group(0), line):
                    continue
                found.append(rule["id"])
                break
        return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--out", type=Path, default=Path("tests/corpus/external/gitleaks.jsonl"))
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--commit", default=None, help="the checkout's commit, if not a git tree")
    args = parser.parse_args()
    root: Path = args.checkout
    load_samples((root / "cmd/generate/config/utils/generate.go").read_text())
    toml = tomllib.loads((root / "config/gitleaks.toml").read_text())
    rules = {r["id"]: r for r in toml["rules"]}
    commit = args.commit
    try:
        commit = (
            commit
            or subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    flagger = Flagger(toml)
    rng = random.Random(args.seed)
    gen = RegexGenerator(rng)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for path in sorted((root / "cmd/generate/config/rules").glob("*.go")):
        if path.name.endswith("_test.go"):
            continue
        toks = tokenize(path.read_text())
        globals_env: dict[str, Any] = {}
        for _, body in top_level(toks, "var"):
            ev = Evaluator(gen)
            ev.env = globals_env
            ev.run_body(body)
        for name, body in top_level(toks, "func"):
            ev = Evaluator(gen)
            ev.env = dict(globals_env)
            ev.where = f"{path.name}:{name}"
            try:
                ev.run_body(body)
            except Exception as exc:
                print(f"{path.name}:{name}: {exc}", file=sys.stderr)
                continue
            for rid, tps, fps in ev.results:
                declared = [
                    body[k + 2].value
                    for k in range(len(body) - 2)
                    if body[k].value == "RuleID" and body[k + 2].kind == "str"
                ]
                rid = rid or (
                    ev.rule_ids[-1] if ev.rule_ids else declared[-1] if declared else name
                )
                rule = rules.get(rid)
                provider = path.stem
                for n, tp in enumerate(tps):
                    case = tp if isinstance(tp, Case) else Case(str(tp), "", "literal")
                    if not isinstance(tp, Case | str):
                        continue
                    secret = secret_of(case.text, rule, case.secret or None)
                    if not secret or case.text in seen:
                        continue
                    seen.add(case.text)
                    out.append(
                        {
                            "id": f"{rid}/tp/{n}",
                            "rule": rid,
                            "provider": provider,
                            "context": case.context,
                            "text": case.text,
                            "secrets": [secret],
                        }
                    )
                    bare = case.secret
                    if bare and bare not in seen and secret_of(bare, rule, None) == bare:
                        seen.add(bare)  # a self-identifying format: the secret alone
                        out.append(
                            {
                                "id": f"{rid}/bare/{n}",
                                "rule": rid,
                                "provider": provider,
                                "context": "bare",
                                "text": bare,
                                "secrets": [bare],
                            }
                        )
                for n, fp in enumerate(fps):
                    text = fp.text if isinstance(fp, Case) else fp
                    if not isinstance(text, str) or not text.strip() or text in seen:
                        continue
                    seen.add(text)
                    entry: dict[str, Any] = {
                        "id": f"{rid}/fp/{n}",
                        "rule": rid,
                        "provider": provider,
                        "context": "literal",
                        "text": text,
                        "secrets": [],
                    }
                    others = [f for f in flagger.flags(text) if f != rid]
                    if others:
                        # A negative for its own rule that another gitleaks rule reports
                        # (``cloudflare_api_key = ...`` is not a *global* API key): neither a
                        # true positive nor a clean negative.
                        entry["contested"] = others
                    out.append(entry)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        header = {
            "source": "https://github.com/gitleaks/gitleaks",
            "commit": commit,
            "license": "MIT (Copyright (c) 2019 Zachary Rice)",
            "files": "cmd/generate/config/rules/*.go (tps, fps); config/gitleaks.toml (regexes)",
            "seed": args.seed,
        }
        fh.write(json.dumps({"_provenance": header}, ensure_ascii=False) + "\n")
        for entry in out:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
    tps = sum(1 for e in out if e["secrets"])
    contested = sum(1 for e in out if "contested" in e)
    providers = {e["provider"] for e in out if e["secrets"]}
    print(
        f"{len(out)} cases: {tps} true positives ({len(providers)} providers), "
        f"{len(out) - tps - contested} negatives, {contested} contested negatives"
    )


if __name__ == "__main__":
    main()
