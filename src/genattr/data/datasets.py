"""Real data sources: Fashion-MNIST (IDX files from Debian's ``dataset-fashion-mnist``), scikit-learn digits
(always available, small fallback) and user image folders."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from genattr.data.convention import ZOO_SIZE, to_model
from genattr.data.idx import read_idx
from genattr.errors import DataError, DatasetNotFoundError, ImageDecodeError

DEFAULT_FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_INSTALL_HINT = ("install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or point "
                 "GENATTR_DATA_DIR (or root=) at a directory holding the four *-ubyte[.gz] IDX files")


@dataclass(frozen=True)
class ImageSet:
    """uint8 images (N, C, H, W) with integer labels (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self):  # allows ``images, labels = load_fashion_mnist()``
        return iter((self.images, self.labels))

    def to_model(self, size: int | None = ZOO_SIZE) -> torch.Tensor:
        return to_model(self.images, size=size)


def fashion_mnist_dir(root: str | Path | None = None) -> Path:
    """Resolve the data directory: argument, then ``$GENATTR_DATA_DIR``, then the Debian location."""
    if root is not None:
        return Path(root)
    env = os.environ.get("GENATTR_DATA_DIR")
    return Path(env) if env else DEFAULT_FMNIST_DIR


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise DatasetNotFoundError(f"Fashion-MNIST file {stem}[.gz] not found in {directory}; {_INSTALL_HINT}")


def fashion_mnist_files(split: str = "train", root: str | Path | None = None) -> tuple[Path, Path]:
    if split not in _FILES:
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'")
    directory = fashion_mnist_dir(root)
    if not directory.is_dir():
        raise DatasetNotFoundError(f"Fashion-MNIST directory {directory} does not exist; {_INSTALL_HINT}")
    img_stem, lbl_stem = _FILES[split]
    return _find(directory, img_stem), _find(directory, lbl_stem)


def load_fashion_mnist(split: Literal["train", "test"] = "train", root: str | Path | None = None) -> ImageSet:
    """Fashion-MNIST as uint8 images (N, 1, 28, 28) and int64 labels (N,)."""
    img_path, lbl_path = fashion_mnist_files(split, root)
    images = read_idx(img_path)
    labels = read_idx(lbl_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{img_path}: expected a 3-d uint8 image array, got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{lbl_path}: {len(labels)} labels for {len(images)} images")
    if labels.max(initial=0) > 9:
        raise DataError(f"{lbl_path}: label {labels.max()} out of range 0..9")
    return ImageSet(images[:, None].copy(), labels.astype(np.int64))


def fashion_mnist_sha256(split: str = "train", root: str | Path | None = None) -> str:
    """SHA-256 over the decompressed image and label payloads (independent of gzip settings)."""
    h = hashlib.sha256()
    ds = load_fashion_mnist(split, root)  # type: ignore[arg-type]
    h.update(ds.images.tobytes())
    h.update(ds.labels.astype(np.uint8).tobytes())
    return h.hexdigest()


def load_digits() -> ImageSet:
    """scikit-learn's bundled 8×8 digits (1797 images), rescaled from 0..16 to uint8 0..255."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    images = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None]
    return ImageSet(images, d.target.astype(np.int64))


def load_dataset(name: str, split: str = "train", root: str | Path | None = None) -> ImageSet:
    """Load a real dataset by name: ``fashion-mnist`` or ``digits``."""
    if name in ("fashion-mnist", "fmnist"):
        return load_fashion_mnist(split, root)  # type: ignore[arg-type]
    if name == "digits":
        return load_digits()
    raise DataError(f"unknown dataset {name!r}; known: fashion-mnist, digits")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Refuse images beyond this many pixels before decoding (decompression-bomb guard).
MAX_IMAGE_PIXELS = 64 * 1024 * 1024


def read_image(path: str | Path, *, mode: str = "L") -> np.ndarray:
    """Decode one PNG/JPEG file to uint8 (C, H, W). ``mode`` 'L' (grey) or 'RGB'. Raises ImageDecodeError.

    Every Pillow mode is decoded explicitly (16-bit scaled, not clipped; alpha = coverage over the black
    background; animated images refused): see :mod:`genattr.data.decode`. A decompression bomb is refused
    with one ImageDecodeError and no warning printed."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    from genattr.data.decode import decode_pil

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    try:
        with warnings.catch_warnings():
            # Pillow *warns* between its limit and twice it: make that an error we report, not stderr noise.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.format not in ("PNG", "JPEG"):
                    raise ImageDecodeError(f"{path}: unsupported image format {im.format}; use PNG or JPEG")
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise ImageDecodeError(f"{path}: {w}×{h} pixels exceeds the limit of {MAX_IMAGE_PIXELS}; "
                                           "refusing (possible decompression bomb)")
                im.load()
                return decode_pil(im, mode, where=str(path))
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"{path}: refusing a possible decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"{path}: not a readable PNG/JPEG image ({exc})") from exc


def load_image_folder(folder: str | Path, *, mode: str = "L", size: int | None = ZOO_SIZE,
                      recursive: bool = False) -> tuple[torch.Tensor, list[Path]]:
    """Load every PNG/JPEG in ``folder`` (sorted, deterministic) into a model tensor.

    Images smaller than ``size`` are centre-padded; larger ones are centre-cropped (never stretched).
    Returns (tensor (N,C,size,size) in [-1, 1], paths).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a directory")
    pattern = "**/*" if recursive else "*"
    paths = sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise DataError(f"{folder}: no .png/.jpg/.jpeg images found")
    return load_images(paths, mode=mode, size=size), paths


def load_images(paths: list[str | Path] | list[Path], *, mode: str = "L", size: int | None = ZOO_SIZE
                ) -> torch.Tensor:
    """Decode image files to one model tensor (N,C,size,size); see :func:`load_image_folder`."""
    batch = []
    for p in paths:
        x = to_model(read_image(p, mode=mode)[None])
        if size is not None:
            x = fit_to_size(x, size)
        batch.append(x)
    shapes = {tuple(b.shape[1:]) for b in batch}
    if len(shapes) > 1:
        raise DataError(f"images have different shapes {sorted(shapes)}; pass size= to bring them to one size")
    return torch.cat(batch)


def fit_to_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop dimensions larger than ``size`` and pad smaller ones with background."""
    from genattr.data.convention import pad_to

    h, w = x.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    x = x[..., top:top + min(h, size), left:left + min(w, size)]
    return pad_to(x, size)


def real_images(name: str = "fashion-mnist", split: str = "train", size: int = 32) -> torch.Tensor:
    """A real data set's split in the model convention at ``size`` (Fashion-MNIST: padded 28 → 32)."""
    return load_dataset(name, split).to_model(size)  # type: ignore[arg-type]


def real_splits(name: str = "fashion-mnist", size: int = 32, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train/validation pool, test) real images at ``size``, disjoint. A data set without a test split
    (scikit-learn's digits) is split into two halves by one permutation drawn from ``seed``."""
    tr, te = load_dataset(name, "train"), load_dataset(name, "test")
    xtr, xte = tr.to_model(size), te.to_model(size)
    if tr.images.shape == te.images.shape and np.array_equal(tr.images, te.images):
        perm = torch.randperm(xtr.shape[0], generator=torch.Generator().manual_seed(seed))
        half = xtr.shape[0] // 2
        xtr, xte = xtr[perm[:half]], xtr[perm[half:]]
    return xtr, xte
