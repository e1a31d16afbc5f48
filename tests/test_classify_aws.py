"""The AWS CLI classifier: IAM actions, resources, access, risk, flags and attributes."""

from __future__ import annotations

import shlex
import statistics
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailguard.classify import aws
from trailguard.classify.aws import models as aws_models
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.events import Operation

CWD = "/home/dev/proj"


def run(
    text: str,
    *,
    env: dict[str, str] | None = None,
    session_env: dict[str, str] | None = None,
) -> list[Operation]:
    """Classify ``text`` as the shell parser would hand it over: quotes removed."""
    command = SimpleCommand(argv=tuple(shlex.split(text)), text=text, env=env or {})
    context = ClassifyContext(cwd=CWD, home="/home/dev", env=session_env or {})
    return aws.classify(command, context)


def summary(operations: list[Operation]) -> list[tuple[str, str, str, str | None]]:
    return [(op.action, op.access, op.risk, op.resource) for op in operations]


S3 = "arn:aws:s3:::"
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"

# (command, [(action, access, risk, resource), ...])
OPERATION_CASES = [
    # --- s3api: the operation ≠ IAM action exceptions ---
    pytest.param(
        "aws s3api list-objects-v2 --bucket logs --prefix 2024/",
        [("s3:ListBucket", "read", "low", f"{S3}logs")],
        id="s3api-list-objects-v2",
    ),
    pytest.param(
        "aws s3api get-object --bucket b --key dir/a.txt /tmp/a.txt",
        [("s3:GetObject", "read", "low", f"{S3}b/dir/a.txt")],
        id="s3api-get-object-outfile-positional",
    ),
    pytest.param(
        "aws s3api head-object --bucket b --key k",
        [("s3:GetObject", "read", "low", f"{S3}b/k")],
        id="s3api-head-object",
    ),
    pytest.param(
        "aws s3api list-buckets",
        [("s3:ListAllMyBuckets", "read", "low", None)],
        id="s3api-list-buckets",
    ),
    pytest.param(
        "aws s3api head-bucket --bucket b",
        [("s3:ListBucket", "read", "low", f"{S3}b")],
        id="s3api-head-bucket",
    ),
    pytest.param(
        "aws s3api put-bucket-policy --bucket b --policy file://policy.json",
        [("s3:PutBucketPolicy", "admin", "high", f"{S3}b")],
        id="s3api-put-bucket-policy",
    ),
    pytest.param(
        "aws s3api put-bucket-acl --bucket b --acl private",
        [("s3:PutBucketAcl", "admin", "high", f"{S3}b")],
        id="s3api-put-bucket-acl",
    ),
    pytest.param(
        "aws s3api put-public-access-block --bucket b "
        "--public-access-block-configuration BlockPublicAcls=true",
        [("s3:PutBucketPublicAccessBlock", "admin", "high", f"{S3}b")],
        id="s3api-put-public-access-block",
    ),
    pytest.param(
        "aws s3api delete-objects --bucket b --delete 'Objects=[{Key=a},{Key=b}]'",
        [("s3:DeleteObject", "delete", "high", f"{S3}b/*")],
        id="s3api-delete-objects",
    ),
    pytest.param(
        "aws s3api delete-bucket --bucket b",
        [("s3:DeleteBucket", "delete", "high", f"{S3}b")],
        id="s3api-delete-bucket",
    ),
    pytest.param(
        "aws s3api copy-object --copy-source src/a.txt --bucket dst --key b.txt",
        [
            ("s3:GetObject", "read", "low", f"{S3}src/a.txt"),
            ("s3:PutObject", "write", "medium", f"{S3}dst/b.txt"),
        ],
        id="s3api-copy-object-two-actions",
    ),
    pytest.param(
        "aws s3api put-object --bucket b --key k --body f.txt",
        [("s3:PutObject", "write", "medium", f"{S3}b/k")],
        id="s3api-put-object",
    ),
    # --- s3 high-level commands, every direction ---
    pytest.param(
        "aws s3 cp report.csv s3://b/reports/",
        [("s3:PutObject", "write", "medium", f"{S3}b/reports/report.csv")],
        id="s3-cp-local-to-s3-dir",
    ),
    pytest.param(
        "aws s3 cp s3://b/k.txt ./k.txt",
        [("s3:GetObject", "read", "low", f"{S3}b/k.txt")],
        id="s3-cp-s3-to-local",
    ),
    pytest.param(
        "aws s3 cp s3://a/k s3://b/k2",
        [
            ("s3:GetObject", "read", "low", f"{S3}a/k"),
            ("s3:PutObject", "write", "medium", f"{S3}b/k2"),
        ],
        id="s3-cp-s3-to-s3",
    ),
    pytest.param(
        "aws s3 cp --recursive ./dist s3://site/assets",
        [("s3:PutObject", "write", "medium", f"{S3}site/assets/*")],
        id="s3-cp-recursive-up",
    ),
    pytest.param(
        "aws s3 cp s3://b/dir ./local --recursive --exclude '*' --include '*.txt'",
        [("s3:GetObject", "read", "low", f"{S3}b/dir/*")],
        id="s3-cp-recursive-down-with-filters",
    ),
    pytest.param(
        "aws s3 cp - s3://b/stream.log",
        [("s3:PutObject", "write", "medium", f"{S3}b/stream.log")],
        id="s3-cp-stdin",
    ),
    pytest.param(
        "aws s3 mv ./f.txt s3://b/",
        [("s3:PutObject", "write", "medium", f"{S3}b/f.txt")],
        id="s3-mv-local-to-s3",
    ),
    pytest.param(
        "aws s3 mv s3://b/k ./k",
        [
            ("s3:GetObject", "read", "low", f"{S3}b/k"),
            ("s3:DeleteObject", "delete", "high", f"{S3}b/k"),
        ],
        id="s3-mv-s3-to-local",
    ),
    pytest.param(
        "aws s3 mv s3://a/k s3://b/k",
        [
            ("s3:GetObject", "read", "low", f"{S3}a/k"),
            ("s3:PutObject", "write", "medium", f"{S3}b/k"),
            ("s3:DeleteObject", "delete", "high", f"{S3}a/k"),
        ],
        id="s3-mv-s3-to-s3",
    ),
    pytest.param(
        "aws s3 sync . s3://b/site",
        [("s3:PutObject", "write", "medium", f"{S3}b/site/*")],
        id="s3-sync-up",
    ),
    pytest.param(
        "aws s3 sync . s3://b/site --delete",
        [
            ("s3:PutObject", "write", "medium", f"{S3}b/site/*"),
            ("s3:DeleteObject", "delete", "high", f"{S3}b/site/*"),
        ],
        id="s3-sync-up-delete",
    ),
    pytest.param(
        "aws s3 sync s3://b/data ./data",
        [("s3:GetObject", "read", "low", f"{S3}b/data/*")],
        id="s3-sync-down",
    ),
    pytest.param(
        "aws s3 sync s3://a/x s3://b/y --delete",
        [
            ("s3:GetObject", "read", "low", f"{S3}a/x/*"),
            ("s3:PutObject", "write", "medium", f"{S3}b/y/*"),
            ("s3:DeleteObject", "delete", "high", f"{S3}b/y/*"),
        ],
        id="s3-sync-s3-to-s3-delete",
    ),
    pytest.param(
        "aws s3 rm s3://b/k",
        [("s3:DeleteObject", "delete", "high", f"{S3}b/k")],
        id="s3-rm-object",
    ),
    pytest.param(
        "aws s3 rm s3://b/logs/ --recursive",
        [("s3:DeleteObject", "delete", "high", f"{S3}b/logs/*")],
        id="s3-rm-recursive-prefix",
    ),
    pytest.param(
        "aws s3 rm --recursive s3://b",
        [("s3:DeleteObject", "delete", "critical", f"{S3}b/*")],
        id="s3-rm-recursive-bucket-root",
    ),
    pytest.param("aws s3 ls", [("s3:ListAllMyBuckets", "read", "low", None)], id="s3-ls-buckets"),
    pytest.param(
        "aws s3 ls s3://b/pre/ --recursive --human-readable",
        [("s3:ListBucket", "read", "low", f"{S3}b")],
        id="s3-ls-prefix",
    ),
    pytest.param(
        "aws s3 ls mybucket", [("s3:ListBucket", "read", "low", f"{S3}mybucket")], id="s3-ls-bare"
    ),
    pytest.param(
        "aws s3 mb s3://new", [("s3:CreateBucket", "write", "medium", f"{S3}new")], id="s3-mb"
    ),
    pytest.param(
        "aws s3 rb s3://old", [("s3:DeleteBucket", "delete", "high", f"{S3}old")], id="s3-rb"
    ),
    pytest.param(
        "aws s3 rb s3://old --force",
        [
            ("s3:DeleteObject", "delete", "critical", f"{S3}old/*"),
            ("s3:DeleteBucket", "delete", "critical", f"{S3}old"),
        ],
        id="s3-rb-force",
    ),
    pytest.param(
        "aws s3 presign s3://b/k --expires-in 600",
        [("s3:GetObject", "read", "low", f"{S3}b/k")],
        id="s3-presign",
    ),
    pytest.param(
        "aws s3 website s3://b --index-document index.html --error-document e.html",
        [("s3:PutBucketWebsite", "write", "medium", f"{S3}b")],
        id="s3-website",
    ),
    pytest.param(
        "aws s3 cp s3://arn:aws:s3:us-west-2:123456789012:accesspoint/ap/k.txt .",
        [
            (
                "s3:GetObject",
                "read",
                "low",
                "arn:aws:s3:us-west-2:123456789012:accesspoint/ap/object/k.txt",
            )
        ],
        id="s3-cp-access-point",
    ),
    pytest.param(
        "aws s3 cp s3://b/k . --region cn-north-1",
        [("s3:GetObject", "read", "low", "arn:aws-cn:s3:::b/k")],
        id="s3-china-partition",
    ),
    # --- ec2 ---
    pytest.param(
        "aws ec2 describe-instances --instance-ids i-1 --output json",
        [("ec2:DescribeInstances", "read", "low", "i-1")],
        id="ec2-describe-instances",
    ),
    pytest.param(
        "aws ec2 terminate-instances --instance-ids i-1 i-2",
        [("ec2:TerminateInstances", "delete", "critical", "i-1,i-2")],
        id="ec2-terminate-instances",
    ),
    pytest.param(
        "aws ec2 stop-instances --instance-ids i-1",
        [("ec2:StopInstances", "write", "medium", "i-1")],
        id="ec2-stop-instances",
    ),
    pytest.param(
        "aws ec2 authorize-security-group-ingress --group-id sg-1 --protocol tcp --port 22 "
        "--cidr 0.0.0.0/0",
        [("ec2:AuthorizeSecurityGroupIngress", "admin", "high", "sg-1")],
        id="ec2-authorize-sg-ingress",
    ),
    pytest.param(
        "aws ec2 modify-snapshot-attribute --snapshot-id snap-1 "
        "--attribute createVolumePermission --operation-type add --group-names all",
        [("ec2:ModifySnapshotAttribute", "admin", "high", "snap-1")],
        id="ec2-share-snapshot",
    ),
    pytest.param(
        "aws ec2 wait instance-running --instance-ids i-1",
        [("ec2:DescribeInstances", "read", "low", "i-1")],
        id="ec2-waiter",
    ),
    # --- lambda ---
    pytest.param(
        "aws lambda invoke --function-name f --payload '{\"a\": 1}' out.json",
        [("lambda:InvokeFunction", "write", "medium", "f")],
        id="lambda-invoke",
    ),
    pytest.param(
        "aws lambda update-function-code --function-name f --zip-file fileb://f.zip --publish",
        [("lambda:UpdateFunctionCode", "write", "medium", "f")],
        id="lambda-update-code",
    ),
    pytest.param(
        "aws lambda get-function --function-name arn:aws:lambda:us-east-1:1:function:f",
        [("lambda:GetFunction", "read", "low", "arn:aws:lambda:us-east-1:1:function:f")],
        id="lambda-arn-value",
    ),
    pytest.param(
        "aws lambda add-permission --function-name f --statement-id s "
        "--action lambda:InvokeFunction --principal s3.amazonaws.com --source-arn arn:aws:s3:::b",
        [("lambda:AddPermission", "admin", "high", "f")],
        id="lambda-add-permission",
    ),
    # --- iam ---
    pytest.param("aws iam list-users", [("iam:ListUsers", "read", "low", None)], id="iam-list"),
    pytest.param(
        "aws iam create-user --user-name bob",
        [("iam:CreateUser", "admin", "high", "bob")],
        id="iam-create-user",
    ),
    pytest.param(
        "aws iam create-access-key --user-name bob",
        [("iam:CreateAccessKey", "admin", "high", "bob")],
        id="iam-create-access-key",
    ),
    pytest.param(
        f"aws iam attach-role-policy --role-name ci --policy-arn {ADMIN_POLICY}",
        [("iam:AttachRolePolicy", "admin", "critical", "ci")],
        id="iam-attach-administrator-access",
    ),
    pytest.param(
        "aws iam attach-user-policy --user-name bob "
        "--policy-arn arn:aws:iam::aws:policy/ReadOnlyAccess",
        [("iam:AttachUserPolicy", "admin", "high", "bob")],
        id="iam-attach-readonly",
    ),
    pytest.param(
        "aws iam detach-role-policy --role-name ci --policy-arn arn:aws:iam::1:policy/p",
        [("iam:DetachRolePolicy", "admin", "high", "ci")],
        id="iam-detach-is-admin",
    ),
    pytest.param(
        "aws iam delete-role --role-name ci",
        [("iam:DeleteRole", "admin", "critical", "ci")],
        id="iam-delete",
    ),
    pytest.param(
        "aws iam put-role-policy --role-name ci --policy-name all --policy-document "
        """'{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'""",
        [("iam:PutRolePolicy", "admin", "critical", "ci")],
        id="iam-inline-allow-all",
    ),
    # --- sts ---
    pytest.param(
        "aws sts get-caller-identity",
        [("sts:GetCallerIdentity", "read", "low", None)],
        id="sts-get-caller-identity",
    ),
    pytest.param(
        "aws sts assume-role --role-arn arn:aws:iam::1:role/deploy --role-session-name s",
        [("sts:AssumeRole", "admin", "high", "arn:aws:iam::1:role/deploy")],
        id="sts-assume-role",
    ),
    # --- dynamodb ---
    pytest.param(
        """aws dynamodb get-item --table-name users --key '{"id": {"S": "1"}}'""",
        [("dynamodb:GetItem", "read", "low", "users")],
        id="dynamodb-get-item",
    ),
    pytest.param(
        "aws dynamodb query --table-name users --key-condition-expression 'id = :v'",
        [("dynamodb:Query", "read", "low", "users")],
        id="dynamodb-query",
    ),
    pytest.param(
        "aws dynamodb batch-write-item --request-items file://items.json",
        [("dynamodb:BatchWriteItem", "write", "medium", None)],
        id="dynamodb-batch-write",
    ),
    pytest.param(
        "aws dynamodb delete-table --table-name users",
        [("dynamodb:DeleteTable", "delete", "critical", "users")],
        id="dynamodb-delete-table",
    ),
    # --- rds ---
    pytest.param(
        "aws rds describe-db-instances",
        [("rds:DescribeDBInstances", "read", "low", None)],
        id="rds-describe",
    ),
    pytest.param(
        "aws rds delete-db-instance --db-instance-identifier db1 --skip-final-snapshot",
        [("rds:DeleteDBInstance", "delete", "critical", "db1")],
        id="rds-delete-db-instance",
    ),
    pytest.param(
        "aws rds delete-db-cluster --db-cluster-identifier c1 "
        "--final-db-snapshot-identifier c1-final",
        [("rds:DeleteDBCluster", "delete", "critical", "c1")],
        id="rds-delete-db-cluster",
    ),
    # --- kms ---
    pytest.param(
        "aws kms schedule-key-deletion --key-id k1 --pending-window-in-days 7",
        [("kms:ScheduleKeyDeletion", "delete", "critical", "k1")],
        id="kms-schedule-key-deletion",
    ),
    pytest.param(
        "aws kms put-key-policy --key-id k1 --policy-name default --policy file://p.json",
        [("kms:PutKeyPolicy", "admin", "high", "k1")],
        id="kms-put-key-policy",
    ),
    pytest.param(
        "aws kms create-grant --key-id k1 --grantee-principal arn:aws:iam::1:role/r "
        "--operations Decrypt",
        [("kms:CreateGrant", "admin", "high", "k1")],
        id="kms-create-grant",
    ),
    pytest.param("aws kms list-keys", [("kms:ListKeys", "read", "low", None)], id="kms-list-keys"),
    pytest.param(
        "aws kms cancel-key-deletion --key-id k1",
        [("kms:CancelKeyDeletion", "write", "medium", "k1")],
        id="kms-cancel-key-deletion-is-not-a-delete",
    ),
    # --- cloudformation ---
    pytest.param(
        "aws cloudformation describe-stacks --stack-name api",
        [("cloudformation:DescribeStacks", "read", "low", "api")],
        id="cfn-describe",
    ),
    pytest.param(
        "aws cloudformation create-stack --stack-name api --template-body file://t.yml "
        "--role-arn arn:aws:iam::1:role/cfn",
        [("cloudformation:CreateStack", "write", "medium", "api")],
        id="cfn-create-stack-not-role-arn",
    ),
    pytest.param(
        "aws cloudformation delete-stack --stack-name api",
        [("cloudformation:DeleteStack", "delete", "critical", "api")],
        id="cfn-delete-stack",
    ),
    pytest.param(
        "aws cloudformation deploy --stack-name api --template-file t.yml",
        [
            ("cloudformation:CreateChangeSet", "write", "medium", "api"),
            ("cloudformation:ExecuteChangeSet", "write", "medium", "api"),
        ],
        id="cfn-deploy-custom-command",
    ),
    pytest.param(
        "aws cloudformation deploy --stack-name api --template-file t.yml --no-execute-changeset",
        [("cloudformation:CreateChangeSet", "write", "medium", "api")],
        id="cfn-deploy-no-execute",
    ),
    # --- ecs ---
    pytest.param(
        "aws ecs update-service --cluster prod --service web --force-new-deployment",
        [("ecs:UpdateService", "write", "medium", "web")],
        id="ecs-update-service",
    ),
    pytest.param(
        "aws ecs describe-services --cluster c --services a b",
        [("ecs:DescribeServices", "read", "low", "a,b")],
        id="ecs-describe-services",
    ),
    pytest.param(
        "aws ecs run-task --cluster c --task-definition web:3",
        [("ecs:RunTask", "write", "medium", "web:3")],
        id="ecs-run-task",
    ),
    # --- secretsmanager ---
    pytest.param(
        "aws secretsmanager get-secret-value --secret-id prod/db",
        [("secretsmanager:GetSecretValue", "read", "low", "prod/db")],
        id="secrets-get",
    ),
    pytest.param(
        "aws secretsmanager delete-secret --secret-id s --force-delete-without-recovery",
        [("secretsmanager:DeleteSecret", "delete", "critical", "s")],
        id="secrets-force-delete",
    ),
    # --- sqs / sns ---
    pytest.param(
        "aws sqs send-message --queue-url https://sqs.us-east-1.amazonaws.com/1/q "
        "--message-body hi",
        [("sqs:SendMessage", "write", "medium", "https://sqs.us-east-1.amazonaws.com/1/q")],
        id="sqs-send-message",
    ),
    pytest.param(
        "aws sqs purge-queue --queue-url https://sqs.us-east-1.amazonaws.com/1/q",
        [("sqs:PurgeQueue", "delete", "high", "https://sqs.us-east-1.amazonaws.com/1/q")],
        id="sqs-purge",
    ),
    pytest.param(
        "aws sns publish --topic-arn arn:aws:sns:us-east-1:1:t --message hi",
        [("sns:Publish", "write", "medium", "arn:aws:sns:us-east-1:1:t")],
        id="sns-publish-topic-arn",
    ),
    # --- renamed services ---
    pytest.param(
        "aws configservice describe-config-rules",
        [("config:DescribeConfigRules", "read", "low", None)],
        id="configservice-renamed",
    ),
    pytest.param(
        "aws configservice delete-config-rule --config-rule-name r",
        [("config:DeleteConfigRule", "delete", "high", "r")],
        id="configservice-delete",
    ),
    pytest.param(
        "aws deploy create-deployment --application-name app --deployment-group-name g",
        [("codedeploy:CreateDeployment", "write", "medium", "app")],
        id="deploy-renamed",
    ),
    pytest.param(
        "aws deploy list-applications",
        [("codedeploy:ListApplications", "read", "low", None)],
        id="deploy-list",
    ),
    pytest.param(
        "aws sesv2 send-email --from-email-address a@example.com",
        [("ses:SendEmail", "write", "medium", None)],
        id="sesv2-signing-name",
    ),
    pytest.param(
        "aws s3control get-public-access-block --account-id 123456789012",
        [("s3:GetAccountPublicAccessBlock", "read", "low", "123456789012")],
        id="s3control",
    ),
    pytest.param(
        "aws cloudwatch put-metric-alarm --alarm-name cpu",
        [("cloudwatch:PutMetricAlarm", "write", "medium", "cpu")],
        id="cloudwatch-prefix-override",
    ),
    pytest.param(
        "aws apigateway get-rest-apis",
        [("apigateway:GET", "read", "low", None)],
        id="apigateway-http-method",
    ),
    # --- organizations, other admin ---
    pytest.param(
        "aws organizations list-accounts",
        [("organizations:ListAccounts", "read", "low", None)],
        id="organizations-read",
    ),
    pytest.param(
        "aws organizations leave-organization",
        [("organizations:LeaveOrganization", "admin", "critical", None)],
        id="organizations-write",
    ),
    pytest.param(
        "aws autoscaling put-scaling-policy --auto-scaling-group-name g --policy-name p",
        [("autoscaling:PutScalingPolicy", "write", "medium", "p")],
        id="scaling-policy-is-not-a-permission",
    ),
    # --- CLI customizations and configure ---
    pytest.param(
        "aws ecr get-login-password --region eu-west-1",
        [("ecr:GetAuthorizationToken", "read", "low", None)],
        id="ecr-get-login-password",
    ),
    pytest.param(
        "aws eks update-kubeconfig --name prod-cluster",
        [("eks:DescribeCluster", "read", "low", "prod-cluster")],
        id="eks-update-kubeconfig",
    ),
    pytest.param(
        "aws logs tail /aws/lambda/f --follow",
        [("logs:FilterLogEvents", "read", "low", "/aws/lambda/f")],
        id="logs-tail",
    ),
    pytest.param(
        "aws configure set region eu-west-1",
        [("aws-cli:ConfigureSet", "admin", "high", "region")],
        id="configure-set",
    ),
    pytest.param(
        "aws configure list",
        [("aws-cli:ConfigureList", "read", "low", None)],
        id="configure-list",
    ),
    pytest.param(
        "aws configure export-credentials --profile dev",
        [("aws-cli:ConfigureExportCredentials", "read", "high", None)],
        id="configure-export-credentials",
    ),
    pytest.param(
        "aws ddb select users --key-condition 'id = :x'",
        [("dynamodb:Query", "read", "low", "users")],
        id="ddb-select",
    ),
]


