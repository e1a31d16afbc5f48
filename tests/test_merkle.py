"""RFC 6962 / RFC 9162 Merkle tree: public vectors, proof generation and verification."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from trailguard.errors import VerificationError
from trailguard.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ConsistencyProofError,
    InclusionProofError,
    ProofError,
    consistency_proof,
    hash_children,
    hash_leaf,
    inclusion_proof,
    prefix_subtrees,
    root_from_subtrees,
    root_of,
    subtree_levels,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6962_merkle.json").read_text())
VECTOR_LEAVES = [bytes.fromhex(leaf) for leaf in VECTORS["leaves"]]
VECTOR_LEAF_HASHES = [hash_leaf(leaf) for leaf in VECTOR_LEAVES]
VECTOR_ROOTS = {size: bytes.fromhex(root) for size, root in enumerate(VECTORS["roots"], start=1)}
MAX_SIZE = 300
PROOF_EXAMPLES = 200
TAMPER_EXAMPLES = 100


def _range_hash_over(leaf_hashes):
    return lambda begin, end: root_of(leaf_hashes[begin:end])


def _leaf_hashes(salt: bytes, count: int) -> list[bytes]:
    """Distinct leaves (the index is part of each entry), so no two subtrees share a hash."""
    return [hash_leaf(salt + i.to_bytes(4, "big")) for i in range(count)]


def _flip_bit(value: bytes, bit: int) -> bytes:
    position = (bit // 8) % len(value)
    return value[:position] + bytes([value[position] ^ (1 << (bit % 8))]) + value[position + 1 :]


# --- public vectors -----------------------------------------------------------------------


def test_vector_file_covers_tree_sizes_one_to_eight():
    assert len(VECTOR_LEAVES) == 8
    assert sorted(VECTOR_ROOTS) == list(range(1, 9))


@pytest.mark.parametrize("size", range(1, 9))
def test_root_of_matches_published_root(size):
    assert root_of(VECTOR_LEAF_HASHES[:size]) == VECTOR_ROOTS[size]


def test_compact_range_appended_leaf_by_leaf_matches_every_published_root():
    tree = CompactRange()
    for size, leaf_hash in enumerate(VECTOR_LEAF_HASHES, start=1):
        tree.append(leaf_hash)
        assert tree.size == size
        assert tree.root() == VECTOR_ROOTS[size]


def test_empty_tree_root_is_the_published_sha256_of_nothing():
    expected = bytes.fromhex(VECTORS["emptyRoot"])
    assert expected == bytes.fromhex(VECTORS["hasherVectors"]["emptyRoot"]["hash"])
    assert expected == EMPTY_ROOT
    assert root_of([]) == expected
    assert root_from_subtrees([]) == expected
    assert CompactRange().root() == expected


@pytest.mark.parametrize("vector", VECTORS["hasherVectors"]["leafHashes"], ids=lambda v: v["desc"])
def test_hash_leaf_matches_published_hasher_vector(vector):
    entry = bytes.fromhex(vector["inputHex"])
    assert entry == vector["inputAscii"].encode()
    assert hash_leaf(entry) == bytes.fromhex(vector["hash"])


@pytest.mark.parametrize("vector", VECTORS["hasherVectors"]["nodeHashes"], ids=lambda v: v["desc"])
def test_hash_children_matches_published_hasher_vector(vector):
    left, right = bytes.fromhex(vector["leftHex"]), bytes.fromhex(vector["rightHex"])
    assert hash_children(left, right) == bytes.fromhex(vector["hash"])


def test_hash_children_is_order_sensitive_and_domain_separated_from_leaves():
    left, right = b"\x11" * 32, b"\x22" * 32
    assert hash_children(left, right) != hash_children(right, left)
    assert hash_children(left, right) != hash_leaf(left + right)


def test_subtree_levels_match_published_node_hashes():
    expected = [[bytes.fromhex(h) for h in level] for level in VECTORS["nodeHashes"]["levels"]]
    assert [len(level) for level in expected] == [8, 4, 2, 1]
    assert subtree_levels(VECTOR_LEAF_HASHES, 3) == expected


@pytest.mark.parametrize(
    "vector",
    VECTORS["inclusionProofs"],
    ids=lambda v: f"leaf{v['leafIndex']}-size{v['treeSize']}",
)
def test_inclusion_proof_matches_and_verifies_published_vector(vector):
    index, size = vector["leafIndex"], vector["treeSize"]
    expected = [bytes.fromhex(h) for h in vector["proof"]]
    generated = inclusion_proof(index, size, _range_hash_over(VECTOR_LEAF_HASHES))
    assert generated == expected
    verify_inclusion(VECTOR_LEAF_HASHES[index], index, size, expected, VECTOR_ROOTS[size])


@pytest.mark.parametrize(
    "vector",
    VECTORS["consistencyProofs"],
    ids=lambda v: f"size{v['size1']}-to-size{v['size2']}",
)
def test_consistency_proof_matches_and_verifies_published_vector(vector):
    first, second = vector["size1"], vector["size2"]
    expected = [bytes.fromhex(h) for h in vector["proof"]]
    generated = consistency_proof(first, second, _range_hash_over(VECTOR_LEAF_HASHES))
    assert generated == expected
    verify_consistency(first, second, VECTOR_ROOTS[first], VECTOR_ROOTS[second], expected)


@pytest.mark.parametrize(
    "vector",
    [v for v in VECTORS["inclusionProofs"] if v["proof"]],
    ids=lambda v: f"leaf{v['leafIndex']}-size{v['treeSize']}",
)
def test_published_inclusion_proof_with_flipped_hash_is_rejected(vector):
    index, size = vector["leafIndex"], vector["treeSize"]
    proof = [bytes.fromhex(h) for h in vector["proof"]]
    proof[-1] = _flip_bit(proof[-1], 0)
    with pytest.raises(InclusionProofError):
        verify_inclusion(VECTOR_LEAF_HASHES[index], index, size, proof, VECTOR_ROOTS[size])


@pytest.mark.parametrize(
    "vector",
    [v for v in VECTORS["consistencyProofs"] if v["proof"]],
    ids=lambda v: f"size{v['size1']}-to-size{v['size2']}",
)
def test_published_consistency_proof_against_wrong_old_root_is_rejected(vector):
    first, second = vector["size1"], vector["size2"]
    proof = [bytes.fromhex(h) for h in vector["proof"]]
    wrong_first_root = VECTOR_ROOTS[first % 8 + 1]
    with pytest.raises(ConsistencyProofError):
        verify_consistency(first, second, wrong_first_root, VECTOR_ROOTS[second], proof)


def test_proof_errors_share_the_proof_error_base_class():
    assert issubclass(InclusionProofError, ProofError)
    assert issubclass(ConsistencyProofError, ProofError)
    assert issubclass(ProofError, VerificationError)
    assert not issubclass(ProofError, ValueError)


# --- inclusion proofs over random trees ----------------------------------------------------


@st.composite
def inclusion_cases(draw):
    salt = draw(st.binary(max_size=16))
    size = draw(st.integers(1, MAX_SIZE))
    index = draw(st.integers(0, size - 1))
    leaves = _leaf_hashes(salt, size)
    proof = inclusion_proof(index, size, _range_hash_over(leaves))
    return leaves, index, size, proof, root_of(leaves)


@settings(max_examples=PROOF_EXAMPLES, deadline=None)
@given(inclusion_cases())
def test_generated_inclusion_proof_verifies(case):
    leaves, index, size, proof, root = case
    verify_inclusion(leaves[index], index, size, proof, root)


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(inclusion_cases(), st.data())
def test_inclusion_proof_with_flipped_hash_is_rejected(case, data):
    leaves, index, size, proof, root = case
    if not proof:  # a one-leaf tree has nothing to flip
        assert size == 1
        return
    position = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    tampered = list(proof)
    tampered[position] = _flip_bit(tampered[position], bit)
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaves[index], index, size, tampered, root)


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(inclusion_cases(), st.data())
def test_inclusion_proof_for_a_different_leaf_is_rejected(case, data):
    leaves, index, size, proof, root = case
    wrong_leaf = data.draw(
        st.sampled_from([leaf for i, leaf in enumerate(leaves) if i != index] or [b"\x00" * 32])
    )
    with pytest.raises(InclusionProofError):
        verify_inclusion(wrong_leaf, index, size, proof, root)


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(inclusion_cases(), st.data())
def test_inclusion_proof_at_a_different_index_is_rejected(case, data):
    leaves, index, size, proof, root = case
    other = data.draw(st.integers(-2, size + 2).filter(lambda i: i != index))
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaves[index], other, size, proof, root)


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(st.binary(max_size=16), st.data())
def test_inclusion_proof_does_not_verify_against_another_tree_size(salt, data):
    # The root is what binds a proof to a size: a proof made for `size` must not verify against
    # the real root of any other size (whether or not that size covers the leaf).
    size = data.draw(st.integers(1, MAX_SIZE))
    other = data.draw(st.integers(1, MAX_SIZE).filter(lambda n: n != size))
    index = data.draw(st.integers(0, size - 1))
    leaves = _leaf_hashes(salt, max(size, other))
    proof = inclusion_proof(index, size, _range_hash_over(leaves))
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaves[index], index, other, proof, root_of(leaves[:other]))


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(inclusion_cases(), st.data())
def test_inclusion_proof_with_an_extra_hash_is_rejected(case, data):
    leaves, index, size, proof, root = case
    extra = data.draw(st.binary(min_size=32, max_size=32))
    position = data.draw(st.integers(0, len(proof)))
    with pytest.raises(InclusionProofError):
        verify_inclusion(
            leaves[index], index, size, [*proof[:position], extra, *proof[position:]], root
        )


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(inclusion_cases(), st.data())
def test_inclusion_proof_with_a_dropped_hash_is_rejected(case, data):
    leaves, index, size, proof, root = case
    if not proof:
        assert size == 1
        return
    position = data.draw(st.integers(0, len(proof) - 1))
    with pytest.raises(InclusionProofError):
        verify_inclusion(
            leaves[index], index, size, [*proof[:position], *proof[position + 1 :]], root
        )


def test_inclusion_proof_hashes_of_wrong_length_are_rejected():
    leaves = _leaf_hashes(b"len", 5)
    proof = inclusion_proof(1, 5, _range_hash_over(leaves))
    root = root_of(leaves)
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaves[1], 1, 5, [proof[0][:31], *proof[1:]], root)
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaves[1][:31], 1, 5, proof, root)
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaves[1], 1, 5, proof, root + b"\x00")


def test_inclusion_proof_error_says_whether_hashes_are_missing_or_extra():
    leaves = _leaf_hashes(b"count", 13)
    proof = inclusion_proof(6, 13, _range_hash_over(leaves))
    root = root_of(leaves)
    with pytest.raises(InclusionProofError, match="too few"):
        verify_inclusion(leaves[6], 6, 13, proof[:-1], root)
    with pytest.raises(InclusionProofError, match="more than"):
        verify_inclusion(leaves[6], 6, 13, [*proof, proof[0]], root)
    with pytest.raises(InclusionProofError, match="leads to root"):
        verify_inclusion(leaves[7], 6, 13, proof, root)


def test_consistency_proof_error_says_whether_hashes_are_missing_or_extra():
    leaves = _leaf_hashes(b"count", 13)
    proof = consistency_proof(6, 13, _range_hash_over(leaves))
    old, new = root_of(leaves[:6]), root_of(leaves)
    with pytest.raises(ConsistencyProofError, match="too few"):
        verify_consistency(6, 13, old, new, proof[:-1])
    with pytest.raises(ConsistencyProofError, match="more hashes"):
        verify_consistency(6, 13, old, new, [*proof, proof[0]])
    with pytest.raises(ConsistencyProofError, match="new root"):
        verify_consistency(6, 13, old, root_of(leaves[:12]), proof)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (3, 3), (-1, 4), (4, 4)])
def test_inclusion_proof_generation_rejects_an_index_outside_the_tree(index, size):
    leaves = _leaf_hashes(b"out", max(size, 1))
    with pytest.raises(InclusionProofError):
        inclusion_proof(index, size, _range_hash_over(leaves))


# --- consistency proofs over random trees --------------------------------------------------


@st.composite
def consistency_cases(draw):
    salt = draw(st.binary(max_size=16))
    second = draw(st.integers(1, MAX_SIZE))
    first = draw(st.integers(0, second))
    leaves = _leaf_hashes(salt, second)
    proof = consistency_proof(first, second, _range_hash_over(leaves))
    return leaves, first, second, proof, root_of(leaves[:first]), root_of(leaves)


@settings(max_examples=PROOF_EXAMPLES, deadline=None)
@given(consistency_cases())
def test_generated_consistency_proof_verifies(case):
    _, first, second, proof, first_root, second_root = case
    verify_consistency(first, second, first_root, second_root, proof)


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(consistency_cases(), st.data())
def test_consistency_proof_with_flipped_hash_is_rejected(case, data):
    _, first, second, proof, first_root, second_root = case
    if not proof:  # empty tree or equal sizes: nothing to flip
        assert first in (0, second)
        return
    position = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    tampered = list(proof)
    tampered[position] = _flip_bit(tampered[position], bit)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(first, second, first_root, second_root, tampered)


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(consistency_cases(), st.data())
def test_consistency_proof_with_an_extra_hash_is_rejected(case, data):
    _, first, second, proof, first_root, second_root = case
    extra = data.draw(st.binary(min_size=32, max_size=32))
    position = data.draw(st.integers(0, len(proof)))
    with pytest.raises(ConsistencyProofError):
        verify_consistency(
            first, second, first_root, second_root, [*proof[:position], extra, *proof[position:]]
        )


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(consistency_cases(), st.data())
def test_consistency_proof_with_a_dropped_hash_is_rejected(case, data):
    _, first, second, proof, first_root, second_root = case
    if not proof:
        assert first in (0, second)
        return
    position = data.draw(st.integers(0, len(proof) - 1))
    with pytest.raises(ConsistencyProofError):
        verify_consistency(
            first, second, first_root, second_root, [*proof[:position], *proof[position + 1 :]]
        )


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(consistency_cases(), st.binary(min_size=32, max_size=32))
def test_consistency_proof_against_a_wrong_root_is_rejected(case, wrong_root):
    _, first, second, proof, first_root, second_root = case
    # The empty tree is a prefix of every tree, so from size 0 neither root is checked.
    assume(first > 0)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(first, second, first_root, wrong_root, proof)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(first, second, wrong_root, second_root, proof)


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(consistency_cases(), st.data())
def test_consistency_proof_for_a_different_old_size_is_rejected(case, data):
    _, first, second, proof, first_root, second_root = case
    assume(second > 1 or first == 0)
    other = data.draw(st.integers(1, second).filter(lambda m: m != first))
    with pytest.raises(ConsistencyProofError):
        verify_consistency(other, second, first_root, second_root, proof)


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(st.binary(max_size=16), st.data())
def test_consistency_proof_does_not_verify_against_another_new_tree_size(salt, data):
    second = data.draw(st.integers(2, MAX_SIZE))
    first = data.draw(st.integers(1, second - 1))
    other = data.draw(st.integers(first, MAX_SIZE).filter(lambda n: n != second))
    leaves = _leaf_hashes(salt, max(second, other))
    proof = consistency_proof(first, second, _range_hash_over(leaves))
    with pytest.raises(ConsistencyProofError):
        verify_consistency(first, other, root_of(leaves[:first]), root_of(leaves[:other]), proof)


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(st.binary(max_size=16), st.data())
def test_forked_tree_with_a_changed_old_leaf_fails_consistency(salt, data):
    second = data.draw(st.integers(1, MAX_SIZE))
    first = data.draw(st.integers(1, second))
    changed = data.draw(st.integers(0, first - 1))
    honest = _leaf_hashes(salt, second)
    forked = list(honest)
    forked[changed] = hash_leaf(b"forked" + salt)
    first_root = root_of(honest[:first])
    forked_root = root_of(forked)
    # Neither the forked log's own proof nor the honest log's proof links the two roots.
    for proof in (
        consistency_proof(first, second, _range_hash_over(forked)),
        consistency_proof(first, second, _range_hash_over(honest)),
    ):
        with pytest.raises(ConsistencyProofError):
            verify_consistency(first, second, first_root, forked_root, proof)


def test_equal_sizes_need_an_empty_proof_and_equal_roots():
    leaves = _leaf_hashes(b"eq", 6)
    root = root_of(leaves)
    verify_consistency(6, 6, root, root, [])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(6, 6, root, root, [root])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(6, 6, root, root_of(leaves[:5]), [])


def test_consistency_from_the_empty_tree_needs_an_empty_proof():
    leaves = _leaf_hashes(b"empty", 4)
    verify_consistency(0, 4, EMPTY_ROOT, root_of(leaves), [])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(0, 4, EMPTY_ROOT, root_of(leaves), [leaves[0]])


@pytest.mark.parametrize(("first", "second"), [(5, 4), (-1, 3)])
def test_consistency_between_sizes_out_of_order_is_rejected(first, second):
    leaves = _leaf_hashes(b"order", 5)
    with pytest.raises(ConsistencyProofError):
        consistency_proof(first, second, _range_hash_over(leaves))
    with pytest.raises(ConsistencyProofError):
        verify_consistency(first, second, root_of(leaves[:4]), root_of(leaves[:3]), [leaves[0]])


def test_empty_consistency_proof_between_different_sizes_is_rejected():
    leaves = _leaf_hashes(b"none", 7)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(3, 7, root_of(leaves[:3]), root_of(leaves), [])


# --- CompactRange -------------------------------------------------------------------------


def test_compact_range_root_equals_root_of_at_every_size_up_to_max():
    leaves = _leaf_hashes(b"every size", MAX_SIZE)
    tree = CompactRange()
    for size in range(1, MAX_SIZE + 1):
        tree.append(leaves[size - 1])
        assert tree.size == size
        assert tree.root() == root_of(leaves[:size])


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(st.lists(st.binary(max_size=8), max_size=64))
def test_compact_range_root_equals_root_of_for_random_leaves(entries):
    leaves = [hash_leaf(entry) for entry in entries]
    tree = CompactRange()
    assert tree.root() == root_of([])
    for size, leaf in enumerate(leaves, start=1):
        tree.append(leaf)
        assert tree.root() == root_of(leaves[:size])


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(st.binary(max_size=16), st.integers(0, MAX_SIZE))
def test_compact_range_subtree_hashes_are_the_roots_of_its_subtree_bounds(salt, size):
    leaves = _leaf_hashes(salt, size)
    tree = CompactRange()
    for leaf in leaves:
        tree.append(leaf)
    bounds = CompactRange.subtree_bounds(size)
    assert len(bounds) == size.bit_count()
    assert [end - begin for begin, end in bounds] == sorted(
        (end - begin for begin, end in bounds), reverse=True
    )
    assert (bounds[0][0] if bounds else 0) == 0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert (bounds[-1][1] if bounds else 0) == size
    assert tree.subtree_hashes == [root_of(leaves[begin:end]) for begin, end in bounds]


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(st.binary(max_size=16), st.integers(0, 100), st.integers(1, 100))
def test_compact_range_restored_from_subtree_hashes_continues_identically(salt, split, more):
    leaves = _leaf_hashes(salt, split + more)
    original = CompactRange()
    for leaf in leaves[:split]:
        original.append(leaf)
    restored = CompactRange(split, original.subtree_hashes)
    for leaf in leaves[split:]:
        restored.append(leaf)
    assert restored.size == split + more
    assert restored.root() == root_of(leaves)


@pytest.mark.parametrize(("size", "count"), [(0, 1), (3, 1), (4, 2), (5, 3)])
def test_compact_range_with_wrong_number_of_subtrees_is_rejected(size, count):
    with pytest.raises(ValueError, match="subtrees"):
        CompactRange(size, [b"\x00" * 32] * count)


def test_compact_range_copy_is_independent_of_the_original():
    leaves = _leaf_hashes(b"copy", 20)
    original = CompactRange(record_from_level=1)
    for leaf in leaves[:11]:
        original.append(leaf)
    snapshot_root, snapshot_hashes = original.root(), original.subtree_hashes

    clone = original.copy()
    assert clone.size == 11
    assert clone.root() == snapshot_root
    assert clone.record_from_level == 1
    assert clone.completed == []

    for leaf in leaves[11:]:
        clone.append(leaf)
    assert clone.root() == root_of(leaves)
    assert original.size == 11
    assert original.root() == snapshot_root
    assert original.subtree_hashes == snapshot_hashes

    original.append(hash_leaf(b"different"))
    assert clone.size == 20
    assert clone.root() == root_of(leaves)


def test_compact_range_subtree_hashes_is_a_copy():
    tree = CompactRange()
    for leaf in _leaf_hashes(b"list", 3):
        tree.append(leaf)
    root = tree.root()
    tree.subtree_hashes.append(b"\x00" * 32)
    tree.subtree_hashes.clear()
    assert tree.root() == root


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(st.binary(max_size=16), st.integers(0, MAX_SIZE), st.integers(1, 5))
def test_compact_range_records_exactly_the_completed_perfect_subtrees(salt, size, from_level):
    leaves = _leaf_hashes(salt, size)
    tree = CompactRange(record_from_level=from_level)
    for leaf in leaves:
        tree.append(leaf)
    expected = [
        (level, index, root_of(leaves[index << level : (index + 1) << level]))
        for level in range(from_level, size.bit_length())
        for index in range(size >> level)
    ]
    assert len(tree.completed) == len(expected)
    assert sorted(tree.completed) == sorted(expected)


def test_compact_range_records_subtrees_when_they_complete():
    leaves = _leaf_hashes(b"order", 8)
    tree = CompactRange(record_from_level=1)
    seen = []
    for size, leaf in enumerate(leaves, start=1):
        tree.append(leaf)
        new = tree.completed[len(seen) :]
        seen = list(tree.completed)
        # The subtrees completed by this append all end at the new leaf.
        assert all((index + 1) << level == size for level, index, _ in new)
        assert len(new) == (size & -size).bit_length() - 1


def test_compact_range_records_nothing_without_record_from_level():
    tree = CompactRange()
    for leaf in _leaf_hashes(b"none", 16):
        tree.append(leaf)
    assert tree.completed == []


# --- subtree_levels and prefix_subtrees ---------------------------------------------------


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(st.binary(max_size=16), st.integers(0, 7), st.data())
def test_prefix_subtrees_of_a_block_give_the_root_of_every_prefix(salt, top_level, data):
    length = data.draw(st.integers(0, 1 << top_level))
    leaves = _leaf_hashes(salt, length)
    levels = subtree_levels(leaves, top_level)
    assert len(levels) == top_level + 1
    for prefix in range(length + 1):
        subtrees = prefix_subtrees(levels, prefix)
        assert len(subtrees) == prefix.bit_count()
        assert root_from_subtrees(subtrees) == root_of(leaves[:prefix])


@settings(max_examples=TAMPER_EXAMPLES, deadline=None)
@given(st.binary(max_size=16), st.integers(0, 6), st.data())
def test_subtree_levels_hold_the_root_of_each_aligned_perfect_subtree(salt, top_level, data):
    length = data.draw(st.integers(0, 1 << top_level))
    leaves = _leaf_hashes(salt, length)
    levels = subtree_levels(leaves, top_level)
    for level, nodes in enumerate(levels):
        assert nodes == [
            root_of(leaves[i << level : (i + 1) << level]) for i in range(length >> level)
        ]


def test_root_from_subtrees_folds_from_the_right():
    a, b, c = (hashlib.sha256(bytes([i])).digest() for i in range(3))
    assert root_from_subtrees([a]) == a
    assert root_from_subtrees([a, b, c]) == hash_children(a, hash_children(b, c))
