"""Data loaders on real and malformed files, the tensor convention and image I/O."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genattr.data import (
    fit_to_size,
    load_digits,
    load_fashion_mnist,
    load_image_folder,
    parse_idx,
    read_idx,
    read_image,
    save_png,
    to_model,
    to_uint8,
)
from genattr.data.convention import check_model_tensor, pad_to
from genattr.errors import DataError, DatasetNotFoundError, ImageDecodeError
from tests.conftest import needs_fmnist


def idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def write_fake_fmnist(root: Path, n: int = 5, *, gz: bool = True) -> np.ndarray:
    images = np.arange(n * 28 * 28, dtype=np.uint32).reshape(n, 28, 28).astype(np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    for split, (i, lab) in {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}.items():
        del split
        for stem, arr in ((i, images), (lab, labels)):
            data = idx_bytes(arr)
            if gz:
                (root / f"{stem}.gz").write_bytes(gzip.compress(data))
            else:
                (root / stem).write_bytes(data)
    return images


@pytest.mark.parametrize("gz", [True, False])
def test_fake_fmnist_roundtrip(tmp_path: Path, gz: bool) -> None:
    images = write_fake_fmnist(tmp_path, gz=gz)
    ds = load_fashion_mnist("train", root=tmp_path)
    assert ds.images.shape == (5, 1, 28, 28) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images[:, 0], images)
    assert ds.labels.tolist() == [0, 1, 2, 3, 4]
    x, y = ds  # tuple-style unpacking
    assert x is ds.images and y is ds.labels


def test_env_var_overrides_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_fmnist(tmp_path)
    monkeypatch.setenv("GENATTR_DATA_DIR", str(tmp_path))
    assert len(load_fashion_mnist("test")) == 5


def test_missing_dataset_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", root=tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="not found"):
        load_fashion_mnist("train", root=tmp_path)


def test_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown split"):
        load_fashion_mnist("validation", root=tmp_path)  # type: ignore[arg-type]


def test_truncated_gzip(tmp_path: Path) -> None:
    write_fake_fmnist(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"truncated|corrupt"):
        load_fashion_mnist("train", root=tmp_path)


def test_truncated_payload_and_wrong_magic() -> None:
    good = idx_bytes(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(DataError, match="truncated"):
        parse_idx(good[:-1])
    with pytest.raises(DataError, match="magic"):
        parse_idx(b"\x01\x02" + good[2:])
    with pytest.raises(DataError, match="too short"):
        parse_idx(b"\x00")
    with pytest.raises(DataError, match="magic"):
        parse_idx(b"PK\x03\x04" + b"\x00" * 20)  # a zip file is not IDX


def test_not_gzip_garbage(tmp_path: Path) -> None:
    p = tmp_path / "x.gz"
    p.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(DataError):
        read_idx(p)


def test_label_count_mismatch(tmp_path: Path) -> None:
    write_fake_fmnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(3, np.uint8))))
    with pytest.raises(DataError, match="3 labels for 5 images"):
        load_fashion_mnist("train", root=tmp_path)


@needs_fmnist
def test_real_fashion_mnist() -> None:
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == np.uint8 and set(np.unique(train.labels)) == set(range(10))
    assert np.bincount(test.labels).tolist() == [1000] * 10
    x = test.to_model(32)
    assert x.shape == (10000, 1, 32, 32) and x.dtype == torch.float32
    assert (x[:, :, :2] == -1).all() and (x[:, :, -2:] == -1).all()  # padded with background


def test_digits_fallback() -> None:
    d = load_digits()
    assert d.images.shape == (1797, 1, 8, 8) and d.images.dtype == np.uint8
    assert d.images.max() == 255 and d.images.min() == 0


def test_convention_roundtrip_and_padding() -> None:
    u = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    x = to_model(u, size=32)
    assert x.shape == (3, 1, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(to_uint8(x)[:, :, 2:30, 2:30], u)  # exact inverse, padding not stretching
    assert torch.equal(to_model(u[0, 0]), to_model(u[:1]))  # (H,W) is one single-channel image
    with pytest.raises(DataError, match="uint8"):
        to_model(u.float())
    with pytest.raises(DataError, match="larger"):
        pad_to(torch.zeros(1, 1, 40, 40), 32)


def test_check_model_tensor_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="NaN"):
        check_model_tensor(torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(DataError, match="NCHW"):
        check_model_tensor(torch.zeros(4, 4))
    with pytest.raises(DataError, match=r"\[-1, 1\]"):
        check_model_tensor(torch.full((1, 1, 4, 4), 3.0))
    with pytest.raises(DataError, match="channel"):
        check_model_tensor(torch.zeros(1, 3, 4, 4), channels=1)
    with pytest.raises(DataError, match="float"):
        check_model_tensor(torch.zeros(1, 1, 4, 4, dtype=torch.uint8))
    with pytest.raises(DataError, match="NaN"):
        to_uint8(torch.full((1, 1, 2, 2), float("inf")))


def test_png_write_read_roundtrip(tmp_path: Path) -> None:
    x = to_model(torch.randint(0, 256, (1, 1, 12, 10), dtype=torch.uint8))
    save_png(x, tmp_path / "a.png")
    back = to_model(read_image(tmp_path / "a.png")[None])
    assert torch.equal(back, x)
    grid = save_png(torch.zeros(5, 1, 4, 4), tmp_path / "grid.png", nrow=3, scale=2)
    with Image.open(grid) as im:
        assert im.size == ((3 * 6 + 2) * 2, (2 * 6 + 2) * 2)


def test_image_folder(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "b.jpg", quality=95)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("ignored")
    x, paths = load_image_folder(tmp_path, size=16)
    assert [p.name for p in paths] == ["a.png", "b.jpg"] and x.shape == (2, 1, 16, 16)
    x3, _ = load_image_folder(tmp_path, mode="RGB", size=32)
    assert x3.shape == (2, 3, 32, 32) and (x3[:, :, 0] == -1).all()


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no \.png"):
        load_image_folder(tmp_path)
    (tmp_path / "fake.png").write_bytes(b"this is not a png")
    with pytest.raises(ImageDecodeError, match=r"fake\.png"):
        load_image_folder(tmp_path)
    trunc = tmp_path / "t.png"
    Image.fromarray(np.zeros((64, 64), np.uint8) + 7).save(trunc)
    trunc.write_bytes(trunc.read_bytes()[:40])
    with pytest.raises(ImageDecodeError):
        read_image(trunc)


def test_decompression_bomb_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import genattr.data.datasets as ds

    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(ds, "MAX_IMAGE_PIXELS", 50 * 50)
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        read_image(tmp_path / "big.png")


def test_fit_to_size_crops_and_pads() -> None:
    x = torch.zeros(1, 1, 40, 20)
    assert fit_to_size(x, 32).shape == (1, 1, 32, 32)
