"""Image sources, duck-typed: a tensor, anything with ``sample(n, generator=...)``, or a callable.

* a tensor (N, C, H, W) in [-1, 1] — a fixed set (real data, an image folder loaded with
  ``genattr.data``); drawing n returns its first n images;
* an object with ``sample(n, generator=torch.Generator) -> Tensor`` — e.g. ``genattr.generators.Generator``;
* a callable ``(n, generator) -> Tensor``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch

from genattr.errors import ConfigError


@runtime_checkable
class SamplingSource(Protocol):
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor: ...


Source = torch.Tensor | SamplingSource | Callable[[int, torch.Generator], torch.Tensor]


def derive_seed(*parts: Any) -> int:
    """A stable 63-bit seed from any printable parts (unlike ``hash``, identical across processes)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def source_size(source: Source) -> int | None:
    """Number of images in a fixed source; None for sampling sources (unbounded)."""
    return int(source.shape[0]) if isinstance(source, torch.Tensor) else None


def draw(source: Source, n: int | None, generator: torch.Generator | None = None, *,
         batch_size: int = 256) -> torch.Tensor:
    """n images from a source, float32 on the CPU; deterministic given the generator's state.

    For a tensor source, ``n=None`` (or n larger than the set) returns all of it. Sampling sources are
    drawn in chunks of ``batch_size`` under ``torch.no_grad()``.
    """
    if isinstance(source, torch.Tensor):
        if source.ndim != 4 or not source.is_floating_point():
            raise ConfigError(f"tensor sources must be float (N, C, H, W); got {source.dtype} {tuple(source.shape)}")
        x = source if n is None else source[:n]
        return x.detach().to("cpu", torch.float32).clone()
    if n is None or n <= 0:
        raise ConfigError(f"sampling sources need a positive number of images n, got {n}")
    if hasattr(source, "sample") and callable(source.sample):
        fn: Callable[[int, torch.Generator | None], torch.Tensor] = \
            lambda k, g: source.sample(k, generator=g)  # type: ignore[union-attr]  # noqa: E731
    elif callable(source):
        fn = source  # type: ignore[assignment]
    else:
        raise ConfigError(f"unsupported source {type(source).__name__}: give a tensor, an object with "
                          "sample(n, generator=...) or a callable (n, generator) -> tensor")
    from genattr.progress import phase

    parts = []
    with torch.no_grad(), phase("sampling", total=n) as advance:
        for start in range(0, n, batch_size):
            k = min(batch_size, n - start)
            out = fn(k, generator)
            if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[0] != k:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ConfigError(f"source returned {got} for n={k}; expected a (n, C, H, W) tensor")
            parts.append(out.detach().to("cpu", torch.float32))
            advance(k)
    return torch.cat(parts)


def sample_8bit(source: Source, n: int, seed: int) -> torch.Tensor:
    """n images of a source rounded to 8-bit levels (as deployed PNGs), deterministic in ``seed``."""
    from genattr.data import quantize_8bit

    return quantize_8bit(draw(source, n, torch.Generator().manual_seed(seed)))


__all__ = ["SamplingSource", "Source", "derive_seed", "draw", "sample_8bit", "source_size"]
