"""Merkle trees over the audit log, as RFC 9162 (Certificate Transparency 2.0) section 2.1 defines them, with SHA-256.

The leaves are event hashes, but any byte string is accepted as a leaf input. Hashing is domain-separated:

* a leaf input ``d`` is hashed as ``SHA-256(0x00 || d)`` (`leaf_hash`);
* two children are hashed as ``SHA-256(0x01 || left || right)`` (`node_hash`);
* the tree of ``n > 1`` leaves splits at the largest power of two ``k < n``: the left subtree is the perfect tree of
  the first ``k`` leaves, the right one the tree of the rest; the empty tree hashes to ``SHA-256()`` (`EMPTY_ROOT`).

`root` computes the tree head of a list of leaf inputs. `CompactRange` builds the same head incrementally, keeping
only the roots of the perfect subtrees that make up the tree so far (at most one per bit of the size), so a verifier
can stream millions of events, store its frontier (`CompactRange.to_bytes`) and resume, or hash aligned blocks of the
log separately and join them (`CompactRange.extend`, `CompactRange.combine`). `inclusion_proof`/`verify_inclusion`
and `consistency_proof`/`verify_consistency` are the audit paths and consistency proofs of RFC 9162 2.1.3 and 2.1.4;
the generators take the list of leaf hashes and hash every subtree a proof needs once, so a proof costs O(n).

Sizes are counts of leaves. Hashes are 32-byte ``bytes``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_of_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf input: SHA-256(0x00 || data)."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right)."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (size > 1): where RFC 9162 splits a tree of `size` leaves."""
    return 1 << ((size - 1).bit_length() - 1)


def _node_sizes(size: int) -> list[int]:
    """The sizes of the perfect subtrees that make up a tree of `size` leaves, largest first (its set bits)."""
    return [1 << bit for bit in range(size.bit_length() - 1, -1, -1) if size >> bit & 1]


def _perfect_roots(level: list[bytes]) -> list[bytes]:
    """The roots of the perfect subtrees over a run of hashes of one height, largest first.

    The run is consumed. Each pass pairs neighbours into the level above; a level of odd length leaves its last hash
    unpaired, and that hash is the root of one of the perfect subtrees (the smallest not yet found).
    """
    sha256 = _sha256
    prefix = _NODE_PREFIX
    found: list[bytes] = []
    while level:
        if len(level) & 1:
            found.append(level.pop())
        pairs = iter(level)
        level = [sha256(prefix + left + right).digest() for left, right in zip(pairs, pairs, strict=True)]
    found.reverse()
    return found


def _fold(hashes: Sequence[bytes]) -> bytes:
    """The tree head from the roots of its perfect subtrees, largest first: they are joined right to left."""
    if not hashes:
        return EMPTY_ROOT
    sha256 = _sha256
    prefix = _NODE_PREFIX
    head = hashes[-1]
    for index in range(len(hashes) - 2, -1, -1):
        head = sha256(prefix + hashes[index] + head).digest()
    return head


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash (RFC 9162 2.1.1) of a list of leaf inputs; `EMPTY_ROOT` for none."""
    sha256 = _sha256
    prefix = _LEAF_PREFIX
    return _fold(_perfect_roots([sha256(prefix + data).digest() for data in leaves]))


def root_of_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a tree given by its leaf hashes (already hashed with `leaf_hash`)."""
    return _fold(_perfect_roots(list(leaf_hashes)))


def _subtree_root(leaf_hashes: Sequence[bytes], start: int, end: int) -> bytes:
    """The Merkle Tree Hash of the leaf hashes in [start, end), as a tree of its own."""
    return _fold(_perfect_roots(list(leaf_hashes[start:end])))


