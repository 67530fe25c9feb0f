"""RFC 6962 / RFC 9162 Merkle hash trees: hashing, proof generation and proof verification.

Everything here is a pure function. Proof *generation* never touches a database directly: it takes a
`read_nodes` callable that returns stored complete-subtree hashes for a list of ``(level, index)``
coordinates, so that a store can answer every proof with one batched query of O(log n) rows.

Coordinates: the complete subtree at ``(level, index)`` covers leaves ``[index * 2**level, (index+1) * 2**level)``.
Every range that RFC 6962 hashes while building a proof starts at a multiple of the next power of two above
its length, so it decomposes into at most log2(n) such subtrees, largest first (see `range_subtrees`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

from genattr.ledger.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_PROOF_LENGTH",
    "MemoryTree",
    "RootAccumulator",
    "consistency_proof",
    "consistency_ranges",
    "frontier",
    "hash_range",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "new_nodes",
    "node_hash",
    "range_subtrees",
    "root_from_leaf_hashes",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
#: RFC 6962 §2.1: the hash of an empty list is the hash of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()
#: A tree of at most 2**63 leaves has proofs of at most 63 hashes (the tlog-witness limit); 64 is a safe cap
#: that keeps verification O(1)-bounded on hostile input.
MAX_PROOF_LENGTH = 64

Coord = tuple[int, int]
NodeReader = Callable[[Sequence[Coord]], Sequence[bytes]]


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d) (RFC 6962 §2.1); the 0x00 prefix is the second-preimage defence."""
    return hashlib.sha256(b"\x00" + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right) (RFC 6962 §2.1)."""
    return hashlib.sha256(b"\x01" + bytes(left) + bytes(right)).digest()


# --------------------------------------------------------------------------------------------------------------
# Verification (RFC 9162 §2.1.3.2 and §2.1.4.2), written to be total on hostile input: every failure is a
# ProofError, never an IndexError or TypeError.
# --------------------------------------------------------------------------------------------------------------


def _check_int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProofError(f"{what} must be an integer, got {type(value).__name__}")
    if value < 0:
        raise ProofError(f"{what} must be non-negative, got {value}")
    return value


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ProofError(f"{what} must be bytes, got {type(value).__name__}")
    value = bytes(value)
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")
    return value


def _check_proof(proof: object) -> list[bytes]:
    if proof is None:
        return []
    if isinstance(proof, bytes | str) or not isinstance(proof, Sequence):
        raise ProofError("proof must be a list of hashes")
    if len(proof) > MAX_PROOF_LENGTH:
        raise ProofError(f"proof has {len(proof)} hashes, more than any tree needs ({MAX_PROOF_LENGTH})")
    return [_check_hash(p, f"proof[{i}]") for i, p in enumerate(proof)]


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> None:
    """Check that `leaf_hash` is leaf number `index` (0-based) of the tree of `size` leaves with head `root`.

    RFC 9162 §2.1.3.2. Raises `ProofError` on any failure, including malformed arguments.
    """
    index = _check_int(index, "index")
    size = _check_int(size, "tree size")
    if index >= size:
        raise ProofError(f"index {index} is not below tree size {size}")
    r = _check_hash(leaf_hash, "leaf hash")
    path = _check_proof(proof)
    root = _check_hash(root, "root hash")
    fn, sn = index, size - 1
    for p in path:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Skip the levels where this node is the last, unpaired node of its level.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    if not hmac.compare_digest(r, root):
        raise ProofError(f"inclusion proof for index {index} does not lead to the root of tree size {size}")


def verify_consistency(size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of `size1` leaves with head `root1` is a prefix of the tree (`size2`, `root2`).

    RFC 9162 §2.1.4.2. ``size1 == 0`` is rejected: every tree extends the empty tree, so such a "proof"
    proves nothing and accepting it would let callers believe they checked something.
    """
    size1 = _check_int(size1, "size1")
    size2 = _check_int(size2, "size2")
    if size1 == 0:
        raise ProofError("consistency from the empty tree (size1 = 0) proves nothing and is rejected")
    if size2 < size1:
        raise ProofError(f"size2 ({size2}) is smaller than size1 ({size1}): a log cannot shrink")
    path = _check_proof(proof)
    if size1 == size2:
        # RFC 9162 §2.1.4.2 step 1: the empty proof; the trees must simply be identical.
        if path:
            raise ProofError("sizes are equal, so the consistency proof must be empty")
        if not isinstance(root1, bytes | bytearray) or not isinstance(root2, bytes | bytearray):
            raise ProofError("roots must be bytes")
        if not hmac.compare_digest(bytes(root1), bytes(root2)):
            raise ProofError(f"two different roots for the same tree size {size1}: the log forked")
        return
    root1 = _check_hash(root1, "root1")
    root2 = _check_hash(root2, "root2")
    if not path:
        raise ProofError("consistency proof is empty but the sizes differ")
    if size1 & (size1 - 1) == 0:
        # size1 is a power of two: the old root is itself a node of the new tree (§2.1.4.2 step 2).
        path = [root1, *path]
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than needed")
    if not hmac.compare_digest(fr, root1):
        raise ProofError(f"consistency proof does not reproduce the root of tree size {size1}")
    if not hmac.compare_digest(sr, root2):
        raise ProofError(f"consistency proof does not reproduce the root of tree size {size2}")


