"""File reads, writes and deletes: shell file commands, output redirects, Claude Code file tools.

Resources are absolute paths: relative paths resolve against ``context.cwd`` (or the project
root), ``~`` and ``$HOME`` expand with ``context.home``. A path that depends on any other variable
or on command substitution stays as written, with the flag ``dynamic-path``; a glob stays a glob
(flag ``glob``).

Risk, before the special cases: reads low, writes low, deletes medium. Leaving the project root
(outside temporary directories) raises writes to medium and deletes to high (flag
``outside-project``); system directories, sensitive files (credentials, keys, ``.env``), shell
startup files, git hooks and the agent's own settings raise writes and deletes to high. Recursive
deletes of ``/``, the home directory, the project root or anything above them are critical
(flag ``catastrophic-delete``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

from trailguard.classify._tool_common import add_flag, classifier_error, max_risk
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.classify.options import POSITIONAL, iter_options
from trailguard.classify.script import FIND_FILTERS
from trailguard.events import Access, Operation, Risk

__all__ = [
    "PROGRAMS",
    "classify",
    "classify_redirects",
    "classify_tool",
    "resolve_path",
    "sensitive_class",
]

PROGRAMS: frozenset[str] = frozenset(
    {
        "rm", "rmdir", "mv", "cp", "truncate", "chmod", "chown", "tee", "dd", "shred", "ln",
        "touch", "mkdir", "install", "unlink", "sed", "find",
    }
)  # fmt: skip


_TEMP_DIRS = ("/tmp", "/var/tmp", "/private/tmp", "/private/var/folders", "/dev/shm")  # noqa: S108
_SYSTEM_DIRS = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/proc",
    "/root", "/sbin", "/srv", "/sys", "/usr", "/var", "/System", "/Library", "/Applications",
    "/private/etc", "/private/var",
)  # fmt: skip
_TOP_LEVEL_DIRS = frozenset({"/", "/home", "/Users", *_SYSTEM_DIRS})
_NULL_TARGETS = frozenset(
    {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/stdin", "-"}
)

# read risk of each sensitive class (writes and deletes of any of them are high)
_SENSITIVE_READ_RISK: dict[str, Risk] = {
    "dotenv": "medium",
    "ssh-key": "high",
    "private-key": "high",
    "cloud-credentials": "high",
    "kubeconfig": "high",
    "docker-config": "high",
    "registry-credentials": "medium",
    "netrc": "high",
    "git-credentials": "high",
    "gpg-key": "high",
    "cli-credentials": "high",
    "system-auth": "high",
}
_DEFAULT_RISK: dict[Access, Risk] = {
    "read": "low",
    "write": "low",
    "delete": "medium",
    "admin": "low",
}
_DOTENV_TEMPLATES = frozenset({"example", "sample", "template", "dist", "defaults", "schema"})


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------


def resolve_path(path: str, context: ClassifyContext) -> tuple[str, list[str]]:
    """The absolute, normalised form of a path argument, and the flags it earns
    (``dynamic-path``, ``glob``, ``relative-path`` when no directory is known)."""
    flags: list[str] = []
    home = (context.home.rstrip("/") or "/") if context.home else None
    resolved = path
    if home is not None:
        for prefix in ("$HOME", "${HOME}"):
            if resolved == prefix or resolved.startswith(prefix + "/"):
                resolved = home + resolved[len(prefix) :]
                break
    if resolved == "~" or resolved.startswith("~/"):
        if home is None:
            return path, ["dynamic-path"]
        resolved = home + resolved[1:]
    elif resolved.startswith("~"):
        return path, ["dynamic-path"]  # ~user
    if "$" in resolved or "`" in resolved:
        return path, ["dynamic-path"]
    if any(ch in resolved for ch in "*?["):
        flags.append("glob")
    if not resolved.startswith("/"):
        base = context.cwd or context.project_root
        if base is None:
            flags.append("relative-path")
            return posixpath.normpath(resolved), flags
        resolved = posixpath.join(base, resolved)
    resolved = posixpath.normpath(resolved)
    if resolved.startswith("//"):
        resolved = "/" + resolved.lstrip("/")
    return resolved, flags


def _is_under(path: str, directory: str) -> bool:
    directory = directory.rstrip("/") or "/"
    return path == directory or path.startswith(directory + "/") or directory == "/"


def sensitive_class(path: str, context: ClassifyContext | None = None) -> str | None:
    """The kind of secret a path holds (``ssh-key``, ``cloud-credentials``, ``dotenv``...),
    or None. Works on resolved paths and on unresolved text (``~/.ssh/x``, ``$HOME/.aws/...``)."""
    if context is not None and context.home:
        home = context.home.rstrip("/")
        if path == "~" or path.startswith("~/"):
            path = home + path[1:]
    text = "/" + path.lstrip("/") if not path.startswith(("~", "$")) else path
    base = posixpath.basename(text.rstrip("/"))
    lower = base.lower()
    if lower in (".env", ".envrc") or (
        lower.startswith(".env.") and lower[5:] not in _DOTENV_TEMPLATES
    ):
        return "dotenv"
    if lower.startswith(".env") and ("*" in lower or "?" in lower):
        return "dotenv"
    if lower.endswith(".pub") or lower in ("known_hosts", "known_hosts.old"):
        return None  # public keys and host fingerprints are not secrets
    if "/.ssh/" in text or text.endswith("/.ssh") or re.match(r"^id_(rsa|dsa|ecdsa|ed25519)", base):
        return "ssh-key"
    if (
        text.endswith(("/.aws/credentials", "/.aws/config", "/.config/gcloud", "/.azure"))
        or "/.config/gcloud/" in text
        or "/.azure/" in text
        or "/.aws/sso/cache/" in text
        or lower == "application_default_credentials.json"
    ):
        return "cloud-credentials"
    if text.endswith("/.kube/config") or lower == "kubeconfig":
        return "kubeconfig"
    if text.endswith("/.docker/config.json"):
        return "docker-config"
    if lower in (".npmrc", ".pypirc", ".yarnrc.yml") or text.endswith("/.gem/credentials"):
        return "registry-credentials"
    if lower in (".netrc", "_netrc"):
        return "netrc"
    if lower == ".git-credentials":
        return "git-credentials"
    if "/.gnupg/" in text or text.endswith("/.gnupg"):
        return "gpg-key"
    if text.endswith("/.config/gh/hosts.yml"):
        return "cli-credentials"
    if text in ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/master.passwd") or (
        text.startswith("/etc/sudoers")
    ):
        return "system-auth"
    if lower.endswith((".pem", ".key", ".p12", ".pfx", ".jks", ".keystore")) and not (
        lower.endswith(".pub.pem")
    ):
        return "private-key"
    return None


def _persistence_class(path: str, context: ClassifyContext) -> str | None:
    """Files whose change runs code later or loosens the agent's own limits."""
    base = posixpath.basename(path)
    if base in (
        ".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshrc", ".zprofile", ".zshenv",
        ".zlogin", ".bash_logout",
    ) or path.endswith("/.config/fish/config.fish"):  # fmt: skip
        return "shell-startup"
    if "/.git/hooks/" in path:
        return "git-hook"
    if re.search(r"/\.claude/settings(\.local)?\.json$", path) or base == ".mcp.json":
        return "agent-config"
    if path.startswith(("/etc/cron", "/var/spool/cron")) or "/LaunchAgents/" in path:
        return "scheduled-task"
    return None