class CompactRange:
    """A Merkle tree built by appending leaves in order, holding only the roots of its perfect subtrees.

    A tree of ``size`` leaves is the concatenation of perfect subtrees whose sizes are the set bits of ``size``,
    largest first (13 leaves: 8, 4 and 1). Appending a leaf pushes its hash and merges the two smallest subtrees for
    as long as they have the same size, which costs one node hash per leaf on average. The tree head folds the stack
    from the right (`root`).

    Blocks: a range built from leaves ``[a, n)`` of a log (counting from zero in its own right, so it knows nothing
    of ``a``) can be joined to the range of ``[0, a)`` with `extend` or `combine`, provided its perfect subtrees are
    also perfect subtrees of the whole tree: ``a`` must be a multiple of the largest of them (the highest power of
    two not above ``n - a``). Cutting a log into blocks of ``2**k`` leaves starting at 0 always satisfies this, so
    such blocks can be hashed separately (in other processes, or at other times) and joined in order::

        head = CompactRange.combine(*(CompactRange.from_bytes(size, frontier) for size, frontier in blocks)).root()

    Appending is on the verifier's hot path: `append_leaf_hashes` takes a whole batch in one call and should be
    preferred to one `append_leaf_hash` per leaf.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        """A range of `size` leaves given by the roots of its perfect subtrees, largest first (empty by default)."""
        hashes = list(hashes)
        if size < 0:
            raise ValueError(f"a tree cannot have {size} leaves")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a tree of {size} leaves is made of {size.bit_count()} perfect subtrees, not {len(hashes)}"
            )
        if any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError(f"subtree hashes are {HASH_SIZE} bytes long")
        self._size = size
        self._hashes = [bytes(h) for h in hashes]

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactRange:
        """The range of `size` leaves stored by `to_bytes`."""
        if len(data) != HASH_SIZE * size.bit_count():
            raise ValueError(
                f"a frontier of {size} leaves is {HASH_SIZE * size.bit_count()} bytes long, not {len(data)}"
            )
        return cls(size, [data[offset : offset + HASH_SIZE] for offset in range(0, len(data), HASH_SIZE)])

    @classmethod
    def combine(cls, *parts: CompactRange) -> CompactRange:
        """The range of consecutive parts joined in order (see the class docstring for the alignment they need)."""
        joined = cls()
        for part in parts:
            joined.extend(part)
        return joined

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    @property
    def nodes(self) -> list[tuple[int, bytes]]:
        """The perfect subtrees as (number of leaves, root hash), largest first."""
        return list(zip(_node_sizes(self._size), self._hashes, strict=True))

    @property
    def hashes(self) -> list[bytes]:
        """The roots of the perfect subtrees, largest first."""
        return list(self._hashes)

    def to_bytes(self) -> bytes:
        """The frontier as the concatenated subtree roots, largest first; `from_bytes` reads it back with the size."""
        return b"".join(self._hashes)

    def copy(self) -> CompactRange:
        """An independent range with the same leaves."""
        twin = CompactRange()
        twin._size = self._size
        twin._hashes = list(self._hashes)
        return twin

    def root(self) -> bytes:
        """The Merkle Tree Hash of the leaves appended so far; `EMPTY_ROOT` for none."""
        return _fold(self._hashes)

    def append_leaf_hash(self, leaf_hash: bytes) -> None:
        """Append one leaf given by its leaf hash (SHA-256(0x00 || data), see `leaf_hash`)."""
        if len(leaf_hash) != 32:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes long, not {len(leaf_hash)}")
        size = self._size
        self._size = size + 1
        hashes = self._hashes
        # Each trailing one bit of the old size is a subtree as large as the one being carried: merge them.
        while size & 1:
            leaf_hash = _sha256(b"\x01" + hashes.pop() + leaf_hash).digest()
            size >>= 1
        hashes.append(leaf_hash)

    def append(self, data: bytes) -> None:
        """Append one leaf given by its input, which is hashed with `leaf_hash`."""
        size = self._size
        self._size = size + 1
        hashes = self._hashes
        sha256 = _sha256
        carried = sha256(b"\x00" + data).digest()
        while size & 1:
            carried = sha256(b"\x01" + hashes.pop() + carried).digest()
            size >>= 1
        hashes.append(carried)

    def append_leaf_hashes(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaves given by their leaf hashes, in order; faster than one `append_leaf_hash` per leaf.

        A leaf hash of the wrong length raises ValueError; the leaves before it stay appended.
        """
        sha256 = _sha256
        hashes = self._hashes
        pop = hashes.pop
        push = hashes.append
        size = self._size
        try:
            for carried in leaf_hashes:
                if len(carried) != 32:
                    raise ValueError(f"a leaf hash is {HASH_SIZE} bytes long, not {len(carried)}")
                pending = size
                while pending & 1:
                    carried = sha256(b"\x01" + pop() + carried).digest()
                    pending >>= 1
                push(carried)
                size += 1
        finally:
            self._size = size

    def extend(self, other: CompactRange) -> None:
        """Append the leaves of `other`, a range over the leaves that follow this one's, counted from zero.

        Raises ValueError unless this range's size is a multiple of `other`'s largest perfect subtree, the condition
        under which `other`'s subtrees are subtrees of the joined tree.
        """
        if other._size == 0:
            return
        largest = 1 << (other._size.bit_length() - 1)
        if self._size % largest:
            raise ValueError(
                f"a range of {other._size} leaves cannot follow {self._size} leaves: "
                f"{self._size} is not a multiple of {largest}"
            )
        sha256 = _sha256
        hashes = self._hashes
        for node_size, carried in zip(_node_sizes(other._size), list(other._hashes), strict=True):
            # The node is a leaf of the level where subtrees have node_size leaves: append it there.
            pending = self._size // node_size
            while pending & 1:
                carried = sha256(b"\x01" + hashes.pop() + carried).digest()
                pending >>= 1
            hashes.append(carried)
            self._size += node_size

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


