"""`LogStorage` on PostgreSQL (psycopg 3): many generation servers appending to one log.

Choices (each is load-bearing; see docs/ledger.md, "PostgreSQL storage"):

* **Sequencing under a row lock.** An append runs in one transaction that first locks the single ``log_head``
  row (``SELECT size ... FOR UPDATE``), then reads the frontier, inserts the leaves and nodes and raises
  ``log_head.size``. Concurrent appenders on any number of connections, processes or hosts queue on that lock,
  so indices are dense, unique and never reused. Never a SEQUENCE: ``nextval`` is not transactional, so a
  rolled-back or crashed append would leave a gap forever (and a Merkle tree has no holes).
* ``synchronous_commit = on`` per session: COMMIT returns only after the WAL is flushed, so a checkpoint (which
  reads committed rows only, MVCC) never covers data a crash could lose.
* ``lock_timeout`` (60 s, like SQLite's busy timeout): a stuck appender becomes a clear error, not a hang.
* plpgsql triggers raise on UPDATE, DELETE and TRUNCATE of leaves, nodes, checkpoints, cosignatures, owners and
  meta; ``log_head.size`` may only grow. Like SQLite's they stop accidents, not the table owner: `fsck`,
  checkpoints, the record outside the database and witnesses are for that. `schema_problems` reports dropped,
  disabled, altered or foreign triggers, functions, tables, constraints, indexes, rules and row-level security.

psycopg is imported when a `PostgresStorage` is created, so `genattr.ledger` imports without it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from genattr.errors import StorageUnavailableError
from genattr.ledger.errors import CorruptionError, StorageError
from genattr.ledger.pg_schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    check_empty,
    check_log,
    ddl,
    default_record_dir,
    record_file_name,
    redact_url,
    schema_problems,
    to_conninfo,
)
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

__all__ = ["PostgresStorage", "PostgresUnavailableError", "create_postgres_log"]


class PostgresUnavailableError(StorageError, StorageUnavailableError):
    """The PostgreSQL server cannot be reached, the connection was lost, or a lock was not granted in time."""


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class PostgresStorage:
    """`LogStorage` in one PostgreSQL schema (the first of the URL's ``search_path``, usually ``public``).

    Thread-safe (one connection behind a lock); any number of processes and hosts may append concurrently.
    ``record_path`` is where the log's signed-checkpoint record lives (see `default_record_dir`)."""

    def __init__(self, url: str, *, create: bool = False, record_path: str | Path | None = None,
                 lock_timeout: float = 60.0, connect_timeout: int = 10) -> None:
        self.url = redact_url(url)  # for messages: never print a password
        try:
            import psycopg
        except ImportError as e:  # pragma: no cover - psycopg is a dependency
            raise StorageError("PostgreSQL logs need psycopg 3 (pip install 'psycopg[binary]')") from e
        self._pg = psycopg
        self._lock = threading.RLock()
        conninfo = to_conninfo(url)
        try:
            params = psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.Error as e:
            raise StorageError(f"{self.url} is not a valid PostgreSQL URL: {_first_line(e)}") from e
        extra: dict[str, Any] = {} if "connect_timeout" in params else {"connect_timeout": connect_timeout}
        try:
            self._conn = psycopg.connect(conninfo, autocommit=True, **extra)
        except psycopg.Error as e:
            raise PostgresUnavailableError(f"cannot connect to the PostgreSQL log at {self.url}: "
                                           f"{_first_line(e)}") from e
        try:
            with self._guard("opening the log") as c:
                c.execute("SET synchronous_commit = on")
                c.execute(f"SET lock_timeout = {max(1, int(lock_timeout * 1000))}")
                schema = c.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
                if schema is None:
                    raise StorageError(f"{self.url}: no schema to hold the log (no schema in its search_path exists)")
                self.schema = str(schema)
                if create:
                    check_empty(c, self.url, self.schema)
                else:
                    check_log(c, self.url, self.schema)
            self.record_path = Path(record_path) if record_path is not None else self._default_record_path()
        except BaseException:
            self._conn.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------------------------

    def _default_record_path(self) -> Path:
        info = self._conn.info
        d = default_record_dir()
        with contextlib.suppress(OSError):  # a read-only home only matters when signing (which says so)
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return d / record_file_name(info.host, info.port, info.dbname, self.schema)

    def initialize(self, meta: Mapping[str, str], owners: Sequence[tuple[bytes, str]] = ()) -> None:
        """Create the schema, metadata and owner keys in one transaction: a failed init leaves nothing."""
        pg = self._pg
        try:
            with self._guard("creating the log") as c, c.transaction():
                check_empty(c, self.url, self.schema)
                for stmt in ddl():
                    c.execute(stmt)
                c.execute("INSERT INTO log_head(id, application_id, schema_version, size) VALUES (0, %s, %s, 0)",
                          (APPLICATION_ID, SCHEMA_VERSION))
                c.execute("INSERT INTO lookup_progress(id, next_idx) VALUES (0, 0)")
                for key, value in meta.items():
                    c.execute("INSERT INTO meta(key, value) VALUES (%s, %s)", (key, value))
                for key_id, vkey in owners:
                    c.execute("INSERT INTO owners(key_id, vkey) VALUES (%s, %s)", (key_id, vkey))
        except CorruptionError as e:  # a concurrent init created the same tables first (a catalog unique index)
            cause = e.__cause__
            if isinstance(cause, pg.errors.UniqueViolation) and \
                    str(getattr(cause.diag, "constraint_name", "") or "").startswith("pg_"):
                raise StorageError(f"{self.url}: a log was created there concurrently; refusing to overwrite it") \
                    from e
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PostgresStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[Any]:
        pg = self._pg
        with self._lock:
            try:
                yield self._conn
            except pg.errors.IntegrityError as e:  # a trigger, a duplicate index: tampering, not bad luck
                raise CorruptionError(f"{self.url}: {what}: {_first_line(e)}") from e
            except pg.errors.DuplicateTable as e:
                raise StorageError(f"{self.url}: {what}: {_first_line(e)}") from e
            except pg.OperationalError as e:  # server down, connection lost, lock_timeout
                raise PostgresUnavailableError(f"{self.url}: {what}: {_first_line(e)}") from e
            except pg.Error as e:
                raise StorageError(f"{self.url}: {what}: {_first_line(e)}") from e

    def _blob(self, value: object, size: int | None, what: str) -> bytes:
        return check_blob(value, size, what, self.url)  # bytea decodes to bytes: else a column was retyped

    # -- meta ------------------------------------------------------------------------------------------------

    def set_meta(self, key: str, value: str) -> None:
        with self._guard("writing metadata") as c:
            c.execute("INSERT INTO meta(key, value) VALUES (%s, %s)", (key, value))

    def get_meta(self, key: str) -> str | None:
        with self._guard("reading metadata") as c:
            row = c.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    # -- tree ------------------------------------------------------------------------------------------------

    def tree_size(self) -> int:
        with self._guard("reading the tree size") as c:
            return leaf_end(c)

    def read_nodes(self, coords: Sequence[Coord]) -> list[bytes]:
        ids = [node_id(level, index) for level, index in coords]
        inner = [x for x in ids if x >> LEVEL_SHIFT]
        leaf = [x for x in ids if not x >> LEVEL_SHIFT]
        with self._guard("reading tree nodes") as c:  # one statement per proof
            rows = c.execute(
                "SELECT id, hash FROM nodes WHERE id = ANY(%s::bigint[]) "
                "UNION ALL SELECT idx, hash FROM leaves WHERE idx = ANY(%s::bigint[])", (inner, leaf)).fetchall()
        found = {int(k): self._blob(v, 32, f"node {k}") for k, v in rows}
        return ordered_nodes(coords, ids, found, self.url)

    def read_leaf(self, index: int) -> bytes:
        with self._guard("reading a leaf") as c:
            row = c.execute("SELECT data FROM leaves WHERE idx = %s", (index,)).fetchone()
        if row is None:
            raise CorruptionError(f"{self.url}: leaf {index} is missing")
        return self._blob(row[0], None, f"leaf {index}")

    def iter_leaves(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes, bytes | None]]:
        stop = (1 << 63) - 1 if end is None else end

        def page(pos: int) -> list[Any]:
            with self._guard("reading leaves") as c:
                return c.execute("SELECT idx, data, lookup FROM leaves WHERE idx >= %s AND idx < %s ORDER BY idx "
                                 "LIMIT %s", (pos, stop, CHUNK)).fetchall()

        for idx, data, lookup in keyset_pages(page, start, lambda row: int(row[0]) + 1, stop):
            yield int(idx), self._blob(data, None, f"leaf {idx}"), None if lookup is None else bytes(lookup)

    def iter_level(self, level: int) -> Iterator[tuple[int, bytes]]:
        lo, hi = node_id(level, 0), (level + 1) << LEVEL_SHIFT
        sql = ("SELECT id, hash FROM nodes WHERE id >= %s AND id < %s ORDER BY id LIMIT %s" if level else
               "SELECT idx, hash FROM leaves WHERE idx >= %s AND idx < %s ORDER BY idx LIMIT %s")

        def page(pos: int) -> list[Any]:
            with self._guard("reading tree nodes") as c:
                return c.execute(sql, (pos, hi, CHUNK)).fetchall()

        for nid, h in keyset_pages(page, lo, lambda row: int(row[0]) + 1):
            yield int(nid) - lo, self._blob(h, 32, f"node {nid}")

    def max_level(self) -> int:
        with self._guard("reading tree nodes") as c:
            return max_level_of(c)

    def find_leaves(self, key: bytes) -> list[int]:
        self.update_lookup()
        with self._guard("searching leaves") as c:
            return [int(r[0]) for r in c.execute("SELECT idx FROM lookup WHERE key = %s ORDER BY idx", (key,))]

    def _progress(self, c: Any, lock: str = "") -> int:
        row = c.execute(f"SELECT next_idx FROM lookup_progress WHERE id = 0 {lock}").fetchone()
        if row is None:
            raise CorruptionError(f"{self.url}: the lookup_progress row is missing")
        return int(row[0])

    def update_lookup(self) -> int:
        """Bring the search index up to the current tree size; returns how many leaves were indexed."""
        with self._guard("updating the search index") as c:
            if self._progress(c) >= leaf_end(c):
                return 0
            with c.transaction():
                done = self._progress(c, "FOR UPDATE")  # one indexer at a time
                size = leaf_end(c)
                c.execute("INSERT INTO lookup(key, idx) SELECT lookup, idx FROM leaves WHERE idx >= %s AND idx < %s "
                          "AND lookup IS NOT NULL ON CONFLICT DO NOTHING", (done, size))
                c.execute("UPDATE lookup_progress SET next_idx = %s WHERE id = 0", (max(done, size),))
            return max(0, size - done)

    def iter_lookup(self) -> Iterator[tuple[bytes, int]]:
        """The search index as (key, leaf index) rows, for fsck."""
        def page(pos: tuple[bytes, int]) -> list[Any]:
            with self._guard("reading the search index") as c:
                return c.execute("SELECT key, idx FROM lookup WHERE (key, idx) > (%s, %s) ORDER BY key, idx LIMIT %s",
                                 (*pos, CHUNK)).fetchall()

        for key, idx in keyset_pages(page, (b"", -1), lambda row: (bytes(row[0]), int(row[1]))):
            yield bytes(key), int(idx)

    def lookup_progress(self) -> int:
        with self._guard("reading the search index") as c:
            return self._progress(c)

    def append(self, plan: Callable[[int, NodeReader], AppendPlan]) -> tuple[int, int]:
        with self._guard("appending") as c, c.transaction():
            # The sequencer: every appender queues here; the size is read only once the lock is held.
            row = c.execute("SELECT size FROM log_head WHERE id = 0 FOR UPDATE").fetchone()
            if row is None:
                raise CorruptionError(f"{self.url}: the log_head row is missing")
            size = int(row[0])
            end = leaf_end(c)
            if end != size:
                raise CorruptionError(f"{self.url}: log_head says {size} entries but the leaves end at {end}: rows "
                                      "were added or removed behind the log's back; run `genattr log fsck`")
            leaf_rows, node_rows = plan_rows(plan, size, self.read_nodes)
            with c.cursor() as cur:
                with cur.copy("COPY leaves (idx, data, hash, lookup) FROM STDIN") as cp:
                    for idx, data, h, key in leaf_rows:
                        cp.write_row((idx, bytes(data), h, key))
                with cur.copy("COPY nodes (id, hash) FROM STDIN") as cp:
                    for row in node_rows:
                        cp.write_row(row)
            c.execute("UPDATE log_head SET size = %s WHERE id = 0", (size + len(leaf_rows),))
        # COMMIT (synchronous_commit = on) has returned: durable from here on.
        return size, len(leaf_rows)

    # -- checkpoints, cosignatures, owners, witness bookkeeping -------------------------------------------------

    def add_checkpoint(self, size: int, note: str) -> None:
        with self._guard("storing a checkpoint") as c:
            # DO NOTHING: two signers of the same size sign the same text; the first stored note wins.
            c.execute("INSERT INTO checkpoints(size, note) VALUES (%s, %s) ON CONFLICT DO NOTHING", (size, note))

    def latest_checkpoint(self) -> tuple[int, str] | None:
        with self._guard("reading checkpoints") as c:
            row = c.execute("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def checkpoint_at(self, size: int) -> str | None:
        with self._guard("reading checkpoints") as c:
            row = c.execute("SELECT note FROM checkpoints WHERE size = %s", (size,)).fetchone()
        return None if row is None else str(row[0])

    def checkpoints(self) -> list[tuple[int, str]]:
        with self._guard("reading checkpoints") as c:
            return [(int(s), str(n)) for s, n in c.execute("SELECT size, note FROM checkpoints ORDER BY size")]

    def add_cosignatures(self, size: int, lines: Sequence[str]) -> None:
        with self._guard("storing cosignatures") as c, c.transaction(), c.cursor() as cur:
            cur.executemany("INSERT INTO cosignatures(size, line) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                            [(size, line) for line in lines])

    def cosignatures(self, size: int) -> list[str]:
        with self._guard("reading cosignatures") as c:
            return [str(r[0]) for r in c.execute("SELECT line FROM cosignatures WHERE size = %s", (size,))]

    def get_witness_size(self, name: str) -> int:
        with self._guard("reading witness state") as c:
            row = c.execute("SELECT size FROM witness_state WHERE name = %s", (name,)).fetchone()
        return 0 if row is None else int(row[0])

    def set_witness_size(self, name: str, size: int) -> None:
        with self._guard("writing witness state") as c:
            c.execute("INSERT INTO witness_state(name, size) VALUES (%s, %s) "
                      "ON CONFLICT (name) DO UPDATE SET size = excluded.size", (name, size))

    def add_owner(self, key_id: bytes, vkey: str) -> None:
        with self._guard("registering an owner key") as c:
            c.execute("INSERT INTO owners(key_id, vkey) VALUES (%s, %s) ON CONFLICT DO NOTHING", (key_id, vkey))

    def owners(self) -> list[str]:
        with self._guard("reading owner keys") as c:
            return [str(r[0]) for r in c.execute("SELECT vkey FROM owners ORDER BY key_id")]

    def leaf_count(self, below: int | None = None) -> int:
        """Leaf rows with 0 <= idx < below (all rows if None); equals `below` unless rows were deleted."""
        with self._guard("counting leaves") as c:
            if below is None:
                return int(c.execute("SELECT count(*) FROM leaves").fetchone()[0])
            return int(c.execute("SELECT count(*) FROM leaves WHERE idx >= 0 AND idx < %s", (below,)).fetchone()[0])

    def schema_problems(self) -> list[str]:
        """Differences between the stored catalog and the one this code creates (see `pg_schema`)."""
        with self._guard("reading the schema") as c:
            return schema_problems(c)

    def integrity_check(self) -> list[str]:
        """What PostgreSQL-side checks can say without recomputing hashes (fsck does that): the sequencer row
        agrees with the leaves, and the server is configured to make commits durable."""
        problems = []
        with self._guard("checking database integrity") as c:
            if str(c.execute("SHOW fsync").fetchone()[0]).lower() != "on":
                problems.append("the server runs with fsync=off: committed entries may not survive a crash")
            n, head, end = c.execute(  # one statement: one snapshot, so concurrent appends cannot skew it
                "SELECT (SELECT count(*) FROM log_head), (SELECT size FROM log_head WHERE id = 0), "
                "(SELECT COALESCE(MAX(idx) + 1, 0) FROM leaves)").fetchone()
        if n != 1:
            problems.append(f"log_head holds {n} rows, expected 1")
        elif head != end:
            problems.append(f"log_head says {head} entries but the leaves end at {end}")
        return problems


def create_postgres_log(url: str, meta: Mapping[str, str], owners: Sequence[tuple[bytes, str]],
                        record_path: str | Path | None = None) -> Path:
    """Create a log in the (empty) schema `url` points at; returns its record path. Refuses where the
    signed-checkpoint record of an earlier log at the same place still lies (a new log would look like a
    rollback), as `TransparencyLog.create` does for SQLite."""
    storage = PostgresStorage(url, create=True, record_path=record_path)
    try:
        rec = storage.record_path
        if rec.exists() or rec.is_symlink():
            raise StorageError(f"{rec} (the signed-checkpoint record of an earlier log at {storage.url}) exists; a "
                               "new log there would look like a rollback. Move it away if you really start over")
        storage.initialize(meta, owners)
    finally:
        storage.close()
    return rec
