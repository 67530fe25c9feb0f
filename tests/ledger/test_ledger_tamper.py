"""Tampering with the stored log must be detected loudly: by open(), by fsck and by proof verification.

The attacker here has write access to the database (so can drop the append-only triggers, and puts them back
afterwards); what they cannot do is forge the log's signature on a checkpoint that somebody else already holds.
Every test runs on SQLite and PostgreSQL (`storage_factory`) unless it is about SQLite's file format.
"""

from __future__ import annotations

import pytest
from tests.ledger.conftest import ORIGIN, LogBackend

from genattr.ledger import (
    CorruptionError,
    LedgerError,
    ProofError,
    SignatureError,
    TransparencyLog,
    generate_signer,
    leaf_hash,
    merkle,
    open_checkpoint,
    verify_inclusion,
)
from genattr.ledger.checkpoint import Checkpoint, sign_checkpoint
from genattr.ledger.storage import node_id

N = 20
sqlite_only = pytest.mark.parametrize("storage_factory", ["sqlite"], indirect=True)


@pytest.fixture
def built(storage_factory: LogBackend, make_entry, log_key) -> tuple[LogBackend, str, list[bytes]]:
    """A closed log of 20 entries with checkpoints at 10 and 20. Returns (log backend, last checkpoint, leaves)."""
    log = storage_factory.create()
    log.append([make_entry(i) for i in range(10)])
    log.sign_checkpoint(log_key)
    log.append([make_entry(i) for i in range(10, N)])
    note = log.sign_checkpoint(log_key)
    leaves = [log.leaf(i) for i in range(N)]
    log.fsck()
    log.close()
    return storage_factory, note, leaves


def tamper(db: LogBackend, *statements: str, params: tuple = ()) -> None:
    db.tamper(*statements, params=params)  # triggers dropped, statements run, triggers restored


def fsck_fails(db: LogBackend, match: str | None = None) -> None:
    """Opening may already fail (CorruptionError); if it does not, fsck must."""
    with pytest.raises(CorruptionError, match=match):
        log = db.open()
        try:
            log.fsck()
        finally:
            log.close()


def client_proof_fails(db: LogBackend, note: str, index: int, leaf: bytes, log_key) -> None:
    """A client holding the signed checkpoint and the original entry cannot get a valid proof."""
    cp = open_checkpoint(note, [log_key.verifier]).checkpoint
    try:
        log = db.open(check=False)
    except CorruptionError:
        return  # refusing to open is loud enough
    try:
        with pytest.raises(LedgerError):
            proof = log.inclusion_proof(index, cp.size)
            verify_inclusion(leaf_hash(leaf), index, cp.size, proof, cp.root)
            stored = log.leaf(index)
            verify_inclusion(leaf_hash(stored), index, cp.size, proof, cp.root)
    finally:
        log.close()


@pytest.mark.parametrize("index", [0, 10, N - 1])
@pytest.mark.parametrize("offset", [0, 3, 50, 150, 203])
def test_flip_a_byte_of_any_leaf(built, index: int, offset: int, log_key) -> None:
    db, note, leaves = built
    bad = bytearray(leaves[index])
    bad[offset] ^= 0x40
    tamper(db, "UPDATE leaves SET data = ? WHERE idx = ?", params=(bytes(bad), index))
    fsck_fails(db)
    client_proof_fails(db, note, index, bytes(bad), log_key)


