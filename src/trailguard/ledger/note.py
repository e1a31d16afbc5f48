"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys.

A note is UTF-8 text ending in a newline, then a blank line, then signature lines
``— <key name> <base64(key id || signature)>``. The key id is the first four bytes of
SHA-256(key name || 0x0A || 0x01 || public key). Keys use the Go ``sumdb/note`` string forms:
verifier ``<name>+<hex id>+<base64(0x01 || public key)>`` and signer
``PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from trailguard.errors import VerificationError

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space
_SIGNER_KEY_PREFIX = "PRIVATE+KEY+"


class NoteError(VerificationError):
    """A malformed note or key."""


class SignatureError(NoteError):
    """A note whose signature by the expected key is missing or does not verify."""


def _check_key_name(name: str) -> None:
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise NoteError(f"key name {name!r} must be non-empty, without '+' or spaces")


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id: SHA-256(name || 0x0A || signature type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @classmethod
    def from_string(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<hex key id>+<base64(0x01 || public key)>``."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError(f"verifier key must be name+keyid+key, got {vkey[:80]!r}")
        name, hex_id, encoded = parts
        _check_key_name(name)
        try:
            raw = base64.b64decode(encoded, validate=True)
            claimed_id = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError) as exc:
            raise NoteError(f"verifier key {name!r} is not valid base64/hex: {exc}") from None
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError(f"verifier key {name!r} is not an Ed25519 key (type byte, 32 bytes)")
        if len(claimed_id) != 4 or claimed_id != key_id(name, raw[1:]):
            raise NoteError(f"verifier key {name!r}: key id {hex_id} does not match the key")
        return cls(name, claimed_id, Ed25519PublicKey.from_public_bytes(raw[1:]))

    def to_string(self) -> str:
        raw = bytes([ALG_ED25519]) + _raw_public(self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(raw).decode()}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    name: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> Signer:
        _check_key_name(name)
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_string(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``."""
        skey = skey.strip()
        if not skey.startswith(_SIGNER_KEY_PREFIX):
            raise NoteError("signer key must start with PRIVATE+KEY+")
        parts = skey[len(_SIGNER_KEY_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise NoteError("signer key must be PRIVATE+KEY+name+keyid+key")
        name, hex_id, encoded = parts
        _check_key_name(name)
        try:
            raw = base64.b64decode(encoded, validate=True)
            claimed_id = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError):  # ValueError: non-ASCII input
            raise NoteError(f"signer key {name!r} is not valid base64/hex") from None
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError(f"signer key {name!r} is not an Ed25519 seed (type byte, 32 bytes)")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if claimed_id != signer.verifier.key_id:
            raise NoteError(f"signer key {name!r}: key id {hex_id} does not match the key")
        return signer

    def to_string(self) -> str:
        seed = self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        encoded = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"{_SIGNER_KEY_PREFIX}{self.name}+{self.verifier.key_id.hex()}+{encoded}"

    @functools.cached_property
    def verifier(self) -> Verifier:
        """Derived once: the writer signs a tree head at every commit."""
        public = self.private_key.public_key()
        return Verifier(self.name, key_id(self.name, _raw_public(public)), public)

    def signature_line(self, text: str) -> str:
        signature = self.private_key.sign(text.encode())
        encoded = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{SIGNATURE_PREFIX}{self.name} {encoded}\n"


_CONTROL_CHARACTER = re.compile(r"[\x00-\x09\x0b-\x1f]")


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if "\n\n" in text:
        raise NoteError("note text must not contain a blank line")
    if _CONTROL_CHARACTER.search(text):
        raise NoteError("note text must not contain control characters other than newline")


def sign(text: str, signer: Signer) -> str:
    """The signed note: ``text``, a blank line, and ``signer``'s signature line."""
    _check_text(text)
    return f"{text}\n{signer.signature_line(text)}"


@dataclass(frozen=True)
class SignedNote:
    text: str
    signatures: list[tuple[str, bytes, bytes]]
    """(key name, key id, signature) for every signature line, verified or not."""


def parse(note: str) -> SignedNote:
    """Split a signed note into its text and signature lines, without verifying anything."""
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("signed note has no blank line before its signatures")
    text, signature_block = note[: split + 1], note[split + 2 :]
    _check_text(text)
    if not signature_block.endswith("\n"):
        raise NoteError("signature block must end with a newline")
    signatures = []
    for line in signature_block[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"signature line must start with an em dash: {line[:80]!r}")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):  # ValueError: non-ASCII characters
            raise NoteError(f"signature by {name[:80]!r} is not valid base64") from None
        if len(blob) < 5:
            raise NoteError(f"signature by {name!r} is too short")
        signatures.append((name, blob[:4], blob[4:]))
    return SignedNote(text, signatures)


def open_note(note: str, verifier: Verifier) -> str:
    """Verify ``note`` was signed by ``verifier`` and return its text.

    Signatures by other keys are ignored, as the signed-note spec allows.
    Raises SignatureError when no signature by this key verifies.
    """
    parsed = parse(note)
    mine = [
        signature
        for name, kid, signature in parsed.signatures
        if name == verifier.name and kid == verifier.key_id
    ]
    if not mine:
        names = ", ".join(f"{name}+{kid.hex()}" for name, kid, _ in parsed.signatures) or "none"
        raise SignatureError(
            f"note has no signature by key {verifier.name}+{verifier.key_id.hex()} "
            f"(signed by: {names})"
        )
    if not any(verifier.verify(parsed.text.encode(), signature) for signature in mine):
        raise SignatureError(
            f"signature by key {verifier.name}+{verifier.key_id.hex()} does not verify: "
            "the note text was changed or the signature forged"
        )
    return parsed.text
