"""Azure CLI: ``az <group> [<subgroup>...] <verb> --flags``.

The action is ``azure:<groups>.<verb>`` (``az vm delete`` → ``azure:vm.delete``,
``az role assignment create`` → ``azure:role.assignment.create``) on
``azure://<subscription>/<resource-group>/<groups>/<name>``. The subscription comes from
``--subscription`` (or a ``--ids`` resource ID), else ``current``; the resource group from
``-g/--resource-group``, ``--ids`` or ``AZURE_DEFAULTS_GROUP``. Access follows the verb as for
gcloud; role assignments, Entra ID (``az ad``) and managed identities are admin.
"""

from __future__ import annotations

import re

from trailguard.classify._tool_common import (
    env_value,
    first_positional,
    gives_secrets,
    is_command_word,
    looks_prod,
    make_operation,
    never_raises,
    parse_args,
    raise_risk,
    verb_access,
)
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.events import Access, Operation, Risk

__all__ = ["PROGRAMS", "classify"]

PROGRAMS: frozenset[str] = frozenset({"az"})

_GLOBAL_VALUE_FLAGS = frozenset({"-o", "--output", "--query", "--subscription"})
_VALUE_FLAGS = frozenset(
    {
        "-g",
        "-n",
        "-s",
        "-l",
        "-o",
        "-u",
        "-p",
        "-t",
        "-c",
        "-f",
        "--resource-group",
        "--name",
        "--subscription",
        "--location",
        "--output",
        "--query",
        "--ids",
        "--role",
        "--assignee",
        "--assignee-object-id",
        "--scope",
        "--username",
        "--password",
        "--tenant",
        "--value",
        "--vault-name",
        "--account-name",
        "--account-key",
        "--sas-token",
        "--connection-string",
        "--admin-password",
        "--client-secret",
        "--secret",
        "--image",
        "--command-id",
        "--scripts",
        "--auth-mode",
    }
)
_BOOL_FLAGS = frozenset(
    {
        "--yes",
        "-y",
        "--debug",
        "--verbose",
        "--only-show-errors",
        "--help",
        "-h",
        "--no-wait",
        "--force",
        "--service-principal",
        "--identity",
        "--use-device-code",
        "--allow-no-subscriptions",
        "--overwrite",
        "--recursive",
        "--generate-ssh-keys",
        "--show-details",
        "-d",
        "--all",
        "--sdk-auth",
    }
)
_SECRET_FLAGS = frozenset(
    {
        "-p",
        "--password",
        "--admin-password",
        "--client-secret",
        "--account-key",
        "--sas-token",
        "--connection-string",
        "--secret",
        "--value",
    }
)
_ADMIN_GROUPS = frozenset({"role", "ad", "identity", "policy", "lock"})
_ESCALATING_ROLES = frozenset(
    {
        "owner",
        "contributor",
        "user access administrator",
        "role based access control administrator",
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    }
)
_CRITICAL_DELETES = frozenset(
    {
        ("group",),
        ("aks",),
        ("sql", "server"),
        ("sql", "db"),
        ("cosmosdb",),
        ("keyvault",),
        ("storage", "account"),
        ("postgres", "flexible-server"),
        ("postgres", "server"),
        ("mysql", "flexible-server"),
        ("mysql", "server"),
    }
)
_REMOTE_EXEC_GROUPS = frozenset({"run-command", "command"})
_LOW_ADMIN_VERBS = frozenset({"login", "logout", "get-credentials"})
_RESOURCE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)(?:/resourceGroups/(?P<rg>[^/]+))?(?:/.*/(?P<name>[^/]+))?$",
    re.IGNORECASE,
)


@never_raises
def classify(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    if command.program not in PROGRAMS:
        return []
    args = list(command.argv[1:])
    start = first_positional(args, _GLOBAL_VALUE_FLAGS)
    if start is None:
        return []
    end = start
    while end < len(args) and not args[end].startswith("-") and is_command_word(args[end]):
        end += 1
    words = [word.lower() for word in args[start:end]]
    if not words:
        return []
    parsed = parse_args(
        args[:start] + args[end:],
        _VALUE_FLAGS,
        unknown_long_takes_value=True,
        bool_flags=_BOOL_FLAGS,
    )
    groups, verb = words[:-1], words[-1]
    access, risk = _access_and_risk(groups, verb)
    flags: list[str] = []
    if verb_access(verb) is None and groups:
        flags.append("unknown-verb")

    subscription = parsed.get("--subscription")
    if groups == ["account"] and verb == "set":
        subscription = subscription or parsed.get("-s")
    resource_group = parsed.get("-g", "--resource-group")
    name = parsed.get("-n", "--name")
    ids = parsed.get("--ids")
    if ids:
        match = _RESOURCE_ID.match(ids.split()[0])
        if match:
            subscription = subscription or match["sub"]
            resource_group = resource_group or match["rg"]
            name = name or match["name"]
    if groups == ["group"] and name:
        resource_group = resource_group or name
    resource_group = resource_group or env_value(command, context, "AZURE_DEFAULTS_GROUP")

    attributes: dict[str, str | None] = {
        "subscription": subscription,
        "resource-group": resource_group,
        "name": name,
        "location": parsed.get("-l", "--location")
        or env_value(command, context, "AZURE_DEFAULTS_LOCATION"),
        "vault": parsed.get("--vault-name"),
        "storage-account": parsed.get("--account-name"),
        "scope": parsed.get("--scope"),
    }

    if groups[:1] == ["role"] and groups[1:2] == ["assignment"]:
        role, assignee = parsed.get("--role"), parsed.get("--assignee", "--assignee-object-id")
        attributes["role"], attributes["assignee"] = role, assignee
        if verb == "create" and role and role.lower() in _ESCALATING_ROLES:
            flags.append("privileged-role")
            risk = "critical"
    if groups[:2] == ["keyvault", "secret"] and verb in ("show", "download"):
        flags.append("secrets")
        risk = "medium"
    if verb in ("login", "get-credentials", "get-access-token", "create-for-rbac"):
        flags.append("credentials")
    if (groups[-1:] and groups[-1] in _REMOTE_EXEC_GROUPS) or verb in ("ssh", "exec"):
        access, risk = "admin", "high"
        flags.append("remote-exec")
    if access == "delete" and any(
        tuple(groups[: len(prefix)]) == prefix for prefix in _CRITICAL_DELETES
    ):
        risk = "critical"
    if parsed.has("--yes", "-y"):
        flags.append("yes")
    if looks_prod(subscription, resource_group, name):
        flags.append("prod")
        risk = raise_risk(risk)

    raw, has_secret = command.text, gives_secrets(command, _SECRET_FLAGS)
    if has_secret:
        flags.append("inline-secret")
    resource = "/".join(
        [f"azure://{subscription or 'current'}", resource_group or "*", *groups, name or "*"]
    )
    return [
        make_operation(
            "azure",
            "azure:" + ".".join(words),
            access=access,
            risk=risk,
            resource=resource,
            flags=flags,
            attributes=attributes,
            raw=raw,
        )
    ]


def _access_and_risk(groups: list[str], verb: str) -> tuple[Access, Risk]:
    access = verb_access(verb) or "write"
    if groups and groups[0] in _ADMIN_GROUPS and access in ("write", "delete"):
        access = "admin"
    if groups[:1] == ["config"]:
        return ("read", "low") if access == "read" else ("write", "low")
    if groups == ["account"] and verb == "set":
        return "write", "low"
    if access == "admin":
        return access, "medium" if verb in _LOW_ADMIN_VERBS else "high"
    if access == "read":
        return access, "low"
    return access, "medium" if access == "write" else "high"
