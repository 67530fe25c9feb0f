"""The transparency log: an append-only RFC 6962 Merkle tree of generation entries, with signed checkpoints.

All tree logic lives here and in `merkle`; the database is reached only through `LogStorage`.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import itertools
import os
import queue
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from genattr.ledger import merkle
from genattr.ledger.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint, sign_checkpoint
from genattr.ledger.entry import Entry, owner_key_id
from genattr.ledger.errors import (
    CorruptionError,
    FormatError,
    LedgerError,
    ProofError,
    SignatureError,
    StorageError,
)
from genattr.ledger.note import (
    ALG_ED25519,
    Ed25519Signer,
    Ed25519Verifier,
    NoteSignature,
    Verifier,
    parse_note,
    parse_signature_line,
    verifier_from_vkey,
)
from genattr.ledger.storage import LogStorage, NodeReader, SQLiteStorage

__all__ = ["RECORD_SUFFIX", "FsckReport", "GroupCommitter", "TransparencyLog"]

#: the newest checkpoint a log signed is also kept in ``<database><RECORD_SUFFIX>`` (outside the database)
RECORD_SUFFIX = ".checkpoint"
OWNERS_REQUIRED = "owners_required"


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@dataclass
class FsckReport:
    size: int = 0
    nodes_checked: int = 0
    checkpoints_checked: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class TransparencyLog:
    """An append-only log of `Entry` records.

    Use `TransparencyLog.create` / `TransparencyLog.open` for SQLite, or pass any `LogStorage`.
    """

    def __init__(
        self,
        storage: LogStorage,
        *,
        log_key: str | Verifier | None = None,
        check: bool = True,
        verify_signatures: bool = True,
        record_path: str | Path | None = None,
    ) -> None:
        self.storage = storage
        # The newest checkpoint this log ever signed, kept *outside* the database (see `record_path`): a lost
        # WAL or a restored backup rolls the database back, but not this file.
        default = Path(f"{storage.path}{RECORD_SUFFIX}") if isinstance(getattr(storage, "path", None), Path) \
            else None
        self.record_path: Path | None = Path(record_path) if record_path is not None else default
        # Checking owner signatures on append costs one Ed25519 verification per entry (~60-200 µs), the
        # dominant cost of an append; a log fed only by its owner's own generation hook may skip it (fsck and
        # auditors still check every signature).
        self.verify_signatures = verify_signatures
        origin = storage.get_meta("origin")
        stored_vkey = storage.get_meta("log_vkey")
        if origin is None or stored_vkey is None:
            raise CorruptionError("log metadata (origin, log key) is missing")
        self.origin = origin
        stored = verifier_from_vkey(stored_vkey, alg=ALG_ED25519)
        if log_key is not None:
            pinned = log_key if isinstance(log_key, Verifier) else verifier_from_vkey(log_key, alg=ALG_ED25519)
            if pinned != stored:
                raise CorruptionError(
                    f"the log key stored in the database ({stored.vkey}) is not the trusted key ({pinned.vkey})"
                )
        self.log_key: Verifier = stored
        if self.log_key.name != self.origin:
            raise CorruptionError("the log key name does not match the log origin")
        # Set when the log was created with (or later given) owner keys: an empty owners table is then
        # tampering, never "accept any signer".
        self._owners_required = storage.get_meta(OWNERS_REQUIRED) == "1"
        self._owners: dict[bytes, Verifier] = {}
        for vkey in storage.owners():
            v = verifier_from_vkey(vkey, alg=ALG_ED25519)
            self._owners[owner_key_id(v.public_key)] = v
        if check:
            self.check_latest_checkpoint()

    # -- construction ----------------------------------------------------------------------------------------

    @classmethod
    def create(
        cls, path: str | Path, origin: str, log_key: str | Verifier, *, owners: Iterable[str | Verifier] = ()
    ) -> TransparencyLog:
        """Create a new SQLite log. `log_key` is the log's vkey; its name must be the origin."""
        key = log_key if isinstance(log_key, Verifier) else verifier_from_vkey(log_key, alg=ALG_ED25519)
        if key.alg != ALG_ED25519:
            raise FormatError("the log key must be an Ed25519 (type 0x01) key")
        if key.name != origin:
            raise FormatError(f"log key name {key.name!r} must equal the origin {origin!r} (tlog-checkpoint)")
        Checkpoint(origin, 0, merkle.EMPTY_ROOT)  # validates the origin
        # Parse every owner key *before* anything touches the disk: a typo must not leave a half-made log.
        verifiers = [o if isinstance(o, Verifier) else verifier_from_vkey(o, alg=ALG_ED25519) for o in owners]
        for v in verifiers:
            if v.alg != ALG_ED25519:
                raise FormatError(f"owner key {v.name} must be an Ed25519 (type 0x01) key")
        path = Path(path)
        if path.exists() and path.stat().st_size > 0:
            raise StorageError(f"{path} already exists; refusing to overwrite a log")
        record = Path(f"{path}{RECORD_SUFFIX}")
        if record.exists() or record.is_symlink():
            raise StorageError(f"{record} (the signed-checkpoint record of an earlier log at {path}) exists; a new "
                               "log there would look like a rollback. Move it away if you really start over")
        # Build the log under a temporary name and move it into place only when complete (temp + rename).
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".init")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            storage = SQLiteStorage(tmp, create=True)
            try:
                storage.set_meta("origin", origin)
                storage.set_meta("log_vkey", key.vkey)
                if verifiers:
                    storage.set_meta(OWNERS_REQUIRED, "1")
                for v in verifiers:
                    storage.add_owner(owner_key_id(v.public_key), v.vkey)
            finally:
                storage.close()  # the last connection: SQLite folds the WAL into the file and removes it
            _fsync_file(tmp)
            if path.exists():  # an empty placeholder file (size 0, checked above)
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)  # fails if someone created `path` meanwhile: never overwrite
                except FileExistsError:
                    raise StorageError(f"{path} already exists; refusing to overwrite a log") from None
                except OSError:  # no hard links on this file system
                    if path.exists():
                        raise StorageError(f"{path} already exists; refusing to overwrite a log") from None
                    os.replace(tmp, path)
            _fsync_dir(path.parent)
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
                leftover.unlink(missing_ok=True)
        return cls.open(path)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        log_key: str | Verifier | None = None,
        check: bool = True,
        verify_signatures: bool = True,
    ) -> TransparencyLog:
        storage = SQLiteStorage(path)
        try:
            return cls(storage, log_key=log_key, check=check, verify_signatures=verify_signatures)
        except BaseException:
            storage.close()
            raise

    def close(self) -> None:
        self.storage.close()

    def __enter__(self) -> TransparencyLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- owners ----------------------------------------------------------------------------------------------

    def add_owner(self, owner: str | Verifier) -> None:
        """Register an owner key: entries claiming its key id must carry a valid signature by it."""
        v = owner if isinstance(owner, Verifier) else verifier_from_vkey(owner, alg=ALG_ED25519)
        kid = owner_key_id(v.public_key)
        self.storage.add_owner(kid, v.vkey)
        if self.storage.get_meta(OWNERS_REQUIRED) is None:
            self.storage.set_meta(OWNERS_REQUIRED, "1")
        self._owners_required = True
        self._owners[kid] = v

    @property
    def owners(self) -> list[Verifier]:
        return list(self._owners.values())

    def _validate(self, item: Entry | bytes) -> tuple[bytes, bytes]:
        """Strictly validate one entry; returns (leaf data, output hash)."""
        if isinstance(item, Entry):
            entry: Entry | None = item
            data = item.encode()
        else:
            data = item
            entry = None
            if not Entry.well_formed(data):  # fast path; parse() gives the precise error otherwise
                entry = Entry.parse(data)
        if self._owners_required and not self._owners:
            raise CorruptionError("this log requires owner signatures but has no registered owner keys "
                                  "(the owners table was emptied?); run `genattr log fsck`")
        if self._owners and self.verify_signatures:
            entry = entry or Entry.parse(data)
            owner = self._owners.get(entry.owner_key_id)
            if owner is None:
                raise SignatureError(f"entry signed by unregistered owner key {entry.owner_key_id.hex()[:16]}…")
            entry.verify(owner)
        return bytes(data), Entry.output_hash_of(data)

    # -- appends ---------------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self.storage.tree_size()

    def append(self, entries: Sequence[Entry | bytes]) -> list[int]:
        """Append a batch in one durable transaction (group commit); returns the indices, in order."""
        if not entries:
            return []
        return self._append_rows([self._validate(e) for e in entries])

    def _append_rows(self, rows: list[tuple[bytes, bytes]]) -> list[int]:
        # Hash outside the write lock: it is the CPU-heavy part and needs no state.
        leaf_hashes = [merkle.leaf_hash(data) for data, _ in rows]

        def plan(size: int, read_nodes: NodeReader) -> tuple[list[tuple[bytes, bytes]], list]:
            coords = merkle.frontier(size)
            frontier = dict(zip(coords, read_nodes(coords), strict=True))
            return rows, merkle.new_nodes(size, frontier, leaf_hashes)

        start, count = self.storage.append(plan)
        return list(range(start, start + count))

    def append_one(self, entry: Entry | bytes) -> int:
        return self.append([entry])[0]

    # -- reads and proofs ------------------------------------------------------------------------------------

    def _reader(self) -> NodeReader:
        return self.storage.read_nodes

    def leaf(self, index: int) -> bytes:
        return self.storage.read_leaf(index)

    def entry(self, index: int) -> Entry:
        return Entry.parse(self.storage.read_leaf(index))

    def find(self, output_hash: bytes) -> list[int]:
        """Indices of entries with this output hash (via the lookup index; see `audit` for the careful path)."""
        return self.storage.find_leaves(output_hash)

    def _check_size(self, size: int | None) -> int:
        current = self.size
        if size is None:
            return current
        if not 0 <= size <= current:
            raise ProofError(f"tree size {size} is beyond the log's size {current}")
        return size

    def root(self, size: int | None = None) -> bytes:
        return merkle.tree_root(self._check_size(size), self._reader())

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return merkle.inclusion_proof(index, self._check_size(size), self._reader())

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        size2 = self._check_size(size2)
        if size1 == size2:
            return []
        return merkle.consistency_proof(size1, size2, self._reader())

    # -- checkpoints -----------------------------------------------------------------------------------------

    def open_checkpoint(self, note: str, witness_keys: Iterable[Verifier] = ()) -> SignedCheckpoint:
        return open_checkpoint(note, [self.log_key], witness_keys, origin=self.origin)  # type: ignore[arg-type]

    def latest_checkpoint(self, *, with_cosignatures: bool = True) -> str | None:
        """The newest stored checkpoint note, with every cosignature collected for it."""
        latest = self.storage.latest_checkpoint()
        if latest is None:
            return None
        size, note = latest
        return self._with_cosignatures(size, note) if with_cosignatures else note

    def checkpoint_at(self, size: int) -> str | None:
        note = self.storage.checkpoint_at(size)
        return None if note is None else self._with_cosignatures(size, note)

    def _with_cosignatures(self, size: int, note: str) -> str:
        lines = self.storage.cosignatures(size)
        if not lines:
            return note
        parsed = parse_note(note)
        return parsed.with_signatures(parse_signature_line(line.rstrip("\n")) for line in lines).encode()

    def add_cosignatures(self, size: int, signatures: Sequence[NoteSignature]) -> None:
        """Store witness cosignatures for the stored checkpoint of `size` (verify them before calling this)."""
        if self.storage.checkpoint_at(size) is None:
            raise LedgerError(f"no stored checkpoint of size {size}")
        self.storage.add_cosignatures(size, [s.line for s in signatures])

    def check_latest_checkpoint(self) -> SignedCheckpoint | None:
        """On open: the newest checkpoint must verify and match the root recomputed from stored nodes, and
        the tree must extend the newest checkpoint ever signed (the record outside the database)."""
        latest = self.storage.latest_checkpoint()
        signed: SignedCheckpoint | None = None
        if latest is not None:
            size, note = latest
            try:
                signed = self.open_checkpoint(note)
            except (FormatError, SignatureError) as e:
                raise CorruptionError(f"stored checkpoint of size {size} is invalid: {e}") from e
            cp = signed.checkpoint
            current = self.size
            if cp.size != size or cp.size > current:
                raise CorruptionError(
                    f"the log has {current} leaves but signed a checkpoint of size {cp.size}: leaves were removed"
                )
            root = merkle.tree_root(cp.size, self._reader())
            if not hmac.compare_digest(root, cp.root):
                raise CorruptionError(
                    f"stored tree does not match the signed checkpoint of size {cp.size}: the log was tampered with"
                )
            if 0 < cp.size < current:  # the newer leaves must extend the signed tree, not replace it
                proof = merkle.consistency_proof(cp.size, current, self._reader())
                try:
                    merkle.verify_consistency(
                        cp.size, current, proof, cp.root, merkle.tree_root(current, self._reader())
                    )
                except ProofError as e:  # pragma: no cover - only reachable with inconsistent node rows
                    raise CorruptionError(f"stored tree is inconsistent with checkpoint {cp.size}: {e}") from e
        problem = self._record_problem()
        if problem:
            raise CorruptionError(problem)
        return signed

    # -- the signed-checkpoint record (outside the database) ---------------------------------------------------

    def signed_record(self) -> Checkpoint | None:
        """The newest checkpoint this log signed, from its record file (None if there is none)."""
        if self.record_path is None or not (self.record_path.exists() or self.record_path.is_symlink()):
            return None
        try:
            text = self.record_path.read_bytes().decode("utf-8")
            return self.open_checkpoint(text).checkpoint
        except (OSError, UnicodeDecodeError, FormatError, SignatureError) as e:
            raise CorruptionError(f"{self.record_path}: the signed-checkpoint record is unreadable or not signed by "
                                  f"this log ({e})") from e

    def _record_problem(self) -> str | None:
        rec = self.signed_record()
        if rec is None:
            return None
        current = self.size
        if rec.size > current:
            return (f"the log was rolled back: it signed a checkpoint of size {rec.size} (recorded in "
                    f"{self.record_path}) but the database holds {current} entries (a lost -wal file, a restored "
                    "backup or deleted entries); do not append or sign until the lost entries are restored")
        if rec.size and not hmac.compare_digest(merkle.tree_root(rec.size, self._reader()), rec.root):
            return (f"the database's first {rec.size} entries differ from the checkpoint recorded in "
                    f"{self.record_path}: signing now would create a split view")
        return None

    def _write_record(self, note: str, size: int) -> None:
        """Durably remember `note` as the newest signed checkpoint (atomic replace, fsynced), never going back."""
        if self.record_path is None:
            return
        rec = self.signed_record()
        if rec is not None and rec.size >= size:
            return
        fd, tmp = tempfile.mkstemp(dir=self.record_path.parent, prefix=f".{self.record_path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(note)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.record_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.record_path.parent)

    # -- verification before signing --------------------------------------------------------------------------

    def _integrity_problems(self) -> list[str]:
        """Cheap whole-log checks: schema and triggers intact, no deleted leaf rows, owners not emptied."""
        problems: list[str] = []
        schema = getattr(self.storage, "schema_problems", None)
        if callable(schema):
            problems += [f"schema: {p}" for p in schema()]
        count = getattr(self.storage, "leaf_count", None)
        if callable(count) and count() != self.size:
            problems.append(f"leaf rows were deleted: {count()} rows for indices 0..{self.size - 1}")
        if self._owners_required and not self.storage.owners():
            problems.append("the log requires owner signatures but its owners table is empty")
        top, size = self.storage.max_level(), self.size
        if top >= (size.bit_length() if size else 0):
            problems.append(f"stray tree nodes stored at level {top} (a tree of {size} leaves has none there)")
        return problems

    def _verify_since(self, lo: int, lo_root: bytes, size: int) -> bytes:
        """Recompute the tree from the leaf data of [lo, size) on top of the checkpoint (lo, lo_root): every
        entry parses and carries a valid owner signature, every stored node created since matches, and the
        root is returned. Raises CorruptionError naming the first problem."""
        reader = self._reader()
        coords = merkle.frontier(lo)
        frontier = dict(zip(coords, reader(coords), strict=True)) if coords else {}
        if lo and not hmac.compare_digest(merkle.tree_root(lo, lambda cs: [frontier[c] for c in cs]), lo_root):
            raise CorruptionError(f"refusing to sign: the stored tree does not match checkpoint {lo}")
        hashes: list[bytes] = []
        expected = lo
        for idx, data, lookup in self.storage.iter_leaves(lo, size):
            if idx != expected:
                raise CorruptionError(f"refusing to sign: leaf {expected} is missing")
            try:
                entry = Entry.parse(data)
                if self._owners:
                    owner = self._owners.get(entry.owner_key_id)
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

    def sign_checkpoint(self, signer: Ed25519Signer, size: int | None = None) -> str:
        """Sign and store a checkpoint of committed, verified data only.

        The size and root are read back from the database, where appends are visible only after a durable
        COMMIT (WAL + synchronous=FULL), so a checkpoint can never cover data a crash could lose. Before
        signing we (1) check the schema, triggers, leaf count and owners, (2) check the tree extends both the
        newest stored checkpoint and the newest one ever signed (the record file outside the database), and
        (3) recompute the new part of the tree from the leaf data since then (entries, owner signatures, every
        node). A log MUST NOT sign two inconsistent checkpoints (tlog-checkpoint §Signatures), even if its
        database was tampered with or rolled back. Then the record is updated (fsynced) before the
        checkpoint is stored and returned.
        """
        if not isinstance(signer, Ed25519Signer) or signer.vkey != self.log_key.vkey:
            raise SignatureError("this is not the log's signing key")
        size = self._check_size(size)
        problems = self._integrity_problems()
        if problems:
            raise CorruptionError(f"refusing to sign: {problems[0]}" + (f" (and {len(problems) - 1} more)"
                                                                        if len(problems) > 1 else ""))
        previous = self.check_latest_checkpoint()  # includes the record comparison
        trusted = [c for c in (previous.checkpoint if previous else None, self.signed_record()) if c is not None]
        base = max(trusted, key=lambda c: c.size) if trusted else None
        reader = self._reader()
        if base is None or base.size <= size:
            lo, lo_root = (base.size, base.root) if base is not None else (0, merkle.EMPTY_ROOT)
            root = self._verify_since(lo, lo_root, size)
            if not hmac.compare_digest(root, merkle.tree_root(size, reader)):
                raise CorruptionError("refusing to sign: the stored tree root does not match the leaf data")
        else:  # an older size than already signed: it must be a prefix of the signed tree
            root = merkle.tree_root(size, reader)
            try:
                if size > 0:
                    merkle.verify_consistency(size, base.size, merkle.consistency_proof(size, base.size, reader),
                                              root, base.root)
            except ProofError as e:
                raise CorruptionError(f"refusing to sign: tree is inconsistent with checkpoint {base.size}") from e
        note = sign_checkpoint(Checkpoint(self.origin, size, root), signer)
        self._write_record(note, size)
        self.storage.add_checkpoint(size, note)
        stored = self.storage.checkpoint_at(size)  # an earlier signature of the same tree wins (same text)
        return stored if stored is not None else note

    # -- fsck ------------------------------------------------------------------------------------------------

    def fsck(self, *, raise_on_error: bool = True) -> FsckReport:
        """Recompute everything from the leaf data: leaf hashes, every stored node, every checkpoint root."""
        report = FsckReport()
        errors = report.errors
        errors.extend(f"sqlite integrity: {m}" for m in self.storage.integrity_check())
        size = self.size
        report.size = size
        # Level 0: leaf data -> leaf hashes, density of indices, entry format and owner signatures.
        pairs = itertools.zip_longest(self.storage.iter_leaves(), self.storage.iter_level(0))
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
                if self._owners:
                    owner = self._owners.get(entry.owner_key_id)
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
            children = self.storage.iter_level(level - 1)
            count = 0
            for idx, h in self.storage.iter_level(level):
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
        covered = self.storage.lookup_progress()
        want_sum = got_sum = want_n = got_n = 0
        for idx, _, lookup in self.storage.iter_leaves(0, min(covered, size)):
            if lookup is not None:
                want_sum += _pair_digest(lookup, idx)
                want_n += 1
        for key, idx in self.storage.iter_lookup():
            got_sum += _pair_digest(key, idx)
            got_n += 1
        if covered > size or want_n != got_n or want_sum % (1 << 256) != got_sum % (1 << 256):
            errors.append("the search index does not match the leaves")
        top = self.storage.max_level()
        if top >= (level if size else 0):
            errors.append(f"stray tree nodes stored at level {top}")
        # Checkpoints: valid signatures, sizes within the tree, roots recomputed from the verified nodes.
        if not errors:
            for cp_size, note in self.storage.checkpoints():
                report.checkpoints_checked += 1
                try:
                    cp = self.open_checkpoint(note).checkpoint
                except LedgerError as e:
                    errors.append(f"checkpoint {cp_size}: {e}")
                    continue
                if cp.size != cp_size or cp.size > size:
                    errors.append(f"checkpoint {cp_size}: covers {cp.size} leaves but the log has {size}")
                elif not hmac.compare_digest(merkle.tree_root(cp.size, self._reader()), cp.root):
                    errors.append(f"checkpoint {cp_size}: root does not match the stored tree")
        try:
            problem = self._record_problem()
        except CorruptionError as e:
            problem = str(e)
        if problem:
            errors.append(problem)
        # Tampering that leaves the data consistent: dropped/foreign triggers, deleted rows, emptied owners.
        errors.extend(self._integrity_problems())
        if errors and raise_on_error:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise CorruptionError(f"fsck failed: {errors[0]}{more}")
        return report


def _pair_digest(key: bytes, idx: int) -> int:
    # An order-independent multiset hash (sum of SHA-256 mod 2^256) lets fsck compare the index, sorted by
    # key, with the leaves, sorted by index, in one streaming pass each.
    return int.from_bytes(hashlib.sha256(key + idx.to_bytes(8, "big")).digest(), "big")


class GroupCommitter:
    """Group commit for concurrent producers in one process.

    Callers `submit` single entries from any thread; a background thread drains whatever is queued (up to
    `max_batch`) into one durable transaction and then resolves every caller's future with its index. Under
    load this amortises the fsync over the batch; when idle a lone entry commits immediately.
    """

    def __init__(self, log: TransparencyLog, *, max_batch: int = 256, max_wait: float = 0.0) -> None:
        self.log = log
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: queue.Queue[tuple[tuple[bytes, bytes], concurrent.futures.Future[int]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="ledger-group-commit", daemon=True)
        self._closed = False
        self._thread.start()

    def submit(self, entry: Entry | bytes) -> concurrent.futures.Future[int]:
        if self._closed:
            raise LedgerError("group committer is closed")
        row = self.log._validate(entry)  # reject bad entries before they can fail someone else's batch
        fut: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._queue.put((row, fut))
        return fut

    def append(self, entries: Sequence[Entry | bytes]) -> list[int]:
        futures = [self.submit(e) for e in entries]
        return [f.result() for f in futures]

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get(timeout=self.max_wait) if self.max_wait else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                indices = self.log._append_rows([row for row, _ in batch])
            except BaseException as e:  # every waiter learns about the failure
                for _, fut in batch:
                    fut.set_exception(e)
            else:
                for (_, fut), idx in zip(batch, indices, strict=True):
                    fut.set_result(idx)
            if stop:
                return

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> GroupCommitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def owner_verifier(vkey: str) -> Ed25519Verifier:
    v = verifier_from_vkey(vkey, alg=ALG_ED25519)
    assert isinstance(v, Ed25519Verifier)
    return v
