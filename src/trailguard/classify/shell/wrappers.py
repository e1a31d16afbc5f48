"""Wrappers stripped from a command and recorded in ``via`` (``sudo``, ``env``, ``timeout``,
``xargs``...), with the option parsing they need."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Sequence

from trailguard.classify.shell.words import _ASSIGNMENT, _basename, _has_glob, _Word

# --------------------------------------------------------------------------------------------
# option parsing for wrappers


def _options(
    args: Sequence[_Word], with_arg: str, long_with_arg: set[str], *, single: bool = False
) -> tuple[int, set[str], set[str]]:
    """getopt-style scan: (index of the first operand, short flags seen, long options seen).

    ``with_arg``: short options that take an argument; ``long_with_arg``: long ones that take
    one when it is not attached with ``=``. ``single``: look at one option only.
    """
    shorts: set[str] = set()
    longs: set[str] = set()
    i = 0
    while i < len(args):
        a = args[i]
        v = a.value
        if not a.static:
            return i, shorts, longs
        if v == "--":
            return i + 1, shorts, longs
        if not v.startswith("-") or v == "-":
            return i, shorts, longs
        if v.startswith("--"):
            name = v[2:].split("=", 1)[0]
            longs.add(name)
            i += 2 if ("=" not in v and name in long_with_arg) else 1
        else:
            i += 1
            for j, ch in enumerate(v[1:], start=1):
                shorts.add(ch)
                if ch in with_arg:
                    if j == len(v) - 1:
                        i += 1  # the argument is the next word
                    break  # the rest of this word is the argument
        if single:
            return i, shorts, longs
    return i, shorts, longs


def _login_shell(words: Sequence[_Word]) -> bool:
    """``sudo -s``, ``sudo -i``, ``doas -s``, ``su [user]``: a shell that reads its stdin."""
    program = _basename(words[0].value)
    if program in ("su", "runuser"):
        return True  # with -c it was handled as a command string
    if program not in ("sudo", "doas"):
        return False
    return any(
        w.value in ("--shell", "--login")
        or (w.value.startswith("-") and not w.value.startswith("--") and "s" in w.value[1:])
        or (program == "sudo" and w.value.startswith("-") and "i" in w.value[1:2])
        for w in words[1:]
    )


_Strip = Callable[[list[_Word]], tuple[list[_Word], dict[str, str]] | None]


def _assignments(args: list[_Word]) -> tuple[list[_Word], dict[str, str]]:
    env: dict[str, str] = {}
    i = 0
    while i < len(args) and _ASSIGNMENT.match(args[i].value):
        name, value = args[i].value.split("=", 1)
        env[name] = value
        i += 1
    return args[i:], env


def _simple_strip(
    with_arg: str,
    long_with_arg: Iterable[str] = (),
    *,
    refuse: str = "",
    refuse_long: Iterable[str] = (),
    operands: int = 0,
    assignments: bool = False,
) -> _Strip:
    """A wrapper ``prog [options] [operands] command...``; ``refuse``: flags meaning no command."""
    long_set = set(long_with_arg)
    refuse_set = set(refuse_long)

    def strip(args: list[_Word]) -> tuple[list[_Word], dict[str, str]] | None:
        i, shorts, longs = _options(args, with_arg, long_set)
        if shorts & set(refuse) or longs & refuse_set:
            return None
        rest = args[i + operands :] if len(args) >= i + operands else []
        if assignments:
            return _assignments(rest)
        return rest, {}

    return strip


def _strip_env(args: list[_Word]) -> tuple[list[_Word], dict[str, str]] | None:
    i = 0
    while i < len(args):
        a = args[i]
        v = a.value
        if not a.static or not v.startswith("-"):
            break
        if v == "--":
            i += 1
            break
        if v in ("-S", "--split-string") or v.startswith(("-S", "--split-string=")):
            if v in ("-S", "--split-string"):
                if i + 1 >= len(args):
                    return None
                split, i = args[i + 1].value, i + 2
            else:
                split, i = (v.split("=", 1)[1] if v.startswith("--") else v[2:]), i + 1
            try:
                parts = shlex.split(split)
            except ValueError:
                return None
            fake = [_Word(p, args[i - 1].static, _has_glob(p), p) for p in parts]
            return _assignments(fake + list(args[i:]))
        if v in ("-u", "-C", "-P", "--unset", "--chdir"):
            i += 2
        else:
            i += 1
    return _assignments(list(args[i:]))


_PREFIX_WRAPPERS: dict[str, _Strip] = {
    "sudo": _simple_strip(
        "CDgpRrTtUu",
        {
            "user",
            "group",
            "prompt",
            "close-from",
            "role",
            "type",
            "other-user",
            "chdir",
            "command-timeout",
            "host",
            "chroot",
        },
        refuse="ehlVvK",
        refuse_long={"edit", "help", "list", "version", "validate", "remove-timestamp"},
        assignments=True,
    ),
    "doas": _simple_strip("uC", refuse="CLs"),
    "env": _strip_env,
    "time": _simple_strip("fo", {"format", "output"}),
    "nohup": _simple_strip(""),
    "timeout": _simple_strip("sk", {"signal", "kill-after"}, operands=1),
    "nice": _simple_strip("n", {"adjustment"}),
    "ionice": _simple_strip(
        "cnpPu",
        {"class", "classdata", "pid", "pgid", "uid"},
        refuse="pPu",
        refuse_long={"pid", "pgid", "uid"},
    ),
    "command": _simple_strip("", refuse="vV"),
    "exec": _simple_strip("a"),
    "builtin": _simple_strip(""),
    "stdbuf": _simple_strip("ioe", {"input", "output", "error"}),
    "xargs": _simple_strip(
        "adEILnPs",
        {"arg-file", "delimiter", "max-args", "max-procs", "max-chars", "process-slot-var"},
    ),
    "setsid": _simple_strip(""),
    "chroot": _simple_strip("", {"userspec", "groups"}, operands=1),
    "busybox": _simple_strip(""),
    "coproc": _simple_strip(""),
}
"""Wrappers ``prog [options] command...``: the function returns (command words, env) or None."""
