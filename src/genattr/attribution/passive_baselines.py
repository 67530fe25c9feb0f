"""The passive baselines of Yu et al. 2019 §4.1: kNN on raw pixels, Eigenface (PCA + nearest neighbour) and
the PRNU-style GAN fingerprint of Marra et al. (MIPR 2019).

* ``knn`` — per-candidate score = −(mean Euclidean distance to the k nearest training images of that
  candidate). With k = 1 (the default) the arg-max is exactly the 1-nearest-neighbour rule; this per-class
  form (rather than a vote count) gives continuous, tie-free scores that can be calibrated for open-set use.
* ``eigenface`` — Sirovich & Kirby 1987: project the (mean-centred) pixels on the top ``n_components``
  principal components of the pooled training images, then the same nearest-neighbour scores there.
* ``prnu`` — Marra et al.: noise residual r = x − denoise(x); the source fingerprint is the mean residual
  of its training images; an image is scored by the normalised correlation (zero-mean, unit-norm inner
  product) between its residual and each fingerprint. Marra et al. denoise with a wavelet filter; we use
  the local adaptive Wiener filter (``scipy.signal.wiener`` semantics, computed in torch), the classic
  PRNU choice that works at 32×32.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from genattr.attribution.base import Attributor, Capabilities, InvalidInputError, check_images
from genattr.attribution.registry import register_attributor
from genattr.errors import ConfigError
from genattr.sampling import derive_seed, draw

DENOISERS = ("wiener", "box", "gaussian")


# --------------------------------------------------------------------------------------------------------
# PRNU maths
# --------------------------------------------------------------------------------------------------------
def _box_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Local mean over a window×window neighbourhood with zero padding, divided by the full window size
    (``scipy.signal.correlate(..., 'same') / window**2``, as ``scipy.signal.wiener``)."""
    c = x.shape[1]
    k = torch.full((c, 1, window, window), 1.0 / window**2, dtype=x.dtype, device=x.device)
    return F.conv2d(x, k, padding=window // 2, groups=c)


def wiener_denoise(x: torch.Tensor, window: int = 3, noise: float | None = None) -> torch.Tensor:
    """Local adaptive Wiener filter, per image and channel (``scipy.signal.wiener(img, window, noise)``).

    μ, σ² are the local mean and variance; ν the noise power (default: the mean of σ² over the image).
    Output μ + (1 − ν/σ²)(x − μ) where σ² ≥ ν, else μ.
    """
    if window < 1 or window % 2 == 0:
        raise ConfigError(f"window must be a positive odd integer, got {window}")
    x64 = x.to(torch.float64)
    mu = _box_mean(x64, window)
    var = _box_mean(x64 * x64, window) - mu * mu
    nu = var.mean(dim=(2, 3), keepdim=True) if noise is None else torch.as_tensor(noise, dtype=torch.float64)
    safe = torch.where(var > 0, var, torch.ones_like(var))
    out = mu + (1.0 - nu / safe) * (x64 - mu)
    return torch.where(var < nu, mu, out).to(x.dtype)


def denoise(x: torch.Tensor, method: str = "wiener", window: int = 3) -> torch.Tensor:
    if method == "wiener":
        return wiener_denoise(x, window)
    if method == "box":
        return _box_mean(x, window)
    if method == "gaussian":
        from genattr.perturbations.functional import gaussian_blur

        return gaussian_blur(x, window)
    raise ConfigError(f"unknown denoiser {method!r}; use one of {DENOISERS}")


def noise_residual(x: torch.Tensor, method: str = "wiener", window: int = 3) -> torch.Tensor:
    """Marra et al.: the noise residual r = x − f(x) of a denoising filter f."""
    return x - denoise(x, method, window)


def normalized_correlation(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """corr(A, B) = Â · B̂ with Â, B̂ the zero-mean, unit-norm, vectorised images (Yu et al. eq. 3, Marra et
    al.). ``a`` (n, ...) and ``b`` (k, ...) → (n, k) in [−1, 1]."""
    af = a.flatten(1).to(torch.float64)
    bf = b.flatten(1).to(torch.float64)
    af = af - af.mean(1, keepdim=True)
    bf = bf - bf.mean(1, keepdim=True)
    af = af / af.norm(dim=1, keepdim=True).clamp_min(eps)
    bf = bf / bf.norm(dim=1, keepdim=True).clamp_min(eps)
    return af @ bf.T


# --------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------
def _draw_candidates(candidates: Mapping[str, Any], n_samples: int, seed: int) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    shape = None
    for name, src in candidates.items():
        g = torch.Generator().manual_seed(derive_seed(seed, name))
        x = check_images(draw(src, None if isinstance(src, torch.Tensor) else n_samples, g),
                         what=f"candidates[{name!r}]")
        shape = list(x.shape[1:]) if shape is None else shape
        if x.shape[0] == 0 or list(x.shape[1:]) != shape:
            raise InvalidInputError(f"candidate {name!r}: no images, or of shape {list(x.shape[1:])} "
                                    f"instead of {shape}")
        out[name] = x
    return out


def _check_positive(obj: Any, *names: str) -> None:
    for p in names:
        v = getattr(obj, p)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{p} must be a positive integer, got {v!r}")


def _class_knn_scores(q: torch.Tensor, bank: torch.Tensor, labels: torch.Tensor, n_classes: int, k: int,
                      chunk: int = 256) -> torch.Tensor:
    """(n, n_classes): −mean distance to the k nearest bank rows of each class (float64, exact per row)."""
    q = q.to(torch.float64)
    bank = bank.to(torch.float64)
    bank_sq = (bank * bank).sum(1)
    out = torch.empty(q.shape[0], n_classes, dtype=torch.float64)
    for s in range(0, q.shape[0], chunk):
        qb = q[s:s + chunk]
        d2 = (qb * qb).sum(1, keepdim=True) - 2.0 * qb @ bank.T + bank_sq
        d = d2.clamp_min(0).sqrt()
        for c in range(n_classes):
            dc = d[:, labels == c]
            kk = min(k, dc.shape[1])
            out[s:s + chunk, c] = -dc.topk(kk, dim=1, largest=False).values.mean(1)
    return out


# --------------------------------------------------------------------------------------------------------
# Attributors
# --------------------------------------------------------------------------------------------------------
@register_attributor("knn")
class KNNPixels(Attributor):
    """k-nearest-neighbour on raw pixels (Yu et al. 2019 §4.1 baseline); see the module docstring."""

    capabilities = Capabilities(needs_training_images=True, supports_open_set=True)

    def __init__(self, *, k: int = 1, n_samples: int = 2000, seed: int = 0) -> None:
        self.k = k
        self.n_samples = n_samples
        self.seed = seed

    def _fit(self, candidates: Mapping[str, Any], **fit_params: Any) -> None:
        if fit_params:
            raise ConfigError(f"{self.name} takes no fit parameters, got {sorted(fit_params)}")
        _check_positive(self, "k", "n_samples")
        data = _draw_candidates(candidates, self.n_samples, self.seed)
        first = next(iter(data.values()))
        self.image_shape_ = list(first.shape[1:])
        self.bank_ = torch.cat([v.flatten(1) for v in data.values()]).float()
        self.bank_labels_ = torch.cat([torch.full((v.shape[0],), i, dtype=torch.long)
                                       for i, v in enumerate(data.values())])

    def _embed(self, flat: torch.Tensor) -> torch.Tensor:
        return flat

    def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
        if list(x.shape[1:]) != self.image_shape_:
            raise InvalidInputError(f"expected images of shape {self.image_shape_}, got {list(x.shape[1:])}")
        q = self._embed(x.detach().to("cpu", torch.float32).flatten(1))
        return _class_knn_scores(q, self.bank_, self.bank_labels_, len(self.candidates_), self.k).float()


@register_attributor("eigenface")
class Eigenface(KNNPixels):
    """Eigenface (Sirovich & Kirby 1987): PCA of the pooled training pixels, nearest neighbour in PCA space."""

    def __init__(self, *, n_components: int = 64, k: int = 1, n_samples: int = 2000, seed: int = 0) -> None:
        super().__init__(k=k, n_samples=n_samples, seed=seed)
        self.n_components = n_components

    def _fit(self, candidates: Mapping[str, Any], **fit_params: Any) -> None:
        _check_positive(self, "n_components")
        super()._fit(candidates, **fit_params)
        flat = self.bank_.double()
        self.pca_mean_ = flat.mean(0)
        # Principal axes = right singular vectors of the centred data; sign fixed for reproducibility.
        _, _, vh = torch.linalg.svd(flat - self.pca_mean_, full_matrices=False)
        comps = vh[: min(self.n_components, vh.shape[0])]
        signs = torch.sign(comps[torch.arange(comps.shape[0]), comps.abs().argmax(1)])
        self.components_ = (comps * signs[:, None]).float()
        self.pca_mean_ = self.pca_mean_.float()
        self.bank_ = self._embed(self.bank_)

    def _embed(self, flat: torch.Tensor) -> torch.Tensor:
        if "components_" not in vars(self):  # during fit, before PCA
            return flat
        return (flat.double() - self.pca_mean_.double()) @ self.components_.double().T


@register_attributor("prnu")
class PRNUFingerprint(Attributor):
    """Marra et al. 2019 PRNU-style GAN fingerprints (Yu et al. 2019 baseline); see the module docstring.

    Fit parameter ``augment``: a Perturbation applied to the training images before averaging residuals
    (the §4.4 "immunised" PRNU: fingerprints estimated from attacked images).
    """

    capabilities = Capabilities(needs_training_images=True, supports_open_set=True)

    def __init__(self, *, denoiser: str = "wiener", window: int = 3, n_samples: int = 2000, seed: int = 0) -> None:
        self.denoiser = denoiser
        self.window = window
        self.n_samples = n_samples
        self.seed = seed

    def _fit(self, candidates: Mapping[str, Any], *, augment: Any = None) -> None:
        _check_positive(self, "window", "n_samples")
        if self.denoiser not in DENOISERS:
            raise ConfigError(f"unknown denoiser {self.denoiser!r}; use one of {DENOISERS}")
        data = _draw_candidates(candidates, self.n_samples, self.seed)
        fps = []
        for name, x in data.items():
            if augment is not None:
                g = torch.Generator().manual_seed(derive_seed(self.seed, "augment", name))
                with torch.no_grad():
                    x = augment.apply(x, augment.sample_params(x.shape[0], g)).float()
            fps.append(noise_residual(x, self.denoiser, self.window).double().mean(0))
        self.image_shape_ = list(next(iter(data.values())).shape[1:])
        self.fingerprints_ = torch.stack(fps).float()

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return noise_residual(x.detach().to("cpu", torch.float32), self.denoiser, self.window)

    def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
        if list(x.shape[1:]) != self.image_shape_:
            raise InvalidInputError(f"expected images of shape {self.image_shape_}, got {list(x.shape[1:])}")
        return normalized_correlation(self.residual(x), self.fingerprints_).float()


__all__ = ["DENOISERS", "Eigenface", "KNNPixels", "PRNUFingerprint", "denoise", "noise_residual",
           "normalized_correlation", "wiener_denoise"]
