"""Terraform and its kin: ``terraform``, OpenTofu's ``tofu`` and ``terragrunt``.

``terraform apply`` becomes ``terraform:Apply`` (``state rm`` → ``terraform:StateRm``,
``workspace select`` → ``terraform:WorkspaceSelect``) on ``terraform://<workspace>/<dir>``,
whichever of the three tools ran it (attribute ``tool``). Production is recognised in the
workspace (``TF_WORKSPACE`` or the one selected), the ``-chdir`` / terragrunt working
directory, ``-var-file`` and ``-backend-config`` names, and the working directory.
"""

from __future__ import annotations

import posixpath

from trailguard.classify._tool_common import (
    ParsedArgs,
    camel,
    env_value,
    first_positional,
    flag_is_true,
    gives_secrets,
    looks_prod,
    make_operation,
    never_raises,
    parse_args,
    raise_risk,
)
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.events import Access, Operation, Risk

__all__ = ["PROGRAMS", "classify"]

PROGRAMS: frozenset[str] = frozenset({"terraform", "tofu", "terragrunt"})

# Go `flag` style: stored with one dash whether written -name or --name.
_VALUE_FLAGS = frozenset(
    {
        "-chdir",
        "-var-file",
        "-var",
        "-target",
        "-replace",
        "-out",
        "-state",
        "-state-out",
        "-backup",
        "-lock-timeout",
        "-parallelism",
        "-backend-config",
        "-plugin-dir",
        "-lockfile",
        "-from-module",
        "-generate-config-out",
        "-config",
        "-provider",
        "-test-directory",
        "-filter",
        "-exclude",
        "-terragrunt-working-dir",
        "-working-dir",
        "-terragrunt-config",
        "-terragrunt-source",
        "-source",
        "-terragrunt-iam-role",
        "-iam-assume-role",
        "-terragrunt-parallelism",
        "-terragrunt-include-dir",
        "-queue-include-dir",
        "-terragrunt-exclude-dir",
        "-queue-exclude-dir",
        "-terragrunt-log-level",
        "-log-level",
        "-terragrunt-download-dir",
        "-download-dir",
        "-terragrunt-tfpath",
        "-tf-path",
    }
)

_COMMANDS: dict[str, tuple[Access, Risk]] = {
    "init": ("read", "low"),
    "plan": ("read", "low"),
    "apply": ("write", "high"),
    "destroy": ("delete", "critical"),
    "refresh": ("write", "medium"),
    "import": ("admin", "high"),
    "taint": ("write", "medium"),
    "untaint": ("write", "medium"),
    "force-unlock": ("admin", "high"),
    "output": ("read", "low"),
    "show": ("read", "low"),
    "validate": ("read", "low"),
    "graph": ("read", "low"),
    "providers": ("read", "low"),
    "version": ("read", "low"),
    "console": ("read", "low"),
    "get": ("read", "low"),
    "modules": ("read", "low"),
    "metadata": ("read", "low"),
    "fmt": ("write", "low"),
    "hclfmt": ("write", "low"),
    "test": ("write", "medium"),
    "login": ("admin", "medium"),
    "logout": ("admin", "low"),
    "state": ("admin", "high"),
    "workspace": ("write", "low"),
    "env": ("write", "low"),
}
_STATE_SUBCOMMANDS: dict[str, tuple[Access, Risk]] = {
    "list": ("read", "low"),
    "show": ("read", "low"),
    "pull": ("read", "medium"),
    "identities": ("read", "low"),
    "rm": ("admin", "high"),
    "mv": ("admin", "high"),
    "push": ("admin", "high"),
    "replace-provider": ("admin", "high"),
}
_WORKSPACE_SUBCOMMANDS: dict[str, tuple[Access, Risk]] = {
    "list": ("read", "low"),
    "show": ("read", "low"),
    "select": ("write", "low"),
    "new": ("write", "low"),
    "delete": ("delete", "high"),
}
# Terragrunt's multi-module forms: `run-all apply`, `apply-all`, `run --all apply`.
_LEGACY_ALL = {
    "apply-all": "apply",
    "destroy-all": "destroy",
    "plan-all": "plan",
    "output-all": "output",
    "validate-all": "validate",
}
_APPROVING_PIPES = frozenset({"yes", "echo", "printf"})


