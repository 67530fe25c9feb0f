"""Metrics as pure functions of arrays (lists, NumPy arrays or torch tensors).

Each is checked against scikit-learn / SciPy in ``tests/test_metrics.py``. Score conventions follow the
attribution contract: a higher score means "more likely positive / from this candidate".
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


def _np(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _labels_1d(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t, p = _np(y_true).reshape(-1), _np(y_pred).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    return t, p


def _binary(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    t, s = _np(y_true).reshape(-1), _np(scores).reshape(-1).astype(np.float64)
    if t.shape != s.shape:
        raise ValueError(f"y_true and scores differ in length: {t.shape[0]} vs {s.shape[0]}")
    if t.dtype != bool:
        uniq = np.unique(t)
        if not set(uniq.tolist()) <= {0, 1}:
            raise ValueError(f"binary y_true must be bool or 0/1, got values {uniq[:5].tolist()}")
        t = t.astype(bool)
    return t, s


# --------------------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------------------
def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of exact label matches (``sklearn.metrics.accuracy_score``); NaN for empty input."""
    t, p = _labels_1d(y_true, y_pred)
    return float(np.mean(t == p)) if t.size else float("nan")


def balanced_accuracy(y_true: Any, y_pred: Any) -> float:
    """Mean per-class recall over the classes present in ``y_true`` (``balanced_accuracy_score``)."""
    t, p = _labels_1d(y_true, y_pred)
    if not t.size:
        return float("nan")
    classes = np.unique(t)
    return float(np.mean([np.mean(p[t == c] == c) for c in classes]))


def confusion_matrix(y_true: Any, y_pred: Any, labels: Sequence[Hashable] | None = None) -> np.ndarray:
    """Counts C[i, j] of samples with true label ``labels[i]`` predicted as ``labels[j]``.

    ``labels`` fixes the order (default: sorted union, as scikit-learn); pairs outside it are ignored.
    """
    t, p = _labels_1d(y_true, y_pred)
    if labels is None:
        labels = sorted(set(t.tolist()) | set(p.tolist()))
    index = {lab: i for i, lab in enumerate(labels)}
    if len(index) != len(labels):
        raise ValueError("labels contain duplicates")
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for a, b in zip(t.tolist(), p.tolist(), strict=True):
        i, j = index.get(a), index.get(b)
        if i is not None and j is not None:
            cm[i, j] += 1
    return cm


