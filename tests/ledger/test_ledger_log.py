"""TransparencyLog on SQLite and PostgreSQL (`storage_factory`), and on a toy in-memory store through the same
interface."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from genattr.ledger import (
    CorruptionError,
    Entry,
    FormatError,
    GroupCommitter,
    LogStorage,
    ProofError,
    SignatureError,
    SQLiteStorage,
    StorageError,
    TransparencyLog,
    generate_signer,
    leaf_hash,
    open_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from genattr.ledger.merkle import EMPTY_ROOT, MemoryTree
from genattr.ledger.storage import node_id

ORIGIN = "example.com/genattr-test-log"  # as in conftest.py (the log key's name)


def test_append_proofs_match_reference(storage_factory, make_entry, log_key) -> None:
    log = storage_factory.create()
    assert log.size == 0 and log.root() == EMPTY_ROOT
    ref = MemoryTree()
    for batch in (1, 1, 3, 8, 1, 16, 2):
        entries = [make_entry(ref.size + j) for j in range(batch)]
        idx = log.append(entries)
        assert idx == list(range(ref.size, ref.size + batch))
        for e in entries:
            ref.append(leaf_hash(e.encode()))
    n = ref.size
    assert log.size == n == 32
    for size in range(1, n + 1):
        assert log.root(size) == ref.root(size)
    for m in range(n):
        proof = log.inclusion_proof(m, n)
        assert proof == ref.inclusion_proof(m, n)
        verify_inclusion(leaf_hash(log.leaf(m)), m, n, proof, log.root())
    for m in range(1, n + 1):
        verify_consistency(m, n, log.consistency_proof(m, n), log.root(m), log.root(n))
    with pytest.raises(ProofError):
        log.inclusion_proof(0, n + 1)
    assert log.entry(5) == Entry.parse(log.leaf(5)) == make_entry(5)
    assert log.find(make_entry(5).output_hash) == [5]


def test_checkpoints_are_signed_stored_and_checked_on_open(storage_factory, make_entry, log_key) -> None:
    log = storage_factory.create()
    log.append([make_entry(i) for i in range(5)])
    note = log.sign_checkpoint(log_key)
    cp = open_checkpoint(note, [log_key.verifier]).checkpoint
    assert (cp.origin, cp.size, cp.root) == (ORIGIN, 5, log.root(5))
    assert log.latest_checkpoint() == note
    log.append([make_entry(i) for i in range(5, 9)])
    note2 = log.sign_checkpoint(log_key)
    assert open_checkpoint(note2, [log_key.verifier]).checkpoint.size == 9
    assert log.sign_checkpoint(log_key, size=5) == note  # re-signing a tree size gives the stored note
    log.close()
    reopened = storage_factory.open(log_key=log_key.vkey)
    assert reopened.size == 9
    assert reopened.fsck().checkpoints_checked == 2
    reopened.close()


def test_signing_needs_the_log_key(storage_factory, make_entry) -> None:
    log = storage_factory.create()
    log.append([make_entry(0)])
    with pytest.raises(SignatureError):
        log.sign_checkpoint(generate_signer(ORIGIN))  # type: ignore[arg-type]


def test_open_with_wrong_pinned_key_fails(storage_factory) -> None:
    storage_factory.create().close()
    with pytest.raises(CorruptionError, match="not the trusted key"):
        storage_factory.open(log_key=generate_signer(ORIGIN).vkey)


def test_create_validation(tmp_path, log_key) -> None:
    with pytest.raises(FormatError, match="origin"):
        TransparencyLog.create(tmp_path / "a.db", "other.example/log", log_key.vkey)
    TransparencyLog.create(tmp_path / "a.db", ORIGIN, log_key.vkey).close()
    with pytest.raises(StorageError, match="refusing"):
        TransparencyLog.create(tmp_path / "a.db", ORIGIN, log_key.vkey)
    with pytest.raises(StorageError, match="no log"):
        TransparencyLog.open(tmp_path / "missing.db")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.commit()
    with pytest.raises(CorruptionError, match="not a genattr log"):
        TransparencyLog.open(other)


def test_owner_signatures_are_enforced(storage_factory, make_entry) -> None:
    log = storage_factory.create()
    mallory = generate_signer("owner.example/mallory")
    with pytest.raises(SignatureError, match="unregistered owner"):
        log.append([make_entry(0, owner=mallory)])
    bad = bytearray(make_entry(1).encode())
    bad[50] ^= 1
    with pytest.raises(SignatureError):
        log.append([bytes(bad)])
    with pytest.raises(FormatError):
        log.append([b"junk"])
    assert log.size == 0  # a bad entry fails the whole batch before anything is written
    log.add_owner(mallory.vkey)
    assert log.append([make_entry(2, owner=mallory)]) == [0]


def test_triggers_forbid_rewriting_history(storage_factory, make_entry, log_key) -> None:
    log = storage_factory.create()
    log.append([make_entry(i) for i in range(3)])
    log.sign_checkpoint(log_key)
    log.close()
    conn = storage_factory.connect()
    q = storage_factory._q
    for stmt, params in (
        ("UPDATE leaves SET data = ? WHERE idx = 0", (b"\0",)),
        ("DELETE FROM leaves WHERE idx = 2", ()),
        ("UPDATE nodes SET hash = ?", (b"\0",)),
        ("DELETE FROM nodes", ()),
        ("DELETE FROM checkpoints", ()),
        ("UPDATE meta SET value = 'x'", ()),
    ):
        with pytest.raises(storage_factory.integrity_error, match="append-only"):
            conn.execute(q(stmt), params)
    with pytest.raises(storage_factory.integrity_error):  # duplicate indices are impossible
        conn.execute(q("INSERT INTO leaves(idx, data, hash) VALUES (1, ?, ?)"), (b"\0", b"\0"))
    conn.close()


def test_sqlite_pragmas(new_log) -> None:
    log = new_log()
    conn = log.storage._conn  # type: ignore[attr-defined]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert isinstance(log.storage, LogStorage)


def test_group_commit_from_many_threads(storage_factory, make_entry) -> None:
    log = storage_factory.create()
    results: list[int] = []
    lock = threading.Lock()
    commits = []
    real_append = log.storage.append

    def counting_append(plan):
        out = real_append(plan)
        commits.append(out[1])
        return out

    log.storage.append = counting_append  # type: ignore[method-assign]
    with GroupCommitter(log, max_batch=64) as gc:

        def worker(k: int) -> None:
            for j in range(20):
                idx = gc.submit(make_entry(k * 100 + j)).result(timeout=30)
                with lock:
                    results.append(idx)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert gc.append([make_entry(999)]) == [120]
    assert sorted(results) == list(range(120))
    assert sum(commits) == 121 and max(commits) <= 64
    log.fsck()


def test_group_commit_propagates_failures(storage_factory, make_entry) -> None:
    log = storage_factory.create()
    with GroupCommitter(log) as gc:
        with pytest.raises(SignatureError):
            gc.submit(make_entry(0, owner=generate_signer("owner.example/eve")))  # rejected before queueing

        def broken(plan):
            raise StorageError("disk on fire")

        log.storage.append = broken  # type: ignore[method-assign]
        fut = gc.submit(make_entry(1))
        with pytest.raises(StorageError, match="disk on fire"):
            fut.result(timeout=30)


class MemoryStorage:
    """A minimal LogStorage: proves the tree code needs nothing SQLite-specific (a PostgreSQL store is the same)."""

    def __init__(self, origin: str, vkey: str) -> None:
        self.meta = {"origin": origin, "log_vkey": vkey}
        self.leaves: list[tuple[bytes, bytes | None]] = []
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.cps: dict[int, str] = {}
        self.cosigs: dict[int, list[str]] = {}
        self.wsizes: dict[str, int] = {}
        self.lock = threading.Lock()
        self.reads = 0

    def close(self) -> None:
        pass

    def get_meta(self, key: str) -> str | None:
        return self.meta.get(key)

    def tree_size(self) -> int:
        return len(self.leaves)

    def read_nodes(self, coords: Sequence[tuple[int, int]]) -> list[bytes]:
        self.reads += len(coords)
        try:
            return [self.nodes[c] for c in coords]
        except KeyError as e:
            raise CorruptionError(f"missing node {e}") from e

    def read_leaf(self, index: int) -> bytes:
        return self.leaves[index][0]

    def iter_leaves(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes, bytes | None]]:
        for i in range(start, len(self.leaves) if end is None else min(end, len(self.leaves))):
            yield i, *self.leaves[i]

    def iter_level(self, level: int) -> Iterator[tuple[int, bytes]]:
        for (lv, i), h in sorted(self.nodes.items()):
            if lv == level:
                yield i, h

    def max_level(self) -> int:
        return max((lv for lv, _ in self.nodes), default=-1)

    def find_leaves(self, key: bytes) -> list[int]:
        return [i for i, (_, k) in enumerate(self.leaves) if k == key]

    def iter_lookup(self) -> Iterator[tuple[bytes, int]]:
        return iter(sorted((k, i) for i, (_, k) in enumerate(self.leaves) if k is not None))

    def lookup_progress(self) -> int:
        return len(self.leaves)

    def append(self, plan: Callable) -> tuple[int, int]:
        with self.lock:
            size = len(self.leaves)
            leaves, nodes = plan(size, self.read_nodes)
            self.leaves.extend(leaves)
            self.nodes.update({(lv, i): h for lv, i, h in nodes})
            return size, len(leaves)

    def add_checkpoint(self, size: int, note: str) -> None:
        self.cps.setdefault(size, note)

    def latest_checkpoint(self) -> tuple[int, str] | None:
        return max(self.cps.items()) if self.cps else None

    def checkpoint_at(self, size: int) -> str | None:
        return self.cps.get(size)

    def checkpoints(self) -> list[tuple[int, str]]:
        return sorted(self.cps.items())

    def add_cosignatures(self, size: int, lines: Sequence[str]) -> None:
        self.cosigs.setdefault(size, []).extend(lines)

    def cosignatures(self, size: int) -> list[str]:
        return self.cosigs.get(size, [])

    def get_witness_size(self, name: str) -> int:
        return self.wsizes.get(name, 0)

    def set_witness_size(self, name: str, size: int) -> None:
        self.wsizes[name] = size

    def add_owner(self, key_id: bytes, vkey: str) -> None:
        pass

    def owners(self) -> list[str]:
        return []

    def integrity_check(self) -> list[str]:
        return []


def test_tree_code_runs_on_another_storage(make_entry, log_key) -> None:
    store = MemoryStorage(ORIGIN, log_key.vkey)
    assert isinstance(store, LogStorage)
    log = TransparencyLog(store)
    log.append([make_entry(i) for i in range(1000)])
    note = log.sign_checkpoint(log_key)
    assert open_checkpoint(note, [log_key.verifier]).checkpoint.size == 1000
    store.reads = 0
    proof = log.inclusion_proof(617, 1000)
    assert store.reads <= 2 * 10 + 2  # O(log n) stored hashes per proof
    verify_inclusion(leaf_hash(log.leaf(617)), 617, 1000, proof, log.root())
    assert log.fsck().ok


def test_sqlite_proofs_are_single_queries(new_log, make_entry) -> None:
    log = new_log()
    log.append([make_entry(i) for i in range(300)])
    statements: list[str] = []
    log.storage._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    log.inclusion_proof(123, 300)
    selects = [s for s in statements if "FROM nodes" in s]
    assert len(selects) == 1
    log.storage._conn.set_trace_callback(None)  # type: ignore[attr-defined]


def test_search_index_is_lazy_and_checked(storage_factory, make_entry) -> None:
    log = storage_factory.create()
    log.append([make_entry(i) for i in range(10)])
    assert log.storage.lookup_progress() == 0  # appends never touch the random-keyed index
    assert log.find(make_entry(3).output_hash) == [3]
    assert log.storage.lookup_progress() == 10
    log.append([make_entry(3)])  # the same output logged twice
    assert log.find(make_entry(3).output_hash) == [3, 10]
    assert log.find(b"\0" * 32) == []
    log.fsck()
    storage_factory.sql("UPDATE lookup SET idx = 4 WHERE idx = 3")  # derived data: no triggers to drop
    with pytest.raises(CorruptionError, match="search index"):
        log.fsck()


def test_checkpoint_of_the_empty_log_then_growth(storage_factory, make_entry, log_key) -> None:
    log = storage_factory.create()
    note0 = log.sign_checkpoint(log_key)
    assert open_checkpoint(note0, [log_key.verifier]).checkpoint.root == EMPTY_ROOT
    log.append([make_entry(0)])
    log.sign_checkpoint(log_key)
    log.close()
    storage_factory.open().close()


def test_checkpoints_cover_only_committed_data(storage_factory, make_entry, log_key) -> None:
    """An append still inside its transaction (not durable yet) is invisible to the checkpoint signer."""
    log = storage_factory.create()
    log.append([make_entry(i) for i in range(3)])
    if storage_factory.kind == "postgres":  # another appender holding the sequencer row lock, mid-transaction
        import psycopg

        from genattr.ledger.pg_schema import to_conninfo

        other = psycopg.connect(to_conninfo(storage_factory.target))
        other.execute("SELECT size FROM log_head WHERE id = 0 FOR UPDATE")
    else:
        other = sqlite3.connect(storage_factory.target, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
    q = storage_factory._q
    other.execute(q("INSERT INTO leaves(idx, data, hash) VALUES (3, ?, ?)"), (make_entry(3).encode(), bytes(32)))
    rollback = other.rollback if storage_factory.kind == "postgres" else lambda: other.execute("ROLLBACK")
    timer = threading.Timer(0.3, rollback)  # the writer crashes / gives up
    timer.start()
    note = log.sign_checkpoint(log_key)  # computed from committed data; stored once the lock frees
    timer.join()
    other.close()
    assert open_checkpoint(note, [log_key.verifier]).checkpoint.size == 3
    log.fsck()


def test_node_id_bounds() -> None:
    assert node_id(0, 5) == 5
    assert node_id(3, 1) == (3 << 56) | 1
    with pytest.raises(ValueError):
        node_id(64, 0)
    with pytest.raises(ValueError):
        node_id(0, 1 << 56)


def test_storage_rejects_non_wal_capable_paths(tmp_path: Path) -> None:
    d = tmp_path / "dir.db"
    d.mkdir()
    with pytest.raises(StorageError):
        SQLiteStorage(d)
