"""The five single-model attributors (FLIPAD, RawPAD, DCTPAD, SM-F, SM-Inv): contract + behaviour."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from genattr import UNKNOWN
from genattr.attribution import Attributor, InvalidInputError, create_attributor, list_attributors
from genattr.attribution.flipad import DCTPAD, FLIPAD, RawPAD, SMFingerprint, SMInversion
from genattr.data import quantize_8bit
from genattr.errors import ConfigError
from genattr.generators import Generator, create_generator
from tests.attribution_contract import AttributorContract, FitData

NAMES = ("flipad", "rawpad", "dctpad", "sm-f", "sm-inv")


def tiny_generator(seed: int, arch: str = "dcgan") -> Generator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return create_generator(arch, latent_dim=8, ngf=4).eval()


def negatives(n: int, seed: int) -> torch.Tensor:
    """Images from no generator: smooth random blobs, quantised like real 8-bit images."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 4, 4, generator=g) * 2 - 1
    return quantize_8bit(torch.nn.functional.interpolate(low, size=32, mode="bilinear", align_corners=False))


def g_samples(gen: Generator, n: int, seed: int) -> torch.Tensor:
    return quantize_8bit(gen.sample(n, torch.Generator().manual_seed(seed)))


class _SingleModelContract(AttributorContract):
    gen: ClassVar[Generator] = tiny_generator(0)

    def make_fit_data(self) -> FitData:
        return FitData({"g": self.gen}, {"negatives": negatives(32, 1)})

    def make_inputs(self) -> torch.Tensor:
        return torch.cat([g_samples(self.gen, 3, 5), negatives(3, 6)])

    def make_calibration_data(self) -> dict[str, torch.Tensor]:
        return {"g": g_samples(self.gen, 12, 7)}


DEEP_SAD_SMALL = {"n_train": 32, "epochs": 2, "batch_size": 16, "rep_dim": 8}


class TestFLIPADContract(_SingleModelContract):
    score_atol = 1e-4

    def make_attributor(self) -> FLIPAD:
        return FLIPAD(n_mean=64, max_iter=40, widths=(4, 8), **DEEP_SAD_SMALL)


class TestFLIPADOnLSGANContract(_SingleModelContract):
    """LSGAN's final layer is a 3×3 conv *with bias* at full resolution."""

    gen: ClassVar[Generator] = tiny_generator(3, "lsgan")
    score_atol = 1e-4

    def make_attributor(self) -> FLIPAD:
        return FLIPAD(n_mean=64, max_iter=20, widths=(4,), pool_size=4, **DEEP_SAD_SMALL)


class _GaussianContract(_SingleModelContract):
    def make_negatives(self) -> torch.Tensor:
        # The untrained tiny G draws (almost) one constant image; as "negatives" for the FPR check those
        # ties would sit exactly at the fused detector's centre, so use distinct images.
        return negatives(8, 6)


class TestFLIPADWithGaussianContract(_GaussianContract):
    """FLIPAD with the censored data term and the second (Gaussian) detector (extra state, calibration hook)."""

    score_atol = 1e-4

    def make_attributor(self) -> FLIPAD:
        return FLIPAD(n_mean=64, max_iter=20, widths=(4,), pool_size=4, detector="deep-sad+gaussian",
                      data_term="censored", **DEEP_SAD_SMALL)


class TestRawPADWithGaussianContract(_GaussianContract):
    def make_attributor(self) -> RawPAD:
        return RawPAD(size=8, unshuffle=1, widths=(4,), detector="deep-sad+gaussian", **DEEP_SAD_SMALL)


class TestRawPADContract(_SingleModelContract):
    def make_attributor(self) -> RawPAD:
        return RawPAD(size=16, widths=(4, 8), **DEEP_SAD_SMALL)


class TestDCTPADContract(_SingleModelContract):
    def make_attributor(self) -> DCTPAD:
        return DCTPAD(crop=16, widths=(4, 8), **DEEP_SAD_SMALL)


class TestSMFContract(_SingleModelContract):
    def make_attributor(self) -> SMFingerprint:
        return SMFingerprint(n_train=32)


class TestSMInvContract(_SingleModelContract):
    score_atol = 1e-4

    def make_attributor(self) -> SMInversion:
        return SMInversion(restarts=2, steps=5, chunk_size=4)


# -- behaviour --------------------------------------------------------------------------------------------------


def test_all_five_are_registered() -> None:
    assert set(NAMES) <= set(list_attributors())
    for name in NAMES:
        assert create_attributor(name).name == name


@pytest.mark.parametrize("name", NAMES)
def test_fit_with_generator_keyword_names_the_candidate_and_predicts_it_or_unknown(name: str) -> None:
    gen = tiny_generator(0)
    small = {"flipad": dict(n_mean=64, max_iter=40, widths=(4, 8), **DEEP_SAD_SMALL),
             "rawpad": dict(widths=(4, 8), **DEEP_SAD_SMALL), "dctpad": dict(widths=(4, 8), **DEEP_SAD_SMALL),
             "sm-f": {"n_train": 32}, "sm-inv": {"restarts": 2, "steps": 3}}[name]
    att = create_attributor(name, **small).fit(generator=gen, negatives=negatives(32, 1), name="mine")
    assert att.candidates_ == ["mine"]
    att.calibrate({"mine": g_samples(gen, 20, 9)}, target_fnr=0.005)
    labels = att.predict(torch.cat([g_samples(gen, 2, 10), negatives(2, 11)]))
    assert set(labels) <= {"mine", UNKNOWN}