@pytest.mark.parametrize("level,index", [(0, 0), (0, 13), (0, N - 1), (1, 4), (2, 2), (3, 1), (4, 0)])
def test_flip_a_byte_of_any_node(built, level: int, index: int, log_key) -> None:
    db, note, leaves = built
    nid = node_id(level, index)
    where = f"nodes WHERE id = {nid}" if level else f"leaves WHERE idx = {index}"  # leaf hashes live with leaves
    ((h,),) = db.query(f"SELECT hash FROM {where}")
    bad = bytearray(h)
    bad[index % 32] ^= 0x80
    tamper(db, f"UPDATE {where.replace(' WHERE', ' SET hash = ? WHERE')}", params=(bytes(bad),))
    fsck_fails(db)
    # Exactly the leaves whose inclusion proofs are built from this node now fail against the signed root.
    cp = open_checkpoint(note, [log_key.verifier]).checkpoint
    uses = {
        i for i in range(N)
        if any((level, index) in merkle.range_subtrees(lo, hi) for lo, hi in merkle.inclusion_ranges(i, N))
    }
    assert uses
    log = db.open(check=False)
    failing = set()
    for i in range(N):
        try:
            verify_inclusion(leaf_hash(leaves[i]), i, cp.size, log.inclusion_proof(i, cp.size), cp.root)
        except ProofError:
            failing.add(i)
    log.close()
    assert failing == uses


@sqlite_only  # PostgreSQL enforces column types (bytea); wrong lengths are in test_pg_tamper.py
@pytest.mark.parametrize("expr", ["CAST(randomblob(32) AS TEXT)", "hex(hash)", "''", "42", "x'00'"])
def test_rewrite_a_node_with_another_type(built, expr: str) -> None:
    db, _, _ = built
    tamper(db, f"UPDATE nodes SET hash = {expr} WHERE id = {node_id(1, 3)}")
    fsck_fails(db)


def test_delete_a_leaf_row(built, log_key) -> None:
    db, note, leaves = built
    tamper(db, "DELETE FROM leaves WHERE idx = 5")
    fsck_fails(db, "dense|missing")
    client_proof_fails(db, note, 5, leaves[5], log_key)


def test_delete_the_newest_rows(built) -> None:
    db, _, _ = built
    tamper(db, f"DELETE FROM leaves WHERE idx >= {N - 3}")
    with pytest.raises(CorruptionError, match="removed"):
        db.open()


def test_delete_a_node_row(built, log_key) -> None:
    db, note, leaves = built
    tamper(db, f"DELETE FROM nodes WHERE id = {node_id(1, 2)}")  # leaves [4, 6): in the proofs of 6 and 7
    fsck_fails(db)
    client_proof_fails(db, note, 6, leaves[6], log_key)


def test_reorder_leaves(built, log_key) -> None:
    db, note, leaves = built
    tamper(
        db,
        "UPDATE leaves SET idx = -1 WHERE idx = 3",
        "UPDATE leaves SET idx = 3 WHERE idx = 4",
        "UPDATE leaves SET idx = 4 WHERE idx = -1",
    )
    fsck_fails(db)
    client_proof_fails(db, note, 3, leaves[3], log_key)


def test_reorder_leaves_and_their_hashes(built, log_key) -> None:
    """A smarter attacker swaps leaves *and* level-0 hashes: the signed root still gives it away."""
    db, _, leaves = built
    tamper(db, "UPDATE leaves SET data = ? WHERE idx = 3", params=(leaves[4],))
    tamper(db, "UPDATE leaves SET data = ? WHERE idx = 4", params=(leaves[3],))
    tamper(db, "UPDATE leaves SET hash = ? WHERE idx = 3", params=(leaf_hash(leaves[4]),))
    tamper(db, "UPDATE leaves SET hash = ? WHERE idx = 4", params=(leaf_hash(leaves[3]),))
    fsck_fails(db)


