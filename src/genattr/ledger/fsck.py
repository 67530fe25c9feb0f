"""fsck: recompute a whole log from its leaf data (leaf hashes, every node, the search index, checkpoints)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from genattr.ledger import merkle
from genattr.ledger.entry import Entry
from genattr.ledger.errors import CorruptionError, LedgerError, SignatureError
from genattr.ledger.presign import integrity_problems
from genattr.ledger.record import record_problem

if TYPE_CHECKING:
    from genattr.ledger.log import TransparencyLog

__all__ = ["FsckReport", "run_fsck"]


@dataclass
class FsckReport:
    size: int = 0
    nodes_checked: int = 0
    checkpoints_checked: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def run_fsck(log: TransparencyLog, *, raise_on_error: bool = True) -> FsckReport:
    """Recompute everything from the leaf data: leaf hashes, every stored node, every checkpoint root."""
    report = FsckReport()
    errors = report.errors
    errors.extend(f"database integrity: {m}" for m in log.storage.integrity_check())
    size = log.size
    report.size = size
    # Level 0: leaf data -> leaf hashes, density of indices, entry format and owner signatures.
    pairs = itertools.zip_longest(log.storage.iter_leaves(), log.storage.iter_level(0))
    for expected, (leaf, node) in enumerate(pairs):
        if leaf is None:
            errors.append(f"level 0 has a hash for leaf {node[0]} which does not exist")
            break
        idx, data, lookup = leaf
        if idx != expected:
            errors.append(f"leaf indices are not dense: expected {expected}, found {idx}")
            break
        if node is None or node[0] != idx:
            errors.append(f"leaf {idx}: stored leaf hash is missing")
            break
        if not hmac.compare_digest(node[1], merkle.leaf_hash(data)):
            errors.append(f"leaf {idx}: stored leaf hash does not match the leaf data")
        try:
            entry = Entry.parse(data)
            if log._owners:
                owner = log._owners.get(entry.owner_key_id)
                if owner is None:
                    raise SignatureError("unregistered owner key")
                entry.verify(owner)
            if lookup != entry.output_hash:
                errors.append(f"leaf {idx}: lookup index does not match the entry")
        except LedgerError as e:
            errors.append(f"leaf {idx}: {e}")
        report.nodes_checked += 1
        if len(errors) > 100:
            break
    # Levels >= 1: every stored node must be the hash of its two (already verified) children.
    level = 1
    while size >> level and len(errors) <= 100:
        children = log.storage.iter_level(level - 1)
        count = 0
        for idx, h in log.storage.iter_level(level):
            if idx != count:
                errors.append(f"level {level}: node {count} is missing (found {idx})")
                break
            left, right = next(children, None), next(children, None)
            if left is None or right is None:
                errors.append(f"level {level}: node {idx} has no children")
                break
            if not hmac.compare_digest(h, merkle.node_hash(left[1], right[1])):
                errors.append(f"level {level}: node {idx} does not match its children")
            count += 1
            report.nodes_checked += 1
        if count != size >> level and not any(e.startswith(f"level {level}:") for e in errors):
            errors.append(f"level {level}: {count} nodes stored, {size >> level} expected")
        level += 1
    # The derived search index: exactly the (output hash, index) pairs of the leaves it claims to cover.
    covered = log.storage.lookup_progress()
    want_sum = got_sum = want_n = got_n = 0
    for idx, _, lookup in log.storage.iter_leaves(0, min(covered, size)):
        if lookup is not None:
            want_sum += _pair_digest(lookup, idx)
            want_n += 1
    for key, idx in log.storage.iter_lookup():
        got_sum += _pair_digest(key, idx)
        got_n += 1
    if covered > size or want_n != got_n or want_sum % (1 << 256) != got_sum % (1 << 256):
        errors.append("the search index does not match the leaves")
    top = log.storage.max_level()
    if top >= (level if size else 0):
        errors.append(f"stray tree nodes stored at level {top}")
    # Checkpoints: valid signatures, sizes within the tree, roots recomputed from the verified nodes.
    if not errors:
        for cp_size, note in log.storage.checkpoints():
            report.checkpoints_checked += 1
            try:
                cp = log.open_checkpoint(note).checkpoint
            except LedgerError as e:
                errors.append(f"checkpoint {cp_size}: {e}")
                continue
            if cp.size != cp_size or cp.size > size:
                errors.append(f"checkpoint {cp_size}: covers {cp.size} leaves but the log has {size}")
            elif not hmac.compare_digest(merkle.tree_root(cp.size, log._reader()), cp.root):
                errors.append(f"checkpoint {cp_size}: root does not match the stored tree")
    try:
        problem = record_problem(log)
    except CorruptionError as e:
        problem = str(e)
    if problem:
        errors.append(problem)
    # Tampering that leaves the data consistent: dropped/foreign triggers, deleted rows, emptied owners.
    errors.extend(integrity_problems(log))
    if errors and raise_on_error:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise CorruptionError(f"fsck failed: {errors[0]}{more}")
    return report


def _pair_digest(key: bytes, idx: int) -> int:
    # An order-independent multiset hash (sum of SHA-256 mod 2^256) lets fsck compare the index, sorted by
    # key, with the leaves, sorted by index, in one streaming pass each.
    return int.from_bytes(hashlib.sha256(key + idx.to_bytes(8, "big")).digest(), "big")
