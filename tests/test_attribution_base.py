"""The attribution base class, decision rule, calibration and registry."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch

from genattr import UNKNOWN
from genattr.attribution import (
    Attributor,
    Capabilities,
    NotFittedError,
    assign_labels,
    attributor_class,
    create_attributor,
    list_attributors,
    register_attributor,
    unregister_attributor,
)
from genattr.attribution.baselines import NearestMean
from genattr.errors import ConfigError, DataError, GenattrError, UnknownNameError
from tests.attribution_contract import AttributorContract, FitData


class ColumnMean(Attributor):
    """Unregistered toy: score of candidate j = mean of channel j (tests the default state handling)."""

    capabilities = Capabilities(supports_open_set=True)

    def __init__(self, *, offset: float = 0.0) -> None:
        self.offset = offset

    def _fit(self, candidates: Mapping[str, Any], **fit_params: Any) -> None:
        self.offsets_ = np.arange(len(candidates), dtype=np.float32) * 0 + self.offset
        self.notes_ = {"fitted_on": list(candidates)}
        self.pair_ = (1, 2)
        self.bank_ = {"w": torch.ones(len(candidates))}

    def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
        k = len(self.candidates_)
        return x[:, :k].mean(dim=(2, 3)) * self.bank_["w"] + torch.from_numpy(self.offsets_)


class TestColumnMeanContract(AttributorContract):
    def make_attributor(self) -> ColumnMean:
        return ColumnMean(offset=0.5)

    def make_fit_data(self) -> FitData:
        return FitData({"r": None, "g": None})

    def make_inputs(self) -> torch.Tensor:
        return torch.linspace(-1, 1, 8 * 2 * 4 * 4).reshape(8, 2, 4, 4)

    def make_calibration_data(self) -> dict[str, torch.Tensor]:
        return {"r": self.make_inputs(), "g": self.make_inputs().flip(0)}


class LinearProbe(Attributor):
    """Unregistered toy with an nn.Module learned attribute: a softmax-regression probe on pixels."""

    capabilities = Capabilities(needs_training_images=True)

    def __init__(self, *, steps: int = 5, seed: int = 0) -> None:
        self.steps = steps
        self.seed = seed

    def _build_module(self, name: str) -> torch.nn.Module:
        assert name == "net_"
        return torch.nn.Linear(self.n_features_, len(self.candidates_))

    def _fit(self, candidates: Mapping[str, Any], **fit_params: Any) -> None:
        x = torch.cat([v.flatten(1) for v in candidates.values()])
        y = torch.cat([torch.full((v.shape[0],), i) for i, v in enumerate(candidates.values())])
        self.n_features_ = x.shape[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net_ = self._build_module("net_")
        opt = torch.optim.SGD(self.net_.parameters(), lr=0.5)
        for _ in range(self.steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(self.net_(x), y).backward()
            opt.step()
        self.net_.eval()

    def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.log_softmax(self.net_(x.flatten(1)), dim=1)


class TestLinearProbeContract(AttributorContract):
    def make_attributor(self) -> LinearProbe:
        return LinearProbe(steps=3)

    def make_fit_data(self) -> FitData:
        g = torch.Generator().manual_seed(0)
        return FitData({"lo": torch.rand(10, 1, 4, 4, generator=g) - 1, "hi": torch.rand(10, 1, 4, 4, generator=g)})

    def make_inputs(self) -> torch.Tensor:
        return torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_module_state_needs_build_module(tmp_path, monkeypatch) -> None:
    LinearProbe(steps=1).fit(TestLinearProbeContract().make_fit_data().candidates).save(tmp_path)
    assert isinstance(LinearProbe.load(tmp_path).net_, torch.nn.Linear)
    monkeypatch.setattr(LinearProbe, "_build_module", Attributor._build_module)
    with pytest.raises(NotImplementedError, match="_build_module"):
        LinearProbe.load(tmp_path)


def test_not_fitted_error_is_a_genattr_error() -> None:
    assert issubclass(NotFittedError, GenattrError)


def test_assign_labels_open_and_closed_set() -> None:
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.3], [0.1, 0.2], [0.5, 0.5]])
    closed = torch.full((2,), -math.inf, dtype=torch.float64)
    assert assign_labels(scores, closed, ["a", "b"]) == ["a", "b", "b", "a"]  # ties → first candidate
    thr = torch.tensor([0.4, 0.25], dtype=torch.float64)
    # row 0: only a accepted; row 1: only b; row 2: none; row 3: both accepted, equal scores → a
    assert assign_labels(scores, thr, ["a", "b"]) == ["a", "b", UNKNOWN, "a"]
    # Accepted candidate with the highest score wins even if another has a larger margin.
    thr2 = torch.tensor([0.85, -1.0], dtype=torch.float64)
    assert assign_labels(torch.tensor([[0.9, 0.8]]), thr2, ["a", "b"]) == ["a"]


def test_fnr_calibration_is_flipad_g1_quantile() -> None:
    att = ColumnMean().fit({"r": None, "g": None})
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 2, 4, 4, generator=g)
    att.calibrate({"r": x}, target_fnr=0.005)
    s = att.decision_function(x)[:, 0].double().numpy()
    # Anomaly score = −s; FLIPAD's τ = (1 − fnr)-quantile of anomaly scores.
    assert att.thresholds_[0].item() == pytest.approx(-np.quantile(-s, 1 - 0.005))
    assert math.isinf(att.thresholds_[1].item())  # candidates without data keep their threshold
    assert att.calibration_ == {"mode": "fnr", "target": 0.005, "n": {"r": 200}}


def test_fpr_calibration_and_argument_errors() -> None:
    att = ColumnMean().fit({"r": None, "g": None})
    neg = torch.rand(100, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    att.calibrate(negatives=neg, target_fpr=0.1)
    s = att.decision_function(neg).double().numpy()
    np.testing.assert_allclose(att.thresholds_.numpy(), np.quantile(s, 0.9, axis=0))
    with pytest.raises(ConfigError):
        att.calibrate()
    with pytest.raises(ConfigError):
        att.calibrate({"r": neg}, target_fnr=0.1, negatives=neg, target_fpr=0.1)
    with pytest.raises(ConfigError, match="unknown candidates"):
        att.calibrate({"zzz": neg}, target_fnr=0.1)


def test_set_thresholds() -> None:
    att = ColumnMean().fit({"r": None, "g": None})
    att.set_thresholds({"g": 0.25})
    assert att.thresholds_.tolist() == [-math.inf, 0.25]
    att.set_thresholds([0.0, 1.0])
    assert att.thresholds_.tolist() == [0.0, 1.0]
    with pytest.raises(ConfigError):
        att.set_thresholds([0.0])


def test_fit_validates_candidates_and_refits_cleanly() -> None:
    with pytest.raises(ConfigError):
        ColumnMean().fit({})
    with pytest.raises(ConfigError):
        ColumnMean().fit({UNKNOWN: None})
    att = ColumnMean().fit({"r": None, "g": None})
    att.calibrate(negatives=torch.rand(10, 2, 4, 4), target_fpr=0.1)
    att.fit({"r": None, "g": None})
    assert "calibration_" not in vars(att) and torch.isinf(att.thresholds_).all()


def test_failed_fit_leaves_no_partial_state() -> None:
    class Boom(ColumnMean):
        def _fit(self, candidates: Mapping[str, Any], **fit_params: Any) -> None:
            self.half_ = 1
            raise RuntimeError("boom")

    att = Boom()
    with pytest.raises(RuntimeError):
        att.fit({"a": None})
    assert att.learned_attributes() == [] and not att.is_fitted


def test_hyperparameters_must_be_keyword_only_with_defaults() -> None:
    with pytest.raises(TypeError, match="keyword-only"):
        class Positional(Attributor):
            def __init__(self, alpha: float = 1.0) -> None:
                self.alpha = alpha
    with pytest.raises(TypeError, match="default"):
        class NoDefault(Attributor):
            def __init__(self, *, alpha: float) -> None:
                self.alpha = alpha


def test_method_without_hyperparameters() -> None:
    class Plain(Attributor):
        def _fit(self, candidates: Mapping[str, Any], **fit_params: Any) -> None:
            pass

        def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
            return x.new_zeros(x.shape[0], len(self.candidates_))

    att = Plain()
    assert att.get_params() == {} and repr(att) == "Plain()"
    assert att.fit({"a": None}).predict(torch.zeros(2, 1, 2, 2)) == ["a", "a"]


def test_get_params_requires_stored_attributes() -> None:
    class Forgetful(Attributor):
        def __init__(self, *, alpha: float = 1.0) -> None:
            pass

    with pytest.raises(TypeError, match="same name"):
        Forgetful().get_params()
    with pytest.raises(ConfigError):
        ColumnMean().set_params(nope=1)


def test_registry() -> None:
    assert "nearest-mean" in list_attributors()
    assert attributor_class("nearest-mean") is NearestMean
    assert isinstance(create_attributor("nearest-mean", n_samples=3), NearestMean)
    with pytest.raises(UnknownNameError, match="nearest-mean"):
        create_attributor("no-such-method")
    with pytest.raises(ConfigError):
        create_attributor("nearest-mean", bogus=1)
    with pytest.raises(ConfigError, match="already registered"):
        register_attributor("nearest-mean")(ColumnMean)
    with pytest.raises(ConfigError):
        register_attributor("not-an-attributor")(dict)  # type: ignore[arg-type]


def test_register_and_unregister_toy() -> None:
    @register_attributor("test-toy-column-mean")
    class Toy(ColumnMean):
        pass

    try:
        assert Toy.name == "test-toy-column-mean"
        assert "test-toy-column-mean" in list_attributors()
    finally:
        unregister_attributor("test-toy-column-mean")
    assert "test-toy-column-mean" not in list_attributors()
    with pytest.raises(UnknownNameError):
        unregister_attributor("test-toy-column-mean")


def test_load_errors(tmp_path) -> None:
    with pytest.raises(DataError, match="missing"):
        Attributor.load(tmp_path)
    att = ColumnMean().fit({"r": None})
    att.save(tmp_path / "toy")
    with pytest.raises(DataError, match="not registered"):
        Attributor.load(tmp_path / "toy")  # unregistered classes load only through their own class
    loaded = ColumnMean.load(tmp_path / "toy")
    # Default state handling restores each kind: ndarray, JSON dict, tuple, dict of tensors.
    assert isinstance(loaded.offsets_, np.ndarray) and loaded.offsets_.dtype == np.float32
    assert loaded.notes_ == {"fitted_on": ["r"]} and loaded.pair_ == (1, 2)
    assert torch.equal(loaded.bank_["w"], torch.ones(1))
    nm = NearestMean().fit({"a": torch.zeros(2, 1, 4, 4)})
    nm.save(tmp_path / "nm")
    with pytest.raises(DataError, match="not a ColumnMean"):
        ColumnMean.load(tmp_path / "nm")
    (tmp_path / "nm" / "config.json").write_text("{not json")
    with pytest.raises(DataError, match="malformed"):
        Attributor.load(tmp_path / "nm")


def test_unregistered_subclass_of_a_registered_method_is_not_saved_under_its_name(tmp_path) -> None:
    class Tweaked(NearestMean):
        pass

    Tweaked().fit({"a": torch.zeros(2, 1, 4, 4)}).save(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["name"] == ""
    assert type(Tweaked.load(tmp_path)) is Tweaked
    with pytest.raises(DataError, match="not registered"):
        Attributor.load(tmp_path)


def test_saved_config_contents(tmp_path) -> None:
    att = NearestMean(n_samples=5).fit({"a": torch.zeros(2, 1, 4, 4), "b": torch.ones(2, 1, 4, 4)})
    att.save(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["name"] == "nearest-mean" and cfg["params"] == {"n_samples": 5, "standardize": False, "seed": 0}
    assert cfg["capabilities"]["needs_training_images"] is True
    loaded = Attributor.load(tmp_path)
    assert loaded.image_shape_ == [1, 4, 4]
