"""Token formats from a maintained rule set, kept as data (a rules file converted from gitleaks'
configuration by :mod:`trailguard.redact.update`; not shipped with trailguard).

Each rule runs only where one of its keywords occurs (the lower-cased text is searched for
each keyword, as gitleaks does), and its regex only in a window around each occurrence, so the
cost grows with what the text mentions, not with the number of rules. A match counts when its
secret group passes the rule's entropy threshold and neither the rule's allowlists, the global
allowlist nor :func:`~trailguard.redact.placeholders.is_placeholder` say it stands in for one.
The tag names the rule: ``[REDACTED:<gitleaks rule id>:...]``.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import ahocorasick

from trailguard.redact.placeholders import entropy, is_placeholder
from trailguard.redact.update import rules_file

_BEFORE: Final = 64
"""How far before a keyword a match may start (``MAILGUN_PRIVATE_API_KEY`` before its value)."""
_AFTER: Final = 320
"""How far after a keyword a match may end; the window then runs on to the next blank."""
_WIDE_BEFORE: Final = 256
_WIDE_AFTER: Final = 1024
"""The same for rules that span lines (a Kubernetes Secret's ``data:`` before its ``kind:``)."""
_SPANS_LINES: Final = re.compile(r"\(\?s|\\n|\\r|\\s\*|\\s\{|\.\{0,\d{3}")
_BLANK: Final = re.compile(r"[\s\"'`]")


class RuleSpan(NamedTuple):
    start: int
    end: int
    kind: str


@dataclass(frozen=True, slots=True)
class _Allow:
    target: str
    regexes: tuple[re.Pattern[str], ...]
    stopwords: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DataRule:
    id: str
    kind: str
    regex: re.Pattern[str]
    group: int
    keywords: tuple[str, ...]
    entropy: float
    allowlists: tuple[_Allow, ...]
    word_start: bool
    """Short keywords (``ey``, ``sk``, ``s.``) count only at the start of a word."""
    before: int
    after: int


@dataclass(frozen=True, slots=True)
class RuleSet:
    version: str
    license: str
    rules: tuple[DataRule, ...]
    by_keyword: tuple[tuple[str, tuple[DataRule, ...]], ...]
    global_regexes: tuple[re.Pattern[str], ...]
    global_stopwords: tuple[str, ...]
    automaton: Any
    """Every keyword in one Aho-Corasick automaton: one pass over the text finds them all."""
    example_rules: tuple[DataRule, ...]
    """The rules with an allowlist that names documented examples (:func:`_names_examples`)."""
    example_words: re.Pattern[str] | None
    """Their keywords and the global stopwords in one regex: most values hold none of them."""


_REGEX_SYNTAX: Final = re.compile(r"\[(?:\\.|[^\]])*\]|\\.|\{\d+(?:,\d*)?\}")
_LITERAL_WORD: Final = re.compile(r"[A-Za-z0-9]{4,}")


def _names_examples(allow: _Allow) -> bool:
    """An allowlist that names example values (``.+EXAMPLE$``, a list of published keys,
    ``changeme``), not one that filters by shape alone (Vault's ``s\\.[A-Za-z]{24}``: a real
    token may have no digit). Only the former may keep a value under a secret name."""
    return any(_LITERAL_WORD.search(_REGEX_SYNTAX.sub("", r.pattern)) for r in allow.regexes)


def _allow(raw: dict[str, Any]) -> _Allow:
    return _Allow(
        raw.get("target", "secret"),
        tuple(re.compile(r) for r in raw.get("regexes", [])),
        tuple(raw.get("stopwords", [])),
    )


def parse_rule_set(document: dict[str, Any]) -> RuleSet:
    """A rule set from the JSON document :mod:`trailguard.redact.update` writes."""
    rules = []
    for raw in document["rules"]:
        keywords = tuple(raw["keywords"])
        rules.append(
            DataRule(
                id=raw["id"],
                kind=raw["kind"],
                regex=re.compile(raw["regex"]),
                group=int(raw["group"]),
                keywords=keywords,
                entropy=float(raw["entropy"]),
                allowlists=tuple(_allow(a) for a in raw["allowlists"]),
                # ``ey``, ``sk``, ``s.`` start their tokens; Azure's ``q~`` sits inside its own
                word_start=all(len(k) <= 2 and "~" not in k for k in keywords),
                before=_WIDE_BEFORE if _SPANS_LINES.search(raw["regex"]) else _BEFORE,
                after=_WIDE_AFTER if _SPANS_LINES.search(raw["regex"]) else _AFTER,
            )
        )
    index: dict[str, list[DataRule]] = {}
    for rule in rules:
        for keyword in rule.keywords:
            index.setdefault(keyword, []).append(rule)
    glob = document.get("global_allowlist", {})
    example_rules = tuple(r for r in rules if any(_names_examples(a) for a in r.allowlists))
    words = {k for r in example_rules for k in r.keywords} | set(glob.get("stopwords", []))
    automaton: Any = None  # no rules, no automaton: pyahocorasick cannot search an empty one
    if index:
        automaton = ahocorasick.Automaton()
        for keyword, keyed in index.items():
            automaton.add_word(keyword, (keyword, tuple(keyed)))
        automaton.make_automaton()
    return RuleSet(
        version=str(document.get("version", "")),
        license=str(document.get("license", "")),
        rules=tuple(rules),
        by_keyword=tuple((k, tuple(v)) for k, v in sorted(index.items())),
        global_regexes=tuple(re.compile(r) for r in glob.get("regexes", [])),
        global_stopwords=tuple(glob.get("stopwords", [])),
        automaton=automaton,
        example_rules=example_rules,
        example_words=re.compile("|".join(re.escape(w) for w in sorted(words))) if words else None,
    )


NO_RULES: Final = {"version": "none", "license": "", "rules": []}


@functools.cache
def rule_set() -> RuleSet:
    """The operator's rule set (:func:`~trailguard.redact.update.rules_file`), loaded once; an
    empty one when there is none, so trailguard's own rules run alone."""
    path = rules_file()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        document = NO_RULES
    return parse_rule_set(document)


def _secret_span(rule: DataRule, m: re.Match[str]) -> tuple[int, int]:
    if rule.group and rule.group <= (rule.regex.groups or 0) and m.group(rule.group):
        return m.span(rule.group)
    if not rule.group and rule.regex.groups:
        for i in range(1, rule.regex.groups + 1):
            if m.group(i):
                return m.span(i)
    return m.span()


def _allowed(rules: RuleSet, rule: DataRule, text: str, m: re.Match[str], secret: str) -> bool:
    if any(r.search(secret) for r in rules.global_regexes):
        return True
    low = secret.lower()
    if any(w in low for w in rules.global_stopwords):
        return True
    for allow in rule.allowlists:
        if allow.stopwords and any(w in low for w in allow.stopwords):
            return True
        if not allow.regexes:
            continue
        if allow.target == "match":
            target = m.group(0)
        elif allow.target == "line":
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            target = text[start : end if end != -1 else len(text)]
        else:
            target = secret
        if any(r.search(target) for r in allow.regexes):
            return True
    return False


def documented_example(value: str, rules: RuleSet | None = None) -> bool:
    """Whether the rule set says ``value`` is a documented example wherever it appears: one of
    its global stopwords (the alphabet...) or a value a rule that knows its format allowlists
    (``AKIA...EXAMPLE``). trailguard's own secret-named rules keep such a value too. Only the
    few rules with allowlists of their own are asked: cheap enough for every named value."""
    rules = rules or rule_set()
    low = value.lower()
    if rules.example_words is None or rules.example_words.search(low) is None:
        return False
    if any(w in low for w in rules.global_stopwords):
        return True
    for rule in rules.example_rules:
        if not any(k in low for k in rule.keywords):
            continue
        m = rule.regex.search(value)
        if m is not None:
            s_start, s_end = _secret_span(rule, m)
            if _allowed(rules, rule, value, m, value[s_start:s_end]):
                return True
    return False


def allowlisted(value: str, rules: RuleSet | None = None) -> bool:
    """Whether a data rule that knows ``value``'s format allowlists it (gitleaks keeps lists of
    well-known public keys and documented examples): trailguard's own format rules ask this
    before they redact a token."""
    rules = rules or rule_set()
    low = value.lower()
    if rules.automaton is None:
        return False
    seen: set[str] = set()
    for _, (_keyword, keyed) in rules.automaton.iter(low):
        for rule in keyed:
            if rule.id in seen:
                continue  # once per rule, however often its keywords occur: linear
            seen.add(rule.id)
            m = rule.regex.search(value)
            if m is None:
                continue
            s_start, s_end = _secret_span(rule, m)
            if _allowed(rules, rule, value, m, value[s_start:s_end]):
                return True
    return False


def _window(
    text: str, at: int, keyword: str, blank_at: int, before: int, after: int
) -> tuple[int, int, int]:
    """The window around a keyword at ``at``: from a little before it to the first blank after
    ``_AFTER`` characters (a window never ends inside a token). Returns it and the blank's
    position, which the next window can reuse (one search for many windows: linear)."""
    n = len(text)
    start = max(0, at - before)
    end = min(n, at + len(keyword) + after)
    if blank_at < end:
        blank = _BLANK.search(text, end)
        blank_at = blank.start() if blank is not None else n
    return start, blank_at, blank_at


def scan(text: str, low: str, rules: RuleSet | None = None) -> list[RuleSpan]:
    """Every secret the data rules find in ``text`` (``low`` is ``text`` lower-cased, same
    length)."""
    rules = rules or rule_set()
    windows: dict[DataRule, list[tuple[int, int]]] = {}
    blank_at = -1
    if rules.automaton is None:
        return []
    for last, (keyword, keyed) in rules.automaton.iter(low):
        at = last - len(keyword) + 1
        at_word_start = at == 0 or not text[at - 1].isalnum()
        for rule in keyed:
            if rule.word_start and not at_word_start:
                continue
            start, end, blank_at = _window(text, at, keyword, blank_at, rule.before, rule.after)
            window = (start, end)
            spans = windows.setdefault(rule, [])
            if spans and window[0] <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], window[1]))
            else:
                spans.append(window)
    out: list[RuleSpan] = []
    for rule, spans in windows.items():
        spans.sort()
        merged: list[tuple[int, int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        for start, end in merged:
            for m in rule.regex.finditer(text, start, end):
                s_start, s_end = _secret_span(rule, m)
                secret = text[s_start:s_end]
                if not secret or (rule.entropy and entropy(secret) < rule.entropy):
                    continue
                if _allowed(rules, rule, text, m, secret) or is_placeholder(secret, strict=True):
                    continue
                out.append(RuleSpan(s_start, s_end, rule.kind))
    return out
