"""Helpers shared by the developer- and cloud-tool classifiers (kubernetes, terraform, docker...).

Not a classifier itself: it parses option-style argv, spots production-looking names, raises
risk levels and notices secrets given on the command line.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.events import ACCESS_LEVELS, RISK_LEVELS, Access, Operation, Risk
from trailguard.urls import strip_url_credentials

Classifier: TypeAlias = Callable[[SimpleCommand, ClassifyContext], list[Operation]]

RISKS = RISK_LEVELS
MAX_TARGETS = 50
"""At most this many operations for one command naming many targets (``kubectl delete pod a b``)."""


def raise_risk(risk: Risk, steps: int = 1) -> Risk:
    return RISKS[min(RISKS.index(risk) + steps, len(RISKS) - 1)]


def max_risk(*risks: Risk) -> Risk:
    return RISKS[max(RISKS.index(risk) for risk in risks)]


def add_flag(flags: list[str], flag: str) -> None:
    """Append ``flag`` unless it is there already (flags keep their first order)."""
    if flag not in flags:
        flags.append(flag)


def max_access(*accesses: Access) -> Access:
    return ACCESS_LEVELS[max(ACCESS_LEVELS.index(access) for access in accesses)]


_PROD_TOKEN = re.compile(r"(?:prod|production|prd)\d*")
_NOT_PROD_PREFIXES = frozenset({"non", "pre", "not"})


def looks_prod(*values: str | None) -> bool:
    """Whether any value names production: ``prod``, ``production`` or ``prd`` as a word
    (``envs/prod``, ``gke_acme-prod_eu``, ``values.production.yaml``), but not ``preprod``,
    ``non-prod`` or ``products``."""
    for value in values:
        if not value:
            continue
        tokens = [token for token in re.split(r"[^a-z0-9]+", value.lower()) if token]
        for index, token in enumerate(tokens):
            if _PROD_TOKEN.fullmatch(token) and (
                index == 0 or tokens[index - 1] not in _NOT_PROD_PREFIXES
            ):
                return True
    return False


def env_value(command: SimpleCommand, context: ClassifyContext, *names: str) -> str | None:
    """The first of these variables set on the command line, else in the session environment."""
    for source in (command.env, context.env):
        for name in names:
            value = source.get(name)
            if value:
                return value
    return None


@dataclass
class ParsedArgs:
    """Arguments split into positionals and options. Option keys keep their dashes (``-n``,
    ``--namespace``); a flag without a value maps to ``""``."""

    positionals: list[str] = field(default_factory=list)
    options: dict[str, list[str]] = field(default_factory=dict)
    rest: list[str] = field(default_factory=list)
    """Everything after a bare ``--``."""

    def has(self, *names: str) -> bool:
        return any(name in self.options for name in names)

    def get(self, *names: str) -> str | None:
        """The last value given to any of these options (``None`` if none was given)."""
        values = self.all(*names)
        return values[-1] if values else None

    def all(self, *names: str) -> list[str]:
        return [value for name in names for value in self.options.get(name, ())]

    def add(self, name: str, value: str) -> None:
        self.options.setdefault(name, []).append(value)

    def merge(self, other: ParsedArgs) -> ParsedArgs:
        merged = ParsedArgs(
            positionals=[*self.positionals, *other.positionals],
            rest=[*self.rest, *other.rest],
        )
        for source in (self, other):
            for name, values in source.options.items():
                for value in values:
                    merged.add(name, value)
        return merged


def parse_args(
    args: Sequence[str],
    value_flags: Collection[str] = (),
    *,
    go_style: bool = False,
    unknown_long_takes_value: bool = False,
    bool_flags: Collection[str] = (),
) -> ParsedArgs:
    """Split ``args`` the way pflag/argparse would, knowing which flags take a value.

    ``value_flags`` name flags with their dashes (``-n``, ``--namespace``). POSIX short flags
    cluster (``-it``, ``-nprod``, ``-n=prod``). With ``go_style`` (Go's ``flag`` package, as
    terraform uses), ``-name`` and ``--name`` are the same long flag and never cluster; keys
    are stored with one dash. ``unknown_long_takes_value`` makes an unknown ``--flag`` consume
    the next non-option word (gcloud, az), unless it is in ``bool_flags`` or starts ``--no-``.
    """
    parsed = ParsedArgs()
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            parsed.rest = list(args[index:])
            break
        if arg == "-" or not arg.startswith("-") or len(arg) == 1:
            parsed.positionals.append(arg)
            continue
        if go_style or arg.startswith("--"):
            name, equals, value = arg.partition("=")
            if go_style:
                name = "-" + name.lstrip("-")
            if equals:
                parsed.add(name, value)
                continue
            takes_value = name in value_flags or (
                unknown_long_takes_value
                and name not in bool_flags
                and not name.startswith("--no-")
                and index < len(args)
                and not args[index].startswith("-")
            )
            if takes_value and index < len(args):
                parsed.add(name, args[index])
                index += 1
            else:
                parsed.add(name, "")
            continue
        # A POSIX short-flag cluster: -it, -nprod, -n=prod, -n prod.
        letters = arg[1:]
        for position, letter in enumerate(letters):
            name = "-" + letter
            if name in value_flags:
                attached = letters[position + 1 :]
                if attached.startswith("="):
                    attached = attached[1:]
                if attached:
                    parsed.add(name, attached)
                elif index < len(args):
                    parsed.add(name, args[index])
                    index += 1
                else:
                    parsed.add(name, "")
                break
            parsed.add(name, "")
    return parsed


def first_positional(
    args: Sequence[str], value_flags: Collection[str], *, go_style: bool = False
) -> int | None:
    """Index of the first argument that is neither an option nor an option's value."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return index + 1 if index + 1 < len(args) else None
        if not arg.startswith("-") or arg == "-":
            return index
        if go_style or arg.startswith("--"):
            name = ("-" + arg.lstrip("-")) if go_style else arg
            if "=" not in arg and name in value_flags:
                index += 1
        elif len(arg) == 2 and arg in value_flags:
            index += 1
        index += 1
    return None


