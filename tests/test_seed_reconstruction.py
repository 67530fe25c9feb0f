"""Seed reconstruction (Zhang et al. 2020): contract, batched == looped, distances, restarts, bad candidates."""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
import torch
from torch import nn

from genattr.attribution import InvalidInputError, create_attributor
from genattr.attribution.flipad.inversion import step_size
from genattr.attribution.seed_reconstruction import (
    CandidateError,
    FeatureMap,
    SeedReconstruction,
    frozen_copy,
    reconstruct,
    reconstruct_looped,
    restart_pool,
)
from genattr.errors import ConfigError, GenattrError
from genattr.generators import Generator, list_generators, register_generator
from tests.attribution_contract import AttributorContract, FitData

SIZE = 8
LATENT = 4


class TinyMLPGenerator(Generator):
    """A tiny genattr Generator (8×8 grey): saved/loaded through the generator registry."""

    def __init__(self, *, latent_dim: int = LATENT, size: int = SIZE, hidden: int = 16, seed: int = 0) -> None:
        super().__init__()
        self.latent_dim, self.channels, self.image_size = latent_dim, 1, size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.body = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU())
            self.final_layer = nn.Sequential(nn.Linear(hidden, size * size), nn.Unflatten(1, (1, size, size)))
        self.output_activation = nn.Tanh()

    def penultimate(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


if "test-seedrec-mlp" not in list_generators():
    register_generator("test-seedrec-mlp")(TinyMLPGenerator)


class PlainGenerator(nn.Module):
    """Any nn.Module with an int latent_dim (no genattr base class); has batch norm to check eval mode."""

    def __init__(self, seed: int, latent_dim: int = LATENT, size: int = SIZE) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.latent_dim, self.size = latent_dim, size
            self.net = nn.Sequential(nn.Linear(latent_dim, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                     nn.Linear(16, size * size), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, self.size, self.size)


class TinyExtractor(nn.Module):
    """A feature extractor with ``features(x)`` (stands in for the zoo classifier in tiny tests)."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            self.conv = nn.Conv2d(1, 4, 3, padding=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).flatten(1)


def tiny_generators(n: int = 2) -> dict[str, TinyMLPGenerator]:
    return {f"g{i}": TinyMLPGenerator(seed=i).eval() for i in range(n)}


def samples(g: nn.Module, n: int, seed: int) -> torch.Tensor:
    with torch.no_grad():
        return g(torch.randn(n, g.latent_dim, generator=torch.Generator().manual_seed(seed))).detach()


class TestSeedReconstructionContract(AttributorContract):
    score_atol = 1e-4
    _gens: ClassVar[dict[str, TinyMLPGenerator]] = tiny_generators()

    def make_attributor(self) -> SeedReconstruction:
        return SeedReconstruction(restarts=2, steps=15, seed=1)

    def make_fit_data(self) -> FitData:
        return FitData(self._gens)

    def make_inputs(self) -> torch.Tensor:
        return torch.cat([samples(g, 2, 10 + i) for i, g in enumerate(self._gens.values())])

    def make_calibration_data(self) -> dict[str, torch.Tensor]:
        return {k: samples(g, 4, 20 + i) for i, (k, g) in enumerate(self._gens.items())}


# -- batched == looped ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("feature", "schedule"), [(False, "constant"), (True, "constant"), (False, "cosine")])
def test_batched_equals_per_attempt_loop(feature: bool, schedule: str) -> None:
    g = frozen_copy(PlainGenerator(0))
    f = frozen_copy(FeatureMap(TinyExtractor(), None)) if feature else None
    x = samples(PlainGenerator(1).eval(), 3, 0)
    z0 = restart_pool(LATENT, 3, seed=0)
    a = reconstruct(g, x, z0, feature=f, steps=25, lr_schedule=schedule)
    b = reconstruct_looped(g, x, z0, feature=f, steps=25, lr_schedule=schedule)
    torch.testing.assert_close(a.restart_distances, b.restart_distances, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a.best_seed, b.best_seed, atol=1e-4, rtol=1e-4)
    assert torch.equal(a.best_restart, b.best_restart)
    assert a.restart_distances.shape == (3, 3) and a.best_seed.shape == (3, LATENT)


def test_cosine_schedule_decays_to_zero_and_changes_the_search() -> None:
    assert step_size(0.1, "constant", 7, 10) == 0.1
    assert step_size(0.1, "cosine", 0, 10) == pytest.approx(0.1)
    assert step_size(0.1, "cosine", 5, 10) == pytest.approx(0.05)
    assert step_size(0.1, "cosine", 10, 10) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ConfigError, match="lr_schedule"):
        step_size(0.1, "linear", 0, 10)
    g = frozen_copy(PlainGenerator(0))
    x = samples(g, 3, 0)
    z0 = restart_pool(LATENT, 2, seed=0)
    const = reconstruct(g, x, z0, steps=40, lr_schedule="constant")
    cos = reconstruct(g, x, z0, steps=40, lr_schedule="cosine")
    assert not torch.allclose(const.restart_distances, cos.restart_distances)
    with pytest.raises(ConfigError, match="lr_schedule"):
        reconstruct(g, x, z0, steps=1, lr_schedule="step")
    with pytest.raises(ConfigError, match="lr_schedule"):
        SeedReconstruction(lr_schedule="warm").fit(tiny_generators())


def test_batched_reconstruction_does_not_depend_on_the_other_images() -> None:
    g = frozen_copy(PlainGenerator(0))
    x = samples(PlainGenerator(1).eval(), 4, 0)
    z0 = restart_pool(LATENT, 2, seed=0)
    whole = reconstruct(g, x, z0, steps=20)
    alone = reconstruct(g, x[2:3], z0, steps=20)
    torch.testing.assert_close(whole.restart_distances[:, 2:3], alone.restart_distances, atol=1e-5, rtol=1e-4)


# -- distances ----------------------------------------------------------------------------------------------


def test_zero_steps_distance_is_rms_of_the_start_and_score_is_minus_min() -> None:
    gens = tiny_generators()
    x = samples(gens["g0"], 3, 5)
    att = SeedReconstruction(restarts=3, steps=0).fit(gens)
    res = att.attribute(x)
    for j, name in enumerate(att.candidates_):
        z0 = att.restart_seeds_[name]
        with torch.no_grad():
            out = gens[name](z0)  # (R, 1, 8, 8)
        rms = ((out[:, None] - x[None]) ** 2).flatten(2).mean(2).sqrt()  # (R, n)
        torch.testing.assert_close(res.extras["restart_distances"][:, j].T, rms, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(res.scores[:, j], -rms.min(0).values, atol=1e-6, rtol=1e-5)
        assert torch.equal(res.extras["best_restart"][:, j], rms.argmin(0))
        torch.testing.assert_close(res.extras[f"best_seed/{name}"], z0[rms.argmin(0)])
    torch.testing.assert_close(res.extras["distances"], -res.scores)


def test_feature_distance_uses_the_extractor_and_reconstructions_match_the_seeds() -> None:
    gens = tiny_generators()
    att = SeedReconstruction(distance="feature", restarts=2, steps=0, feature_size=None)
    att.fit(gens, feature_extractor=TinyExtractor())
    x = samples(gens["g1"], 2, 7)
    res = att.attribute(x)
    f = FeatureMap(TinyExtractor(), None)
    for j, name in enumerate(att.candidates_):
        seeds = res.extras[f"best_seed/{name}"]
        with torch.no_grad():
            rec = gens[name](seeds)
            d = ((f(rec) - f(x)) ** 2).mean(1).sqrt()
        torch.testing.assert_close(res.extras["reconstructions"][:, j], rec)
        torch.testing.assert_close(res.extras["distances"][:, j], d, atol=1e-6, rtol=1e-5)
    with pytest.raises(ConfigError, match="feature_extractor"):
        SeedReconstruction().fit(gens, feature_extractor=TinyExtractor())


def test_own_images_are_attributed_to_their_generator() -> None:
    gens = tiny_generators(3)
    att = create_attributor("seed-reconstruction", restarts=2, steps=80).fit(gens)
    x = torch.cat([samples(g, 2, 30 + i) for i, g in enumerate(gens.values())])
    assert att.predict(x) == [n for n in gens for _ in range(2)]
    # the optimisation actually ran: own-model distances well below the start
    start = SeedReconstruction(restarts=2, steps=0).fit(gens).decision_function(x)
    own = torch.stack([att.decision_function(x)[2 * j:2 * j + 2, j] for j in range(3)])
    assert (own > torch.stack([start[2 * j:2 * j + 2, j] for j in range(3)])).all()


# -- restart bookkeeping --------------------------------------------------------------------------------------


def test_restart_pools_nest_and_fewer_restarts_are_a_prefix() -> None:
    assert torch.equal(restart_pool(LATENT, 5, 0)[:3], restart_pool(LATENT, 3, 0))
    assert not torch.equal(restart_pool(LATENT, 3, 0), restart_pool(LATENT, 3, 1))
    gens = tiny_generators()
    x = samples(gens["g0"], 2, 3)
    r4 = SeedReconstruction(restarts=4, steps=10).fit(gens).attribute(x).extras["restart_distances"]
    r2 = SeedReconstruction(restarts=2, steps=10).fit(gens).attribute(x).extras["restart_distances"]
    assert r4.shape == (2, 2, 4) and r2.shape == (2, 2, 2)
    torch.testing.assert_close(r4[..., :2], r2, atol=1e-6, rtol=1e-5)


def test_fit_leaves_the_callers_modules_alone_and_runs_them_in_eval_mode() -> None:
    gens = {"a": PlainGenerator(0).train(), "b": PlainGenerator(1).train()}
    att = SeedReconstruction(restarts=1, steps=3).fit(gens)
    assert all(g.training for g in gens.values())
    assert all(p.requires_grad for g in gens.values() for p in g.parameters())
    assert not any(g.training for g in att.generators_.values())
    # batch norm in eval mode: a single image scores the same alone and in a batch
    x = samples(gens["a"].eval(), 3, 0)
    torch.testing.assert_close(att.decision_function(x)[1:2], att.decision_function(x[1:2]), atol=1e-5, rtol=1e-4)


# -- persistence of arbitrary modules and the shortlist ----------------------------------------------------------


def test_plain_modules_are_saved_as_weights_and_must_be_bound_after_load(tmp_path) -> None:
    gens = {"a": PlainGenerator(0), "b": PlainGenerator(1)}
    att = SeedReconstruction(restarts=1, steps=5).fit(gens)
    x = samples(gens["b"].eval(), 2, 0)
    ref = att.decision_function(x)
    att.save(tmp_path / "m")
    loaded = SeedReconstruction.load(tmp_path / "m")
    with pytest.raises(ConfigError, match="bind_generator"):
        loaded.decision_function(x)
    for name in ("a", "b"):
        loaded.bind_generator(name, PlainGenerator(7))  # fresh weights: the saved ones are loaded into it
    assert torch.equal(loaded.decision_function(x), ref)
    with pytest.raises(CandidateError, match="'a'"):
        loaded.bind_generator("a", PlainGenerator(0, latent_dim=5))


def test_shortlist_reconstructs_only_the_top_k(tmp_path) -> None:
    gens = tiny_generators(3)
    cheap = create_attributor("nearest-mean").fit({k: samples(g, 16, 40) for k, g in gens.items()})
    x = torch.cat([samples(g, 1, 50 + i) for i, g in enumerate(gens.values())])
    full = SeedReconstruction(restarts=1, steps=10).fit(gens)
    short = SeedReconstruction(restarts=1, steps=10, shortlist_k=1).fit(gens, shortlist=cheap)
    s_full, res = full.decision_function(x), short.attribute(x)
    top = cheap.decision_function(x).argmax(1)
    finite = torch.isfinite(res.scores)
    assert finite.sum(1).tolist() == [1, 1, 1]
    assert torch.equal(finite.float().argmax(1), top)
    torch.testing.assert_close(res.scores[finite], s_full[finite], atol=1e-5, rtol=1e-4)
    assert torch.isnan(res.extras["distances"][~finite]).all()
    short.save(tmp_path / "s")
    again = SeedReconstruction.load(tmp_path / "s")
    assert torch.equal(again.decision_function(x), res.scores)
    with pytest.raises(ConfigError, match="shortlist"):
        SeedReconstruction(shortlist_k=1).fit(gens)


# -- bad candidates and inputs ----------------------------------------------------------------------------------


class NoLatent(nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(z.shape[0], 1, SIZE, SIZE)


class Flat(PlainGenerator):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # (n, 64): not an image batch


class NaNOut(PlainGenerator):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return super().forward(z) * float("nan")


class NaNLater(PlainGenerator):
    """Fine on the fit-time probe, NaN once the optimisation moves the latents far enough."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = super().forward(z)
        return torch.where(z.abs().amax(1).view(-1, 1, 1, 1) > 3.0, out * float("nan"), out)


class OutOfRange(PlainGenerator):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return super().forward(z) * 3


def test_bad_candidates_raise_errors_naming_them() -> None:
    good = PlainGenerator(0)
    cases = [
        (NoLatent(), "latent_dim"),
        ("not a module", "nn.Module"),
        (Flat(1), "returned"),
        (NaNOut(1), "NaN"),
        (OutOfRange(1), "outside"),
        (PlainGenerator(1, size=4), "shape"),
    ]
    for bad, what in cases:
        with pytest.raises(CandidateError, match=what) as info:
            SeedReconstruction(restarts=1, steps=1).fit({"good": good, "bad-one": bad})
        assert "'bad-one'" in str(info.value)
    float_latent = PlainGenerator(1)
    float_latent.latent_dim = 4.0  # type: ignore[assignment]
    with pytest.raises(CandidateError, match=r"'bad-one'.*latent_dim"):
        SeedReconstruction().fit({"bad-one": float_latent})


def test_nan_during_reconstruction_names_the_candidate() -> None:
    gens = {"good": PlainGenerator(0), "unstable": NaNLater(1)}
    z = torch.full((1, LATENT), 2.9)
    att = SeedReconstruction(restarts=1, steps=60, lr=0.5).fit(gens)
    x = samples(PlainGenerator(0).eval(), 1, 0) * 0 + 0.99  # far from both: latents must move a lot
    with pytest.raises(GenattrError, match=r"'unstable'.*NaN"):
        att.decision_function(x)
    assert torch.isfinite(gens["unstable"].eval()(z)).all()


def test_images_of_another_size_and_bad_values_raise() -> None:
    att = SeedReconstruction(restarts=1, steps=1).fit(tiny_generators())
    with pytest.raises(InvalidInputError, match="shape"):
        att.decision_function(torch.zeros(2, 1, 16, 16))
    with pytest.raises(InvalidInputError, match=r"\(1, 16, 16\).*g0, g1"):  # direct use names the candidates
        att.reconstruct_all(torch.zeros(2, 1, 16, 16))
    assert att.image_shape_ == [1, SIZE, SIZE]
    with pytest.raises(InvalidInputError, match="outside"):
        att.decision_function(torch.full((1, 1, SIZE, SIZE), 2.0))
    with pytest.raises(InvalidInputError, match="NaN"):
        att.decision_function(torch.full((1, 1, SIZE, SIZE), math.nan))
    with pytest.raises(CandidateError, match="declared image_shape"):
        SeedReconstruction().fit(tiny_generators(), image_shape=(1, 16, 16))


@pytest.mark.parametrize("params", [{"distance": "lpips"}, {"restarts": 0}, {"engine": "spark"}, {"steps": -1},
                                    {"betas": (0.9, 1.0)}, {"shortlist_k": 0}, {"chunk_size": 0},
                                    {"device": "not-a-device"}])
def test_bad_hyperparameters_raise(params: dict) -> None:
    with pytest.raises(ConfigError):
        SeedReconstruction(**params).fit(tiny_generators())


def test_unknown_fit_parameter_raises() -> None:
    with pytest.raises(ConfigError, match="unexpected"):
        SeedReconstruction().fit(tiny_generators(), unexpected=1)


# -- adversarial manipulations (attribution/adversarial.py) ---------------------------------------------------


def test_ssim_is_one_on_identical_images_and_drops_with_noise() -> None:
    from genattr.attribution.adversarial import ssim

    x = samples(PlainGenerator(0).eval(), 3, 0)
    torch.testing.assert_close(ssim(x, x), torch.ones(3))
    g = torch.Generator().manual_seed(0)
    small = ssim(x, (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(-1, 1))
    large = ssim(x, (x + 0.5 * torch.randn(x.shape, generator=g)).clamp(-1, 1))
    assert (small < 1).all() and (large < small).all()


def test_image_space_attacks_respect_their_budget_and_move_the_features() -> None:
    from genattr.attribution.adversarial import cw_image, feature_distance, fgm_l2_image, fgsm_image, pgd_image

    f = frozen_copy(FeatureMap(TinyExtractor(), None))
    x = samples(PlainGenerator(0).eval(), 4, 0) * 0.5  # away from the clip boundary
    for attack in (fgsm_image, pgd_image):
        xa = attack(x, 0.1, feature=f)
        assert (xa - x).abs().max() <= 0.1 + 1e-6
        assert (feature_distance(f, xa, x) > feature_distance(f, fgsm_image(x, 0.0, feature=f), x)).all()
    xa = fgm_l2_image(x, 0.5, feature=f)
    torch.testing.assert_close((xa - x).flatten(1).norm(dim=1), torch.full((4,), 0.5), atol=1e-4, rtol=0)
    small, large = cw_image(x, 0.1, feature=f, steps=30), cw_image(x, 10.0, feature=f, steps=30)
    assert (large - x).flatten(1).norm(dim=1).mean() > (small - x).flatten(1).norm(dim=1).mean()
    assert feature_distance(f, large, x).mean() > feature_distance(f, small, x).mean()


def test_seed_space_fgsm_and_classifier_attacks() -> None:
    from genattr.attribution.adversarial import fgsm_logits, fgsm_seed, pgd_logits

    g = frozen_copy(PlainGenerator(0))
    s = torch.randn(3, LATENT, generator=torch.Generator().manual_seed(1))
    xa, sa = fgsm_seed(g, s, 0.2)
    assert (sa - s).abs().max() <= 0.2 + 1e-6 and xa.shape == (3, 1, SIZE, SIZE)
    torch.testing.assert_close(xa, g(sa))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        clf = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 2))
    x = samples(PlainGenerator(0).eval(), 6, 2) * 0.5
    y = clf(x).argmax(1).detach()
    p_true = clf(x).softmax(1).gather(1, y[:, None]).mean()
    for xa in (fgsm_logits(clf, x, y, 0.2), pgd_logits(clf, x, y, 0.2), pgd_logits(clf, x, y, 1.0, norm="l2")):
        assert clf(xa).softmax(1).gather(1, y[:, None]).mean() < p_true
    assert (pgd_logits(clf, x, y, 1.0, norm="l2") - x).flatten(1).norm(dim=1).max() <= 1.0 + 1e-5


def test_attribute_runs_the_reconstruction_once_on_the_given_engine() -> None:
    from genattr.attribution.reconstruction_engines import LocalEngine

    class Counting(LocalEngine):
        calls = 0

        def run(self, problems, settings):  # type: ignore[no-untyped-def]
            Counting.calls += 1
            return super().run(problems, settings)

    gens = tiny_generators()
    att = SeedReconstruction(restarts=2, steps=5, chunk_size=2).fit(gens)
    x = samples(gens["g1"], 3, 8)
    eng = Counting()
    res = att.attribute(x, engine=eng)
    assert Counting.calls == 1 and eng.last_tasks == 4  # 2 chunks × 2 candidates
    torch.testing.assert_close(res.extras["distances"], -res.scores)
    assert att.make_engine() is not eng  # the override ends with the call