@pytest.mark.parametrize(("text", "expected"), OPERATION_CASES)
def test_operations(text: str, expected: list[tuple[str, str, str, str | None]]) -> None:
    operations = run(text)
    assert summary(operations) == expected
    for operation in operations:
        assert operation.kind == "aws"
        assert operation.raw == text
        # every Operation survives the event model's strict validation
        assert Operation.model_validate(operation.model_dump()) == operation


# (command, index of the operation, expected flags)
FLAG_CASES = [
    pytest.param("aws s3 rm s3://b/x/ --recursive", 0, ["recursive"], id="recursive"),
    pytest.param("aws s3 sync . s3://b --delete", 1, ["recursive", "delete"], id="sync-delete"),
    pytest.param("aws s3 rb s3://b --force", 1, ["force"], id="rb-force"),
    pytest.param("aws s3 rm s3://b/k --dryrun", 0, ["dryrun"], id="s3-dryrun"),
    pytest.param(
        "aws ec2 run-instances --image-id ami-1 --instance-type t3.micro --count 1 --dry-run",
        0,
        ["dryrun"],
        id="ec2-dry-run",
    ),
    pytest.param("aws ec2 describe-instances --no-dry-run", 0, [], id="ec2-no-dry-run"),
    pytest.param(
        "aws rds delete-db-instance --db-instance-identifier d --skip-final-snapshot",
        0,
        ["no-final-snapshot"],
        id="no-final-snapshot",
    ),
    pytest.param(
        f"aws iam attach-role-policy --role-name r --policy-arn {ADMIN_POLICY}",
        0,
        ["administrator-access"],
        id="administrator-access",
    ),
    pytest.param(
        "aws --endpoint-url=http://localhost:4566 s3 ls", 0, ["custom-endpoint"], id="endpoint"
    ),
    pytest.param("aws s3 cp index.html s3://b/ --acl public-read", 0, ["public"], id="public-acl"),
    pytest.param("aws frobnicate do-it", 0, ["unknown-operation"], id="unknown-service"),
    pytest.param(
        "aws configure set aws_secret_access_key x", 0, ["credentials"], id="credential-key"
    ),
]


