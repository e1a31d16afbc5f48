"""The AWS CLI's argument parsing: global options, operation options, values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from trailguard.classify.aws.names import _GLOBAL_FLAGS, _GLOBAL_VALUE_OPTIONS, _HELP_OPTIONS
from trailguard.classify.aws.resources import _Args

# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------


def _split_globals(tokens: Sequence[str]) -> tuple[list[str], dict[str, str], bool]:
    """Take the global options out wherever they stand (the CLI accepts them anywhere);
    return the remaining words, the global values, and whether help or the version was
    asked for. Unknown options before the service are dropped."""
    words: list[str] = []
    values: dict[str, str] = {}
    has_help = False
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        name, equals, value = token.partition("=")
        if name in _GLOBAL_VALUE_OPTIONS:
            if not equals:
                if index < len(tokens):
                    value = tokens[index]
                    index += 1
                else:
                    value = ""
            values[name] = value
        elif token in _GLOBAL_FLAGS:
            continue
        elif token in _HELP_OPTIONS:
            has_help = True
        elif not words and token.startswith("-"):
            continue
        else:
            words.append(token)
    return words, values, has_help


def _parse_options(
    tokens: Sequence[str],
    kinds: Mapping[str, str],
    optional_values: Mapping[str, frozenset[str]] | None = None,
) -> _Args:
    """Split operation arguments into options and positionals. ``kinds`` says what each option
    takes: ``flag`` nothing, ``list`` every following word up to the next option, ``scalar`` one
    word. An unknown option takes the next word unless that is an option itself.
    ``optional_values`` name options whose value may be left out (``--sse`` / ``--sse
    aws:kms``): they take the next word only if it is one of the allowed values."""
    parsed = _Args()
    optional_values = optional_values or {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not token.startswith("--") or len(token) == 2:
            parsed.positionals.append(token)
            continue
        name, equals, value = token[2:].partition("=")
        values = parsed.options.setdefault(name, [])
        if equals:
            values.append(value)
            continue
        if name in optional_values:
            if index < len(tokens) and tokens[index] in optional_values[name]:
                values.append(tokens[index])
                index += 1
            continue
        kind = kinds.get(name)
        if kind is None and name.startswith("no-") and kinds.get(name[3:]) == "flag":
            kind = "flag"
        if kind == "flag":
            continue
        if kind == "list":
            while index < len(tokens) and not tokens[index].startswith("--"):
                values.append(tokens[index])
                index += 1
            continue
        if index < len(tokens) and not tokens[index].startswith("--"):
            values.append(tokens[index])
            index += 1
    return parsed


def _asks_help(args: _Args) -> bool:
    """``aws SERVICE OPERATION ... help``: the CLI shows the help page (a word ``help`` that is
    an option's value does not count)."""
    return args.positionals[-1:] == ["help"]