_MANAGED_SETTINGS_DIRS = ("/etc/claude-code", "/Library/Application Support/ClaudeCode")


def is_hook_settings(path: str) -> bool:
    """Whether ``path`` is (or holds) a Claude Code settings file that can carry hooks or turn
    them off: ``.claude/settings.json`` and ``settings.local.json`` of a project or of
    ``~/.claude``, the ``.claude`` directory itself, and the managed settings."""
    if re.search(r"(^|/)\.claude(/settings(\.local)?\.json)?/?$", path):
        return True
    return any(_is_under(path, d) and d != "/" for d in _MANAGED_SETTINGS_DIRS)


def _path_facts(
    access: Access,
    resolved: str,
    context: ClassifyContext,
    flags: list[str],
    start: Risk | None = None,
) -> tuple[Risk, dict[str, str]]:
    """The risk of touching a path with this access (from ``start``, else the access's default),
    and the attributes and flags it earns."""
    attributes: dict[str, str] = {}
    risk: Risk = start or _DEFAULT_RISK[access]
    changes = access != "read"
    kind = sensitive_class(resolved, context)
    if kind is not None:
        add_flag(flags, "sensitive")
        attributes["sensitive"] = kind
        risk = max_risk(risk, "high" if changes else _SENSITIVE_READ_RISK.get(kind, "medium"))
    if changes and is_hook_settings(resolved):
        add_flag(flags, "hook-settings")
        risk = max_risk(risk, "high")
    if "dynamic-path" in flags or not resolved.startswith("/"):
        return risk, attributes
    if changes:
        persistence = _persistence_class(resolved, context)
        if persistence is not None:
            add_flag(flags, persistence)
            risk = max_risk(risk, "high")
    in_temp = any(_is_under(resolved, d) for d in _TEMP_DIRS)
    in_project = context.project_root is None or _is_under(resolved, context.project_root)
    in_system = any(_is_under(resolved, d) for d in _SYSTEM_DIRS)
    project_inside_system = context.project_root and _is_under(resolved, context.project_root)
    if changes and in_system and not in_temp and not project_inside_system:
        add_flag(flags, "system-path")
        risk = max_risk(risk, "high")
    if not in_project and not in_temp:
        add_flag(flags, "outside-project")
        if access in ("write", "admin"):
            risk = max_risk(risk, "medium")
        elif access == "delete":
            risk = max_risk(risk, "high")
    return risk, attributes