@pytest.mark.parametrize(("text", "index", "flags"), FLAG_CASES)
def test_flags(text: str, index: int, flags: list[str]) -> None:
    assert run(text)[index].flags == flags


# (command, command env, session env, expected attributes subset, absent attribute names)
ATTRIBUTE_CASES = [
    pytest.param(
        "aws s3 ls",
        {},
        {},
        {"profile": "default", "service": "s3", "operation": "ls"},
        ["region", "endpointUrl"],
        id="defaults",
    ),
    pytest.param(
        "aws --profile dev --region eu-west-1 ec2 describe-vpcs",
        {},
        {},
        {"profile": "dev", "region": "eu-west-1", "service": "ec2", "operation": "describe-vpcs"},
        [],
        id="global-options-first",
    ),
    pytest.param(
        "aws ec2 describe-vpcs --profile=dev --region=us-west-2",
        {},
        {},
        {"profile": "dev", "region": "us-west-2"},
        [],
        id="global-options-last-equals",
    ),
    pytest.param(
        "aws s3 ls",
        {"AWS_PROFILE": "ops", "AWS_REGION": "ap-south-1"},
        {"AWS_PROFILE": "session", "AWS_DEFAULT_REGION": "us-east-1"},
        {"profile": "ops", "region": "ap-south-1"},
        [],
        id="command-env-beats-session-env",
    ),
    pytest.param(
        "aws s3 ls",
        {},
        {"AWS_PROFILE": "session", "AWS_DEFAULT_REGION": "us-east-1"},
        {"profile": "session", "region": "us-east-1"},
        [],
        id="session-env",
    ),
    pytest.param(
        "aws s3 ls --profile cli",
        {"AWS_PROFILE": "env"},
        {},
        {"profile": "cli"},
        [],
        id="option-beats-env",
    ),
    pytest.param(
        "aws --endpoint-url http://localhost:4566 sqs list-queues",
        {},
        {},
        {"endpointUrl": "http://localhost:4566", "service": "sqs", "operation": "list-queues"},
        [],
        id="endpoint-url",
    ),
    pytest.param(
        "aws s3api list-objects-v2 --bucket b --prefix logs/",
        {},
        {},
        {"service": "s3api", "operation": "list-objects-v2", "prefix": "logs/"},
        [],
        id="cli-service-name-kept",
    ),
    pytest.param(
        "aws s3 cp s3://b/k ../out/k",
        {},
        {},
        {"localPath": "/home/dev/out/k"},
        [],
        id="local-path-resolved",
    ),
    pytest.param(
        f"aws iam attach-role-policy --role-name r --policy-arn {ADMIN_POLICY}",
        {},
        {},
        {"policyArn": ADMIN_POLICY},
        [],
        id="policy-arn",
    ),
    pytest.param(
        "aws ec2 wait instance-stopped --instance-ids i-1",
        {},
        {},
        {"operation": "wait", "waiter": "instance-stopped"},
        [],
        id="waiter",
    ),
]


