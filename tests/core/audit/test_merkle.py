"""Tests for the audit Merkle tree: tree heads, the incremental tree, its stored frontier and blocks joined in order,
inclusion and consistency proofs, each against the recursive definitions of RFC 9162 2.1 written out below and the
Certificate Transparency test vectors, and every way a proof, its sizes or its tree heads can be altered."""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.core.audit import merkle
from intake.core.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    root_of_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------------------------------------------------------
# RFC 9162 2.1, written as the RFC writes it: recursions over the list of leaf inputs D[n].


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def split_point(n: int) -> int:
    """k, the largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@functools.cache
def mth(d: tuple[bytes, ...]) -> bytes:
    """MTH(D[n]) (2.1.1); cached, because the tests ask for the head of every prefix of the same leaves."""
    n = len(d)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return sha256(b"\x00" + d[0])
    k = split_point(n)
    return sha256(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    """PATH(m, D[n]) (2.1.3.1)."""
    n = len(d)
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return path(m, d[:k]) + [mth(d[k:])]
    return path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m: int, d: tuple[bytes, ...], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) (2.1.4.1)."""
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = split_point(n)
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


def proof(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    """PROOF(m, D[n]) (2.1.4.1)."""
    return subproof(m, d, True)


# ---------------------------------------------------------------------------------------------------------------
# Leaves: 32-byte event hashes, as the audit log has them.

LOG = tuple(sha256(b"event %d" % i) for i in range(1000))
LOG_LEAF_HASHES = [leaf_hash(data) for data in LOG]
SMALL_SIZES = list(range(1, 65))
LARGE_SIZES = [100, 127, 128, 129, 255, 256, 257, 300, 511, 1000]
SIZES = SMALL_SIZES + LARGE_SIZES
STRANGER = sha256(b"not in the log")

# The Certificate Transparency reference tree (RFC 6962 test data): its inputs and the head of every prefix.
CT_INPUTS = tuple(
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
)
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index counted from 0, tree size, audit path)
CT_INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (old size, new size, consistency proof)
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def head(size: int) -> bytes:
    """The reference head of the first `size` leaves of LOG."""
    return mth(LOG[:size])


