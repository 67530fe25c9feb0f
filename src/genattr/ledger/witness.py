"""C2SP tlog-witness: the witness's `add-checkpoint` logic, its HTTP client, and k-of-n cosigning for logs.

The witness keeps, per log origin, only the latest checkpoint it cosigned, and cosigns a new one only with a
valid consistency proof from that state. Check-and-update is one ``BEGIN IMMEDIATE`` SQLite transaction, which
closes the race the spec describes (two requests both checked against N, the smaller one then rolling the
witness back). The HTTP layer (`genattr.ledger.witness_server`) is a thin FastAPI wrapper around `Witness`.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genattr.ledger import merkle
from genattr.ledger.checkpoint import Checkpoint, cosign_checkpoint, parse_decimal
from genattr.ledger.errors import (
    ConflictError,
    FormatError,
    ProofError,
    QuorumError,
    SignatureError,
    StorageError,
    WitnessError,
)
from genattr.ledger.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    CosignatureSigner,
    NoteSignature,
    Verifier,
    b64decode,
    b64encode,
    bounded_text,
    open_note,
    parse_note,
    parse_signature_line,
    verifier_from_vkey,
)
from genattr.ledger.policy import Policy

if TYPE_CHECKING:
    from genattr.ledger.log import TransparencyLog

__all__ = [
    "SIZE_CONTENT_TYPE",
    "Witness",
    "WitnessClient",
    "WitnessResponse",
    "collect_cosignatures",
    "format_add_checkpoint",
    "parse_add_checkpoint",
    "witness_clients_from_policy",
]

SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63  # tlog-witness: clients MUST NOT send more
MAX_REQUEST_BYTES = 1 << 16


@dataclass(frozen=True)
class WitnessResponse:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], checkpoint_note: str) -> bytes:
    lines = [f"old {old_size}", *(b64encode(h) for h in proof)]
    return ("\n".join(lines) + "\n\n" + checkpoint_note).encode("utf-8")


def parse_add_checkpoint(body: bytes | str) -> tuple[int, list[bytes], str]:
    """Parse an add-checkpoint request body: ``old N``, proof lines, an empty line, the checkpoint note."""
    body = bounded_text(body, MAX_REQUEST_BYTES, "request body")
    head, sep, note = body.partition("\n\n")
    if not sep:
        raise FormatError("request has no empty line before the checkpoint")
    lines = head.split("\n")
    if not lines[0].startswith("old "):
        raise FormatError("request must start with an 'old <size>' line")
    old = parse_decimal(lines[0][4:], "old size")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise FormatError(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for i, line in enumerate(lines[1:]):
        h = b64decode(line, f"consistency proof line {i + 1}")
        if len(h) != merkle.HASH_SIZE:
            raise FormatError(f"consistency proof line {i + 1} is not a {merkle.HASH_SIZE}-byte hash")
        proof.append(h)
    return old, proof, note


class Witness:
    """A tlog-witness for a configured set of logs, with its state in SQLite."""

    def __init__(
        self,
        db_path: str | Path,
        signer: CosignatureSigner,
        logs: Iterable[str | Verifier],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(signer, CosignatureSigner):
            raise FormatError("a witness signs with a cosignature/v1 key (signature type 0x04)")
        self.signer = signer
        self.clock = clock
        self.logs: dict[str, list[Verifier]] = {}
        for log in logs:
            key = log if isinstance(log, Verifier) else verifier_from_vkey(log, alg=ALG_ED25519)
            self.logs.setdefault(key.name, []).append(key)  # the key name is the log origin (tlog-policy)
        self.db_path = Path(db_path)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        with self._connect() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS witness_state (origin TEXT PRIMARY KEY, origin_hash TEXT NOT NULL "
                "UNIQUE, size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL)"
            )
            # Requests that were validly signed by a log but inconsistent: evidence of log misbehaviour.
            c.execute(
                "CREATE TABLE IF NOT EXISTS witness_evidence (id INTEGER PRIMARY KEY, received REAL NOT NULL, "
                "origin TEXT NOT NULL, status INTEGER NOT NULL, reason TEXT NOT NULL, request TEXT NOT NULL)"
            )

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection per thread (FastAPI runs handlers in a thread pool); separate processes (uvicorn
        # workers) are serialised by SQLite's own locks. Connections stay open: closing the last one would
        # checkpoint the WAL on every request.
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(str(self.db_path), isolation_level=None, timeout=30.0)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")  # MUST persist before responding
            except sqlite3.Error as e:
                raise StorageError(f"cannot open witness state {self.db_path}: {e}") from e
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        try:
            yield conn
        except sqlite3.Error as e:
            raise StorageError(f"witness state {self.db_path}: {e}") from e

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()

    def state(self, origin: str) -> tuple[int, bytes] | None:
        with self._connect() as c:
            row = c.execute("SELECT size, root FROM witness_state WHERE origin = ?", (origin,)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def evidence(self) -> list[tuple[str, int, str]]:
        with self._connect() as c:
            return [(str(o), int(s), str(r)) for o, s, r in c.execute(
                "SELECT origin, status, reason FROM witness_evidence ORDER BY id")]

    def add_checkpoint(self, body: bytes | str) -> WitnessResponse:
        """Handle POST add-checkpoint; returns the status code and body the spec prescribes."""
        try:
            old, proof, note_text = parse_add_checkpoint(body)
            note = parse_note(note_text)
            cp = Checkpoint.parse(note.text)
        except FormatError as e:
            return WitnessResponse(400, f"bad request: {e}\n")
        keys = self.logs.get(cp.origin)
        if not keys:
            return WitnessResponse(404, "unknown log origin\n")
        try:
            open_note(note, keys)
        except SignatureError as e:
            return WitnessResponse(403, f"{e}\n")
        if old > cp.size:
            return WitnessResponse(400, "old size is larger than the checkpoint size\n")
        if cp.size == 0 and cp.root != merkle.EMPTY_ROOT:
            return self._reject(cp.origin, 422, "a checkpoint of size 0 must have the empty-tree root", note_text)
        with self._connect() as c:
            c.execute("BEGIN IMMEDIATE")  # compare-and-swap: check and update under one write lock
            try:
                row = c.execute("SELECT size, root FROM witness_state WHERE origin = ?", (cp.origin,)).fetchone()
                cur_size, cur_root = (0, merkle.EMPTY_ROOT) if row is None else (int(row[0]), bytes(row[1]))
                if old != cur_size:
                    c.execute("ROLLBACK")
                    return WitnessResponse(409, f"{cur_size}\n", SIZE_CONTENT_TYPE)
                reason = self._check_consistency(old, proof, cur_root, cp)
                if reason is not None:
                    c.execute("ROLLBACK")
                    return self._reject(cp.origin, 422, reason, note_text)
                sig = cosign_checkpoint(note.text, self.signer, self._timestamp())
                stored = note.with_signatures([sig]).encode()
                c.execute(
                    "INSERT INTO witness_state(origin, origin_hash, size, root, note) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(origin) DO UPDATE SET size = excluded.size, root = excluded.root, "
                    "note = excluded.note",
                    (cp.origin, hashlib.sha256(cp.origin.encode()).hexdigest(), cp.size, cp.root, stored),
                )
                c.execute("COMMIT")  # persisted (synchronous=FULL) before we answer
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
        return WitnessResponse(200, sig.line)

    def _timestamp(self) -> int:
        return max(1, int(self.clock()))  # the cosignature timestamp MUST NOT be zero

    @staticmethod
    def _check_consistency(old: int, proof: list[bytes], cur_root: bytes, cp: Checkpoint) -> str | None:
        if old == 0:
            # The empty tree is consistent with everything, so no proof is allowed.
            return None if not proof else "the consistency proof must be empty when the old size is 0"
        try:
            merkle.verify_consistency(old, cp.size, proof, cur_root, cp.root)
        except ProofError as e:
            return f"consistency proof does not verify: {e}"
        return None

    def _reject(self, origin: str, status: int, reason: str, request: str) -> WitnessResponse:
        # MAY log validly signed but inconsistent checkpoints: they can be proof of log misbehaviour.
        with self._connect() as c:
            c.execute(
                "INSERT INTO witness_evidence(received, origin, status, reason, request) VALUES (?, ?, ?, ?, ?)",
                (self.clock(), origin, status, reason, request),
            )
        return WitnessResponse(status, f"{reason}\n")

    def get_checkpoint(self, origin_hash: str) -> WitnessResponse:
        """GET <monitoring prefix>/<origin hash>/checkpoint."""
        with self._connect() as c:
            row = c.execute("SELECT note FROM witness_state WHERE origin_hash = ?", (origin_hash,)).fetchone()
        if row is None:
            return WitnessResponse(404, "no checkpoint cosigned for this log\n")
        return WitnessResponse(200, str(row[0]))


class WitnessClient:
    """Talks to one witness over HTTP. `http` may be any httpx.Client (FastAPI's TestClient is one)."""

    def __init__(self, url: str, key: str | Verifier, *, http: Any = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.key = key if isinstance(key, Verifier) else verifier_from_vkey(key, alg=ALG_COSIGNATURE_V1)
        if self.key.alg != ALG_COSIGNATURE_V1:
            raise FormatError("witness keys are cosignature/v1 keys (signature type 0x04)")
        self.name = self.key.name
        if http is None:
            import httpx  # lazily: only logs that talk to witnesses need it

            http = httpx.Client(timeout=timeout)
        self.http = http

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], checkpoint_note: str) -> list[NoteSignature]:
        """Submit; returns the witness's verified cosignatures. ConflictError(.size) on 409."""
        body = format_add_checkpoint(old_size, proof, checkpoint_note)
        try:
            resp = self.http.post(
                f"{self.url}/add-checkpoint", content=body, headers={"Content-Type": "text/plain; charset=utf-8"}
            )
        except Exception as e:  # httpx.HTTPError and socket errors: the witness is unreachable
            raise WitnessError(f"witness {self.name} at {self.url} is unreachable: {e}") from e
        text = resp.text
        if resp.status_code == 409:
            ctype = resp.headers.get("content-type", "")
            if not ctype.startswith(SIZE_CONTENT_TYPE) or not text.endswith("\n"):
                raise WitnessError(f"witness {self.name}: malformed 409 response")
            err = ConflictError(f"witness {self.name} has already cosigned tree size {text.strip()}")
            err.size = parse_decimal(text[:-1], "witness size")  # type: ignore[attr-defined]
            raise err
        if resp.status_code == 422:
            # The proof did not match the witness's recorded tree: it has seen a different history (a fork or
            # a rolled-back log), which is exactly what witnesses exist to catch.
            raise ConflictError(f"witness {self.name} rejected the checkpoint as inconsistent with the tree it "
                                f"has seen (possible fork or rollback): {text.strip()[:200]}")
        if resp.status_code != 200:
            raise WitnessError(f"witness {self.name} refused the checkpoint ({resp.status_code}): {text.strip()[:200]}")
        note = parse_note(checkpoint_note)
        sigs = []
        if not text.endswith("\n") or not text.strip():
            raise WitnessError(f"witness {self.name}: malformed cosignature response")
        for line in text[:-1].split("\n"):
            try:
                sig = parse_signature_line(line)
            except FormatError as e:
                raise WitnessError(f"witness {self.name}: malformed cosignature line: {e}") from e
            if (sig.name, sig.key_id) != (self.key.name, self.key.key_id):
                continue  # MUST ignore cosignatures from unknown keys
            if not self.key.verify(note.text, sig.signature):
                raise WitnessError(f"witness {self.name} returned a cosignature that does not verify")
            sigs.append(sig)
        if not sigs:
            raise WitnessError(f"witness {self.name} returned no cosignature from its key")
        return sigs


