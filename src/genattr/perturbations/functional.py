"""Pure, batched image perturbations on float32 NCHW tensors in [-1, 1].

Every function returns a new tensor (inputs are never modified in place), takes its strength explicitly
(a number, or a per-image tensor of shape ``(N,)``) and, where it is random, an explicit
``torch.Generator``. Everything except :func:`jpeg` (a real Pillow encoder) is differentiable.

Units: strengths are expressed in the units of the tensor, i.e. the [-1, 1] range. A noise standard
deviation quoted by a paper on the [0, 1] scale is therefore doubled by the caller (see ``grids.py``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

Strength = float | int | torch.Tensor


def _check(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"perturbations expect a float NCHW tensor, got {shape}")


def _per_image(value: Strength, n: int, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or (N,) strength to shape (N, 1, 1, 1) on x's device/dtype."""
    t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"per-image strength must be a scalar or have shape ({n},), got {tuple(t.shape)}")
    return t.view(n, 1, 1, 1)


def _as_list(value: Strength, n: int) -> list[float]:
    t = torch.as_tensor(value).detach().cpu().reshape(-1)
    if t.numel() == 1:
        return [float(t.item())] * n
    if t.numel() != n:
        raise ValueError(f"per-image strength must be a scalar or have {n} entries, got {t.numel()}")
    return [float(v) for v in t.tolist()]


# --------------------------------------------------------------------------------------------------------
# Blur
# --------------------------------------------------------------------------------------------------------
def opencv_sigma(kernel_size: int) -> float:
    """OpenCV's default σ for a Gaussian kernel of this size (``cv2.GaussianBlur(img, (k, k), 0)``).

    Yu et al. 2019 §4.4 specify only the kernel size; this is the σ their OpenCV-based attack would get.
    """
    return 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8


