"""A Gaussian one-class model on Deep SAD's input features, and the AND-fusion of anomaly scores.

Why (docs/flipad.md, "Second detector"): with real images as the only negatives, Deep SAD learns the
direction that separates G from *real* images and maps other generators' features inside its sphere; a
Ledoit–Wolf Gaussian fitted on G's features alone models every direction of G's feature distribution and
rejects many of those generators, but is weaker against real images. Accepting a sample only when both
accept keeps the strengths of each. Pure functions; the attributors hold the state.
"""

from __future__ import annotations

import torch

from genattr.errors import ConfigError


def fit_gaussian(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, precision) of flattened features x (n, ...) with Ledoit–Wolf shrinkage (scikit-learn), float32.

    A ridge of 1e-6 × the mean variance (and 1e-12 absolute) keeps the precision finite when G's features
    are (nearly) constant, where scikit-learn's pseudo-inverse would return 0 and accept everything.
    """
    from sklearn.covariance import LedoitWolf

    flat = x.flatten(1).double()
    if flat.shape[0] < 2:
        raise ConfigError("a Gaussian model needs at least two samples")
    lw = LedoitWolf().fit(flat.numpy())
    cov = torch.from_numpy(lw.covariance_)
    ridge = 1e-6 * float(cov.diagonal().mean()) + 1e-12
    precision = torch.linalg.inv(cov + ridge * torch.eye(cov.shape[0], dtype=cov.dtype))
    return torch.from_numpy(lw.location_).float(), precision.float().contiguous()  # inv returns column-major


def mahalanobis(x: torch.Tensor, mean: torch.Tensor, precision: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """√((x − μ)ᵀ P (x − μ)) per sample, (n,) float64."""
    out = []
    p = precision.double()
    for i in range(0, x.shape[0], batch_size):
        d = x[i:i + batch_size].flatten(1).double() - mean.double()
        out.append(((d @ p) * d).sum(1).clamp_min(0).sqrt())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def tail_scale(anomaly: torch.Tensor, tail: float) -> tuple[float, float]:
    """(median, q_{1−tail} − median) of in-distribution anomaly scores: maps each score onto a common scale on
    which the per-component threshold at FNR ``tail`` sits at 1."""
    a = anomaly.double().reshape(-1)
    if a.numel() == 0 or not 0 < tail < 1:
        raise ConfigError("tail_scale needs scores and 0 < tail < 1")
    med = float(a.median())
    spread = float(torch.quantile(a, 1.0 - tail)) - med
    return med, max(spread, 1e-6 * abs(med) + 1e-12)  # constant scores: any deviation is anomalous


def fuse_max(anomalies: torch.Tensor, centers: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """AND-fusion of K anomaly scores (n, K): max_k (a_k − m_k) / s_k — a sample is as anomalous as its most
    anomalous component, so thresholding it accepts a sample only when every component accepts it."""
    return ((anomalies.double() - centers.double()) / scales.double()).max(1).values


__all__ = ["fit_gaussian", "fuse_max", "mahalanobis", "tail_scale"]
