"""Where registry keys may live (genattr.watermark.keys): the content-area mask of the border ablation and the
low-pass DCT subspace of our smooth-key extension (``KeyGenConfig.lowpass``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from genattr.errors import ConfigError


def border_mask(image_shape: Sequence[int], content: int = 28) -> torch.Tensor:
    """(C, H, W) float mask, 1 on the centred content×content area (Fashion-MNIST's 28×28 inside the 32×32
    zoo frame), 0 on the padded border that is exactly −1 in every real image."""
    c, h, w = (int(s) for s in image_shape)
    if content > min(h, w):
        raise ConfigError(f"content size {content} larger than the {h}×{w} image")
    m = torch.zeros(c, h, w)
    top, left = (h - content) // 2, (w - content) // 2
    m[:, top:top + content, left:left + content] = 1
    return m


def lowpass_basis(image_shape: Sequence[int], cutoff: int, content: int = 28) -> torch.Tensor:
    """(k, C·H·W) orthonormal rows: the 2-D DCT-II basis functions b_uv(y, x) = c_u(y) c_v(x) with u + v < cutoff
    on the centred content×content area of every channel (zero on the border), c_u the orthonormal 1-D DCT
    basis. Keys in their span are smooth: our low-pass key space (``KeyGenConfig.lowpass``)."""
    c, h, w = (int(s) for s in image_shape)
    if not 1 <= cutoff <= 2 * content - 1:
        raise ConfigError(f"lowpass cutoff must be in [1, {2 * content - 1}], got {cutoff}")
    if content > min(h, w):
        raise ConfigError(f"content size {content} larger than the {h}×{w} image")
    t = torch.arange(content, dtype=torch.float64)
    u = torch.arange(content, dtype=torch.float64)
    dct = torch.cos(math.pi * (2 * t[None, :] + 1) * u[:, None] / (2 * content)) * math.sqrt(2 / content)
    dct[0] /= math.sqrt(2)
    top, left = (h - content) // 2, (w - content) // 2
    rows = []
    for ch in range(c):
        for a in range(min(cutoff, content)):
            for b in range(min(cutoff - a, content)):
                img = torch.zeros(c, h, w, dtype=torch.float64)
                img[ch, top:top + content, left:left + content] = dct[a][:, None] * dct[b][None, :]
                rows.append(img.flatten())
    return torch.stack(rows).to(torch.float32)


__all__ = ["border_mask", "lowpass_basis"]
