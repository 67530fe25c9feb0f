"""The transparency log: an append-only RFC 6962 Merkle tree of generation entries, with signed checkpoints.

All tree logic lives here and in `merkle`; the database is reached only through `LogStorage`. Split out:
`record` (the signed-checkpoint record, rollback detection), `presign` (verification before signing), `fsck`,
`group_commit`; their public names are re-exported here.
"""

from __future__ import annotations

import hmac
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from genattr.ledger import merkle, presign, record
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
from genattr.ledger.fsck import FsckReport, run_fsck
from genattr.ledger.group_commit import GroupCommitter
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
from genattr.ledger.pg_schema import is_postgres_url
from genattr.ledger.pg_storage import PostgresStorage, create_postgres_log
from genattr.ledger.record import RECORD_SUFFIX, fsync_dir, fsync_file
from genattr.ledger.storage import LogStorage, NodeReader, SQLiteStorage

__all__ = ["RECORD_SUFFIX", "FsckReport", "GroupCommitter", "TransparencyLog"]

OWNERS_REQUIRED = "owners_required"


class TransparencyLog:
    """An append-only log of `Entry` records.

    Use `TransparencyLog.create` / `TransparencyLog.open` with a SQLite path or a ``postgresql://`` URL, or
    pass any `LogStorage`.
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
        path = getattr(storage, "path", None)  # SQLite: <db>.checkpoint; PostgreSQL: its storage's record_path
        default = Path(f"{path}{RECORD_SUFFIX}") if isinstance(path, Path) else getattr(storage, "record_path", None)
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
        cls, path: str | Path, origin: str, log_key: str | Verifier, *, owners: Iterable[str | Verifier] = (),
        record_path: str | Path | None = None,
    ) -> TransparencyLog:
        """Create a new log (a SQLite file, or a ``postgresql://`` URL). `log_key` is the log's vkey; its name
        must be the origin."""
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
        if is_postgres_url(path):  # schema, metadata and owners in one server-side transaction
            meta = {"origin": origin, "log_vkey": key.vkey} | ({OWNERS_REQUIRED: "1"} if verifiers else {})
            rec = create_postgres_log(str(path), meta, [(owner_key_id(v.public_key), v.vkey) for v in verifiers],
                                      record_path)
            return cls.open(path, record_path=rec)
        path = Path(path)
        if path.exists() and path.stat().st_size > 0:
            raise StorageError(f"{path} already exists; refusing to overwrite a log")
        rec_path = Path(record_path) if record_path is not None else Path(f"{path}{RECORD_SUFFIX}")
        if rec_path.exists() or rec_path.is_symlink():
            raise StorageError(f"{rec_path} (the signed-checkpoint record of an earlier log at {path}) exists; a new "
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
            fsync_file(tmp)
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
            fsync_dir(path.parent)
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
                leftover.unlink(missing_ok=True)
        return cls.open(path, record_path=record_path)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        log_key: str | Verifier | None = None,
        check: bool = True,
        verify_signatures: bool = True,
        record_path: str | Path | None = None,
    ) -> TransparencyLog:
        """Open a SQLite log file or a PostgreSQL log (``postgresql://`` or ``postgresql+psycopg://`` URL)."""
        storage: LogStorage = PostgresStorage(str(path), record_path=record_path) if is_postgres_url(path) \
            else SQLiteStorage(path)
        try:
            return cls(storage, log_key=log_key, check=check, verify_signatures=verify_signatures,
                       record_path=record_path)
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
        problem = record.record_problem(self)
        if problem:
            raise CorruptionError(problem)
        return signed

    # -- the signed-checkpoint record (outside the database; see `record`); signing (checks in `presign`) ------

    def signed_record(self) -> Checkpoint | None:
        """The newest checkpoint this log signed, from its record file (None if there is none)."""
        return record.signed_record(self)

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
        problems = presign.integrity_problems(self)
        if problems:
            raise CorruptionError(f"refusing to sign: {problems[0]}" + (f" (and {len(problems) - 1} more)"
                                                                        if len(problems) > 1 else ""))
        previous = self.check_latest_checkpoint()  # includes the record comparison
        trusted = [c for c in (previous.checkpoint if previous else None, self.signed_record()) if c is not None]
        base = max(trusted, key=lambda c: c.size) if trusted else None
        reader = self._reader()
        if base is None or base.size <= size:
            lo, lo_root = (base.size, base.root) if base is not None else (0, merkle.EMPTY_ROOT)
            root = presign.verify_since(self, lo, lo_root, size)
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
        record.write_record(self, note, size)
        self.storage.add_checkpoint(size, note)
        stored = self.storage.checkpoint_at(size)  # an earlier signature of the same tree wins (same text)
        return stored if stored is not None else note

    # -- fsck (see `fsck`) -------------------------------------------------------------------------------------

    def fsck(self, *, raise_on_error: bool = True) -> FsckReport:
        """Recompute everything from the leaf data: leaf hashes, every stored node, every checkpoint root."""
        return run_fsck(self, raise_on_error=raise_on_error)


def owner_verifier(vkey: str) -> Ed25519Verifier:
    v = verifier_from_vkey(vkey, alg=ALG_ED25519)
    assert isinstance(v, Ed25519Verifier)
    return v
