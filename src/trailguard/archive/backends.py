"""Where archive objects live: S3 with Object Lock (write-once), or a local directory (not).

Both offer the same few operations: create an object once (never overwrite), read it (a given
version, with its lock), list keys and their versions, and set a legal hold. Everything above
this module is the same for both; only S3 can refuse deletion, so only S3 is write-once.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlparse

from trailguard.errors import FaultError, InvalidInputError, VerificationError

LockMode = Literal["COMPLIANCE", "GOVERNANCE"]
LOCK_MODES: tuple[LockMode, ...] = ("COMPLIANCE", "GOVERNANCE")


class ArchiveConfigError(InvalidInputError):
    """An archive that cannot be used as given (bad URL, a bucket without Object Lock, boto3
    missing); the message says what to do."""


class ArchiveUnavailableError(FaultError):
    """The archive could not be reached or answered with an error; nothing was assumed."""

    http_status = 503


class ObjectConflictError(VerificationError):
    """A key that must be written once already holds different bytes."""


class MissingObjectError(VerificationError):
    """An object the archive should hold is not there."""


@dataclass(frozen=True)
class Lock:
    """The Object Lock of one object version, as the archive reports it (None: no lock)."""

    mode: str | None = None
    retain_until: datetime | None = None
    legal_hold: bool = False


@dataclass(frozen=True)
class StoredObject:
    key: str
    data: bytes
    version_id: str | None
    lock: Lock
    checksum_sha256: str | None = None
    """The archive's own SHA-256 of the object (base64), when it keeps one."""


@dataclass
class KeyVersions:
    """Every version of one key, oldest first, and how many delete markers hide it."""

    key: str
    versions: list[str] = field(default_factory=list)
    delete_markers: int = 0

    @property
    def original(self) -> str | None:
        """The first version written: the one a write-once archive locked."""
        return self.versions[0] if self.versions else None


@dataclass(frozen=True)
class BucketLock:
    """What the archive says about its own write-once protection."""

    enabled: bool
    default_mode: str | None = None
    default_days: int | None = None
    default_years: int | None = None
    versioning: str | None = None


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class Archive(Protocol):
    url: str
    write_once: bool
    """True only where the storage itself refuses to delete or overwrite (S3 Object Lock)."""

    def bucket_lock(self) -> BucketLock:
        """The archive's Object Lock configuration (raises ArchiveUnavailableError)."""
        ...

    def put_once(self, key: str, data: bytes, *, mode: LockMode, retain_until: datetime) -> bool:
        """Create ``key`` holding ``data``, locked until ``retain_until``. Returns True when it
        was created, False when it already held exactly these bytes (a rerun). Raises
        ObjectConflictError when it holds anything else; it is never overwritten."""
        ...

    def get(self, key: str, version_id: str | None = None) -> StoredObject:
        """One object (its original version when ``version_id`` is None on a local archive;
        the current one on S3). Raises MissingObjectError."""
        ...

    def list_keys(self, prefix: str) -> list[str]:
        """Every current key under ``prefix`` (relative to the archive's own prefix), sorted."""
        ...

    def list_versions(self, prefix: str) -> dict[str, KeyVersions]:
        """Every version of every key under ``prefix``, including keys hidden by a delete
        marker."""
        ...

    def set_legal_hold(self, key: str, on: bool, version_id: str | None = None) -> None: ...

    def get_many(self, keys: list[tuple[str, str | None]]) -> Iterator[StoredObject]:
        """``get`` of many (key, version) pairs, in order, fetched concurrently."""
        ...


# -- a local directory ----------------------------------------------------------------------------