def test_rewrite_whole_tree_consistently_is_caught_by_the_signed_checkpoint(tmp_path, built, make_entry) -> None:
    """Rebuild every node for modified leaves (so the tree is self-consistent): the signed root no longer matches."""
    db, _, leaves = built
    mod = [*leaves]
    mod[2] = make_entry(999).encode()
    other = TransparencyLog.create(tmp_path / "forged.db", ORIGIN, _vkey(db))  # a SQLite scratch log
    other.append(mod)
    conn = other.storage._conn  # type: ignore[attr-defined]
    rows = conn.execute("SELECT id, hash FROM nodes").fetchall()
    leaf_rows = conn.execute("SELECT idx, data, hash, lookup FROM leaves").fetchall()
    other.close()
    q = db._q
    conn = db.connect()
    db.drop_triggers(conn)
    conn.execute("DELETE FROM nodes")
    conn.execute("DELETE FROM leaves")
    cur = conn.cursor()
    cur.executemany(q("INSERT INTO nodes(id, hash) VALUES (?, ?)"), rows)
    cur.executemany(q("INSERT INTO leaves(idx, data, hash, lookup) VALUES (?, ?, ?, ?)"), leaf_rows)
    db.restore_triggers(conn)
    conn.commit()
    conn.close()
    with pytest.raises(CorruptionError, match=r"tampered|match"):
        db.open()


def _vkey(db: LogBackend) -> str:
    ((v,),) = db.query("SELECT value FROM meta WHERE key = 'log_vkey'")
    return str(v)


@sqlite_only  # the PostgreSQL server owns its files
@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 0.9, 0.99])
def test_truncated_database_file(built, fraction: float) -> None:
    db, _, _ = built
    path = db.target
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(int(size * fraction))
    with pytest.raises(LedgerError):
        log = TransparencyLog.open(path)
        try:
            log.fsck()
        finally:
            log.close()


@sqlite_only
def test_flip_a_byte_in_the_raw_file(built) -> None:
    db, _, leaves = built
    path = db.target
    raw = bytearray(path.read_bytes())
    pos = raw.find(leaves[11])
    assert pos >= 0 and raw.find(leaves[11], pos + 1) < 0
    raw[pos + 60] ^= 0x01  # inside the seed commitment
    path.write_bytes(bytes(raw))
    fsck_fails(db)


def test_forged_or_wrong_key_checkpoints(built, log_key) -> None:
    db, note, _ = built
    # 1. someone edits the stored checkpoint's size line
    forged = note.replace(f"\n{N}\n", f"\n{N + 1}\n")
    tamper(db, f"DELETE FROM checkpoints WHERE size = {N}")
    tamper(db, "INSERT INTO checkpoints(size, note) VALUES (?, ?)", params=(N, forged))
    with pytest.raises(CorruptionError, match="invalid"):
        db.open()
    # 2. a checkpoint signed by a different key with the log's name
    mallory = generate_signer("example.com/genattr-test-log")
    log = db.open(check=False)
    fake = sign_checkpoint(Checkpoint(log.origin, N, log.root(N)), mallory)  # type: ignore[arg-type]
    log.close()
    tamper(db, f"DELETE FROM checkpoints WHERE size = {N}")
    tamper(db, "INSERT INTO checkpoints(size, note) VALUES (?, ?)", params=(N, fake))
    with pytest.raises(CorruptionError, match="trusted key"):
        db.open()
    with pytest.raises(SignatureError):
        open_checkpoint(fake, [log_key.verifier])


def test_swapped_log_key_is_caught_when_pinned(built, log_key) -> None:
    db, _, _ = built
    mallory = generate_signer("example.com/genattr-test-log")
    tamper(db, "UPDATE meta SET value = ? WHERE key = 'log_vkey'", params=(mallory.vkey,))
    with pytest.raises(CorruptionError):
        db.open(log_key=log_key.vkey)


def test_proof_for_untampered_leaves_still_verifies_after_unrelated_damage(built, log_key) -> None:
    """Damage is localised: proofs that do not touch a flipped node still verify (and fsck still fails)."""
    db, note, leaves = built
    tamper(db, "UPDATE leaves SET hash = ? WHERE idx = 19", params=(bytes(32),))  # the stored hash of leaf 19
    cp = open_checkpoint(note, [log_key.verifier]).checkpoint
    log = db.open(check=False)
    verify_inclusion(leaf_hash(leaves[0]), 0, 16, log.inclusion_proof(0, 16), log.root(16))
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(leaves[18]), 18, cp.size, log.inclusion_proof(18, cp.size), cp.root)
    log.close()
    fsck_fails(db)

