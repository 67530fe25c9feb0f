"""The ``kim2021-keys`` attributor: contract mixin plus the verifier's sign convention and ambiguity rule."""

from __future__ import annotations

import math

import pytest
import torch

from genattr import UNKNOWN
from genattr.attribution import Attributor, InvalidInputError, create_attributor
from genattr.attribution.keys import KeyAttributor
from genattr.errors import ConfigError, DataError
from genattr.watermark.keys import NonCompliantKeyError
from tests.attribution_contract import AttributorContract, FitData

SHAPE = (1, 8, 8)
D = 64


def _keys(interior: float = 0.2) -> torch.Tensor:
    """Three orthonormal keys, mostly on border pixels (real images there are −1 ⇒ φᵀx < 0), each with a
    small weight on its own interior pixel so that real scores vary."""
    k = torch.zeros(3, *SHAPE)
    k[0, 0, 0, :4] = 0.5
    k[1, 0, 0, 4:] = 0.5
    k[2, 0, 7, :4] = 0.5
    for i in range(3):
        k[i, 0, 2 + i, 3] = interior
    return k / k.flatten(1).norm(dim=1).view(3, 1, 1, 1)


def _real(n: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, *SHAPE), -1.0)
    x[:, :, 1:7, 1:7] = torch.rand(n, 1, 6, 6, generator=g) * 2 - 1
    return x


def _keyed(i: int, n: int = 6, gamma: float = 3.0, seed: int = 1) -> torch.Tensor:
    return (_real(n, seed) + gamma * _keys()[i]).clamp(-1, 1)


class TestKeyAttributorContract(AttributorContract):
    def make_attributor(self) -> KeyAttributor:
        return KeyAttributor()

    def make_fit_data(self) -> FitData:
        return FitData({f"u{i}": k for i, k in enumerate(_keys())}, {"real": _real()})

    def make_inputs(self) -> torch.Tensor:
        return torch.cat([_real(3, 5), _keyed(0, 2), _keyed(1, 2), _keyed(2, 2)])

    def make_calibration_data(self) -> dict[str, torch.Tensor]:
        return {f"u{i}": _keyed(i, 8, seed=7 + i) for i in range(3)}

    def make_negatives(self) -> torch.Tensor:
        return _real(8, 9)


def test_sign_convention_and_labels() -> None:
    att = create_attributor("kim2021-keys").fit({f"u{i}": k for i, k in enumerate(_keys())}, real=_real())
    real = _real(5, 3)
    assert (att.decision_function(real) < 0).all()  # paper: authentic φᵀx < 0 for every key
    for i in range(3):
        s = att.decision_function(_keyed(i))
        assert (s[:, i] > 0).all()
        assert att.predict(_keyed(i)) == [f"u{i}"] * 6
    assert att.predict(real) == [UNKNOWN] * 5
    res = att.attribute(real)
    assert res.extras["n_fired"].tolist() == [0] * 5
    assert torch.equal(att.thresholds_, torch.zeros(3, dtype=torch.float64))


def test_scores_are_phi_transpose_x() -> None:
    att = KeyAttributor().fit({"a": _keys()[0], "b": _keys()[1]})
    x = _keyed(0, 4)
    expect = x.reshape(4, -1) @ _keys()[:2].reshape(2, -1).T
    torch.testing.assert_close(att.decision_function(x), expect)
    # hand-computed with pure border keys: real border pixels are −1 → φᵀx = 4 · 0.5 · (−1) = −2; shifted by
    # 4φ they are −1 + 4 · 0.5 = +1 → φᵀx = +2
    pure = _keys(0.0)
    att = KeyAttributor().fit({"a": pure[0]})
    assert torch.allclose(att.decision_function(_real(2)), torch.tensor([[-2.0], [-2.0]]))
    assert torch.allclose(att.decision_function(_real(1) + 4 * pure[0]), torch.tensor([[2.0]]))


def test_two_keys_firing_is_ambiguous_unknown() -> None:
    att = KeyAttributor().fit({f"u{i}": k for i, k in enumerate(_keys())})
    both = (_real(2) + 3 * _keys()[0] + 3 * _keys()[1]).clamp(-1, 1)
    res = att.attribute(both)
    assert res.labels == (UNKNOWN, UNKNOWN)
    assert res.extras["n_fired"].tolist() == [2, 2] and res.extras["ambiguous"].all()
    # closed set (thresholds −inf): no key "fires", the contract's arg-max applies
    att.set_thresholds([-math.inf] * 3)
    s = att.decision_function(both)
    assert att.predict(both) == [att.candidates_[i] for i in s.argmax(1).tolist()]
    assert set(att.predict(both)) <= {"u0", "u1"}


def test_bad_keys_and_inputs() -> None:
    k = _keys()
    with pytest.raises(DataError, match="norm"):
        KeyAttributor().fit({"a": 2 * k[0]})
    with pytest.raises(DataError, match="shape"):
        KeyAttributor().fit({"a": k[0, 0]})
    with pytest.raises(DataError, match="different shapes"):
        KeyAttributor().fit({"a": k[0], "b": torch.ones(1, 4, 4) / 4})
    nan = k[0].clone()
    nan[0, 0, 0] = math.nan
    with pytest.raises(DataError, match="NaN"):
        KeyAttributor().fit({"a": nan})
    bad = torch.zeros(1, 8, 8)
    bad[0, 3, 3] = 1.0  # interior pixel: some real images are > 0 there
    with pytest.raises(NonCompliantKeyError, match="not data-compliant"):
        KeyAttributor().fit({"a": k[0], "b": bad}, real=_real(50))
    with pytest.raises(ConfigError):
        KeyAttributor().fit({"a": k[0]}, negatives=_real())
    att = KeyAttributor().fit({"a": k[0]})
    with pytest.raises(InvalidInputError, match=r"8×8|channel"):
        att.decision_function(torch.zeros(1, 1, 16, 16))
    with pytest.raises(InvalidInputError, match="channel"):
        att.decision_function(torch.zeros(1, 3, 8, 8))
    x = _real(1)
    x[0, 0, 2, 2] = math.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        att.decision_function(x)


def test_keyed_objects_and_round_trip(tmp_path) -> None:
    class User:
        def __init__(self, key: torch.Tensor) -> None:
            self.key = key

    att = KeyAttributor().fit({"a": User(_keys()[0]), "b": _keys()[1][None]})
    att.save(tmp_path / "m")
    again = Attributor.load(tmp_path / "m")
    assert isinstance(again, KeyAttributor)
    x = _keyed(1, 3)
    assert torch.equal(again.decision_function(x), att.decision_function(x))
    assert again.predict(x) == ["b"] * 3