class FileArchive:
    """An archive in a local directory: each object a read-only file (0444), created with an
    atomic create-if-absent link. Not write-once: whoever owns the directory can delete it."""

    write_once = False

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/") or not key:
            raise ArchiveConfigError(f"archive key {key!r} is not a relative path")
        return self.root / key

    def bucket_lock(self) -> BucketLock:
        return BucketLock(enabled=False)

    def put_once(self, key: str, data: bytes, *, mode: LockMode, retain_until: datetime) -> bool:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                return self._same(path, key, data)
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()  # left by a killed run of this process id
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(temporary, path)  # atomic create-if-absent: never half a file
            except FileExistsError:
                return self._same(path, key, data)
            finally:
                temporary.unlink()
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            raise ArchiveUnavailableError(
                f"cannot write {path} in archive {self.url}: {exc.strerror}"
            ) from None
        return True

    def _same(self, path: Path, key: str, data: bytes) -> bool:
        if path.read_bytes() == data:
            return False
        raise ObjectConflictError(
            f"{self.url}/{key} already exists with other contents (sha256 "
            f"{hashlib.sha256(path.read_bytes()).hexdigest()}, expected "
            f"{hashlib.sha256(data).hexdigest()}); it was not overwritten"
        )

    def get(self, key: str, version_id: str | None = None) -> StoredObject:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise MissingObjectError(f"{self.url}/{key} does not exist") from None
        except OSError as exc:
            raise ArchiveUnavailableError(f"cannot read {path}: {exc.strerror}") from None
        return StoredObject(key, data, None, Lock())

    def list_keys(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix`` (a string prefix, as on S3)."""
        directory = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not directory.is_dir():
            return []
        keys = []
        for path in directory.rglob("*"):
            if path.name.startswith(".") or not path.is_file():
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                keys.append(key)
        return sorted(keys)

    def list_versions(self, prefix: str) -> dict[str, KeyVersions]:
        return {key: KeyVersions(key, ["file"]) for key in self.list_keys(prefix)}

    def set_legal_hold(self, key: str, on: bool, version_id: str | None = None) -> None:
        raise ArchiveConfigError(
            f"{self.url} is a local directory: it has no legal holds (nor any lock); use an "
            "s3:// archive with Object Lock for holds"
        )

    def get_many(self, keys: list[tuple[str, str | None]]) -> Iterator[StoredObject]:
        for key, version in keys:
            yield self.get(key, version)


# -- S3 with Object Lock --------------------------------------------------------------------------


def _s3_client() -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ArchiveConfigError(
            "s3:// archives need boto3: pip install 'trailguard[archive]'"
        ) from None
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        # S3-compatible servers on an endpoint URL rarely serve virtual-hosted buckets.
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=32,
    )
    session = boto3.session.Session()
    return session.client("s3", config=config)


class S3Archive:
    """An archive under ``s3://bucket/prefix``, through boto3's standard configuration (the
    credential chain, ``AWS_REGION``, ``AWS_ENDPOINT_URL``)."""

    write_once = True

    def __init__(self, bucket: str, prefix: str, url: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = url
        self.client = client or _s3_client()

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def _error(self, exc: Exception, what: str) -> Exception:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = error.get("Code", "?")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchBucket",):
                return ArchiveConfigError(f"{self.url}: bucket {self.bucket} does not exist")
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return ArchiveConfigError(
                    f"{self.url}: {what} was refused ({code}: {error.get('Message', '')}); "
                    "check the AWS credentials and the bucket policy"
                )
            return ArchiveUnavailableError(
                f"{self.url}: {what} failed: {code} (HTTP {status}) {error.get('Message', '')}"
            )
        if isinstance(exc, BotoCoreError):
            return ArchiveUnavailableError(f"{self.url}: {what} failed: {exc}")
        return exc

    def bucket_lock(self) -> BucketLock:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            versioning = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "reading the bucket's versioning") from None
        try:
            answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ObjectLockConfigurationNotFoundError":
                return BucketLock(enabled=False, versioning=versioning)
            raise self._error(exc, "reading the bucket's Object Lock configuration") from None
        except BotoCoreError as exc:
            raise self._error(exc, "reading the bucket's Object Lock configuration") from None
        config = answer.get("ObjectLockConfiguration", {})
        default = config.get("Rule", {}).get("DefaultRetention", {})
        return BucketLock(
            enabled=config.get("ObjectLockEnabled") == "Enabled",
            default_mode=default.get("Mode"),
            default_days=default.get("Days"),
            default_years=default.get("Years"),
            versioning=versioning,
        )

    def put_once(self, key: str, data: bytes, *, mode: LockMode, retain_until: datetime) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=data,
                ChecksumSHA256=sha256_b64(data),
                IfNoneMatch="*",
                ObjectLockMode=mode,
                ObjectLockRetainUntilDate=retain_until,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                existing = self.get(key)
                if existing.data == data:
                    return False
                raise ObjectConflictError(
                    f"{self.url}/{key} already exists with other contents (sha256 "
                    f"{hashlib.sha256(existing.data).hexdigest()}, expected "
                    f"{hashlib.sha256(data).hexdigest()}); it was not overwritten"
                ) from None
            raise self._error(exc, f"writing {key}") from None
        except BotoCoreError as exc:
            raise self._error(exc, f"writing {key}") from None
        return True

    def get(self, key: str, version_id: str | None = None) -> StoredObject:
        from botocore.exceptions import BotoCoreError, ClientError

        arguments: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "ChecksumMode": "ENABLED",
        }
        if version_id is not None:
            arguments["VersionId"] = version_id
        try:
            answer = self.client.get_object(**arguments)
            data = answer["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchVersion", "404"):
                raise MissingObjectError(f"{self.url}/{key} does not exist") from None
            raise self._error(exc, f"reading {key}") from None
        except BotoCoreError as exc:
            raise self._error(exc, f"reading {key}") from None
        retain = answer.get("ObjectLockRetainUntilDate")
        if isinstance(retain, datetime):
            retain = retain.astimezone(UTC)
        lock = Lock(
            mode=answer.get("ObjectLockMode"),
            retain_until=retain if isinstance(retain, datetime) else None,
            legal_hold=answer.get("ObjectLockLegalHoldStatus") == "ON",
        )
        return StoredObject(key, data, answer.get("VersionId"), lock, answer.get("ChecksumSHA256"))

    def list_keys(self, prefix: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        keys: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                keys.extend(self._relative(item["Key"]) for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, f"listing {prefix}") from None
        return sorted(keys)

    def list_versions(self, prefix: str) -> dict[str, KeyVersions]:
        from botocore.exceptions import BotoCoreError, ClientError

        found: dict[str, KeyVersions] = {}
        newest_first: dict[str, list[tuple[datetime, int, str]]] = {}
        order = 0
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                for item in page.get("Versions", []):
                    key = self._relative(item["Key"])
                    found.setdefault(key, KeyVersions(key))
                    order += 1
                    newest_first.setdefault(key, []).append(
                        (item["LastModified"], order, item["VersionId"])
                    )
                for item in page.get("DeleteMarkers", []):
                    key = self._relative(item["Key"])
                    found.setdefault(key, KeyVersions(key)).delete_markers += 1
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, f"listing the versions under {prefix}") from None
        for key, versions in newest_first.items():
            # Oldest first: by time, and within one timestamp by S3's newest-first listing.
            found[key].versions = [v for _, _, v in sorted(versions, key=lambda t: (t[0], -t[1]))]
        return found

    def set_legal_hold(self, key: str, on: bool, version_id: str | None = None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        arguments: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "LegalHold": {"Status": "ON" if on else "OFF"},
        }
        if version_id is not None:
            arguments["VersionId"] = version_id
        try:
            self.client.put_object_legal_hold(**arguments)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, f"setting the legal hold of {key}") from None

    def get_many(self, keys: list[tuple[str, str | None]]) -> Iterator[StoredObject]:
        with ThreadPoolExecutor(max_workers=16) as pool:
            futures = [pool.submit(self.get, key, version) for key, version in keys]
            for future in futures:
                yield future.result()


def open_archive(url: str) -> Archive:
    """The archive a URL names: ``s3://BUCKET[/PREFIX]`` or ``file:///ABSOLUTE/PATH``."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ArchiveConfigError(f"--archive {url!r}: name a bucket, s3://BUCKET/PREFIX")
        return S3Archive(parsed.netloc, unquote(parsed.path), url.rstrip("/"))
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise ArchiveConfigError(
                f"--archive {url!r}: a local archive is file:///ABSOLUTE/PATH (three slashes)"
            )
        return FileArchive(Path(unquote(parsed.path)), url.rstrip("/"))
    raise ArchiveConfigError(
        f"--archive {url!r}: use s3://BUCKET/PREFIX (write-once, Object Lock) or "
        "file:///PATH (a local directory, not write-once)"
    )
