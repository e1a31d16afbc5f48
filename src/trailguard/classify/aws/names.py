"""The AWS CLI's command names and the IAM action names of API operations."""

from __future__ import annotations

from collections.abc import Mapping

from trailguard.classify.aws.resources import _Service

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


def _iam_actions(service: _Service, operation: str) -> tuple[str, ...]:
    actions = IAM_ACTION_EXCEPTIONS.get((service.name, operation))
    if actions is not None:
        return actions
    if service.name in _HTTP_METHOD_ACTION_SERVICES:
        method = service.model["operations"][operation].get("http", {}).get("method")
        if method:
            return (f"apigateway:{method}",)
    return (f"{service.prefix}:{operation}",)