def gaussian_kernel1d(kernel_size: int, sigma: float, *, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps at integer offsets −k//2 … k//2 (as torchvision / scipy)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    half = kernel_size // 2
    offsets = torch.arange(-half, half + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def gaussian_blur(x: torch.Tensor, kernel_size: int, sigma: float | None = None) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (torchvision's ``GaussianBlur`` semantics).

    ``sigma=None`` uses :func:`opencv_sigma`. ``kernel_size == 1`` is the identity (FLIPAD Table 3's
    "blur 1" column).
    """
    _check(x)
    kernel_size = int(kernel_size)
    if kernel_size == 1:
        return x.clone()
    sigma = opencv_sigma(kernel_size) if sigma is None else float(sigma)
    n, c, h, w = x.shape
    half = kernel_size // 2
    if half >= min(h, w):
        raise ValueError(f"kernel_size {kernel_size} too large for {h}×{w} images (reflect padding)")
    k = gaussian_kernel1d(kernel_size, sigma, dtype=x.dtype, device=x.device)
    y = F.pad(x.reshape(n * c, 1, h, w), (half, half, half, half), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, kernel_size))
    y = F.conv2d(y, k.view(1, 1, kernel_size, 1))
    return y.reshape(n, c, h, w)


# --------------------------------------------------------------------------------------------------------
# Crop then resize back
# --------------------------------------------------------------------------------------------------------
def crop_size(fraction: float, side: int) -> int:
    """Integer crop side for a fraction of the image side (60/64 of 32 → 30, 55/64 of 32 → 28)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"crop fraction must be in (0, 1], got {fraction}")
    return max(1, min(side, math.floor(fraction * side + 0.5)))


def resized_crop(x: torch.Tensor, top: int, left: int, height: int, width: int,
                 size: tuple[int, int] | None = None, *, mode: str = "bilinear") -> torch.Tensor:
    """Crop ``x[..., top:top+height, left:left+width]`` and resize it (default: back to the input size)."""
    _check(x)
    h, w = x.shape[-2:]
    if not (top >= 0 and left >= 0 and height >= 1 and width >= 1 and top + height <= h and left + width <= w):
        raise ValueError(f"crop box (top={top}, left={left}, {height}×{width}) outside {h}×{w} image")
    size = (h, w) if size is None else size
    patch = x[..., top:top + height, left:left + width]
    if tuple(patch.shape[-2:]) == tuple(size):
        return patch.clone()
    kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(patch, size=size, mode=mode, **kw)


def center_crop(x: torch.Tensor, fraction: float, *, mode: str = "bilinear") -> torch.Tensor:
    """Centre crop a ``fraction`` of each side, then resize back (FLIPAD Table 3: 60/64 and 55/64)."""
    _check(x)
    h, w = x.shape[-2:]
    ch, cw = crop_size(fraction, h), crop_size(fraction, w)
    # torchvision's center_crop rounds the offset the same way: int(round((h - ch) / 2)).
    top, left = round((h - ch) / 2.0), round((w - cw) / 2.0)
    return resized_crop(x, top, left, ch, cw, mode=mode)


def random_crop(x: torch.Tensor, fraction: Strength, position: Strength | None = None, *,
                generator: torch.Generator | None = None, mode: str = "bilinear") -> torch.Tensor:
    """Crop a per-image ``fraction`` of each side at a per-image position, then resize back.

    ``position`` (shape (N, 2), entries in [0, 1]) places the window within the available slack
    (0 = top/left, 1 = bottom/right); when omitted it is drawn from ``generator``.
    """
    _check(x)
    n, _, h, w = x.shape
    fracs = _as_list(fraction, n)
    if position is None:
        pos = torch.rand(n, 2, generator=generator)
    else:
        pos = torch.as_tensor(position, dtype=torch.float64).reshape(n, 2)
    out = []
    for i in range(n):
        ch, cw = crop_size(fracs[i], h), crop_size(fracs[i], w)
        top = math.floor(float(pos[i, 0]) * (h - ch) + 0.5)
        left = math.floor(float(pos[i, 1]) * (w - cw) + 0.5)
        out.append(resized_crop(x[i:i + 1], top, left, ch, cw, mode=mode))
    return torch.cat(out) if out else x.clone()


# --------------------------------------------------------------------------------------------------------
# JPEG: the real encoder, and a differentiable approximation for training
# --------------------------------------------------------------------------------------------------------
def _to_uint8(x: torch.Tensor) -> np.ndarray:
    # Same mapping as genattr.data.to_uint8 (kept local: perturbations must not depend on data loading).
    return ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).cpu().numpy()


def jpeg(x: torch.Tensor, quality: Strength, *, subsampling: int | None = None) -> torch.Tensor:
    """Round-trip each image through Pillow's (libjpeg) JPEG encoder at an integer quality in [1, 100].

    1 or 3 channels are encoded as L / RGB; other channel counts channel by channel as L. ``subsampling``
    is passed to Pillow (None = Pillow's default, 4:2:0). Not differentiable: see :func:`jpeg_differentiable`.
    """
    from PIL import Image

    _check(x)
    n, c = x.shape[:2]
    qualities = [round(q) for q in _as_list(quality, n)]
    if any(not 1 <= q <= 100 for q in qualities):
        raise ValueError(f"JPEG quality must be in [1, 100], got {qualities}")
    arr = _to_uint8(x)  # (N, C, H, W)
    kw = {} if subsampling is None else {"subsampling": subsampling}
    out = np.empty_like(arr)
    for i in range(n):
        planes = [arr[i].transpose(1, 2, 0)] if c == 3 else [arr[i, j] for j in range(c)]
        decoded = []
        for plane in planes:
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(plane)).save(buf, format="JPEG", quality=qualities[i], **kw)
            buf.seek(0)
            with Image.open(buf) as im:
                decoded.append(np.asarray(im.convert("RGB" if c == 3 else "L")))
        out[i] = decoded[0].transpose(2, 0, 1) if c == 3 else np.stack(decoded)
    y = torch.from_numpy(out).to(device=x.device, dtype=torch.float32) / 127.5 - 1.0
    return y.to(x.dtype)


# JPEG Annex K tables (the ones libjpeg/Pillow scale by quality).
_LUMA_Q = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=torch.float64)
_CHROMA_Q = torch.tensor([
    [17, 18, 24, 47, 99, 99, 99, 99], [18, 21, 26, 66, 99, 99, 99, 99],
    [24, 26, 56, 99, 99, 99, 99, 99], [47, 66, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99], [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99], [99, 99, 99, 99, 99, 99, 99, 99]], dtype=torch.float64)


