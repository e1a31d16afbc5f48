"""The Merkle tree of a stored ledger, answered from cached subtrees plus leaf hashes.

Subtrees of 2**8 leaves and more are read from the store's cache; smaller ranges are rehashed
from leaf hashes, so any range hash costs O(log n) reads and at most a few hundred hashes.
"""

from __future__ import annotations

from trailguard.ledger import merkle
from trailguard.store.base import Store

CACHED_SUBTREE_LEVEL = 8


class StoredTree:
    def __init__(self, store: Store) -> None:
        self._store = store

    def range_hash(self, begin: int, end: int) -> bytes:
        """MTH(D[begin:end]) over the stored leaves (RFC 6962 §2.1)."""
        size = end - begin
        if size <= 0:
            return merkle.EMPTY_ROOT
        level = size.bit_length() - 1
        is_perfect = size == 1 << level and begin % size == 0
        if is_perfect and level >= CACHED_SUBTREE_LEVEL:
            cached = self._store.tree_node(level, begin >> level)
            if cached is not None:
                return cached
        if size <= 1 << CACHED_SUBTREE_LEVEL:
            leaves = self._store.leaf_hashes(begin, end)
            if len(leaves) != size:
                raise LookupError(f"ledger is missing leaves in [{begin}, {end})")
            return merkle.root_of(leaves)
        k = 1 << ((size - 1).bit_length() - 1)
        return merkle.hash_children(
            self.range_hash(begin, begin + k), self.range_hash(begin + k, end)
        )

    def root(self, size: int) -> bytes:
        return self.range_hash(0, size)

    def compact_range(self, size: int) -> merkle.CompactRange:
        """The writer's state after ``size`` leaves, recording new cacheable subtrees."""
        hashes = [self.range_hash(b, e) for b, e in merkle.CompactRange.subtree_bounds(size)]
        return merkle.CompactRange(size, hashes, record_from_level=CACHED_SUBTREE_LEVEL)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return merkle.inclusion_proof(index, size, self.range_hash)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        return merkle.consistency_proof(first, second, self.range_hash)
