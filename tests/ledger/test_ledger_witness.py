"""C2SP tlog-witness: every status code of add-checkpoint, rollback and fork rejection, k-of-n cosigning."""

from __future__ import annotations

import hashlib
import threading

import pytest

from genattr.ledger import (
    ConflictError,
    Policy,
    QuorumError,
    WitnessClient,
    WitnessError,
    collect_cosignatures,
    generate_signer,
    open_checkpoint,
)
from genattr.ledger.checkpoint import Checkpoint, sign_checkpoint
from genattr.ledger.merkle import EMPTY_ROOT, MemoryTree, leaf_hash
from genattr.ledger.note import parse_note
from genattr.ledger.witness import SIZE_CONTENT_TYPE, format_add_checkpoint

ORIGIN = "example.com/genattr-test-log"


@pytest.fixture
def tree() -> MemoryTree:
    return MemoryTree([leaf_hash(bytes([i])) for i in range(40)])


def signed(log_key, tree: MemoryTree, size: int, origin: str = ORIGIN) -> str:
    return sign_checkpoint(Checkpoint(origin, size, tree.root(size)), log_key)


def post(app, body: bytes | str):
    return app.post("/add-checkpoint", content=body if isinstance(body, bytes) else body.encode())


def add(app, old: int, proof, note: str):
    return post(app, format_add_checkpoint(old, proof, note))


def test_first_checkpoint_then_consistent_growth(witnesses, log_key, witness_keys, tree) -> None:
    ws, _, apps = witnesses
    app, wkey = apps[0], witness_keys[0]
    r = add(app, 0, [], signed(log_key, tree, 10))
    assert r.status_code == 200
    line = r.text
    assert line.startswith("— witness0.example ") and line.endswith("\n")
    full = parse_note(signed(log_key, tree, 10) + line)
    got = open_checkpoint(full, [log_key.verifier], [wkey.verifier])
    assert got.cosigners == ["witness0.example"] and got.cosignatures[0].timestamp > 1_600_000_000
    r = add(app, 10, tree.consistency_proof(10, 25), signed(log_key, tree, 25))
    assert r.status_code == 200
    assert ws[0].state(ORIGIN) == (25, tree.root(25))
    # Same size, same root again: allowed (empty proof).
    assert add(app, 25, [], signed(log_key, tree, 25)).status_code == 200
    # Monitoring endpoint serves the latest cosigned checkpoint with both signatures.
    r = app.get(f"/{hashlib.sha256(ORIGIN.encode()).hexdigest()}/checkpoint")
    assert r.status_code == 200
    cp = open_checkpoint(r.text, [log_key.verifier], [wkey.verifier])
    assert cp.checkpoint.size == 25 and cp.cosigners == ["witness0.example"]
    assert app.get(f"/{'0' * 64}/checkpoint").status_code == 404
    assert app.get("/nothex/checkpoint").status_code == 404


def test_409_reports_the_witness_size(witnesses, log_key, tree) -> None:
    _, _, apps = witnesses
    app = apps[0]
    assert add(app, 0, [], signed(log_key, tree, 8)).status_code == 200
    r = add(app, 0, [], signed(log_key, tree, 12))  # stale old size
    assert r.status_code == 409
    assert r.text == "8\n"
    assert r.headers["content-type"] == SIZE_CONTENT_TYPE
    r = add(app, 5, tree.consistency_proof(5, 12), signed(log_key, tree, 12))
    assert r.status_code == 409 and r.text == "8\n"


def test_rollback_is_rejected(witnesses, log_key, tree) -> None:
    _, _, apps = witnesses
    app = apps[0]
    assert add(app, 0, [], signed(log_key, tree, 20)).status_code == 200
    # A log (or an attacker holding its key) tries to make the witness sign a smaller tree.
    assert add(app, 20, [], signed(log_key, tree, 12)).status_code == 400  # old > new size
    assert add(app, 12, [], signed(log_key, tree, 12)).status_code == 409  # old != recorded size
    assert add(app, 0, [], signed(log_key, tree, 12)).status_code == 409


def test_fork_is_rejected_and_recorded(witnesses, log_key, tree) -> None:
    ws, _, apps = witnesses
    app = apps[0]
    assert add(app, 0, [], signed(log_key, tree, 10)).status_code == 200
    fork = MemoryTree([leaf_hash(bytes([i])) for i in range(9)] + [leaf_hash(b"evil")] + [leaf_hash(b"x")] * 10)
    # Same size, different root.
    r = add(app, 10, [], sign_checkpoint(Checkpoint(ORIGIN, 10, fork.root(10)), log_key))
    assert r.status_code == 422
    # Larger forked tree with its own (valid for the fork) consistency proof: does not match our root.
    r = add(app, 10, fork.consistency_proof(10, 20), sign_checkpoint(Checkpoint(ORIGIN, 20, fork.root(20)), log_key))
    assert r.status_code == 422
    assert ws[0].state(ORIGIN) == (10, tree.root(10))  # state untouched
    assert [s for _, s, _ in ws[0].evidence()] == [422, 422]


