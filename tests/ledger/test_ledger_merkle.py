"""RFC 6962 / 9162 Merkle trees: the transparency-dev vectors (all 196 probes) and generated proofs."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genattr.errors import GenattrError
from genattr.ledger import ProofError, merkle
from genattr.ledger.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parent / "data" / "testvectors"
PROBES = sorted((VECTORS / "merkle").rglob("*.json"))


def _b64(s: str) -> bytes:
    return base64.b64decode(s)


def test_there_are_196_probes() -> None:
    assert len(PROBES) == 196


@pytest.mark.parametrize("path", PROBES, ids=[str(p.relative_to(VECTORS / "merkle")) for p in PROBES])
def test_golden_probe(path: Path) -> None:
    v = json.loads(path.read_text())
    proof = [_b64(p) for p in (v["proof"] or [])]
    if "leafIdx" in v:
        call = lambda: verify_inclusion(_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], proof, _b64(v["root"]))  # noqa: E731
    else:
        call = lambda: verify_consistency(v["size1"], v["size2"], proof, _b64(v["root1"]), _b64(v["root2"]))  # noqa: E731
    if v["wantErr"]:
        with pytest.raises(ProofError):
            call()
    else:
        call()


def test_proof_error_is_a_genattr_error() -> None:
    assert issubclass(ProofError, GenattrError)


# -- rfc6962_tree.json: hashing, node hashes by level, roots for sizes 0..8 ---------------------------------------


@pytest.fixture(scope="module")
def tree_vectors() -> dict:
    return json.loads((VECTORS / "rfc6962_tree.json").read_text())


def test_hash_primitives() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_roots_by_size(tree_vectors: dict) -> None:
    leaves = [bytes.fromhex(x) for x in tree_vectors["leaf_inputs"]]
    hashes = [leaf_hash(d) for d in leaves]
    tree = MemoryTree(hashes)
    for size, want in enumerate(tree_vectors["root_hashes_by_size"]):
        assert root_from_leaf_hashes(hashes[:size]).hex() == want
        assert tree.root(size).hex() == want


def test_node_hashes_by_level(tree_vectors: dict) -> None:
    hashes = [leaf_hash(bytes.fromhex(x)) for x in tree_vectors["leaf_inputs"]]
    tree = MemoryTree(hashes)
    for level, nodes in enumerate(tree_vectors["node_hashes_by_level"]):
        assert [h.hex() for h in tree.levels[level]] == nodes


# -- generated proofs against a direct transcription of the RFC's recursive definitions -----------------------


def _mth(d: list[bytes]) -> bytes:
    if not d:
        return EMPTY_ROOT
    if len(d) == 1:
        return d[0]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return node_hash(_mth(d[:k]), _mth(d[k:]))


def _path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) <= 1:
        return []
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m < k:
        return [*_path(m, d[:k]), _mth(d[k:])]
    return [*_path(m - k, d[k:]), _mth(d[:k])]


def _subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [_mth(d)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*_subproof(m, d[:k], b), _mth(d[k:])]
    return [*_subproof(m - k, d[k:], False), _mth(d[:k])]


def test_generated_proofs_match_rfc_definitions_and_verify() -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(40)]
    tree = MemoryTree(hashes)
    for n in range(1, 41):
        root = tree.root(n)
        assert root == _mth(hashes[:n])
        for m in range(n):
            proof = tree.inclusion_proof(m, n)
            assert proof == _path(m, hashes[:n])
            verify_inclusion(hashes[m], m, n, proof, root)
            with pytest.raises(ProofError):
                verify_inclusion(hashes[(m + 1) % 40], m, n, proof, root)
        for m in range(1, n + 1):
            proof = tree.consistency_proof(m, n)
            assert proof == _subproof(m, hashes[:n], True)
            verify_consistency(m, n, proof, tree.root(m), root)
            if m < n:
                with pytest.raises(ProofError):
                    verify_consistency(m, n, proof, tree.root(m), tree.root(n - 1) if n > m + 1 else EMPTY_ROOT)


def test_new_nodes_matches_memory_tree() -> None:
    hashes = [leaf_hash(bytes([i])) for i in range(70)]
    ref = MemoryTree(hashes)
    stored: dict[tuple[int, int], bytes] = {}
    size = 0
    for batch in (1, 2, 5, 1, 13, 16, 32):
        fr = {c: stored[c] for c in merkle.frontier(size)}
        for level, idx, h in merkle.new_nodes(size, fr, hashes[size : size + batch]):
            stored[(level, idx)] = h
        size += batch
    assert size == 70
    for level, nodes in enumerate(ref.levels):
        for idx, h in enumerate(nodes):
            assert stored[(level, idx)] == h
    assert len(stored) == sum(len(x) for x in ref.levels)


def test_proofs_read_logarithmically_many_nodes() -> None:
    tree = MemoryTree([leaf_hash(i.to_bytes(4, "big")) for i in range(1000)])
    calls: list[int] = []

    def reader(coords):  # one batched read per proof, O(log n) coordinates
        calls.append(len(coords))
        return tree.read_nodes(coords)

    for m in (0, 1, 499, 998, 999):
        calls.clear()
        merkle.inclusion_proof(m, 1000, reader)
        assert len(calls) == 1 and calls[0] <= 2 * 10 + 2
    calls.clear()
    merkle.consistency_proof(333, 1000, reader)
    assert len(calls) == 1 and calls[0] <= 2 * 10 + 2


@pytest.mark.parametrize(
    "args",
    [
        ("not bytes", 0, 1, [], b"\0" * 32),
        (b"\0" * 31, 0, 1, [], b"\0" * 32),
        (b"\0" * 32, -1, 1, [], b"\0" * 32),
        (b"\0" * 32, True, 2, [b"\0" * 32], b"\0" * 32),
        (b"\0" * 32, 0, 2, b"\0" * 32, b"\0" * 32),
        (b"\0" * 32, 0, 2, [b"\0" * 32] * 65, b"\0" * 32),
        (b"\0" * 32, 0, 2, [None], b"\0" * 32),
        (b"\0" * 32, 0, 1, [], None),
    ],
)
def test_verify_inclusion_is_total_on_junk(args: tuple) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(*args)


def test_verify_consistency_rejects_zero_and_shrinking() -> None:
    with pytest.raises(ProofError, match="size1 = 0"):
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ProofError, match="shrink"):
        verify_consistency(5, 4, [b"\0" * 32], b"\0" * 32, b"\0" * 32)
    with pytest.raises(ProofError):
        verify_consistency("1", 2, [], b"\0" * 32, b"\0" * 32)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.data())
def test_random_proofs_roundtrip(n: int, data: st.DataObject) -> None:
    tree = MemoryTree([leaf_hash(i.to_bytes(4, "big")) for i in range(n)])
    m = data.draw(st.integers(0, n - 1))
    verify_inclusion(tree.levels[0][m], m, n, tree.inclusion_proof(m, n), tree.root(n))
    s1 = data.draw(st.integers(1, n))
    verify_consistency(s1, n, tree.consistency_proof(s1, n), tree.root(s1), tree.root(n))
    # any single bit flip in any proof hash is caught
    proof = tree.inclusion_proof(m, n)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = bytearray(proof[i])
        bad[bit // 8] ^= 1 << (bit % 8)
        proof[i] = bytes(bad)
        with pytest.raises(ProofError):
            verify_inclusion(tree.levels[0][m], m, n, proof, tree.root(n))