@pytest.mark.parametrize(("text", "env", "session_env", "expected", "absent"), ATTRIBUTE_CASES)
def test_attributes(
    text: str,
    env: dict[str, str],
    session_env: dict[str, str],
    expected: dict[str, str],
    absent: list[str],
) -> None:
    attributes = run(text, env=env, session_env=session_env)[0].attributes
    assert attributes.items() >= expected.items()
    for name in absent:
        assert name not in attributes


# (command, command env, expected risk, whether the prod-profile flag is set)
PROD_CASES = [
    pytest.param("aws --profile prod s3 ls", {}, "medium", True, id="read-prod"),
    pytest.param("aws s3 cp f s3://b/f --profile acme-production", {}, "high", True, id="write"),
    pytest.param(
        "aws ec2 terminate-instances --instance-ids i-1 --profile prd",
        {},
        "critical",
        True,
        id="critical-stays-critical",
    ),
    pytest.param(
        "aws iam create-user --user-name u",
        {"AWS_PROFILE": "prod_admin"},
        "critical",
        True,
        id="admin-from-env",
    ),
    pytest.param("aws s3 ls --profile prod2", {}, "medium", True, id="prod-with-digit"),
    pytest.param("aws s3 ls --profile preprod", {}, "low", False, id="preprod"),
    pytest.param("aws s3 ls --profile non-prod", {}, "low", False, id="non-prod"),
    pytest.param("aws s3 ls --profile products", {}, "low", False, id="products"),
    pytest.param("aws s3 rm s3://b/k --profile prod --dryrun", {}, "low", True, id="dryrun-wins"),
    pytest.param("aws frobnicate x --profile prod", {}, "high", True, id="unknown-on-prod"),
]


