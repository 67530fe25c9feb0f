"""Trivial reference attributors. ``nearest-mean`` is also the worked example of the contract: copy this
file to add a method (see ``docs/contract.md``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from genattr.attribution.base import Attributor, Capabilities, InvalidInputError, check_images
from genattr.attribution.registry import register_attributor
from genattr.errors import ConfigError
from genattr.sampling import derive_seed, draw


@register_attributor("nearest-mean")
class NearestMean(Attributor):
    """Score = −(mean squared pixel distance to the candidate's mean image).

    A nearest-class-mean classifier over raw pixels: the weakest sensible attributor, used as a floor in
    benchmarks and as the contract's toy example. ``fit`` takes, per candidate, a tensor of images or a
    source with ``sample(n, generator=...)`` (``n_samples`` images are drawn, seeded by ``seed``).
    With ``standardize=True`` each pixel is divided by its pooled standard deviation first.
    """

    capabilities = Capabilities(needs_training_images=True, supports_open_set=True)

    def __init__(self, *, n_samples: int = 256, standardize: bool = False, seed: int = 0) -> None:
        self.n_samples = n_samples
        self.standardize = standardize
        self.seed = seed

    def _fit(self, candidates: Mapping[str, Any], **fit_params: Any) -> None:
        if fit_params:
            raise ConfigError(f"nearest-mean takes no fit parameters, got {sorted(fit_params)}")
        if self.n_samples < 1:
            raise ConfigError(f"n_samples must be >= 1, got {self.n_samples}")
        means, sq_dev, counts = [], [], []
        shape = None
        for name, src in candidates.items():
            g = torch.Generator().manual_seed(derive_seed(self.seed, name))
            imgs = check_images(draw(src, None if isinstance(src, torch.Tensor) else self.n_samples, g),
                                what=f"candidates[{name!r}]")
            shape = list(imgs.shape[1:]) if shape is None else shape
            if imgs.shape[0] == 0 or list(imgs.shape[1:]) != shape:
                raise InvalidInputError(f"candidate {name!r}: no images, or of shape {list(imgs.shape[1:])} "
                                        f"instead of {shape}")
            x = imgs.flatten(1).double()
            mu = x.mean(0)
            means.append(mu)
            sq_dev.append(((x - mu) ** 2).sum(0))
            counts.append(x.shape[0])
        self.image_shape_ = shape
        self.means_ = torch.stack(means).float()
        if self.standardize:
            pooled = torch.stack(sq_dev).sum(0) / max(sum(counts) - len(counts), 1)
            self.scale_ = pooled.sqrt().clamp_min(1e-6).float()

    def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
        if list(x.shape[1:]) != self.image_shape_:
            raise InvalidInputError(f"expected images of shape {self.image_shape_}, got {list(x.shape[1:])}")
        flat = x.detach().to("cpu", torch.float32).flatten(1)
        means = self.means_
        if self.standardize:
            flat, means = flat / self.scale_, means / self.scale_
        # One candidate at a time keeps memory at O(n·d) and each score independent of the batch.
        return torch.stack([-((flat - m) ** 2).mean(1) for m in means], dim=1)


__all__ = ["NearestMean"]
