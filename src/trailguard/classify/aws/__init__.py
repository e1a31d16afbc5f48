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

Modules: ``names`` (CLI command names, IAM action names), ``rules`` (access and risk),
``resources`` (what a call acts on), ``args`` (the CLI's argument parsing), ``models`` (botocore
service models), ``operations`` (API calls), ``s3`` (s3api and ``aws s3``), ``cli`` (the CLI's own
commands), ``entry`` (``classify``).
"""

from __future__ import annotations

from trailguard.classify._tool_common import looks_prod
from trailguard.classify.aws.entry import PROGRAMS, classify
from trailguard.classify.aws.names import IAM_ACTION_EXCEPTIONS, SERVICE_RENAMES
from trailguard.classify.aws.operations import operation_access

__all__ = [
    "IAM_ACTION_EXCEPTIONS",
    "PROGRAMS",
    "SERVICE_RENAMES",
    "classify",
    "looks_prod",
    "operation_access",
]
