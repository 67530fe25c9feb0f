"""Yu et al. 2019 attributors: the contract mixin for each, plus the paper's maths on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genattr import UNKNOWN
from genattr.attribution import create_attributor
from genattr.attribution.fingerprint_viz import (
    Critic,
    FingerprintVisNet,
    ReconstructionAE,
    correlation_logits,
    gradient_penalty,
    plot_fingerprints,
    visnet_losses,
)
from genattr.attribution.gan_fingerprint import (
    FingerprintNet,
    GANFingerprintClassifier,
    component,
    gaussian_down,
    gaussian_up,
)
from genattr.attribution.passive_baselines import (
    Eigenface,
    KNNPixels,
    PRNUFingerprint,
    noise_residual,
    normalized_correlation,
    wiener_denoise,
)
from genattr.errors import ConfigError
from genattr.perturbations import GaussianNoise
from tests.attribution_contract import AttributorContract, FitData


def _sources(seed: int, n: int = 12, size: int = 8) -> dict[str, torch.Tensor]:
    """Three toy 'sources' that differ in a fixed high-frequency pattern (a stand-in GAN fingerprint)."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.Generator().manual_seed(123)
    out = {}
    for name in ("real", "gan-a", "gan-b"):
        pat = 0.4 * torch.randn(1, 1, size, size, generator=patterns)
        content = 0.3 * torch.randn(n, 1, 1, 1, generator=g)  # smooth per-image brightness
        out[name] = (content + pat + 0.1 * torch.randn(n, 1, size, size, generator=g)).clamp(-1, 1)
    return out


def _inputs() -> torch.Tensor:
    return torch.cat([v[:3] for v in _sources(1).values()])


class _ToyData:
    def make_fit_data(self) -> FitData:
        return FitData(_sources(0))

    def make_inputs(self) -> torch.Tensor:
        return _inputs()

    def make_calibration_data(self) -> dict[str, torch.Tensor]:
        return _sources(2)


class TestGANFingerprintClassifierContract(_ToyData, AttributorContract):
    score_atol = 1e-4

    def make_attributor(self) -> GANFingerprintClassifier:
        return GANFingerprintClassifier(width=2, max_width=8, feature_dim=8, epochs=2, batch_size=8)


class TestGANFingerprintVariantContract(_ToyData, AttributorContract):
    """A §3.2 variant (high-frequency band at half resolution, pooling early) behind the same contract."""

    score_atol = 1e-4

    def make_attributor(self) -> GANFingerprintClassifier:
        return GANFingerprintClassifier(variant="highpass", factor=2, pool_at=4, width=2, max_width=8,
                                        feature_dim=8, epochs=1, batch_size=8, seed=5)


class TestKNNContract(_ToyData, AttributorContract):
    def make_attributor(self) -> KNNPixels:
        return KNNPixels(k=3)


class TestEigenfaceContract(_ToyData, AttributorContract):
    def make_attributor(self) -> Eigenface:
        return Eigenface(n_components=5)


class TestPRNUContract(_ToyData, AttributorContract):
    def make_attributor(self) -> PRNUFingerprint:
        return PRNUFingerprint()


class TestVisNetContract(_ToyData, AttributorContract):
    score_atol = 1e-4

    def make_attributor(self) -> FingerprintVisNet:
        return FingerprintVisNet(width=2, critic_width=2, epochs=1, batch_size=12)


