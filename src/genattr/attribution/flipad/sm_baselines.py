"""Appendix E baselines of Laszkiewicz et al. (ICML 2024): SM-F (mean noise-residual fingerprint) and SM-Inv
(latent inversion with restarts)."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from genattr.attribution.base import Capabilities
from genattr.attribution.flipad.features import gaussian_residual, standardize
from genattr.attribution.flipad.inversion import generator_forward, invert_latents
from genattr.attribution.flipad.single_model import SingleModelAttributor
from genattr.attribution.registry import register_attributor
from genattr.errors import ConfigError
from genattr.sampling import derive_seed


@register_attributor("sm-f")
class SMFingerprint(SingleModelAttributor):
    """SM-F (appendix E): fingerprint f_G = mean noise residual of ``n_train`` samples of G; score
    f̃_Gᵀ r̃(x) / D, the correlation of x's standardised residual with the standardised fingerprint (the
    negated anomaly score s(x) = −f̃ᵀx̃). Residuals: a 3×3 Gaussian denoiser (see ``gaussian_residual``)."""

    needs_negatives = False

    def __init__(self, *, n_train: int = 10_000, sigma: float = 1.0, quantize: bool = True, seed: int = 0) -> None:
        self.n_train = n_train
        self.sigma = sigma
        self.quantize = quantize
        self.seed = seed

    def _fit(self, candidates: Mapping[str, Any], *, negatives: torch.Tensor | None = None,
             positives: torch.Tensor | None = None) -> None:
        (name, src), = candidates.items()
        t0 = time.perf_counter()
        pos = self._positives(name, src if positives is None else positives, self.n_train)
        self.image_shape_ = list(pos.shape[1:])
        self._negatives(negatives, self.image_shape_)  # validated, not used (SM-F learns from G only)
        fp = torch.zeros(self.image_shape_, dtype=torch.float64)
        for i in range(0, pos.shape[0], 1024):
            fp += gaussian_residual(pos[i:i + 1024].double(), self.sigma).sum(0)
        self.fingerprint_ = (fp / pos.shape[0]).float()
        self.timings_ = {"fingerprint_s": time.perf_counter() - t0, "n_positives": int(pos.shape[0])}

    def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check(x)
        r = standardize(gaussian_residual(x.double(), self.sigma))
        f = standardize(self.fingerprint_[None].double())
        return ((r @ f.T) / r.shape[1]).float()


@register_attributor("sm-inv")
class SMInversion(SingleModelAttributor):
    """SM-Inv₂ (appendix E): s(x) = ‖x − G(ẑ)‖₂ / D with ẑ the best of ``restarts`` Adam inversions
    (G.7: 10 restarts, lr 0.1, 1000 steps); score −s(x). All images start from the same ``restarts`` seeds
    (drawn once at fit), so each image's score is independent of its batch."""

    capabilities = Capabilities(needs_generator_weights=True, supports_open_set=True)
    needs_negatives = False

    def __init__(self, *, restarts: int = 10, steps: int = 1000, lr: float = 0.1, chunk_size: int = 64,
                 seed: int = 0) -> None:
        self.restarts = restarts
        self.steps = steps
        self.lr = lr
        self.chunk_size = chunk_size
        self.seed = seed

    def _fit(self, candidates: Mapping[str, Any], *, negatives: torch.Tensor | None = None) -> None:
        (name, src), = candidates.items()
        if not (isinstance(src, nn.Module) and hasattr(src, "arch") and hasattr(src, "config")
                and hasattr(src, "latent_dim")):
            raise ConfigError(f"SM-Inv needs the weights of {name!r}: a genattr Generator (from genattr.zoo or "
                              "genattr.generators)")
        if self.restarts < 1 or self.steps < 0 or self.lr <= 0:
            raise ConfigError("SM-Inv needs restarts >= 1, steps >= 0 and lr > 0")
        self.generator_spec_ = {"arch": src.arch, "config": src.config}
        gen = copy.deepcopy(src)
        generator_forward(gen)
        self.generator_ = gen
        with torch.no_grad():
            x0 = gen(torch.zeros(1, src.latent_dim))
        self.image_shape_ = list(x0.shape[1:])
        self._negatives(negatives, self.image_shape_)
        g = torch.Generator().manual_seed(derive_seed(self.seed, "sm-inv-restarts"))
        self.z_init_ = torch.randn(self.restarts, src.latent_dim, generator=g)

    def _build_module(self, name: str) -> nn.Module:
        from genattr.generators import create_generator

        gen = create_generator(self.generator_spec_["arch"], **self.generator_spec_["config"])
        return generator_forward(gen)

    def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check(x)
        res = invert_latents(self.generator_, x, self.z_init_, steps=self.steps, lr=self.lr,
                             chunk_size=self.chunk_size)
        return -res.distance[:, None].float()


__all__ = ["SMFingerprint", "SMInversion"]
