"""The Gaussian one-class detector and score fusion (genattr.attribution.flipad.gaussian)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis
from sklearn.covariance import LedoitWolf

from genattr.attribution.flipad.gaussian import fit_gaussian, fuse_max, mahalanobis, tail_scale
from genattr.errors import ConfigError


def test_fit_gaussian_matches_sklearn_ledoit_wolf_and_distances_match_scipy() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 2, 3, 2, generator=g) * torch.linspace(0.5, 3, 12).reshape(1, 2, 3, 2)
    mean, prec = fit_gaussian(x)
    lw = LedoitWolf().fit(x.flatten(1).double().numpy())
    np.testing.assert_allclose(mean.numpy(), lw.location_, rtol=1e-5)
    np.testing.assert_allclose(prec.numpy(), lw.precision_, rtol=1e-4, atol=1e-5)
    y = torch.randn(7, 2, 3, 2, generator=g)
    d = mahalanobis(y, mean, prec, batch_size=3)
    ref = [scipy_mahalanobis(v, mean.double().numpy(), prec.double().numpy()) for v in y.flatten(1).double().numpy()]
    np.testing.assert_allclose(d.numpy(), ref, rtol=1e-5)
    assert mahalanobis(y[:0], mean, prec).shape == (0,)


def test_far_points_score_higher() -> None:
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(1))
    mean, prec = fit_gaussian(x)
    d = mahalanobis(torch.tensor([[0.0, 0, 0, 0], [5.0, 5, 5, 5]]), mean, prec)
    assert d[1] > 4 * d[0]


def test_tail_scale_and_fuse_max() -> None:
    a = torch.arange(101, dtype=torch.float64)  # median 50, 0.9-quantile 90
    med, spread = tail_scale(a, 0.1)
    assert (med, spread) == pytest.approx((50.0, 40.0))
    fused = fuse_max(torch.tensor([[50.0, 0.0], [90.0, 0.0], [50.0, 3.0]]), torch.tensor([50.0, 1.0]),
                     torch.tensor([40.0, 1.0]))
    assert fused.tolist() == pytest.approx([0.0, 1.0, 2.0])  # the most anomalous component decides
    with pytest.raises(ConfigError):
        tail_scale(a, 0.0)
    with pytest.raises(ConfigError):
        fit_gaussian(torch.zeros(1, 3))
