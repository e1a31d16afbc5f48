"""Inclusion-proof bundles: one event, its audit path, and the signed checkpoint it leads to.

A bundle is self-contained JSON. Checking it needs only the log's public key: the checkpoint's
signature, then RFC 9162 §2.1.3.2 from the event's exact stored bytes to the signed root.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from trailguard.errors import VerificationError
from trailguard.events import EventType
from trailguard.ledger import checkpoint as checkpoints
from trailguard.ledger import merkle
from trailguard.ledger.note import Verifier
from trailguard.ledger.stored_tree import StoredTree
from trailguard.store.base import SIGNED_HEAD_KEY, Store

BUNDLE_FORMAT = "trailguard-inclusion-proof/v1"


class ProofBundleError(VerificationError):
    """A bundle that cannot be built or does not verify; the message says which check failed."""


def latest_checkpoint(
    store: Store, verifier: Verifier, *, check_stored_root: bool = True
) -> checkpoints.SignedCheckpoint:
    """The newest checkpoint, checked before it is handed out: signed by ``verifier`` and
    (unless ``check_stored_root`` is off) equal to the root of the stored tree at its size."""
    row = store.last_row_of_type(EventType.CHECKPOINT.value)
    if row is None:
        raise ProofBundleError("the ledger has no signed checkpoint yet")
    where = f"latest checkpoint (seq {row.seq})"
    try:
        signed = checkpoints.open_checkpoint(checkpoints.note_of_event(bytes(row.body)), verifier)
    except checkpoints.CheckpointError as exc:
        raise ProofBundleError(f"{where} is invalid: {exc}; run `trailguard verify`") from None
    if not check_stored_root:
        return signed
    try:
        matches = StoredTree(store).root(signed.tree_size) == signed.root_hash
    except LookupError:
        matches = False
    if not matches:
        raise ProofBundleError(f"{where} does not match the stored events; run `trailguard verify`")
    return signed


def latest_tree_head(
    store: Store, verifier: Verifier, *, check_stored_root: bool = True
) -> checkpoints.SignedCheckpoint:
    """The newest signed tree head: the writer's per-commit head when it is newer than the last
    ``checkpoint`` event (it covers every acknowledged event), checked like a checkpoint."""
    signed = latest_checkpoint(store, verifier, check_stored_root=check_stored_root)
    head_note = store.get_meta(SIGNED_HEAD_KEY)
    if head_note is None:
        return signed
    try:
        head = checkpoints.open_checkpoint(head_note, verifier)
    except checkpoints.CheckpointError as exc:
        raise ProofBundleError(
            f"the signed tree head is invalid: {exc}; run `trailguard verify`"
        ) from None
    if head.tree_size <= signed.tree_size:
        return signed
    if not check_stored_root:
        return head
    try:
        matches = StoredTree(store).root(head.tree_size) == head.root_hash
    except LookupError:
        matches = False
    if not matches:
        raise ProofBundleError(
            f"the signed tree head (size {head.tree_size}) does not match the stored events; "
            "run `trailguard verify`"
        )
    return head


def latest_checkpoint_note(store: Store, verifier: Verifier) -> str:
    """The newest signed tree head, as its note text (to keep somewhere off this host)."""
    return latest_tree_head(store, verifier).note


def build_inclusion_proof(store: Store, event_id: str, verifier: Verifier) -> dict[str, Any]:
    """The proof bundle for ``event_id`` against the latest checkpoint, checked before returning."""
    row = store.row_by_event_id(event_id)
    if row is None:
        raise ProofBundleError(f"no event with id {event_id} in this ledger")
    signed = latest_checkpoint(store, verifier)
    if row.seq >= signed.tree_size:
        raise ProofBundleError(
            f"event {event_id} (seq {row.seq}) is newer than the latest checkpoint, which "
            f"covers seq 0..{signed.tree_size - 1}; ask again after the next checkpoint"
        )
    path = StoredTree(store).inclusion_proof(row.seq, signed.tree_size)
    bundle = {
        "format": BUNDLE_FORMAT,
        "eventId": event_id,
        "leafIndex": row.seq,
        "treeSize": signed.tree_size,
        "entry": base64.b64encode(row.body).decode(),
        "inclusionPath": [base64.b64encode(node).decode() for node in path],
        "checkpoint": signed.note,
    }
    verify_inclusion_bundle(bundle, verifier)  # never hand out a proof that does not verify
    return bundle


@dataclass(frozen=True)
class VerifiedInclusion:
    event: dict[str, Any]
    leaf_index: int
    checkpoint: checkpoints.SignedCheckpoint


def _field(bundle: dict[str, Any], name: str, kind: type) -> Any:
    value = bundle.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProofBundleError(f"proof bundle field {name!r} is missing or not a {kind.__name__}")
    return value


def verify_inclusion_bundle(bundle: Any, verifier: Verifier) -> VerifiedInclusion:
    """Check a proof bundle with nothing but the public key. Raises ProofBundleError."""
    if not isinstance(bundle, dict):
        raise ProofBundleError("a proof bundle is a JSON object")
    if bundle.get("format") != BUNDLE_FORMAT:
        raise ProofBundleError(f"not a {BUNDLE_FORMAT} bundle (format {bundle.get('format')!r})")
    try:
        signed = checkpoints.open_checkpoint(_field(bundle, "checkpoint", str), verifier)
    except checkpoints.CheckpointError as exc:
        raise ProofBundleError(f"checkpoint: {exc}") from None
    index = _field(bundle, "leafIndex", int)
    if _field(bundle, "treeSize", int) != signed.tree_size:
        raise ProofBundleError(
            f"treeSize {bundle['treeSize']} differs from the signed checkpoint's {signed.tree_size}"
        )
    try:
        entry = base64.b64decode(_field(bundle, "entry", str), validate=True)
        path = [
            base64.b64decode(node, validate=True) for node in _field(bundle, "inclusionPath", list)
        ]
    except (binascii.Error, TypeError, ValueError):
        raise ProofBundleError("entry and inclusionPath must be base64") from None
    try:
        merkle.verify_inclusion(
            merkle.hash_leaf(entry), index, signed.tree_size, path, signed.root_hash
        )
    except merkle.InclusionProofError as exc:
        raise ProofBundleError(f"inclusion proof: {exc}") from None
    try:
        event = orjson.loads(entry)
    except orjson.JSONDecodeError:
        raise ProofBundleError("the proven entry is not JSON") from None
    if not isinstance(event, dict) or event.get("seq") != index:
        raise ProofBundleError(f"the proven event does not say it is seq {index}")
    if bundle.get("eventId") is not None and event.get("eventId") != bundle["eventId"]:
        raise ProofBundleError("the proven event's eventId differs from the bundle's eventId")
    return VerifiedInclusion(event, index, signed)


# -- consistency ----------------------------------------------------------------------------------

CONSISTENCY_FORMAT = "trailguard-consistency-proof/v1"


def signed_checkpoint_at(
    store: Store, verifier: Verifier, tree_size: int
) -> checkpoints.SignedCheckpoint:
    """The signed checkpoint of exactly ``tree_size`` events: the latest signed tree head, or the
    ``checkpoint`` event recorded at that position (each one covers the events before it)."""
    head = latest_tree_head(store, verifier)
    if tree_size == head.tree_size:
        return head
    row = next(iter(store.rows(tree_size, tree_size + 1)), None)
    if row is not None and row.event_type == EventType.CHECKPOINT.value:
        try:
            signed = checkpoints.open_checkpoint(
                checkpoints.note_of_event(bytes(row.body)), verifier
            )
        except checkpoints.CheckpointError as exc:
            raise ProofBundleError(
                f"the checkpoint at seq {row.seq} is invalid: {exc}; run `trailguard verify`"
            ) from None
        if signed.tree_size == tree_size:
            return signed
    raise ProofBundleError(
        f"no signed checkpoint covers exactly {tree_size} events: checkpoint events sit at the "
        f"position they cover (see `trailguard query --type checkpoint`); the latest signed "
        f"tree head covers {head.tree_size}"
    )


def build_consistency_proof(
    store: Store, verifier: Verifier, first: int, second: int | None = None
) -> dict[str, Any]:
    """RFC 9162 §2.1.4 proof that the log of ``first`` events is a prefix of the one a signed
    checkpoint of ``second`` events (default: the latest) covers; checked before returning."""
    to = (
        latest_tree_head(store, verifier)
        if second is None
        else signed_checkpoint_at(store, verifier, second)
    )
    if not 0 < first <= to.tree_size:
        raise ProofBundleError(
            f"--from must be between 1 and {to.tree_size} (the size of the checkpoint proven "
            f"to), got {first}"
        )
    tree = StoredTree(store)
    bundle = {
        "format": CONSISTENCY_FORMAT,
        "fromSize": first,
        "fromRoot": base64.b64encode(tree.root(first)).decode(),
        "toSize": to.tree_size,
        "consistencyPath": [
            base64.b64encode(node).decode() for node in tree.consistency_proof(first, to.tree_size)
        ],
        "checkpoint": to.note,
    }
    verify_consistency_bundle(bundle, verifier)
    return bundle


@dataclass(frozen=True)
class VerifiedConsistency:
    first: int
    first_root: bytes
    checkpoint: checkpoints.SignedCheckpoint
    trusted: bool
    """True when the old root came from a checkpoint the caller holds, not from the bundle."""


def verify_consistency_bundle(
    bundle: Any, verifier: Verifier, trusted_checkpoint: str | None = None
) -> VerifiedConsistency:
    """Check a consistency bundle with the public key: the new checkpoint's signature, then RFC
    9162 §2.1.4.2 from the old root (from ``trusted_checkpoint`` when given, which must be of
    ``fromSize`` events and signed by the same key) to the signed new root."""
    if not isinstance(bundle, dict):
        raise ProofBundleError("a proof bundle is a JSON object")
    if bundle.get("format") != CONSISTENCY_FORMAT:
        raise ProofBundleError(
            f"not a {CONSISTENCY_FORMAT} bundle (format {bundle.get('format')!r})"
        )
    try:
        signed = checkpoints.open_checkpoint(_field(bundle, "checkpoint", str), verifier)
    except checkpoints.CheckpointError as exc:
        raise ProofBundleError(f"checkpoint: {exc}") from None
    first = _field(bundle, "fromSize", int)
    if _field(bundle, "toSize", int) != signed.tree_size:
        raise ProofBundleError(
            f"toSize {bundle['toSize']} differs from the signed checkpoint's {signed.tree_size}"
        )
    try:
        first_root = base64.b64decode(_field(bundle, "fromRoot", str), validate=True)
        path = [
            base64.b64decode(node, validate=True)
            for node in _field(bundle, "consistencyPath", list)
        ]
    except (binascii.Error, TypeError, ValueError):
        raise ProofBundleError("fromRoot and consistencyPath must be base64") from None
    if trusted_checkpoint is not None:
        try:
            old = checkpoints.open_checkpoint(trusted_checkpoint, verifier)
        except checkpoints.CheckpointError as exc:
            raise ProofBundleError(f"trusted checkpoint: {exc}") from None
        if old.origin != signed.origin:
            raise ProofBundleError(
                f"the trusted checkpoint names log {old.origin!r}, the proof {signed.origin!r}"
            )
        if old.tree_size != first:
            raise ProofBundleError(
                f"the proof starts at size {first}, the trusted checkpoint has {old.tree_size}"
            )
        if old.root_hash != first_root:
            raise ProofBundleError(
                f"the log's root at size {first} is {base64.b64encode(first_root).decode()}, "
                f"the trusted checkpoint signed {old.root_b64}: the log was rewritten (a fork)"
            )
    try:
        merkle.verify_consistency(first, signed.tree_size, first_root, signed.root_hash, path)
    except merkle.ConsistencyProofError as exc:
        raise ProofBundleError(f"consistency proof: {exc}") from None
    return VerifiedConsistency(first, first_root, signed, trusted_checkpoint is not None)