# --------------------------------------------------------------------------------------------------------
# Scores: ROC, TPR at FPR, thresholds at FNR / FPR
# --------------------------------------------------------------------------------------------------------
def roc_curve(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), one point per distinct score, thresholds decreasing from +inf.

    Predicting "positive" when ``score >= threshold``; matches ``sklearn.metrics.roc_curve(...,
    drop_intermediate=False)``.
    """
    t, s = _binary(y_true, scores)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC needs both positive and negative samples")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, t_sorted = s[order], t[order]
    distinct = np.r_[np.nonzero(np.diff(s_sorted))[0], s_sorted.size - 1]
    tps = np.cumsum(t_sorted)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    thresholds = np.r_[np.inf, s_sorted[distinct]]
    return fpr, tpr, thresholds


def roc_auc(y_true: Any, scores: Any) -> float:
    """Area under the ROC curve = P(score⁺ > score⁻) + ½ P(tie) (Mann–Whitney U / (n⁺ n⁻))."""
    t, s = _binary(y_true, scores)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both positive and negative samples")
    # Midranks handle ties exactly (scipy.stats.rankdata(method="average") equivalent).
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    ranks = np.empty(s.size, dtype=np.float64)
    starts = np.r_[0, np.nonzero(np.diff(s_sorted))[0] + 1]
    ends = np.r_[starts[1:], s.size]
    for a, b in zip(starts, ends, strict=True):
        ranks[order[a:b]] = (a + b + 1) / 2.0
    u = ranks[t].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def tpr_at_fpr(y_true: Any, scores: Any, target_fpr: float) -> float:
    """Highest TPR among ROC operating points whose FPR ≤ ``target_fpr`` (no interpolation)."""
    if not 0.0 <= target_fpr <= 1.0:
        raise ValueError(f"target_fpr must be in [0, 1], got {target_fpr}")
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(tpr[fpr <= target_fpr + 1e-12].max())


def threshold_at_fnr(in_scores: Any, fnr: float) -> float:
    """FLIPAD G.1: τ such that a fraction ``fnr`` of in-distribution scores falls below it.

    FLIPAD takes the (1 − fnr)-quantile of *anomaly* scores; with "higher = more in-distribution" scores
    that is the fnr-quantile (NumPy's default linear interpolation, as ``torch.quantile``).
    """
    s = _np(in_scores).reshape(-1).astype(np.float64)
    if not s.size:
        raise ValueError("need at least one in-distribution score")
    if not 0.0 <= fnr <= 1.0:
        raise ValueError(f"fnr must be in [0, 1], got {fnr}")
    return float(np.quantile(s, fnr))


def threshold_at_fpr(negative_scores: Any, fpr: float) -> float:
    """τ such that a fraction ``fpr`` of negative (out-of-set) scores lies above it: (1 − fpr)-quantile."""
    s = _np(negative_scores).reshape(-1).astype(np.float64)
    if not s.size:
        raise ValueError("need at least one negative score")
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must be in [0, 1], got {fpr}")
    return float(np.quantile(s, 1.0 - fpr))


def accuracy_at_fnr(y_true: Any, scores: Any, fnr: float, calibration_scores: Any | None = None) -> float:
    """Single-model attribution accuracy at a threshold fixed by a target FNR (FLIPAD §5.1 / G.1).

    τ is the fnr-quantile of ``calibration_scores`` (a held-out in-distribution set, FLIPAD's X_val) or,
    when omitted, of the positives' own scores; a sample is attributed when ``score >= τ``.
    """
    t, s = _binary(y_true, scores)
    ref = s[t] if calibration_scores is None else calibration_scores
    tau = threshold_at_fnr(ref, fnr)
    return float(np.mean((s >= tau) == t))


# --------------------------------------------------------------------------------------------------------
# Bits (Yu et al. 2022)
# --------------------------------------------------------------------------------------------------------
def bit_accuracy(bits_true: Any, bits_pred: Any, *, per_sample: bool = False) -> float | np.ndarray:
    """Fraction of matching bits; ``per_sample`` gives one value per row of (n, n_bits) inputs."""
    a, b = _np(bits_true), _np(bits_pred)
    if a.shape != b.shape:
        a, b = np.broadcast_arrays(a, b)
    match = (a.astype(bool) == b.astype(bool))
    if per_sample:
        return match.reshape(match.shape[0], -1).mean(axis=1) if match.ndim > 1 else match.astype(float)
    return float(match.mean()) if match.size else float("nan")


def binomial_p_value(k: Any, n: int, p: float = 0.5) -> float | np.ndarray:
    """P(X ≥ k) for X ~ Binomial(n, p): the chance that ≥ k of n bits match by guessing (Yu et al. 2022
    §4.2; < 0.05 rejects "random guesses"). Exact in the tail (SciPy's regularised incomplete beta)."""
    from scipy.stats import binom

    k_arr = np.asarray(_np(k), dtype=np.int64)
    if np.any(k_arr < 0) or np.any(k_arr > n):
        raise ValueError(f"k must lie in [0, {n}]")
    out = binom.sf(k_arr - 1, n, p)
    return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------------------------------------
# Fréchet distance and FD ratio (Yu et al. 2019 §4.1 / supp. A)
# --------------------------------------------------------------------------------------------------------
def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_from_stats(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) (Dowson & Landau 1982).

    Tr((Σ₁Σ₂)^½) is computed as Σ √λ(Σ₁^½ Σ₂ Σ₁^½), a symmetric PSD matrix with the same spectrum, which
    avoids the complex round-off of a general matrix square root.
    """
    mu1, mu2 = _np(mu1).astype(np.float64).reshape(-1), _np(mu2).astype(np.float64).reshape(-1)
    s1, s2 = np.atleast_2d(_np(sigma1).astype(np.float64)), np.atleast_2d(_np(sigma2).astype(np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError("mean / covariance shapes do not match")
    r1 = _psd_sqrt(s1)
    lam = np.linalg.eigvalsh(r1 @ s2 @ r1)
    tr_covmean = float(np.sqrt(np.clip(lam, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean, 0.0))


def feature_stats(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (rows = samples) of an (n, d) feature array."""
    f = _np(features).astype(np.float64)
    f = f.reshape(f.shape[0], -1)
    if f.shape[0] < 2:
        raise ValueError("need at least two samples to estimate a covariance")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance(features_a: Any, features_b: Any) -> float:
    """Fréchet distance between Gaussians fitted to two (n, d) feature sets (FID when features are
    Inception activations)."""
    return frechet_distance_from_stats(*feature_stats(features_a), *feature_stats(features_b))


@dataclass(frozen=True)
class FDRatio:
    ratio: float
    inter: float
    intra: float


def fd_ratio(features: Any, labels: Any, *, seed: int = 0) -> FDRatio:
    """Yu et al. 2019 eq. 5–7: mean inter-class FD (over pairs of classes) / mean intra-class FD (between
    two random disjoint halves of each class; the split is drawn with ``seed``)."""
    f = _np(features).astype(np.float64)
    f = f.reshape(f.shape[0], -1)
    y = _np(labels).reshape(-1)
    if y.shape[0] != f.shape[0]:
        raise ValueError("features and labels differ in length")
    classes = sorted(set(y.tolist()))
    if len(classes) < 2:
        raise ValueError("FD ratio needs at least two classes")
    rng = np.random.default_rng(seed)
    stats, intra = {}, []
    for c in classes:
        fc = f[y == c]
        if fc.shape[0] < 4:
            raise ValueError(f"class {c!r} has {fc.shape[0]} samples; need at least 4 (two halves of 2)")
        stats[c] = feature_stats(fc)
        perm = rng.permutation(fc.shape[0])
        half = fc.shape[0] // 2
        intra.append(frechet_distance(fc[perm[:half]], fc[perm[half:2 * half]]))
    # FD is symmetric, so the mean over ordered pairs (eq. 6) equals the mean over unordered ones.
    inter = [frechet_distance_from_stats(*stats[a], *stats[b])
             for i, a in enumerate(classes) for b in classes[i + 1:]]
    inter_m, intra_m = float(np.mean(inter)), float(np.mean(intra))
    return FDRatio(ratio=inter_m / intra_m if intra_m > 0 else float("inf"), inter=inter_m, intra=intra_m)


# --------------------------------------------------------------------------------------------------------
# Bootstrap confidence intervals
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfidenceInterval:
    estimate: float
    low: float
    high: float
    confidence_level: float


def bootstrap_ci(statistic: Callable[..., float], *data: Any, n_resamples: int = 1000,
                 confidence_level: float = 0.95, seed: int = 0) -> ConfidenceInterval:
    """Percentile bootstrap CI of ``statistic(*data)``; the arrays are resampled *paired* (same indices),
    so e.g. ``bootstrap_ci(accuracy, y_true, y_pred)`` works. Resamples where the statistic is undefined
    (raises ValueError or returns NaN, e.g. an AUC with one class) are skipped. Matches
    ``scipy.stats.bootstrap(..., paired=True, method="percentile")`` up to Monte-Carlo error."""
    if not data:
        raise ValueError("bootstrap_ci needs at least one data array")
    arrays = [_np(d) for d in data]
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise ValueError("all data arrays must have the same length")
    if not 0.0 < confidence_level < 1.0:
        raise ValueError("confidence_level must be in (0, 1)")
    estimate = float(statistic(*arrays))
    if n == 0 or n_resamples <= 0:
        return ConfidenceInterval(estimate, float("nan"), float("nan"), confidence_level)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        try:
            v = float(statistic(*(a[idx] for a in arrays)))
        except ValueError:
            continue
        if np.isfinite(v):
            values.append(v)
    if not values:
        return ConfidenceInterval(estimate, float("nan"), float("nan"), confidence_level)
    alpha = (1.0 - confidence_level) / 2.0
    low, high = np.quantile(np.asarray(values), [alpha, 1.0 - alpha])
    return ConfidenceInterval(estimate, float(low), float(high), confidence_level)


__all__ = [
    "ConfidenceInterval", "FDRatio", "accuracy", "accuracy_at_fnr", "balanced_accuracy", "binomial_p_value",
    "bit_accuracy", "bootstrap_ci", "confusion_matrix", "fd_ratio", "feature_stats", "frechet_distance",
    "frechet_distance_from_stats", "roc_auc", "roc_curve", "threshold_at_fnr", "threshold_at_fpr",
    "tpr_at_fpr",
]
