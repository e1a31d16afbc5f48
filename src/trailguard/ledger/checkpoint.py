"""Checkpoints in the C2SP tlog-checkpoint form (https://c2sp.org/tlog-checkpoint).

The note text is three lines: the log's origin, the tree size in decimal, and the base64 root
hash; it is signed as a C2SP signed note.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from trailguard.errors import VerificationError
from trailguard.ledger import note
from trailguard.ledger.merkle import HASH_SIZE


class CheckpointError(VerificationError):
    """A checkpoint that is malformed or not signed by the expected key."""


@dataclass(frozen=True)
class SignedCheckpoint:
    origin: str
    tree_size: int
    root_hash: bytes
    note: str
    """The complete signed note, exactly as signed."""

    @property
    def root_b64(self) -> str:
        return base64.b64encode(self.root_hash).decode()


def checkpoint_text(origin: str, tree_size: int, root_hash: bytes) -> str:
    if not origin or "\n" in origin:
        raise CheckpointError("origin must be one non-empty line")
    if len(root_hash) != HASH_SIZE:
        raise CheckpointError(f"root hash must be {HASH_SIZE} bytes")
    return f"{origin}\n{tree_size}\n{base64.b64encode(root_hash).decode()}\n"


def sign_checkpoint(
    origin: str, tree_size: int, root_hash: bytes, signer: note.Signer
) -> SignedCheckpoint:
    text = checkpoint_text(origin, tree_size, root_hash)
    return SignedCheckpoint(origin, tree_size, root_hash, note.sign(text, signer))


def parse_checkpoint_text(text: str) -> tuple[str, int, bytes]:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise CheckpointError("checkpoint must have origin, size and root lines")
    origin, size_line, root_line = lines[0], lines[1], lines[2]
    if not origin:
        raise CheckpointError("checkpoint origin line is empty")
    is_decimal = size_line.isascii() and size_line.isdigit() and len(size_line) <= 20
    if not is_decimal or (size_line != "0" and size_line.startswith("0")):
        raise CheckpointError(f"tree size {size_line[:40]!r} is not a decimal number")
    try:
        root = base64.b64decode(root_line, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII characters
        raise CheckpointError(f"root hash {root_line[:60]!r} is not base64") from None
    if len(root) != HASH_SIZE:
        raise CheckpointError(f"root hash is {len(root)} bytes, expected {HASH_SIZE}")
    return origin, int(size_line), root


def open_checkpoint(signed_note: str, verifier: note.Verifier) -> SignedCheckpoint:
    """Verify the signature by ``verifier`` and parse the checkpoint it signs.

    Raises CheckpointError (for a bad signature too) naming what is wrong.
    """
    try:
        text = note.open_note(signed_note, verifier)
    except note.NoteError as exc:
        raise CheckpointError(str(exc)) from None
    origin, size, root = parse_checkpoint_text(text)
    return SignedCheckpoint(origin, size, root, signed_note)


def read_unverified(signed_note: str) -> SignedCheckpoint:
    """Parse a checkpoint without checking its signature (to report what it claims)."""
    try:
        parsed = note.parse(signed_note)
    except note.NoteError as exc:
        raise CheckpointError(str(exc)) from None
    origin, size, root = parse_checkpoint_text(parsed.text)
    return SignedCheckpoint(origin, size, root, signed_note)


def note_of_event(body: bytes) -> str:
    """The signed note carried by a stored ``checkpoint`` event's bytes.

    Raises CheckpointError when the bytes are not a JSON object with a string ``note``.
    """
    import orjson

    try:
        document = orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(f"checkpoint event is not JSON: {exc}") from None
    note = document.get("note") if isinstance(document, dict) else None
    if not isinstance(note, str):
        raise CheckpointError("checkpoint event carries no signed note")
    return note
