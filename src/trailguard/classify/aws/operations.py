"""API operations as Operations: access, risk, flags and resources from the model."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from trailguard.classify._tool_common import max_risk
from trailguard.classify.aws.args import _asks_help, _parse_options
from trailguard.classify.aws.models import _operation_spec, _waiters
from trailguard.classify.aws.names import _SKELETON_VALUES, _iam_actions
from trailguard.classify.aws.resources import _Args, _Call, _OperationSpec, _Service
from trailguard.classify.aws.rules import (
    _ADMIN_NAME,
    _ADMIN_OPERATIONS,
    _ADMIN_POLICY_ARN,
    _ADMIN_SERVICES,
    _ALLOW_ALL_DOCUMENT,
    _CRITICAL_OPERATIONS,
    _DELETE_OPERATIONS,
    _DELETE_VERBS,
    _FINAL_SNAPSHOT_OPERATIONS,
    _READ_VERBS,
    _RISK_BY_ACCESS,
    _WRITE_OPERATIONS,
    _grants_public,
)
from trailguard.classify.aws.s3 import _classify_s3api, _s3_api_resource
from trailguard.events import Access, Operation

# --------------------------------------------------------------------------------------------
# API operations
# --------------------------------------------------------------------------------------------


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
    return call.make_each(
        _iam_actions(service, operation),
        access,
        resource=resource,
        risk=risk,
        flags=flags,
        attributes=attributes,
        dry_run=dry_run,
    )


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