def _file_op(
    action: str,
    access: Access,
    path: str,
    context: ClassifyContext,
    *,
    raw: str | None,
    flags: list[str] | None = None,
    attributes: dict[str, str] | None = None,
    base_risk: Risk = "low",
    via: tuple[str, ...] = (),
    start_risk: Risk | None = None,
) -> Operation:
    resolved, path_flags = resolve_path(path, context)
    all_flags = [*path_flags]
    for flag in flags or []:
        add_flag(all_flags, flag)
    risk, path_attributes = _path_facts(access, resolved, context, all_flags, start_risk)
    if "sudo" in via or "doas" in via:
        add_flag(all_flags, "sudo")
    return Operation(
        kind="file",
        action=action,
        resource=resolved,
        access=access,
        risk=max_risk(risk, base_risk),
        flags=all_flags,
        attributes={**(attributes or {}), **path_attributes},
        raw=raw,
    )


# ---------------------------------------------------------------------------------------------
# Option parsing
# ---------------------------------------------------------------------------------------------


_MODE_ARG = re.compile(r"-[rwxXstugo]+(?:[,+=-][rwxXstugo]*)*")
_MODE_OPTIONS = re.compile(r"-[Rcfv]+")


def _is_mode(arg: str) -> bool:
    """chmod -x file: a mode, not an option."""
    return _MODE_ARG.fullmatch(arg) is not None and _MODE_OPTIONS.fullmatch(arg) is None


def _parse(
    argv: tuple[str, ...],
    *,
    short_value: str = "",
    long_value: frozenset[str] = frozenset(),
    mode_like: bool = False,
) -> tuple[set[str], dict[str, str], list[str]]:
    """(flags set, {option: value}, positionals) for GNU-style options. Short flags come back
    as "-x", long ones as "--name" (values after "=" go to the dict)."""
    flags: set[str] = set()
    values: dict[str, str] = {}
    positionals: list[str] = []
    for name, value in iter_options(
        argv[1:],
        short_value=short_value,
        long_value=long_value,
        is_positional=_is_mode if mode_like else None,
    ):
        if name == POSITIONAL:
            positionals.append(value or "")
        elif value is None:
            flags.add(name)
        else:
            values[name] = value
    return flags, values, positionals


def _is_ignored_target(target: str) -> bool:
    return (
        target in _NULL_TARGETS
        or target.startswith(("/dev/fd/", "&", "/proc/self/fd/"))
        or target.isdigit()
    )


# ---------------------------------------------------------------------------------------------
# rm and friends
# ---------------------------------------------------------------------------------------------

_CATASTROPHIC_TEXT = frozenset(
    {"/", "/*", "~", "~/", "~/*", "$HOME", "${HOME}", "$HOME/", "${HOME}/", "$HOME/*",
     "${HOME}/*", ".", "./", "./*", ".*"}
)  # fmt: skip


def _is_catastrophic(arg: str, context: ClassifyContext) -> bool:
    """Whether a recursive delete of ``arg`` would take out the system, the home directory, the
    project or a directory above them."""
    if arg in _CATASTROPHIC_TEXT or re.fullmatch(r"/+\*?", arg):
        return True
    target = arg
    if target.endswith("/*"):
        target = target[:-2] or "/"
    elif target == "*":
        target = "."
    resolved, flags = resolve_path(target, context)
    if "dynamic-path" in flags:
        return False
    if not resolved.startswith("/"):
        return resolved == ".." or resolved.startswith("../")  # above an unknown directory
    if resolved in _TOP_LEVEL_DIRS:
        return True
    protected = [d for d in (context.home, context.project_root) if d]
    if re.fullmatch(r"/(home|Users)/[^/]+", resolved):
        return True
    return any(_is_under(d.rstrip("/") or "/", resolved) for d in protected)


