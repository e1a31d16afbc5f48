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

from dataclasses import dataclass

from trailguard.classify.model import SimpleCommand
from trailguard.classify.shell.limits import MAX_DEPTH, MAX_NESTING, PARSE_TIME_BUDGET
from trailguard.classify.shell.walker import _Ctx, _Walker

__all__ = ["MAX_DEPTH", "MAX_NESTING", "PARSE_TIME_BUDGET", "ParsedShell", "parse_shell"]


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
