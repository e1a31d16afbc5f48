"""The AWS CLI classifier: ``aws SERVICE OPERATION ...`` → IAM-style Operations.

Every service the installed botocore knows is covered, read from its service model
(``service-2``) the first time a command names that service and cached from then on; no model
is loaded up front. The CLI's kebab-case command names are derived from the model's operation
names the way the CLI derives them (``botocore.xform_name(name, "-")``), its option names from
the operation's input members, and which options take no value from their boolean shapes.

On top of the models sit the CLI's own commands: the high-level ``aws s3`` (cp, mv, sync, rm,
ls, mb, rb, presign, website), ``aws configure``, ``aws ddb``, waiters (``aws ec2 wait ...``)
and the customizations that the CLI injects into a service (``cloudformation deploy``,
``ecr get-login-password``, ``eks update-kubeconfig``...).

Access comes from the operation's verb (Get/List/Describe → read, Delete/Terminate → delete,
everything else → write), raised to admin for permission management: every mutating IAM,
Organizations, IAM Identity Center and RAM call (including IAM detach/remove/delete: they change
who may do what), permission-policy writes, ACLs, grants, access keys, security-group rules,
snapshot/image sharing and STS credential minting. Risk follows access (read low, write medium,
delete and admin high), with a short list of irreversible calls at critical, one level more on a
production-looking profile, and low for a dry run.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trailguard.classify._tool_common import looks_prod, max_risk, raise_risk
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.events import Access, Operation, Risk

if TYPE_CHECKING:
    from botocore.loaders import Loader

__all__ = [
    "IAM_ACTION_EXCEPTIONS",
    "PROGRAMS",
    "SERVICE_RENAMES",
    "classify",
    "looks_prod",
    "operation_access",
]

PROGRAMS = frozenset({"aws"})


KIND = "aws"
UNKNOWN_ACTION = "aws:Unknown"
_RISK_BY_ACCESS: dict[Access, Risk] = {
    "read": "low",
    "write": "medium",
    "delete": "high",
    "admin": "high",
}

# --------------------------------------------------------------------------------------------
# The CLI's command names
# --------------------------------------------------------------------------------------------

# The CLI names its service commands after botocore's service names, except these, which it
# renames or aliases while building its command table (aws-cli: awscli/handlers.py
# ``_add_lazy_s3`` / customizations/s3/s3.py ``add_s3``; customizations/configservice/
# rename_cmd.py; customizations/codedeploy/codedeploy.py ``change_name``;
# customizations/opsworkscm.py ``alias_opsworks_cm``; customizations/sagemaker.py
# ``alias_sagemaker_runtime_command``). ``sesv2``, ``s3control``, ``elbv2``... are botocore's
# own names and need no entry.
SERVICE_RENAMES: Mapping[str, str] = {
    "s3api": "s3",
    "configservice": "config",
    "deploy": "codedeploy",
    "opsworkscm": "opsworks-cm",
    "runtime.sagemaker": "sagemaker-runtime",
}
# The botocore names the renames above take away: ``aws config ...`` or ``aws codedeploy ...``
# is an invalid choice to the CLI (``aws s3`` is the high-level command set instead).
_RENAMED_AWAY = frozenset({"config", "codedeploy"})

# Top-level commands of the CLI itself that never reach AWS.
_LOCAL_COMMANDS = frozenset({"help", "history", "cli-dev"})

_GLOBAL_VALUE_OPTIONS = frozenset(
    {
        "--profile",
        "--region",
        "--endpoint-url",
        "--output",
        "--query",
        "--color",
        "--ca-bundle",
        "--cli-read-timeout",
        "--cli-connect-timeout",
        "--cli-binary-format",
    }
)
_GLOBAL_FLAGS = frozenset(
    {
        "--debug",
        "--no-verify-ssl",
        "--no-paginate",
        "--no-sign-request",
        "--no-cli-pager",
        "--cli-auto-prompt",
        "--no-cli-auto-prompt",
    }
)
_HELP_OPTIONS = frozenset({"--version", "--help", "-h"})

# Options every API operation accepts besides its input members (kind: see _parse_options).
_COMMON_OPERATION_OPTIONS: Mapping[str, str] = {
    "cli-input-json": "scalar",
    "cli-input-yaml": "scalar",
    "generate-cli-skeleton": "skeleton",
    "starting-token": "scalar",
    "page-size": "scalar",
    "max-items": "scalar",
}
_SKELETON_VALUES = frozenset({"input", "output", "yaml-input"})

# --------------------------------------------------------------------------------------------
# IAM action names
# --------------------------------------------------------------------------------------------

# The IAM prefix is the model's metadata.signingName (else endpointPrefix), except for these
# services, whose signing name is not the prefix IAM policies use.
_PREFIX_OVERRIDES: Mapping[str, str] = {
    "cloudwatch": "cloudwatch",  # endpointPrefix "monitoring"
    "iot-data": "iot",  # signingName "iotdata"
    "iot-jobs-data": "iotjobsdata",
    "mturk": "mechanicalturk",  # endpointPrefix "mturk-requester"
}
# API Gateway's management API is authorised by HTTP method (apigateway:GET, apigateway:POST...).
_HTTP_METHOD_ACTION_SERVICES = frozenset({"apigateway", "apigatewayv2"})

# Operations whose IAM action is not ``prefix:OperationName``, keyed by (botocore service,
# operation). One operation may need several actions (each becomes an Operation). Names not
# listed here are the same as the operation (s3 GetObject/PutBucketPolicy, every ec2, sts,
# dynamodb, iam and kms operation...).
IAM_ACTION_EXCEPTIONS: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("lambda", "Invoke"): ("lambda:InvokeFunction",),
    ("lambda", "InvokeWithResponseStream"): ("lambda:InvokeFunction",),
    ("s3", "ListObjects"): ("s3:ListBucket",),
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "ListObjectVersions"): ("s3:ListBucketVersions",),
    ("s3", "ListBuckets"): ("s3:ListAllMyBuckets",),
    ("s3", "HeadBucket"): ("s3:ListBucket",),
    ("s3", "HeadObject"): ("s3:GetObject",),
    ("s3", "SelectObjectContent"): ("s3:GetObject",),
    ("s3", "DeleteObjects"): ("s3:DeleteObject",),
    ("s3", "CopyObject"): ("s3:GetObject", "s3:PutObject"),  # source, destination
    ("s3", "UploadPartCopy"): ("s3:GetObject", "s3:PutObject"),
    ("s3", "CreateMultipartUpload"): ("s3:PutObject",),
    ("s3", "UploadPart"): ("s3:PutObject",),
    ("s3", "CompleteMultipartUpload"): ("s3:PutObject",),
    ("s3", "ListMultipartUploads"): ("s3:ListBucketMultipartUploads",),
    ("s3", "ListParts"): ("s3:ListMultipartUploadParts",),
    ("s3", "PutBucketCors"): ("s3:PutBucketCORS",),
    ("s3", "GetBucketCors"): ("s3:GetBucketCORS",),
    ("s3", "DeleteBucketCors"): ("s3:PutBucketCORS",),
    ("s3", "PutBucketLifecycle"): ("s3:PutLifecycleConfiguration",),
    ("s3", "PutBucketLifecycleConfiguration"): ("s3:PutLifecycleConfiguration",),
    ("s3", "GetBucketLifecycle"): ("s3:GetLifecycleConfiguration",),
    ("s3", "GetBucketLifecycleConfiguration"): ("s3:GetLifecycleConfiguration",),
    ("s3", "DeleteBucketLifecycle"): ("s3:PutLifecycleConfiguration",),
    ("s3", "PutBucketEncryption"): ("s3:PutEncryptionConfiguration",),
    ("s3", "GetBucketEncryption"): ("s3:GetEncryptionConfiguration",),
    ("s3", "DeleteBucketEncryption"): ("s3:PutEncryptionConfiguration",),
    ("s3", "PutBucketReplication"): ("s3:PutReplicationConfiguration",),
    ("s3", "GetBucketReplication"): ("s3:GetReplicationConfiguration",),
    ("s3", "DeleteBucketReplication"): ("s3:PutReplicationConfiguration",),
    ("s3", "PutBucketNotificationConfiguration"): ("s3:PutBucketNotification",),
    ("s3", "GetBucketNotificationConfiguration"): ("s3:GetBucketNotification",),
    ("s3", "PutPublicAccessBlock"): ("s3:PutBucketPublicAccessBlock",),
    ("s3", "GetPublicAccessBlock"): ("s3:GetBucketPublicAccessBlock",),
    ("s3", "DeletePublicAccessBlock"): ("s3:PutBucketPublicAccessBlock",),
    ("s3", "DeleteBucketTagging"): ("s3:PutBucketTagging",),
    ("s3", "DeleteBucketOwnershipControls"): ("s3:PutBucketOwnershipControls",),
    ("s3", "PutBucketAccelerateConfiguration"): ("s3:PutAccelerateConfiguration",),
    ("s3", "GetBucketAccelerateConfiguration"): ("s3:GetAccelerateConfiguration",),
    ("s3", "PutBucketAnalyticsConfiguration"): ("s3:PutAnalyticsConfiguration",),
    ("s3", "PutBucketInventoryConfiguration"): ("s3:PutInventoryConfiguration",),
    ("s3", "PutBucketMetricsConfiguration"): ("s3:PutMetricsConfiguration",),
    ("s3", "PutBucketIntelligentTieringConfiguration"): ("s3:PutIntelligentTieringConfiguration",),
    ("s3", "PutObjectLockConfiguration"): ("s3:PutBucketObjectLockConfiguration",),
    ("s3", "GetObjectLockConfiguration"): ("s3:GetBucketObjectLockConfiguration",),
    ("s3control", "PutPublicAccessBlock"): ("s3:PutAccountPublicAccessBlock",),
    ("s3control", "GetPublicAccessBlock"): ("s3:GetAccountPublicAccessBlock",),
    ("s3control", "DeletePublicAccessBlock"): ("s3:PutAccountPublicAccessBlock",),
}

# --------------------------------------------------------------------------------------------
# Access and risk rules
# --------------------------------------------------------------------------------------------

_READ_VERBS = frozenset(
    {
        "Get",
        "List",
        "Describe",
        "Head",
        "Search",
        "Query",
        "Scan",
        "Select",
        "Lookup",
        "Filter",
        "Check",
        "Validate",
        "Verify",
        "Simulate",
        "Estimate",
        "Preview",
        "Download",
    }
)
_DELETE_VERBS = frozenset(
    {
        "Delete",
        "Remove",
        "Terminate",
        "Deregister",
        "Purge",
        "Detach",
        "Disable",
        "Revoke",
        "Cancel",
        "Abort",
        "Release",
        "Disassociate",
    }
)
# Services where every call that is not a read manages permissions or accounts.
_ADMIN_SERVICES = frozenset(
    {"iam", "organizations", "sso-admin", "identitystore", "ram", "account", "iam-toolbox"}
)
# Operation-name fragments that make a non-read call permission management. "Policy" does not
# count for the policies that are not about permissions (scaling, lifecycle, retention...).
_ADMIN_NAME = re.compile(
    r"Permission|Acl|ACL|PublicAccessBlock|Grant|AccessKey|Credential|LoginProfile"
    r"|SecurityGroup(?:Ingress|Egress)|(?:Snapshot|Image)Attribute"
    r"|(?<!Scaling)(?<!Lifecycle)(?<!Retention)(?<!Backup)(?<!Cache)(?<!Request)(?<!Headers)"
    r"(?<!Traffic)(?<!Routing)(?<!Allocation)(?<!Metering)(?<!Tiering)(?<!Retrieval)"
    r"(?<!Termination)(?<!Placement)(?<!Ipam)(?<!Deletion)Policy"
)
_ADMIN_OPERATIONS = frozenset(
    {
        ("sts", "AssumeRole"),
        ("sts", "AssumeRoleWithSAML"),
        ("sts", "AssumeRoleWithWebIdentity"),
        ("sts", "AssumeRoot"),
        ("sts", "GetFederationToken"),
        ("sts", "GetSessionToken"),
    }
)
_DELETE_OPERATIONS = frozenset({("kms", "ScheduleKeyDeletion")})
# Verbs that usually remove something but here undo a removal.
_WRITE_OPERATIONS = frozenset({("kms", "CancelKeyDeletion")})

_CRITICAL_OPERATIONS = frozenset(
    {
        ("ec2", "TerminateInstances"),
        ("rds", "DeleteDBInstance"),
        ("rds", "DeleteDBCluster"),
        ("docdb", "DeleteDBInstance"),
        ("docdb", "DeleteDBCluster"),
        ("neptune", "DeleteDBInstance"),
        ("neptune", "DeleteDBCluster"),
        ("kms", "ScheduleKeyDeletion"),
        ("cloudformation", "DeleteStack"),
        ("dynamodb", "DeleteTable"),
    }
)
_FINAL_SNAPSHOT_OPERATIONS = frozenset({"DeleteDBInstance", "DeleteDBCluster"})
_ADMIN_POLICY_ARN = re.compile(r"(?:^|[:/])AdministratorAccess$")
_STAR = r'(?:"?\*"?|\[\s*"?\*"?\s*\])'
_ALLOW_ALL_DOCUMENT = re.compile(
    rf'"?Action"?\s*:\s*{_STAR}.*?"?Resource"?\s*:\s*{_STAR}'
    rf'|"?Resource"?\s*:\s*{_STAR}.*?"?Action"?\s*:\s*{_STAR}',
    re.DOTALL,
)
_PUBLIC_ACLS = frozenset({"public-read", "public-read-write"})
_ALL_USERS_GRANTEE = re.compile(r"acs\.amazonaws\.com/groups/global/(?:AllUsers|Authenticated)")


# --------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------

_ID_SUFFIXES = (
    "Identifiers",
    "Identifier",
    "Names",
    "Name",
    "Arns",
    "ARNs",
    "Arn",
    "ARN",
    "Ids",
    "Id",
    "IDs",
    "ID",
    "Urls",
    "Url",
    "URL",
)
# Identifier members whose names carry no suffix (ecs ``--cluster``, ``--service``...).
_BARE_ID_MEMBERS = frozenset(
    {"bucket", "cluster", "clusters", "service", "services", "task", "tasks", "taskdefinition"}
)
_NOT_IDENTIFIERS = frozenset({"clienttoken", "nexttoken", "idempotencytoken", "maxresults"})


@dataclass(frozen=True)
class _Member:
    cli_name: str
    name: str
    root: str | None
    """The member name without its identifier suffix, lower-cased (``RoleName`` → ``role``), or
    None for a member that is not identifier-like."""
    required: bool
    index: int


@dataclass(frozen=True)
class _OperationSpec:
    name: str
    options: Mapping[str, str]
    """CLI option name (no dashes) → ``flag`` (boolean), ``list`` (takes every following word)
    or ``scalar`` (takes one word)."""
    candidates: tuple[_Member, ...]
    """String-valued members that may name the resource, in model order."""


@dataclass(frozen=True)
class _Service:
    name: str
    prefix: str
    model: Mapping[str, Any]
    operations: Mapping[str, str]
    """CLI command name → operation name."""


@dataclass
class _Args:
    positionals: list[str] = field(default_factory=list)
    options: dict[str, list[str]] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.options

    def get(self, name: str) -> str | None:
        values = self.options.get(name)
        return values[-1] if values else None


@dataclass
class _Call:
    """What every Operation of one command shares."""

    command: SimpleCommand
    context: ClassifyContext
    service: str
    operation: str
    profile: str
    region: str | None
    endpoint: str | None

    def attributes(self, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
        attributes: dict[str, str] = {"profile": self.profile}
        if self.region:
            attributes["region"] = self.region
        if self.service:
            attributes["service"] = self.service
        if self.operation:
            attributes["operation"] = self.operation
        if self.endpoint:
            attributes["endpointUrl"] = self.endpoint
        for key, value in (extra or {}).items():
            if value:
                attributes[key] = value
        return attributes

    @property
    def partition(self) -> str:
        region = self.region or ""
        if region.startswith("cn-"):
            return "aws-cn"
        if region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    def make(
        self,
        action: str,
        access: Access,
        *,
        resource: str | None = None,
        risk: Risk | None = None,
        flags: Iterable[str] = (),
        attributes: Mapping[str, str | None] | None = None,
        dry_run: bool = False,
    ) -> Operation:
        all_flags = list(flags)
        level = risk or _RISK_BY_ACCESS[access]
        if self.endpoint:
            all_flags.append("custom-endpoint")
        if looks_prod(self.profile):
            level = raise_risk(level)
            all_flags.append("prod-profile")
        if dry_run:
            level = "low"
            all_flags.append("dryrun")
        return Operation(
            kind=KIND,
            action=action,
            resource=resource,
            access=access,
            risk=level,
            flags=list(dict.fromkeys(all_flags)),
            attributes=self.attributes(attributes),
            raw=self.command.text,
        )

    def unknown(self, *flags: str) -> Operation:
        return self.make(
            UNKNOWN_ACTION, "write", risk="medium", flags=("unknown-operation", *flags)
        )


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def classify(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    """The operations an ``aws`` command performs; ``[]`` when it makes no AWS call (``aws
    --version``, ``aws help``, ``aws ec2`` without an operation, ``--generate-cli-skeleton``).
    Never raises: a command it cannot make sense of is an ``aws:Unknown`` write."""
    if command.program not in PROGRAMS or command.unresolved is not None:
        return []
    try:
        return _classify(command, context)
    except Exception:
        call = _Call(command, context, "", "", "default", None, None)
        try:
            return [call.unknown("classifier-error")]
        except Exception:
            return []


def _classify(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    words, globals_, has_help = _split_globals(command.argv[1:])
    if has_help:
        return []
    service = words[0] if words else ""
    operation = words[1] if len(words) > 1 else ""
    args = words[2:]
    call = _Call(
        command=command,
        context=context,
        service=service,
        operation=operation,
        profile=globals_.get("--profile")
        or _env(command, context, "AWS_PROFILE", "AWS_DEFAULT_PROFILE")
        or "default",
        region=globals_.get("--region")
        or _env(command, context, "AWS_REGION", "AWS_DEFAULT_REGION"),
        endpoint=globals_.get("--endpoint-url") or _env(command, context, "AWS_ENDPOINT_URL"),
    )
    if not service or service in _LOCAL_COMMANDS or operation == "help":
        return []
    if service == "s3":
        return _classify_s3(call, args) if operation else []
    if service == "configure":
        return _classify_configure(call, words[1:])
    if service == "ddb":
        return _classify_ddb(call, args)
    if service in ("login", "logout"):
        action = "aws-cli:Login" if service == "login" else "aws-cli:Logout"
        call.operation = ""
        return [call.make(action, "write")]

    botocore_name = SERVICE_RENAMES.get(service, service)
    model = None if service in _RENAMED_AWAY else _service(botocore_name)
    if model is None:
        return [call.unknown()]
    if not operation:
        return []  # "aws ec2": the CLI prints its usage and calls nothing
    custom = _CUSTOM_COMMANDS.get((service, operation))
    if custom is not None:
        return _classify_custom(call, custom, args)
    if operation == "wait":
        return _classify_wait(call, model, args)
    operation_name = model.operations.get(operation)
    if operation_name is None:
        return [call.unknown()]
    return _classify_api(call, model, operation_name, args)


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------


def _split_globals(tokens: Sequence[str]) -> tuple[list[str], dict[str, str], bool]:
    """Take the global options out wherever they stand (the CLI accepts them anywhere);
    return the remaining words, the global values, and whether help or the version was
    asked for. Unknown options before the service are dropped."""
    words: list[str] = []
    values: dict[str, str] = {}
    has_help = False
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        name, equals, value = token.partition("=")
        if name in _GLOBAL_VALUE_OPTIONS:
            if not equals:
                if index < len(tokens):
                    value = tokens[index]
                    index += 1
                else:
                    value = ""
            values[name] = value
        elif token in _GLOBAL_FLAGS:
            continue
        elif token in _HELP_OPTIONS:
            has_help = True
        elif not words and token.startswith("-"):
            continue
        else:
            words.append(token)
    return words, values, has_help


def _parse_options(
    tokens: Sequence[str],
    kinds: Mapping[str, str],
    optional_values: Mapping[str, frozenset[str]] | None = None,
) -> _Args:
    """Split operation arguments into options and positionals. ``kinds`` says what each option
    takes: ``flag`` nothing, ``list`` every following word up to the next option, ``scalar`` one
    word. An unknown option takes the next word unless that is an option itself.
    ``optional_values`` name options whose value may be left out (``--sse`` / ``--sse
    aws:kms``): they take the next word only if it is one of the allowed values."""
    parsed = _Args()
    optional_values = optional_values or {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not token.startswith("--") or len(token) == 2:
            parsed.positionals.append(token)
            continue
        name, equals, value = token[2:].partition("=")
        values = parsed.options.setdefault(name, [])
        if equals:
            values.append(value)
            continue
        if name in optional_values:
            if index < len(tokens) and tokens[index] in optional_values[name]:
                values.append(tokens[index])
                index += 1
            continue
        kind = kinds.get(name)
        if kind is None and name.startswith("no-") and kinds.get(name[3:]) == "flag":
            kind = "flag"
        if kind == "flag":
            continue
        if kind == "list":
            while index < len(tokens) and not tokens[index].startswith("--"):
                values.append(tokens[index])
                index += 1
            continue
        if index < len(tokens) and not tokens[index].startswith("--"):
            values.append(tokens[index])
            index += 1
    return parsed


def _asks_help(args: _Args) -> bool:
    """``aws SERVICE OPERATION ... help``: the CLI shows the help page (a word ``help`` that is
    an option's value does not count)."""
    return args.positionals[-1:] == ["help"]


def _env(command: SimpleCommand, context: ClassifyContext, *names: str) -> str | None:
    for source in (command.env, context.env):
        for name in names:
            value = source.get(name)
            if value:
                return value
    return None


# --------------------------------------------------------------------------------------------
# Service models (loaded per service, on first use)
# --------------------------------------------------------------------------------------------

_SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")


@functools.lru_cache(maxsize=1)
def _loader() -> Loader:
    from botocore.loaders import Loader

    return Loader()


@functools.lru_cache(maxsize=512)
def _service(name: str) -> _Service | None:
    """The botocore service ``name`` (its service-2 model and CLI command table), or None if
    botocore has no such service (or is not installed: every API call is then unknown)."""
    if not _SERVICE_NAME.fullmatch(name) or ".." in name:
        return None
    try:
        from botocore import xform_name

        model = _loader().load_service_model(name, "service-2")
    except Exception:
        return None
    metadata = model.get("metadata", {})
    prefix = (
        _PREFIX_OVERRIDES.get(name)
        or metadata.get("signingName")
        or metadata.get("endpointPrefix")
        or name
    )
    operations = {xform_name(op, "-"): op for op in model.get("operations", {})}
    return _Service(name=name, prefix=prefix, model=model, operations=operations)


@functools.lru_cache(maxsize=256)
def _waiters(name: str) -> Mapping[str, str]:
    """CLI waiter name (``instance-running``) → the operation it polls."""
    from botocore import xform_name

    try:
        config = _loader().load_service_model(name, "waiters-2")
    except Exception:
        return {}
    return {
        xform_name(waiter, "-"): str(spec.get("operation", ""))
        for waiter, spec in config.get("waiters", {}).items()
    }


@functools.lru_cache(maxsize=4096)
def _operation_spec(service: str, operation: str) -> _OperationSpec:
    from botocore import xform_name

    model = _service(service)
    assert model is not None
    shapes: Mapping[str, Any] = model.model.get("shapes", {})
    op_model = model.model["operations"][operation]
    input_name = op_model.get("input", {}).get("shape")
    input_shape: Mapping[str, Any] = shapes.get(input_name, {}) if input_name else {}
    required = set(input_shape.get("required", ()))
    options: dict[str, str] = dict(_COMMON_OPERATION_OPTIONS)
    candidates: list[_Member] = []
    for index, (member, ref) in enumerate(input_shape.get("members", {}).items()):
        cli_name = xform_name(member, "-")
        shape = shapes.get(ref.get("shape", ""), {})
        shape_type = shape.get("type")
        if shape_type == "boolean":
            options[cli_name] = "flag"
            options[f"no-{cli_name}"] = "flag"
            continue
        options[cli_name] = "list" if shape_type == "list" else "scalar"
        item_type = (
            shapes.get(shape.get("member", {}).get("shape", ""), {}).get("type")
            if shape_type == "list"
            else shape_type
        )
        if item_type != "string" or member.lower() in _NOT_IDENTIFIERS:
            continue
        root = _identifier_root(member)
        if root is None and member not in required:
            continue
        candidates.append(_Member(cli_name, member, root, member in required, index))
    return _OperationSpec(operation, options, tuple(candidates))


def _identifier_root(member: str) -> str | None:
    if member.lower() in _BARE_ID_MEMBERS:
        return member.lower().removesuffix("s")
    for suffix in _ID_SUFFIXES:
        if member.endswith(suffix):
            return member[: -len(suffix)].lower()
    return None


# --------------------------------------------------------------------------------------------
# API operations
# --------------------------------------------------------------------------------------------


def _iam_actions(service: _Service, operation: str) -> tuple[str, ...]:
    actions = IAM_ACTION_EXCEPTIONS.get((service.name, operation))
    if actions is not None:
        return actions
    if service.name in _HTTP_METHOD_ACTION_SERVICES:
        method = service.model["operations"][operation].get("http", {}).get("method")
        if method:
            return (f"apigateway:{method}",)
    return (f"{service.prefix}:{operation}",)


_WORD = re.compile(r"[A-Z]+[a-z0-9]*|[a-z0-9]+")


def operation_access(service: str, operation: str) -> Access:
    """Access level of a botocore operation, from its verb and the admin rules above."""
    words = _WORD.findall(operation)
    verb = words[0] if words else ""
    if verb == "Batch" and len(words) > 1:
        verb = words[1]
    if (service, operation) in _ADMIN_OPERATIONS:
        return "admin"
    if verb in _READ_VERBS:
        return "read"
    if service in _ADMIN_SERVICES or _ADMIN_NAME.search(operation):
        return "admin"
    if (service, operation) in _WRITE_OPERATIONS:
        return "write"
    if verb in _DELETE_VERBS or (service, operation) in _DELETE_OPERATIONS:
        return "delete"
    return "write"


def _classify_api(
    call: _Call, service: _Service, operation: str, tokens: Sequence[str]
) -> list[Operation]:
    spec = _operation_spec(service.name, operation)
    args = _parse_options(tokens, spec.options, {"generate-cli-skeleton": _SKELETON_VALUES})
    if args.has("generate-cli-skeleton") or _asks_help(args):
        return []  # prints a JSON skeleton or the help, calls nothing
    access = operation_access(service.name, operation)
    risk = _RISK_BY_ACCESS[access]
    flags: list[str] = []
    attributes: dict[str, str | None] = {}
    name = service.name

    if (name, operation) in _CRITICAL_OPERATIONS:
        risk = "critical"
    if operation in _FINAL_SNAPSHOT_OPERATIONS and args.has("skip-final-snapshot"):
        flags.append("no-final-snapshot")
    if name == "iam" and operation.startswith("Delete"):
        risk = "critical"
    if name == "iam" and args.has("policy-arn"):
        attributes["policyArn"] = args.get("policy-arn")
        if operation.startswith("Attach") and _ADMIN_POLICY_ARN.search(
            args.get("policy-arn") or ""
        ):
            risk = "critical"
            flags.append("administrator-access")
    if name == "iam" and _ALLOW_ALL_DOCUMENT.search(args.get("policy-document") or ""):
        risk = "critical"
        flags.append("administrator-access")
    if name == "organizations" and access != "read":
        risk = "critical"
    if name == "secretsmanager" and args.has("force-delete-without-recovery"):
        risk = "critical"
        flags.append("force")
    if any(option == "force" or option.startswith("force-") for option in args.options):
        flags.append("force")
    if _grants_public(args):
        risk = max_risk(risk, "high")
        flags.append("public")
    dry_run = args.has("dry-run")

    if name == "s3":
        return _classify_s3api(call, service, operation, args, access, risk, flags, dry_run)

    resource = _pick_resource(spec, operation, args)
    return [
        call.make(
            action,
            access,
            resource=resource,
            risk=risk,
            flags=flags,
            attributes=attributes,
            dry_run=dry_run,
        )
        for action in _iam_actions(service, operation)
    ]


def _pick_resource(spec: _OperationSpec, operation: str, args: _Args) -> str | None:
    """The value of the argument that names what the operation acts on, from the operation's
    input members: an identifier member whose name is in the operation's name (``--stack-name``
    for DeleteStack, not ``--role-arn``; ``--role-name`` rather than ``--policy-arn`` for
    AttachRolePolicy, the earlier word winning), else any identifier (``--topic-arn`` rather
    than the required ``--message``), required ones first, else any required string; an ARN
    value breaks the remaining ties. Several values (``--instance-ids a b``) are joined
    with commas."""
    lowered = operation.lower()
    best: tuple[Any, ...] | None = None
    best_value: str | None = None
    for member in spec.candidates:
        values = [
            value
            for value in args.options.get(member.cli_name, ())
            if value and not value.startswith(("{", "[", "file://", "fileb://"))
        ]
        if not values:
            continue
        position = lowered.find(member.root) if member.root else -1
        score = (
            position >= 0,
            member.root is not None,
            member.required,
            -position if position >= 0 else 0,
            values[0].startswith("arn:"),
            -member.index,
        )
        if best is None or score > best:
            best = score
            best_value = ",".join(values)
    return best_value


def _grants_public(args: _Args) -> bool:
    if (args.get("acl") or "") in _PUBLIC_ACLS:
        return True
    grants = [
        value
        for name in ("grants", "grant-read", "grant-read-acp", "grant-write", "grant-full-control")
        for value in args.options.get(name, ())
    ]
    return any(_ALL_USERS_GRANTEE.search(grant) for grant in grants)


def _classify_wait(call: _Call, service: _Service, tokens: Sequence[str]) -> list[Operation]:
    waiter = tokens[0] if tokens and not tokens[0].startswith("--") else ""
    operation = _waiters(service.name).get(waiter)
    if not operation or operation not in service.model.get("operations", {}):
        return [call.unknown()]
    spec = _operation_spec(service.name, operation)
    args = _parse_options(tokens[1:], spec.options)
    if _asks_help(args):
        return []
    if service.name == "s3":
        resource = _s3_api_resource(call, args, operation)
    else:
        resource = _pick_resource(spec, operation, args)
    return [
        call.make(action, "read", resource=resource, attributes={"waiter": waiter})
        for action in _iam_actions(service, operation)
    ]


# --------------------------------------------------------------------------------------------
# S3: s3api resources and the high-level commands
# --------------------------------------------------------------------------------------------


def _s3_arn(call: _Call, bucket: str, key: str | None = None, *, wildcard: bool = False) -> str:
    """``arn:aws:s3:::bucket`` / ``.../bucket/key`` / ``.../bucket/prefix*``. A bucket given
    as an access point ARN keeps it (``arn:...:accesspoint/name/object/key``)."""
    if bucket.startswith("arn:"):
        base = bucket
        separator = "/object/"
    else:
        base = f"arn:{call.partition}:s3:::{bucket}"
        separator = "/"
    if key is None:
        return base
    if wildcard:
        if key and not key.endswith("/"):
            key += "/"
        key += "*"
    return f"{base}{separator}{key}"


def _s3_api_resource(call: _Call, args: _Args, operation: str) -> str | None:
    bucket = args.get("bucket")
    if not bucket:
        return None
    if operation == "DeleteObjects":
        return _s3_arn(call, bucket, "", wildcard=True)
    key = args.get("key")
    return _s3_arn(call, bucket, key) if key else _s3_arn(call, bucket)


def _classify_s3api(
    call: _Call,
    service: _Service,
    operation: str,
    args: _Args,
    access: Access,
    risk: Risk,
    flags: list[str],
    dry_run: bool,
) -> list[Operation]:
    resource = _s3_api_resource(call, args, operation)
    attributes = {"prefix": args.get("prefix")}
    actions = _iam_actions(service, operation)
    if operation in ("CopyObject", "UploadPartCopy"):
        source = _split_copy_source(args.get("copy-source") or "")
        source_arn = _s3_arn(call, *source) if source else None
        return [
            call.make(actions[0], "read", resource=source_arn, flags=flags, attributes=attributes),
            call.make(actions[1], access, resource=resource, risk=risk, flags=flags),
        ]
    return [
        call.make(
            action,
            access,
            resource=resource,
            risk=risk,
            flags=flags,
            attributes=attributes,
            dry_run=dry_run,
        )
        for action in actions
    ]


def _split_copy_source(value: str) -> tuple[str, str] | None:
    value = value.split("?versionId=", 1)[0].lstrip("/")
    bucket, slash, key = value.partition("/")
    if bucket.startswith("arn:"):
        # arn:aws:s3:region:account:accesspoint/name/object/key
        marker = value.find("/object/")
        if marker < 0:
            return None
        return value[:marker], value[marker + len("/object/") :]
    return (bucket, key) if bucket and slash else None


@dataclass(frozen=True)
class _S3Path:
    bucket: str
    key: str


_S3_FLAGS = frozenset(
    {
        "dryrun",
        "quiet",
        "recursive",
        "delete",
        "force",
        "only-show-errors",
        "no-progress",
        "follow-symlinks",
        "no-follow-symlinks",
        "no-guess-mime-type",
        "exact-timestamps",
        "size-only",
        "human-readable",
        "summarize",
        "ignore-glacier-warnings",
        "force-glacier-transfer",
        "no-overwrite",
    }
)
_S3_OPTION_KINDS: Mapping[str, str] = {
    **dict.fromkeys(_S3_FLAGS, "flag"),
    "grants": "list",
}
_S3_OPTIONAL_VALUES: Mapping[str, frozenset[str]] = {
    "sse": frozenset({"AES256", "aws:kms", "aws:kms:dsse"}),
    "sse-c": frozenset({"AES256"}),
    "sse-c-copy-source": frozenset({"AES256"}),
    "request-payer": frozenset({"requester"}),
}


def _s3_path(value: str, *, bare_is_s3: bool = False) -> _S3Path | None:
    """``s3://bucket/key`` (or, where the CLI allows it, ``bucket/key``) → bucket and key."""
    if value.startswith("s3://"):
        rest = value[5:]
    elif bare_is_s3 and value:
        rest = value
    else:
        return None
    if rest.startswith("arn:"):
        # An access point: s3://arn:aws:s3:region:account:accesspoint/name/key
        head, _, tail = rest.partition("/")
        name, _, key = tail.partition("/")
        return _S3Path(f"{head}/{name}" if name else head, key)
    bucket, _, key = rest.partition("/")
    return _S3Path(bucket, key) if bucket else None


def _local_path(call: _Call, value: str) -> str:
    if value == "-":
        return value
    if value.startswith("~") and call.context.home:
        value = call.context.home + value[1:]
    if not posixpath.isabs(value) and call.context.cwd:
        value = posixpath.join(call.context.cwd, value)
    return posixpath.normpath(value)


def _classify_s3(call: _Call, tokens: Sequence[str]) -> list[Operation]:
    args = _parse_options(tokens, _S3_OPTION_KINDS, _S3_OPTIONAL_VALUES)
    if _asks_help(args):
        return []
    command = call.operation
    recursive = args.has("recursive")
    dry_run = args.has("dryrun")
    flags: list[str] = []
    if recursive:
        flags.append("recursive")
    if args.has("force"):
        flags.append("force")
    public = _grants_public(args)
    if public:
        flags.append("public")
    paths = args.positionals

    if command in ("cp", "mv", "sync"):
        if len(paths) != 2:
            return [call.unknown()]
        return _s3_transfer(call, command, paths[0], paths[1], args, flags, public, dry_run)

    if command == "ls":
        target = _s3_path(paths[0], bare_is_s3=True) if paths else None
        if target is None:
            return [call.make("s3:ListAllMyBuckets", "read", flags=flags, dry_run=dry_run)]
        return [
            call.make(
                "s3:ListBucket",
                "read",
                resource=_s3_arn(call, target.bucket),
                flags=flags,
                attributes={"prefix": target.key},
                dry_run=dry_run,
            )
        ]

    target = _s3_path(paths[0], bare_is_s3=True) if paths else None
    if target is None:
        return [call.unknown()]
    if command == "rm":
        risk: Risk = "critical" if recursive and not target.key else "high"
        return [
            call.make(
                "s3:DeleteObject",
                "delete",
                resource=_s3_arn(call, target.bucket, target.key, wildcard=recursive),
                risk=risk,
                flags=flags,
                dry_run=dry_run,
            )
        ]
    if command == "mb":
        return [call.make("s3:CreateBucket", "write", resource=_s3_arn(call, target.bucket))]
    if command == "rb":
        bucket_arn = _s3_arn(call, target.bucket)
        if not args.has("force"):
            return [call.make("s3:DeleteBucket", "delete", resource=bucket_arn)]
        return [
            call.make(
                "s3:DeleteObject",
                "delete",
                resource=_s3_arn(call, target.bucket, "", wildcard=True),
                risk="critical",
                flags=("force", "recursive"),
            ),
            call.make(
                "s3:DeleteBucket", "delete", resource=bucket_arn, risk="critical", flags=("force",)
            ),
        ]
    if command == "presign":
        return [
            call.make(
                "s3:GetObject",
                "read",
                resource=_s3_arn(call, target.bucket, target.key),
                attributes={"expiresIn": args.get("expires-in")},
            )
        ]
    if command == "website":
        return [call.make("s3:PutBucketWebsite", "write", resource=_s3_arn(call, target.bucket))]
    return [call.unknown()]


def _s3_transfer(
    call: _Call,
    command: str,
    source: str,
    destination: str,
    args: _Args,
    flags: list[str],
    public: bool,
    dry_run: bool,
) -> list[Operation]:
    """cp, mv and sync: GetObject on an S3 source, PutObject on an S3 destination, and the
    deletes that mv (source) and ``sync --delete`` (destination) add."""
    recursive = command == "sync" or args.has("recursive")
    if command == "sync":
        flags = [*flags, "recursive"]
    src = _s3_path(source)
    dst = _s3_path(destination)
    if src is None and dst is None:
        return [call.unknown()]
    sync_delete = command == "sync" and args.has("delete")
    if sync_delete:
        flags = [*flags, "delete"]
    operations: list[Operation] = []
    local_attributes: dict[str, str | None] = {}
    if src is None:
        local_attributes["localPath"] = _local_path(call, source)
    elif dst is None:
        local_attributes["localPath"] = _local_path(call, destination)

    if src is not None:
        operations.append(
            call.make(
                "s3:GetObject",
                "read",
                resource=_s3_arn(call, src.bucket, src.key, wildcard=recursive),
                # sync --delete to a local directory deletes local files
                risk="medium" if sync_delete and dst is None else None,
                flags=flags,
                attributes=local_attributes,
                dry_run=dry_run,
            )
        )
    if dst is not None:
        key = dst.key
        if not recursive and src is None and source != "-" and (not key or key.endswith("/")):
            key += posixpath.basename(source.rstrip("/"))
        operations.append(
            call.make(
                "s3:PutObject",
                "write",
                resource=_s3_arn(call, dst.bucket, key, wildcard=recursive),
                risk="high" if public else None,
                flags=flags,
                attributes=local_attributes,
                dry_run=dry_run,
            )
        )
        if sync_delete:
            operations.append(
                call.make(
                    "s3:DeleteObject",
                    "delete",
                    resource=_s3_arn(call, dst.bucket, dst.key, wildcard=True),
                    flags=flags,
                    dry_run=dry_run,
                )
            )
    if command == "mv" and src is not None:
        operations.append(
            call.make(
                "s3:DeleteObject",
                "delete",
                resource=_s3_arn(call, src.bucket, src.key, wildcard=recursive),
                flags=flags,
                dry_run=dry_run,
            )
        )
    return operations


# --------------------------------------------------------------------------------------------
# aws configure, aws ddb, and the commands the CLI adds to services
# --------------------------------------------------------------------------------------------

_CREDENTIAL_KEYS = frozenset(
    {"aws_access_key_id", "aws_secret_access_key", "aws_session_token", "credential_process"}
)
_CONFIGURE: Mapping[str, tuple[str, Access, Risk | None]] = {
    "": ("aws-cli:Configure", "admin", None),
    "set": ("aws-cli:ConfigureSet", "admin", None),
    "get": ("aws-cli:ConfigureGet", "read", None),
    "list": ("aws-cli:ConfigureList", "read", None),
    "list-profiles": ("aws-cli:ConfigureListProfiles", "read", None),
    "export-credentials": ("aws-cli:ConfigureExportCredentials", "read", "high"),
    "import": ("aws-cli:ConfigureImport", "admin", None),
    "sso": ("aws-cli:ConfigureSso", "admin", None),
    "sso-session": ("aws-cli:ConfigureSsoSession", "admin", None),
    "add-model": ("aws-cli:ConfigureAddModel", "write", None),
    "mfa-login": ("aws-cli:ConfigureMfaLogin", "admin", None),
}


def _classify_configure(call: _Call, tokens: Sequence[str]) -> list[Operation]:
    """``aws configure [SUBCOMMAND]``: local configuration, but it decides which credentials
    and accounts every later call uses, so writes to it are admin."""
    args = _parse_options(tokens, {})
    subcommand = args.positionals[0] if args.positionals else ""
    entry = _CONFIGURE.get(subcommand)
    call.service = "configure"
    call.operation = subcommand
    if entry is None:
        return [call.unknown()]
    action, access, risk = entry
    key = args.positionals[1] if len(args.positionals) > 1 else None
    flags: list[str] = []
    if subcommand == "export-credentials" or (key and key.rsplit(".", 1)[-1] in _CREDENTIAL_KEYS):
        flags.append("credentials")
    return [
        call.make(
            action,
            access,
            resource=key if subcommand in ("set", "get") else None,
            risk=risk,
            flags=flags,
        )
    ]


def _classify_ddb(call: _Call, tokens: Sequence[str]) -> list[Operation]:
    """The CLI v2 ``aws ddb put TABLE ITEMS`` / ``aws ddb select TABLE`` commands."""
    args = _parse_options(tokens, {"consistent-read": "flag", "no-consistent-read": "flag"})
    table = args.positionals[0] if args.positionals else None
    if call.operation == "put":
        return [call.make("dynamodb:PutItem", "write", resource=table)]
    if call.operation == "select":
        action = "dynamodb:Query" if args.has("key-condition") else "dynamodb:Scan"
        return [call.make(action, "read", resource=table)]
    return [call.unknown()]


@dataclass(frozen=True)
class _Custom:
    """A command the CLI adds to a service: the IAM actions it calls and where its resource
    is (an option name, ``#0`` for the first positional, ``s3-bucket:OPTION`` for a bucket)."""

    actions: tuple[str, ...]
    access: Access
    resource: str | None = None
    flags: tuple[str, ...] = ()


_CUSTOM_COMMANDS: Mapping[tuple[str, str], _Custom] = {
    ("cloudformation", "deploy"): _Custom(
        ("cloudformation:CreateChangeSet", "cloudformation:ExecuteChangeSet"),
        "write",
        "stack-name",
    ),
    ("cloudformation", "package"): _Custom(("s3:PutObject",), "write", "s3-bucket:s3-bucket"),
    ("ecr", "get-login-password"): _Custom(
        ("ecr:GetAuthorizationToken",), "read", flags=("credentials",)
    ),
    ("ecr", "get-login"): _Custom(("ecr:GetAuthorizationToken",), "read", flags=("credentials",)),
    ("ecr-public", "get-login-password"): _Custom(
        ("ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken"),
        "read",
        flags=("credentials",),
    ),
    ("eks", "update-kubeconfig"): _Custom(("eks:DescribeCluster",), "read", "name"),
    ("eks", "get-token"): _Custom(
        ("sts:GetCallerIdentity",), "read", "cluster-name", flags=("credentials",)
    ),
    ("ecs", "deploy"): _Custom(
        ("ecs:RegisterTaskDefinition", "codedeploy:CreateDeployment"), "write", "service"
    ),
    ("codeartifact", "login"): _Custom(
        ("codeartifact:GetAuthorizationToken", "codeartifact:GetRepositoryEndpoint"),
        "read",
        "repository",
        flags=("credentials",),
    ),
    ("codecommit", "credential-helper"): _Custom(
        ("codecommit:GitPull",), "read", flags=("credentials",)
    ),
    ("deploy", "push"): _Custom(
        ("s3:PutObject", "codedeploy:RegisterApplicationRevision"), "write", "application-name"
    ),
    ("deploy", "register"): _Custom(
        ("iam:CreateUser", "iam:CreateAccessKey", "codedeploy:RegisterOnPremisesInstance"),
        "admin",
        "instance-name",
    ),
    ("deploy", "deregister"): _Custom(
        ("codedeploy:DeregisterOnPremisesInstance",), "delete", "instance-name"
    ),
    ("emr", "create-cluster"): _Custom(("elasticmapreduce:RunJobFlow",), "write", "name"),
    ("emr", "terminate-clusters"): _Custom(
        ("elasticmapreduce:TerminateJobFlows",), "delete", "cluster-ids"
    ),
    ("emr", "add-steps"): _Custom(("elasticmapreduce:AddJobFlowSteps",), "write", "cluster-id"),
    ("emr", "create-default-roles"): _Custom(("iam:CreateRole", "iam:AttachRolePolicy"), "admin"),
    ("emr", "ssh"): _Custom(("elasticmapreduce:DescribeCluster",), "write", "cluster-id"),
    ("emr-containers", "update-role-trust-policy"): _Custom(
        ("iam:UpdateAssumeRolePolicy",), "admin", "role-name"
    ),
    ("rds", "generate-db-auth-token"): _Custom(
        ("rds-db:connect",), "read", "hostname", flags=("credentials",)
    ),
    ("sso", "login"): _Custom(("sso-oauth:CreateToken",), "write"),
    ("sso", "logout"): _Custom(("sso:Logout",), "write"),
    ("configservice", "subscribe"): _Custom(
        (
            "config:PutConfigurationRecorder",
            "config:PutDeliveryChannel",
            "config:StartConfigurationRecorder",
        ),
        "write",
    ),
    ("configservice", "get-status"): _Custom(
        ("config:DescribeConfigurationRecorderStatus", "config:DescribeDeliveryChannelStatus"),
        "read",
    ),
    ("cloudtrail", "validate-logs"): _Custom(
        ("cloudtrail:DescribeTrails", "s3:GetObject"), "read", "trail-arn"
    ),
    ("logs", "tail"): _Custom(("logs:FilterLogEvents",), "read", "#0"),
    ("lightsail", "push-container-image"): _Custom(
        ("lightsail:RegisterContainerImage",), "write", "service-name"
    ),
    ("gamelift", "upload-build"): _Custom(
        ("gamelift:CreateBuild", "gamelift:RequestUploadCredentials"), "write", "name"
    ),
    ("gamelift", "get-game-session-log"): _Custom(
        ("gamelift:GetGameSessionLogUrl",), "read", "game-session-id"
    ),
    ("dlm", "create-default-role"): _Custom(("iam:CreateRole", "iam:AttachRolePolicy"), "admin"),
    ("datapipeline", "create-default-roles"): _Custom(
        ("iam:CreateRole", "iam:AttachRolePolicy"), "admin"
    ),
    ("datapipeline", "list-runs"): _Custom(
        ("datapipeline:QueryObjects", "datapipeline:DescribeObjects"), "read", "pipeline-id"
    ),
    ("ec2-instance-connect", "ssh"): _Custom(
        ("ec2-instance-connect:SendSSHPublicKey",), "write", "instance-id"
    ),
    ("ec2-instance-connect", "open-tunnel"): _Custom(
        ("ec2-instance-connect:OpenTunnel",), "write", "instance-id"
    ),
}


def _classify_custom(call: _Call, custom: _Custom, tokens: Sequence[str]) -> list[Operation]:
    args = _parse_options(
        tokens, {"no-execute-changeset": "flag", "fail-on-empty-changeset": "flag"}
    )
    if _asks_help(args):
        return []
    resource: str | None = None
    if custom.resource == "#0":
        resource = args.positionals[0] if args.positionals else None
    elif custom.resource and custom.resource.startswith("s3-bucket:"):
        bucket = args.get(custom.resource.split(":", 1)[1])
        resource = _s3_arn(call, bucket) if bucket else None
    elif custom.resource:
        values = args.options.get(custom.resource, [])
        resource = ",".join(values) if values else None
    actions = custom.actions
    if (call.service, call.operation) == ("cloudformation", "deploy") and args.has(
        "no-execute-changeset"
    ):
        actions = actions[:1]
    return [
        call.make(action, custom.access, resource=resource, flags=custom.flags)
        for action in actions
    ]
