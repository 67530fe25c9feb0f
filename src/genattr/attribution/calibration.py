"""Threshold setting for open-set prediction (FLIPAD G.1), mixed into :class:`~genattr.attribution.Attributor`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Self

import torch

from genattr.attribution.inputs import check_images
from genattr.errors import ConfigError


class CalibrationMixin:
    """``calibrate`` (FNR on held-out own images, or FPR on negatives) and ``set_thresholds``; relies on the
    host's ``decision_function``, ``_check_fitted``, ``candidates_`` and ``thresholds_``."""

    candidates_: list[str]
    thresholds_: torch.Tensor

    def calibrate(self, x_in: Mapping[str, torch.Tensor] | None = None, *, target_fnr: float | None = None,
                  negatives: torch.Tensor | None = None, target_fpr: float | None = None) -> Self:
        """Set ``thresholds_`` for open-set prediction, in one of two ways:

        * ``calibrate({name: images from that candidate}, target_fnr=0.005)`` — FLIPAD G.1: τ_c is the
          (1 − fnr)-quantile of the anomaly scores of held-out in-distribution samples, i.e. the
          fnr-quantile of our "higher = in-distribution" scores, so a fraction fnr of them is rejected;
        * ``calibrate(negatives=images from no candidate, target_fpr=0.01)`` — τ_c is the (1 − fpr)-quantile
          of the negatives' scores for every candidate.

        Candidates not in ``x_in`` keep their thresholds. Returns ``self``.
        """
        from genattr.metrics.functional import threshold_at_fnr, threshold_at_fpr

        self._check_fitted()
        by_fnr = x_in is not None or target_fnr is not None
        by_fpr = negatives is not None or target_fpr is not None
        if by_fnr == by_fpr:
            raise ConfigError("calibrate with either (x_in, target_fnr=...) or (negatives=..., target_fpr=...)")
        thresholds = self.thresholds_.clone()
        if by_fnr:
            if x_in is None or target_fnr is None or not isinstance(x_in, Mapping):
                raise ConfigError("FNR calibration needs x_in={candidate: images} and target_fnr")
            unknown = [c for c in x_in if c not in self.candidates_]
            if unknown:
                raise ConfigError(f"calibration data for unknown candidates {unknown}; known: {self.candidates_}")
            counts = {}
            for name, imgs in x_in.items():
                j = self.candidates_.index(name)
                s = self._fnr_calibration_scores(name, check_images(imgs, what=f"x_in[{name!r}]"), target_fnr)
                thresholds[j] = threshold_at_fnr(s, target_fnr)
                counts[name] = int(s.shape[0])
            self.calibration_ = {"mode": "fnr", "target": float(target_fnr), "n": counts}
        else:
            if negatives is None or target_fpr is None:
                raise ConfigError("FPR calibration needs negatives=images and target_fpr")
            s = self.decision_function(check_images(negatives, what="negatives"))
            for j in range(len(self.candidates_)):
                thresholds[j] = threshold_at_fpr(s[:, j], target_fpr)
            self.calibration_ = {"mode": "fpr", "target": float(target_fpr), "n": int(s.shape[0])}
        self.thresholds_ = thresholds
        return self

    def _fnr_calibration_scores(self, name: str, x: torch.Tensor, target_fnr: float) -> torch.Tensor:
        """Scores of candidate ``name`` on its held-out images for FNR calibration. Subclasses whose score
        scaling is itself set from held-out data (e.g. a fusion of detectors) adapt it here first, from the
        same images and in one pass."""
        return self.decision_function(x)[:, self.candidates_.index(name)]

    def set_thresholds(self, thresholds: Mapping[str, float] | Sequence[float] | torch.Tensor) -> Self:
        """Set thresholds directly (e.g. Yu et al. 2022's fixed 121-of-128 bit-match rule)."""
        self._check_fitted()
        t = self.thresholds_.clone()
        if isinstance(thresholds, Mapping):
            for name, v in thresholds.items():
                if name not in self.candidates_:
                    raise ConfigError(f"unknown candidate {name!r}")
                t[self.candidates_.index(name)] = float(v)
        else:
            t = torch.as_tensor(thresholds, dtype=torch.float64).reshape(-1).clone()
            if t.shape != self.thresholds_.shape:
                raise ConfigError(f"expected {len(self.candidates_)} thresholds, got {t.numel()}")
        self.thresholds_ = t
        return self


__all__ = ["CalibrationMixin"]