@pytest.mark.parametrize(("text", "env", "risk", "prod"), PROD_CASES)
def test_prod_profile_raises_risk(text: str, env: dict[str, str], risk: str, prod: bool) -> None:
    operation = run(text, env=env)[0]
    assert operation.risk == risk
    assert ("prod-profile" in operation.flags) is prod


NO_CALL_CASES = [
    pytest.param("aws", id="bare"),
    pytest.param("aws --version", id="version"),
    pytest.param("aws help", id="help"),
    pytest.param("aws ec2 help", id="service-help"),
    pytest.param("aws ec2 describe-instances help", id="operation-help"),
    pytest.param("aws s3 cp help", id="s3-help"),
    pytest.param("aws --debug --output json", id="only-options"),
    pytest.param("aws --profile", id="dangling-option"),
    pytest.param("aws ec2", id="service-without-operation"),
    pytest.param("aws s3", id="s3-without-command"),
    pytest.param("aws ec2 describe-instances --generate-cli-skeleton", id="skeleton"),
    pytest.param("aws lambda invoke --generate-cli-skeleton input", id="skeleton-input"),
    pytest.param("aws history list", id="history"),
    pytest.param("kubectl get pods", id="not-aws"),
]


@pytest.mark.parametrize("text", NO_CALL_CASES)
def test_commands_that_call_nothing(text: str) -> None:
    assert run(text) == []


