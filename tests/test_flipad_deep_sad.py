"""Deep SAD (Ruff et al. 2020; FLIPAD appendix B eq. 6–7) and the feature maps of RawPAD / DCTPAD / FLIPAD."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genattr.attribution.flipad.deep_sad import (
    DeepSADNet,
    anomaly_score,
    deep_sad_loss,
    init_center,
    multiply_adds,
    train_deep_sad,
)
from genattr.attribution.flipad.features import (
    center_crop,
    dct2,
    dct_features,
    dct_matrix,
    gaussian_residual,
    pool_features,
    raw_features,
)
from genattr.metrics import roc_auc


def test_loss_on_a_toy_case() -> None:
    d = torch.tensor([4.0, 0.5, 2.0, 1.0])
    y = torch.tensor([0, 1, -1, -1])
    eta, eps = 2.0, 1e-6
    expected = (4.0 + eta * (0.5 + eps) + eta / (2.0 + eps) + eta / (1.0 + eps)) / 4
    assert deep_sad_loss(d, y, eta, eps).item() == pytest.approx(expected, rel=1e-6)
    # labelled normals are pulled in, labelled anomalies pushed out: the gradient signs say so
    d.requires_grad_(True)
    deep_sad_loss(d, y, eta).backward()
    assert d.grad is not None and d.grad[1] > 0 and d.grad[2] < 0 and d.grad[3] < 0


def test_network_has_no_bias_terms_and_its_size_is_as_documented() -> None:
    net = DeepSADNet(4, 16, (16, 32, 64), kernel_size=3)
    assert all("bias" not in name for name, _ in net.named_parameters())
    assert not any(getattr(m, "affine", False) for m in net.modules())
    assert net(torch.zeros(2, 4, 16, 16)).shape == (2, 32)
    # sizing of the module docstring: ≤ 3 M multiply-adds per 32×32 image, inversion features smaller still
    assert multiply_adds(net, (4, 16, 16)) < 1_000_000
    assert multiply_adds(DeepSADNet(32, 8, (32, 64), kernel_size=3), (32, 8, 8)) < 1_000_000


def test_center_avoids_near_zero_coordinates() -> None:
    torch.manual_seed(0)
    net = DeepSADNet(1, 8, (2,), rep_dim=16)
    c = init_center(net, torch.randn(20, 1, 8, 8), eps=0.1)
    assert (c.abs() >= 0.1 - 1e-7).all()


def test_separates_two_obviously_different_distributions() -> None:
    g = torch.Generator().manual_seed(0)

    def data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        smooth = torch.nn.functional.interpolate(torch.rand(n, 1, 2, 2, generator=g), size=8, mode="bilinear")
        noisy = torch.rand(n, 1, 8, 8, generator=g)
        return smooth, noisy

    pos, neg = data(128)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = DeepSADNet(1, 8, (4, 8), kernel_size=3, rep_dim=8)
    fit = train_deep_sad(net, torch.cat([pos, neg]), torch.cat([torch.ones(128), -torch.ones(128)]), epochs=8,
                         lr_milestones=(6,), lr=1e-3, batch_size=32, generator=torch.Generator().manual_seed(1))
    assert len(fit.epoch_losses) == 8 and fit.epoch_losses[-1] < fit.epoch_losses[0]
    tp, tn = data(64)
    s = torch.cat([anomaly_score(net, fit.center, tp), anomaly_score(net, fit.center, tn)])
    y = np.r_[np.zeros(64), np.ones(64)]  # anomalies are the positives of the anomaly score
    assert roc_auc(y, s.numpy()) > 0.95


def test_dct_is_orthonormal_and_features_are_log_magnitudes() -> None:
    d = dct_matrix(8)
    torch.testing.assert_close(d @ d.T, torch.eye(8, dtype=torch.float64))
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    assert dct2(x).pow(2).sum().item() == pytest.approx(x.pow(2).sum().item())  # Parseval
    from scipy.fft import dctn

    np.testing.assert_allclose(dct2(x).numpy(), dctn(x.numpy(), type=2, norm="ortho", axes=(-2, -1)), atol=1e-12)
    f = dct_features(x.float(), crop=4)
    assert f.shape == (2, 1, 4, 4)
    torch.testing.assert_close(f, torch.log(dct2(center_crop(x, 4)).abs() + 1e-10).float())
    assert dct_features(torch.zeros(1, 1, 4, 4)).max().item() == pytest.approx(math.log(1e-10))


def test_raw_pool_and_residual_features() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert raw_features(x, None) is x
    assert raw_features(x, 2).shape == (1, 1, 2, 2)
    assert pool_features(x, 2).flatten().tolist() == [5.0, 7.0, 13.0, 15.0]  # max-pooling (G.7)
    assert pool_features(x, 8) is x
    const = torch.full((1, 2, 6, 6), 0.3)
    assert gaussian_residual(const).abs().max() < 1e-6  # a flat image has no noise residual
