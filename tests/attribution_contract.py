"""Contract-test mixin every attributor's tests inherit.

Usage (see tests/test_attribution_baselines.py)::

    class TestMyMethodContract(AttributorContract):
        def make_attributor(self):
            return MyMethod(steps=2)

        def make_fit_data(self):
            return FitData({"a": images_a, "b": images_b})

        def make_inputs(self):
            return torch.cat([images_a[:4], images_b[:4]])

Optional hooks: ``make_calibration_data`` (candidate → held-out images; default: the fit tensors),
``make_negatives`` (images from no candidate; default: ``make_inputs()``), ``score_atol`` (tolerance of
the batch-invariance check), ``registered_name`` (default: the class's registry name).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from genattr import UNKNOWN, __version__
from genattr.attribution import (
    AttributionResult,
    Attributor,
    Capabilities,
    NotFittedError,
    attributor_class,
    create_attributor,
)
from genattr.attribution.registry import list_attributors, registered_name


@dataclass
class FitData:
    """Arguments for ``attributor.fit(candidates, **kwargs)``."""

    candidates: Mapping[str, Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape \
            and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _snapshot(obj: Any) -> Any:
    """A comparable copy of fit data (tensors cloned; other objects by their tensors' state)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, torch.nn.Module):
        return {k: v.detach().clone() for k, v in obj.state_dict().items()}
    if isinstance(obj, Mapping):
        return {k: _snapshot(v) for k, v in obj.items()}
    return copy.deepcopy(obj) if isinstance(obj, list | tuple | int | float | str) else id(obj)


class AttributorContract:
    """Mixin: inherit it in a ``Test…`` class and implement the hooks."""

    score_atol: float = 1e-5
    registered_name: str | None = None

    # -- hooks -------------------------------------------------------------------------------------------
    def make_attributor(self) -> Attributor:
        raise NotImplementedError

    def make_fit_data(self) -> FitData:
        raise NotImplementedError

    def make_inputs(self) -> torch.Tensor:
        raise NotImplementedError

    def make_calibration_data(self) -> Mapping[str, torch.Tensor]:
        data = self.make_fit_data().candidates
        cal = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
        if not cal:  # methods fitted on generators must say what to calibrate on, not silently skip
            raise NotImplementedError("no tensor calibration data in make_fit_data(); implement make_calibration_data")
        return cal

    def make_negatives(self) -> torch.Tensor:
        return self.make_inputs()

    # -- helpers ---------------------------------------------------------------------------------------------
    def _fit(self, att: Attributor | None = None) -> Attributor:
        data = self.make_fit_data()
        att = self.make_attributor() if att is None else att
        return att.fit(data.candidates, **data.kwargs)

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls) -> Attributor:
        """One fitted attributor per test class; tests that mutate it work on a deep copy."""
        return cls()._fit()

    # -- constructor and parameters --------------------------------------------------------------------------
    def test_constructor_stores_params_only(self) -> None:
        att = self.make_attributor()
        assert isinstance(att, Attributor)
        assert att.learned_attributes() == [], "the constructor must not set learned (trailing _) state"
        assert not att.is_fitted
        params = att.get_params()
        json.dumps(params)  # hyperparameters are JSON values, so config.json can hold them
        assert type(att)(**params).get_params() == params
        assert isinstance(type(att).capabilities, Capabilities)

    def test_clone_and_set_params(self, fitted: Attributor) -> None:
        c = fitted.clone()
        assert type(c) is type(fitted) and c is not fitted
        assert _same(c.get_params(), fitted.get_params())
        assert not c.is_fitted and c.learned_attributes() == []
        p = c.get_params()
        assert c.set_params(**p) is c

    def test_registered_name(self) -> None:
        att = self.make_attributor()
        name = self.registered_name or registered_name(type(att))
        if not name:  # a test-only toy: it must not leak into the registry under any name
            assert type(att) not in {attributor_class(n) for n in list_attributors()}
            return
        assert attributor_class(name) is type(att)
        assert type(create_attributor(name, **att.get_params())) is type(att)

    # -- fitting ---------------------------------------------------------------------------------------------
    def test_fit_returns_self_and_keeps_params(self) -> None:
        att = self.make_attributor()
        before = copy.deepcopy(att.get_params())
        data = self.make_fit_data()
        snap = _snapshot(dict(data.candidates))
        assert att.fit(data.candidates, **data.kwargs) is att
        assert _same(att.get_params(), before), "fit must not change constructor parameters"
        assert _same(_snapshot(dict(data.candidates)), snap), "fit must not modify its inputs"
        assert att.is_fitted
        assert att.candidates_ == list(data.candidates)
        assert att.thresholds_.shape == (len(data.candidates),)
        assert all(a.endswith("_") for a in att.learned_attributes())

    def test_unfitted_use_raises(self) -> None:
        att = self.make_attributor()
        x = self.make_inputs()
        for call in (lambda: att.decision_function(x), lambda: att.predict(x), lambda: att.attribute(x),
                     lambda: att.calibrate(negatives=x, target_fpr=0.1)):
            with pytest.raises(NotFittedError):
                call()

    def test_unfitted_save_raises(self, tmp_path: Path) -> None:
        with pytest.raises(NotFittedError):
            self.make_attributor().save(tmp_path / "m")

    def test_seeded_determinism(self, fitted: Attributor) -> None:
        again = self._fit(fitted.clone())
        x = self.make_inputs()
        assert torch.equal(fitted.decision_function(x), again.decision_function(x))

    # -- scoring ---------------------------------------------------------------------------------------------
    def test_decision_function_shape_and_type(self, fitted: Attributor) -> None:
        x = self.make_inputs()
        k = len(fitted.candidates_)
        for batch in (x, x[:1], x[:0]):
            s = fitted.decision_function(batch)
            assert isinstance(s, torch.Tensor) and s.is_floating_point()
            assert s.shape == (batch.shape[0], k)
        assert torch.isfinite(fitted.decision_function(x)).all()

    def test_scores_do_not_depend_on_batching(self, fitted: Attributor) -> None:
        x = self.make_inputs()
        whole = fitted.decision_function(x)
        parts = torch.cat([fitted.decision_function(x[i:i + 1]) for i in range(x.shape[0])])
        torch.testing.assert_close(parts, whole, atol=self.score_atol, rtol=1e-5)

    def test_inputs_not_modified(self, fitted: Attributor) -> None:
        x = self.make_inputs()
        ref = x.clone()
        fitted.decision_function(x)
        fitted.attribute(x)
        assert torch.equal(x, ref)

    def test_single_image_needs_batch_dim(self, fitted: Attributor) -> None:
        from genattr.attribution import InvalidInputError

        with pytest.raises(InvalidInputError):
            fitted.decision_function(self.make_inputs()[0])

    def test_invalid_inputs_raise_one_clear_error(self, fitted: Attributor) -> None:
        """The base contract's one validator: finite, in [-1, 1], NCHW, channels and size as fitted."""
        from genattr.attribution import InvalidInputError

        x = self.make_inputs()[:2]
        bad = {"NaN": x.clone().index_put_((torch.tensor([0]),), torch.tensor(float("nan"))),
               "[0, 255] pixels": (x + 1) * 127.5,
               "integer tensor": ((x + 1) * 127.5).to(torch.uint8)}
        shape = fitted.fitted_image_shape()
        if shape is not None:
            c, h, w = shape
            bad["other channel count"] = torch.zeros(2, c + 2, h, w)
            bad["other size"] = torch.zeros(2, c, h + 8, w + 8)
        for _what, batch in bad.items():
            with pytest.raises(InvalidInputError):
                fitted.decision_function(batch)
            with pytest.raises(InvalidInputError):
                fitted.predict(batch)

    def test_predict_and_attribute_types(self, fitted: Attributor) -> None:
        x = self.make_inputs()
        allowed = {*fitted.candidates_, UNKNOWN}
        for batch in (x, x[:1], x[:0]):
            labels = fitted.predict(batch)
            assert isinstance(labels, list) and len(labels) == batch.shape[0]
            assert all(isinstance(lab, str) and lab in allowed for lab in labels)
            res = fitted.attribute(batch)
            assert isinstance(res, AttributionResult) and len(res) == batch.shape[0]
            assert list(res.labels) == labels and res.candidates == tuple(fitted.candidates_)
            assert res.scores.shape == (batch.shape[0], len(fitted.candidates_))
            assert torch.equal(res.thresholds, fitted.thresholds_)
        with pytest.raises(dataclasses.FrozenInstanceError):
            res.labels = ()  # type: ignore[misc]
        json.dumps(fitted.attribute(x[:2]).to_dict())

    def test_closed_set_predict_is_argmax(self, fitted: Attributor) -> None:
        att = copy.deepcopy(fitted)
        att.set_thresholds([-math.inf] * len(att.candidates_))
        x = self.make_inputs()
        best = att.decision_function(x).argmax(1).tolist()
        assert att.predict(x) == [att.candidates_[i] for i in best]

    # -- calibration -----------------------------------------------------------------------------------------
    def test_calibrate_at_target_fnr(self, fitted: Attributor) -> None:
        att = copy.deepcopy(fitted)
        cal = self.make_calibration_data()
        fnr = 0.25
        assert att.calibrate(cal, target_fnr=fnr) is att
        for name, imgs in cal.items():
            j = att.candidates_.index(name)
            s = att.decision_function(imgs)[:, j].double()
            tau = att.thresholds_[j]
            rejected = (s < tau).float().mean().item()
            # FLIPAD G.1: about a fraction fnr of in-distribution samples falls below the threshold: not more
            # (a threshold at +inf rejects everything) and not fewer (−inf, left uncalibrated, rejects nothing;
            # ties at τ count as "at or below").
            assert math.isfinite(float(tau))
            assert rejected <= fnr + 1.0 / s.numel() + 1e-9
            assert (s <= tau).float().mean().item() >= fnr - 1.0 / s.numel() - 1e-9

    def test_calibrate_at_target_fpr(self, fitted: Attributor) -> None:
        att = copy.deepcopy(fitted)
        neg = self.make_negatives()
        fpr = 0.25
        att.calibrate(negatives=neg, target_fpr=fpr)
        s = att.decision_function(neg).double()
        accepted = (s >= att.thresholds_).float().mean(0)
        assert torch.isfinite(att.thresholds_).all()
        assert (accepted <= fpr + 1.0 / neg.shape[0] + 1e-9).all()
        # and not a threshold that rejects everything: about a fraction fpr reaches it
        assert (accepted >= fpr - 1.0 / neg.shape[0] - 1e-9).all()

    # -- persistence -----------------------------------------------------------------------------------------
    def test_save_load_round_trip(self, fitted: Attributor, tmp_path: Path) -> None:
        att = copy.deepcopy(fitted)
        x = self.make_inputs()
        att.calibrate(negatives=self.make_negatives(), target_fpr=0.25)  # thresholds must round-trip too
        att.save(tmp_path / "m")
        files = sorted(p.name for p in (tmp_path / "m").iterdir())
        assert all(f.endswith((".json", ".safetensors")) for f in files), f"no pickle files allowed: {files}"
        config = json.loads((tmp_path / "m" / "config.json").read_text())
        assert config["class"] == type(att).__qualname__ and config["genattr_version"] == __version__
        assert config["params"] == json.loads(json.dumps(att.get_params()))
        for loaded in (type(att).load(tmp_path / "m"),
                       *((Attributor.load(tmp_path / "m"),) if registered_name(type(att)) else ())):
            assert type(loaded) is type(att)
            assert _same(loaded.get_params(), att.get_params())
            assert loaded.candidates_ == att.candidates_
            assert torch.equal(loaded.thresholds_, att.thresholds_)
            assert torch.equal(loaded.decision_function(x), att.decision_function(x))
            assert loaded.predict(x) == att.predict(x)
