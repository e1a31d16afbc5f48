"""What the classifiers work on: shell commands reduced to argv, and the context of a tool call.

The shell parser (classify/shell.py) turns a Bash tool call into SimpleCommands; each classifier
turns the commands it knows into trailguard.events.Operation values.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Redirect:
    operator: str
    """``>``, ``>>``, ``<``, ``&>``, ``2>``, ``<<`` (heredoc), ``<<<`` (here-string)..."""
    target: str
    """The file (for file redirects) or the literal text (heredoc / here-string body)."""


@dataclass(frozen=True)
class SimpleCommand:
    """One command the shell would run, after the parser has removed its wrappers."""

    argv: tuple[str, ...]
    """Program and arguments with quotes removed (``"a b"`` → ``a b``). Empty if unresolved."""
    text: str
    """The command's source text, for the operation's ``raw``."""
    env: dict[str, str] = field(default_factory=dict)
    """``VAR=value`` assignments in front of it (and from ``env VAR=value``)."""
    redirects: tuple[Redirect, ...] = ()
    stdin: str | None = None
    """Heredoc or here-string text fed to it, when static."""
    piped_from: tuple[str, ...] = ()
    """Programs earlier in the same pipeline (``curl ... | sh`` gives sh piped_from ("curl",))."""
    via: tuple[str, ...] = ()
    """How it was reached: ``sudo``, ``bash -c``, ``ssh prod-db``, ``xargs``, ``find -exec``..."""
    unresolved: str | None = None
    """Why the command cannot be known statically (variable in command position, eval of a
    variable, parse error); None when it can."""

    @property
    def program(self) -> str:
        """The program's base name (``/usr/bin/git`` → ``git``), or "" when unresolved."""
        return self.argv[0].rsplit("/", 1)[-1] if self.argv else ""


@dataclass(frozen=True)
class ClassifyContext:
    """Where a tool call runs; classifiers use it to resolve paths and defaults."""

    cwd: str | None = None
    home: str | None = None
    project_root: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    """The session's known environment (e.g. AWS_PROFILE), when the gateway knows it."""
    nesting: int = 0
    """How many shell escapes deep this command is (``psql -c '\\! sh -c ...'``): bounded."""