def _rm(command: SimpleCommand, context: ClassifyContext, raw: str) -> list[Operation]:
    flags, _values, targets = _parse(command.argv)
    recursive = bool(flags & {"-r", "-R", "--recursive"})
    force = bool(flags & {"-f", "--force"})
    no_preserve = "--no-preserve-root" in flags
    common: list[str] = []
    if recursive:
        common.append("recursive")
    if force:
        common.append("force")
    operations = []
    for target in targets:
        op_flags = list(common)
        base: Risk = "medium"
        if no_preserve:
            op_flags.append("no-preserve-root")
        if no_preserve or (recursive and _is_catastrophic(target, context)):
            op_flags.append("catastrophic-delete")
            base = "critical"
        elif recursive and ("$" in target or "`" in target):
            base = "high"  # rm -rf "$DIR/" with DIR unset is rm -rf /
        operations.append(
            _file_op(
                "file:Delete",
                "delete",
                target,
                context,
                raw=raw,
                flags=op_flags,
                attributes={"program": "rm"},
                base_risk=base,
                via=command.via,
            )
        )
    return operations


def _simple_delete(
    command: SimpleCommand, context: ClassifyContext, raw: str, base: Risk
) -> list[Operation]:
    program = command.program
    short_value = "ns" if program == "shred" else ""
    long_value = frozenset({"--iterations", "--size", "--random-source"})
    flags, _values, targets = _parse(command.argv, short_value=short_value, long_value=long_value)
    extra = ["shred"] if program == "shred" else []
    if program == "rmdir" and flags & {"-p", "--parents"}:
        extra.append("parents")
    return [
        _file_op(
            "file:Delete",
            "delete",
            target,
            context,
            raw=raw,
            flags=extra,
            attributes={"program": program},
            base_risk=base,
            via=command.via,
            start_risk=base,
        )
        for target in targets
    ]


# ---------------------------------------------------------------------------------------------
# mv, cp, ln, install
# ---------------------------------------------------------------------------------------------


def _sources_and_destination(
    values: dict[str, str], positionals: list[str]
) -> tuple[list[str], str | None]:
    target_dir = values.get("-t") or values.get("--target-directory")
    if target_dir is not None:
        return positionals, target_dir
    if len(positionals) < 2:
        return positionals, None
    return positionals[:-1], positionals[-1]


def _mv(command: SimpleCommand, context: ClassifyContext, raw: str) -> list[Operation]:
    _flags, values, positionals = _parse(
        command.argv,
        short_value="tS",
        long_value=frozenset({"--target-directory", "--suffix"}),
    )
    sources, destination = _sources_and_destination(values, positionals)
    if destination is None:
        return []
    dest_resolved, dest_flags = resolve_path(destination, context)
    dest_op_flags = list(dest_flags)
    dest_risk, dest_attributes = _path_facts("write", dest_resolved, context, dest_op_flags)
    operations = []
    for source in sources:
        op = _file_op(
            "file:Move",
            "write",
            source,
            context,
            raw=raw,
            attributes={"program": "mv", "destination": dest_resolved},
            base_risk=dest_risk,
            via=command.via,
        )
        if dest_attributes or dest_op_flags:
            merged_flags = list(op.flags)
            for flag in dest_op_flags:
                add_flag(merged_flags, flag)
            attributes = dict(op.attributes)
            if "sensitive" in dest_attributes:
                attributes.setdefault("sensitive", dest_attributes["sensitive"])
            op = op.model_copy(update={"flags": merged_flags, "attributes": attributes})
        operations.append(op)
    return operations


def _cp(command: SimpleCommand, context: ClassifyContext, raw: str) -> list[Operation]:
    flags, values, positionals = _parse(
        command.argv,
        short_value="tS",
        long_value=frozenset({"--target-directory", "--suffix"}),
    )
    sources, destination = _sources_and_destination(values, positionals)
    if destination is None:
        return []
    recursive = bool(flags & {"-r", "-R", "-a", "--recursive", "--archive"})
    extra = ["recursive"] if recursive else []
    operations = [
        _file_op(
            "file:Read",
            "read",
            source,
            context,
            raw=raw,
            flags=extra,
            attributes={"program": "cp"},
            via=command.via,
        )
        for source in sources
    ]
    resolved_sources = [resolve_path(s, context)[0] for s in sources]
    operations.append(
        _file_op(
            "file:Write",
            "write",
            destination,
            context,
            raw=raw,
            flags=extra,
            attributes={"program": "cp", "source": ",".join(resolved_sources)},
            via=command.via,
        )
    )
    return operations