def test_fit_argument_errors() -> None:
    gen = tiny_generator(0)
    with pytest.raises(ConfigError, match="single-model"):
        RawPAD(**DEEP_SAD_SMALL).fit({"a": gen, "b": gen}, negatives=negatives(4, 0))
    with pytest.raises(ConfigError, match="negatives"):
        RawPAD(**DEEP_SAD_SMALL).fit(generator=gen)
    with pytest.raises(ConfigError):
        RawPAD(**DEEP_SAD_SMALL).fit({"a": gen}, generator=gen, negatives=negatives(4, 0))
    with pytest.raises(ConfigError):
        RawPAD(**DEEP_SAD_SMALL).fit()
    with pytest.raises(ConfigError, match="white-box"):
        FLIPAD(**DEEP_SAD_SMALL).fit({"imgs": g_samples(gen, 8, 0)}, negatives=negatives(8, 0))
    with pytest.raises(ConfigError, match="weights"):
        SMInversion().fit({"imgs": g_samples(gen, 8, 0)})
    with pytest.raises(InvalidInputError):  # negatives of another shape
        RawPAD(**DEEP_SAD_SMALL).fit(generator=gen, negatives=torch.zeros(4, 3, 32, 32))
    with pytest.raises(InvalidInputError):
        RawPAD(**DEEP_SAD_SMALL).fit(generator=gen, negatives=torch.full((4, 1, 32, 32), 3.0))


@pytest.fixture(scope="module")
def fitted_smf() -> Attributor:
    return SMFingerprint(n_train=16).fit(generator=tiny_generator(0))


@pytest.mark.parametrize(("bad", "match"), [
    (torch.zeros(2, 3, 32, 32), "shape"),  # wrong channel count
    (torch.zeros(2, 1, 16, 16), "shape"),
    (torch.full((2, 1, 32, 32), 2.0), "outside"),
    (torch.full((2, 1, 32, 32), float("nan")), "NaN"),
    (torch.zeros(1, 32, 32), "batch"),
])
def test_malformed_inputs_raise_clear_errors(fitted_smf: Attributor, bad: torch.Tensor, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        fitted_smf.predict(bad)


def test_flipad_inversion_reconstructs_the_preactivation_of_its_own_samples() -> None:
    gen = tiny_generator(0)
    with torch.no_grad():  # an untrained generator's outputs are ~1e-4; scale them up to the regime of a trained one
        gen.final_layer.weight.mul_(200)
    att = FLIPAD(n_mean=256, max_iter=500, **DEEP_SAD_SMALL, widths=(4,))
    att.fit(generator=gen, negatives=negatives(32, 1))
    x = gen.sample(4, torch.Generator().manual_seed(3))  # exact float outputs: o is in the range of A
    z = att.invert(x)
    assert z.shape == (4, *att.z_bar_.shape)
    o = torch.atanh(x.clamp(-1 + 1e-3, 1 - 1e-3))
    err = (att.operator().apply(z) - o).flatten(1).norm(dim=1) / o.flatten(1).norm(dim=1)
    assert (err < 0.05).all()


def test_smf_fingerprint_scores_its_own_samples_higher_than_other_models() -> None:
    gen, other = tiny_generator(0), tiny_generator(1)
    att = SMFingerprint(n_train=256, quantize=False).fit(generator=gen)
    own = att.decision_function(gen.sample(64, torch.Generator().manual_seed(1)))
    foreign = att.decision_function(other.sample(64, torch.Generator().manual_seed(1)))
    assert own.mean() > foreign.mean()


def test_sm_inv_recovers_a_generated_image_better_than_a_foreign_one() -> None:
    gen = tiny_generator(0)
    att = SMInversion(restarts=3, steps=60, lr=0.1).fit(generator=gen)
    own = att.decision_function(gen.sample(3, torch.Generator().manual_seed(2)))
    foreign = att.decision_function(negatives(3, 2))
    assert own.min() > foreign.max()


def test_gaussian_detector_calibration_puts_each_detector_at_half_the_target_fnr() -> None:
    gen = tiny_generator(0)
    with torch.no_grad():  # an untrained G's outputs are ~1e-4 (one 8-bit level): give them some variety
        gen.final_layer.weight.mul_(300)
    att = RawPAD(size=8, unshuffle=1, widths=(4,), detector="deep-sad+gaussian", **DEEP_SAD_SMALL)
    att.fit(generator=gen, negatives=negatives(32, 1), name="g")
    assert att.gauss_precision_.shape == (64, 64) and att.fusion_scale_.shape == (2,)
    val = g_samples(gen, 200, 3)
    att.calibrate({"g": val}, target_fnr=0.1)
    comps = att._component_anomalies(att._net_input(val))
    # on the common scale each detector's own threshold (its (1 − fnr/2)-quantile) sits at 1
    scaled = (comps - att.fusion_center_) / att.fusion_scale_
    for k in range(2):
        assert float(torch.quantile(scaled[:, k], 1 - 0.05)) == pytest.approx(1.0, abs=1e-9)
    # the fused threshold rejects the target fraction of the calibration images (G.1)
    accepted = [lab == "g" for lab in att.predict(val)]
    assert sum(accepted) / len(accepted) == pytest.approx(0.9, abs=0.01)
    # a sample that only the Gaussian finds odd is rejected: fusion is an AND of the two detectors
    odd = val[:1].clone()
    odd[..., :16, :] = 1.0
    assert float(att.anomaly_score(odd)[0]) >= float(scaled[:1].max())


def test_unknown_detector_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="detector"):
        RawPAD(detector="svm", **DEEP_SAD_SMALL).fit(generator=tiny_generator(0), negatives=negatives(8, 0))