def collect_cosignatures(
    log: TransparencyLog,
    checkpoint_note: str,
    witnesses: Sequence[WitnessClient],
    policy: Policy | int,
) -> str:
    """Ask every witness to cosign; succeed if the policy's quorum (or k witnesses) cosigned.

    The consistency proof for each witness is built from the size it last cosigned (cached in the log DB;
    a 409 tells us the true size and we retry once). A witness that has seen a *larger* tree than the one
    we are asking about means someone showed it another history, or the log was rolled back: that is an
    alarm, raised as ConflictError when the quorum cannot be met.
    """
    signed = log.open_checkpoint(checkpoint_note)
    cp = signed.checkpoint
    note = parse_note(checkpoint_note)
    gathered: list[NoteSignature] = []
    cosigned_by: list[WitnessClient] = []
    failures: list[str] = []
    conflicts: list[str] = []
    for w in witnesses:
        old = log.storage.get_witness_size(w.name)
        for _attempt in range(2):
            try:
                if old > cp.size:
                    raise ConflictError(f"witness {w.name} already cosigned size {old} > {cp.size}")
                proof = log.consistency_proof(old, cp.size) if 0 < old < cp.size else []
                sigs = w.add_checkpoint(old, proof, checkpoint_note)
            except ConflictError as e:
                size = getattr(e, "size", None)
                if size is not None and size != old and size <= cp.size and _attempt == 0:
                    old = size
                    continue
                conflicts.append(str(e))
            except WitnessError as e:
                failures.append(str(e))
            else:
                log.storage.set_witness_size(w.name, cp.size)
                gathered.extend(sigs)
                cosigned_by.append(w)
            break
    if gathered:
        log.add_cosignatures(cp.size, gathered)
    full = note.with_signatures(gathered).encode()
    if isinstance(policy, int):
        ok = len(cosigned_by) >= policy
        need = f"{policy} of {len(witnesses)} witnesses"
    else:
        try:
            policy.verify(full, origin=cp.origin)
            ok = True
        except QuorumError:
            ok = False
        need = f"the policy quorum {policy.quorum!r}"
    if not ok:
        problems = "; ".join(conflicts + failures) or "no witness cosigned"
        cls = ConflictError if conflicts else QuorumError
        raise cls(f"checkpoint {cp.size} was cosigned by {len(cosigned_by)} witness(es), short of {need}: {problems}")
    return full


def witness_clients_from_policy(policy: Policy, http: Any = None) -> list[WitnessClient]:
    """Clients for every policy witness that has a URL."""
    return [WitnessClient(w.url, w.key, http=http) for w in policy.witnesses.values() if w.url]
