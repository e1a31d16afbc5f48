"""Limits that bound the work of one parse: nesting, depth, time, errors."""

from __future__ import annotations

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
