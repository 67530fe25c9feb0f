"""Storage for the log: an interface the tree code programs against, and its SQLite implementation.

Kept in one module (over 400 lines): the storage interface and its SQLite implementation (schema, triggers,
append plans) change together.

The tree code (`genattr.ledger.log`) never writes SQL. It hands `LogStorage.append` a *plan* function that,
given the current size and a node reader (both inside the store's exclusive write transaction), returns the
leaves and complete-subtree hashes to insert. Anything that can run that inside one serialisable transaction
(SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``SELECT ... FOR UPDATE`` on a size row or an advisory lock) can
implement `LogStorage`; what any implementation shares (the plan and row types, node ids, checking a plan and
turning it into rows, keyset pagination) is in `genattr.ledger.storage_common`, re-exported here.

SQLite choices (each is load-bearing):

* WAL + ``synchronous=FULL``: a COMMIT returns only after the WAL is fsync'ed, so anything a checkpoint is
  computed from has been durably committed (with ``NORMAL``, WAL commits can be lost on power failure).
* ``BEGIN IMMEDIATE`` for appends: takes the write lock before reading the size, so concurrent appenders
  (threads or processes) serialise and indices stay dense and unique.
* Triggers that ``RAISE(ABORT)`` on UPDATE/DELETE of leaves, nodes, checkpoints and cosignatures: the
  application cannot rewrite history by accident. (Someone with write access to the file can drop the
  triggers, which is why `fsck`, checkpoints and witnesses exist.)
* Nodes are keyed by ``level << 56 | index`` in a rowid table: one B-tree lookup per hash, and a proof is a
  single ``WHERE id IN (...)`` query of O(log n) rows. Level-0 nodes (leaf hashes) live in the leaves row
  itself (one row per leaf instead of two: about 20% faster commits), under the same id (= the index).
* The search index (output hash -> indices) is *not* maintained by appends: keyed by random hashes, it would
  dirty ~one random page per entry and make every fsync'ed commit write megabytes (appends/s fell 3x at 50k
  entries). Appends stay sequential; `find_leaves` first catches the index up in one sorted bulk insert.
  It is derived data: `fsck` checks it, and audits that must establish absence do not rely on it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from genattr.ledger.errors import CorruptionError, StorageError
from genattr.ledger.storage_common import (
    CHUNK,
    LEVEL_SHIFT,
    AppendPlan,
    Coord,
    NodeReader,
    check_blob,
    keyset_pages,
    leaf_end,
    max_level_of,
    node_id,
    ordered_nodes,
    plan_rows,
)

__all__ = ["AppendPlan", "Coord", "LogStorage", "NodeReader", "SQLiteStorage", "node_id"]

APPLICATION_ID = 0x47414C47  # "GALG": lets open() refuse files that are not genattr logs
SCHEMA_VERSION = 1


@runtime_checkable
class LogStorage(Protocol):
    """What the tree code needs from a database. All writes are append-only."""

    def close(self) -> None: ...

    def get_meta(self, key: str) -> str | None: ...

    def tree_size(self) -> int: ...

    def read_nodes(self, coords: Sequence[Coord]) -> list[bytes]:
        """Hashes of the complete subtrees at `coords`; CorruptionError if any is missing."""
        ...

    def read_leaf(self, index: int) -> bytes: ...

    def iter_leaves(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes, bytes | None]]: ...

    def iter_level(self, level: int) -> Iterator[tuple[int, bytes]]: ...

    def max_level(self) -> int: ...

    def find_leaves(self, key: bytes) -> list[int]:
        """Indices of leaves whose lookup key is `key` (a derived search index, maintained lazily)."""
        ...

    def iter_lookup(self) -> Iterator[tuple[bytes, int]]: ...

    def lookup_progress(self) -> int:
        """The search index covers leaves [0, lookup_progress())."""
        ...

    def append(self, plan: Callable[[int, NodeReader], AppendPlan]) -> tuple[int, int]:
        """Run `plan(size, read_nodes)` under the exclusive write lock, insert its rows, commit durably.

        Returns (first index, number of leaves)."""
        ...

    def add_checkpoint(self, size: int, note: str) -> None: ...

    def latest_checkpoint(self) -> tuple[int, str] | None: ...

    def checkpoint_at(self, size: int) -> str | None: ...

    def checkpoints(self) -> list[tuple[int, str]]: ...

    def add_cosignatures(self, size: int, lines: Sequence[str]) -> None: ...

    def cosignatures(self, size: int) -> list[str]: ...

    def get_witness_size(self, name: str) -> int: ...

    def set_witness_size(self, name: str, size: int) -> None: ...

    def add_owner(self, key_id: bytes, vkey: str) -> None: ...

    def owners(self) -> list[str]: ...

    def integrity_check(self) -> list[str]: ...


_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE leaves (idx INTEGER PRIMARY KEY, data BLOB NOT NULL, hash BLOB NOT NULL, lookup BLOB);
CREATE TABLE lookup (key BLOB NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (key, idx)) WITHOUT ROWID;
CREATE TABLE lookup_progress (id INTEGER PRIMARY KEY CHECK (id = 0), next_idx INTEGER NOT NULL);
INSERT INTO lookup_progress(id, next_idx) VALUES (0, 0);
CREATE TABLE nodes (id INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL);
CREATE TABLE cosignatures (size INTEGER NOT NULL, line TEXT NOT NULL, PRIMARY KEY (size, line)) WITHOUT ROWID;
CREATE TABLE owners (key_id BLOB PRIMARY KEY, vkey TEXT NOT NULL);
CREATE TABLE witness_state (name TEXT PRIMARY KEY, size INTEGER NOT NULL);
"""
_IMMUTABLE = ("meta", "leaves", "nodes", "checkpoints", "cosignatures", "owners")