# --------------------------------------------------------------------------------------------------------------
# Proof generation. The RFC defines proofs recursively over ranges D[lo:hi]; we first list the ranges whose
# hashes a proof needs, then the complete subtrees those ranges consist of, then read them all at once.
# --------------------------------------------------------------------------------------------------------------


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2): RFC 6962 §2.1's k."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make up PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), leaf sibling first."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not below tree size {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()  # the recursion emits the deepest sibling first
    return out


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make up PROOF(size1, D[0:size2]) (RFC 9162 §2.1.4.1)."""
    if not 0 < size1 <= size2:
        raise ProofError(f"no consistency proof from size {size1} to size {size2}")
    out: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, size2, size1, True
    while True:
        n = hi - lo
        if m == n:
            # SUBPROOF(m, D[m], b): nothing if D[m] is the original old tree, else its own hash.
            if not complete:
                out.append((lo, hi))
            break
        k = _split(n)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
            m -= k
            complete = False
    out.reverse()
    return out


def range_subtrees(lo: int, hi: int) -> list[Coord]:
    """Decompose the leaf range [lo, hi) into complete subtrees, largest first.

    Only ranges that RFC 6962 actually hashes are accepted: lo must be a multiple of the next power of two
    at or above ``hi - lo``. Then MTH(D[lo:hi]) is the right fold of `node_hash` over the pieces.
    """
    if not 0 <= lo < hi:
        raise ValueError(f"empty or negative range [{lo}, {hi})")
    out: list[Coord] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo & ((1 << level) - 1):
            raise ValueError(f"range [{lo}, {hi}) is not aligned to a subtree boundary")
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def _fold(hashes: Sequence[bytes]) -> bytes:
    h = hashes[-1]
    for x in reversed(hashes[:-1]):
        h = node_hash(x, h)
    return h


def hash_range(lo: int, hi: int, read_nodes: NodeReader) -> bytes:
    """MTH(D[lo:hi]) from stored complete subtrees."""
    coords = range_subtrees(lo, hi)
    return _fold(_read(read_nodes, coords))


def _read(read_nodes: NodeReader, coords: Sequence[Coord]) -> list[bytes]:
    hashes = list(read_nodes(coords))
    if len(hashes) != len(coords):
        raise ProofError(f"node reader returned {len(hashes)} hashes for {len(coords)} coordinates")
    return hashes


def _hashes_for_ranges(ranges: Sequence[tuple[int, int]], read_nodes: NodeReader) -> list[bytes]:
    pieces = [range_subtrees(lo, hi) for lo, hi in ranges]
    unique = sorted({c for p in pieces for c in p})
    got = dict(zip(unique, _read(read_nodes, unique), strict=True))
    return [_fold([got[c] for c in p]) for p in pieces]


def tree_root(size: int, read_nodes: NodeReader) -> bytes:
    """MTH(D[0:size]) from at most log2(size)+1 stored subtrees (the tree's right frontier)."""
    if size == 0:
        return EMPTY_ROOT
    return hash_range(0, size, read_nodes)


def inclusion_proof(index: int, size: int, read_nodes: NodeReader) -> list[bytes]:
    """PATH(index, D[0:size]) with one batched read of O(log size) stored nodes."""
    return _hashes_for_ranges(inclusion_ranges(index, size), read_nodes)


def consistency_proof(size1: int, size2: int, read_nodes: NodeReader) -> list[bytes]:
    """PROOF(size1, D[0:size2]) with one batched read of O(log size2) stored nodes."""
    return _hashes_for_ranges(consistency_ranges(size1, size2), read_nodes)


def frontier(size: int) -> list[Coord]:
    """The complete subtrees covering [0, size): all an appender needs to know about the existing tree."""
    return range_subtrees(0, size) if size else []


def new_nodes(size: int, frontier_hashes: dict[Coord, bytes], leaf_hashes: Sequence[bytes]) -> list[
    tuple[int, int, bytes]
]:
    """The complete-subtree hashes created by appending `leaf_hashes` to a tree of `size` leaves.

    `frontier_hashes` must hold the hashes at `frontier(size)`. Returns ``(level, index, hash)`` triples
    (level 0 = the leaf hashes themselves) in creation order. About two nodes per leaf on average.
    """
    cache = dict(frontier_hashes)
    out: list[tuple[int, int, bytes]] = []
    for j, h in enumerate(leaf_hashes):
        i = size + j
        level = 0
        cache[(0, i)] = h
        out.append((0, i, h))
        while i & 1:
            h = node_hash(cache.pop((level, i - 1)), h)
            level += 1
            i >>= 1
            cache[(level, i)] = h
            out.append((level, i, h))
    return out


class RootAccumulator:
    """Streaming MTH: push leaf hashes in order, read the root at any point. O(log n) memory."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # right frontier, strictly decreasing levels
        self.size = 0

    def push(self, h: bytes) -> None:
        level = 0
        while self._stack and self._stack[-1][0] == level:
            h = node_hash(self._stack.pop()[1], h)
            level += 1
        self._stack.append((level, h))
        self.size += 1

    def root(self) -> bytes:
        return _fold([h for _, h in self._stack]) if self._stack else EMPTY_ROOT


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over a list of leaf hashes (a reference implementation for tests, fsck and audits)."""
    acc = RootAccumulator()
    for h in hashes:
        acc.push(h)
    return acc.root()


class MemoryTree:
    """An in-memory tree storing every complete subtree: the reference model for tests and small logs."""

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for h in leaf_hashes:
            self.append(h)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, h: bytes) -> int:
        index = self.size
        level = 0
        self.levels[0].append(h)
        i = index
        while i & 1:
            h = node_hash(self.levels[level][i - 1], h)
            level += 1
            i >>= 1
            if len(self.levels) == level:
                self.levels.append([])
            self.levels[level].append(h)
        return index

    def read_nodes(self, coords: Sequence[Coord]) -> list[bytes]:
        return [self.levels[level][i] for level, i in coords]

    def root(self, size: int | None = None) -> bytes:
        return tree_root(self.size if size is None else size, self.read_nodes)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self.size if size is None else size, self.read_nodes)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return consistency_proof(size1, self.size if size2 is None else size2, self.read_nodes)
