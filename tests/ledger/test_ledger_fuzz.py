"""Parsers and verifiers fuzzed with hypothesis: arbitrary or mutated input gives a clean error, never a crash.

"Clean" means a `LedgerError` (FormatError, SignatureError, ProofError, ...) from the library, and an HTTP
status from the spec's list from the witness.
"""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genattr.ledger import (
    Checkpoint,
    Entry,
    LedgerError,
    Policy,
    ProofError,
    TlogProof,
    Witness,
    open_checkpoint,
    parse_note,
    signer_from_skey,
    verifier_from_vkey,
    verify_consistency,
    verify_inclusion,
)
from genattr.ledger.checkpoint import sign_checkpoint
from genattr.ledger.merkle import MemoryTree, leaf_hash
from genattr.ledger.witness import format_add_checkpoint, parse_add_checkpoint

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text that looks like our formats: newlines, em dashes, '+', digits, base64 and key-name characters.
ALPHABET = st.sampled_from([*"\n\n\n— +=/0123456789abcdefABCDEFoldindexextra.c2sp@v", "\x00", "\t", "é", "\u2028"])
FORMATISH = st.lists(ALPHABET, max_size=300).map("".join)
ANY_TEXT = st.one_of(st.text(max_size=300), FORMATISH)


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """A valid input with a few random edits: flips, deletions, insertions, truncation, duplication."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "dup"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "delete":
            del data[i]
        elif op == "insert":
            data.insert(i, draw(st.sampled_from(b"\n \xe2\x80\x94+=A0")))
        elif op == "truncate":
            del data[i:]
        else:
            data[i:i] = data[i : i + draw(st.integers(1, 40))]
    return bytes(data)


def _clean(fn, *args) -> None:
    with contextlib.suppress(LedgerError):
        fn(*args)


@FUZZ
@given(ANY_TEXT)
def test_note_checkpoint_proof_policy_key_parsers(text: str) -> None:
    for fn in (parse_note, Checkpoint.parse, TlogProof.parse, Policy.parse, verifier_from_vkey, signer_from_skey,
               parse_add_checkpoint):
        _clean(fn, text)
    _clean(parse_note, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.binary(max_size=400))
def test_binary_parsers(data: bytes) -> None:
    for fn in (parse_note, TlogProof.parse, Policy.parse, parse_add_checkpoint, Entry.parse):
        _clean(fn, data)


@pytest.fixture(scope="module")
def material(log_key, make_entry):
    tree = MemoryTree([leaf_hash(make_entry(i).encode()) for i in range(12)])
    old = sign_checkpoint(Checkpoint(log_key.name, 5, tree.root(5)), log_key)
    new = sign_checkpoint(Checkpoint(log_key.name, 12, tree.root(12)), log_key)
    request = format_add_checkpoint(5, tree.consistency_proof(5, 12), new)
    bundle = TlogProof(3, tuple(tree.inclusion_proof(3, 12)), new, make_entry(3).encode()).encode()
    return {"tree": tree, "old": old, "new": new, "request": request, "bundle": bundle.encode()}


@FUZZ
@given(st.data())
def test_mutated_valid_inputs(material, log_key, make_entry, data) -> None:
    note = data.draw(mutated(material["new"].encode()))
    _clean(lambda b: open_checkpoint(b, [log_key.verifier]), note)
    _clean(TlogProof.parse, data.draw(mutated(material["bundle"])))
    _clean(Entry.parse, data.draw(mutated(make_entry(1).encode())))
    _clean(verifier_from_vkey, data.draw(mutated(log_key.vkey.encode())).decode("utf-8", "replace"))


@pytest.fixture(scope="module")
def fuzz_witness(tmp_path_factory, log_key, witness_keys) -> Witness:
    return Witness(tmp_path_factory.mktemp("w") / "w.db", witness_keys[0], [log_key.vkey])


@FUZZ
@given(st.data())
def test_witness_answers_only_spec_status_codes(fuzz_witness, material, log_key, data) -> None:
    w = fuzz_witness
    if w.state(log_key.name) != (5, material["tree"].root(5)):  # reset to "has cosigned size 5"
        with w._connect() as c:
            c.execute("DELETE FROM witness_state")
        assert w.add_checkpoint(format_add_checkpoint(0, [], material["old"])).status == 200
    body = data.draw(st.one_of(mutated(material["request"]), st.binary(max_size=200), FORMATISH.map(str.encode)))
    r = w.add_checkpoint(body)
    assert r.status in (200, 400, 403, 404, 409, 422)
    if r.status == 200:  # a mutation that still passes must have kept the tree consistent
        size, root = w.state(log_key.name)
        tree = material["tree"]
        assert size <= 12 and root == tree.root(size)


@FUZZ
@given(
    st.integers(-3, 70),
    st.integers(-3, 70),
    st.lists(st.binary(min_size=0, max_size=40), max_size=8),
    st.binary(max_size=40),
    st.binary(max_size=40),
)
def test_verifiers_raise_only_proof_errors(a: int, b: int, proof: list[bytes], r1: bytes, r2: bytes) -> None:
    for fn, args in ((verify_inclusion, (r1, a, b, proof, r2)), (verify_consistency, (a, b, proof, r1, r2))):
        with contextlib.suppress(ProofError):
            fn(*args)


@FUZZ
@given(st.integers(1, 64), st.data())
def test_valid_proofs_with_random_edits_never_verify(n: int, data) -> None:
    tree = MemoryTree([leaf_hash(i.to_bytes(2, "big")) for i in range(64)])
    m = data.draw(st.integers(0, n - 1))
    proof = tree.inclusion_proof(m, n)
    edited = list(proof)
    op = data.draw(st.sampled_from(["drop", "add", "swap", "flip"]))
    if op == "drop" and edited:
        del edited[data.draw(st.integers(0, len(edited) - 1))]
    elif op == "add":
        edited.insert(data.draw(st.integers(0, len(edited))), base64.b64decode("A" * 43 + "="))
    elif op == "swap" and len(edited) > 1 and edited[0] != edited[1]:
        edited[0], edited[1] = edited[1], edited[0]
    elif op == "flip" and edited:
        i = data.draw(st.integers(0, len(edited) - 1))
        edited[i] = bytes([edited[i][0] ^ 1]) + edited[i][1:]
    if edited == proof:
        return
    with pytest.raises(ProofError):
        verify_inclusion(tree.levels[0][m], m, n, edited, tree.root(n))


def _verifies(fn, *args) -> bool:
    try:
        fn(*args)
    except LedgerError:
        return False
    return True


@FUZZ
@given(st.data())
def test_corrupted_inclusion_bundles_are_rejected(material, data) -> None:
    """A mutated bundle either fails to parse or, if anything it carries changed, fails verification."""
    orig = TlogProof.parse(material["bundle"])
    root = material["tree"].root(12)
    try:
        p = TlogProof.parse(data.draw(mutated(material["bundle"])))
    except LedgerError:
        return
    if p.extra is None:
        return
    changed = (p.index, p.proof, p.extra) != (orig.index, orig.proof, orig.extra)
    assert _verifies(verify_inclusion, leaf_hash(p.extra), p.index, 12, list(p.proof), root) is not changed


@FUZZ
@given(st.data())
def test_structurally_corrupted_proofs_are_rejected(material, make_entry, data) -> None:
    """Flip a bit in one proof hash, drop, duplicate or swap hashes, or shift the index / sizes: never valid."""
    tree = material["tree"]
    size = 12
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(1, size - 1))
    inc, con = list(tree.inclusion_proof(index, size)), list(tree.consistency_proof(old, size))
    leaf = leaf_hash(make_entry(index).encode())
    assert _verifies(verify_inclusion, leaf, index, size, inc, tree.root(size))
    assert _verifies(verify_consistency, old, size, con, tree.root(old), tree.root(size))
    kind = data.draw(st.sampled_from(["flip", "drop", "dup", "swap", "shift"]))
    for proof in (inc, con):
        bad = list(proof)
        if kind == "flip" and bad:
            j, bit = data.draw(st.integers(0, len(bad) - 1)), data.draw(st.integers(0, 255))
            h = bytearray(bad[j])
            h[bit // 8] ^= 1 << (bit % 8)
            bad[j] = bytes(h)
        elif kind == "drop" and bad:
            del bad[data.draw(st.integers(0, len(bad) - 1))]
        elif kind == "dup" and bad:
            bad.insert(0, bad[data.draw(st.integers(0, len(bad) - 1))])
        elif kind == "swap" and len(bad) > 1 and bad[0] != bad[1]:
            bad[0], bad[1] = bad[1], bad[0]
        elif kind == "shift":
            pass
        else:
            continue
        if proof is con:
            sizes = (old + 1, size) if kind == "shift" and old + 1 < size else (old, size)
            if sizes == (old, size) and bad == con:
                continue
            assert not _verifies(verify_consistency, sizes[0], sizes[1], bad, tree.root(old), tree.root(size))
        else:
            idx = (index + 1) % size if kind == "shift" else index
            assert not _verifies(verify_inclusion, leaf, idx, size, bad, tree.root(size))