def flag_is_true(parsed: ParsedArgs, *names: str) -> bool:
    """A boolean flag that is present and not set to false (``-auto-approve=false``)."""
    values = parsed.all(*names)
    return bool(values) and values[-1].lower() not in ("false", "0", "no")


_SECRET_ENV_NAME = re.compile(r"(?i)pass|token|secret|api_?key|auth|credential|pwd")


_URL_USERINFO = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/\s@:'\"]+)(?::(?P<password>[^/\s@'\"]+))?@"
)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"]+")


def strip_userinfo(text: str) -> str:
    """Every URL in ``text`` (a registry, ``pkg @ git+https://user:secret@host/x``) without its
    credentials, for attributes: :func:`trailguard.urls.strip_url_credentials` on each."""
    return _URL_IN_TEXT.sub(lambda match: strip_url_credentials(match[0]), text)


def gives_secrets(command: SimpleCommand, secret_flags: Collection[str] = ()) -> bool:
    """Whether the command line carries a secret: a value of one of ``secret_flags``
    (``--password x``, ``--password=x``, ``-px`` for a one-letter flag), a secret-looking
    environment assignment (``NPM_TOKEN=...``) or a password (or a long token as the user) in a
    URL. Classifiers flag it; the redaction stage replaces the secret before storage."""
    argv = command.argv
    short_flags = [flag for flag in secret_flags if len(flag) == 2 and flag[0] == "-"]
    for index, arg in enumerate(argv[1:], start=1):
        if arg == "--":
            break
        if arg in secret_flags:
            if index + 1 < len(argv):
                return True
            continue
        name, equals, _value = arg.partition("=")
        if equals and name in secret_flags:
            return True
        if not arg.startswith("--") and any(
            arg.startswith(short) and len(arg) > 2 for short in short_flags
        ):
            return True
    if any(_SECRET_ENV_NAME.search(name) and value for name, value in command.env.items()):
        return True
    return any(
        match["password"] or len(match["user"]) >= 20
        for match in _URL_USERINFO.finditer(command.text)
    )


def classifier_error(
    action: str, *, access: Access = "write", risk: Risk = "medium", raw: str | None = None
) -> Operation:
    """What a classifier bug yields instead of an exception: an operation of unknown reach
    (flag ``classifier-error``), so policy still decides."""
    kind = action.split(":", 1)[0]
    return Operation(
        kind=kind, action=action, access=access, risk=risk, flags=["classifier-error"], raw=raw
    )


