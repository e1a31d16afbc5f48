"""Access and risk of AWS API operations: verbs, permission management, irreversible calls."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from trailguard.events import Access, Risk

if TYPE_CHECKING:
    from trailguard.classify.aws.resources import _Args


KIND = "aws"
UNKNOWN_ACTION = "aws:Unknown"
_RISK_BY_ACCESS: dict[Access, Risk] = {
    "read": "low",
    "write": "medium",
    "delete": "high",
    "admin": "high",
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


def _grants_public(args: _Args) -> bool:
    if (args.get("acl") or "") in _PUBLIC_ACLS:
        return True
    grants = [
        value
        for name in ("grants", "grant-read", "grant-read-acp", "grant-write", "grant-full-control")
        for value in args.options.get(name, ())
    ]
    return any(_ALL_USERS_GRANTEE.search(grant) for grant in grants)
