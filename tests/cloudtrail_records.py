"""CloudTrail records in the documented format, for tests.

Field names, nesting and value shapes follow the AWS CloudTrail User Guide ("CloudTrail record
contents", "userIdentity element", "log file examples") and the Amazon S3 User Guide's data
event examples: ``{"Records": [...]}`` files named
``<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<16 chars>.json.gz`` under
``AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/``. Account ids, keys and addresses are the
documentation's example values (111122223333, AKIAIOSFODNN7EXAMPLE, 192.0.2.0/24).

CloudTrail itself cannot run here: these records are what a test double for AWS writes, and
``digest_for`` signs digests the documented way with a key the test made (AWS's private key is
AWS's).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ACCOUNT = "111122223333"
REGION = "us-east-1"
ROLE_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/dev-jordan"


def cloudtrail_time(moment: datetime) -> str:
    """CloudTrail's eventTime: UTC, whole seconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cli_user_agent(session_id: str | None, command: str = "s3.cp") -> str:
    """What AWS CLI v2 sends (and CloudTrail records) with AWS_SDK_UA_APP_ID set."""
    agent = (
        "aws-cli/2.22.35 md/awscrt#0.23.8 ua/2.1 os/linux#6.8.0-1021-aws md/arch#x86_64 "
        f"lang/python#3.12.6 md/pyimpl#CPython m/E,Z cfg/retry-mode#standard md/installer#exe "
        f"md/distrib#ubuntu.24 md/prompt#off md/command#{command}"
    )
    return agent + (f" app/trailguard-{session_id}" if session_id else "")


def user_identity(arn: str = ROLE_ARN) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": "AROAIDPPEZS35WEXAMPLE:dev-jordan",
        "arn": arn,
        "accountId": ACCOUNT,
        "accessKeyId": "ASIAIOSFODNN7EXAMPLE",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAIDPPEZS35WEXAMPLE",
                "arn": f"arn:aws:iam::{ACCOUNT}:role/dev",
                "accountId": ACCOUNT,
                "userName": "dev",
            },
            "attributes": {"creationDate": "2026-04-15T13:02:11Z", "mfaAuthenticated": "false"},
        },
    }


def s3_object_event(
    name: str,
    *,
    at: datetime,
    bucket: str,
    key: str,
    user_agent: str,
    event_id: str | None = None,
    source_ip: str = "192.0.2.10",
) -> dict[str, Any]:
    """An S3 data event (PutObject, GetObject, DeleteObject, CreateMultipartUpload...) as the
    Amazon S3 User Guide's CloudTrail examples show it."""
    return {
        "eventVersion": "1.10",
        "userIdentity": user_identity(),
        "eventTime": cloudtrail_time(at),
        "eventSource": "s3.amazonaws.com",
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent,
        "requestParameters": {
            "bucketName": bucket,
            "Host": f"{bucket}.s3.{REGION}.amazonaws.com",
            "key": key,
        },
        "responseElements": {"x-amz-server-side-encryption": "AES256"}
        if name == "PutObject"
        else None,
        "additionalEventData": {
            "SignatureVersion": "SigV4",
            "CipherSuite": "TLS_AES_128_GCM_SHA256",
            "bytesTransferredIn": 197 if name == "PutObject" else 0,
            "AuthenticationMethod": "AuthHeader",
            "x-amz-id-2": "hRJMAs5p4ALZIabP4ATIL53npWU61+N6LYWj02gdQtR0ymKSySzVXUSZx7ydv7tRJw==",
            "bytesTransferredOut": 0,
        },
        "requestID": "CF9748DFDC5FB0A4",
        "eventID": event_id or str(uuid.uuid4()),
        "readOnly": name.startswith(("Get", "Head", "List")),
        "resources": [
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
            {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
        ],
        "eventType": "AwsApiCall",
        "managementEvent": False,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Data",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"{bucket}.s3.{REGION}.amazonaws.com",
        },
    }


def s3_list_event(*, at: datetime, bucket: str, user_agent: str) -> dict[str, Any]:
    """ListObjects (what ``aws s3 sync`` and ``rm --recursive`` call first): bucket only."""
    record = s3_object_event("ListObjects", at=at, bucket=bucket, key="x", user_agent=user_agent)
    record["requestParameters"] = {
        "bucketName": bucket,
        "Host": f"{bucket}.s3.{REGION}.amazonaws.com",
        "list-type": "2",
        "prefix": "",
    }
    record["resources"] = [
        {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}
    ]
    record["readOnly"] = True
    return record