UNKNOWN_CASES = [
    pytest.param("aws frobnicate list-things", "frobnicate", id="unknown-service"),
    pytest.param("aws ec2 frobnicate-instances", "ec2", id="unknown-operation"),
    pytest.param("aws config describe-config-rules", "config", id="renamed-away-config"),
    pytest.param("aws codedeploy list-applications", "codedeploy", id="renamed-away-codedeploy"),
    pytest.param("aws s3 cp only-one-path", "s3", id="s3-cp-one-path"),
    pytest.param("aws s3 cp a.txt b.txt", "s3", id="s3-cp-local-to-local"),
    pytest.param("aws s3 frob s3://b", "s3", id="s3-unknown-command"),
    pytest.param("aws ec2 wait no-such-waiter", "ec2", id="unknown-waiter"),
    pytest.param("aws ../../etc/passwd x", "../../etc/passwd", id="path-as-service"),
    pytest.param("aws configure frob", "configure", id="configure-unknown"),
]


@pytest.mark.parametrize(("text", "service"), UNKNOWN_CASES)
def test_unknown_is_a_medium_write(text: str, service: str) -> None:
    [operation] = run(text)
    assert operation.action == "aws:Unknown"
    assert (operation.access, operation.risk) == ("write", "medium")
    assert "unknown-operation" in operation.flags
    assert operation.attributes["service"] == service