@never_raises
def classify(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    if command.program not in PROGRAMS:
        return []
    tool = command.program
    args = list(command.argv[1:])
    index = first_positional(args, _VALUE_FLAGS, go_style=True)
    if index is None:
        return []
    parsed = parse_args(args[:index], _VALUE_FLAGS, go_style=True)
    subcommand = args[index].lower()
    rest = args[index + 1 :]
    run_all = False
    if tool == "terragrunt":
        if subcommand in _LEGACY_ALL:
            subcommand, run_all = _LEGACY_ALL[subcommand], True
        elif subcommand in ("run-all", "run"):
            inner = first_positional(rest, _VALUE_FLAGS, go_style=True)
            if inner is None:
                return []
            parsed = parsed.merge(parse_args(rest[:inner], _VALUE_FLAGS, go_style=True))
            run_all = subcommand == "run-all" or parsed.has("-all")
            subcommand, rest = rest[inner].lower(), rest[inner + 1 :]
        elif subcommand == "stack" and rest[:1] == ["run"] and len(rest) > 1:
            run_all = True
            subcommand, rest = rest[1].lower(), rest[2:]
    parsed = parsed.merge(parse_args(rest, _VALUE_FLAGS, go_style=True))

    if subcommand not in _COMMANDS:
        return []
    access, risk = _COMMANDS[subcommand]
    action = subcommand
    words = parsed.positionals
    flags: list[str] = []
    attributes: dict[str, str | None] = {"tool": tool}
    workspace = env_value(command, context, "TF_WORKSPACE")

    if subcommand == "state":
        sub = words[0].lower() if words else ""
        access, risk = _STATE_SUBCOMMANDS.get(sub, ("admin", "high"))
        action = f"state-{sub}" if sub else "state"
        if sub == "pull":
            flags.append("secrets")
        if words[1:]:
            attributes["addresses"] = ",".join(words[1:])
    elif subcommand in ("workspace", "env"):
        sub = words[0].lower() if words else ""
        access, risk = _WORKSPACE_SUBCOMMANDS.get(sub, ("write", "low"))
        action = f"workspace-{sub}" if sub else "workspace"
        if sub in ("select", "new", "delete") and len(words) > 1:
            workspace = words[1]
    elif subcommand == "init" and parsed.has("-migrate-state", "-force-copy"):
        access, risk = "admin", "medium"
        flags.append("migrate-state")
    elif subcommand == "import":
        attributes["address"] = words[0] if words else None
        attributes["id"] = words[1] if len(words) > 1 else None
    elif subcommand in ("taint", "untaint"):
        attributes["address"] = words[0] if words else None
    elif subcommand in ("apply", "plan") and flag_is_true(parsed, "-destroy"):
        flags.append("destroy")
        if subcommand == "apply":
            access, risk = "delete", "critical"
    elif subcommand == "providers" and words[:1] in (["lock"], ["mirror"]):
        access, risk = "write", "low"
    if subcommand == "apply" and words:
        attributes["plan-file"] = words[0]
        flags.append("saved-plan")

    directory = parsed.get("-chdir", "-terragrunt-working-dir", "-working-dir")
    var_files = parsed.all("-var-file")
    backend_configs = [value for value in parsed.all("-backend-config") if "=" not in value]
    targets = parsed.all("-target")
    replaces = parsed.all("-replace")
    attributes.update(
        {
            "workspace": workspace,
            "dir": directory,
            "var-files": ",".join(var_files) if var_files else None,
            "targets": ",".join(targets) if targets else None,
            "replace": ",".join(replaces) if replaces else None,
        }
    )
    if targets:
        flags.append("target")
    if replaces:
        flags.append("replace")
    if run_all:
        flags.append("run-all")
    if subcommand in ("apply", "destroy") and _auto_approved(command, context, parsed, tool):
        flags.append("auto-approve")
    if subcommand == "state" and flag_is_true(parsed, "-force"):
        flags.append("force")
        risk = raise_risk(risk)

    production = looks_prod(
        workspace, directory, *var_files, *backend_configs, _working_dir(context)
    )
    if production:
        flags.append("prod")
        if subcommand == "apply" and access == "write":
            # An interactive apply still has to be confirmed; an unattended one does not.
            if "auto-approve" in flags:
                risk = "critical"
        else:
            risk = raise_risk(risk)
    if run_all and subcommand == "apply":
        risk = raise_risk(risk)

    raw, has_secret = command.text, gives_secrets(command, ())
    if has_secret or subcommand == "login":
        flags.append("credentials")
    return [
        make_operation(
            "terraform",
            f"terraform:{camel(action)}",
            access=access,
            risk=risk,
            resource=f"terraform://{workspace or 'current'}/{directory or '.'}",
            flags=flags,
            attributes=attributes,
            raw=raw,
        )
    ]


def _auto_approved(
    command: SimpleCommand, context: ClassifyContext, parsed: ParsedArgs, tool: str
) -> bool:
    """Whether the run will not stop for confirmation: ``-auto-approve``, the same flag hidden in
    ``TF_CLI_ARGS``, terragrunt's non-interactive mode, or ``yes |`` piped into it."""
    if flag_is_true(parsed, "-auto-approve"):
        return True
    for name in ("TF_CLI_ARGS", "TF_CLI_ARGS_apply", "TF_CLI_ARGS_destroy"):
        value = env_value(command, context, name)
        if value and "-auto-approve" in value and "-auto-approve=false" not in value:
            return True
    if tool == "terragrunt" and (
        flag_is_true(parsed, "-terragrunt-non-interactive", "-non-interactive")
        or env_value(command, context, "TERRAGRUNT_NON_INTERACTIVE", "TG_NON_INTERACTIVE") == "true"
    ):
        return True
    if _APPROVING_PIPES.intersection(command.piped_from):
        return True
    return bool(command.stdin and command.stdin.strip().lower().startswith("yes"))


def _working_dir(context: ClassifyContext) -> str | None:
    """The working directory as far as it says something about the environment: relative to the
    project root when inside it, else just its last component."""
    if not context.cwd:
        return None
    cwd = posixpath.normpath(context.cwd)
    if context.project_root:
        root = posixpath.normpath(context.project_root)
        if cwd == root:
            return None
        if cwd.startswith(root.rstrip("/") + "/"):
            return posixpath.relpath(cwd, root)
    return posixpath.basename(cwd)