def _ln(command: SimpleCommand, context: ClassifyContext, raw: str) -> list[Operation]:
    flags, values, positionals = _parse(
        command.argv,
        short_value="tS",
        long_value=frozenset({"--target-directory", "--suffix"}),
    )
    extra = []
    if flags & {"-s", "--symbolic"}:
        extra.append("symlink")
    if flags & {"-f", "--force"}:
        extra.append("force")
    if not positionals:
        return []
    target_dir = values.get("-t") or values.get("--target-directory")
    if target_dir is not None:
        pairs = [(t, posixpath.join(target_dir, posixpath.basename(t))) for t in positionals]
    elif len(positionals) == 1:
        pairs = [(positionals[0], posixpath.basename(positionals[0].rstrip("/")))]
    else:
        pairs = [(t, positionals[-1]) for t in positionals[:-1]]
    operations = []
    for target, link in pairs:
        op = _file_op(
            "file:Write",
            "write",
            link,
            context,
            raw=raw,
            flags=extra,
            attributes={"program": "ln", "target": target},
            via=command.via,
        )
        target_kind = sensitive_class(resolve_path(target, context)[0], context)
        if target_kind is not None and "sensitive" not in op.flags:
            op = op.model_copy(
                update={
                    "flags": [*op.flags, "sensitive"],
                    "attributes": {**op.attributes, "sensitive": target_kind},
                    "risk": max_risk(op.risk, "high"),
                }
            )
        operations.append(op)
    return operations


def _install(command: SimpleCommand, context: ClassifyContext, raw: str) -> list[Operation]:
    flags, values, positionals = _parse(
        command.argv,
        short_value="mogtS",
        long_value=frozenset(
            {"--mode", "--owner", "--group", "--target-directory", "--suffix", "--strip-program"}
        ),
    )
    if flags & {"-d", "--directory"}:
        destinations = positionals
    else:
        _sources, destination = _sources_and_destination(values, positionals)
        destinations = [destination] if destination is not None else []
    mode = values.get("-m") or values.get("--mode")
    attributes = {"program": "install"}
    if mode:
        attributes["mode"] = mode
    return [
        _file_op(
            "file:Write",
            "write",
            d,
            context,
            raw=raw,
            attributes=attributes,
            via=command.via,
        )
        for d in destinations
    ]


# ---------------------------------------------------------------------------------------------
# chmod, chown
# ---------------------------------------------------------------------------------------------


def _mode_flags(mode: str) -> list[str]:
    flags = []
    if re.fullmatch(r"[0-7]{3,4}", mode):
        digits = mode[-3:]
        if int(digits[-1]) & 2:
            flags.append("world-writable")
        if len(mode) == 4 and int(mode[0]) & 6:
            flags.append("setuid")
    else:
        for clause in mode.split(","):
            match = re.fullmatch(r"([ugoa]*)([-+=])([rwxXst]*)", clause)
            if not match:
                continue
            who, op, perms = match.groups()
            if op != "-" and "w" in perms and ("o" in who or "a" in who):
                flags.append("world-writable")
            if op != "-" and "s" in perms:
                flags.append("setuid")
    return flags


def _chmod(command: SimpleCommand, context: ClassifyContext, raw: str) -> list[Operation]:
    program = command.program
    flags, values, positionals = _parse(
        command.argv,
        long_value=frozenset({"--reference"}),
        mode_like=program == "chmod",
    )
    if "--reference" not in values:
        if not positionals:
            return []
        setting, targets = positionals[0], positionals[1:]
    else:
        setting, targets = f"reference={values['--reference']}", positionals
    recursive = bool(flags & {"-R", "--recursive"})
    extra: list[str] = ["recursive"] if recursive else []
    attributes = {"program": program}
    if program == "chmod":
        attributes["mode"] = setting
        extra.extend(_mode_flags(setting))
        action = "file:Chmod"
    else:
        attributes["owner"] = setting
        action = "file:Chown"
    base: Risk = "low"
    if recursive or "world-writable" in extra or program == "chown":
        base = "medium"
    if (recursive and "world-writable" in extra) or "setuid" in extra:
        base = "high"
    return [
        _file_op(
            action,
            "admin",
            target,
            context,
            raw=raw,
            flags=extra,
            attributes=attributes,
            base_risk=base,
            via=command.via,
        )
        for target in targets
    ]