def sampled(size: int, count: int = 12) -> list[int]:
    """The edges of [0, size), the powers of two around them, and a few fixed random values inside."""
    rng = random.Random(size)
    picks = {0, 1, 2, size // 2, size - 2, size - 1} | {p for p in (1 << b for b in range(11)) if p < size}
    picks |= {rng.randrange(size) for _ in range(count)}
    return sorted(p for p in picks if 0 <= p < size)


def flipped(value: bytes, bit: int) -> bytes:
    data = bytearray(value)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


def bits_to_flip(size: int) -> range | list[int]:
    """Every bit of a hash for the small trees; the first, last and a few middle bits for the others."""
    return range(256) if size <= 8 else [0, 7, 8, 100, 129, 255]


def altered(elements: list[bytes], bits: range | list[int]) -> Iterator[tuple[str, list[bytes]]]:
    """Every alteration of a proof that must make it fail, each with a name for the assertion message."""
    for i, element in enumerate(elements):
        for bit in bits:
            yield f"bit {bit} of element {i} flipped", elements[:i] + [flipped(element, bit)] + elements[i + 1 :]
        yield f"element {i} cut short", elements[:i] + [element[:-1]] + elements[i + 1 :]
        yield f"element {i} lengthened", elements[:i] + [element + b"\x00"] + elements[i + 1 :]
        yield f"element {i} replaced", elements[:i] + [STRANGER] + elements[i + 1 :]
        yield f"element {i} dropped", elements[:i] + elements[i + 1 :]
        yield f"element {i} repeated", elements[: i + 1] + elements[i:]
    for i in range(len(elements) + 1):
        yield f"extra element at {i}", elements[:i] + [STRANGER] + elements[i:]
    for i in range(len(elements)):
        for j in range(i + 1, len(elements)):
            swapped = list(elements)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            yield f"elements {i} and {j} swapped", swapped
    if len(elements) > 1:
        yield "order reversed", elements[::-1]


def direction_of_path(index: int, size: int) -> list[bool]:
    """For each element of PATH(index, D[size]), bottom first, whether it is the right sibling."""
    if size == 1:
        return []
    k = split_point(size)
    if index < k:
        return direction_of_path(index, k) + [True]
    return direction_of_path(index - k, size - k) + [False]


# ---------------------------------------------------------------------------------------------------------------
# Hashing and tree heads


def test_hashes_are_domain_separated_sha256() -> None:
    assert EMPTY_ROOT == sha256(b"") == bytes.fromhex(CT_ROOTS[0])
    assert leaf_hash(b"") == sha256(b"\x00") == bytes.fromhex(CT_ROOTS[1])
    assert leaf_hash(b"abc") == sha256(b"\x00abc")
    left, right = sha256(b"left"), sha256(b"right")
    assert node_hash(left, right) == sha256(b"\x01" + left + right)
    assert node_hash(left, right) != node_hash(right, left)
    # A leaf made of two hashes is not the node over them.
    assert leaf_hash(left + right) != node_hash(left, right)


@pytest.mark.parametrize("size", range(9))
def test_certificate_transparency_tree_heads(size: int) -> None:
    expected = bytes.fromhex(CT_ROOTS[size])
    assert mth(CT_INPUTS[:size]) == expected, "the reference definition disagrees with the published vectors"
    assert root(CT_INPUTS[:size]) == expected
    assert root_of_leaf_hashes([leaf_hash(d) for d in CT_INPUTS[:size]]) == expected
    tree = CompactRange()
    for data in CT_INPUTS[:size]:
        tree.append(data)
    assert tree.root() == expected


@pytest.mark.parametrize(("index", "size", "expected"), CT_INCLUSION)
def test_certificate_transparency_inclusion_proofs(index: int, size: int, expected: list[str]) -> None:
    hashes = [leaf_hash(d) for d in CT_INPUTS]
    assert [p.hex() for p in path(index, CT_INPUTS[:size])] == expected
    generated = inclusion_proof(hashes, index, size)
    assert [p.hex() for p in generated] == expected
    assert verify_inclusion(hashes[index], index, size, generated, bytes.fromhex(CT_ROOTS[size]))


@pytest.mark.parametrize(("old_size", "new_size", "expected"), CT_CONSISTENCY)
def test_certificate_transparency_consistency_proofs(old_size: int, new_size: int, expected: list[str]) -> None:
    hashes = [leaf_hash(d) for d in CT_INPUTS]
    assert [p.hex() for p in proof(old_size, CT_INPUTS[:new_size])] == expected
    generated = consistency_proof(hashes, old_size, new_size)
    assert [p.hex() for p in generated] == expected
    old_root, new_root = bytes.fromhex(CT_ROOTS[old_size]), bytes.fromhex(CT_ROOTS[new_size])
    assert verify_consistency(old_size, new_size, old_root, new_root, generated)


@pytest.mark.parametrize("size", [0, *SIZES])
def test_root_is_the_merkle_tree_hash(size: int) -> None:
    assert root(LOG[:size]) == head(size)
    assert root_of_leaf_hashes(LOG_LEAF_HASHES[:size]) == head(size)


def test_root_takes_leaves_of_any_length() -> None:
    inputs = [b"", b"x", b"\x00" * 31, b"\xff" * 33, bytes(range(256)) * 4]
    assert root(inputs) == mth(tuple(inputs))


# ---------------------------------------------------------------------------------------------------------------
# The incremental tree


def test_compact_range_matches_every_prefix() -> None:
    tree = CompactRange()
    assert tree.size == 0 and tree.root() == EMPTY_ROOT and tree.nodes == [] and tree.to_bytes() == b""
    for size, leaf in enumerate(LOG_LEAF_HASHES, start=1):
        tree.append_leaf_hash(leaf)
        assert tree.size == size
        assert tree.root() == head(size), f"head of {size} leaves"
        # The frontier is the perfect subtrees of the binary decomposition of the size, largest first.
        offset = 0
        for node_size, node in tree.nodes:
            assert size & node_size and offset % node_size == 0
            assert node == mth(LOG[offset : offset + node_size])
            offset += node_size
        assert offset == size and len(tree.nodes) == size.bit_count()
        assert tree.hashes == [node for _, node in tree.nodes]


def test_the_ways_of_appending_agree() -> None:
    one_by_one, from_inputs, in_bulk, in_batches = CompactRange(), CompactRange(), CompactRange(), CompactRange()
    for data, leaf in zip(LOG[:300], LOG_LEAF_HASHES[:300], strict=True):
        one_by_one.append_leaf_hash(leaf)
        from_inputs.append(data)
    in_bulk.append_leaf_hashes(iter(LOG_LEAF_HASHES[:300]))
    for start in range(0, 300, 37):
        in_batches.append_leaf_hashes(LOG_LEAF_HASHES[start : min(start + 37, 300)])
    in_batches.append_leaf_hashes([])
    assert one_by_one == from_inputs == in_bulk == in_batches
    assert one_by_one.size == 300 and one_by_one.root() == head(300)


def test_the_frontier_is_stored_and_read_back() -> None:
    tree = CompactRange()
    for size, leaf in enumerate(LOG_LEAF_HASHES[:300], start=1):
        tree.append_leaf_hash(leaf)
        stored = tree.to_bytes()
        assert len(stored) == 32 * size.bit_count()
        resumed = CompactRange.from_bytes(size, stored)
        assert resumed == tree and resumed.root() == head(size)
    # Resuming goes on where the stored frontier left off.
    resumed = CompactRange.from_bytes(tree.size, tree.to_bytes())
    resumed.append_leaf_hashes(LOG_LEAF_HASHES[300:])
    assert resumed.root() == head(1000)
    assert CompactRange.from_bytes(0, b"") == CompactRange()


@pytest.mark.parametrize(
    ("size", "data"),
    [
        (1, b""),
        (1, b"\x00" * 64),
        (3, b"\x00" * 32),
        (0, b"\x00" * 32),
        (5, b"\x00" * 63),
    ],
)
def test_a_frontier_of_the_wrong_length_is_refused(size: int, data: bytes) -> None:
    with pytest.raises(ValueError, match="frontier of"):
        CompactRange.from_bytes(size, data)


def test_a_range_is_built_only_from_a_valid_frontier() -> None:
    assert CompactRange(3, [head(2), leaf_hash(LOG[2])]).root() == head(3)
    with pytest.raises(ValueError, match="cannot have -1 leaves"):
        CompactRange(-1, [])
    with pytest.raises(ValueError, match="2 perfect subtrees, not 1"):
        CompactRange(3, [head(2)])
    with pytest.raises(ValueError, match="32 bytes long"):
        CompactRange(2, [head(2)[:31]])


def test_a_leaf_hash_of_the_wrong_length_is_refused() -> None:
    tree = CompactRange()
    tree.append_leaf_hashes(LOG_LEAF_HASHES[:3])
    with pytest.raises(ValueError, match="32 bytes long, not 31"):
        tree.append_leaf_hash(LOG_LEAF_HASHES[3][:31])
    with pytest.raises(ValueError, match="32 bytes long, not 33"):
        tree.append_leaf_hashes([LOG_LEAF_HASHES[3], LOG_LEAF_HASHES[4] + b"\x00", LOG_LEAF_HASHES[5]])
    # The leaves before the refused one are in, and the range is still whole.
    assert tree.size == 4 and tree.root() == head(4)
    tree.append_leaf_hashes(LOG_LEAF_HASHES[4:9])
    assert tree.root() == head(9)


def test_a_range_extended_by_itself_doubles() -> None:
    tree = CompactRange()
    tree.append_leaf_hashes(LOG_LEAF_HASHES[:4])
    tree.extend(tree)
    twin = CompactRange()
    twin.append_leaf_hashes(LOG_LEAF_HASHES[:4] * 2)
    assert tree == twin and tree.size == 8


def test_copies_are_independent_and_compare_by_content() -> None:
    tree = CompactRange()
    tree.append_leaf_hashes(LOG_LEAF_HASHES[:5])
    twin = tree.copy()
    assert twin == tree and twin is not tree
    twin.append_leaf_hash(LOG_LEAF_HASHES[5])
    assert tree.size == 5 and tree.root() == head(5)
    assert twin != tree and twin.root() == head(6)
    assert tree != "not a range"
    assert repr(tree) == f"CompactRange(size=5, root={head(5).hex()})"
    hashes = tree.hashes
    hashes.clear()
    assert tree.hashes and tree.root() == head(5)


def block_ranges(start: int, end: int, block: int) -> list[CompactRange]:
    """Ranges over LOG_LEAF_HASHES[start:end] cut at the multiples of `block`, each built on its own."""
    parts = []
    for low in range(start, end, block):
        part = CompactRange()
        part.append_leaf_hashes(LOG_LEAF_HASHES[low : min(low + block, end)])
        parts.append(part)
    return parts


@pytest.mark.parametrize("block", [1, 2, 4, 8, 16, 64, 128, 256, 1024])
def test_blocks_hashed_separately_join_into_the_tree(block: int) -> None:
    for size in [1, 2, 3, 7, 8, 9, 63, 64, 65, 127, 128, 129, 255, 256, 257, 300, 511, 1000]:
        parts = block_ranges(0, size, block)
        joined = CompactRange.combine(*parts)
        assert joined.size == size and joined.root() == head(size), f"{size} leaves in blocks of {block}"
        # As a verifier does it: the frontier of [0, a) from storage, then the block part [a, n).
        aligned = size - size % block if size % block else max(size - block, 0)
        prefix = CompactRange.from_bytes(aligned, CompactRange.combine(*block_ranges(0, aligned, block)).to_bytes())
        rest = CompactRange.from_bytes(
            size - aligned, CompactRange.combine(*block_ranges(aligned, size, block)).to_bytes()
        )
        assert CompactRange.combine(prefix, rest).root() == head(size)
        prefix.extend(rest)
        assert prefix == joined


def test_extend_joins_exactly_the_aligned_ranges() -> None:
    prefixes = [CompactRange()]
    for leaf in LOG_LEAF_HASHES[:64]:
        prefixes.append(prefixes[-1].copy())
        prefixes[-1].append_leaf_hash(leaf)
    for start in range(0, 65):
        for count in range(0, 65 - start):
            suffix = CompactRange()
            suffix.append_leaf_hashes(LOG_LEAF_HASHES[start : start + count])
            joined = prefixes[start].copy()
            if count == 0 or start % (1 << (count.bit_length() - 1)) == 0:
                joined.extend(suffix)
                assert joined == prefixes[start + count], f"[0, {start}) then [{start}, {start + count})"
            else:
                with pytest.raises(ValueError, match=f"cannot follow {start} leaves"):
                    joined.extend(suffix)
                assert joined == prefixes[start], "a refused range leaves the tree as it was"
    assert CompactRange.combine() == CompactRange()


# ---------------------------------------------------------------------------------------------------------------
# Inclusion proofs


def check_inclusion(index: int, size: int, *, tamper: bool) -> None:
    expected = path(index, LOG[:size])
    generated = inclusion_proof(LOG_LEAF_HASHES, index, size)
    assert generated == expected, f"PATH({index}, D[{size}])"
    leaf, tree_head = LOG_LEAF_HASHES[index], head(size)
    assert verify_inclusion(leaf, index, size, generated, tree_head)
    if not tamper:
        return

    for what, bad in altered(generated, bits_to_flip(size)):
        assert not verify_inclusion(leaf, index, size, bad, tree_head), f"{what}: leaf {index} of {size}"
    for bit in bits_to_flip(size):
        assert not verify_inclusion(flipped(leaf, bit), index, size, generated, tree_head)
        assert not verify_inclusion(leaf, index, size, generated, flipped(tree_head, bit))
    for other in {0, index - 1, index + 1, size - 1} - {index}:
        if 0 <= other < size:
            assert not verify_inclusion(leaf, other, size, generated, tree_head), f"as leaf {other} of {size}"
            assert not verify_inclusion(LOG_LEAF_HASHES[other], index, size, generated, tree_head)
    for other_size in {index + 1, size - 1, size + 1, 2 * size} - {size}:
        if index < other_size <= len(LOG):
            # Claimed with the head of that size, as a checkpoint states a size and its head together.
            assert not verify_inclusion(leaf, index, other_size, generated, head(other_size)), f"in {other_size}"
            # With the true head, a different size fails whenever it changes the shape of the path.
            if direction_of_path(index, other_size) != direction_of_path(index, size):
                assert not verify_inclusion(leaf, index, other_size, generated, tree_head), f"in {other_size}"
    for other_head in {EMPTY_ROOT, head(size - 1), head(min(size + 1, len(LOG)))} - {tree_head}:
        assert not verify_inclusion(leaf, index, size, generated, other_head)


@pytest.mark.parametrize("size", SMALL_SIZES)
def test_inclusion_proofs_for_every_leaf(size: int) -> None:
    tampered = sampled(size, 4)
    for index in range(size):
        check_inclusion(index, size, tamper=size <= 16 or index in tampered)


@pytest.mark.parametrize("size", LARGE_SIZES)
def test_inclusion_proofs_for_sampled_leaves(size: int) -> None:
    for index in sampled(size):
        check_inclusion(index, size, tamper=True)


@pytest.mark.parametrize("size", SMALL_SIZES + LARGE_SIZES)
def test_many_proofs_of_one_tree_are_the_rfc_paths(size: int) -> None:
    leaves = LOG_LEAF_HASHES[:size]
    indexes = range(size) if size <= 64 else sampled(size)
    proofs = merkle.inclusion_proofs(LOG_LEAF_HASHES, indexes, size)
    assert sorted(proofs) == sorted(set(indexes))
    for index, proof in proofs.items():
        assert proof == path(index, LOG[:size]) == inclusion_proof(leaves, index, size)


def test_many_proofs_refuse_a_leaf_outside_the_tree() -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        merkle.inclusion_proofs(LOG_LEAF_HASHES, [0, 8], 8)


def test_inclusion_proof_of_a_prefix_ignores_later_leaves() -> None:
    assert inclusion_proof(LOG_LEAF_HASHES[:5], 2, 5) == inclusion_proof(LOG_LEAF_HASHES, 2, 5) == path(2, LOG[:5])


def test_the_head_not_the_proof_binds_the_size() -> None:
    # The audit path of leaf 0 in a tree of 3 is also a valid path in a tree of 4 (two siblings on the right), and
    # RFC 9162 2.1.3.2 accepts it there against the same head. A checkpoint signs the size together with the head,
    # so an inclusion proof must be checked against a signed (size, head) pair, never a size taken from elsewhere.
    generated = inclusion_proof(LOG_LEAF_HASHES, 0, 3)
    assert verify_inclusion(LOG_LEAF_HASHES[0], 0, 4, generated, head(3))
    assert not verify_inclusion(LOG_LEAF_HASHES[0], 0, 4, generated, head(4))
    # Likewise the proof that 2 leaves extend 1 shows that a tree of 4 whose left half has head(1) and whose right
    # half has head leaf 1 has head(2): true as a statement about subtrees, and accepted for the sizes 2 and 4.
    generated = consistency_proof(LOG_LEAF_HASHES, 1, 2)
    assert verify_consistency(2, 4, head(1), head(2), generated)
    assert not verify_consistency(2, 4, head(2), head(4), generated)
    # A proof too short for the sizes claimed is refused even where the heads come out right.
    assert not verify_consistency(1, 3, head(1), head(2), generated)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (-1, 5), (5, 5), (6, 5), (0, 1001), (1000, 1000)])