def test_option_value_named_help_is_not_help() -> None:
    [operation] = run("aws ssm get-parameter --name help")
    assert (operation.action, operation.resource) == ("ssm:GetParameter", "help")


def test_program_given_by_path_and_unresolved_commands() -> None:
    command = SimpleCommand(argv=("/usr/local/bin/aws", "sts", "get-caller-identity"), text="x")
    assert [op.action for op in aws.classify(command, ClassifyContext())] == [
        "sts:GetCallerIdentity"
    ]
    unresolved = SimpleCommand(argv=("aws", "s3", "ls"), text="$X", unresolved="variable")
    assert aws.classify(unresolved, ClassifyContext()) == []
    assert aws.classify(SimpleCommand(argv=(), text=""), ClassifyContext()) == []


def test_rename_table_resolves_to_botocore_services() -> None:
    for cli_name, botocore_name in aws.SERVICE_RENAMES.items():
        if botocore_name == "opsworks-cm":
            continue  # OpsWorks CM is retired: newer botocore releases no longer ship it
        assert aws_models._service(botocore_name) is not None, cli_name


def test_iam_exceptions_name_real_operations() -> None:
    for service, operation in aws.IAM_ACTION_EXCEPTIONS:
        model = aws_models._service(service)
        assert model is not None
        assert operation in model.model["operations"], (service, operation)


