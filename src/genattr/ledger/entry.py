"""The log entry: a fixed-size, versioned binary record of one released sample.

Layout of version 1 (204 bytes, all integers big-endian)::

    offset size  field
    0      3     magic "GAL"
    3      1     version = 1
    4      32    model id          SHA-256 of the weights file
    36     32    output hash       SHA-256 over the decoded pixels (see `pixel_hash`)
    68     32    seed commitment   SHA-256("genattr/seed-commitment/v1\\n" || salt[32] || seed material)
    100    8     claimed time      milliseconds since the Unix epoch, as claimed by the owner (< 2**63)
    108    32    owner key id      SHA-256 of the owner's 32-byte Ed25519 public key
    140    64    signature         Ed25519 by the owner over "genattr/leaf/v1\\n" || bytes[0:140]

Why these choices: a fixed layout has exactly one encoding per entry, so the leaf hash is canonical and a
parser has no ambiguity to exploit; the domain-separation prefixes stop a signature or commitment made for
one purpose from being replayed as another; the seed is only committed (salted, so small seeds cannot be
brute-forced from the log), because publishing seeds would let anyone regenerate the owner's outputs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genattr.errors import ImageDecodeError
from genattr.ledger.errors import FormatError, SignatureError
from genattr.ledger.note import ALG_ED25519, Ed25519Signer, Ed25519Verifier, Verifier

__all__ = [
    "ENTRY_SIZE",
    "Entry",
    "commit_seed",
    "model_id_from_file",
    "owner_key_id",
    "pixel_hash",
    "pixel_hash_file",
    "seed_material",
    "verify_seed",
]

MAGIC = b"GAL"
VERSION = 1
ENTRY_SIZE = 204
_BODY = struct.Struct(">3sB32s32s32sQ32s")  # everything the signature covers
_SIGNED_PREFIX = b"genattr/leaf/v1\n"
_SEED_PREFIX = b"genattr/seed-commitment/v1\n"
_PIXEL_PREFIX = b"genattr/pixels/v1\n"
SALT_SIZE = 32
_HEADER = MAGIC + bytes([VERSION])
assert _BODY.size + 64 == ENTRY_SIZE


def owner_key_id(public_key: bytes) -> bytes:
    """The 32-byte owner key id: SHA-256 of the raw Ed25519 public key (collision resistant, unlike note ids)."""
    return hashlib.sha256(bytes(public_key)).digest()


def model_id_from_file(path: str | Path, chunk: int = 1 << 20) -> bytes:
    """SHA-256 of the weights file, streamed."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    except OSError as e:
        raise FormatError(f"cannot read weights file {path}: {e.strerror or e}") from e
    return h.digest()


def seed_material(seed: int | bytes | str, sample: int = 0) -> bytes:
    """A canonical byte string for a seed and the sample's position within its batch."""
    if isinstance(seed, bool):
        raise FormatError("seed must be an int, bytes or str, not bool")
    if isinstance(seed, int):
        body = b"int:" + str(seed).encode()
    elif isinstance(seed, bytes | bytearray):
        body = b"bytes:" + bytes(seed)
    elif isinstance(seed, str):
        body = b"str:" + seed.encode("utf-8")
    else:
        raise FormatError(f"seed must be an int, bytes or str, got {type(seed).__name__}")
    if sample < 0:
        raise FormatError("sample index must be non-negative")
    return body + b"\n#" + str(sample).encode()


def commit_seed(material: bytes, salt: bytes) -> bytes:
    if len(salt) != SALT_SIZE:
        raise FormatError(f"salt must be {SALT_SIZE} bytes")
    return hashlib.sha256(_SEED_PREFIX + salt + material).digest()


def verify_seed(entry: Entry, seed: int | bytes | str, salt: bytes, sample: int = 0) -> bool:
    """Open the seed commitment: did this entry commit to `seed` (at batch position `sample`)?"""
    return hmac.compare_digest(entry.seed_commitment, commit_seed(seed_material(seed, sample), salt))


# --------------------------------------------------------------------------------------------------------------
# Output hash over decoded pixels: mode, size and raw bytes, so stripping or rewriting metadata (EXIF, PNG text
# chunks) or re-compressing losslessly does not change it. Any lossy change does, by design.
# --------------------------------------------------------------------------------------------------------------

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def _pixel_digest(mode: str, width: int, height: int, raw: bytes) -> bytes:
    h = hashlib.sha256(_PIXEL_PREFIX)
    h.update(mode.encode("ascii") + b"\n" + struct.pack(">II", width, height))
    h.update(raw)
    return h.digest()


def _to_array_like(obj: Any) -> Any:
    """Objects such as torch tensors: detach, move to CPU and call .numpy() without importing their framework."""
    if hasattr(obj, "tobytes") and hasattr(obj, "shape"):
        return obj
    if hasattr(obj, "numpy"):
        for step in ("detach", "cpu"):
            if hasattr(obj, step):
                obj = getattr(obj, step)()
        return obj.numpy()
    return obj