def test_inclusion_proof_of_a_leaf_outside_the_tree_is_refused(index: int, size: int) -> None:
    with pytest.raises(ValueError, match="not in a tree|leaf hashes were given"):
        inclusion_proof(LOG_LEAF_HASHES, index, size)


def test_inclusion_proof_of_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot have -1 leaves"):
        inclusion_proof(LOG_LEAF_HASHES, 0, -1)


def test_malformed_inclusion_claims_are_false_not_errors() -> None:
    leaf, generated, tree_head = LOG_LEAF_HASHES[3], inclusion_proof(LOG_LEAF_HASHES, 3, 10), head(10)
    assert verify_inclusion(leaf, 3, 10, generated, tree_head)
    assert not verify_inclusion(leaf, 10, 10, generated, tree_head)
    assert not verify_inclusion(leaf, 11, 10, generated, tree_head)
    assert not verify_inclusion(leaf, -1, 10, generated, tree_head)
    assert not verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)
    assert not verify_inclusion(leaf, 0, -1, [], tree_head)
    assert not verify_inclusion(leaf[:31], 3, 10, generated, tree_head)
    assert not verify_inclusion(leaf, 3, 10, generated, tree_head + b"\x00")
    assert not verify_inclusion(leaf, 3, 10, [*generated[:-1], generated[-1][:16]], tree_head)
    assert not verify_inclusion(leaf, 3, 10, [], tree_head)
    assert not verify_inclusion(leaf, 3, 10, generated * 2, tree_head)
    assert not verify_inclusion(leaf, 3, 10, generated, b"")
    # A tree of one leaf: the head is the leaf hash and the path is empty.
    assert verify_inclusion(leaf, 0, 1, [], leaf)
    assert not verify_inclusion(leaf, 1, 1, [], leaf)
    assert not verify_inclusion(leaf, 0, 0, [], leaf)
    # Elements past the top of the tree are refused even when the head is made to match them.
    assert not verify_inclusion(leaf, 0, 1, [leaf], node_hash(leaf, leaf))
    # Values of the wrong length are refused even when the hashing would come out right.
    short = b"\x07" * 31
    assert not verify_inclusion(short, 0, 1, [], short)
    assert not verify_inclusion(leaf, 0, 2, [short], node_hash(leaf, short))
    assert not verify_inclusion(short, 1, 2, [leaf], node_hash(leaf, short))


