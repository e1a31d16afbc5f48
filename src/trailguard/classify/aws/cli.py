"""The CLI's own commands (configure, ddb, waiters, customizations)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trailguard.classify.aws.args import _asks_help, _parse_options
from trailguard.classify.aws.resources import _Call
from trailguard.classify.aws.s3 import _s3_arn
from trailguard.events import Access, Operation, Risk

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