def pixel_hash(image: Any) -> bytes:
    """Output hash of a PIL image, a uint8 array (H×W, H×W×1, H×W×3, H×W×4) or an object with `.numpy()`.

    An H×W×3 uint8 array and the PIL RGB image made from it hash identically.
    """
    if hasattr(image, "mode") and hasattr(image, "size") and hasattr(image, "tobytes"):  # PIL.Image.Image
        width, height = image.size
        return _pixel_digest(image.mode, width, height, image.tobytes())
    arr = _to_array_like(image)
    shape = getattr(arr, "shape", None)
    dtype = getattr(arr, "dtype", None)
    if shape is None or dtype is None or not hasattr(arr, "tobytes"):
        raise FormatError(f"cannot hash output of type {type(image).__name__}: expected a PIL image or uint8 array")
    if str(dtype) != "uint8":
        raise FormatError(f"output array must be uint8 (H×W×C), got dtype {dtype}; convert before logging (a torch "
                          "generator's float (N, C, H, W) output in [-1, 1]: wrap the generator with "
                          "genattr.attribution.deniability.image_sampler(G), which returns the 8-bit images)")
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        channels = 1
    elif len(shape) == 3 and shape[2] in _MODES:
        channels = shape[2]
    else:
        raise FormatError(f"output array must be H×W, H×W×1, H×W×3 or H×W×4, got shape {shape}")
    return _pixel_digest(_MODES[channels], shape[1], shape[0], arr.tobytes())


def pixel_hash_file(path: str | Path) -> bytes:
    """Decode an image file with Pillow (imported lazily) and hash its pixels."""
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow is a dependency of genattr
        raise ImageDecodeError("Pillow is needed to decode images") from e
    try:
        with Image.open(path) as img:
            img.load()
            return pixel_hash(img)
    except FileNotFoundError as e:
        raise ImageDecodeError(f"no such image: {path}") from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageDecodeError(f"cannot decode image {path}: {e}") from e


# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    model_id: bytes
    output_hash: bytes
    seed_commitment: bytes
    timestamp_ms: int
    owner_key_id: bytes
    signature: bytes
    version: int = VERSION

    def __post_init__(self) -> None:
        for name in ("model_id", "output_hash", "seed_commitment", "owner_key_id"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != 32:
                raise FormatError(f"entry {name} must be 32 bytes")
        if not isinstance(self.signature, bytes) or len(self.signature) != 64:
            raise FormatError("entry signature must be 64 bytes")
        if not 0 <= self.timestamp_ms < 1 << 63:
            raise FormatError(f"entry timestamp out of range: {self.timestamp_ms}")
        if self.version != VERSION:
            raise FormatError(f"unsupported entry version {self.version}")

    def body(self) -> bytes:
        return _BODY.pack(
            MAGIC, self.version, self.model_id, self.output_hash, self.seed_commitment, self.timestamp_ms,
            self.owner_key_id,
        )

    def encode(self) -> bytes:
        return self.body() + self.signature

    @classmethod
    def parse(cls, data: bytes) -> Entry:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise FormatError("entry must be bytes")
        data = bytes(data)
        if len(data) < 4 or data[:3] != MAGIC:
            raise FormatError("not a genattr log entry (bad magic)")
        if data[3] != VERSION:
            raise FormatError(f"unsupported entry version {data[3]}")
        if len(data) != ENTRY_SIZE:
            raise FormatError(f"entry must be exactly {ENTRY_SIZE} bytes, got {len(data)}")
        _, version, model, output, seed, ts, owner = _BODY.unpack(data[: _BODY.size])
        return cls(model, output, seed, ts, owner, data[_BODY.size :], version)

    @staticmethod
    def well_formed(data: object) -> bool:
        """Cheap structural check equivalent to `parse` succeeding (used on the append hot path)."""
        return (
            isinstance(data, bytes)
            and len(data) == ENTRY_SIZE
            and data[:4] == _HEADER
            and data[100] < 0x80  # timestamp < 2**63
        )

    @staticmethod
    def output_hash_of(data: bytes) -> bytes:
        return bytes(data[36:68])

    @classmethod
    def create(
        cls,
        *,
        model_id: bytes,
        output_hash: bytes,
        seed_commitment: bytes,
        owner: Ed25519Signer,
        timestamp_ms: int,
    ) -> Entry:
        unsigned = cls(model_id, output_hash, seed_commitment, timestamp_ms, owner_key_id(
            owner.verifier.public_key), b"\0" * 64)
        return cls(
            model_id, output_hash, seed_commitment, timestamp_ms, unsigned.owner_key_id,
            owner.sign_bytes(_SIGNED_PREFIX + unsigned.body()),
        )

    def verify(self, owner: Verifier | bytes) -> None:
        """Check the owner signature against a trusted owner key; raises SignatureError."""
        if isinstance(owner, Verifier):
            if owner.alg != ALG_ED25519:
                raise SignatureError("owner keys must be Ed25519 (signature type 0x01)")
            verifier = owner
        else:
            verifier = Ed25519Verifier("owner", bytes(owner))
        if not hmac.compare_digest(owner_key_id(verifier.public_key), self.owner_key_id):
            raise SignatureError("entry was signed by a different owner key")
        if not verifier.verify_bytes(_SIGNED_PREFIX + self.body(), self.signature):
            raise SignatureError("entry owner signature does not verify")

    def describe(self) -> dict[str, object]:
        return {
            "version": self.version,
            "model_id": self.model_id.hex(),
            "output_hash": self.output_hash.hex(),
            "seed_commitment": self.seed_commitment.hex(),
            "timestamp_ms": self.timestamp_ms,
            "owner_key_id": self.owner_key_id.hex(),
        }


def new_salt() -> bytes:
    return os.urandom(SALT_SIZE)
