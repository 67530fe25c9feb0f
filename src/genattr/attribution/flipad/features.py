"""Feature maps for the single-model attributors (FLIPAD §4.1, appendix E and G.7).

* RawPAD: the image, nearest-neighbour downsampled to ``size`` (G.7: to 32×32; our zoo is already 32×32).
* DCTPAD: log(|DCT-II(center-crop(x))| + 1e-10) per channel (G.7; centre crops rather than resizing keep
  the spectrum undistorted).
* FLIPAD: final-layer inversions (eq. 5) max-pooled to a small spatial size (G.7 "max-pooling performed
  best").
* SM-F: PRNU-style noise residuals (Marra et al. 2019, appendix E).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from genattr.errors import ConfigError


def raw_features(x: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """RawPAD input: nearest-neighbour resize to ``size`` × ``size`` (unchanged when None or equal)."""
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="nearest")


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    if size > min(h, w) or size < 1:
        raise ConfigError(f"cannot centre-crop {h}×{w} images to {size}×{size}")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def dct_matrix(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Orthonormal DCT-II matrix D (n × n): the 1-D transform of v is D v."""
    k = torch.arange(n, dtype=dtype)[:, None]
    i = torch.arange(n, dtype=dtype)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def dct2(x: torch.Tensor) -> torch.Tensor:
    """2-D orthonormal DCT-II over the last two dimensions (per channel)."""
    dh = dct_matrix(x.shape[-2]).to(x.dtype)
    dw = dct_matrix(x.shape[-1]).to(x.dtype)
    return dh @ x @ dw.T


def dct_features(x: torch.Tensor, crop: int | None = None, eps: float = 1e-10) -> torch.Tensor:
    """DCTPAD input (G.7): log(|DCT(center-crop(x))| + ε)."""
    if crop is not None:
        x = center_crop(x, crop)
    return torch.log(dct2(x.double()).abs() + eps).to(x.dtype)


def pool_features(z: torch.Tensor, size: int | None) -> torch.Tensor:
    """Max-pool inversion features to ``size`` × ``size`` (unchanged when None or already that small)."""
    if size is None or (z.shape[-2] <= size and z.shape[-1] <= size):
        return z
    return F.adaptive_max_pool2d(z, (size, size))


def gaussian_residual(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Noise residual r = x − denoise(x) with a 3×3 Gaussian denoiser (per channel, replicate padding).

    Marra et al. use a wavelet denoiser on megapixel images; at 32×32 a small linear low-pass keeps the
    residual local and cheap. The residual is what the fingerprint (its mean over G's samples) is made of.
    """
    k = torch.exp(-torch.arange(-1, 2, dtype=x.dtype) ** 2 / (2 * sigma * sigma))
    k = k / k.sum()
    c = x.shape[1]
    kh = k.view(1, 1, 3, 1).repeat(c, 1, 1, 1)
    kw = k.view(1, 1, 1, 3).repeat(c, 1, 1, 1)
    y = F.conv2d(F.pad(x, (0, 0, 1, 1), mode="replicate"), kh, groups=c)
    y = F.conv2d(F.pad(y, (1, 1, 0, 0), mode="replicate"), kw, groups=c)
    return x - y


def standardize(v: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-sample zero-mean, unit-variance flattening (SM-F's x̃ and f̃_G)."""
    flat = v.flatten(1).double()
    flat = flat - flat.mean(1, keepdim=True)
    return flat / flat.pow(2).mean(1, keepdim=True).sqrt().clamp_min(eps)


__all__ = ["center_crop", "dct2", "dct_features", "dct_matrix", "gaussian_residual", "pool_features",
           "raw_features", "standardize"]
