"""S3: s3api resources and the high-level ``aws s3`` commands."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trailguard.classify.aws.args import _asks_help, _parse_options
from trailguard.classify.aws.names import _iam_actions
from trailguard.classify.aws.resources import _Args, _Call, _Service
from trailguard.classify.aws.rules import _grants_public
from trailguard.events import Access, Operation, Risk

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
    return call.make_each(
        actions,
        access,
        resource=resource,
        risk=risk,
        flags=flags,
        attributes=attributes,
        dry_run=dry_run,
    )


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
