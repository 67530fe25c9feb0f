"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, plus tlog-cosignature/v1 cosigner keys.

Kept in one module (over 400 lines): the signed-note grammar, its key formats and the cosignature variant are
one spec and share their parsers.

Key text formats:

* verifier key (vkey, signed-note §"Verifier keys"): ``<name>+<hex key id>+<base64(type || public key)>``
* signer key (skey, the format of Go's golang.org/x/mod/sumdb/note, which the spec leaves open):
  ``PRIVATE+KEY+<name>+<hex key id>+<base64(type || 32-byte Ed25519 seed)>``

Signature types used here: 0x01 (Ed25519 note signatures, for the log's checkpoints and for owner keys) and
0x04 (timestamped Ed25519 cosignatures, c2sp.org/tlog-cosignature, for witnesses).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from genattr.ledger.errors import FormatError, SignatureError

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Ed25519Signer",
    "Ed25519Verifier",
    "Note",
    "NoteSignature",
    "Signer",
    "Verifier",
    "b64decode",
    "b64encode",
    "cosignature_message",
    "generate_signer",
    "key_id",
    "open_note",
    "parse_note",
    "sign_note",
    "signer_from_skey",
    "verifier_from_vkey",
]

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
EM_DASH = "\u2014"
#: signed-note: verifiers MUST accept at least 16 signatures; we cap notes at 64 signatures / 1 MiB so a hostile
#: witness request cannot make us do unbounded work.
MAX_SIGNATURES = 64
MAX_NOTE_BYTES = 1 << 20
_HEX8 = re.compile(r"[0-9a-f]{8}")


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, what: str = "base64") -> bytes:
    """Strict standard base64 (RFC 4648 §4): padding required, no whitespace, canonical encoding only."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise FormatError(f"{what}: invalid base64") from e
    if base64.b64encode(raw).decode("ascii") != text:
        raise FormatError(f"{what}: non-canonical base64")
    return raw


def _check_key_name(name: str) -> str:
    # signed-note §Format: non-empty, no Unicode spaces, no '+'.
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise FormatError(f"invalid key name {name!r}: must be non-empty, without spaces or '+'")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise FormatError(f"invalid key name {name!r}: control characters")
    return name


def key_id(name: str, alg: int, public_key: bytes) -> int:
    """SHA-256(key name || 0x0A || signature type || public key)[:4] as a big-endian uint32 (signed-note)."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def cosignature_message(note_text: str, timestamp: int) -> bytes:
    """The message an Ed25519 cosigner signs (tlog-cosignature §"Ed25519 signed message")."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + note_text.encode("utf-8")


# --------------------------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------------------------


class Verifier:
    """A trusted public key: name, key id, and a verify() over the note text."""

    alg: int = ALG_ED25519

    def __init__(self, name: str, public_key: bytes) -> None:
        self.name = _check_key_name(name)
        if len(public_key) != 32:
            raise FormatError(f"Ed25519 public key must be 32 bytes, got {len(public_key)}")
        self.public_key = bytes(public_key)
        try:
            self._key = Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError as e:  # pragma: no cover - cryptography accepts any 32 bytes today
            raise FormatError(f"invalid Ed25519 public key for {name}") from e
        self.key_id = key_id(name, self.alg, self.public_key)

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{b64encode(bytes([self.alg]) + self.public_key)}"

    def verify(self, text: str, sig: bytes) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def verify_bytes(self, message: bytes, sig: bytes) -> bool:
        """Plain Ed25519 verification of `message` (used for owner signatures on entries)."""
        if len(sig) != 64:
            return False
        try:
            self._key.verify(sig, message)
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verifier) and self.vkey == other.vkey

    def __hash__(self) -> int:
        return hash(self.vkey)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey!r})"


class Ed25519Verifier(Verifier):
    """Signature type 0x01: Ed25519 over the note text (signed-note §"Ed25519 signatures")."""

    alg = ALG_ED25519

    def verify(self, text: str, sig: bytes) -> bool:
        return self.verify_bytes(text.encode("utf-8"), sig)


class CosignatureVerifier(Verifier):
    """Signature type 0x04: timestamped Ed25519 cosignature (tlog-cosignature, `cosignature/v1`)."""

    alg = ALG_COSIGNATURE_V1

    def verify(self, text: str, sig: bytes) -> bool:
        if len(sig) != 72:
            return False
        (timestamp,) = struct.unpack(">Q", sig[:8])
        if timestamp >= 1 << 63:  # the spec caps timestamps at 2^63 - 1
            return False
        try:
            self._key.verify(sig[8:], cosignature_message(text, timestamp))
        except InvalidSignature:
            return False
        return True

    @staticmethod
    def timestamp(sig: bytes) -> int:
        return int(struct.unpack(">Q", sig[:8])[0])


class Signer:
    """A private key that produces note signatures (without the 4-byte key id prefix)."""

    alg: int = ALG_ED25519
    verifier_class: type[Verifier] = Ed25519Verifier

    def __init__(self, name: str, seed: bytes) -> None:
        if len(seed) != 32:
            raise FormatError(f"Ed25519 private key must be 32 bytes, got {len(seed)}")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self._seed = bytes(seed)
        public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._verifier = self.verifier_class(name, public)
        self.name = self._verifier.name
        self.key_id = self._verifier.key_id

    @property
    def verifier(self) -> Verifier:
        return self._verifier

    @property
    def vkey(self) -> str:
        return self._verifier.vkey

    @property
    def skey(self) -> str:
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{b64encode(bytes([self.alg]) + self._seed)}"

    def sign_bytes(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:  # never print the private key
        return f"{type(self).__name__}({self.vkey!r})"


class Ed25519Signer(Signer):
    alg = ALG_ED25519
    verifier_class = Ed25519Verifier

    def sign(self, text: str) -> bytes:
        return self._key.sign(text.encode("utf-8"))


class CosignatureSigner(Signer):
    alg = ALG_COSIGNATURE_V1
    verifier_class = CosignatureVerifier

    def sign(self, text: str, timestamp: int) -> bytes:
        if not 0 < timestamp < 1 << 63:
            raise FormatError(f"cosignature timestamp out of range: {timestamp}")
        return struct.pack(">Q", timestamp) + self._key.sign(cosignature_message(text, timestamp))


_VERIFIERS: dict[int, type[Verifier]] = {ALG_ED25519: Ed25519Verifier, ALG_COSIGNATURE_V1: CosignatureVerifier}
_SIGNERS: dict[int, type[Signer]] = {ALG_ED25519: Ed25519Signer, ALG_COSIGNATURE_V1: CosignatureSigner}


def verifier_from_vkey(vkey: str, *, alg: int | None = None) -> Verifier:
    """Parse ``name+hexid+base64(type||key)``; the key id must be the one the spec derives from the key."""
    if not isinstance(vkey, str):
        raise FormatError("vkey must be a string")
    vkey = vkey.strip()
    parts = vkey.split("+", 2)  # base64 may itself contain '+', names may not
    if len(parts) != 3:
        raise FormatError("vkey must look like <name>+<8 hex digits>+<base64 key>")
    name, hexid, blob = parts
    _check_key_name(name)
    if not _HEX8.fullmatch(hexid):
        raise FormatError(f"vkey {name}: key id must be 8 lowercase hex digits")
    return _key_from_text("vkey", name, hexid, blob, _VERIFIERS, alg)


def _key_from_text(kind: str, name: str, hexid: str, blob: str, table: dict, alg: int | None):
    """Shared tail of vkey/skey parsing (signed-note §keys): base64(type‖32 bytes), known type, id match."""
    raw = b64decode(blob, f"{kind} {name}")
    if len(raw) != 33:
        raise FormatError(f"{kind} {name}: expected a type byte and 32 key bytes, got {len(raw)} bytes")
    cls = table.get(raw[0])
    if cls is None:
        raise FormatError(f"{kind} {name}: unsupported signature type 0x{raw[0]:02x}")
    if alg is not None and raw[0] != alg:
        raise FormatError(f"{kind} {name}: signature type 0x{raw[0]:02x}, expected 0x{alg:02x}")
    key = cls(name, raw[1:])
    if key.key_id != int(hexid, 16):
        raise FormatError(f"{kind} {name}: key id {hexid} does not match the key (expected {key.key_id:08x})")
    return key


def signer_from_skey(skey: str, *, alg: int | None = None) -> Signer:
    """Parse ``PRIVATE+KEY+name+hexid+base64(type||seed)``."""
    if not isinstance(skey, str):
        raise FormatError("skey must be a string")
    parts = skey.strip().split("+", 4)
    if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
        raise FormatError("skey must look like PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>")
    _, _, name, hexid, blob = parts
    _check_key_name(name)
    if not _HEX8.fullmatch(hexid):
        raise FormatError(f"skey {name}: key id must be 8 lowercase hex digits")
    return _key_from_text("skey", name, hexid, blob, _SIGNERS, alg)


def generate_signer(name: str, alg: int = ALG_ED25519) -> Signer:
    """A fresh random key (os.urandom via OpenSSL)."""
    cls = _SIGNERS.get(alg)
    if cls is None:
        raise FormatError(f"unsupported signature type 0x{alg:02x}")
    seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return cls(name, seed)


# --------------------------------------------------------------------------------------------------------------
# Notes
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: int
    signature: bytes  # without the key id prefix

    @property
    def line(self) -> str:
        return f"{EM_DASH} {self.name} {b64encode(self.key_id.to_bytes(4, 'big') + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> str:
        return self.text + "\n" + "".join(s.line for s in self.signatures)

    def with_signatures(self, extra: Iterable[NoteSignature]) -> Note:
        """Add signatures, dropping exact duplicates (same name, id and bytes)."""
        sigs = list(self.signatures)
        for s in extra:
            if s not in sigs:
                sigs.append(s)
        return Note(self.text, tuple(sigs))


def _check_text_chars(data: str) -> None:
    for ch in data:
        o = ord(ch)
        if (o < 0x20 and ch != "\n") or o == 0x7F:
            raise FormatError(f"note contains control character U+{o:04X}")


def parse_signature_line(line: str) -> NoteSignature:
    """Parse one ``— <name> <base64(key id || signature)>`` line (without the final newline)."""
    prefix = EM_DASH + " "
    if not line.startswith(prefix):
        raise FormatError("signature line must start with an em dash and a space")
    rest = line[len(prefix) :]
    fields = rest.split(" ")
    if len(fields) != 2:
        raise FormatError("signature line must be '— <name> <base64 signature>'")
    name, blob = fields
    _check_key_name(name)
    raw = b64decode(blob, f"signature by {name}")
    if len(raw) < 5:
        raise FormatError(f"signature by {name} is too short")
    return NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def bounded_text(data: str | bytes, limit: int, what: str) -> str:
    """Untrusted input → str: size-capped before and after decoding, strict UTF-8, clear errors."""
    if isinstance(data, bytes | bytearray):
        if len(data) > limit:
            raise FormatError(f"{what} is too large")
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"{what} is not valid UTF-8") from e
    if not isinstance(data, str):
        raise FormatError(f"{what} must be text")
    if len(data) > limit:
        raise FormatError(f"{what} is too large")
    return data


def parse_note(data: str | bytes) -> Note:
    """Split a signed note into text and signatures (syntax only: nothing is verified here)."""
    data = bounded_text(data, MAX_NOTE_BYTES, "note")
    try:
        data.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates
        raise FormatError("note is not valid UTF-8") from e
    _check_text_chars(data)
    if not data.endswith("\n"):
        raise FormatError("note must end with a newline")
    # The text is separated from the signatures by the *last* empty line (signed-note §Format).
    split = data.rfind("\n\n")
    if split < 0:
        raise FormatError("note has no signatures (missing the blank line before them)")
    text, sig_block = data[: split + 1], data[split + 2 :]
    if not sig_block:
        raise FormatError("note has no signatures")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise FormatError(f"note has more than {MAX_SIGNATURES} signatures")
    return Note(text, tuple(parse_signature_line(line) for line in lines))


def sign_note(text: str, signers: Sequence[Ed25519Signer]) -> str:
    """Sign `text` (which must end in a newline) with type-0x01 keys; returns the encoded note."""
    if not text.strip("\n") or not text.endswith("\n"):
        raise FormatError("note text must be non-empty and end with a newline")
    _check_text_chars(text)
    sigs = tuple(NoteSignature(s.name, s.key_id, s.sign(text)) for s in signers)
    return Note(text, sigs).encode()


def open_note(data: str | bytes | Note, verifiers: Iterable[Verifier]) -> tuple[Note, list[NoteSignature]]:
    """Verify a note against trusted keys (signed-note §Signatures).

    Signatures whose (name, key id) is unknown are ignored. A known key whose signature fails rejects the whole
    note. At least one known signature must verify. Returns the note and the verified signatures.
    """
    note = data if isinstance(data, Note) else parse_note(data)
    by_id: dict[tuple[str, int], Verifier] = {(v.name, v.key_id): v for v in verifiers}
    verified: list[NoteSignature] = []
    for sig in note.signatures:
        v = by_id.get((sig.name, sig.key_id))
        if v is None:
            continue
        if not v.verify(note.text, sig.signature):
            raise SignatureError(f"signature by {sig.name} ({sig.key_id:08x}) does not verify")
        if sig not in verified:
            verified.append(sig)
    if not verified:
        names = ", ".join(sorted({n for n, _ in by_id})) or "no keys"
        raise SignatureError(f"note is not signed by any trusted key ({names})")
    return note, verified