def test_422_cases(witnesses, log_key, tree) -> None:
    _, _, apps = witnesses
    app = apps[0]
    bad_empty = sign_checkpoint(Checkpoint(ORIGIN, 0, b"\x01" * 32), log_key)
    assert add(app, 0, [], bad_empty).status_code == 422  # size 0 must have the empty root
    assert add(app, 0, [], sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), log_key)).status_code == 200
    assert add(app, 0, [b"\0" * 32], signed(log_key, tree, 5)).status_code == 422  # proof with old = 0
    assert add(app, 0, [], signed(log_key, tree, 5)).status_code == 200
    proof = tree.consistency_proof(5, 9)
    proof[0] = bytes(32)
    assert add(app, 5, proof, signed(log_key, tree, 9)).status_code == 422
    assert add(app, 5, tree.consistency_proof(5, 9)[:-1], signed(log_key, tree, 9)).status_code == 422


def test_403_and_404(witnesses, log_key, tree) -> None:
    _, _, apps = witnesses
    app = apps[0]
    other_log = generate_signer("example.com/unknown-log")
    assert add(app, 0, [], signed(other_log, tree, 3, "example.com/unknown-log")).status_code == 404
    impostor = generate_signer(ORIGIN)  # right name, wrong key: signature ignored -> no trusted signature
    assert add(app, 0, [], signed(impostor, tree, 3)).status_code == 403
    good = signed(log_key, tree, 3)
    note = parse_note(good)
    sig = note.signatures[0]
    broken = type(sig)(sig.name, sig.key_id, bytes(64))  # known key, invalid signature
    assert add(app, 0, [], type(note)(note.text, (broken,)).encode()).status_code == 403
    assert add(app, 0, [], good.replace("\n3\n", "\n4\n")).status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"old 0\n",
        b"old x\n\nexample\n",
        b"old 01\n\n",
        b"new 0\n\n",
        b"old 0\nnot base64\n\n",
        b"old 0\nAAAA\n\n",
        b"\xff\xfe",
        b"old 0\n" + b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n" * 64 + b"\n",
    ],
)
def test_400_on_malformed_requests(witnesses, body: bytes, log_key, tree) -> None:
    _, _, apps = witnesses
    if body.endswith(b"\n\n") or body == b"old 0\n" + b"A" * 0:
        body = body + signed(log_key, tree, 3).encode()
    assert post(apps[0], body).status_code == 400


def test_oversized_request(witnesses) -> None:
    _, _, apps = witnesses
    assert post(apps[0], b"old 0\n" + b"A" * 70_000).status_code == 400


def test_compare_and_swap_is_atomic(witnesses, log_key, tree) -> None:
    """Many concurrent requests from the same old size: exactly one wins, the witness never rolls back."""
    ws, _, _ = witnesses
    w = ws[0]
    assert w.add_checkpoint(format_add_checkpoint(0, [], signed(log_key, tree, 4))).status == 200
    results: list[int] = []
    lock = threading.Lock()

    def submit(size: int) -> None:
        r = w.add_checkpoint(format_add_checkpoint(4, tree.consistency_proof(4, size), signed(log_key, tree, size)))
        with lock:
            results.append(r.status)

    threads = [threading.Thread(target=submit, args=(s,)) for s in (10, 20, 30, 15, 25, 35)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 409, 409, 409, 409, 409]
    assert w.state(ORIGIN)[0] in (10, 15, 20, 25, 30, 35)


