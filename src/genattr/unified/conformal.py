"""Making scores of different methods comparable: conformal p-values from each component's calibration scores.

Two kinds of p-value, one per kind of question (docs/attribute.md):

* **credibility** (passive methods: classifiers, FLIPAD detectors). H0: "the image comes from candidate c". With
  the scores S_1 … S_m of m held-out images of c (higher = more like c), p_c(x) = (1 + #{i: S_i ≤ s_c(x)}) /
  (m + 1); under H0 (x exchangeable with the calibration images) P(p_c ≤ α) ≤ α, so rejecting c when
  p_c < α loses at most a fraction α of c's own images.
* **detection** (watermarks: keys). H0: "the image is not marked by this key" (authentic or unrelated). With
  the scores N_1 … N_m of m such images, p(x) = (1 + #{i: N_i ≥ s(x)}) / (m + 1).

A shipped component that has only a threshold (τ_c at FNR α on its own held-out images, ``calibration_`` in its
saved state) yields a *bound*, not a value: s ≥ τ_c means p ≥ α (reported as α with ``bound="lower"``), s < τ_c
means p < α (reported as α with ``bound="upper"``). The decision (accept / reject at α) is the same as with the
exact p-value; only the confidence becomes a conservative bound.

:class:`Calibration` holds the scores per component and candidate and is saved as JSON
(``genattr-unified-calibration/1``): plain numbers, no pickle.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genattr.errors import DataError

FORMAT = "genattr-unified-calibration/1"
FEATURES = "#features"  # suffix of a classifier's feature-distance scores in Calibration.scores
MAX_SCORES = 1_000_000  # per candidate: a calibration file larger than this is refused


@dataclass(frozen=True)
class PValue:
    """A p-value, or a bound on one: ``bound`` is "exact", "lower" (p ≥ value) or "upper" (p < value)."""

    value: float
    bound: str = "exact"

    def accepts(self, alpha: float) -> bool:
        """Not rejected at level alpha (credibility: the candidate stays in the prediction set). A bound from a
        threshold-only component carries that component's own decision (its threshold's level), whatever alpha."""
        if self.bound != "exact":
            return self.bound == "lower"
        return self.value >= alpha

    def to_json(self) -> dict[str, Any]:
        return {"p_value": self.value, "bound": self.bound}


def credibility(sorted_scores: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(1 + #{S_i ≤ s}) / (m + 1) for every entry of s (sorted_scores ascending)."""
    m = sorted_scores.shape[0]
    return (1.0 + np.searchsorted(sorted_scores, s, side="right")) / (m + 1.0)


def detection(sorted_scores: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(1 + #{N_i ≥ s}) / (m + 1) for every entry of s (sorted_scores ascending)."""
    m = sorted_scores.shape[0]
    return (1.0 + m - np.searchsorted(sorted_scores, s, side="left")) / (m + 1.0)


def threshold_pvalues(scores: np.ndarray, thresholds: np.ndarray, alphas: np.ndarray) -> list[list[PValue]]:
    """Threshold-only bounds (module docstring): (n, k) scores, (k,) thresholds and FNR levels."""
    out = []
    for row in scores:
        out.append([PValue(float(a), "lower" if s >= t else "upper") if math.isfinite(t)
                    else PValue(1.0, "lower") for s, t, a in zip(row, thresholds, alphas, strict=True)])
    return out


def _check_scores(values: Any, where: str) -> np.ndarray:
    bad = DataError(f"{where}: calibration scores must be a non-empty list of at most {MAX_SCORES} finite "
                    "numbers")
    if isinstance(values, list) and not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise bad
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise bad from exc
    if arr.ndim != 1 or arr.size == 0 or arr.size > MAX_SCORES or not np.isfinite(arr).all():
        raise bad
    return np.sort(arr)  # full precision: JSON keeps float64 exactly, and rounding would break exact ties


@dataclass
class Calibration:
    """Calibration scores: ``scores[component][candidate]`` sorted ascending (credibility for classifiers and
    detectors, the candidate's own held-out images; detection for keys, authentic images' scores per user);
    ``sha256[component]`` identifies the component they were computed for; ``meta`` says how (split, seeds).
    A classifier with image fingerprints (features) also gets ``centroids[component][candidate]`` (the mean
    feature vector of half the candidate's calibration images) and ``scores[component + FEATURES][candidate]``
    (minus the squared feature distance of the other half to it)."""

    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    sha256: dict[str, str | None] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    centroids: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # feature means per candidate

    def for_component(self, name: str, sha256: str | None = None) -> dict[str, np.ndarray] | None:
        """The scores of component ``name``; None when there are none or they were computed for another file."""
        if name not in self.scores:
            return None
        want = self.sha256.get(name)
        if want is not None and sha256 is not None and want != sha256:
            return None
        return self.scores[name]

    def features_for(self, name: str, sha256: str | None = None
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
        """(centroids, feature scores) of classifier ``name``, or None."""
        if name not in self.centroids or self.for_component(name, sha256) is None:
            return None
        return self.centroids[name], self.scores.get(name + FEATURES, {})

    def set(self, name: str, per_candidate: Mapping[str, Any], sha256: str | None = None) -> None:
        self.scores[name] = {c: _check_scores(v, f"{name}/{c}") for c, v in per_candidate.items()}
        self.sha256[name] = sha256

    def set_centroids(self, name: str, per_candidate: Mapping[str, Any]) -> None:
        out = {}
        for c, v in per_candidate.items():
            arr = np.asarray(v, dtype=np.float64)
            if arr.ndim != 1 or not 0 < arr.size <= 65536 or not np.isfinite(arr).all():
                raise DataError(f"{name}/{c}: a feature centroid must be 1 to 65536 finite numbers")
            out[c] = arr
        self.centroids[name] = out

    def to_json(self) -> dict[str, Any]:
        comps: dict[str, Any] = {n: {"sha256": self.sha256.get(n),
                                     "scores": {c: s.tolist() for c, s in per.items()}}
                                 for n, per in self.scores.items()}
        for n, per in self.centroids.items():
            comps.setdefault(n, {"sha256": self.sha256.get(n), "scores": {}})["centroids"] = \
                {c: m.tolist() for c, m in per.items()}
        return {"format": FORMAT, "meta": self.meta, "components": comps}

    @classmethod
    def from_json(cls, data: Any, where: str = "calibration") -> Calibration:
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("components"), dict):
            raise DataError(f"{where}: not a {FORMAT} file")
        cal = cls(meta=dict(data.get("meta") or {}))
        for name, comp in data["components"].items():
            if not isinstance(comp, dict) or not isinstance(comp.get("scores"), dict):
                raise DataError(f"{where}: component {name!r} has no 'scores' object")
            sha = comp.get("sha256")
            if sha is not None and not isinstance(sha, str):
                raise DataError(f"{where}: component {name!r}: sha256 must be a string")
            cal.set(str(name), comp["scores"], sha)
            if comp.get("centroids") is not None:
                if not isinstance(comp["centroids"], dict):
                    raise DataError(f"{where}: component {name!r}: 'centroids' must be an object")
                cal.set_centroids(str(name), comp["centroids"])
        return cal

    def save(self, path: str | Path) -> Path:
        """Write atomically (temporary file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.to_json(), f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        path = Path(path)
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except OSError as exc:
            raise DataError(f"{path}: unreadable calibration file ({exc.strerror or exc})") from exc
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise DataError(f"{path}: malformed calibration file ({exc})") from exc
        return cls.from_json(data, str(path))


__all__ = ["FEATURES", "FORMAT", "Calibration", "PValue", "credibility", "detection", "threshold_pvalues"]