@pytest.mark.parametrize("service", ["s3", "iam", "lambda", "ecs", "kms", "sts"])
def test_every_operation_of_a_service_is_recognised(service: str) -> None:
    """Each model operation, called by its CLI name, maps back to itself: the kebab-case
    table is complete and unambiguous."""
    model = aws_models._service(service)
    assert model is not None
    cli_service = {"s3": "s3api"}.get(service, service)
    for cli_name, operation in model.operations.items():
        operations = run(f"aws {cli_service} {cli_name}")
        assert operations, cli_name
        assert operations[0].action != "aws:Unknown", cli_name
        if (service, operation) not in aws.IAM_ACTION_EXCEPTIONS:
            assert operations[0].action == f"{model.prefix}:{operation}"


def test_services_load_lazily_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.loaders import Loader

    loaded: list[str] = []

    class CountingLoader(Loader):  # type: ignore[misc]
        def load_service_model(self, service_name: str, type_name: str, *args: Any) -> Any:
            loaded.append(f"{service_name}/{type_name}")
            return super().load_service_model(service_name, type_name, *args)

    counting = CountingLoader()
    monkeypatch.setattr(aws_models, "_loader", lambda: counting)
    aws_models._service.cache_clear()
    aws_models._operation_spec.cache_clear()
    try:
        run("aws s3 ls")
        assert loaded == []  # the high-level s3 commands need no model
        run("aws sqs list-queues")
        run("aws sqs list-queues --region eu-west-1")
        run("aws dynamodb list-tables")
        assert loaded == ["sqs/service-2", "dynamodb/service-2"]
    finally:
        aws_models._service.cache_clear()
        aws_models._operation_spec.cache_clear()


def test_warm_classification_is_fast() -> None:
    commands = [
        SimpleCommand(argv=tuple(shlex.split(text)), text=text)
        for text in (
            "aws ec2 describe-instances --instance-ids i-1 i-2 --region eu-west-1",
            "aws s3api get-object --bucket b --key k out",
            "aws s3 sync . s3://b/site --delete",
            f"aws iam attach-role-policy --role-name r --policy-arn {ADMIN_POLICY}",
        )
    ]
    context = ClassifyContext(cwd=CWD)
    for command in commands:
        aws.classify(command, context)  # first load of each model
    timings = []
    for _ in range(200):
        for command in commands:
            start = time.perf_counter()
            aws.classify(command, context)
            timings.append(time.perf_counter() - start)
    assert statistics.median(timings) < 0.0002


WEIRD_ARGVS: list[tuple[str, ...]] = [
    ("aws", ""),
    ("aws", "", ""),
    ("aws", "--region="),
    ("aws", "--profile", "--region"),
    ("aws", "s3", "cp", "s3://", "s3://"),
    ("aws", "s3", "rm", "s3:///k"),
    ("aws", "s3", "rb", "--force"),
    ("aws", "s3api", "get-object", "--bucket"),
    ("aws", "s3api", "copy-object", "--copy-source", "arn:aws:s3:x", "--bucket", "b"),
    ("aws", "ec2", "describe-instances", "--instance-ids"),
    ("aws", "ec2", "wait"),
    ("aws", "EC2", "Describe-Instances"),
    ("aws", "ec2", "describe-instances", "--", "--x"),
    ("aws", "lambda", "invoke", "--function-name=", "out"),
    ("aws", "\x00", "\u2603"),
    ("aws", "a" * 5000, "b"),
    ("aws", "configure", "set"),
]


@pytest.mark.parametrize("argv", WEIRD_ARGVS)
def test_weird_input_never_raises(argv: tuple[str, ...]) -> None:
    operations = aws.classify(SimpleCommand(argv=argv, text=" ".join(argv)), ClassifyContext())
    assert all(isinstance(op, Operation) for op in operations)


_WORDS = st.sampled_from(
    [
        "s3",
        "s3api",
        "ec2",
        "iam",
        "ls",
        "cp",
        "rm",
        "sync",
        "wait",
        "describe-instances",
        "get-object",
        "--profile",
        "--region",
        "--recursive",
        "--force",
        "--delete",
        "--dry-run",
        "--bucket",
        "--key",
        "--instance-ids",
        "s3://b/k",
        "s3://b",
        "-",
        ".",
        "help",
        "prod",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_WORDS, st.text(max_size=12)), max_size=8))
def test_random_argv_never_raises(words: list[str]) -> None:
    argv = ("aws", *words)
    operations = aws.classify(SimpleCommand(argv=argv, text=" ".join(argv)), ClassifyContext())
    for operation in operations:
        assert operation.kind == "aws"
        assert operation.risk in ("low", "medium", "high", "critical")
