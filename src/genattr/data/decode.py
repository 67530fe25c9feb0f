"""Decoding any Pillow image mode to the uint8 grey/RGB arrays the tensor convention starts from.

Pillow's own ``convert("L")`` is wrong for some modes we meet in the wild: a 16-bit grey PNG (``I;16``) is
*clipped* to 255 instead of scaled (almost every pixel becomes white), ``I``/``F`` likewise, and alpha is
dropped silently. Here every mode is brought to intensities in [0, 255] explicitly:

* ``1``, ``L``, ``P``, ``RGB``, ``RGBX``: as stored (palette looked up; ``X`` padding ignored);
* ``I;16``/``I;16L``/``I;16B``/``I;16N`` (16-bit PNG/TIFF): ``round(v · 255 / 65535)``;
* ``I`` (32-bit int, how older Pillow and TIFF hand over 16-bit greys): read as 16-bit, values must lie in
  [0, 65535], scaled as above;
* ``F`` (32-bit float): intensities in [0, 1] (NaN, ±inf or values outside are refused), times 255;
* ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: Pillow's conversion to RGB;
* **alpha** (``LA``, ``RGBA``, ``PA``, ``P`` with a ``transparency`` entry, premultiplied ``La``/``RGBa``)
  is *coverage*: the image is composited over **black**, the background of the model convention (pixel 0,
  −1 in model space, the value padding uses). A fully transparent pixel is background, never its hidden
  colour.

Grey from colour uses ITU-R 601-2 luma (the weights of Pillow's ``convert("L")``, which is used unchanged
for plain 8-bit RGB so that such files decode bit-identically to before); colour from grey repeats the
channel. Animated images (APNG/GIF with more than one frame) are refused: which frame is meant is the
caller's decision, not ours.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genattr.errors import ImageDecodeError

_LUMA = np.array([0.299, 0.587, 0.114])
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def _planes(im: Any, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(colour as float64 H×W×K with K in {1, 3}, values in [0, 255]; alpha H×W in [0, 1] or None)."""
    mode = im.mode
    if mode in _SIXTEEN_BIT or mode == "I":
        arr = np.asarray(im).astype(np.float64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ImageDecodeError(f"{where}: {mode} image with values outside 0..65535 "
                                   f"([{arr.min():.0f}, {arr.max():.0f}]); not a 16-bit intensity image")
        return (arr * (255.0 / 65535.0))[..., None], None
    if mode == "F":
        arr = np.asarray(im).astype(np.float64)
        if not np.isfinite(arr).all() or (arr.size and (arr.min() < 0 or arr.max() > 1)):
            raise ImageDecodeError(f"{where}: float (F) image must hold finite intensities in [0, 1]")
        return (arr * 255.0)[..., None], None
    if mode == "1":
        return np.asarray(im.convert("L")).astype(np.float64)[..., None], None
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode == "La":
        im = im.convert("LA")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode in ("L", "LA", "RGB", "RGBA"):
        pass
    else:  # RGBX, CMYK, YCbCr, LAB, HSV, …: Pillow knows these conversions
        try:
            im = im.convert("RGB")
        except ValueError as exc:
            raise ImageDecodeError(f"{where}: cannot decode image mode {mode} ({exc})") from exc
    arr = np.asarray(im).astype(np.float64)
    if arr.ndim == 2:
        return arr[..., None], None
    if im.mode in ("LA", "RGBA"):
        return arr[..., :-1], arr[..., -1] / 255.0
    return arr, None


def decode_pil(im: Any, mode: str = "L", *, where: str = "image") -> np.ndarray:
    """A Pillow image → uint8 array (C, H, W), C = 1 for ``mode="L"``, 3 for ``"RGB"``; see the module doc."""
    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' or 'RGB', got {mode!r}")
    frames = getattr(im, "n_frames", 1)
    if getattr(im, "is_animated", False) or frames > 1:
        raise ImageDecodeError(f"{where}: animated image with {frames} frames; save the frame you mean as a "
                               "still PNG (e.g. `Image.open(f).save('frame0.png')` writes the first)")
    plain8 = im.mode in ("L", "RGB")
    if plain8:  # the common case, bit-identical to Pillow's own conversion
        arr = np.asarray(im if im.mode == mode else im.convert(mode))
        return arr[None].copy() if arr.ndim == 2 else arr.transpose(2, 0, 1).copy()
    colour, alpha = _planes(im, where)
    if alpha is not None:
        colour = colour * alpha[..., None]  # coverage over the black background of the convention
    if mode == "L" and colour.shape[-1] == 3:
        colour = (colour @ _LUMA)[..., None]
    elif mode == "RGB" and colour.shape[-1] == 1:
        colour = np.repeat(colour, 3, axis=-1)
    out = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    return out.transpose(2, 0, 1).copy()


__all__ = ["decode_pil"]
