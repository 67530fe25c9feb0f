"""Verification before signing: the checks `TransparencyLog.sign_checkpoint` runs on the stored tree."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from genattr.ledger import merkle
from genattr.ledger.entry import Entry
from genattr.ledger.errors import CorruptionError, LedgerError, SignatureError

if TYPE_CHECKING:
    from genattr.ledger.log import TransparencyLog

__all__ = ["integrity_problems", "verify_since"]


def integrity_problems(log: TransparencyLog) -> list[str]:
    """Cheap whole-log checks: schema and triggers intact, no deleted leaf rows, owners not emptied."""
    problems: list[str] = []
    schema = getattr(log.storage, "schema_problems", None)
    if callable(schema):
        problems += [f"schema: {p}" for p in schema()]
    count = getattr(log.storage, "leaf_count", None)
    if callable(count):
        size = log.size  # read once: another process may append meanwhile (rows >= size are not counted)
        rows = count(size)
        if rows != size:
            problems.append(f"leaf rows were deleted: {rows} rows for indices 0..{size - 1}")
    if log._owners_required and not log.storage.owners():
        problems.append("the log requires owner signatures but its owners table is empty")
    top, size = log.storage.max_level(), log.size
    if top >= (size.bit_length() if size else 0):
        problems.append(f"stray tree nodes stored at level {top} (a tree of {size} leaves has none there)")
    return problems


def verify_since(log: TransparencyLog, lo: int, lo_root: bytes, size: int) -> bytes:
    """Recompute the tree from the leaf data of [lo, size) on top of the checkpoint (lo, lo_root): every
    entry parses and carries a valid owner signature, every stored node created since matches, and the
    root is returned. Raises CorruptionError naming the first problem."""
    reader = log._reader()
    coords = merkle.frontier(lo)
    frontier = dict(zip(coords, reader(coords), strict=True)) if coords else {}
    if lo and not hmac.compare_digest(merkle.tree_root(lo, lambda cs: [frontier[c] for c in cs]), lo_root):
        raise CorruptionError(f"refusing to sign: the stored tree does not match checkpoint {lo}")
    hashes: list[bytes] = []
    expected = lo
    for idx, data, lookup in log.storage.iter_leaves(lo, size):
        if idx != expected:
            raise CorruptionError(f"refusing to sign: leaf {expected} is missing")
        try:
            entry = Entry.parse(data)
            if log._owners:
                owner = log._owners.get(entry.owner_key_id)
                if owner is None:
                    raise SignatureError(f"unregistered owner key {entry.owner_key_id.hex()[:16]}…")
                entry.verify(owner)
        except LedgerError as e:
            raise CorruptionError(f"refusing to sign: leaf {idx}: {e}") from e
        if lookup is not None and lookup != entry.output_hash:
            raise CorruptionError(f"refusing to sign: leaf {idx}: lookup key does not match the entry")
        hashes.append(merkle.leaf_hash(data))
        expected += 1
    if expected != size:
        raise CorruptionError(f"refusing to sign: leaf {expected} is missing")
    created = merkle.new_nodes(lo, frontier, hashes)
    for k in range(0, len(created), 512):
        chunk = created[k : k + 512]
        stored = reader([(lv, i) for lv, i, _ in chunk])
        for (lv, i, h), got in zip(chunk, stored, strict=True):
            if not hmac.compare_digest(h, got):
                raise CorruptionError(f"refusing to sign: stored node (level {lv}, index {i}) does not match "
                                      "the leaf data")
    cache = frontier | {(lv, i): h for lv, i, h in created}
    return merkle.tree_root(size, lambda cs: [cache[c] for c in cs])