# ---------------------------------------------------------------------------------------------
# Writers: tee, touch, mkdir, truncate, dd, sed -i
# ---------------------------------------------------------------------------------------------


def _writes(
    command: SimpleCommand,
    context: ClassifyContext,
    raw: str,
    *,
    short_value: str = "",
    long_value: frozenset[str] = frozenset(),
    base: Risk = "low",
    extra_flags: dict[str, str] | None = None,
) -> list[Operation]:
    flags, values, targets = _parse(command.argv, short_value=short_value, long_value=long_value)
    extra = [name for option, name in (extra_flags or {}).items() if option in flags]
    attributes = {"program": command.program}
    if command.program == "truncate":
        size = values.get("-s") or values.get("--size")
        if size is not None:
            attributes["size"] = size
            if size.strip() in ("0", "-0"):
                extra.append("empties-file")
    return [
        _file_op(
            "file:Write",
            "write",
            target,
            context,
            raw=raw,
            flags=extra,
            attributes=attributes,
            base_risk=base,
            via=command.via,
        )
        for target in targets
        if not _is_ignored_target(target)
    ]


_BLOCK_DEVICE_RE = re.compile(r"^/dev/(sd|hd|vd|xvd|nvme|mmcblk|disk|rdisk|md|dm-|mapper/|loop)")


def _dd(command: SimpleCommand, context: ClassifyContext, raw: str) -> list[Operation]:
    operations = []
    for arg in command.argv[1:]:
        key, eq, value = arg.partition("=")
        if not eq or not value:
            continue
        if key == "of" and not _is_ignored_target(value):
            if _BLOCK_DEVICE_RE.match(value):
                operations.append(
                    Operation(
                        kind="file",
                        action="file:Write",
                        resource=value,
                        access="delete",
                        risk="critical",
                        flags=["device-write", "catastrophic-delete"],
                        attributes={"program": "dd"},
                        raw=raw,
                    )
                )
            else:
                operations.append(
                    _file_op(
                        "file:Write",
                        "write",
                        value,
                        context,
                        raw=raw,
                        attributes={"program": "dd"},
                        via=command.via,
                    )
                )
        elif key == "if" and not value.startswith("/dev/"):
            operations.append(
                _file_op(
                    "file:Read",
                    "read",
                    value,
                    context,
                    raw=raw,
                    attributes={"program": "dd"},
                    via=command.via,
                )
            )
    return operations


_BSD_SED_SUFFIX = re.compile(r"\.[\w.~-]{1,10}")


