#!/usr/bin/env python3
"""Verify a trailguard evidence bundle with Python's standard library only.

    python3 verify_bundle.py BUNDLE.zip --key 'name+keyid+base64' [--trusted-checkpoint FILE]

This file is shipped inside every bundle so that an auditor need not trust trailguard: it does
not import it, and implements what it checks itself, each part citing its specification:
Ed25519 signature verification (RFC 8032 §5.1.7), C2SP signed notes and checkpoints
(c2sp.org/signed-note, c2sp.org/tlog-checkpoint), RFC 6962 §2.1 hashing and RFC 9162 §2.1.3 /
§2.1.4 inclusion and consistency proofs. It prints every failure it finds and exits 1 if there
is one, 0 if the bundle verifies, 2 if it cannot run (bad arguments, not a zip file).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import io
import json
import sys
import zipfile
from typing import Any

BUNDLE_FORMAT = "trailguard-evidence-bundle/v1"

# -- Ed25519 verification (RFC 8032 §5.1) --------------------------------------------------------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _add(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Point addition in extended coordinates (RFC 8032 §5.1.4)."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = t1 * 2 * _D * t2 % _P
    dd = z1 * 2 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _multiply(scalar: int, point: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    result = (0, 1, 1, 0)  # the neutral element
    while scalar > 0:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _equal(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _decompress(data: bytes) -> tuple[int, int, int, int] | None:
    """RFC 8032 §5.1.3; None when ``data`` is not a point."""
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)
    if x2 % _P == 0:
        if sign:
            return None
        x = 0
    else:
        x = pow(x2, (_P + 3) // 8, _P)
        if (x * x - x2) % _P != 0:
            x = x * _SQRT_M1 % _P
        if (x * x - x2) % _P != 0:
            return None
        if (x & 1) != sign:
            x = _P - x
    return (x, y, 1, x * y % _P)


_G_Y = 4 * pow(5, _P - 2, _P) % _P
_G = _decompress(_G_Y.to_bytes(32, "little"))


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 §5.1.7: [S]B = R + [SHA-512(R || A || M)]A."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decompress(public)
    r = _decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or _G is None or s >= _L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % _L
    return _equal(_multiply(s, _G), _add(r, _multiply(k, a)))


# -- signed notes and checkpoints (C2SP) ---------------------------------------------------------


class Key:
    """A signed-note verifier key: ``name+hex(key id)+base64(0x01 || Ed25519 public key)``."""

    def __init__(self, text: str) -> None:
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise ValueError("a verifier key is name+keyid+base64")
        self.name, key_id, encoded = parts
        raw = base64.b64decode(encoded, validate=True)
        if len(raw) != 33 or raw[0] != 1:
            raise ValueError("not an Ed25519 verifier key")
        self.public = raw[1:]
        self.key_id = bytes.fromhex(key_id)
        expected = hashlib.sha256(self.name.encode() + b"\n\x01" + self.public).digest()[:4]
        if self.key_id != expected:
            raise ValueError("the key id does not match the key")
        self.text = text.strip()


class Checkpoint:
    def __init__(self, origin: str, size: int, root: bytes) -> None:
        self.origin, self.size, self.root = origin, size, root


def open_checkpoint(note: str, key: Key) -> Checkpoint:
    """Check the note's signature by ``key`` and parse origin, tree size and root."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise ValueError("not a signed note")
    text, signatures = note[: split + 1], note[split + 2 : -1].split("\n")
    good = False
    for line in signatures:
        if not line.startswith("\u2014 "):
            raise ValueError("a signature line must start with an em dash")
        name, _, encoded = line[2:].partition(" ")
        blob = base64.b64decode(encoded, validate=True)
        if name == key.name and blob[:4] == key.key_id:
            good = good or ed25519_verify(key.public, text.encode(), blob[4:])
    if not good:
        raise ValueError(f"no valid signature by key {key.name}+{key.key_id.hex()}")
    lines = text.split("\n")
    if len(lines) < 4 or not lines[1].isdigit():
        raise ValueError("not a checkpoint (origin, size, root)")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise ValueError("the root is not 32 bytes")
    return Checkpoint(lines[0], int(lines[1]), root)