def make_operation(
    kind: str,
    action: str,
    *,
    access: Access,
    risk: Risk,
    resource: str | None = None,
    flags: Iterable[str] = (),
    attributes: Mapping[str, str | None] | None = None,
    raw: str | None = None,
) -> Operation:
    """An Operation with flags de-duplicated (first occurrence kept) and empty attributes left
    out."""
    return Operation(
        kind=kind,
        action=action,
        resource=resource,
        access=access,
        risk=risk,
        flags=list(dict.fromkeys(flags)),
        attributes={key: value for key, value in (attributes or {}).items() if value},
        raw=raw,
    )


_COMMAND_WORD = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")


def is_command_word(word: str) -> bool:
    """Whether ``word`` can be a subcommand (``apply``, ``port-forward``), not a path, URL or
    value that only sits where a subcommand would."""
    return len(word) <= 64 and _COMMAND_WORD.fullmatch(word) is not None


def camel(word: str) -> str:
    """``port-forward`` → ``PortForward``, ``get_credentials`` → ``GetCredentials``."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_\s]+", word) if part)


def never_raises(function: Classifier) -> Classifier:
    """Wrap a classifier so that an unresolved command, or any bug meeting odd input, yields
    ``[]`` instead of an exception: classification must never break the audit pipeline."""

    @functools.wraps(function)
    def wrapper(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
        if command.unresolved is not None or not command.argv:
            return []
        try:
            return function(command, context)
        except Exception:
            return []

    return wrapper


def verb_access(verb: str) -> Access | None:
    """Access implied by a cloud CLI verb (gcloud, az), or None when the verb is unknown."""
    verb = verb.lower()
    if "iam-policy" in verb or verb in ADMIN_VERBS:
        return "admin"
    if verb in READ_VERBS or verb.startswith(_READ_PREFIXES):
        return "read"
    if verb in DELETE_VERBS or verb.startswith(("delete", "purge")):
        return "delete"
    if verb in WRITE_VERBS or verb.startswith(_WRITE_PREFIXES):
        return "write"
    return None


READ_VERBS = frozenset(
    {
        "list",
        "ls",
        "show",
        "describe",
        "get",
        "read",
        "tail",
        "search",
        "browse",
        "info",
        "version",
        "cat",
        "du",
        "export",
        "check",
        "validate",
        "wait",
        "download",
        "query",
        "logs",
        "log",
        "access",
        "explain",
        "diff",
        "status",
        "history",
        "print-settings",
        "lookup",
        "exists",
        "verify",
        "test-iam-permissions",
        "batch-download",
        "download-batch",
        "list-usages",
    }
)
_READ_PREFIXES = ("list-", "get-", "describe-", "show-", "print-", "check-", "read-", "tail-")
DELETE_VERBS = frozenset(
    {"delete", "rm", "remove", "purge", "destroy", "prune", "delete-batch", "rb", "erase"}
)
WRITE_VERBS = frozenset(
    {
        "create",
        "update",
        "deploy",
        "patch",
        "set",
        "unset",
        "add",
        "start",
        "stop",
        "restart",
        "reset",
        "resize",
        "enable",
        "disable",
        "submit",
        "import",
        "cp",
        "mv",
        "rsync",
        "copy",
        "copy-files",
        "apply",
        "run",
        "publish",
        "move",
        "upgrade",
        "rollback",
        "promote",
        "clone",
        "restore",
        "suspend",
        "resume",
        "scale",
        "deallocate",
        "upload",
        "upload-batch",
        "sync",
        "tag",
        "untag",
        "attach",
        "detach",
        "recover",
        "rotate",
        "renew",
        "swap",
        "failover",
        "execute",
        "trigger",
        "cancel",
        "undelete",
        "generalize",
        "redeploy",
        "reimage",
        "invoke",
        "mb",
        "config",
        "configure",
        "init",
        "build",
        "push",
    }
)
_WRITE_PREFIXES = (
    "add-",
    "remove-",
    "set-",
    "update-",
    "create-",
    "enable-",
    "disable-",
    "attach-",
    "detach-",
    "start-",
    "stop-",
    "upload-",
    "import-",
)
ADMIN_VERBS = frozenset(
    {
        "ssh",
        "scp",
        "connect",
        "login",
        "logout",
        "activate-service-account",
        "revoke",
        "print-access-token",
        "print-identity-token",
        "get-access-token",
        "create-for-rbac",
        "reset-credentials",
        "impersonate",
        "exec",
        "set-policy",
        "delete-policy",
        "assign",
        "grant",
        "reset-password",
        "set-password",
        "get-credentials",
        "configure-docker",
    }
)
