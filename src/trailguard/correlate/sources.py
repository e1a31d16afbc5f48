"""Where downstream log files come from: files, directory trees (a CloudTrail delivery tree
``AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/``) and ``s3://bucket/prefix``.

S3 is read with botocore (already a dependency), so the usual AWS configuration applies:
``AWS_PROFILE`` / ``--profile``, the credential chain, ``AWS_ENDPOINT_URL_S3`` /
``--s3-endpoint-url`` for an S3-compatible store. Objects larger than the file limit are refused
from their listed size, before any byte is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from trailguard.correlate.cloudtrail import MAX_FILE_BYTES
from trailguard.errors import InvalidInputError

__all__ = ["S3Options", "SourceError", "SourceFile", "expand_sources"]

DIGEST_DIRECTORY: Final = "CloudTrail-Digest"
_LOG_SUFFIXES: Final = (".json.gz", ".json", ".jsonl", ".jsonl.gz", ".gz", ".log")
MAX_COMPRESSED_BYTES: Final = MAX_FILE_BYTES
MAX_FILES: Final = 100_000


class SourceError(InvalidInputError):
    """A path or URI that names nothing readable; the message says which and why."""


@dataclass(frozen=True)
class SourceFile:
    """One file to read: ``read()`` returns its raw (maybe gzip'd) bytes."""

    name: str
    """A path, or ``s3://bucket/key``: shown to people and recorded as ``importedFrom``."""
    read: Callable[[], bytes]
    is_digest: bool = False
    s3_location: tuple[str, str] | None = None
    """(bucket, key) of an S3 object: a digest's signature is in its metadata."""
    metadata: Callable[[], dict[str, str]] | None = None


@dataclass(frozen=True)
class S3Options:
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    _client: list[Any] = field(default_factory=list, repr=False, compare=False)

    def client(self) -> Any:
        """A botocore S3 client (made once): path-style addressing for a custom endpoint."""
        if not self._client:
            import botocore.session
            from botocore.config import Config

            session = botocore.session.Session(profile=self.profile)
            endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
            config = Config(
                s3={"addressing_style": "path"} if endpoint else {},
                retries={"max_attempts": 3, "mode": "standard"},
            )
            self._client.append(
                session.create_client(
                    "s3",
                    region_name=self.region or session.get_config_variable("region") or "us-east-1",
                    endpoint_url=endpoint,
                    config=config,
                )
            )
        return self._client[0]


def _is_log_name(name: str) -> bool:
    return name.endswith(_LOG_SUFFIXES)


def _read_local(path: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with path.open("rb") as stream:
                data = stream.read(MAX_COMPRESSED_BYTES + 1)
        except OSError as exc:
            raise SourceError(f"{path}: cannot be read ({exc.strerror})") from None
        if len(data) > MAX_COMPRESSED_BYTES:
            raise SourceError(f"{path}: over the {MAX_COMPRESSED_BYTES}-byte file limit")
        return data

    return read


def _local(path: Path) -> Iterator[SourceFile]:
    if path.is_file():
        yield SourceFile(str(path), _read_local(path), DIGEST_DIRECTORY in path.parts)
        return
    if not path.is_dir():
        raise SourceError(f"{path}: no such file or directory")
    for found in sorted(p for p in path.rglob("*") if p.is_file() and _is_log_name(p.name)):
        yield SourceFile(str(found), _read_local(found), DIGEST_DIRECTORY in found.parts)


def _s3(uri: str, options: S3Options) -> Iterator[SourceFile]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise SourceError(f"{uri}: an S3 URI is s3://bucket[/prefix]")
    client = options.client()

    def reader(key: str) -> Callable[[], bytes]:
        def read() -> bytes:
            try:
                body = client.get_object(Bucket=bucket, Key=key)["Body"]
                data: bytes = body.read(MAX_COMPRESSED_BYTES + 1)
            except (BotoCoreError, ClientError) as exc:
                raise SourceError(f"s3://{bucket}/{key}: cannot be read ({exc})") from None
            if len(data) > MAX_COMPRESSED_BYTES:
                raise SourceError(f"s3://{bucket}/{key}: over the file limit")
            return data

        return read

    def metadata(key: str) -> Callable[[], dict[str, str]]:
        def read() -> dict[str, str]:
            try:
                found: dict[str, str] = client.head_object(Bucket=bucket, Key=key)["Metadata"]
            except (BotoCoreError, ClientError) as exc:
                raise SourceError(f"s3://{bucket}/{key}: no metadata ({exc})") from None
            return found

        return read

    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                if not _is_log_name(key):
                    continue
                name = f"s3://{bucket}/{key}"
                if item.get("Size", 0) > MAX_COMPRESSED_BYTES:
                    raise SourceError(f"{name}: {item['Size']} bytes is over the file limit")
                yield SourceFile(
                    name,
                    reader(key),
                    f"/{DIGEST_DIRECTORY}/" in f"/{key}",
                    (bucket, key),
                    metadata(key),
                )
    except (BotoCoreError, ClientError) as exc:
        raise SourceError(f"{uri}: cannot be listed ({exc})") from None


def expand_sources(locations: Sequence[str], s3: S3Options | None = None) -> Iterator[SourceFile]:
    """Every log or digest file the ``locations`` name, in a stable order. Raises SourceError
    for a location that names nothing, or past ``MAX_FILES`` files."""
    count = 0
    for location in locations:
        files = (
            _s3(location, s3 or S3Options())
            if location.startswith("s3://")
            else _local(Path(location).expanduser())
        )
        for source in files:
            count += 1
            if count > MAX_FILES:
                raise SourceError(f"more than {MAX_FILES} files; import a narrower prefix")
            yield source
