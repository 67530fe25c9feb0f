"""tlog-proof bundles, offline verification, the generation hook and audits."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from PIL import Image

from genattr.ledger import (
    ABSENCE_CAVEAT,
    FormatError,
    LedgerError,
    LoggedGenerator,
    Policy,
    ProofError,
    QuorumError,
    Receipt,
    SignatureError,
    TlogProof,
    audit_bundle,
    audit_log,
    collect_cosignatures,
    generate_signer,
    pixel_hash,
    verify_bundle,
)
from genattr.ledger.bundle import HEADER


def _images(n: int, seed: int | None = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)


@pytest.fixture
def logged(new_log, log_key, owner_key, witnesses, policy_2of3):
    """A log with 6 logged generations and a 3-witness cosigned checkpoint."""
    _, clients, _ = witnesses
    log = new_log()
    gen = LoggedGenerator(lambda n, seed: _images(n, seed), log, owner=owner_key, model_id=b"\x07" * 32)
    out = gen(6)
    note = collect_cosignatures(log, log.sign_checkpoint(log_key), clients, policy_2of3)
    return log, out, note


def test_hook_logs_before_release_and_receipts_open(logged, owner_key) -> None:
    log, out, _ = logged
    assert len(out) == 6 and len(out.receipts) == 6
    for i, (img, rec) in enumerate(zip(out.images, out.receipts, strict=True)):
        assert rec.index == i and rec.sample == i
        e = log.entry(rec.index)
        assert e.output_hash == pixel_hash(img)
        e.verify(owner_key.verifier)
        assert rec.opens()
        assert Receipt.from_dict(rec.to_dict()) == rec
    # the seed the generator got is the one committed to
    assert len({r.seed for r in out.receipts}) == 1
    assert not Receipt(0, out.receipts[0].entry, out.receipts[0].seed + 1, out.receipts[0].salt).opens()


def test_hook_accepts_pil_lists_and_tensor_like_outputs(new_log, owner_key) -> None:
    log = new_log()

    class FakeTensor:
        def __init__(self, a):
            self.a = a
            self.shape = a.shape

        def __getitem__(self, i):
            return FakeTensor(self.a[i])

        def numpy(self):
            return self.a

    arr = _images(3, 5)
    calls = []

    def pil_gen(seed):
        calls.append(seed)
        return [Image.fromarray(a) for a in arr]

    out = LoggedGenerator(pil_gen, log, owner=owner_key, model_id=b"\x01" * 32)(seed=42)
    assert calls == [42] and [r.seed for r in out.receipts] == [42] * 3
    out2 = LoggedGenerator(lambda: FakeTensor(arr), log, owner=owner_key, model_id=b"\x01" * 32, seed_arg=None)(
        log_seed="prompt-7")
    assert [r.index for r in out2.receipts] == [3, 4, 5]
    assert [pixel_hash(x) for x in out2.images] == [pixel_hash(a) for a in arr]


def test_hook_is_fail_closed(new_log, owner_key) -> None:
    log = new_log()
    bad = LoggedGenerator(lambda seed: np.zeros((4, 4, 3), np.float32), log, owner=owner_key, model_id=b"\0" * 32)
    with pytest.raises(FormatError):
        bad()
    mallory = generate_signer("owner.example/mallory")  # not registered with the log
    gen = LoggedGenerator(lambda seed: _images(1), log, owner=mallory, model_id=b"\0" * 32)  # type: ignore[arg-type]
    with pytest.raises(SignatureError):
        gen()
    assert log.size == 0
    with pytest.raises(FormatError):
        LoggedGenerator(lambda: None, log, owner=owner_key, model_id=b"short")


def test_bundle_roundtrip_and_offline_verification(logged, policy_2of3, owner_key) -> None:
    log, out, note = logged
    result = audit_log(out.images[4], log, policy=policy_2of3)
    assert result.found and result.index == 4 and result.tree_size == 6
    assert sorted(result.witnesses) == ["w1", "w2", "w3"]
    text = result.bundle.encode()
    assert text.startswith(HEADER + "\nextra ") and "\nindex 4\n" in text
    assert text.endswith(note)
    parsed = TlogProof.parse(text)
    assert parsed == result.bundle and parsed.encode() == text
    v = verify_bundle(text, policy_2of3, image=out.images[4], owners=[owner_key.verifier])
    assert v.index == 4 and v.tree_size == 6 and len(v.witnesses) == 3
    with pytest.raises(ProofError, match="different output"):
        verify_bundle(text, policy_2of3, image=out.images[3])
    with pytest.raises(SignatureError):
        verify_bundle(text, policy_2of3, owners=[generate_signer("owner.example/bob").verifier])


def test_tampered_bundles_are_rejected(logged, policy_2of3, log_key, witness_keys) -> None:
    log, out, _ = logged
    text = audit_log(out.images[2], log, policy=policy_2of3).bundle.encode()
    p = TlogProof.parse(text)
    extra = bytearray(p.extra)
    extra[40] ^= 1
    cases = [
        TlogProof(3, p.proof, p.checkpoint, p.extra),  # wrong index
        TlogProof(2, p.proof, p.checkpoint, bytes(extra)),  # altered entry
        TlogProof(2, (bytes(32), *p.proof[1:]), p.checkpoint, p.extra),  # altered proof
        TlogProof(2, p.proof[:-1], p.checkpoint, p.extra),  # truncated proof
    ]
    for bad in cases:
        with pytest.raises(ProofError):
            verify_bundle(bad.encode(), policy_2of3)
    # Checkpoint cosigned by too few witnesses for a stricter policy.
    strict = Policy.k_of_n([log_key.vkey], [k.vkey for k in witness_keys] + [
        generate_signer(f"extra{i}.example", 0x04).vkey for i in range(2)], 5)
    with pytest.raises(QuorumError):
        verify_bundle(text, strict)
    # Checkpoint signed by a log the policy does not trust.
    other = Policy.k_of_n([generate_signer(log.origin).vkey], [], 0)
    with pytest.raises(SignatureError):
        verify_bundle(text, other)
    with pytest.raises(FormatError):
        verify_bundle(TlogProof(2, p.proof, p.checkpoint, None).encode(), policy_2of3)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "c2sp.org/tlog-proof@v2\nindex 0\n\nx\n\n— k AAAAAAAA\n",
        HEADER + "\n\norigin\n",
        HEADER + "\nindex 01\n\nx\n\n— k AAAAAAAA\n",
        HEADER + "\nextra !!\nindex 0\n\nx\n\n— k AAAAAAAA\n",
        HEADER + "\nindex 0\nAAAA\n\nx\n\n— k AAAAAAAA\n",
        HEADER + "\nindex 0\n\nnot a note",
        HEADER + "\nindex 0\nextra AAAA\n\nx\n\n— k AAAAAAAA\n",  # extra must come before index
    ],
)
def test_malformed_bundles(text: str) -> None:
    with pytest.raises(FormatError):
        TlogProof.parse(text)


def test_spec_example_bundle_header_parses() -> None:
    # tlog-proof's example with its elided signatures replaced by well-formed ones.
    example = (
        "c2sp.org/tlog-proof@v1\n"
        "extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6\n"
        "index 73894\n"
        "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n"
        "B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n"
        "EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=\n"
        "RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=\n"
        "AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=\n\n"
        "example.com/fancylog\n109482\nsFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n\n"
        f"— example.com/fancylog {base64.b64encode(bytes(68)).decode()}\n"
    )
    p = TlogProof.parse(example)
    assert p.index == 73894 and len(p.proof) == 5 and p.extra == b"age-v1.2.1-darwin-arm64.tar.gz"
    assert p.encode() == example


def test_audit_absence_and_later_entries(logged, policy_2of3, owner_key, log_key) -> None:
    log, _, _ = logged
    other = np.full((8, 8, 3), 7, np.uint8)
    r = audit_log(other, log, policy=policy_2of3)
    assert not r.found and r.tree_size == 6
    assert r.message.startswith("not in the log up to checkpoint 6 of example.com/genattr-test-log")
    assert "cosigned by w1, w2, w3" in r.message and ABSENCE_CAVEAT in r.message
    # Logged after the checkpoint: the audit says so instead of claiming absence silently.
    gen = LoggedGenerator(lambda seed: other, log, owner=owner_key, model_id=b"\x07" * 32)
    gen()
    r = audit_log(other, log, policy=policy_2of3)
    assert not r.found and r.later_indices == [6] and "logged later, at index 6" in r.message
    log.sign_checkpoint(log_key)  # log-signed only: the 2-of-3 policy rejects it until witnesses cosign
    with pytest.raises(QuorumError):
        audit_log(other, log, policy=policy_2of3)
    r = audit_log(other, log)  # against the log's own key
    assert r.found and r.index == 6 and r.witnesses == []
    assert audit_log(other, log, full_scan=False).index == 6


def test_audit_against_a_bundle(logged, policy_2of3) -> None:
    log, out, _ = logged
    bundle = audit_log(out.images[1], log, policy=policy_2of3).bundle
    r = audit_bundle(out.images[1], bundle.encode(), policy_2of3)
    assert r.found and r.index == 1
    r = audit_bundle(out.images[0], bundle, policy_2of3)
    assert not r.found and "different output" in r.message and ABSENCE_CAVEAT in r.message


def test_audit_needs_a_checkpoint(new_log) -> None:
    with pytest.raises(LedgerError, match="no checkpoint"):
        audit_log(np.zeros((2, 2), np.uint8), new_log())


def test_audit_detects_a_log_that_does_not_match_its_checkpoint(logged, policy_2of3, tmp_path) -> None:
    import sqlite3

    log, _, _ = logged
    log.close()
    conn = sqlite3.connect(tmp_path / "log.db")
    conn.execute("DROP TRIGGER leaves_no_update")
    conn.execute("UPDATE leaves SET data = ? WHERE idx = 5", (bytes(204),))
    conn.commit()
    conn.close()
    from genattr.ledger import CorruptionError, TransparencyLog

    with TransparencyLog.open(tmp_path / "log.db") as reopened, pytest.raises(CorruptionError):
        audit_log(np.full((8, 8, 3), 1, np.uint8), reopened, policy=policy_2of3)
