"""C2SP tlog-checkpoint: the signed tree head (origin, size, base64 root) as a signed note."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from genattr.ledger.errors import FormatError, SignatureError
from genattr.ledger.merkle import HASH_SIZE
from genattr.ledger.note import (
    CosignatureSigner,
    CosignatureVerifier,
    Ed25519Signer,
    Note,
    NoteSignature,
    Verifier,
    b64decode,
    b64encode,
    open_note,
    parse_note,
)

__all__ = ["Checkpoint", "Cosignature", "SignedCheckpoint", "cosign_checkpoint", "open_checkpoint", "sign_checkpoint"]

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
MAX_TREE_SIZE = (1 << 63) - 1


def parse_decimal(text: str, what: str) -> int:
    """ASCII decimal without leading zeroes (tlog-checkpoint, tlog-witness, tlog-proof all use this)."""
    if not _DECIMAL.fullmatch(text):
        raise FormatError(f"{what} must be a decimal number without leading zeroes, got {text[:40]!r}")
    value = int(text)
    if value > MAX_TREE_SIZE:
        raise FormatError(f"{what} is too large")
    return value


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise FormatError("checkpoint origin must be a non-empty single line")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise FormatError(f"checkpoint size out of range: {self.size}")
        if len(self.root) != HASH_SIZE:
            raise FormatError(f"checkpoint root must be {HASH_SIZE} bytes")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise FormatError("checkpoint extension lines must be non-empty single lines")

    def text(self) -> str:
        lines = [self.origin, str(self.size), b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse the note *text* of a checkpoint (tlog-checkpoint §"Note text")."""
        if not isinstance(text, str) or not text.endswith("\n"):
            raise FormatError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise FormatError("checkpoint needs at least three lines: origin, size, root")
        origin, size, root, *ext = lines
        if not origin:
            raise FormatError("checkpoint origin is empty")
        if any(not line for line in ext):
            raise FormatError("checkpoint extension lines must be non-empty")
        root_bytes = b64decode(root, "checkpoint root")
        if len(root_bytes) != HASH_SIZE:
            raise FormatError(f"checkpoint root must be {HASH_SIZE} bytes, got {len(root_bytes)}")
        return cls(origin, parse_decimal(size, "checkpoint size"), root_bytes, tuple(ext))


@dataclass(frozen=True)
class Cosignature:
    """A verified witness cosignature: key name, key id and the witness's claimed time."""

    name: str
    key_id: int
    timestamp: int


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose log signature has been verified, with the cosignatures that verified."""

    checkpoint: Checkpoint
    note: Note
    log_signatures: tuple[NoteSignature, ...]
    cosignatures: tuple[Cosignature, ...] = ()

    @property
    def cosigners(self) -> list[str]:
        return [c.name for c in self.cosignatures]

    def encode(self) -> str:
        return self.note.encode()


def sign_checkpoint(checkpoint: Checkpoint, signer: Ed25519Signer) -> str:
    """Sign with the log key. The key name SHOULD match the origin (tlog-checkpoint §Signatures)."""
    if signer.name != checkpoint.origin:
        raise FormatError(f"log key name {signer.name!r} does not match the origin {checkpoint.origin!r}")
    text = checkpoint.text()
    return Note(text, (NoteSignature(signer.name, signer.key_id, signer.sign(text)),)).encode()


def open_checkpoint(
    data: str | bytes | Note,
    log_keys: Iterable[Verifier],
    witness_keys: Iterable[CosignatureVerifier] = (),
    *,
    origin: str | None = None,
) -> SignedCheckpoint:
    """Parse and verify a checkpoint: a log signature must verify; cosignatures from known witnesses are checked.

    Cosignatures from a known witness that do not verify reject the note, as signed-note recommends (a bad
    signature from a key you trust is an attack or a bug, never noise).
    """
    note = data if isinstance(data, Note) else parse_note(data)
    cp = Checkpoint.parse(note.text)
    if origin is not None and cp.origin != origin:
        raise SignatureError(f"checkpoint origin {cp.origin!r} is not the expected {origin!r}")
    log_keys = [k for k in log_keys if k.name == cp.origin]
    if not log_keys:
        raise SignatureError(f"no trusted log key for origin {cp.origin!r}")
    _, log_sigs = open_note(note, log_keys)
    witness_keys = list(witness_keys)
    cosigs: list[Cosignature] = []
    if witness_keys:
        by_id = {(w.name, w.key_id): w for w in witness_keys}
        for sig in note.signatures:
            w = by_id.get((sig.name, sig.key_id))
            if w is None:
                continue
            if not w.verify(note.text, sig.signature):
                raise SignatureError(f"cosignature by witness {sig.name} does not verify")
            if not any((c.name, c.key_id) == (sig.name, sig.key_id) for c in cosigs):
                cosigs.append(Cosignature(sig.name, sig.key_id, CosignatureVerifier.timestamp(sig.signature)))
    return SignedCheckpoint(cp, note, tuple(log_sigs), tuple(cosigs))


def cosign_checkpoint(note_text: str, signer: CosignatureSigner, timestamp: int | None = None) -> NoteSignature:
    """A witness's cosignature/v1 over the checkpoint text (tlog-cosignature §"Ed25519 signed message")."""
    ts = int(time.time()) if timestamp is None else timestamp
    return NoteSignature(signer.name, signer.key_id, signer.sign(note_text, ts))


def add_signatures(note_data: str, lines: Sequence[NoteSignature]) -> str:
    note = parse_note(note_data)
    return note.with_signatures(lines).encode()
