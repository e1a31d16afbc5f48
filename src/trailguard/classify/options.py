"""GNU-style command-line option parsing shared by the classifiers (files, git, sql, http).

:func:`iter_options` walks an argument list the way ``getopt_long`` would and reports, in order,
each option with its value and each positional argument. The caller decides what the options
mean; this module only knows which options take a value.

- Short options cluster: ``-sSL`` is ``-s -S -L``. A letter that takes a value takes the rest of
  the cluster (``-XPOST``, ``-nprod``) or else the next argument (``-X POST``).
- ``--name=value`` always carries its value; ``--name value`` only when ``--name`` takes one.
- ``-`` and any word not starting with a dash is positional; so is everything after a bare
  ``--``.
- A value option at the very end, with nothing to take, has the value ``""``.

The cloud and developer tool classifiers (kubectl, terraform, gcloud...) use
:func:`trailguard.classify._tool_common.parse_args` instead: its rules differ on purpose
(``-n=prod`` means ``prod``, Go-style single-dash long flags, unknown gcloud flags taking a
value).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Final, NamedTuple

__all__ = ["DASHDASH", "POSITIONAL", "Option", "iter_options"]

POSITIONAL: Final = ""
"""The name of an :class:`Option` that is a positional argument (its value is the word)."""

DASHDASH: Final = "end-of-options"
"""The name of the :class:`Option` that marks a bare ``--`` (only with ``report_dashdash``). Not
``"--"`` itself: ``--=x``, or a dash inside a short cluster (``-u+x,g-w``), gives an option of
that name."""


class Option(NamedTuple):
    """One option or positional argument, as :func:`iter_options` reports it."""

    name: str
    """``-x`` or ``--name`` (or the long name a short letter maps to); :data:`POSITIONAL` for a
    positional argument; :data:`DASHDASH` for a bare ``--``."""
    value: str | None
    """The option's value, or ``None`` for an option given without one; the word itself for a
    positional argument."""


def iter_options(
    args: Sequence[str],
    *,
    short_value: Collection[str] = "",
    long_value: Collection[str] = frozenset(),
    optional_short: Collection[str] = "",
    short_names: Mapping[str, str] | None = None,
    long_flag_values: bool = True,
    is_positional: Callable[[str], bool] | None = None,
    report_dashdash: bool = False,
) -> Iterator[Option]:
    """The options and positional arguments of ``args`` (without the program name), in order.

    ``short_value``: letters whose option takes a value (``"ehu"`` or a set of letters).
    ``long_value``: long options, with their dashes, that take a value (``--host``).
    ``optional_short``: letters that take a value only when it is attached (mysql ``-psecret``,
    git ``-S<keyid>``); alone they have the value ``None``.
    ``short_names``: the name to report for a short letter (curl ``{"X": "--request"}``);
    unmapped letters are reported as ``-x``.
    ``long_flag_values``: with ``False``, ``--name=value`` for a long option not in
    ``long_value`` reports the value ``None``, as if the ``=value`` were not there.
    ``is_positional``: an argument starting with a dash for which this returns ``True`` is a
    positional argument, not options (chmod's ``-x`` mode).
    ``report_dashdash``: also report a bare ``--`` itself, as ``Option(DASHDASH, None)``, before
    the positional arguments that follow it.
    """
    names = short_names or {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            if report_dashdash:
                yield Option(DASHDASH, None)
            for rest in args[i:]:
                yield Option(POSITIONAL, rest)
            return
        if arg == "-" or not arg.startswith("-"):
            yield Option(POSITIONAL, arg)
            continue
        if is_positional is not None and is_positional(arg):
            yield Option(POSITIONAL, arg)
            continue
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in long_value:
                if not eq:
                    value = args[i] if i < len(args) else ""
                    i += 1
                yield Option(name, value)
            else:
                yield Option(name, value if eq and long_flag_values else None)
            continue
        # a cluster of short options: -sSL, -XPOST, -sSo file
        j = 1
        while j < len(arg):
            letter = arg[j]
            name = names.get(letter, f"-{letter}")
            if letter in short_value:
                value = arg[j + 1 :]
                if not value:
                    value = args[i] if i < len(args) else ""
                    i += 1
                yield Option(name, value)
                break
            if letter in optional_short:
                yield Option(name, arg[j + 1 :] or None)
                break
            yield Option(name, None)
            j += 1