def quantization_table(quality: int, *, chroma: bool = False) -> torch.Tensor:
    """The IJG quality scaling used by libjpeg: 5000/q below 50, 200 − 2q above, clamped to [1, 255]."""
    q = min(max(int(quality), 1), 100)
    scale = 5000.0 / q if q < 50 else 200.0 - 2.0 * q
    base = _CHROMA_Q if chroma else _LUMA_Q
    return torch.clamp(torch.floor((base * scale + 50.0) / 100.0), 1.0, 255.0)


def _dct_matrix(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    k = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.to(dtype=dtype, device=device)  # orthonormal DCT-II: coeffs = D @ block @ D.T


def differentiable_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) + (x − round(x))³ (Shin & Song 2017): equal to rounding up to a cubic error, non-zero grad."""
    r = torch.round(x)
    return r + (x - r) ** 3


def _jpeg_plane(p: torch.Tensor, table: torch.Tensor, dct: torch.Tensor) -> torch.Tensor:
    """Quantise one plane batch (M, H, W) in [0, 255] through 8×8 DCT blocks."""
    m, h, w = p.shape
    ph, pw = (-h) % 8, (-w) % 8
    if ph or pw:  # libjpeg pads partial blocks by edge replication
        p = F.pad(p[:, None], (0, pw, 0, ph), mode="replicate")[:, 0]
    hh, ww = p.shape[-2:]
    blocks = (p - 128.0).reshape(m, hh // 8, 8, ww // 8, 8).permute(0, 1, 3, 2, 4)
    coef = dct @ blocks @ dct.T
    coef = differentiable_round(coef / table) * table
    rec = dct.T @ coef @ dct + 128.0
    return rec.permute(0, 1, 3, 2, 4).reshape(m, hh, ww)[:, :h, :w]


def jpeg_differentiable(x: torch.Tensor, quality: Strength) -> torch.Tensor:
    """Differentiable JPEG approximation (for robust training, as Kim et al. 2021 use Zhu et al. 2018).

    The real pipeline (YCbCr, 4:2:0 chroma subsampling for RGB, 8×8 DCT, IJG-scaled quantisation tables)
    with rounding replaced by :func:`differentiable_round`, so gradients reach the input.
    """
    _check(x)
    n, c, h, w = x.shape
    qualities = [round(q) for q in _as_list(quality, n)]
    dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    dct = _dct_matrix(dtype, x.device)
    u = (x.to(dtype).clamp(-1, 1) + 1.0) * 127.5
    out = torch.empty_like(u)
    for q in sorted(set(qualities)):
        idx = torch.tensor([i for i, qi in enumerate(qualities) if qi == q], device=x.device)
        xs = u.index_select(0, idx)
        luma_t = quantization_table(q).to(dtype=dtype, device=x.device)
        if c == 3:
            r, g, b = xs[:, 0], xs[:, 1], xs[:, 2]
            # JFIF YCbCr (ITU-R BT.601, full range), as libjpeg.
            y = 0.299 * r + 0.587 * g + 0.114 * b
            cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128.0
            cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128.0
            chroma_t = quantization_table(q, chroma=True).to(dtype=dtype, device=x.device)
            y = _jpeg_plane(y, luma_t, dct)
            chroma = torch.stack([cb, cr], 1)  # (m, 2, H, W)
            if h >= 2 and w >= 2:
                sub = F.avg_pool2d(chroma, 2, ceil_mode=True)
                sub = _jpeg_plane(sub.flatten(0, 1), chroma_t, dct).view_as(sub)
                chroma = F.interpolate(sub, scale_factor=2, mode="bilinear", align_corners=False)[..., :h, :w]
            else:
                chroma = _jpeg_plane(chroma.flatten(0, 1), chroma_t, dct).view_as(chroma)
            cb, cr = chroma[:, 0] - 128.0, chroma[:, 1] - 128.0
            rgb = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
        else:
            rgb = _jpeg_plane(xs.flatten(0, 1), luma_t, dct).view_as(xs)
        out = out.index_copy(0, idx, rgb)
    # The decoder emits 8-bit pixels; round (differentiably) like it.
    return (differentiable_round(out.clamp(0, 255)) / 127.5 - 1.0).to(x.dtype)


# --------------------------------------------------------------------------------------------------------
# Noise, mirror, rotation, brightness / contrast
# --------------------------------------------------------------------------------------------------------
def gaussian_noise(x: torch.Tensor, std: Strength, generator: torch.Generator | None, *,
                   noise: torch.Tensor | None = None, clip: bool = True) -> torch.Tensor:
    """Add i.i.d. N(0, std²) noise (std in [-1, 1] units, per image or scalar), clipped back to [-1, 1].

    ``noise`` (a standard-normal tensor shaped like x) replays a previous draw instead of sampling.
    """
    _check(x)
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(device=x.device,
                                                                                  dtype=x.dtype)
    y = x + _per_image(std, x.shape[0], x) * noise
    return y.clamp(-1.0, 1.0) if clip else y


def mirror(x: torch.Tensor, flip: torch.Tensor | bool = True) -> torch.Tensor:
    """Horizontal flip, of all images or of those where the per-image boolean ``flip`` is set."""
    _check(x)
    flipped = torch.flip(x, dims=(-1,))
    if isinstance(flip, bool):
        return flipped if flip else x.clone()
    mask = torch.as_tensor(flip, dtype=torch.bool, device=x.device).view(-1, 1, 1, 1)
    return torch.where(mask, flipped, x)


def rotate(x: torch.Tensor, degrees: Strength, *, fill: float = -1.0, mode: str = "bilinear") -> torch.Tensor:
    """Rotate counter-clockwise by ``degrees`` about the image centre (torchvision's convention); the
    uncovered corners get ``fill`` (default −1, i.e. black, as torchvision's default fill 0 on [0, 1])."""
    _check(x)
    n, _, h, w = x.shape
    if n == 0:
        return x.clone()
    theta = _per_image(degrees, n, x).view(n).to(torch.float64) * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    # Output pixel p samples the input at R(-θ) p, in pixel units (so non-square images rotate rigidly).
    aspect = w / h
    mat = torch.zeros(n, 2, 3, dtype=torch.float64, device=x.device)
    mat[:, 0, 0], mat[:, 0, 1] = cos, -sin / aspect
    mat[:, 1, 0], mat[:, 1, 1] = sin * aspect, cos
    grid = F.affine_grid(mat.to(x.dtype), list(x.shape), align_corners=False)
    y = F.grid_sample(x - fill, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return y + fill


def _gray_mean(u: torch.Tensor) -> torch.Tensor:
    """Per-image mean of the ITU-R 601 luma (as PIL / torchvision), shape (N, 1, 1, 1); u in [0, 1]."""
    g = 0.299 * u[:, 0] + 0.587 * u[:, 1] + 0.114 * u[:, 2] if u.shape[1] == 3 else u.mean(1)
    return g.mean(dim=(-2, -1)).view(-1, 1, 1, 1)


def adjust_brightness(x: torch.Tensor, factor: Strength) -> torch.Tensor:
    """Scale intensities on the [0, 1] scale by ``factor`` (blend with black: torchvision / PIL)."""
    _check(x)
    u = (x + 1.0) / 2.0
    return ((u * _per_image(factor, x.shape[0], x)).clamp(0, 1) * 2.0 - 1.0)


def adjust_contrast(x: torch.Tensor, factor: Strength) -> torch.Tensor:
    """Blend each image with its mean grey level by ``factor`` (torchvision / PIL ``ImageEnhance``)."""
    _check(x)
    u = (x + 1.0) / 2.0
    f = _per_image(factor, x.shape[0], x)
    return ((f * u + (1.0 - f) * _gray_mean(u)).clamp(0, 1) * 2.0 - 1.0)


def brightness_contrast(x: torch.Tensor, brightness: Strength = 1.0, contrast: Strength = 1.0) -> torch.Tensor:
    """A global, relighting-free photometric change: brightness factor, then contrast factor."""
    return adjust_contrast(adjust_brightness(x, brightness), contrast)


__all__: Sequence[str] = [
    "adjust_brightness", "adjust_contrast", "brightness_contrast", "center_crop", "crop_size",
    "differentiable_round", "gaussian_blur", "gaussian_kernel1d", "gaussian_noise", "jpeg",
    "jpeg_differentiable", "mirror", "opencv_sigma", "quantization_table", "random_crop", "resized_crop",
    "rotate",
]