# -- PRNU maths ------------------------------------------------------------------------------------------
def test_wiener_matches_scipy() -> None:
    from scipy.signal import wiener

    x = torch.rand(2, 1, 7, 9, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ours = wiener_denoise(x, 3).double()
    for i in range(2):
        ref = wiener(x[i, 0].double().numpy(), 3)
        np.testing.assert_allclose(ours[i, 0].numpy(), ref, atol=1e-6)


def test_prnu_residual_and_correlation_by_hand() -> None:
    # 3×3 image, box denoiser with window 3 and zero padding: the centre's local mean is the image mean.
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])[None, None] / 10
    r = noise_residual(x, "box", 3)
    # centre: 0.5 − 45/90 = 0; corner (0,0): 0.1 − (1+2+4+5)/90 = 0.1 − 12/90.
    assert r[0, 0, 1, 1].item() == pytest.approx(0.0, abs=1e-7)
    assert r[0, 0, 0, 0].item() == pytest.approx(0.1 - 12 / 90, abs=1e-7)
    # Normalised correlation = Pearson correlation of the flattened images.
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[2.0, 4.0, 6.0, 8.0], [4.0, 3.0, 2.0, 1.0], [1.0, 0.0, 0.0, 1.0]])
    c = normalized_correlation(a, b)[0]
    assert c[0].item() == pytest.approx(1.0) and c[1].item() == pytest.approx(-1.0)
    assert c[2].item() == pytest.approx(0.0, abs=1e-12)  # (−1.5, −.5, .5, 1.5)·(.5, −.5, −.5, .5) = 0


def test_prnu_fingerprint_is_mean_residual_and_scores_are_correlations() -> None:
    data = _sources(0)
    att = PRNUFingerprint(denoiser="box", window=3).fit(data)
    for j, x in enumerate(data.values()):
        torch.testing.assert_close(att.fingerprints_[j], noise_residual(x, "box", 3).double().mean(0).float())
    x = _inputs()
    expected = normalized_correlation(noise_residual(x, "box", 3), att.fingerprints_).float()
    torch.testing.assert_close(att.decision_function(x), expected)
    assert att.predict(x) == [n for n in data for _ in range(3)]  # toy patterns are separable


def test_knn_is_one_nearest_neighbour_and_eigenface_projects() -> None:
    data = _sources(0)
    x = _inputs()
    att = KNNPixels(k=1).fit(data)
    bank = torch.cat([v.flatten(1) for v in data.values()])
    owner = torch.cat([torch.full((v.shape[0],), i) for i, v in enumerate(data.values())])
    nn_idx = torch.cdist(x.flatten(1).double(), bank.double()).argmin(1)
    assert att.predict(x) == [list(data)[int(owner[i])] for i in nn_idx]
    ef = Eigenface(n_components=4).fit(data)
    assert ef.components_.shape == (4, 64)
    torch.testing.assert_close(ef.components_ @ ef.components_.T, torch.eye(4), atol=1e-5, rtol=0)


# -- attribution network ---------------------------------------------------------------------------------
def test_classifier_learns_toy_fingerprints_and_rejects_outsiders() -> None:
    att = create_attributor("gan-fingerprint-classifier", width=4, feature_dim=16, epochs=20, batch_size=12,
                            lr=3e-3)
    att.fit(_sources(0, n=24))
    x = _inputs()
    assert np.mean(np.array(att.predict(x)) == np.repeat(list(_sources(0)), 3)) >= 0.8
    assert att.fingerprints(x).shape == (9, 16)
    assert att.model_fingerprints.shape == (3, 16)
    att.calibrate(_sources(2), target_fnr=0.0)
    outsider = torch.full((2, 1, 8, 8), 1.0)
    scores = att.decision_function(outsider)
    assert att.predict(outsider) == [UNKNOWN if (s < att.thresholds_).all() else att.candidates_[int(s.argmax())]
                                     for s in scores]
    conf = att.attribute(x).extras["confidence"]
    torch.testing.assert_close(conf, att.decision_function(x).exp().max(1).values)


def test_component_variants() -> None:
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert component(x, "lowpass", 1) is x and component(x, "highpass", 1) is x
    assert component(x, "lowpass", 4).shape == (2, 1, 4, 4)
    d = gaussian_down(x)
    torch.testing.assert_close(component(x, "highpass", 2), d - gaussian_up(gaussian_down(d)))
    const = torch.full((1, 1, 8, 8), 0.3)  # a constant image has no high-frequency band
    torch.testing.assert_close(component(const, "highpass", 2), torch.zeros(1, 1, 4, 4), atol=1e-6, rtol=0)
    # Receptive field (patch size) grows when pooling starts later (lower resolution), Table 5.
    sizes = [FingerprintNet(image_size=32, width=2, feature_dim=4, pool_at=p).patch_size() for p in (32, 16, 8, 4)]
    assert sizes == sorted(sizes) and sizes[0] == 5
    assert FingerprintNet(image_size=32, variant="lowpass", factor=4, width=2, feature_dim=4)(
        torch.zeros(1, 1, 32, 32)).shape == (1, 2)
    with pytest.raises(ConfigError):
        FingerprintNet(image_size=32, variant="full", factor=2)
    with pytest.raises(ConfigError):
        FingerprintNet(image_size=32, pool_at=64)
    with pytest.raises(ConfigError):
        GANFingerprintClassifier(variant="bogus").fit(_sources(0))


