"""Google Cloud: ``gcloud [alpha|beta] <group> [<subgroup>...] <verb> [NAME] [--flags]``.

The action is ``gcp:<groups>.<verb>`` (``gcloud compute instances delete vm-1`` →
``gcp:compute.instances.delete``) on ``gcp://<project>/<group>/<subgroup>/<name>``; the
project comes from ``--project``, else ``CLOUDSDK_CORE_PROJECT``, else ``current`` (whatever
the active configuration says). Access follows the verb: list/describe/get read,
create/update/deploy write, delete delete, IAM policy changes, ssh and credentials admin.
"""

from __future__ import annotations

from trailguard.classify._tool_common import (
    ADMIN_VERBS,
    DELETE_VERBS,
    READ_VERBS,
    WRITE_VERBS,
    env_value,
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

PROGRAMS: frozenset[str] = frozenset({"gcloud"})

_VALUE_FLAGS = frozenset(
    {
        "--project",
        "--account",
        "--billing-project",
        "--configuration",
        "--flags-file",
        "--flatten",
        "--format",
        "--impersonate-service-account",
        "--verbosity",
        "--trace-token",
        "--region",
        "--zone",
        "--filter",
        "--limit",
        "--page-size",
        "--sort-by",
        "--access-token-file",
        "--member",
        "--role",
        "--condition",
        "--password",
        "--secret",
        "--location",
        "--cluster",
        "--instance",
        "--database",
        "--image",
        "--source",
        "--command",
        "--iam-account",
    }
)
_BOOL_FLAGS = frozenset(
    {
        "--quiet",
        "--async",
        "--all",
        "--recursive",
        "--force",
        "--log-http",
        "--help",
        "--dry-run",
        "--allow-unauthenticated",
        "--uri",
        "--verbose",
        "--internal-ip",
        "--tunnel-through-iap",
        "--delete-disks",
        "--keep-disks",
        "--update-adc",
        "--brief",
        "--no-user-output-enabled",
        "--user-output-enabled",
        "--cred-file",
        "--disable-prompts",
        "--continue-on-error",
        "--no-clobber",
        "--preserve-posix",
        "--gzip-in-flight-all",
        "--skip-if-exists",
        "--include-managed-folders",
        "--enable-ip-alias",
        "--no-enable-ip-alias",
        "--all-versions",
        "--show-log",
    }
)
_TRACKS = frozenset({"alpha", "beta", "preview"})
_TOP_LEVEL = {"version": "read", "info": "read", "init": "write", "help": "read"}
_SECRET_FLAGS = frozenset({"--password", "--access-token", "--auth-token", "--secret-value"})

_ESCALATING_ROLES = frozenset(
    {
        "roles/owner",
        "roles/editor",
        "roles/iam.securityadmin",
        "roles/iam.serviceaccounttokencreator",
        "roles/iam.serviceaccountkeyadmin",
        "roles/iam.serviceaccountuser",
        "roles/iam.workloadidentityuser",
        "roles/resourcemanager.projectiamadmin",
        "roles/resourcemanager.organizationadmin",
        "roles/resourcemanager.folderadmin",
    }
)
_PUBLIC_MEMBERS = frozenset({"allusers", "allauthenticatedusers"})
_CRITICAL_DELETES = frozenset(
    {
        ("projects",),
        ("organizations",),
        ("resource-manager", "folders"),
        ("sql", "instances"),
        ("container", "clusters"),
        ("spanner", "instances"),
        ("spanner", "databases"),
        ("bigtable", "instances"),
        ("alloydb", "clusters"),
        ("firestore", "databases"),
        ("storage", "buckets"),
        ("kms", "keys", "versions"),
    }
)
_CREDENTIAL_VERBS = frozenset(
    {
        "login",
        "activate-service-account",
        "print-access-token",
        "print-identity-token",
        "get-credentials",
        "configure-docker",
        "set-password",
    }
)
_LOW_ADMIN_VERBS = frozenset({"login", "logout", "configure-docker", "revoke", "get-credentials"})
_EXACT_VERBS = READ_VERBS | WRITE_VERBS | DELETE_VERBS | ADMIN_VERBS


@never_raises
def classify(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    if command.program not in PROGRAMS:
        return []
    parsed = parse_args(
        command.argv[1:], _VALUE_FLAGS, unknown_long_takes_value=True, bool_flags=_BOOL_FLAGS
    )
    words = list(parsed.positionals)
    track = words.pop(0) if words and words[0] in _TRACKS else None
    if not words or not is_command_word(words[0]):
        return []

    verb_index = _verb_index(words)
    flags: list[str] = []
    groups: list[str]
    names: list[str]
    if verb_index is None:
        if len(words) == 1 and words[0] in _TOP_LEVEL:
            groups, verb, names = [], words[0], []
        else:
            path = [word for word in words[:4] if is_command_word(word)]
            groups, verb, names = path[:-1], path[-1], []
            flags.append("unknown-verb")
    else:
        groups, verb, names = words[:verb_index], words[verb_index], words[verb_index + 1 :]
    name = names[0] if names else None
    access, risk = _access_and_risk(groups, verb)
    if "unknown-verb" in flags:
        access, risk = "write", "medium"

    project = parsed.get("--project") or env_value(command, context, "CLOUDSDK_CORE_PROJECT")
    if groups == ["projects"] and name and not parsed.has("--project"):
        project = name
    if groups == ["config"] and verb == "set" and names[:1] == ["project"] and len(names) > 1:
        project = names[1]
    attributes: dict[str, str | None] = {
        "project": project,
        "account": parsed.get("--account") or env_value(command, context, "CLOUDSDK_CORE_ACCOUNT"),
        "configuration": parsed.get("--configuration")
        or env_value(command, context, "CLOUDSDK_ACTIVE_CONFIG_NAME"),
        "region": parsed.get("--region") or env_value(command, context, "CLOUDSDK_COMPUTE_REGION"),
        "zone": parsed.get("--zone") or env_value(command, context, "CLOUDSDK_COMPUTE_ZONE"),
        "location": parsed.get("--location"),
        "name": name,
        "track": track,
    }

    if verb in _CREDENTIAL_VERBS or (
        "keys" in groups and "service-accounts" in groups and verb == "create"
    ):
        flags.append("credentials")
    if groups[:1] == ["secrets"] and verb == "access":
        flags.append("secrets")
        risk = "medium"
    impersonate = parsed.get("--impersonate-service-account") or env_value(
        command, context, "CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT"
    )
    if impersonate:
        flags.append("impersonation")
        attributes["impersonate"] = impersonate
    if parsed.has("--quiet", "-q"):
        flags.append("quiet")
    if "iam-policy" in verb:
        member, role = parsed.get("--member"), parsed.get("--role")
        attributes["member"], attributes["role"] = member, role
        granting = verb.startswith(("add-", "set-"))
        if member and member.lower().partition(":")[0] in _PUBLIC_MEMBERS and granting:
            flags.append("public")
            risk = "critical"
        if role and role.lower() in _ESCALATING_ROLES and granting:
            flags.append("privileged-role")
            risk = "critical"
    if access == "delete" and any(
        tuple(groups[: len(prefix)]) == prefix for prefix in _CRITICAL_DELETES
    ):
        risk = "critical"
    if verb in ("rm", "delete") and parsed.has("--recursive", "-r"):
        flags.append("recursive")
        risk = raise_risk(risk)

    if looks_prod(project, name if groups == ["projects"] else None, attributes["configuration"]):
        flags.append("prod")
        risk = raise_risk(risk)

    raw, has_secret = command.text, gives_secrets(command, _SECRET_FLAGS)
    if has_secret:
        flags.append("inline-secret")
    if name and name.startswith("gs://"):
        resource = name
    else:
        resource = "/".join([f"gcp://{project or 'current'}", *groups, name or "*"])
    return [
        make_operation(
            "gcp",
            "gcp:" + ".".join([*groups, verb]),
            access=access,
            risk=risk,
            resource=resource,
            flags=flags,
            attributes=attributes,
            raw=raw,
        )
    ]


def _verb_index(words: list[str]) -> int | None:
    """Index of the verb: the first word after at least one group that reads as a verb, moved
    past any run of further verbs (``logging logs delete``: ``logs`` is a group there)."""
    for start in range(1, len(words)):
        if not is_command_word(words[start]):
            return None
        if verb_access(words[start]) is not None:
            index = start
            while index + 1 < len(words) and words[index + 1] in _EXACT_VERBS:
                index += 1
            return index
    return None


def _access_and_risk(groups: list[str], verb: str) -> tuple[Access, Risk]:
    access = verb_access(verb) or "write"
    if groups and groups[0] == "iam" and access in ("write", "delete"):
        access = "admin"
    if groups == ["config"]:
        return ("read", "low") if access == "read" else ("write", "low")
    if access == "admin":
        return access, "medium" if verb in _LOW_ADMIN_VERBS else "high"
    if access == "read":
        return access, "low"
    return access, "medium" if access == "write" else "high"
