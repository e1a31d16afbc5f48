"""CloudTrail log file integrity validation: which log files AWS itself vouches for.

With validation enabled, a trail delivers an hourly digest file
(``AWSLogs/<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/...json.gz``) listing the SHA-256 of
every log file it delivered, signed by CloudTrail (AWS CloudTrail User Guide, "Custom
implementations of CloudTrail log file integrity validation" and "CloudTrail digest file
structure"):

* the signature is SHA256withRSA (RSASSA-PKCS1-v1_5 over SHA-256), hex-encoded, in the digest
  object's ``x-amz-meta-signature`` metadata, and again in the next digest's
  ``previousDigestSignature``;
* the signed string is ``digestEndTime + "\\n" + digestS3Bucket + "/" + digestS3Object + "\\n" +
  hex(SHA-256(uncompressed digest file)) + "\\n" + previousDigestSignature`` (the text
  ``null`` for a starting digest);
* the key is the one of ``aws cloudtrail list-public-keys`` whose ``Fingerprint`` is the
  digest's ``digestPublicKeyFingerprint`` (DER, PKCS #1 or SubjectPublicKeyInfo, base64).

The keys are pinned by the operator (``trailguard correlate trust-keys``, from
``list-public-keys`` run against AWS), never taken from the files being checked: a forger can
write a digest, not sign one. A log file is verified when its uncompressed SHA-256 is listed in
a digest whose signature checks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from trailguard.correlate.cloudtrail import CloudTrailFileError, LogFile, inflate
from trailguard.errors import InvalidInputError

__all__ = ["KEYS_FILE", "DigestSet", "PinnedKeys", "PublicKeyError", "signing_string"]

KEYS_FILE: Final = "cloudtrail-public-keys.json"
"""In the data directory: the CloudTrail public keys digests are checked against."""
MAX_DIGEST_BYTES: Final = 16 * 1024 * 1024
_REQUIRED: Final = ("digestEndTime", "digestS3Bucket", "digestS3Object",
                    "digestPublicKeyFingerprint", "logFiles")  # fmt: skip


class PublicKeyError(InvalidInputError):
    """A public key list that cannot be used; the message says which entry and why."""


def _moment(value: Any) -> datetime | None:
    """``list-public-keys`` times: epoch seconds (number or text, as the CLI v1 prints them)
    or ISO 8601 (as the CLI v2 does)."""
    if value is None:
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            try:
                return datetime.fromtimestamp(float(value), UTC)
            except ValueError:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
                return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


@dataclass(frozen=True)
class PinnedKey:
    fingerprint: str
    key: rsa.RSAPublicKey
    valid_from: datetime | None
    valid_until: datetime | None

    def valid_at(self, moment: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= moment) and (
            self.valid_until is None or moment <= self.valid_until
        )


@dataclass(frozen=True)
class PinnedKeys:
    keys: Mapping[str, PinnedKey]

    @classmethod
    def from_json(cls, data: bytes, name: str = "public keys") -> PinnedKeys:
        """``aws cloudtrail list-public-keys`` output (``PublicKeyList``; the User Guide's
        sample spells it ``publicKeyList``)."""
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise PublicKeyError(f"{name}: not JSON ({exc})") from None
        entries = None
        if isinstance(document, dict):
            entries = document.get("PublicKeyList", document.get("publicKeyList"))
        if not isinstance(entries, list) or not entries:
            raise PublicKeyError(
                f"{name}: expected the output of `aws cloudtrail list-public-keys` "
                '({"PublicKeyList": [{"Value": ..., "Fingerprint": ...}]})'
            )
        keys: dict[str, PinnedKey] = {}
        for index, entry in enumerate(entries):
            where = f"{name}: PublicKeyList[{index}]"
            if not isinstance(entry, dict):
                raise PublicKeyError(f"{where} is not an object")
            fingerprint, value = entry.get("Fingerprint"), entry.get("Value")
            if not isinstance(fingerprint, str) or not isinstance(value, str):
                raise PublicKeyError(f"{where}: needs Fingerprint and Value (strings)")
            try:
                key = load_der_public_key(base64.b64decode(value, validate=True))
            except (ValueError, binascii.Error) as exc:
                raise PublicKeyError(f"{where}: Value is not a DER public key ({exc})") from None
            if not isinstance(key, rsa.RSAPublicKey):
                raise PublicKeyError(f"{where}: not an RSA key (CloudTrail signs with RSA)")
            keys[fingerprint.lower()] = PinnedKey(
                fingerprint.lower(),
                key,
                _moment(entry.get("ValidityStartTime")),
                _moment(entry.get("ValidityEndTime")),
            )
        return cls(keys)

    @classmethod
    def load(cls, data_dir: Path) -> PinnedKeys | None:
        path = data_dir / KEYS_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return cls.from_json(data, str(path))


def signing_string(digest: Mapping[str, Any], inflated: bytes) -> bytes:
    """The string CloudTrail signs for a digest file (User Guide: "Recreate the data signing
    string"); a starting digest's missing previous signature is the text ``null``."""
    previous = digest.get("previousDigestSignature")
    return (
        f"{digest['digestEndTime']}\n{digest['digestS3Bucket']}/{digest['digestS3Object']}\n"
        f"{hashlib.sha256(inflated).hexdigest()}\n{previous if previous is not None else 'null'}"
    ).encode()


@dataclass
class _Digest:
    name: str
    document: dict[str, Any]
    inflated: bytes
    signatures: list[str]


@dataclass
class DigestSet:
    """Digest files of one import; ``covers(log)`` once they are all added."""

    keys: PinnedKeys | None
    problems: list[str] = field(default_factory=list)
    verified_digests: int = 0
    _digests: list[_Digest] = field(default_factory=list)
    _hashes: set[str] | None = None
    _reported: int = 0

    def new_problems(self) -> list[str]:
        """The problems not handed out by an earlier call (one import reports each once)."""
        fresh = self.problems[self._reported :]
        self._reported = len(self.problems)
        return fresh

    def add(self, name: str, raw: bytes, signature: str | None) -> None:
        try:
            inflated = inflate(raw, name, limit=MAX_DIGEST_BYTES)
            document = orjson.loads(inflated)
        except (CloudTrailFileError, orjson.JSONDecodeError) as exc:
            self.problems.append(f"{name}: not a readable CloudTrail digest ({exc})")
            return
        if not isinstance(document, dict) or any(k not in document for k in _REQUIRED):
            self.problems.append(f"{name}: not a CloudTrail digest (needs {', '.join(_REQUIRED)})")
            return
        self._digests.append(_Digest(name, document, inflated, [signature] if signature else []))
        self._hashes = None

    def _verify(self, digest: _Digest) -> bool:
        document = digest.document
        if document.get("digestSignatureAlgorithm", "SHA256withRSA") != "SHA256withRSA":
            self.problems.append(f"{digest.name}: unknown signature algorithm")
            return False
        assert self.keys is not None
        fingerprint = str(document["digestPublicKeyFingerprint"]).lower()
        pinned = self.keys.keys.get(fingerprint)
        if pinned is None:
            self.problems.append(
                f"{digest.name}: signed with key {fingerprint[:64]}, which is not pinned "
                "(trailguard correlate trust-keys)"
            )
            return False
        end = _moment(document["digestEndTime"])
        if end is not None and not pinned.valid_at(end):
            self.problems.append(f"{digest.name}: key {fingerprint} was not valid at {end}")
            return False
        if not digest.signatures:
            self.problems.append(
                f"{digest.name}: no signature to check (the newest digest's is in its S3 "
                "object's metadata: import it from s3://, or with the next hour's digest)"
            )
            return False
        message = signing_string(document, digest.inflated)
        for signature in digest.signatures:
            try:
                pinned.key.verify(
                    bytes.fromhex(signature), message, padding.PKCS1v15(), hashes.SHA256()
                )
                return True
            except (InvalidSignature, ValueError):
                continue
        self.problems.append(f"{digest.name}: INVALID signature: this digest is not CloudTrail's")
        return False

    def _resolve(self) -> set[str]:
        by_location = {
            (d.document["digestS3Bucket"], d.document["digestS3Object"]): d for d in self._digests
        }
        for digest in self._digests:
            previous = (
                digest.document.get("previousDigestS3Bucket"),
                digest.document.get("previousDigestS3Object"),
            )
            signature = digest.document.get("previousDigestSignature")
            if previous in by_location and isinstance(signature, str):
                by_location[previous].signatures.append(signature)
        hashes_: set[str] = set()
        if self.keys is None:
            if self._digests:
                self.problems.append(
                    f"{len(self._digests)} digest file(s) not checked: no CloudTrail public "
                    "keys are pinned (trailguard correlate trust-keys)"
                )
            return hashes_
        for digest in self._digests:
            if not self._verify(digest):
                continue
            self.verified_digests += 1
            for entry in digest.document.get("logFiles") or []:
                if (
                    isinstance(entry, dict)
                    and entry.get("hashAlgorithm", "SHA-256") == "SHA-256"
                    and isinstance(entry.get("hashValue"), str)
                ):
                    hashes_.add(entry["hashValue"].lower())
        return hashes_

    def resolve(self) -> None:
        """Check every digest added so far (``problems`` then says what did not check)."""
        if self._hashes is None:
            self._hashes = self._resolve()

    def covers(self, log: LogFile) -> bool:
        """Whether a verified digest lists ``log``'s uncompressed SHA-256."""
        self.resolve()
        assert self._hashes is not None
        return log.sha256 in self._hashes