# ---------------------------------------------------------------------------------------------------------------
# Consistency proofs


def check_consistency(old_size: int, new_size: int, *, tamper: bool) -> None:
    expected = proof(old_size, LOG[:new_size])
    generated = consistency_proof(LOG_LEAF_HASHES, old_size, new_size)
    assert generated == expected, f"PROOF({old_size}, D[{new_size}])"
    old_head, new_head = head(old_size), head(new_size)
    assert verify_consistency(old_size, new_size, old_head, new_head, generated)
    if not tamper:
        return

    for what, bad in altered(generated, bits_to_flip(new_size)):
        assert not verify_consistency(old_size, new_size, old_head, new_head, bad), f"{what}: {old_size}->{new_size}"
    for bit in bits_to_flip(new_size):
        assert not verify_consistency(old_size, new_size, flipped(old_head, bit), new_head, generated)
        assert not verify_consistency(old_size, new_size, old_head, flipped(new_head, bit), generated)
    if old_size != new_size:
        assert not verify_consistency(old_size, new_size, new_head, old_head, generated)
        assert not verify_consistency(new_size, old_size, new_head, old_head, generated)
    claims = {(other_old, new_size) for other_old in (old_size - 1, old_size + 1, old_size * 2, old_size // 2)}
    claims |= {(old_size, other_new) for other_new in (new_size - 1, new_size + 1, new_size + 2, new_size * 2)}
    for other_old, other_new in claims - {(old_size, new_size)}:
        if not 0 < other_old <= other_new <= len(LOG):
            continue
        what = f"{old_size}->{new_size} as {other_old}->{other_new}"
        # Claimed with the heads of those sizes, as checkpoints state a size and its head together.
        assert not verify_consistency(other_old, other_new, head(other_old), head(other_new), generated), what
        # With the true heads, other sizes fail whenever they call for a proof of another length.
        if len(proof(other_old, LOG[:other_new])) != len(generated):
            assert not verify_consistency(other_old, other_new, old_head, new_head, generated), what


@pytest.mark.parametrize("new_size", SMALL_SIZES)
def test_consistency_proofs_for_every_earlier_size(new_size: int) -> None:
    tampered = sampled(new_size, 4)
    for old_size in range(1, new_size + 1):
        check_consistency(old_size, new_size, tamper=new_size <= 16 or old_size in tampered)


@pytest.mark.parametrize("new_size", LARGE_SIZES)
def test_consistency_proofs_for_sampled_earlier_sizes(new_size: int) -> None:
    for old_size in [*sampled(new_size)[1:], new_size]:
        check_consistency(old_size, new_size, tamper=True)


def test_consistency_between_equal_sizes() -> None:
    for size in [0, 1, 2, 5, 8, 1000]:
        assert consistency_proof(LOG_LEAF_HASHES, size, size) == []
        assert verify_consistency(size, size, head(size), head(size), [])
        assert not verify_consistency(size, size, head(size), head(size), [head(size)])
        assert not verify_consistency(size, size, head(size), STRANGER, [])
    assert not verify_consistency(0, 0, STRANGER, STRANGER, [])


def test_consistency_with_the_empty_tree() -> None:
    # RFC 9162 defines proofs for 0 < old size only; every tree extends the empty one, whose head is fixed.
    for new_size in [1, 2, 7, 1000]:
        assert consistency_proof(LOG_LEAF_HASHES, 0, new_size) == []
        assert verify_consistency(0, new_size, EMPTY_ROOT, head(new_size), [])
        assert not verify_consistency(0, new_size, EMPTY_ROOT, head(new_size), [head(new_size)])
        assert not verify_consistency(0, new_size, head(1), head(new_size), [])


@pytest.mark.parametrize(("old_size", "new_size"), [(6, 5), (1, 0), (-1, 3), (3, 1001), (0, -1)])
def test_impossible_consistency_proofs_are_refused(old_size: int, new_size: int) -> None:
    with pytest.raises(ValueError, match="cannot grow|leaf hashes were given|cannot have"):
        consistency_proof(LOG_LEAF_HASHES, old_size, new_size)


def test_malformed_consistency_claims_are_false_not_errors() -> None:
    generated = consistency_proof(LOG_LEAF_HASHES, 3, 10)
    old_head, new_head = head(3), head(10)
    assert verify_consistency(3, 10, old_head, new_head, generated)
    assert not verify_consistency(10, 3, old_head, new_head, generated)
    assert not verify_consistency(-3, 10, old_head, new_head, generated)
    assert not verify_consistency(3, 10, old_head, new_head, [])
    assert not verify_consistency(3, 10, old_head[:31], new_head, generated)
    assert not verify_consistency(3, 10, old_head, new_head + b"\x00", generated)
    assert not verify_consistency(3, 10, old_head, new_head, [*generated[:-1], generated[-1][:16]])
    assert not verify_consistency(3, 10, old_head, new_head, generated * 2)
    # Elements past the top of the tree are refused even when the heads are made to match them.
    extra = STRANGER
    assert not verify_consistency(3, 10, node_hash(extra, old_head), node_hash(extra, new_head), [*generated, extra])
    # Values of the wrong length are refused even when the hashing would come out right.
    short = b"\x07" * 31
    assert not verify_consistency(5, 5, short, short, [])
    assert not verify_consistency(0, 0, b"", b"", [])
    assert not verify_consistency(1, 2, head(1), node_hash(head(1), short), [short])
    assert not verify_consistency(1, 2, short, node_hash(short, LOG_LEAF_HASHES[1]), [LOG_LEAF_HASHES[1]])
    # Sizes that are not sizes are refused, whatever the heads.
    assert not verify_consistency(-1, -1, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(2, 1, head(2), head(1), [])
    assert not verify_consistency(2, 1, head(2), head(1), [LOG_LEAF_HASHES[1]])
    # An old tree whose size is a power of two is its own proof: sending its head anyway is refused.
    power = consistency_proof(LOG_LEAF_HASHES, 4, 10)
    assert verify_consistency(4, 10, head(4), new_head, power)
    assert not verify_consistency(4, 10, head(4), new_head, [head(4), *power])


# ---------------------------------------------------------------------------------------------------------------
# Cost and properties


def counting_sha256(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    calls = 0
    real = hashlib.sha256

    def counted(data: bytes = b"") -> hashlib._Hash:
        nonlocal calls
        calls += 1
        return real(data)

    monkeypatch.setattr(merkle, "_sha256", counted)
    return lambda: calls


def test_a_proof_hashes_each_node_at_most_once(monkeypatch: pytest.MonkeyPatch) -> None:
    leaves = LOG_LEAF_HASHES * 5  # 5000 leaves
    count = counting_sha256(monkeypatch)
    for index in [0, 1, 2047, 2048, 4095, 4999]:
        before = count()
        inclusion_proof(leaves, index, 5000)
        assert count() - before < 5000
    for old_size in [1, 2, 1000, 2048, 4095, 4999]:
        before = count()
        consistency_proof(leaves, old_size, 5000)
        assert count() - before < 5000


@settings(max_examples=60, deadline=None, database=None)
@given(
    inputs=st.lists(st.binary(max_size=40), min_size=1, max_size=70),
    data=st.data(),
)
def test_proofs_and_blocks_agree_with_the_definitions(inputs: list[bytes], data: st.DataObject) -> None:
    d = tuple(inputs)
    n = len(d)
    hashes = [leaf_hash(x) for x in d]
    tree_head = mth(d)
    assert root(d) == tree_head

    index = data.draw(st.integers(0, n - 1), label="index")
    audit_path = inclusion_proof(hashes, index, n)
    assert audit_path == path(index, d)
    assert verify_inclusion(hashes[index], index, n, audit_path, tree_head)
    if audit_path:
        element = data.draw(st.integers(0, len(audit_path) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        bad = audit_path[:element] + [flipped(audit_path[element], bit)] + audit_path[element + 1 :]
        assert not verify_inclusion(hashes[index], index, n, bad, tree_head)

    old_size = data.draw(st.integers(1, n), label="old size")
    old_head = mth(d[:old_size])
    consistency = consistency_proof(hashes, old_size, n)
    assert consistency == proof(old_size, d)
    assert verify_consistency(old_size, n, old_head, tree_head, consistency)
    if consistency:
        element = data.draw(st.integers(0, len(consistency) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        bad = consistency[:element] + [flipped(consistency[element], bit)] + consistency[element + 1 :]
        assert not verify_consistency(old_size, n, old_head, tree_head, bad)

    block = 1 << data.draw(st.integers(0, 7), label="block exponent")
    parts = []
    for start in range(0, n, block):
        part = CompactRange()
        part.append_leaf_hashes(hashes[start : start + block])
        parts.append(CompactRange.from_bytes(part.size, part.to_bytes()))
    assert CompactRange.combine(*parts).root() == tree_head
