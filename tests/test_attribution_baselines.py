"""The nearest-mean baseline: the contract mixin (the pattern every method's tests copy) plus behaviour."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from genattr import UNKNOWN
from genattr.attribution import InvalidInputError, create_attributor
from genattr.attribution.baselines import NearestMean
from genattr.errors import ConfigError
from tests.attribution_contract import AttributorContract, FitData


def _blobs(seed: int, n: int = 12, c: int = 1, size: int = 8) -> dict[str, torch.Tensor]:
    """Three separable 'generators': noise around different constant grey levels."""
    g = torch.Generator().manual_seed(seed)
    return {name: (level + 0.15 * torch.randn(n, c, size, size, generator=g)).clamp(-1, 1)
            for name, level in (("dark", -0.6), ("mid", 0.0), ("light", 0.6))}


class TinyGenerator(torch.nn.Module):
    """A random untrained generator with the ``sample(n, generator=...)`` interface."""

    def __init__(self, seed: int, latent_dim: int = 4, channels: int = 3, size: int = 8) -> None:
        super().__init__()
        self.latent_dim, self.shape = latent_dim, (channels, size, size)
        with torch.random.fork_rng(devices=[]):  # seeded weights, global RNG untouched
            torch.manual_seed(seed)
            self.net = torch.nn.Sequential(torch.nn.Linear(latent_dim, channels * size * size), torch.nn.Tanh())

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.net(torch.randn(n, self.latent_dim, generator=generator)).view(n, *self.shape)


class TestNearestMeanContract(AttributorContract):
    def make_attributor(self) -> NearestMean:
        return NearestMean()

    def make_fit_data(self) -> FitData:
        return FitData(_blobs(0))

    def make_inputs(self) -> torch.Tensor:
        return torch.cat([v[:3] for v in _blobs(1).values()])

    def make_calibration_data(self) -> dict[str, torch.Tensor]:
        return _blobs(2)


class TestNearestMeanStandardizedOnGeneratorsContract(AttributorContract):
    """Same contract when candidates are sampling sources (generators) rather than image tensors."""

    _gens: ClassVar[dict[str, TinyGenerator]] = {f"g{i}": TinyGenerator(i) for i in range(3)}

    def make_attributor(self) -> NearestMean:
        return NearestMean(n_samples=16, standardize=True, seed=3)

    def make_fit_data(self) -> FitData:
        return FitData(self._gens)

    def make_inputs(self) -> torch.Tensor:
        return torch.cat([g.sample(3, torch.Generator().manual_seed(7)) for g in self._gens.values()])

    def make_calibration_data(self) -> dict[str, torch.Tensor]:
        return {k: g.sample(12, torch.Generator().manual_seed(8)) for k, g in self._gens.items()}


def test_separable_sources_are_attributed_and_outsiders_rejected() -> None:
    att = create_attributor("nearest-mean").fit(_blobs(0))
    test = _blobs(1)
    for name, x in test.items():
        assert att.predict(x) == [name] * x.shape[0]
    att.calibrate(_blobs(2), target_fnr=0.0)
    outsider = torch.full((4, 1, 8, 8), 1.0)  # pure white: far from every mean
    assert att.predict(outsider) == [UNKNOWN] * 4


def test_scores_are_negative_mean_squared_distance() -> None:
    data = _blobs(0)
    att = NearestMean().fit(data)
    x = _blobs(1)["mid"][:2]
    expected = torch.stack([-((x.flatten(1) - v.flatten(1).double().mean(0).float()) ** 2).mean(1)
                            for v in data.values()], 1)
    torch.testing.assert_close(att.decision_function(x), expected)


def test_wrong_image_shape_and_bad_fit_data_raise() -> None:
    att = NearestMean().fit(_blobs(0))
    with pytest.raises(InvalidInputError, match="shape"):
        att.decision_function(torch.zeros(2, 3, 8, 8))
    with pytest.raises(InvalidInputError):
        NearestMean().fit({"a": torch.zeros(2, 1, 8, 8), "b": torch.zeros(2, 1, 4, 4)})
    with pytest.raises(ConfigError):
        NearestMean().fit({"a": torch.zeros(2, 1, 8, 8)}, unexpected=1)
    with pytest.raises(ConfigError):
        NearestMean(n_samples=0).fit({"g": TinyGenerator(0)})
