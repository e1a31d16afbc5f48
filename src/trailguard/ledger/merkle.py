"""The Merkle tree of RFC 6962 §2.1 with the proofs of RFC 9162 §2.1.3 and §2.1.4.

Leaves are ``SHA-256(0x00 || entry)`` and interior nodes ``SHA-256(0x01 || left || right)``; the
tree over n leaves splits at the largest power of two smaller than n. Proof *generation* takes a
``range_hash(begin, end)`` callback so a store can answer it from cached subtrees; proof
*verification* needs nothing but hashes and follows the RFC's numbered steps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from trailguard.errors import VerificationError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

RangeHash = Callable[[int, int], bytes]
"""MTH(D[begin:end]) for the tree's leaves in [begin, end)."""


class ProofError(VerificationError):
    """A proof that does not prove what it claims; the message says which step failed."""


class InclusionProofError(ProofError):
    pass


class ConsistencyProofError(ProofError):
    pass


def hash_leaf(entry: bytes) -> bytes:
    """RFC 6962 §2.1: MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return hashlib.sha256(b"\x00" + entry).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """RFC 6962 §2.1: SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """k such that k < n <= 2k (RFC 6962 §2.1), for n > 1."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves, by RFC 6962's recursive definition."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _largest_power_of_two_below(n)
    return hash_children(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))


def root_from_subtrees(subtree_hashes: Sequence[bytes]) -> bytes:
    """The root of a tree given the perfect subtrees that cover it, largest (leftmost) first.

    RFC 6962 splits at the largest power of two, so the root folds them from the right.
    """
    if not subtree_hashes:
        return EMPTY_ROOT
    node = subtree_hashes[-1]
    for left in reversed(subtree_hashes[:-1]):
        node = hash_children(left, node)
    return node


def subtree_levels(leaf_hashes: list[bytes], top_level: int) -> list[list[bytes]]:
    """Every perfect subtree of an aligned block of leaves, level by level up to ``top_level``:
    ``levels[k][i]`` covers leaves [i * 2**k, (i+1) * 2**k) of the block."""
    sha256 = hashlib.sha256
    levels = [leaf_hashes]
    for _ in range(top_level):
        below = levels[-1]
        levels.append(
            [
                sha256(b"\x01" + a + b).digest()
                for a, b in zip(below[0::2], below[1::2], strict=False)
            ]
        )
    return levels


def prefix_subtrees(levels: list[list[bytes]], length: int) -> list[bytes]:
    """The perfect subtrees covering the first ``length`` leaves of a block, largest first."""
    hashes = []
    begin = 0
    for level in range(min(length.bit_length(), len(levels)) - 1, -1, -1):
        if length >> level & 1:
            hashes.append(levels[level][begin >> level])
            begin += 1 << level
    return hashes


class CompactRange:
    """The roots of the perfect subtrees that cover leaves [0, size), largest first.

    Enough state to append leaves and compute any later root without rereading the log (the
    "compact range" of transparency-dev/merkle). ``completed`` collects every perfect subtree of
    height >= ``record_from_level`` (at least 1) as (level, index, hash) when it completes, so a
    store can keep them for fast proofs.
    """

    __slots__ = ("_hashes", "completed", "record_from_level", "size")

    def __init__(
        self,
        size: int = 0,
        subtree_hashes: Sequence[bytes] = (),
        *,
        record_from_level: int | None = None,
    ) -> None:
        if record_from_level is not None and record_from_level < 1:
            raise ValueError("record_from_level must be at least 1 (leaves are not recorded)")
        if len(subtree_hashes) != size.bit_count():
            raise ValueError(
                f"a compact range of size {size} has {size.bit_count()} subtrees, "
                f"got {len(subtree_hashes)}"
            )
        self.size = size
        self._hashes = list(subtree_hashes)
        self.record_from_level = record_from_level
        self.completed: list[tuple[int, int, bytes]] = []

    @staticmethod
    def subtree_bounds(size: int) -> list[tuple[int, int]]:
        """The [begin, end) ranges of the perfect subtrees covering [0, size), largest first."""
        bounds = []
        begin = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                bounds.append((begin, begin + (1 << level)))
                begin += 1 << level
        return bounds

    def append(self, leaf_hash: bytes) -> None:
        node = leaf_hash
        level = 0
        size = self.size
        record = self.record_from_level
        while size >> level & 1:
            node = hash_children(self._hashes.pop(), node)
            level += 1
            if record is not None and level >= record:
                self.completed.append((level, ((size + 1) >> level) - 1, node))
        self._hashes.append(node)
        self.size = size + 1

    def copy(self) -> CompactRange:
        """An independent copy (without ``completed``), to roll back a failed batch."""
        return CompactRange(self.size, list(self._hashes), record_from_level=self.record_from_level)

    @property
    def subtree_hashes(self) -> list[bytes]:
        return list(self._hashes)

    def root(self) -> bytes:
        return root_from_subtrees(self._hashes)


def inclusion_proof(index: int, size: int, range_hash: RangeHash) -> list[bytes]:
    """RFC 9162 §2.1.3.1: PATH(m, D[n]), the audit path of leaf ``index`` in a tree of ``size``."""
    if not 0 <= index < size:
        raise InclusionProofError(f"leaf index {index} is outside a tree of size {size}")

    def path(m: int, begin: int, end: int) -> list[bytes]:
        n = end - begin
        if n == 1:
            return []
        k = _largest_power_of_two_below(n)
        if m < k:
            return [*path(m, begin, begin + k), range_hash(begin + k, end)]
        return [*path(m - k, begin + k, end), range_hash(begin, begin + k)]

    return path(index, 0, size)


def consistency_proof(first: int, second: int, range_hash: RangeHash) -> list[bytes]:
    """RFC 9162 §2.1.4.1: PROOF(m, D[n]) between tree sizes ``first`` <= ``second``."""
    if not 0 <= first <= second:
        raise ConsistencyProofError(f"no consistency proof from size {first} to size {second}")
    if first in (0, second):
        return []

    def subproof(m: int, begin: int, end: int, whole_subtree: bool) -> list[bytes]:
        n = end - begin
        if m == n:
            return [] if whole_subtree else [range_hash(begin, end)]
        k = _largest_power_of_two_below(n)
        if m <= k:
            return [*subproof(m, begin, begin + k, whole_subtree), range_hash(begin + k, end)]
        return [*subproof(m - k, begin + k, end, False), range_hash(begin, begin + k)]

    return subproof(first, 0, second, True)


def _check_hash(value: bytes, what: str, error: type[ProofError]) -> None:
    if len(value) != HASH_SIZE:
        raise error(f"{what} is {len(value)} bytes, expected {HASH_SIZE}")


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2: check that ``leaf_hash`` is leaf ``index`` of the tree with ``root``.

    Returns nothing on success; raises InclusionProofError saying what did not match.
    """
    _check_hash(leaf_hash, "leaf hash", InclusionProofError)
    _check_hash(root, "root hash", InclusionProofError)
    # 1. If leaf_index is greater than or equal to tree_size, then stop and fail.
    if not 0 <= index < size:
        raise InclusionProofError(f"leaf index {index} is outside a tree of size {size}")
    # 2. Set fn to leaf_index and sn to tree_size - 1.
    fn, sn = index, size - 1
    # 3. Set r to hash.
    r = leaf_hash
    # 4. For each value p in the inclusion_path array:
    for position, p in enumerate(proof):
        _check_hash(p, f"proof hash {position}", InclusionProofError)
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            raise InclusionProofError(
                f"proof has {len(proof)} hashes, more than a tree of size {size} needs"
            )
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            # ii. If LSB(fn) is not set, right-shift fn and sn until LSB(fn) is set or fn is 0.
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 5. Compare sn to 0 and r against the root_hash.
    if sn != 0:
        raise InclusionProofError(
            f"proof has {len(proof)} hashes, too few for leaf {index} of a tree of size {size}"
        )
    if r != root:
        raise InclusionProofError(
            f"proof leads to root {r.hex()}, expected {root.hex()} (leaf {index}, size {size})"
        )


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: check that the tree of size ``second`` extends the tree of ``first``.

    Returns nothing on success; raises ConsistencyProofError saying what did not match.
    """
    _check_hash(first_root, "first root", ConsistencyProofError)
    _check_hash(second_root, "second root", ConsistencyProofError)
    if not 0 <= first <= second:
        raise ConsistencyProofError(f"size {first} cannot be a prefix of size {second}")
    if first == second:
        if proof:
            raise ConsistencyProofError("equal tree sizes need an empty proof")
        if first_root != second_root:
            raise ConsistencyProofError(
                f"two different roots for size {first}: {first_root.hex()} and "
                f"{second_root.hex()} (a forked log)"
            )
        return
    if first == 0:
        if proof:
            raise ConsistencyProofError("the empty tree needs an empty consistency proof")
        return
    # 1. If consistency_path is an empty array, stop and fail the proof verification.
    if not proof:
        raise ConsistencyProofError(f"empty proof between sizes {first} and {second}")
    for position, c in enumerate(proof):
        _check_hash(c, f"proof hash {position}", ConsistencyProofError)
    path = list(proof)
    # 2. If first is an exact power of 2, then prepend first_hash to the consistency_path array.
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = first - 1, second - 1
    # 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in path[1:]:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            raise ConsistencyProofError(
                f"proof has more hashes than sizes {first} and {second} need"
            )
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            # iii. If LSB(fn) is not set, right-shift fn and sn until LSB(fn) is set or fn is 0.
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 7. Verify fr == first_hash, sr == second_hash, and sn == 0.
    if sn != 0:
        raise ConsistencyProofError(f"proof has too few hashes for sizes {first} and {second}")
    if fr != first_root:
        raise ConsistencyProofError(
            f"proof rebuilds old root {fr.hex()}, expected {first_root.hex()}"
        )
    if sr != second_root:
        raise ConsistencyProofError(
            f"proof rebuilds new root {sr.hex()}, expected {second_root.hex()}"
        )