def test_finetune_with_augmentation_starts_from_init() -> None:
    data = _sources(0)
    base = GANFingerprintClassifier(width=2, feature_dim=8, epochs=1, batch_size=8).fit(data)
    zero = base.clone().set_params(epochs=0).fit(data, init_from=base)
    x = _inputs()
    torch.testing.assert_close(zero.decision_function(x), base.decision_function(x))
    tuned = base.clone().set_params(epochs=1, lr=1e-4).fit(data, init_from=base, augment=GaussianNoise(std=0.1))
    assert not torch.equal(tuned.decision_function(x), base.decision_function(x))
    with pytest.raises(ConfigError):
        base.clone().fit({"a": data["real"], "b": data["gan-a"]}, init_from=base)


# -- visualisation network -----------------------------------------------------------------------------------
def test_visnet_loss_terms() -> None:
    torch.manual_seed(0)
    ae, critic = ReconstructionAE(1, 2), Critic(1, 2, 8)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    y = torch.tensor([0, 1, 0, 1])
    fp = torch.randn(2, 1, 8, 8)
    out = visnet_losses(ae, critic, fp, x, y, logit_scale=5.0, lambdas=(20.0, 0.1, 1.0), gp_weight=10.0,
                        generator=torch.Generator().manual_seed(0))
    rec = ae(x)
    assert out["pix"].item() == pytest.approx((rec - x).abs().mean().item(), rel=1e-6)  # eq. 1
    assert out["adv"].item() == pytest.approx(-critic(rec).mean().item(), rel=1e-6)
    logits = 5.0 * normalized_correlation(rec - x, fp).float()  # eq. 3: scaled corr as logits
    torch.testing.assert_close(out["logits"], logits, atol=1e-5, rtol=1e-5)
    assert out["cls"].item() == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    total = 20.0 * out["pix"] + 0.1 * out["adv"] + 1.0 * out["cls"]  # eq. 4
    assert out["total"].item() == pytest.approx(total.item(), rel=1e-6)
    crit = critic(rec).mean() - critic(x).mean() + 10.0 * out["gp"]  # eq. 2 (WGAN-GP critic)
    assert out["critic"].item() == pytest.approx(crit.item(), rel=1e-5)
    assert torch.isfinite(out["gp"]) and out["gp"].item() >= 0


def test_gradient_penalty_of_linear_critic() -> None:
    # D(x) = w·x has gradient w everywhere: GP = (‖w‖ − 1)².
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        lin[1].weight.copy_(torch.tensor([[3.0, 0.0, 4.0, 0.0]]))
    gp = gradient_penalty(lambda z: lin(z).reshape(-1), torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2))
    assert gp.item() == pytest.approx(16.0)
    scaled = correlation_logits(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[3.0, 2.0, 1.0]]), 2.0)
    assert scaled.item() == pytest.approx(-2.0)


def test_visnet_scores_and_figure(tmp_path) -> None:
    data = _sources(0)
    att = FingerprintVisNet(width=2, critic_width=2, epochs=2, batch_size=12).fit(data)
    x = _inputs()
    fp = att.image_fingerprints(x)
    assert fp.shape == x.shape
    torch.testing.assert_close(att.decision_function(x), normalized_correlation(fp, att.model_fingerprints_).float())
    assert set(att.train_log_) >= {"pix", "adv", "cls", "critic"} and all(math.isfinite(v)
                                                                          for v in att.train_log_["pix"])
    path, resp = plot_fingerprints(att, data, tmp_path / "fp.png")
    assert path.is_file() and resp.shape == (3, 3)
