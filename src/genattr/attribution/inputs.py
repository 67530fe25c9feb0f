"""The one input validator of the attribution contract: every attributor's scores go through it.

Images are float NCHW in [-1, 1] (one tolerance, :data:`RANGE_TOL`, for float round-off in callers'
pipelines), finite, and of the channel count and size the attributor was fitted on. A [0, 255] tensor, a
NaN or a 64×64 image is an :class:`InvalidInputError` naming the problem, never a silent wrong answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from genattr.errors import GenattrError

RANGE_TOL = 1e-3  # slack on [-1, 1]


class InvalidInputError(GenattrError, ValueError):
    """Images passed to an attributor do not follow the tensor convention or the fitted shape."""


def check_images(x: Any, *, what: str = "x") -> torch.Tensor:
    """Structure only: a float NCHW tensor (no copy). Use :func:`validate_images` for values and shape."""
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"{what} must be a torch.Tensor (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise InvalidInputError(f"{what} must be a batch (N, C, H, W); got shape {tuple(x.shape)} "
                                "(use x[None] for a single image)")
    if not x.is_floating_point():
        raise InvalidInputError(f"{what} must be a float tensor in [-1, 1], got {x.dtype} "
                                "(convert uint8 images with genattr.data.to_model)")
    return x


def validate_images(x: Any, shape: Sequence[int] | None = None, *, what: str = "x") -> torch.Tensor:
    """NCHW float, finite, in [-1, 1] ± :data:`RANGE_TOL`, and of the fitted ``shape`` (C, H, W) if given;
    returns ``x`` unchanged or raises :class:`InvalidInputError`."""
    x = check_images(x, what=what)
    if shape is not None and list(x.shape[1:]) != [int(s) for s in shape]:
        c, h, w = (int(s) for s in shape)
        raise InvalidInputError(f"{what}: expected images of shape (N, {c}, {h}, {w}) ({c} channel(s) at "
                                f"{h}×{w}, as fitted), got {tuple(x.shape)}")
    if x.numel():
        x_ = x.detach()
        if not bool(torch.isfinite(x_).all()):
            raise InvalidInputError(f"{what} contains NaN or infinite values")
        lo, hi = float(x_.min()), float(x_.max())
        if lo < -1 - RANGE_TOL or hi > 1 + RANGE_TOL:
            raise InvalidInputError(f"{what} has values in [{lo:.3g}, {hi:.3g}], outside [-1, 1]; "
                                    "convert uint8 images with genattr.data.to_model")
    return x


__all__ = ["RANGE_TOL", "InvalidInputError", "check_images", "validate_images"]