def test_k_of_n_cosigning_with_a_real_log(new_log, make_entry, log_key, witnesses, witness_keys, policy_2of3) -> None:
    ws, clients, _ = witnesses
    log = new_log()
    log.append([make_entry(i) for i in range(7)])
    note = collect_cosignatures(log, log.sign_checkpoint(log_key), clients, policy_2of3)
    assert len(policy_2of3.verify(note).cosignatures) == 3
    assert log.latest_checkpoint() == note  # cosignatures are stored with the checkpoint
    # One witness goes down: 2 of 3 still meets the quorum.
    log.append([make_entry(i) for i in range(7, 12)])
    down = WitnessClient("http://127.0.0.1:9", witness_keys[2].vkey, timeout=0.5)
    note2 = collect_cosignatures(log, log.sign_checkpoint(log_key), [clients[0], clients[1], down], policy_2of3)
    assert sorted(policy_2of3.witness_names(policy_2of3.verify(note2))) == ["w1", "w2"]
    # Two down: quorum not met.
    log.append([make_entry(12)])
    with pytest.raises(QuorumError, match="short of"):
        collect_cosignatures(log, log.sign_checkpoint(log_key), [clients[0], down], 2)
    # The witness that missed a round catches up with a consistency proof from what it last saw (size 7).
    note4 = collect_cosignatures(log, log.latest_checkpoint(with_cosignatures=False), clients, 3)
    assert ws[2].state(ORIGIN)[0] == 13
    assert len(open_checkpoint(note4, [log_key.verifier], [k.verifier for k in witness_keys]).cosignatures) == 3


def test_log_recovers_from_a_lost_witness_cache_via_409(new_log, make_entry, log_key, witnesses) -> None:
    _, clients, _ = witnesses
    log = new_log()
    log.append([make_entry(i) for i in range(5)])
    collect_cosignatures(log, log.sign_checkpoint(log_key), clients[:1], 1)
    log.storage.set_witness_size(clients[0].name, 0)  # forget what the witness saw
    log.append([make_entry(i) for i in range(5, 9)])
    collect_cosignatures(log, log.sign_checkpoint(log_key), clients[:1], 1)


def test_witnesses_detect_a_rolled_back_log(tmp_path, new_log, make_entry, log_key, witnesses) -> None:
    """The log's database is replaced by an older copy (or a fork): witnesses refuse to cosign."""
    _, clients, _ = witnesses
    log = new_log("a.db")
    log.append([make_entry(i) for i in range(6)])
    collect_cosignatures(log, log.sign_checkpoint(log_key), clients, 3)
    # A different history of the same log (same key!), e.g. restored from a backup and re-grown.
    fork = new_log("b.db")
    fork.append([make_entry(100 + i) for i in range(8)])
    with pytest.raises(ConflictError):
        collect_cosignatures(fork, fork.sign_checkpoint(log_key), clients, 1)
    fork2 = new_log("c.db")
    fork2.append([make_entry(200 + i) for i in range(3)])  # smaller than what witnesses saw
    with pytest.raises(ConflictError):
        collect_cosignatures(fork2, fork2.sign_checkpoint(log_key), clients, 1)


def test_client_rejects_bad_witness_answers(log_key, witness_keys, tree) -> None:
    class Resp:
        def __init__(self, status: int, text: str, ctype: str = "text/plain") -> None:
            self.status_code, self.text, self.headers = status, text, {"content-type": ctype}

    class Fake:
        def __init__(self, resp: Resp) -> None:
            self.resp = resp

        def post(self, *a, **k) -> Resp:
            return self.resp

    note = signed(log_key, tree, 3)
    other = generate_signer("witness0.example", 0x04)
    for resp, exc in [
        (Resp(200, "garbage\n"), WitnessError),
        (Resp(200, ""), WitnessError),
        (Resp(200, f"— witness0.example {'A' * 96}\n"), WitnessError),  # unknown key id: ignored -> none left
        (Resp(500, "boom"), WitnessError),
        (Resp(409, "5\n", "text/plain"), WitnessError),  # wrong content type
        (Resp(409, "5\n", SIZE_CONTENT_TYPE), ConflictError),
    ]:
        c = WitnessClient("http://w", witness_keys[0].vkey, http=Fake(resp))
        with pytest.raises(exc):
            c.add_checkpoint(0, [], note)
    # A cosignature from the right key id over the wrong message is an error, not noise.
    from genattr.ledger.checkpoint import cosign_checkpoint

    wrong = cosign_checkpoint("other text\n", witness_keys[0], 5)
    c = WitnessClient("http://w", witness_keys[0].vkey, http=Fake(Resp(200, wrong.line)))
    with pytest.raises(WitnessError, match="does not verify"):
        c.add_checkpoint(0, [], note)
    assert other.vkey != witness_keys[0].vkey


def test_policy_k_of_n_semantics(log_key, witness_keys) -> None:
    p = Policy.k_of_n([log_key.vkey], [k.vkey for k in witness_keys], 2)
    assert not p.satisfied_by(["w1"])
    assert p.satisfied_by(["w1", "w3"])
    assert Policy.k_of_n([log_key.vkey], [], 0).satisfied_by([])
    with pytest.raises(Exception, match="between"):
        Policy.k_of_n([log_key.vkey], [k.vkey for k in witness_keys], 4)
