"""What every `LogStorage` implementation shares, whatever its database (SQLite in `genattr.ledger.storage`,
PostgreSQL in `genattr.ledger.pg_storage`): the append-plan and row types, node ids, and the backend-independent
steps of the storage methods.

* `plan_rows`: run an append plan inside the caller's write transaction, check that its level-0 hashes are
  exactly the new leaves', and turn it into leaf rows (idx, data, hash, lookup key) and node rows (id, hash).
* `check_blob` / `ordered_nodes`: values read back are checked (type, length, presence) instead of trusted.
* `keyset_pages`: a scan page by page, each page read under its own short lock.
* `leaf_end` / `max_level_of`: the two parameter-free queries both SQL dialects spell the same way.

The SQL itself stays with each backend (placeholders, conflict clauses and casts differ).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from genattr.ledger.errors import CorruptionError, StorageError

__all__ = ["CHUNK", "LEVEL_SHIFT", "AppendPlan", "Coord", "NodeReader", "check_blob", "keyset_pages", "leaf_end",
           "max_level_of", "node_id", "ordered_nodes", "plan_rows"]

Coord = tuple[int, int]
NodeReader = Callable[[Sequence[Coord]], list[bytes]]
#: (leaves as (data, lookup key), nodes as (level, index, hash))
AppendPlan = tuple[Sequence[tuple[bytes, bytes | None]], Sequence[tuple[int, int, bytes]]]

LEVEL_SHIFT = 56  # node id = level << LEVEL_SHIFT | index
_MAX_LEVEL = 63
CHUNK = 4096  # rows per page of a keyset-paginated scan

_Row = TypeVar("_Row")
_Pos = TypeVar("_Pos")


def check_blob(value: object, size: int | None, what: str, where: object) -> bytes:
    """`value` if it is a blob (of `size` bytes, if given), else CorruptionError naming `where` (path or URL)."""
    # Values come from a database an attacker may have edited: check type and length instead of trusting them.
    if not isinstance(value, bytes):
        raise CorruptionError(f"{where}: {what} is not a blob (found {type(value).__name__})")
    if size is not None and len(value) != size:
        raise CorruptionError(f"{where}: {what} has {len(value)} bytes, expected {size}")
    return value


def node_id(level: int, index: int) -> int:
    if not 0 <= level <= _MAX_LEVEL or not 0 <= index < 1 << LEVEL_SHIFT:
        raise ValueError(f"node ({level}, {index}) out of range")
    return (level << LEVEL_SHIFT) | index


def ordered_nodes(coords: Sequence[Coord], ids: Sequence[int], found: dict[int, bytes], where: object) -> list[bytes]:
    """The hashes `found` (by node id) in the order of `coords`; CorruptionError naming the first missing one."""
    out = []
    for (level, index), nid in zip(coords, ids, strict=True):
        h = found.get(nid)
        if h is None:
            raise CorruptionError(f"{where}: tree node (level {level}, index {index}) is missing")
        out.append(h)
    return out


def plan_rows(plan: Callable[[int, NodeReader], AppendPlan], size: int, read_nodes: NodeReader
              ) -> tuple[list[tuple[int, bytes, bytes, bytes | None]], list[tuple[int, bytes]]]:
    """Run an append plan at tree size `size` (inside the caller's exclusive write transaction) and check it.

    Returns the rows to insert: leaves as (idx, data, leaf hash, lookup key) and inner nodes as (node id, hash).
    StorageError if the plan's level-0 hashes are not exactly those of the new leaves."""
    leaves, nodes = plan(size, read_nodes)
    leaf_hashes = {i: h for lv, i, h in nodes if lv == 0}
    if sorted(leaf_hashes) != list(range(size, size + len(leaves))):
        raise StorageError("append plan: leaf hashes do not match the new leaves")
    leaf_rows = [(size + i, data, leaf_hashes[size + i], key) for i, (data, key) in enumerate(leaves)]
    return leaf_rows, [(node_id(lv, i), h) for lv, i, h in nodes if lv]


def keyset_pages(fetch: Callable[[_Pos], Sequence[_Row]], pos: _Pos, after: Callable[[_Row], _Pos],
                 stop: _Pos | None = None) -> Iterator[_Row]:
    """The rows of a keyset-paginated scan: page after page of `fetch(pos)` (rows in key order, starting at
    `pos`), the next page starting at `after(last row)`, until a page is empty (or `pos` reaches `stop`).
    Each page is read by its own `fetch` call, so no lock or transaction is held while the caller consumes rows."""
    while stop is None or pos < stop:
        rows = fetch(pos)
        if not rows:
            return
        yield from rows
        pos = after(rows[-1])


def leaf_end(c: Any) -> int:
    """One past the highest leaf index (the tree size, unless rows were removed) on connection `c`."""
    return int(c.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM leaves").fetchone()[0])


def max_level_of(c: Any) -> int:
    """The highest stored node level on connection `c`: 0 with leaves only, −1 when empty."""
    top = c.execute("SELECT MAX(id) FROM nodes").fetchone()[0]
    if top is None:
        return 0 if c.execute("SELECT 1 FROM leaves LIMIT 1").fetchone() else -1
    return int(top) >> LEVEL_SHIFT
