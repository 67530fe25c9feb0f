"""The one tensor convention every model in genattr uses.

* dtype float32, layout NCHW, values in [-1, 1] (so ``tanh`` generator outputs need no rescaling);
* the zoo works at 32×32: 28×28 Fashion-MNIST is *padded* by 2 pixels of background (value of pixel 0,
  i.e. -1 after scaling), never stretched, so garments keep their pixel statistics;
* images on disk / from users are uint8 in [0, 255].

``to_model`` / ``to_uint8`` are exact inverses on uint8 input (``to_uint8(to_model(x)) == x``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genattr.errors import DataError

ZOO_SIZE = 32


def to_model(images: np.ndarray | torch.Tensor, *, size: int | None = None) -> torch.Tensor:
    """uint8 images (N,C,H,W), (N,H,W) or (H,W) → float32 NCHW in [-1, 1], optionally padded to ``size``."""
    t = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.array(images, copy=True))
    if t.dtype != torch.uint8:
        raise DataError(f"to_model expects uint8 images, got {t.dtype}")
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[:, None]
    elif t.ndim != 4:
        raise DataError(f"expected 2-4 dimensional image array, got shape {tuple(t.shape)}")
    x = t.to(torch.float32) / 127.5 - 1.0
    if size is not None:
        x = pad_to(x, size)
    return x


def pad_to(x: torch.Tensor, size: int, value: float = -1.0) -> torch.Tensor:
    """Centre-pad a NCHW batch to size×size with background ``value`` (never stretch)."""
    h, w = x.shape[-2:]
    if h > size or w > size:
        raise DataError(f"cannot pad {h}×{w} images to {size}×{size}; they are larger")
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(x, (left, size - w - left, top, size - h - top), value=value)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float NCHW in [-1, 1] → uint8 NCHW (values outside [-1, 1] are clipped, NaNs rejected)."""
    check_model_tensor(x, allow_out_of_range=True)
    return ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)


def check_model_tensor(x: torch.Tensor, *, channels: int | None = None, size: int | None = None,
                       allow_out_of_range: bool = False) -> torch.Tensor:
    """Validate a batch against the convention; returns it unchanged. Raises DataError with the reason."""
    if not isinstance(x, torch.Tensor):
        raise DataError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise DataError(f"expected NCHW tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise DataError(f"expected a float tensor in [-1, 1], got {x.dtype}; convert with genattr.data.to_model")
    if channels is not None and x.shape[1] != channels:
        raise DataError(f"expected {channels} channel(s), got {x.shape[1]}")
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        raise DataError(f"expected {size}×{size} images, got {x.shape[-2]}×{x.shape[-1]}")
    if not torch.isfinite(x).all():
        raise DataError("tensor contains NaN or infinite values")
    if not allow_out_of_range and (x.min() < -1.0001 or x.max() > 1.0001):
        raise DataError(f"values must lie in [-1, 1], got [{x.min().item():.3f}, {x.max().item():.3f}]")
    return x


def make_grid(x: torch.Tensor, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """Tile a NCHW batch into one CHW image (background -1 between tiles)."""
    n, c, h, w = x.shape
    ncol = nrow
    nrows = (n + ncol - 1) // ncol
    grid = torch.full((c, nrows * (h + padding) + padding, ncol * (w + padding) + padding), -1.0)
    for i in range(n):
        r, col = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i]
    return grid


def save_png(x: torch.Tensor, path: str | Path, *, nrow: int = 8, scale: int = 1) -> Path:
    """Write one CHW/1CHW image or a NCHW batch (as a grid) in [-1, 1] to a PNG file."""
    from PIL import Image

    if x.ndim == 3:
        x = x[None]
    img = make_grid(x.detach().cpu(), nrow=nrow) if x.shape[0] > 1 else x[0].detach().cpu()
    arr = to_uint8(img[None])[0].permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr, mode="L" if arr.shape[2] == 1 else "RGB")
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil.save(path, format="PNG")
    return path


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Round [-1, 1] values to the 256 levels of an 8-bit PNG, exactly as saving with :func:`save_png` and
    decoding with :func:`to_model` would (the form in which content is deployed and real images stored).
    Any shape (batches, flattened images); values outside [-1, 1] are clipped, NaN is an error."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise DataError(f"quantize_8bit expects a float tensor, got {type(x).__name__}")
    if bool(torch.isnan(x).any()):
        raise DataError("quantize_8bit: input contains NaN")
    # the same float32 operations as to_model(to_uint8(x)): an integer level, then / 127.5 − 1
    return ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round() / 127.5 - 1.0
