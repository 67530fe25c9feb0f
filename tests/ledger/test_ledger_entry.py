"""The binary entry format, pixel hashing and seed commitments."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from genattr.errors import ImageDecodeError
from genattr.ledger import (
    ENTRY_SIZE,
    Entry,
    FormatError,
    SignatureError,
    commit_seed,
    generate_signer,
    model_id_from_file,
    owner_key_id,
    pixel_hash,
    pixel_hash_file,
    seed_material,
    verify_seed,
)


def test_roundtrip_and_layout(make_entry, owner_key) -> None:
    e = make_entry(7)
    data = e.encode()
    assert len(data) == ENTRY_SIZE == 204
    assert data[:4] == b"GAL\x01"
    assert data[4:36] == e.model_id
    assert data[36:68] == e.output_hash
    assert int.from_bytes(data[100:108], "big") == 1_700_000_000_007
    assert data[108:140] == owner_key_id(owner_key.verifier.public_key)
    assert Entry.parse(data) == e
    e.verify(owner_key.verifier)


def test_strict_parsing(make_entry) -> None:
    data = make_entry(1).encode()
    for n in range(ENTRY_SIZE):
        with pytest.raises(FormatError):
            Entry.parse(data[:n])
    with pytest.raises(FormatError, match="exactly"):
        Entry.parse(data + b"\0")
    with pytest.raises(FormatError, match="magic"):
        Entry.parse(b"XAL" + data[3:])
    with pytest.raises(FormatError, match="version"):
        Entry.parse(data[:3] + b"\x02" + data[4:])
    big_ts = data[:100] + (1 << 63).to_bytes(8, "big") + data[108:]
    with pytest.raises(FormatError, match="timestamp"):
        Entry.parse(big_ts)
    with pytest.raises(FormatError):
        Entry.parse("not bytes")  # type: ignore[arg-type]


def test_signatures(make_entry, owner_key) -> None:
    e = make_entry(3)
    mallory = generate_signer("owner.example/mallory")
    with pytest.raises(SignatureError, match="different owner"):
        e.verify(mallory.verifier)
    # Flip any single byte of the signed body or of the signature: verification fails.
    data = e.encode()
    for pos in (4, 40, 70, 101, 139, 140, 203):
        bad = bytearray(data)
        bad[pos] ^= 0x01
        parsed = Entry.parse(bytes(bad))
        with pytest.raises(SignatureError):
            parsed.verify(owner_key.verifier)
    # A forger who re-uses Alice's key id with their own signature is rejected.
    forged = Entry.create(model_id=e.model_id, output_hash=e.output_hash, seed_commitment=e.seed_commitment,
                          owner=mallory, timestamp_ms=e.timestamp_ms)  # type: ignore[arg-type]
    spoof = Entry(forged.model_id, forged.output_hash, forged.seed_commitment, forged.timestamp_ms, e.owner_key_id,
                  forged.signature)
    with pytest.raises(SignatureError, match="does not verify"):
        spoof.verify(owner_key.verifier)


def test_seed_commitment_is_salted_and_opens() -> None:
    salt1, salt2 = b"\x01" * 32, b"\x02" * 32
    c1 = commit_seed(seed_material(1234), salt1)
    assert c1 != commit_seed(seed_material(1234), salt2)
    assert c1 != commit_seed(seed_material(1234, sample=1), salt1)
    assert seed_material(1) != seed_material("1") != seed_material(b"1")
    assert b"1234" not in c1
    e = Entry(b"\0" * 32, b"\0" * 32, c1, 0, b"\0" * 32, b"\0" * 64)
    assert verify_seed(e, 1234, salt1)
    assert not verify_seed(e, 1235, salt1)
    with pytest.raises(FormatError):
        commit_seed(b"x", b"short")
    with pytest.raises(FormatError):
        seed_material(1.5)  # type: ignore[arg-type]


def test_pixel_hash_numpy_equals_pil() -> None:
    rng = np.random.default_rng(0)
    for shape, mode in (((5, 7, 3), "RGB"), ((5, 7, 4), "RGBA"), ((5, 7), "L")):
        arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
        img = Image.fromarray(arr)
        assert img.mode == mode
        assert pixel_hash(arr) == pixel_hash(img)
    arr = rng.integers(0, 256, size=(5, 7, 1), dtype=np.uint8)
    assert pixel_hash(arr) == pixel_hash(arr[:, :, 0])
    # Non-contiguous views hash like their contents.
    big = rng.integers(0, 256, size=(10, 14, 3), dtype=np.uint8)
    assert pixel_hash(big[::2, ::2]) == pixel_hash(np.ascontiguousarray(big[::2, ::2]))
    # Transposed images and mode changes are different outputs.
    assert pixel_hash(big) != pixel_hash(big.transpose(1, 0, 2).copy())


def test_pixel_hash_accepts_numpy_like_objects() -> None:
    arr = np.full((4, 4, 3), 9, dtype=np.uint8)

    class FakeTensor:  # a torch-like tensor without importing torch
        def __init__(self, a: np.ndarray) -> None:
            self.a = a

        def detach(self) -> FakeTensor:
            return self

        def cpu(self) -> FakeTensor:
            return self

        def numpy(self) -> np.ndarray:
            return self.a

    assert pixel_hash(FakeTensor(arr)) == pixel_hash(arr)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4, 3), dtype=np.float32), np.zeros((4, 4, 2), dtype=np.uint8), np.zeros((2, 4, 4, 3), np.uint8),
     "a string", 12],
)
def test_pixel_hash_rejects_unhashable(bad: object) -> None:
    with pytest.raises(FormatError):
        pixel_hash(bad)


def test_pixel_hash_ignores_metadata_but_not_reencoding(tmp_path: Path) -> None:
    arr = np.random.default_rng(1).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    plain, tagged, jpeg = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.jpg"
    img.save(plain)
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "generated by a model")
    img.save(tagged, pnginfo=info, compress_level=9)
    img.save(jpeg, quality=95)
    assert plain.read_bytes() != tagged.read_bytes()
    assert pixel_hash_file(plain) == pixel_hash_file(tagged) == pixel_hash(arr)
    assert pixel_hash_file(jpeg) != pixel_hash(arr)


def test_pixel_hash_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="no such image"):
        pixel_hash_file(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageDecodeError):
        pixel_hash_file(junk)
    buf = io.BytesIO()
    noise = np.random.default_rng(2).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, format="PNG")
    truncated = tmp_path / "trunc.png"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageDecodeError):
        pixel_hash_file(truncated)


def test_model_id_from_file(tmp_path: Path) -> None:
    import hashlib

    w = tmp_path / "weights.safetensors"
    w.write_bytes(b"weights" * 1000)
    assert model_id_from_file(w) == hashlib.sha256(b"weights" * 1000).digest()
    with pytest.raises(FormatError):
        model_id_from_file(tmp_path / "nope")
