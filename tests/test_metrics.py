"""Every metric against scikit-learn / SciPy (or an exact computation)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import sklearn.metrics as skm
import torch

from genattr import UNKNOWN
from genattr.metrics import (
    Accuracy,
    BalancedAccuracy,
    BitAccuracy,
    ConfusionMatrix,
    FrechetDistance,
    RocAuc,
    TprAtFpr,
    accuracy,
    accuracy_at_fnr,
    balanced_accuracy,
    binomial_p_value,
    bit_accuracy,
    bootstrap_ci,
    confusion_matrix,
    fd_ratio,
    frechet_distance,
    frechet_distance_from_stats,
    roc_auc,
    roc_curve,
    threshold_at_fnr,
    threshold_at_fpr,
    tpr_at_fpr,
)

RNG = np.random.default_rng(0)
NAMES = np.array(["dcgan", "lsgan", "wgan", UNKNOWN], dtype=object)


def _labels(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    t = NAMES[r.integers(0, 4, n)]
    p = np.where(r.random(n) < 0.7, t, NAMES[r.integers(0, 4, n)])
    return t, p


def _binary(n: int = 300, seed: int = 0, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    y = r.random(n) < 0.4
    s = r.normal(size=n) + 1.2 * y
    return y, (np.round(s, 1) if ties else s)


def test_accuracy_balanced_accuracy_confusion_matrix_match_sklearn() -> None:
    t, p = _labels()
    assert accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
    assert balanced_accuracy(t, p) == pytest.approx(skm.balanced_accuracy_score(t, p))
    labels = ["dcgan", "lsgan", "wgan", UNKNOWN]
    np.testing.assert_array_equal(confusion_matrix(t, p, labels=labels), skm.confusion_matrix(t, p, labels=labels))
    np.testing.assert_array_equal(confusion_matrix(t, p), skm.confusion_matrix(t, p))
    # A label subset ignores other pairs, as scikit-learn does.
    np.testing.assert_array_equal(confusion_matrix(t, p, labels=["wgan", "dcgan"]),
                                  skm.confusion_matrix(t, p, labels=["wgan", "dcgan"]))
    assert math.isnan(accuracy([], []))
    with pytest.raises(ValueError):
        accuracy([1, 2], [1])


def test_integer_and_tensor_labels() -> None:
    t, p = torch.tensor([0, 1, 2, 2, 1]), torch.tensor([0, 2, 2, 2, 1])
    assert accuracy(t, p) == pytest.approx(skm.accuracy_score(t.numpy(), p.numpy()))
    assert balanced_accuracy(t, p) == pytest.approx(skm.balanced_accuracy_score(t.numpy(), p.numpy()))


@pytest.mark.parametrize("ties", [False, True])
def test_roc_curve_and_auc_match_sklearn(ties: bool) -> None:
    y, s = _binary(ties=ties)
    fpr, tpr, thr = roc_curve(y, s)
    rf, rt, rth = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, rf)
    np.testing.assert_allclose(tpr, rt)
    np.testing.assert_allclose(thr[1:], rth[1:])
    assert math.isinf(thr[0])
    assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert roc_auc(y.astype(int), torch.tensor(s)) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    with pytest.raises(ValueError):
        roc_auc(np.ones(5, bool), np.arange(5))


@pytest.mark.parametrize("target", [0.0, 0.01, 0.1, 0.5])
def test_tpr_at_fpr_matches_sklearn_curve(target: float) -> None:
    y, s = _binary(500, seed=1)
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    assert tpr_at_fpr(y, s, target) == pytest.approx(tpr[fpr <= target].max())


def test_thresholds_follow_flipad_g1() -> None:
    s = RNG.normal(size=1000)
    # FLIPAD: τ = (1 − fnr)-quantile of anomaly scores (−s); we store it on the score scale.
    assert threshold_at_fnr(s, 0.005) == pytest.approx(-np.quantile(-s, 1 - 0.005))
    assert np.mean(s < threshold_at_fnr(s, 0.05)) == pytest.approx(0.05, abs=0.002)
    neg = RNG.normal(size=1000)
    assert np.mean(neg >= threshold_at_fpr(neg, 0.01)) == pytest.approx(0.01, abs=0.002)
    with pytest.raises(ValueError):
        threshold_at_fnr([], 0.1)
    with pytest.raises(ValueError):
        threshold_at_fpr([1.0], 1.5)


def test_accuracy_at_fnr() -> None:
    y, s = _binary(400, seed=2)
    val = s[y][:50] + 0.0
    tau = np.quantile(val, 0.05)
    assert accuracy_at_fnr(y, s, 0.05, calibration_scores=val) == pytest.approx(skm.accuracy_score(y, s >= tau))
    tau_self = np.quantile(s[y], 0.05)
    assert accuracy_at_fnr(y, s, 0.05) == pytest.approx(skm.accuracy_score(y, s >= tau_self))


def test_bit_accuracy() -> None:
    a = RNG.integers(0, 2, (10, 128))
    b = a.copy()
    b[:, :16] ^= 1
    assert bit_accuracy(a, b) == pytest.approx(112 / 128)
    np.testing.assert_allclose(bit_accuracy(a, b, per_sample=True), np.full(10, 112 / 128))
    assert bit_accuracy(torch.tensor(a[0]), torch.tensor(a[0]).bool()) == 1.0


@pytest.mark.parametrize(("k", "n"), [(0, 10), (5, 10), (10, 10), (64, 128), (121, 128), (128, 128)])
def test_binomial_p_value_is_exact_tail(k: int, n: int) -> None:
    exact = Fraction(sum(math.comb(n, i) for i in range(k, n + 1)), 2**n)
    assert binomial_p_value(k, n) == pytest.approx(float(exact), rel=1e-9)
    assert binomial_p_value(k, n) == pytest.approx(scipy.stats.binomtest(k, n, 0.5, alternative="greater").pvalue,
                                                   rel=1e-9)


def test_binomial_p_value_vectorised_and_yu2022_operating_point() -> None:
    ks = np.array([64, 100, 121])
    np.testing.assert_allclose(binomial_p_value(ks, 128), scipy.stats.binom.sf(ks - 1, 128, 0.5))
    # Yu et al. 2022 §4.2: ≥ 0.991 bit accuracy on 128 bits ⇒ p < 1e-35.
    assert binomial_p_value(127, 128) < 1e-35
    with pytest.raises(ValueError):
        binomial_p_value(129, 128)


def _fd_reference(a: np.ndarray, b: np.ndarray) -> float:
    """The pytorch-fid / TTUR formula with scipy.linalg.sqrtm."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_frechet_distance_matches_scipy_sqrtm() -> None:
    a = RNG.normal(size=(300, 6))
    b = RNG.normal(size=(250, 6)) @ RNG.normal(size=(6, 6)) * 0.5 + 1.0
    assert frechet_distance(a, b) == pytest.approx(_fd_reference(a, b), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # Closed form for 1-D Gaussians: (μ1−μ2)² + (σ1−σ2)².
    assert frechet_distance_from_stats([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(9 + 1)
    assert frechet_distance(torch.tensor(a), torch.tensor(b)) == pytest.approx(_fd_reference(a, b), rel=1e-6)


def test_fd_ratio_follows_yu2019_eq5_to_7() -> None:
    r = np.random.default_rng(3)
    feats = np.concatenate([r.normal(loc=m, size=(40, 3)) for m in (0.0, 2.0, 4.0)])
    labels = np.repeat(["a", "b", "c"], 40)
    res = fd_ratio(feats, labels, seed=7)
    inter = np.mean([_fd_reference(feats[labels == x], feats[labels == y])
                     for x, y in (("a", "b"), ("a", "c"), ("b", "c"))])
    split = np.random.default_rng(7)
    intra = []
    for c in "abc":
        fc = feats[labels == c]
        perm = split.permutation(len(fc))
        intra.append(_fd_reference(fc[perm[:20]], fc[perm[20:40]]))
    assert res.inter == pytest.approx(inter, rel=1e-6)
    assert res.intra == pytest.approx(np.mean(intra), rel=1e-6)
    assert res.ratio == pytest.approx(inter / np.mean(intra), rel=1e-6) and res.ratio > 10
    with pytest.raises(ValueError):
        fd_ratio(feats[:40], labels[:40])


def test_bootstrap_ci_matches_scipy_percentile_bootstrap() -> None:
    x = np.random.default_rng(4).normal(size=150)
    ours = bootstrap_ci(np.mean, x, n_resamples=3000, seed=1)
    ref = scipy.stats.bootstrap((x,), np.mean, n_resamples=3000, method="percentile",
                                random_state=np.random.default_rng(2)).confidence_interval
    se = x.std() / math.sqrt(len(x))
    assert ours.estimate == pytest.approx(x.mean())
    assert ours.low == pytest.approx(ref.low, abs=0.15 * se) and ours.high == pytest.approx(ref.high, abs=0.15 * se)
    assert bootstrap_ci(np.mean, x, n_resamples=200, seed=5) == bootstrap_ci(np.mean, x, n_resamples=200, seed=5)


def test_bootstrap_ci_paired_statistic() -> None:
    t, p = _labels(300, seed=5)
    ours = bootstrap_ci(accuracy, t, p, n_resamples=1000, seed=0)
    ref = scipy.stats.bootstrap((t == p,), np.mean, n_resamples=1000, method="percentile",
                                random_state=np.random.default_rng(0)).confidence_interval
    assert ours.low < accuracy(t, p) < ours.high
    assert ours.low == pytest.approx(ref.low, abs=0.02) and ours.high == pytest.approx(ref.high, abs=0.02)
    # Undefined resamples (one class only) are skipped rather than failing.
    y = np.array([True] + [False] * 9)
    assert math.isfinite(bootstrap_ci(roc_auc, y, np.arange(10.0), n_resamples=50).low)


def test_stateful_wrappers_equal_functional_core() -> None:
    t, p = _labels(100)
    acc, bacc, cm = Accuracy(), BalancedAccuracy(), ConfusionMatrix(labels=list(NAMES))
    for i in range(0, 100, 30):
        for m in (acc, bacc, cm):
            m.update(t[i:i + 30], p[i:i + 30])
    assert acc.n == 100
    assert acc.compute() == accuracy(t, p) and bacc.compute() == balanced_accuracy(t, p)
    np.testing.assert_array_equal(cm.compute(), confusion_matrix(t, p, labels=list(NAMES)))
    acc.reset()
    assert acc.n == 0
    y, s = _binary()
    auc, tpr = RocAuc(), TprAtFpr(0.1)
    for i in range(0, len(y), 64):
        auc.update(y[i:i + 64], s[i:i + 64])
        tpr.update(y[i:i + 64], s[i:i + 64])
    assert auc.compute() == pytest.approx(roc_auc(y, s)) and tpr.compute() == tpr_at_fpr(y, s, 0.1)
    bits = BitAccuracy()
    bits.update(np.ones((2, 8)), np.ones((2, 8)))
    assert bits.compute() == 1.0
    with pytest.raises(TypeError):
        bits.update(np.ones(2))


def test_streaming_frechet_distance() -> None:
    a, b = RNG.normal(size=(120, 4)), RNG.normal(size=(90, 4)) + 0.5
    fd = FrechetDistance()
    for i in range(0, 120, 50):
        fd.update(a[i:i + 50], 0)
    fd.update(b, 1)
    assert fd.compute() == pytest.approx(frechet_distance(a, b), rel=1e-8)
    with pytest.raises(ValueError):
        FrechetDistance().compute()