def _triggers() -> list[str]:
    out = []
    for table in _IMMUTABLE:
        for op in ("UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
    return out


def _norm_sql(sql: str | None) -> str:
    return " ".join((sql or "").split())


def expected_schema() -> dict[tuple[str, str], str]:
    """{(type, name): sql} of a freshly created log (built once in memory)."""
    global _EXPECTED
    if _EXPECTED is None:
        c = sqlite3.connect(":memory:")
        try:
            for stmt in [s for s in _SCHEMA.split(";") if s.strip()] + _triggers():
                c.execute(stmt)
            _EXPECTED = {(t, n): sql for t, n, sql in c.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
        finally:
            c.close()
    return _EXPECTED


_EXPECTED: dict[tuple[str, str], str] | None = None


class SQLiteStorage:
    """`LogStorage` on one SQLite file. Thread-safe (one connection behind a lock); process-safe via SQLite locks."""

    def __init__(self, path: str | Path, *, create: bool = False, busy_timeout: float = 60.0) -> None:
        self.path = Path(path)
        if create and self.path.exists() and self.path.stat().st_size > 0:
            raise StorageError(f"{self.path} already exists; refusing to overwrite a log")
        if not create and not self.path.exists():
            raise StorageError(f"no log at {self.path} (run `genattr log init` first)")
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, timeout=busy_timeout, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise StorageError(f"cannot open {self.path}: {e}") from e
        try:
            self._setup(create)
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise CorruptionError(f"{self.path} is not a readable SQLite database: {e}") from e
        except BaseException:
            self._conn.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------------------------

    def _setup(self, create: bool) -> None:
        c = self._conn
        mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"{self.path}: could not enable WAL journaling (got {mode})")
        c.execute("PRAGMA synchronous=FULL")
        c.execute("PRAGMA foreign_keys=ON")
        c.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache: the upper tree levels stay hot
        if create:
            c.execute("BEGIN IMMEDIATE")
            try:
                if c.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise StorageError(f"{self.path} is a non-empty database; refusing to initialise it")
                # Not executescript(): it would COMMIT first; the schema must appear atomically.
                for stmt in [s for s in _SCHEMA.split(";") if s.strip()] + _triggers():
                    c.execute(stmt)
                c.execute(f"PRAGMA application_id={APPLICATION_ID}")
                c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
        else:
            app = c.execute("PRAGMA application_id").fetchone()[0]
            if app != APPLICATION_ID:
                raise CorruptionError(f"{self.path} is not a genattr log (wrong or missing application id)")
            ver = c.execute("PRAGMA user_version").fetchone()[0]
            if ver != SCHEMA_VERSION:
                raise StorageError(f"{self.path}: unsupported log schema version {ver}")
            tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            missing = {"meta", "leaves", "nodes", "checkpoints"} - tables
            if missing:
                raise CorruptionError(f"{self.path}: tables missing: {', '.join(sorted(missing))}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SQLiteStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.IntegrityError as e:
                raise CorruptionError(f"{self.path}: {what}: {e}") from e
            except sqlite3.OperationalError as e:
                raise StorageError(f"{self.path}: {what}: {e}") from e
            except sqlite3.DatabaseError as e:  # "database disk image is malformed" and friends
                raise CorruptionError(f"{self.path}: {what}: {e}") from e

    # -- meta ------------------------------------------------------------------------------------------------

    def set_meta(self, key: str, value: str) -> None:
        with self._guard("writing metadata") as c:
            c.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        with self._guard("reading metadata") as c:
            row = c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # -- tree ------------------------------------------------------------------------------------------------

    def tree_size(self) -> int:
        with self._guard("reading the tree size") as c:
            return leaf_end(c)

    def read_nodes(self, coords: Sequence[Coord]) -> list[bytes]:
        ids = [node_id(level, index) for level, index in coords]
        found: dict[int, bytes] = {}
        with self._guard("reading tree nodes") as c:
            for i in range(0, len(ids), 400):
                chunk = ids[i : i + 400]
                inner = [x for x in chunk if x >> LEVEL_SHIFT]
                leaf = [x for x in chunk if not x >> LEVEL_SHIFT]
                # One statement per proof. CAST: a tampered row may hold TEXT that is not UTF-8.
                q = (
                    f"SELECT id, CAST(hash AS BLOB) FROM nodes WHERE id IN ({','.join('?' * len(inner))}) "
                    f"UNION ALL SELECT idx, CAST(hash AS BLOB) FROM leaves WHERE idx IN ({','.join('?' * len(leaf))})"
                )
                found.update(
                    (int(k), check_blob(v, 32, f"node {k}", self.path)) for k, v in c.execute(q, [*inner, *leaf])
                )
        return ordered_nodes(coords, ids, found, self.path)

    def read_leaf(self, index: int) -> bytes:
        with self._guard("reading a leaf") as c:
            row = c.execute("SELECT CAST(data AS BLOB) FROM leaves WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise CorruptionError(f"{self.path}: leaf {index} is missing")
        return check_blob(row[0], None, f"leaf {index}", self.path)

    def iter_leaves(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes, bytes | None]]:
        stop = (1 << 63) - 1 if end is None else end

        def page(pos: int) -> list[Any]:
            with self._guard("reading leaves") as c:
                return c.execute(
                    "SELECT idx, CAST(data AS BLOB), CAST(lookup AS BLOB) FROM leaves "
                    "WHERE idx >= ? AND idx < ? ORDER BY idx LIMIT ?",
                    (pos, stop, CHUNK),
                ).fetchall()

        for idx, data, lookup in keyset_pages(page, start, lambda row: int(row[0]) + 1, stop):
            yield int(idx), check_blob(data, None, f"leaf {idx}", self.path), lookup

    def iter_level(self, level: int) -> Iterator[tuple[int, bytes]]:
        lo, hi = node_id(level, 0), (level + 1) << LEVEL_SHIFT
        table = "nodes WHERE id" if level else "leaves WHERE idx"

        def page(pos: int) -> list[Any]:
            with self._guard("reading tree nodes") as c:
                return c.execute(
                    f"SELECT rowid, CAST(hash AS BLOB) FROM {table} >= ? AND rowid < ? ORDER BY rowid LIMIT ?",
                    (pos, hi, CHUNK),
                ).fetchall()

        for nid, h in keyset_pages(page, lo, lambda row: int(row[0]) + 1):
            yield int(nid) - lo, check_blob(h, 32, f"node {nid}", self.path)

    def max_level(self) -> int:
        with self._guard("reading tree nodes") as c:
            return max_level_of(c)

    def find_leaves(self, key: bytes) -> list[int]:
        self.update_lookup()
        with self._guard("searching leaves") as c:
            return [int(r[0]) for r in c.execute("SELECT idx FROM lookup WHERE key = ? ORDER BY idx", (key,))]

    def update_lookup(self) -> int:
        """Bring the search index up to the current tree size; returns how many leaves were indexed."""
        with self._guard("updating the search index") as c:
            size = leaf_end(c)
            if int(c.execute("SELECT next_idx FROM lookup_progress").fetchone()[0]) >= size:
                return 0
            c.execute("BEGIN IMMEDIATE")
            try:
                done = int(c.execute("SELECT next_idx FROM lookup_progress").fetchone()[0])
                size = leaf_end(c)
                c.execute(
                    "INSERT OR IGNORE INTO lookup(key, idx) SELECT CAST(lookup AS BLOB), idx FROM leaves "
                    "WHERE idx >= ? AND idx < ? AND lookup IS NOT NULL ORDER BY 1, 2",
                    (done, size),
                )
                c.execute("UPDATE lookup_progress SET next_idx = ?", (max(done, size),))
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
            return max(0, size - done)

    def iter_lookup(self) -> Iterator[tuple[bytes, int]]:
        """The search index as (key, leaf index) rows, for fsck."""
        def page(pos: tuple[bytes, int]) -> list[Any]:
            with self._guard("reading the search index") as c:
                return c.execute(
                    "SELECT CAST(key AS BLOB), idx FROM lookup WHERE (key, idx) > (?, ?) ORDER BY key, idx LIMIT ?",
                    (*pos, CHUNK),
                ).fetchall()

        for key, idx in keyset_pages(page, (b"", -1), lambda row: (bytes(row[0]), int(row[1]))):
            yield bytes(key), int(idx)

    def lookup_progress(self) -> int:
        with self._guard("reading the search index") as c:
            return int(c.execute("SELECT next_idx FROM lookup_progress").fetchone()[0])

    def append(self, plan: Callable[[int, NodeReader], AppendPlan]) -> tuple[int, int]:
        with self._guard("appending") as c:
            c.execute("BEGIN IMMEDIATE")  # take the write lock *before* reading the size
            try:
                size = leaf_end(c)
                leaf_rows, node_rows = plan_rows(plan, size, self.read_nodes)
                c.executemany("INSERT INTO leaves(idx, data, hash, lookup) VALUES (?, ?, ?, ?)", leaf_rows)
                c.executemany("INSERT INTO nodes(id, hash) VALUES (?, ?)", node_rows)
                c.execute("COMMIT")  # synchronous=FULL: durable when this returns
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
        return size, len(leaf_rows)

    # -- checkpoints, cosignatures, owners, witness bookkeeping -------------------------------------------------

    def add_checkpoint(self, size: int, note: str) -> None:
        with self._guard("storing a checkpoint") as c:
            # OR IGNORE: two processes may sign the same size concurrently; the first stored note wins (both
            # sign the same text, so both are valid). It never deletes, so the append-only triggers allow it.
            c.execute("INSERT OR IGNORE INTO checkpoints(size, note) VALUES (?, ?)", (size, note))

    def latest_checkpoint(self) -> tuple[int, str] | None:
        with self._guard("reading checkpoints") as c:
            row = c.execute("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def checkpoint_at(self, size: int) -> str | None:
        with self._guard("reading checkpoints") as c:
            row = c.execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()
        return None if row is None else str(row[0])

    def checkpoints(self) -> list[tuple[int, str]]:
        with self._guard("reading checkpoints") as c:
            return [(int(s), str(n)) for s, n in c.execute("SELECT size, note FROM checkpoints ORDER BY size")]

    def add_cosignatures(self, size: int, lines: Sequence[str]) -> None:
        with self._guard("storing cosignatures") as c:
            c.executemany(
                "INSERT OR IGNORE INTO cosignatures(size, line) VALUES (?, ?)", [(size, line) for line in lines]
            )

    def cosignatures(self, size: int) -> list[str]:
        with self._guard("reading cosignatures") as c:
            return [str(r[0]) for r in c.execute("SELECT line FROM cosignatures WHERE size = ?", (size,))]

    def get_witness_size(self, name: str) -> int:
        with self._guard("reading witness state") as c:
            row = c.execute("SELECT size FROM witness_state WHERE name = ?", (name,)).fetchone()
        return 0 if row is None else int(row[0])

    def set_witness_size(self, name: str, size: int) -> None:
        with self._guard("writing witness state") as c:
            c.execute(
                "INSERT INTO witness_state(name, size) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET size = excluded.size",
                (name, size),
            )

    def add_owner(self, key_id: bytes, vkey: str) -> None:
        with self._guard("registering an owner key") as c:
            c.execute("INSERT OR IGNORE INTO owners(key_id, vkey) VALUES (?, ?)", (key_id, vkey))

    def owners(self) -> list[str]:
        with self._guard("reading owner keys") as c:
            return [str(r[0]) for r in c.execute("SELECT vkey FROM owners ORDER BY key_id")]

    def leaf_count(self, below: int | None = None) -> int:
        """Leaf rows with 0 <= idx < below (all if None); equals `below` unless rows were deleted behind the
        triggers' back. Bounded so that entries appended concurrently after `below` was read do not count."""
        with self._guard("counting leaves") as c:
            if below is None:
                return int(c.execute("SELECT count(*) FROM leaves").fetchone()[0])
            return int(c.execute("SELECT count(*) FROM leaves WHERE idx >= 0 AND idx < ?", (below,)).fetchone()[0])

    def schema_problems(self) -> list[str]:
        """Differences between the stored schema (tables, indexes, append-only triggers) and the one this
        code creates: a dropped, altered or foreign trigger or table is tampering, not corruption."""
        with self._guard("reading the schema") as c:
            got = {(t, n): sql for t, n, sql in c.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
        want = expected_schema()
        problems = [f"{t} {n} is missing" for (t, n) in sorted(set(want) - set(got))]
        problems += [f"foreign {t} {n} (not created by genattr)" for (t, n) in sorted(set(got) - set(want))]
        problems += [f"{t} {n} was altered" for (t, n) in sorted(set(want) & set(got))
                     if _norm_sql(want[(t, n)]) != _norm_sql(got[(t, n)])]
        return problems

    def integrity_check(self) -> list[str]:
        with self._guard("checking database integrity") as c:
            rows = [str(r[0]) for r in c.execute("PRAGMA integrity_check")]
        return [] if rows == ["ok"] else rows
