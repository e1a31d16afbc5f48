"""Convert a gitleaks configuration file into trailguard's token formats (a JSON rules file).

gitleaks' default configuration (``config/gitleaks.toml``, MIT licence) is a maintained set of
a few hundred provider formats with the keywords that must occur before a rule runs, the regex
group that holds the secret, entropy thresholds and allowlists. This module keeps that data,
translated from RE2 to Python regex syntax and checked to compile; trailguard's own structural
rules (names, flags, headers, URLs, config formats) stay in :mod:`trailguard.redact.engine`.

The rule set is not shipped inside trailguard: the operator converts the gitleaks.toml they
obtained (``trailguard secrets update-rules gitleaks.toml --version v8.x.y``), and the file is
found at ``$TRAILGUARD_SECRET_RULES``, else ``~/.config/trailguard/secret-rules.json``. Without
one, trailguard's own rules (:mod:`trailguard.redact.engine`) still run; ``secrets check``
says which rule set is in force. ``tests/test_redact_rules.py`` checks a converted file.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

RULES_ENV: Final = "TRAILGUARD_SECRET_RULES"


def rules_file() -> Path:
    """Where the token formats are read from (and ``update-rules`` writes by default)."""
    configured = os.environ.get(RULES_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".config" / "trailguard" / "secret-rules.json"


# Rules trailguard's own engine covers with structure the regex cannot see (PEM blocks whole,
# cut-short blocks, PuTTY keys), or that need a file path rather than content. The others run
# where trailguard's own rules found nothing (``engine._outside``).
SKIPPED_RULES: Final = frozenset({"generic-api-key", "private-key", "pkcs12-file"})

_KIND_MAX: Final = 64
# What ``utils.GenerateSemiGenericRegex`` puts in front of the identifiers only widens the match
# to the left (``my_mailgun_key`` instead of ``mailgun_key``); the secret group is the same
# without it, and each search is much cheaper.
_LEADING_IDENTIFIER: Final = re.compile(r"^(\(\?i\))?\[\\w\.-\]\{0,50\}\?")
_POSIX: Final = {
    "[:alnum:]": "a-zA-Z0-9",
    "[:alpha:]": "a-zA-Z",
    "[:digit:]": "0-9",
    "[:xdigit:]": "0-9a-fA-F",
    "[:upper:]": "A-Z",
    "[:lower:]": "a-z",
    "[:space:]": r"\s",
    "[:word:]": r"\w",
}


class RuleSetError(ValueError):
    """The gitleaks file cannot be read as a rule set (what is wrong is in the message)."""


@dataclass(frozen=True, slots=True)
class Converted:
    rules: list[dict[str, Any]]
    skipped: dict[str, str]


def to_python_regex(pattern: str) -> str:
    """An RE2 pattern as Python ``re`` syntax.

    Python refuses global flags after the start (``a|(?i)b``) and has no POSIX classes or
    ``\\z``; RE2's inline ``(?i)`` after the start applies to the rest of its group, which
    becomes a scoped ``(?i:...)`` group here.
    """
    for posix, plain in _POSIX.items():
        pattern = pattern.replace(posix, plain)
    pattern = pattern.replace(r"\z", r"\Z")
    return _scope_inline_flags(pattern)


def _scope_inline_flags(pattern: str) -> str:
    """``x(?i)y)`` becomes ``x(?i:y))``: an inline flag lasts to the end of its group."""
    out: list[str] = []
    closers: list[int] = [0]  # per open group: how many scoped groups to close with it
    i = 0
    in_class = False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            if pattern[i + 1 : i + 2] == "]":
                out.append("]")
                i += 1
            i += 1
            continue
        flag = re.match(r"\(\?([imsU]+)\)", pattern[i:])
        if flag is not None:
            flags = flag.group(1).replace("U", "")
            if i == 0:
                out.append(f"(?{flags})" if flags else "")
            else:
                out.append(f"(?{flags}:" if flags else "(?:")
                closers[-1] += 1
            i += flag.end()
            continue
        if c == "(":
            closers.append(0)
            out.append(c)
        elif c == ")":
            out.append(")" * closers.pop())
            out.append(c)
        elif c == "|" and closers[-1]:
            out.append(")" * closers[-1])
            closers[-1] = 0
            out.append(c)
        else:
            out.append(c)
        i += 1
    out.append(")" * closers[0])
    return "".join(out)


def _kind(rule_id: str) -> str:
    kind = re.sub(r"[^a-z0-9-]+", "-", rule_id.lower()).strip("-")
    return kind[:_KIND_MAX]


def _compile(pattern: str, where: str) -> str:
    translated = to_python_regex(pattern)
    try:
        re.compile(translated)
    except re.error as exc:
        raise RuleSetError(f"{where}: {exc}") from None
    return translated


def convert(toml_text: str) -> Converted:
    """The rule set of a gitleaks configuration, as trailguard keeps it."""
    try:
        config = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleSetError(f"not a TOML file: {exc}") from None
    raw_rules = config.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RuleSetError("no [[rules]] in the file: is it a gitleaks configuration?")
    rules: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for raw in raw_rules:
        rule_id = str(raw.get("id", ""))
        if not rule_id:
            raise RuleSetError("a rule without an id")
        if rule_id in SKIPPED_RULES:
            skipped[rule_id] = "covered by trailguard's own rules"
            continue
        if "regex" not in raw:
            skipped[rule_id] = "matches file paths, not content"
            continue
        pattern = _LEADING_IDENTIFIER.sub(lambda m: m.group(1) or "", raw["regex"])
        try:
            regex = _compile(pattern, rule_id)
            allowlists = [
                {
                    "target": a.get("regexTarget", "secret"),
                    "regexes": [_compile(r, f"{rule_id} allowlist") for r in a.get("regexes", [])],
                    "stopwords": [w.lower() for w in a.get("stopwords", [])],
                }
                for a in raw.get("allowlists", [])
                if a.get("regexes") or a.get("stopwords")
            ]
        except RuleSetError as exc:
            skipped[rule_id] = f"does not compile as a Python regex ({exc})"
            continue
        keywords = sorted({k.lower() for k in raw.get("keywords", [])})
        if not keywords:
            skipped[rule_id] = "no keywords: it would run on every text"
            continue
        rules.append(
            {
                "id": rule_id,
                "kind": _kind(rule_id),
                "regex": regex,
                "group": int(raw.get("secretGroup", 0)),
                "keywords": keywords,
                "entropy": float(raw.get("entropy", 0.0)),
                "allowlists": allowlists,
            }
        )
    glob = config.get("allowlist", {})
    global_allow = {
        "regexes": [_compile(r, "global allowlist") for r in glob.get("regexes", [])],
        "stopwords": [w.lower() for w in glob.get("stopwords", [])],
    }
    rules.sort(key=lambda r: r["id"])
    return Converted([{"global": global_allow}, *rules], skipped)


def write(toml_path: Path, *, version: str, out: Path | None = None) -> Converted:
    """Convert ``toml_path`` and write the data file (atomically) with its provenance."""
    converted = convert(toml_path.read_text(encoding="utf-8"))
    document = {
        "source": "https://github.com/gitleaks/gitleaks (config/gitleaks.toml)",
        "version": version,
        "license": "MIT, Copyright (c) 2019 Zachary Rice (gitleaks' LICENSE)",
        "converted_by": "trailguard.redact.update",
        "skipped": converted.skipped,
        "global_allowlist": converted.rules[0]["global"],
        "rules": converted.rules[1:],
    }
    out = out if out is not None else rules_file()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out)
    return converted


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("toml", type=Path, help="a gitleaks configuration (config/gitleaks.toml)")
    parser.add_argument("--version", required=True, help="its gitleaks version or commit")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    converted = write(args.toml, version=args.version, out=args.out)
    print(
        f"{len(converted.rules) - 1} rules written to {args.out}; {len(converted.skipped)} skipped"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