# -- RFC 6962 / RFC 9162 ---------------------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def inclusion_ok(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while fn != 0 and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def consistency_ok(
    first: int, second: int, first_root: bytes, second_root: bytes, path: list[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2."""
    if not 0 < first <= second:
        return False
    if first == second:
        return not path and first_root == second_root
    if not path:
        return False
    if first & (first - 1) == 0:
        path = [first_root, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while fn != 0 and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root


# -- the bundle ------------------------------------------------------------------------------------


def verify(
    data: bytes, key: Key, trusted_note: str | None = None
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Every failure and warning found in the bundle ``data``, as (where, what) pairs."""
    failures: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []

    def fail(where: str, what: str) -> None:
        failures.append((where, what))

    members: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if info.filename in members:
                fail(info.filename, "appears twice in the zip")
                continue
            try:
                members[info.filename] = archive.read(info)
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                fail(info.filename, f"cannot be read: {exc}")

    def load(name: str) -> Any:
        try:
            return json.loads(members[name])
        except KeyError:
            fail(name, "is missing")
        except ValueError:
            fail(name, "is not JSON")
        return None

    def sha256(name: str) -> str:
        return hashlib.sha256(members[name]).hexdigest()

    manifest = load("MANIFEST.json")
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        fail("MANIFEST.json", f"is not a {BUNDLE_FORMAT} manifest")
        return failures, warnings
    if not isinstance(manifest.get("events"), list) or not manifest["events"]:
        fail("MANIFEST.json", "lists no events")
    sums: dict[str, str] = {}
    for line in members.get("SHA256SUMS", b"").decode("utf-8", "replace").splitlines():
        digest, _, name = line.partition("  ")
        sums[name] = digest
    listed = dict(manifest.get("members") or {})
    for table, label in ((sums, "SHA256SUMS"), (listed, "the manifest")):
        for name, digest in table.items():
            if name not in members:
                fail(name, f"is listed in {label} but missing (removed?)")
            elif sha256(name) != digest:
                fail(name, f"was changed: SHA-256 {sha256(name)}, {label} says {digest}")
    for name in members:
        if name not in sums and name != "SHA256SUMS":
            fail(name, "is not listed in SHA256SUMS (added?)")

    if members.get("key/verifier.txt", b"").decode("utf-8", "replace").strip() != key.text:
        fail("key/verifier.txt", "is not the key you gave; signatures are checked with yours")

    def checkpoint(name: Any) -> Checkpoint | None:
        try:
            return open_checkpoint(members[name].decode("utf-8"), key)
        except KeyError:
            fail(name, "is missing")
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            fail(name, f"is not a checkpoint signed by your key: {exc}")
        return None

    head = checkpoint("checkpoints/latest.txt")
    proofs = load("proofs.json")
    if not isinstance(proofs, dict):
        fail("proofs.json", "is not a proofs table")
    if head is None or not isinstance(proofs, dict):
        return failures, warnings
    if proofs.get("treeSize") != head.size or proofs.get("rootHash") != head.root.hex():
        fail("proofs.json", "is for another tree than checkpoints/latest.txt signs (swapped?)")

    inclusion = {p.get("seq"): p for p in proofs.get("inclusion") or []}
    bodies: dict[int, Any] = {}
    previous = -1
    for entry in manifest.get("events") or []:
        seq, name = entry.get("seq"), entry.get("file")
        where = f"event seq {seq} ({name})"
        if not isinstance(seq, int) or seq <= previous:
            fail(where, f"is listed after seq {previous}: out of ledger order")
        previous = max(previous, seq if isinstance(seq, int) else previous)
        if not isinstance(seq, int) or name != f"events/{seq:012d}.json":
            fail(where, "is not in the file named for its seq (swapped or renamed)")
        proof = inclusion.pop(seq, None)
        if name not in members or proof is None:
            fail(where, "is missing" if name not in members else "has no inclusion proof")
            continue
        body = members[name]
        leaf = leaf_hash(body)
        if proof.get("leafHash") != leaf.hex():
            fail(where, f"hashes to leaf {leaf.hex()}, not {proof.get('leafHash')}: changed")
        try:
            path = [bytes.fromhex(h) for h in proof.get("path") or []]
        except ValueError:
            fail(where, "its path is not hex")
            continue
        if not inclusion_ok(leaf, seq, head.size, path, head.root):
            fail(where, f"is not entry {seq} of the signed log of {head.size} events")
            continue
        try:
            document = json.loads(body)
        except ValueError:
            fail(where, "is not JSON")
            continue
        if document.get("seq") != seq or document.get("eventId") != entry.get("eventId"):
            fail(where, "does not say it is this seq and eventId")
            continue
        bodies[seq] = document
    for seq in inclusion:
        fail(f"event seq {seq}", "is proven in proofs.json but not listed in the manifest")

    report = load("report.json")
    if not isinstance(report, dict):
        fail("report.json", "is not a report")
    else:
        shown = {d.get("seq"): d for d in [*report.get("timeline", []), *report.get("context", [])]}
        for seq in sorted(set(shown) | set(bodies), key=str):
            if seq not in bodies:
                fail(f"report.json seq {seq}", "is shown by the report but not proven")
            elif seq not in shown:
                fail(f"event seq {seq}", "is proven but not shown by the report")
            elif shown[seq] != bodies[seq]:
                fail(f"report.json seq {seq}", "is shown differently from its proven bytes")

    proven_roots: dict[int, bytes] = {head.size: head.root}
    for entry in proofs.get("consistency") or []:
        old = checkpoint(entry.get("from"))
        if old is None:
            continue
        try:
            path = [bytes.fromhex(h) for h in entry.get("path") or []]
        except ValueError:
            path = []
        if not consistency_ok(old.size, head.size, old.root, head.root, path):
            fail(entry.get("from"), "is not a prefix of checkpoints/latest.txt")
        else:
            proven_roots[old.size] = old.root

    if trusted_note is None:
        warnings.append(("checkpoint", "no --trusted-checkpoint: compare with one you kept"))
    else:
        try:
            trusted = open_checkpoint(trusted_note, key)
        except (ValueError, binascii.Error) as exc:
            fail("trusted checkpoint", f"does not verify under your key: {exc}")
        else:
            if trusted.size not in proven_roots:
                fail("trusted checkpoint", f"the bundle proves nothing from size {trusted.size}")
            elif proven_roots[trusted.size] != trusted.root:
                fail("trusted checkpoint", "the log had another root at that size: a fork")
    return failures, warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--key", required=True, help="verifier key, or a file holding it")
    parser.add_argument("--trusted-checkpoint", help="a checkpoint of this log you kept")
    args = parser.parse_args(argv)
    try:
        text = args.key
        if "+" not in text:
            with open(text, encoding="utf-8") as handle:
                text = handle.read()
        key = Key(text)
        trusted = None
        if args.trusted_checkpoint:
            with open(args.trusted_checkpoint, encoding="utf-8") as handle:
                trusted = handle.read()
        with open(args.bundle, "rb") as handle:
            data = handle.read()
    except (OSError, ValueError, binascii.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        failures, warnings = verify(data, key, trusted)
    except zipfile.BadZipFile as exc:
        print(f"error: not a zip file: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a member of the wrong shape: not verified, whatever it is
        failures, warnings = [("bundle", f"a member is malformed ({type(exc).__name__})")], []
    for where, what in warnings:
        print(f"WARNING {where}: {what}")
    for where, what in failures:
        print(f"FAILURE {where}: {what}")
    if failures:
        print(f"INVALID: {len(failures)} failure(s)")
        return 1
    print(f"VALID: every event in {args.bundle} is proven an entry of the log signed by {key.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