def _sed(command: SimpleCommand, context: ClassifyContext, raw: str) -> list[Operation]:
    in_place = False
    has_script_option = False
    positionals: list[str] = []
    bare_in_place = False
    for name, value in iter_options(
        command.argv[1:],
        short_value="efl",
        long_value=frozenset({"--expression", "--file", "--line-length"}),
        optional_short="i",  # GNU -iSUFFIX: the rest of the cluster is the suffix
        report_dashdash=True,
    ):
        after_bare_in_place, bare_in_place = bare_in_place, False
        if name == POSITIONAL:
            word = value or ""
            # BSD sed: -i '' or -i .bak take the backup suffix as their own argument
            if not (after_bare_in_place and (word == "" or _BSD_SED_SUFFIX.fullmatch(word))):
                positionals.append(word)
        elif name in ("-i", "--in-place"):
            in_place = True
            bare_in_place = name == "-i" and value is None
        elif name in ("-e", "-f", "--expression", "--file"):
            has_script_option = True
    if not in_place:
        return []
    files = positionals if has_script_option else positionals[1:]
    return [
        _file_op(
            "file:Write",
            "write",
            f,
            context,
            raw=raw,
            attributes={"program": "sed", "edit": "sed -i"},
            via=command.via,
        )
        for f in files
    ]


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def classify(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    """Operations for the file commands in PROGRAMS (one per path touched)."""
    raw = command.text
    try:
        program = command.program
        if program == "rm":
            return _rm(command, context, raw)
        if program == "rmdir":
            return _simple_delete(command, context, raw, "low")
        if program == "unlink":
            return _simple_delete(command, context, raw, "medium")
        if program == "shred":
            return _simple_delete(command, context, raw, "high")
        if program == "mv":
            return _mv(command, context, raw)
        if program == "cp":
            return _cp(command, context, raw)
        if program == "ln":
            return _ln(command, context, raw)
        if program == "install":
            return _install(command, context, raw)
        if program in ("chmod", "chown"):
            return _chmod(command, context, raw)
        if program == "tee":
            return _writes(
                command,
                context,
                raw,
                long_value=frozenset(),
                extra_flags={"-a": "append", "--append": "append"},
            )
        if program == "touch":
            return _writes(
                command,
                context,
                raw,
                short_value="drt",
                long_value=frozenset({"--date", "--reference", "--time"}),
            )
        if program == "mkdir":
            return _writes(
                command,
                context,
                raw,
                short_value="m",
                long_value=frozenset({"--mode", "--context"}),
                extra_flags={"-p": "parents", "--parents": "parents"},
            )
        if program == "truncate":
            return _writes(
                command,
                context,
                raw,
                short_value="sr",
                long_value=frozenset({"--size", "--reference"}),
                base="medium",
            )
        if program == "dd":
            return _dd(command, context, raw)
        if program == "sed":
            return _sed(command, context, raw)
        if program == "find":
            return _find_delete(command, context, raw)
        return []
    except Exception:  # a classifier must never break the hook
        return [_error_op(raw)]


def _find_delete(command: SimpleCommand, context: ClassifyContext, raw: str) -> list[Operation]:
    """``find ... -delete``: a recursive delete, catastrophic when nothing narrows it and it
    starts at the root, the home or the project. (``-exec`` commands were parsed out by the
    shell walker as commands of their own.)"""
    if "-delete" not in command.argv:
        return []
    target = next((a for a in command.argv[1:] if not a.startswith("-")), ".")
    everything = {"/", "~", "$HOME", ".", context.home, context.project_root}
    filtered = any(arg in FIND_FILTERS for arg in command.argv)
    catastrophic = not filtered and (
        target.rstrip("/") in {t.rstrip("/") for t in everything if t} or target == "/"
    )
    return [
        Operation(
            kind="file",
            action="file:Delete",
            resource=target,
            access="delete",
            risk="critical" if catastrophic else "high",
            flags=["recursive", "catastrophic-delete"] if catastrophic else ["recursive"],
            raw=raw,
        )
    ]


_WRITE_REDIRECT_RE = re.compile(r"^\d*(>|>>|>\||&>|&>>|>&)$")


def classify_redirects(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    """``file:Write`` for every output redirect of any command (``>``, ``>>``, ``&>``, ``>|``,
    ``2>``...), except to /dev/null, /dev/stdout, /dev/stderr and file descriptors. Input
    redirects (``<``) of sensitive files become ``file:Read``."""
    try:
        operations = []
        for redirect in command.redirects:
            operator, target = redirect.operator, redirect.target
            if _WRITE_REDIRECT_RE.match(operator):
                if _is_ignored_target(target) or (operator.endswith(">&") and target.isdigit()):
                    continue
                flags = []
                if target.startswith(("/dev/tcp/", "/dev/udp/")):
                    operations.append(
                        Operation(
                            kind="file",
                            action="file:Write",
                            resource=target,
                            access="write",
                            risk="high",
                            flags=["network-redirect"],
                            attributes={"redirect": operator},
                            raw=command.text,
                        )
                    )
                    continue
                if operator.endswith(">>"):
                    flags.append("append")
                if operator.endswith(">|"):
                    flags.append("clobber")
                operations.append(
                    _file_op(
                        "file:Write",
                        "write",
                        target,
                        context,
                        raw=command.text,
                        flags=flags,
                        attributes={"redirect": operator},
                        via=command.via,
                    )
                )
            elif re.fullmatch(r"\d*<", operator) and not _is_ignored_target(target):
                op = _file_op(
                    "file:Read",
                    "read",
                    target,
                    context,
                    raw=command.text,
                    attributes={"redirect": operator},
                    via=command.via,
                )
                if "sensitive" in op.flags:
                    operations.append(op)
        return operations
    except Exception:
        return [_error_op(command.text)]


def classify_tool(
    tool: str, tool_input: Mapping[str, Any], context: ClassifyContext
) -> list[Operation]:
    """Claude Code's file tools: Write, Edit, MultiEdit, NotebookEdit, Read, Glob, Grep."""
    try:
        return _classify_tool(tool, tool_input, context)
    except Exception:
        return [_error_op(None)]


def _error_op(raw: str | None) -> Operation:
    """What a classifier bug yields: a write of unknown reach, so policy still decides."""
    return classifier_error("file:Write", raw=raw)


def _classify_tool(
    tool: str, tool_input: Mapping[str, Any], context: ClassifyContext
) -> list[Operation]:
    def text(key: str) -> str | None:
        value = tool_input.get(key)
        return value if isinstance(value, str) and value else None

    attributes: dict[str, str] = {"tool": tool}
    if tool in ("Write", "Edit", "MultiEdit"):
        path = text("file_path")
        if path is None:
            return []
        if tool == "Write":
            content = tool_input.get("content")
            if isinstance(content, str):
                attributes["bytes"] = str(len(content.encode()))
        else:
            attributes["edit"] = "multi" if tool == "MultiEdit" else "replace"
            if tool == "MultiEdit" and isinstance(tool_input.get("edits"), list):
                attributes["edits"] = str(len(tool_input["edits"]))
            if tool_input.get("replace_all") is True:
                attributes["edit"] = "replace_all"
        return [_file_op("file:Write", "write", path, context, raw=path, attributes=attributes)]
    if tool == "NotebookEdit":
        path = text("notebook_path") or text("file_path")
        if path is None:
            return []
        mode = text("edit_mode") or "replace"
        attributes["edit"] = mode
        if text("cell_id"):
            attributes["cell"] = str(tool_input["cell_id"])
        return [_file_op("file:Write", "write", path, context, raw=path, attributes=attributes)]
    if tool == "Read":
        path = text("file_path")
        if path is None:
            return []
        return [_file_op("file:Read", "read", path, context, raw=path, attributes=attributes)]
    if tool == "Glob":
        pattern = text("pattern")
        if pattern is None:
            return []
        directory = text("path")
        target = pattern
        if directory is not None and not pattern.startswith(("/", "~")):
            target = posixpath.join(directory, pattern)
        attributes["pattern"] = pattern
        op = _file_op("file:List", "read", target, context, raw=pattern, attributes=attributes)
        return [op.model_copy(update={"risk": "low"})]  # names only, never contents
    if tool == "Grep":
        pattern = text("pattern")
        directory = text("path") or "."
        attributes["pattern"] = pattern or ""
        glob = text("glob")
        if glob:
            attributes["glob"] = glob
        op = _file_op("file:Search", "read", directory, context, raw=pattern, attributes=attributes)
        if glob and "sensitive" not in op.flags:
            kind = sensitive_class(glob, context)
            if kind is not None:
                op = op.model_copy(
                    update={
                        "flags": [*op.flags, "sensitive"],
                        "attributes": {**op.attributes, "sensitive": kind},
                        "risk": max_risk(op.risk, _SENSITIVE_READ_RISK.get(kind, "medium")),
                    }
                )
        return [op]
    return []


READ_PROGRAMS = frozenset(
    {
        "cat",
        "tac",
        "head",
        "tail",
        "less",
        "more",
        "grep",
        "egrep",
        "fgrep",
        "rg",
        "ag",
        "strings",
        "xxd",
        "od",
        "hexdump",
        "base64",
        "awk",
        "sed",
        "jq",
        "yq",
        "diff",
        "cmp",
        "nl",
        "sort",
        "uniq",
        "wc",
        "cut",
        "tr",
        "source",
        ".",
        "vim",
        "vi",
        "nano",
        "view",
        "bat",
        "openssl",
        "gpg",
        "scp",
        "rsync",
        "tar",
        "zip",
        "gzip",
        "md5sum",
        "sha256sum",
    }
)
"""Programs that read the files named in their arguments (or given with ``<``)."""


def classify_reads(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    """``file:Read`` for each sensitive file a reading program opens: ``cat ~/.aws/credentials``
    or ``grep x < .env``. Reads of ordinary files are not operations (they change nothing)."""
    try:
        candidates = [arg for arg in command.argv[1:] if not arg.startswith("-")]
        if command.program not in READ_PROGRAMS:
            candidates = []
        candidates += [r.target for r in command.redirects if r.operator == "<"]
        operations = []
        for path in candidates:
            resolved, _ = resolve_path(path, context)
            if sensitive_class(resolved, context) or sensitive_class(path, context):
                operations.append(
                    _file_op("file:Read", "read", path, context, raw=command.text, via=command.via)
                )
        return operations
    except Exception:  # never raise: the caller treats a failure as unresolved anyway
        return []
