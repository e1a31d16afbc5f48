"""The entry point: ``aws ...`` command lines to Operations."""

from __future__ import annotations

from trailguard.classify._tool_common import env_value
from trailguard.classify.aws.args import _split_globals
from trailguard.classify.aws.cli import (
    _CUSTOM_COMMANDS,
    _classify_configure,
    _classify_custom,
    _classify_ddb,
)
from trailguard.classify.aws.models import _service
from trailguard.classify.aws.names import _LOCAL_COMMANDS, _RENAMED_AWAY, SERVICE_RENAMES
from trailguard.classify.aws.operations import _classify_api, _classify_wait
from trailguard.classify.aws.resources import _Call
from trailguard.classify.aws.s3 import _classify_s3
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.events import Operation

# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


PROGRAMS = frozenset({"aws"})


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
        or env_value(command, context, "AWS_PROFILE", "AWS_DEFAULT_PROFILE")
        or "default",
        region=globals_.get("--region")
        or env_value(command, context, "AWS_REGION", "AWS_DEFAULT_REGION"),
        endpoint=globals_.get("--endpoint-url") or env_value(command, context, "AWS_ENDPOINT_URL"),
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
