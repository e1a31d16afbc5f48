"""Evidence bundles: a zip anyone can verify offline with the log's public key.

It holds each event's exact canonical bytes, an RFC 9162 inclusion proof for each against one
signed tree head, consistency proofs to that head (from the first checkpoint that covered the
events, and from a checkpoint the auditor already holds), the public key, the report, a manifest
and ``SHA256SUMS`` with the SHA-256 of every member, ``VERIFY.md`` (how to check it by hand) and
``verify_bundle.py`` (the same checks with Python's standard library only).

``verify_bundle`` here checks a bundle with trailguard's own ledger code; the standalone script
is a second, independent implementation, so an auditor need not trust this one.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import orjson

from trailguard import __version__
from trailguard.errors import FaultError, InvalidInputError, NotFoundError, VerificationError
from trailguard.events import EventType
from trailguard.incident.html import render_html
from trailguard.incident.markdown import render_markdown
from trailguard.incident.records import LeafSource, ProofTree, Scope
from trailguard.incident.report import IncidentReport, build_report
from trailguard.ledger import checkpoint as checkpoints
from trailguard.ledger import merkle
from trailguard.ledger.note import NoteError, Verifier
from trailguard.store.base import EventFilter, LedgerRow, Store

BUNDLE_FORMAT = "trailguard-evidence-bundle/v1"
PROOFS_FORMAT = "trailguard-evidence-proofs/v1"
MANIFEST = "MANIFEST.json"
SUMS = "SHA256SUMS"
LATEST = "checkpoints/latest.txt"
COVERING = "checkpoints/covering.txt"
TRUSTED = "checkpoints/trusted.txt"
KEY = "key/verifier.txt"
PEM = "key/ed25519-public.pem"
PROOFS = "proofs.json"
REPORT_JSON = "report.json"
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
"""DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410) up to the 32 key bytes."""


class BundleExportError(InvalidInputError):
    """A bundle that cannot be made as asked (a --from-checkpoint of no use)."""


class NothingToExportError(NotFoundError, BundleExportError):
    """No event matches the scope."""


class RecordNotIntactError(FaultError, BundleExportError):
    """Events of the scope do not verify: a bundle never carries evidence that does not check.
    The record is damaged, which is the gateway's problem, not the caller's (5xx and an alert)."""


class BundleError(VerificationError):
    """A file that is not an evidence bundle at all."""


def event_file(seq: int) -> str:
    return f"events/{seq:012d}.json"


def public_key_pem(verifier: Verifier) -> str:
    """The verifier key as a PEM public key, for `openssl pkeyutl -verify`."""
    raw = base64.b64decode(verifier.to_string().split("+", 2)[2])[1:]
    body = base64.b64encode(_ED25519_SPKI_PREFIX + raw).decode()
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def _hex(values: list[bytes]) -> list[str]:
    return [value.hex() for value in values]


def _covering_checkpoint(
    store: Store, rows: list[LedgerRow], verifier: Verifier
) -> checkpoints.SignedCheckpoint | None:
    """The first ``checkpoint`` event that covers every one of ``rows``: the tree head a SIEM
    or archive received soon after the events happened."""
    last = max(rows, key=lambda r: r.seq)
    found = EventFilter(event_type=EventType.CHECKPOINT.value, since=last.timestamp)
    for row in store.query(found):
        if row.seq > last.seq:
            return checkpoints.open_checkpoint(checkpoints.note_of_event(bytes(row.body)), verifier)
    return None


@dataclass(frozen=True)
class ExportedBundle:
    data: bytes
    manifest_sha256: str
    report: IncidentReport
    events: int


def export_bundle(
    store: Store,
    scope: Scope,
    verifier: Verifier,
    *,
    key_source: str,
    key_pinned: bool,
    generated_by: str,
    from_checkpoint: str | None = None,
    archive: str | None = None,
    archived_rows: Sequence[LedgerRow] = (),
    leaves: LeafSource | None = None,
) -> ExportedBundle:
    """Build the bundle of ``scope``'s events. Raises BundleExportError when an event does not
    verify or ``from_checkpoint`` is not a prefix of this log: a bundle never carries evidence
    that does not check. ``archived_rows``: the scope's events pruned from the hot store, read
    from ``archive``; ``leaves`` supplies the pruned leaf hashes their proofs need (see
    trailguard.archive.evidence), so they are proven against the same head as the others."""
    report = build_report(
        store,
        scope,
        verifier,
        key_source=key_source,
        key_pinned=key_pinned,
        generated_by=generated_by,
        keep_paths=True,
        archive=archive,
        archived_rows=archived_rows,
        leaves=leaves,
    )
    verification = report.header.verification
    if not report.rows:
        raise NothingToExportError(f"nothing in the ledger matches {scope.describe()}")
    if not verification.intact or verification.checkpoint is None:
        problems = "; ".join(str(p) for p in verification.problems[:5])
        raise RecordNotIntactError(f"the events do not verify, so no bundle is made: {problems}")
    head = verification.checkpoint
    tree = ProofTree(store, leaves)
    members: dict[str, bytes] = {}
    consistency: list[dict[str, Any]] = []

    def prove_consistency(member: str, old: checkpoints.SignedCheckpoint) -> None:
        path = tree.consistency_proof(old.tree_size, head.tree_size)
        try:
            merkle.verify_consistency(
                old.tree_size, head.tree_size, old.root_hash, head.root_hash, path
            )
        except merkle.ConsistencyProofError as exc:
            raise BundleExportError(
                f"{member}: this log is not an extension of that checkpoint (a fork or a "
                f"rewrite): {exc}"
            ) from None
        members[member] = old.note.encode()
        consistency.append(
            {
                "from": member,
                "fromSize": old.tree_size,
                "toSize": head.tree_size,
                "path": _hex(path),
            }
        )

    covering = _covering_checkpoint(store, report.rows, verifier)
    if covering is not None and covering.tree_size < head.tree_size:
        prove_consistency(COVERING, covering)
    if from_checkpoint is not None:
        try:
            trusted = checkpoints.open_checkpoint(from_checkpoint, verifier)
        except checkpoints.CheckpointError as exc:
            raise BundleExportError(f"--from-checkpoint does not verify: {exc}") from None
        if trusted.origin != head.origin:
            raise BundleExportError(
                f"--from-checkpoint is of log {trusted.origin!r}, not {head.origin!r}"
            )
        if trusted.tree_size > head.tree_size:
            raise BundleExportError(
                f"--from-checkpoint covers {trusted.tree_size} events but this ledger's latest "
                f"signed head covers {head.tree_size}: the log was truncated or rolled back"
            )
        prove_consistency(TRUSTED, trusted)

    for row in report.rows:
        members[event_file(row.seq)] = bytes(row.body)
    context = {d["seq"] for d in report.context}
    proofs = {
        "format": PROOFS_FORMAT,
        "hashes": "RFC 6962 §2.1: leaf = SHA-256(0x00 || event bytes), node = "
        "SHA-256(0x01 || left || right); paths as in RFC 9162 §2.1.3 and §2.1.4, hex",
        "checkpoint": LATEST,
        "treeSize": head.tree_size,
        "rootHash": head.root_hash.hex(),
        "inclusion": [
            {
                "seq": row.seq,
                "eventId": row.event_id,
                "file": event_file(row.seq),
                "leafHash": merkle.hash_leaf(bytes(row.body)).hex(),
                "path": _hex(verification.paths[row.seq]),
            }
            for row in report.rows
        ],
        "consistency": consistency,
    }
    members[PROOFS] = orjson.dumps(proofs, option=orjson.OPT_INDENT_2)
    members[LATEST] = head.note.encode()
    members[KEY] = (verifier.to_string() + "\n").encode()
    members[PEM] = public_key_pem(verifier).encode()
    members[REPORT_JSON] = orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2)
    members["report.html"] = render_html(report).encode()
    members["report.md"] = render_markdown(report).encode()
    members["verify_bundle.py"] = (
        resources.files("trailguard.incident").joinpath("standalone.py").read_bytes()
    )
    members["VERIFY.md"] = _verify_md(report, head, verifier, covering, from_checkpoint).encode()
    manifest = {
        "format": BUNDLE_FORMAT,
        "createdAt": report.header.generated_at,
        "createdBy": generated_by,
        "trailguardVersion": __version__,
        "scope": scope.to_json(),
        "scopeDescription": scope.describe(),
        "log": {"origin": head.origin, "verifierKey": verifier.to_string()},
        "archive": None
        if not verification.archived_proven
        else {"url": archive, "events": verification.archived},
        "checkpoint": {"file": LATEST, "treeSize": head.tree_size, "rootHash": head.root_b64},
        "events": [
            {
                "seq": row.seq,
                "eventId": row.event_id,
                "timestamp": row.timestamp,
                "eventType": row.event_type,
                "sessionId": row.session_id,
                "file": event_file(row.seq),
                "context": row.seq in context,
            }
            for row in report.rows
        ],
        "members": {
            name: hashlib.sha256(data).hexdigest() for name, data in sorted(members.items())
        },
        "asserts": "that no event of the scope was left out, and that the events were recorded "
        "by the gateway holding the signing key: neither can be proven by the bundle",
    }
    members[MANIFEST] = orjson.dumps(manifest, option=orjson.OPT_INDENT_2)
    sums = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(members.items())
    )
    members[SUMS] = sums.encode()
    buffer = io.BytesIO()
    stamp = _zip_time(report.header.generated_at)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        first = [MANIFEST, SUMS, "VERIFY.md"]
        for name in [*first, *sorted(set(members) - set(first))]:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zipped.writestr(info, members[name])
    return ExportedBundle(
        buffer.getvalue(),
        hashlib.sha256(members[MANIFEST]).hexdigest(),
        report,
        len(report.rows),
    )


def _zip_time(timestamp: str) -> tuple[int, int, int, int, int, int]:
    date, time = timestamp[:10], timestamp[11:19]
    year, month, day = (int(x) for x in date.split("-"))
    hour, minute, second = (int(x) for x in time.split(":"))
    return (max(year, 1980), month, day, hour, minute, second)


def _verify_md(
    report: IncidentReport,
    head: checkpoints.SignedCheckpoint,
    verifier: Verifier,
    covering: checkpoints.SignedCheckpoint | None,
    from_checkpoint: str | None,
) -> str:
    template = resources.files("trailguard.incident").joinpath("templates/VERIFY.md")
    example = report.rows[0]
    return template.read_text(encoding="utf-8").format(
        origin=head.origin,
        tree_size=head.tree_size,
        root_b64=head.root_b64,
        root_hex=head.root_hash.hex(),
        key=verifier.to_string(),
        key_name=verifier.name,
        events=len(report.rows),
        example_seq=example.seq,
        example_file=event_file(example.seq),
        scope=report.header.scope.describe(),
        created=report.header.generated_at,
        covering="yes" if covering is not None and covering.tree_size < head.tree_size else "no",
        trusted="yes" if from_checkpoint is not None else "no",
    )


# -- verification ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleFinding:
    severity: Literal["failure", "warning"]
    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


@dataclass
class BundleVerification:
    events: int = 0
    proven: int = 0
    checkpoint: checkpoints.SignedCheckpoint | None = None
    trusted: checkpoints.SignedCheckpoint | None = None
    findings: list[BundleFinding] = field(default_factory=list)

    def fail(self, where: str, problem: str) -> None:
        self.findings.append(BundleFinding("failure", where, problem))

    def warn(self, where: str, problem: str) -> None:
        self.findings.append(BundleFinding("warning", where, problem))

    @property
    def failures(self) -> list[BundleFinding]:
        return [f for f in self.findings if f.severity == "failure"]

    @property
    def valid(self) -> bool:
        return not self.failures and self.checkpoint is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "events": self.events,
            "proven": self.proven,
            "checkpoint": None
            if self.checkpoint is None
            else {
                "origin": self.checkpoint.origin,
                "treeSize": self.checkpoint.tree_size,
                "rootHash": self.checkpoint.root_b64,
            },
            "trustedCheckpointSize": self.trusted.tree_size if self.trusted else None,
            "findings": [
                {"severity": f.severity, "where": f.where, "problem": f.problem}
                for f in self.findings
            ],
        }


def _read_members(data: bytes, result: BundleVerification) -> dict[str, bytes] | None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise BundleError(f"not a zip file: {exc}") from None
    members: dict[str, bytes] = {}
    with archive:
        for info in archive.infolist():
            if info.filename in members:
                result.fail(info.filename, "appears twice in the zip (a reader sees only one)")
                continue
            if info.file_size > 512 * 1024 * 1024:
                result.fail(info.filename, "is larger than any bundle member can be")
                continue
            try:
                members[info.filename] = archive.read(info)
            except (zipfile.BadZipFile, OSError, ValueError) as exc:  # CRC errors among them
                result.fail(info.filename, f"cannot be read from the zip: {exc}")
    return members


def _json_member(
    members: dict[str, bytes], name: str, result: BundleVerification
) -> dict[str, Any] | None:
    if name not in members:
        result.fail(name, "is missing from the bundle")
        return None
    try:
        value = orjson.loads(members[name])
    except orjson.JSONDecodeError as exc:
        result.fail(name, f"is not JSON: {exc}")
        return None
    if not isinstance(value, dict):
        result.fail(name, "is not a JSON object")
        return None
    return value


def _check_sums(
    members: dict[str, bytes], manifest: dict[str, Any], result: BundleVerification
) -> None:
    listed: dict[str, str] = {}
    for number, line in enumerate(members.get(SUMS, b"").decode("utf-8", "replace").splitlines()):
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            result.fail(SUMS, f"line {number + 1} is not '<sha256>  <file>'")
            continue
        listed[name] = digest
    if SUMS not in members:
        result.fail(SUMS, "is missing from the bundle")
    for name, digest in listed.items():
        if name not in members:
            result.fail(name, "is listed in SHA256SUMS but missing from the bundle (removed?)")
        elif hashlib.sha256(members[name]).hexdigest() != digest:
            result.fail(
                name,
                f"was changed: its SHA-256 is {hashlib.sha256(members[name]).hexdigest()}, "
                f"SHA256SUMS says {digest}",
            )
    for name in sorted(set(members) - set(listed) - {SUMS}):
        result.fail(name, "is in the bundle but not in SHA256SUMS (added?)")
    manifest_members = manifest.get("members")
    if not isinstance(manifest_members, dict):
        result.fail(MANIFEST, "has no members table")
        return
    for name, digest in manifest_members.items():
        if name not in members:
            result.fail(name, "is listed in the manifest but missing from the bundle (removed?)")
        elif hashlib.sha256(members[name]).hexdigest() != digest:
            result.fail(name, f"differs from the SHA-256 the manifest records ({digest})")
    for name in sorted(set(members) - set(manifest_members) - {SUMS, MANIFEST}):
        result.fail(name, "is in the bundle but not in the manifest (added?)")


def _open(
    members: dict[str, bytes], name: str, verifier: Verifier, result: BundleVerification
) -> checkpoints.SignedCheckpoint | None:
    if name not in members:
        result.fail(name, "is missing from the bundle")
        return None
    try:
        return checkpoints.open_checkpoint(members[name].decode("utf-8"), verifier)
    except (checkpoints.CheckpointError, UnicodeDecodeError) as exc:
        result.fail(name, f"is not a checkpoint signed by the key you gave: {exc}")
        return None


def _hashes(values: Any, where: str, result: BundleVerification) -> list[bytes] | None:
    try:
        if not isinstance(values, list):
            raise ValueError
        decoded = [bytes.fromhex(v) for v in values]
    except (TypeError, ValueError):
        result.fail(where, "its path is not a list of hex hashes")
        return None
    return decoded


def verify_bundle(
    data: bytes, verifier: Verifier, *, trusted_checkpoint: str | None = None
) -> BundleVerification:
    """Check an evidence bundle with nothing but the log's key (and optionally a checkpoint kept
    off the host). Every failure is collected and named; nothing stops at the first."""
    result = BundleVerification()
    members = _read_members(data, result) or {}
    try:
        _verify_members(members, verifier, trusted_checkpoint, result)
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        # A member of the right name but the wrong shape (a list for an object...): a forgery
        # or damage, never a reason to stop with a traceback.
        result.fail("bundle", f"a member is malformed ({type(exc).__name__}: {exc})")
    return result


def _verify_members(
    members: dict[str, bytes],
    verifier: Verifier,
    trusted_checkpoint: str | None,
    result: BundleVerification,
) -> None:
    manifest = _json_member(members, MANIFEST, result)
    if manifest is None:
        return
    if manifest.get("format") != BUNDLE_FORMAT:
        result.fail(MANIFEST, f"format is {manifest.get('format')!r}, not {BUNDLE_FORMAT}")
        return
    _check_sums(members, manifest, result)

    bundled_key = members.get(KEY, b"").decode("utf-8", "replace").strip()
    if bundled_key != verifier.to_string():
        result.fail(
            KEY,
            f"the bundle names key {bundled_key[:100]!r}, not the key you gave "
            f"({verifier.to_string()}): its signatures are checked with yours",
        )
    if members.get(PEM, b"").decode("utf-8", "replace") != public_key_pem(verifier):
        result.fail(PEM, "is not the PEM form of the key you gave")

    head = _open(members, LATEST, verifier, result)
    result.checkpoint = head
    proofs = _json_member(members, PROOFS, result)
    if head is None or proofs is None:
        return
    if manifest.get("log", {}).get("origin") != head.origin:
        result.fail(MANIFEST, f"names log {manifest.get('log')!r}, the checkpoint {head.origin!r}")
    if proofs.get("treeSize") != head.tree_size or proofs.get("rootHash") != head.root_hash.hex():
        result.fail(
            PROOFS,
            f"its proofs are for tree size {proofs.get('treeSize')} root {proofs.get('rootHash')}"
            f", but {LATEST} signs size {head.tree_size} root {head.root_hash.hex()} (the "
            "checkpoint was swapped)",
        )
    _check_events(members, manifest, proofs, head, result)
    _check_report(members, manifest, result)
    trusted_sizes = _check_consistency(members, proofs, head, verifier, result)
    if trusted_checkpoint is not None:
        _check_trusted(trusted_checkpoint, head, verifier, trusted_sizes, result)
    else:
        result.warn(
            "checkpoint",
            "no --trusted-checkpoint: the bundle's checkpoints are signed by the key, but only a "
            "checkpoint you kept shows that this log was not rewritten since",
        )


def _check_events(
    members: dict[str, bytes],
    manifest: dict[str, Any],
    proofs: dict[str, Any],
    head: checkpoints.SignedCheckpoint,
    result: BundleVerification,
) -> None:
    listed = manifest.get("events")
    if not isinstance(listed, list) or not listed:
        result.fail(MANIFEST, "lists no events")
        return
    result.events = len(listed)
    by_seq = {p.get("seq"): p for p in proofs.get("inclusion") or [] if isinstance(p, dict)}
    previous = -1
    for entry in listed:
        seq, name = entry.get("seq"), entry.get("file")
        where = f"event seq {seq} ({name})"
        if not isinstance(seq, int) or not isinstance(name, str):
            result.fail(MANIFEST, f"an event entry has no seq or file: {str(entry)[:100]}")
            continue
        if seq <= previous:
            result.fail(where, f"is listed after seq {previous}: events are out of ledger order")
        previous = max(previous, seq)
        if name != event_file(seq):
            result.fail(where, f"should be in {event_file(seq)}: files were swapped or renamed")
        body = members.get(name)
        if body is None:
            result.fail(where, "is missing from the bundle (removed?)")
            continue
        proof = by_seq.pop(seq, None)
        if proof is None:
            result.fail(where, "has no inclusion proof in proofs.json")
            continue
        leaf = merkle.hash_leaf(body)
        if proof.get("leafHash") != leaf.hex():
            result.fail(
                where,
                f"its bytes hash to leaf {leaf.hex()}, proofs.json says {proof.get('leafHash')}: "
                "the event was changed",
            )
        path = _hashes(proof.get("path"), where, result)
        if path is None:
            continue
        try:
            merkle.verify_inclusion(leaf, seq, head.tree_size, path, head.root_hash)
        except merkle.InclusionProofError as exc:
            result.fail(
                where,
                f"is not entry {seq} of the signed log of {head.tree_size} events: the event, "
                f"its position or its proof was changed ({exc})",
            )
            continue
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            result.fail(where, "is proven but is not JSON")
            continue
        if not isinstance(document, dict) or document.get("seq") != seq:
            result.fail(where, "is proven but does not say it is this seq")
            continue
        if document.get("eventId") != entry.get("eventId"):
            result.fail(where, "its eventId differs from the manifest's")
            continue
        result.proven += 1
    for seq in sorted(by_seq, key=str):
        result.fail(
            f"event seq {seq}",
            "proofs.json proves it but the manifest does not list it (an event was removed "
            "from the manifest?)",
        )


def _check_report(
    members: dict[str, bytes], manifest: dict[str, Any], result: BundleVerification
) -> None:
    report = _json_member(members, REPORT_JSON, result)
    if report is None:
        return
    bundled: dict[int, Any] = {}
    for entry in manifest.get("events") or []:
        if isinstance(entry, dict) and entry.get("file") in members:
            try:
                bundled[entry["seq"]] = orjson.loads(members[entry["file"]])
            except orjson.JSONDecodeError:
                bundled[entry["seq"]] = None  # named by the event checks
    shown = [*(report.get("timeline") or []), *(report.get("context") or [])]
    shown_seqs = set()
    for document in shown:
        seq = document.get("seq") if isinstance(document, dict) else None
        shown_seqs.add(seq)
        if seq not in bundled:
            result.fail(
                f"report.json seq {seq}",
                "the report shows an event the bundle does not prove (its file or manifest "
                "entry was removed)",
            )
        elif document != bundled[seq]:
            result.fail(f"report.json seq {seq}", "the report shows it differently from its bytes")
    for seq in sorted(set(bundled) - shown_seqs):
        result.fail(f"event seq {seq}", "is proven but the report does not show it")
    timeline = [d for d in report.get("timeline") or [] if isinstance(d, dict)]
    order = [(str(d.get("timestamp")), int(d.get("seq") or 0)) for d in timeline]
    if order != sorted(order):
        result.fail("report.json", "the timeline is not in time order")


def _check_consistency(
    members: dict[str, bytes],
    proofs: dict[str, Any],
    head: checkpoints.SignedCheckpoint,
    verifier: Verifier,
    result: BundleVerification,
) -> dict[int, bytes]:
    """Check each consistency proof; returns {old size: old root} of those that hold."""
    proven: dict[int, bytes] = {head.tree_size: head.root_hash}
    for entry in proofs.get("consistency") or []:
        name = entry.get("from") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            result.fail(PROOFS, "a consistency proof names no checkpoint")
            continue
        old = _open(members, name, verifier, result)
        if old is None:
            continue
        path = _hashes(entry.get("path"), name, result)
        if path is None:
            continue
        if entry.get("fromSize") != old.tree_size or entry.get("toSize") != head.tree_size:
            result.fail(name, "its consistency proof is for other tree sizes")
            continue
        try:
            merkle.verify_consistency(
                old.tree_size, head.tree_size, old.root_hash, head.root_hash, path
            )
        except merkle.ConsistencyProofError as exc:
            result.fail(name, f"is not a prefix of {LATEST}: {exc}")
            continue
        proven[old.tree_size] = old.root_hash
    return proven


def _check_trusted(
    trusted_note: str,
    head: checkpoints.SignedCheckpoint,
    verifier: Verifier,
    proven: dict[int, bytes],
    result: BundleVerification,
) -> None:
    where = "trusted checkpoint"
    try:
        trusted = checkpoints.open_checkpoint(trusted_note, verifier)
    except (checkpoints.CheckpointError, NoteError) as exc:
        result.fail(where, f"does not verify under the key you gave: {exc}")
        return
    result.trusted = trusted
    if trusted.origin != head.origin:
        result.fail(where, f"is of log {trusted.origin!r}, the bundle of {head.origin!r}")
    elif trusted.tree_size > head.tree_size:
        result.fail(
            where,
            f"covers {trusted.tree_size} events, more than the bundle's checkpoint "
            f"({head.tree_size}): the bundle predates it, or the log was rolled back",
        )
    elif trusted.tree_size not in proven:
        result.fail(
            where,
            f"the bundle carries no consistency proof from size {trusted.tree_size}: ask for "
            "one exported with --from-checkpoint",
        )
    elif proven[trusted.tree_size] != trusted.root_hash:
        result.fail(
            where,
            f"the bundle's log had another root at size {trusted.tree_size} than the one you "
            "kept: the log was rewritten (a fork)",
        )
