"""Single-model plumbing shared by the attributors of Laszkiewicz et al. (ICML 2024): FLIPAD, RawPAD, DCTPAD,
SM-F and SM-Inv.

A model owner asks "was this made by *my* generator G?". Each attributor has exactly one candidate, G, and
maps onto the shared contract like this:

    att = create_attributor("flipad").fit(generator=G, negatives=x_real)      # or fit({"my-gan": G}, ...)
    att.calibrate({att.candidates_[0]: x_val_from_G}, target_fnr=0.005)       # G.1 threshold
    att.predict(x)                                                             # ["my-gan", "UNKNOWN", ...]

``fit(generator=G, negatives=x_neg, name=None)`` is a thin wrapper over the contract's
``fit({name: G}, negatives=x_neg)``: the candidate is named ``name``, else the generator's ``zoo_name`` /
``arch`` attribute, else ``"G"``. ``negatives`` is a tensor (N, C, H, W) in [-1, 1] (real images or another
generator's samples); SM-F and SM-Inv do not learn from negatives and ignore them. The optional fit
parameter ``positives`` (a tensor of G's images) replaces the ``n_train`` samples the method would draw —
e.g. perturbed samples for the "immunised" setting of Table 3 (FLIPAD still needs G itself for z̄ and A).
``decision_function`` returns (n, 1) scores, higher = more likely from G: the negated anomaly score of each
method, so the base class's FNR calibration sets τ at the (1 − fnr)-quantile of the validation anomaly
scores (G.1).

Positives are ``n_train`` samples of G drawn with ``seed``; with ``quantize=True`` they are rounded to 8-bit
levels first, as images saved to PNG (the form in which content is deployed and real images are stored):
otherwise a detector could learn "exact float output of G" versus "8-bit image", which says nothing about
the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import torch

from genattr.attribution.base import Attributor, Capabilities
from genattr.attribution.inputs import validate_images
from genattr.data import quantize_8bit
from genattr.errors import ConfigError
from genattr.sampling import derive_seed, draw


def _default_name(generator: Any) -> str:
    for attr in ("zoo_name", "arch"):
        v = getattr(generator, attr, None)
        if isinstance(v, str) and v:
            return v
    return "G"


class SingleModelAttributor(Attributor):
    """Shared plumbing: one candidate G, ``fit(generator=G, negatives=...)``, input checks, positives."""

    capabilities = Capabilities(needs_training_images=True, supports_open_set=True)
    needs_negatives = True
    # hyperparameters the plumbing reads (subclasses store them; SM-Inv has no n_train / quantize)
    seed: int
    quantize: bool = False
    image_shape_: list[int]

    def fit(self, candidates: Mapping[str, Any] | None = None, /, *, generator: Any = None,
            negatives: torch.Tensor | None = None, name: str | None = None, **fit_params: Any) -> Self:
        """``fit(generator=G, negatives=x_neg)`` or the contract's ``fit({name: G}, negatives=x_neg)``."""
        if generator is not None:
            if candidates is not None:
                raise ConfigError("pass either candidates {name: G} or generator=G, not both")
            candidates = {name or _default_name(generator): generator}
        elif candidates is None:
            raise ConfigError(f"{type(self).__name__}.fit needs generator=G (or a mapping {{name: G}})")
        elif name is not None:
            raise ConfigError("name= only applies with generator=G")
        if isinstance(candidates, Mapping) and len(candidates) != 1:
            raise ConfigError(f"{type(self).__name__} is a single-model method: fit one generator, "
                              f"got {len(candidates)} candidates")
        return super().fit(candidates, negatives=negatives, **fit_params)

    # -- helpers -------------------------------------------------------------------------------------------
    def _positives(self, name: str, src: Any, n: int) -> torch.Tensor:
        if isinstance(src, torch.Tensor):
            return validate_images(src, what=f"candidates[{name!r}]").detach().float().clone()
        if n < 1:
            raise ConfigError(f"n_train must be >= 1, got {n}")
        g = torch.Generator().manual_seed(derive_seed(self.seed, "positives", name))
        x = draw(src, n, g)
        x = quantize_8bit(x) if self.quantize else x
        return validate_images(x, what=f"samples of {name!r}")

    def _negatives(self, negatives: Any, shape: list[int]) -> torch.Tensor | None:
        if negatives is None:
            if self.needs_negatives:
                raise ConfigError(f"{type(self).__name__}.fit needs negatives=images (real images or another "
                                  "generator's samples), a tensor (N, C, H, W) in [-1, 1]")
            return None
        if not isinstance(negatives, torch.Tensor):
            raise ConfigError(f"negatives must be a tensor (N, C, H, W), got {type(negatives).__name__}")
        x = validate_images(negatives, shape, what="negatives")
        if x.shape[0] == 0 and self.needs_negatives:
            raise ConfigError("negatives is empty")
        return x.detach().float()

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        return validate_images(x, self.image_shape_).detach().to("cpu", torch.float32)


__all__ = ["SingleModelAttributor"]