def management_event(
    source: str,
    name: str,
    *,
    at: datetime,
    user_agent: str,
    request: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    error: tuple[str, str] | None = None,
    read_only: bool = False,
    resources: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A management event (IAM, STS, EC2, SSM...) as the CloudTrail User Guide shows them."""
    record: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": user_identity(),
        "eventTime": cloudtrail_time(at),
        "eventSource": source,
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": "192.0.2.10",
        "userAgent": user_agent,
        "requestParameters": request,
        "responseElements": response,
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    if error:
        record["errorCode"], record["errorMessage"] = error
    if resources:
        record["resources"] = resources
    return record


def log_file_name(delivered: datetime) -> str:
    stamp = delivered.strftime("%Y%m%dT%H%MZ")
    unique = hashlib.sha256(stamp.encode() + str(uuid.uuid4()).encode()).hexdigest()[:16]
    return f"{ACCOUNT}_CloudTrail_{REGION}_{stamp}_{unique}.json.gz"


def log_key(delivered: datetime) -> str:
    """Where CloudTrail puts a log file in the trail's bucket."""
    return f"AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/{delivered:%Y/%m/%d}/" + log_file_name(delivered)


def log_file_bytes(records: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    """(uncompressed, gzip'd) bytes of a log file holding ``records``."""
    plain = json.dumps({"Records": records}, separators=(",", ":")).encode()
    return plain, gzip.compress(plain)


def write_delivery_tree(root: Path, files: list[list[dict[str, Any]]], at: datetime) -> list[Path]:
    """Gzip'd log files under ``root/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/``."""
    paths = []
    for index, records in enumerate(files):
        path = root / log_key(at + timedelta(minutes=5 * index))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(log_file_bytes(records)[1])
        paths.append(path)
    return paths


# -- digests (a test double for AWS's signing) -----------------------------------------------------


class FakeCloudTrailSigner:
    """Signs digests as CloudTrail does, with a key made here instead of AWS's."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.PKCS1
        )
        self.public_value = base64.b64encode(der).decode()
        self.fingerprint = hashlib.md5(der, usedforsecurity=False).hexdigest()

    def public_keys_json(self) -> str:
        """What ``aws cloudtrail list-public-keys`` prints (CLI v1 times: epoch seconds)."""
        return json.dumps(
            {
                "PublicKeyList": [
                    {
                        "Value": self.public_value,
                        "ValidityStartTime": "1735689600.0",
                        "ValidityEndTime": "4102444800.0",
                        "Fingerprint": self.fingerprint,
                    }
                ]
            }
        )

    def digest_for(
        self,
        bucket: str,
        logs: list[tuple[str, bytes]],
        end: datetime,
        previous: tuple[str, str] | None = None,
    ) -> tuple[str, bytes, str]:
        """(digest key, gzip'd digest, hex signature) covering ``logs`` ((key, uncompressed))."""
        key = (
            f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/{REGION}/{end:%Y/%m/%d}/"
            f"{ACCOUNT}_CloudTrail-Digest_{REGION}_audit-trail_{REGION}_{end:%Y%m%dT%H%M%SZ}.json.gz"
        )
        document = {
            "awsAccountId": ACCOUNT,
            "digestStartTime": cloudtrail_time(end - timedelta(hours=1)),
            "digestEndTime": cloudtrail_time(end),
            "digestS3Bucket": bucket,
            "digestS3Object": key,
            "digestPublicKeyFingerprint": self.fingerprint,
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": cloudtrail_time(end - timedelta(minutes=1)),
            "oldestEventTime": cloudtrail_time(end - timedelta(minutes=59)),
            "previousDigestS3Bucket": bucket if previous else None,
            "previousDigestS3Object": previous[0] if previous else None,
            "previousDigestHashValue": None,
            "previousDigestHashAlgorithm": "SHA-256" if previous else None,
            "previousDigestSignature": previous[1] if previous else None,
            "logFiles": [
                {
                    "s3Bucket": bucket,
                    "s3Object": log_key_name,
                    "hashValue": hashlib.sha256(plain).hexdigest(),
                    "hashAlgorithm": "SHA-256",
                    "newestEventTime": cloudtrail_time(end - timedelta(minutes=1)),
                    "oldestEventTime": cloudtrail_time(end - timedelta(minutes=59)),
                }
                for log_key_name, plain in logs
            ],
        }
        inflated = json.dumps(document).encode()
        # The User Guide's Data_To_Sign_String, written out here independently of trailguard's.
        to_sign = "\n".join(
            [
                document["digestEndTime"],
                f"{bucket}/{key}",
                hashlib.sha256(inflated).hexdigest(),
                previous[1] if previous else "null",
            ]
        )
        signature = self.key.sign(to_sign.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()
        return key, gzip.compress(inflated), signature