def _check_tree(leaf_hashes: Sequence[bytes], size: int) -> None:
    if size < 0:
        raise ValueError(f"a tree cannot have {size} leaves")
    if size > len(leaf_hashes):
        raise ValueError(f"a tree of {size} leaves was asked for, but only {len(leaf_hashes)} leaf hashes were given")


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """The audit path PATH(index, D[size]) of RFC 9162 2.1.3.1 over the first `size` leaf hashes, bottom first.

    Raises ValueError unless 0 <= index < size <= len(leaf_hashes).
    """
    _check_tree(leaf_hashes, size)
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    siblings: list[bytes] = []
    start, end = 0, size
    # Walk down from the root, keeping the hash of the subtree on the side the leaf is not on.
    while end - start > 1:
        middle = start + _split(end - start)
        if index < middle:
            siblings.append(_subtree_root(leaf_hashes, middle, end))
            end = middle
        else:
            siblings.append(_subtree_root(leaf_hashes, start, middle))
            start = middle
    siblings.reverse()
    return siblings


def inclusion_proofs(leaf_hashes: Sequence[bytes], indexes: Iterable[int], size: int) -> dict[int, list[bytes]]:
    """`inclusion_proof` for many leaves of one tree: the tree's levels are hashed once (about `size` hashes and
    twice the leaf hashes' memory), then each path costs a lookup per level.

    Levels pair nodes from the left and carry a last unpaired node up unchanged; that is the RFC 9162 tree, whose
    left subtrees are the largest perfect ones, so a path skips the levels where its node is carried.
    """
    _check_tree(leaf_hashes, size)
    wanted = sorted(set(indexes))
    for index in wanted:
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    levels: list[Sequence[bytes]] = [leaf_hashes[:size] if len(leaf_hashes) != size else leaf_hashes]
    sha256 = _sha256
    while len(levels[-1]) > 1:
        below = levels[-1]
        above = [sha256(b"\x01" + below[i] + below[i + 1]).digest() for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])
        levels.append(above)
    proofs: dict[int, list[bytes]] = {}
    for index in wanted:
        path: list[bytes] = []
        position = index
        for level in levels[:-1]:
            sibling = position ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            position >>= 1
        proofs[index] = path
    return proofs


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """The consistency proof PROOF(old_size, D[new_size]) of RFC 9162 2.1.4.1 over the first `new_size` leaf hashes.

    The proof is empty when the sizes are equal (SUBPROOF(m, D[m], true) in the RFC) and when `old_size` is 0: the
    RFC defines proofs for 0 < old_size only, and every tree is an extension of the empty one, so there is nothing to
    prove (`verify_consistency` accepts an empty proof from the empty tree). Raises ValueError unless
    0 <= old_size <= new_size <= len(leaf_hashes).
    """
    _check_tree(leaf_hashes, new_size)
    if not 0 <= old_size <= new_size:
        raise ValueError(f"a tree of {old_size} leaves cannot grow into one of {new_size}")
    if old_size in (0, new_size):
        return []
    siblings: list[bytes] = []
    start, end = 0, new_size
    whole = True  # whether the subtree walked into is still the old tree itself, whose head the verifier holds
    remaining = old_size  # the old tree's leaves inside [start, end)
    while remaining != end - start:
        middle = start + _split(end - start)
        if remaining <= middle - start:
            siblings.append(_subtree_root(leaf_hashes, middle, end))
            end = middle
        else:
            siblings.append(_subtree_root(leaf_hashes, start, middle))
            remaining -= middle - start
            start = middle
            whole = False
    siblings.reverse()
    if not whole:
        siblings.insert(0, _subtree_root(leaf_hashes, start, end))
    return siblings


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether `proof` shows the leaf with hash `leaf_hash` at `index` in the tree of `size` leaves with head `root`.

    This is the algorithm of RFC 9162 2.1.3.2. Malformed input (index outside the tree, a proof of the wrong length,
    a value that is not a 32-byte hash) makes it return False, never raise.
    """
    if not (_is_hash(leaf_hash) and _is_hash(root) and all(_is_hash(p) for p in proof)):
        return False
    if not 0 <= index < size:
        return False
    sha256 = _sha256
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """Whether `proof` shows that the tree of `new_size` leaves and head `new_root` extends the one of `old_size`.

    `old_root` is the head of the old tree. For 0 < old_size < new_size this is the algorithm of RFC 9162 2.1.4.2.
    Equal sizes need an empty proof and equal heads. The RFC leaves old_size 0 undefined; every tree extends the empty
    one, so an empty proof is accepted when `old_root` is `EMPTY_ROOT` (and equal to `new_root` if new_size is 0 too).
    Malformed input (sizes out of order, a proof of the wrong length, a value that is not a 32-byte hash) makes it
    return False, never raise.
    """
    if not (_is_hash(old_root) and _is_hash(new_root) and all(_is_hash(p) for p in proof)):
        return False
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root and (old_size > 0 or old_root == EMPTY_ROOT)
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old tree is a subtree of the new one, proved by itself
        path.insert(0, old_root)
    sha256 = _sha256
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = sha256(b"\x01" + c + fr).digest()
            sr = sha256(b"\x01" + c + sr).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
