"""What earlier commands of one Bash call tell about the later ones.

A command is classified on its own by its program's classifier; this module carries the facts
a script sets up for what follows, so ``export AWS_PROFILE=prod && aws …`` is seen under the prod
profile. It follows only what is literally in the script (no variable evaluation):

- exported or assigned variables, and ``terraform workspace select X``;
- files a download just wrote (``curl -o x.sh … && bash x.sh``);
- git aliases and shell aliases defined earlier in the same call;
- text piped into a SQL client from ``echo``/``printf``/``cat <<EOF``;
- the command inside ``docker exec`` / ``kubectl exec`` / a psql ``\\!`` escape;
- the start path of ``find`` for the ``rm {}`` it runs.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace

from trailguard.classify.model import SimpleCommand

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh"})
SQL_CLIENTS = frozenset({"psql", "mysql", "mariadb", "sqlite3", "pgcli", "mycli"})
DOWNLOADERS = re.compile(r"\b(curl|wget)\b")
FIND_FILTERS = frozenset(
    {
        "-name",
        "-iname",
        "-path",
        "-ipath",
        "-regex",
        "-iregex",
        "-newer",
        "-mtime",
        "-mmin",
        "-atime",
        "-size",
        "-user",
        "-group",
        "-type",
        "-empty",
        "-perm",
        "-maxdepth",
    }
)
_EXEC_OPTIONS_WITH_VALUE = frozenset(
    {
        "-u",
        "--user",
        "-w",
        "--workdir",
        "-e",
        "--env",
        "--env-file",
        "-c",
        "--container",
        "-n",
        "--namespace",
        "--context",
        "--kubeconfig",
    }
)


def _split(text: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(text))
    except ValueError:
        return ()


def _inner_exec(command: SimpleCommand) -> tuple[str, ...]:
    """The command after ``docker|podman exec [opts] CONTAINER`` or ``kubectl exec … --``."""
    argv = command.argv
    if command.program in ("docker", "podman", "nerdctl") and argv[1:2] == ("exec",):
        rest = list(argv[2:])
        while rest and rest[0].startswith("-"):
            option = rest.pop(0)
            if option in _EXEC_OPTIONS_WITH_VALUE and "=" not in option and rest:
                rest.pop(0)
        return tuple(rest[1:])  # after the container
    if command.program in ("kubectl", "oc") and "exec" in argv and "--" in argv:
        return argv[argv.index("--") + 1 :]
    return ()


@dataclass
class ScriptState:
    environment: dict[str, str] = field(default_factory=dict)
    downloaded: set[str] = field(default_factory=set)
    git_aliases: dict[str, str] = field(default_factory=dict)
    shell_aliases: dict[str, str] = field(default_factory=dict)
    find_root: str | None = None
    """The start path of the last unfiltered ``find``, for the ``{}`` its -exec runs on."""
    previous: SimpleCommand | None = None

    def observe(self, command: SimpleCommand) -> bool:
        """Take in what a command sets up; True when it does nothing else worth classifying."""
        argv = command.argv
        program = command.program
        assignment_only = not argv and command.env and not command.unresolved
        if program == "export" or (assignment_only and not command.redirects):
            self.environment.update(command.env)
            self.environment.update(
                arg.split("=", 1)  # type: ignore[misc]  # split with maxsplit 1 of "a=b": a pair
                for arg in argv[1:]
                if "=" in arg and not arg.startswith("-")
            )
            return True
        if program == "alias":
            for definition in argv[1:]:
                name, _, value = definition.partition("=")
                if value:
                    self.shell_aliases[name] = value
            return True
        if program == "git" and len(argv) >= 4 and argv[1] == "config":
            key = next((a for a in argv[2:] if not a.startswith("-")), "")
            if key.startswith("alias.") and argv[-1] != key:
                self.git_aliases[key.removeprefix("alias.")] = argv[-1]
        if (
            program in ("terraform", "tofu")
            and argv[1:3]
            in (
                ("workspace", "select"),
                ("workspace", "new"),
            )
            and len(argv) > 3
        ):
            self.environment["TF_WORKSPACE"] = argv[3]
        if program == "find":
            filtered = any(arg in FIND_FILTERS for arg in argv)
            roots = [a for a in argv[1:] if not a.startswith("-")]
            self.find_root = roots[0] if roots and not filtered else None
        return False

    def expand(self, command: SimpleCommand) -> list[SimpleCommand]:
        """The command as it will really run, plus any command it runs inside."""
        argv = command.argv
        env = {**self.environment, **command.env}
        if env != command.env:
            command = replace(command, env=env)
        if command.program in self.shell_aliases:
            expanded = _split(self.shell_aliases[command.program]) + argv[1:]
            command = replace(command, argv=expanded, via=(*command.via, "alias"))
        elif command.program == "git" and len(argv) > 1 and argv[1] in self.git_aliases:
            alias = self.git_aliases[argv[1]]
            if not alias.startswith("!"):
                command = replace(
                    command,
                    argv=("git", *_split(alias), *argv[2:]),
                    via=(*command.via, "git alias"),
                )
        if "find -exec" in command.via and "{}" in command.argv:
            target = self.find_root or "$FIND_MATCH"
            command = replace(command, argv=tuple(target if a == "{}" else a for a in command.argv))
        elif "xargs" in command.via:
            command = replace(command, argv=(*command.argv, "$XARGS_INPUT"))
        if command.program in SQL_CLIENTS and command.stdin is None and command.piped_from:
            fed = self._piped_text()
            if fed is not None:
                command = replace(command, stdin=fed)
        commands = [command]
        inner = _inner_exec(command)
        if inner:
            commands.append(
                SimpleCommand(
                    argv=inner, text=shlex.join(inner), env=env, via=(*command.via, "exec")
                )
            )
        return commands

    def _piped_text(self) -> str | None:
        previous = self.previous
        if previous is None:
            return None
        if previous.program in ("echo", "printf"):
            return " ".join(previous.argv[1:])
        if previous.program == "cat" and previous.stdin is not None:
            return previous.stdin
        return None

    def runs_download(self, command: SimpleCommand) -> bool:
        """A shell or ``source`` running a just-downloaded file or a ``<(curl …)``."""
        if command.program not in SHELLS | {"source", "."} or command.unresolved:
            return False
        return any(
            ("<(" in arg and DOWNLOADERS.search(arg)) or arg.rsplit("/", 1)[-1] in self.downloaded
            for arg in command.argv[1:]
        )
