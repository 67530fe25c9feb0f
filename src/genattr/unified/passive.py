"""The passive components: closed-set classifiers, per-model open-set (FLIPAD-style) detectors, and seed
reconstruction over a shortlist (``deep=True``).

Classifiers and detectors answer with *credibility* p-values (H0: "the image comes from candidate c"; see
:mod:`genattr.unified.conformal`): exact conformal p-values when the pipeline holds calibration scores for the
component, else bounds from the component's own threshold and its FNR level (``calibration_`` in its saved state).
A classifier with image fingerprints (``att.fingerprints(x)``, Yu et al. 2019's features) is tested twice when
calibrated: its softmax score, and the distance of the image's features to the candidate's mean features — a
softmax saturates at 1 on images far from everything it was trained on, the distance does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from genattr.errors import ConfigError
from genattr.unified.conformal import PValue, credibility, threshold_pvalues
from genattr.unified.findings import Finding
from genattr.unified.verdict import AMBIGUOUS, REAL, UNKNOWN, Evidence

CRED_NULL = "the image comes from the named candidate (credibility: (1 + #{calibration scores ≤ score}) / (m + 1); " \
            "small = rejected)"


def _level(att: Any) -> float | None:
    """The FNR level a component's thresholds were set at (``calibration_`` of its saved state)."""
    cal = getattr(att, "calibration_", None)
    if isinstance(cal, dict) and isinstance(cal.get("target"), int | float) and 0 < float(cal["target"]) < 1:
        return float(cal["target"])
    return None


def _names(att: Any, models: Sequence[str] | None, what: str) -> list[str]:
    """Candidate names → model names (``real`` stays ``real``)."""
    from genattr import REAL as CLASS_REAL

    cands = list(att.candidates_)
    if models is None:
        return [REAL if c == CLASS_REAL else c for c in cands]
    models = list(models)
    if len(models) == len(cands):
        return [REAL if c == CLASS_REAL else m for c, m in zip(cands, models, strict=True)]
    non_real = [c for c in cands if c != CLASS_REAL]
    if len(models) == len(non_real):  # a registry record that lists only the generated candidates
        it = iter(models)
        return [REAL if c == CLASS_REAL else next(it) for c in cands]
    raise ConfigError(f"{what}: {len(models)} model names for candidates {cands}")


def _pvalues(att: Any, names: list[str], scores: torch.Tensor, calibration: Mapping[str, np.ndarray] | None
             ) -> tuple[list[list[PValue]], str]:
    """(n, k) PValues and how they were obtained ("conformal", "threshold", "closed-set")."""
    s = scores.double().numpy()
    n, k = s.shape
    thr = att.thresholds_.double().numpy()
    level = _level(att)
    cal = dict(calibration or {})
    if cal and all(c in cal for c in names):
        cols = [credibility(cal[c], s[:, j]) for j, c in enumerate(names)]
        return [[PValue(float(cols[j][i])) for j in range(k)] for i in range(n)], "conformal"
    if level is not None and np.isfinite(thr).any():
        out = threshold_pvalues(s, thr, np.full(k, level))
        for j, c in enumerate(names):  # partial calibration: exact where we have scores
            if c in cal:
                col = credibility(cal[c], s[:, j])
                for i in range(n):
                    out[i][j] = PValue(float(col[i]))
        return out, "threshold" if not cal else "conformal+threshold"
    # closed set (no threshold, no calibration): the arg-max is the classifier's only possible answer and no
    # p-value can be given for it
    best = s.argmax(1) if k else np.zeros(n, dtype=int)
    return [[PValue(1.0, "lower") if j == best[i] else PValue(1.0, "upper") for j in range(k)]
            for i in range(n)], "closed-set"


def _prediction(pv: Sequence[PValue], names: Sequence[str], alpha: float) -> str:
    acc = [c for c, p in zip(names, pv, strict=True) if p.accepts(alpha)]
    return acc[0] if len(acc) == 1 else (UNKNOWN if not acc else AMBIGUOUS)


class ClassifierComponent:
    """A closed-set attributor over several candidates (e.g. Yu et al. 2019's GAN-fingerprint classifier)."""

    kind, method = "classifier", "classifier"

    def __init__(self, name: str, att: Any, *, models: Sequence[str] | None = None,
                 calibration: Mapping[str, np.ndarray] | None = None, sha256: str | None = None) -> None:
        self.name, self.att, self.sha256 = name, att, sha256
        self.names = _names(att, models, name)
        self.calibration = dict(calibration or {})
        # (centroids, scores) of the feature-distance test, set by the pipeline's calibration (module docstring)
        self.features: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None

    @property
    def has_features(self) -> bool:
        return callable(getattr(self.att, "fingerprints", None))

    def _feature_test(self, x: torch.Tensor, pvals: list[list[PValue]]) -> dict[str, np.ndarray]:
        """Second conformity test: the image's feature distance to each candidate's centroid (softmax scores
        saturate far from the training data; feature distances do not). Combined with the softmax test by
        Bonferroni, p = min(1, 2 · min(p_softmax, p_feature)). Returns the squared distances per candidate."""
        assert self.features is not None
        cents, fscores = self.features
        feats = self.att.fingerprints(x).double().numpy()
        dist = {}
        for j, c in enumerate(self.names):
            if c not in cents or c not in fscores or cents[c].shape[0] != feats.shape[1]:
                continue
            d2 = ((feats - cents[c]) ** 2).sum(1)
            pf = credibility(fscores[c], -d2)
            dist[c] = np.stack([d2, pf])
            for i in range(feats.shape[0]):
                ps = pvals[i][j]
                if ps.bound == "exact":  # a threshold-only softmax decision stays as it is
                    pvals[i][j] = PValue(min(1.0, 2.0 * min(ps.value, float(pf[i]))))
        return dist

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        shape = self.att.fitted_image_shape()
        return tuple(shape) if shape else None  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "attributor": self.att.name, "candidates": list(self.names),
                "threshold_level": _level(self.att), "calibrated": sorted(self.calibration)}

    def _probabilities(self, scores: torch.Tensor) -> torch.Tensor | None:
        if scores.shape[1] < 2:
            return None
        if self.att.name == "gan-fingerprint-classifier":  # scores are log-softmax probabilities
            return scores.double().exp()
        return scores.double().softmax(dim=1)

    @torch.no_grad()
    def run(self, x: torch.Tensor, alpha: float, top: int = 3, *, result: Any = None) -> list[Finding]:
        """``result``: the attributor's ``attribute(x)`` when the caller already has it (not recomputed)."""
        res = result if result is not None else self.att.attribute(x)
        scores = res.scores
        pvals, how = _pvalues(self.att, self.names, scores, self.calibration)
        soft = [[p.value for p in row] for row in pvals]
        feat = self._feature_test(x, pvals) if self.features is not None and self.has_features else {}
        if feat:
            how += "+features"
        probs = self._probabilities(scores)
        thr = self.att.thresholds_.tolist()
        k = min(top, len(self.names))
        out = []
        for i in range(scores.shape[0]):
            row = scores[i].double()
            order = row.argsort(descending=True)[:k].tolist()
            entries = []
            for j in order:
                e = {"candidate": self.names[j], "score": float(row[j]), "threshold": thr[j],
                     "p_value": pvals[i][j].value, "p_bound": pvals[i][j].bound,
                     "accepted": pvals[i][j].accepts(alpha)}
                if probs is not None:
                    e["probability"] = float(probs[i, j])
                if self.names[j] in feat:
                    e["p_softmax"], e["p_feature"] = soft[i][j], float(feat[self.names[j]][1, i])
                    e["feature_distance"] = float(feat[self.names[j]][0, i])
                entries.append(e)
            answer = _prediction(pvals[i], self.names, alpha)
            top1 = pvals[i][order[0]]
            details = {"component": self.name, "attributor": self.att.name, "top": entries, "p_values": how,
                       "alpha": alpha if how.startswith("conformal") else _level(self.att),
                       "label": res.labels[i], "null": CRED_NULL}
            out.append(Finding(Evidence("classifier", answer, top1.value, details), answer, p=top1,
                               candidates=dict(zip(self.names, pvals[i], strict=True)), component=self.name))
        return out


class DetectorComponent:
    """A single-model open-set detector (FLIPAD and its baselines): was this made by *this* model?"""

    kind, method = "flipad-detector", "flipad"

    def __init__(self, name: str, att: Any, *, model: str | None = None,
                 calibration: Mapping[str, np.ndarray] | None = None, sha256: str | None = None) -> None:
        if len(att.candidates_) != 1:
            raise ConfigError(f"{name}: a detector has exactly one candidate, got {att.candidates_}")
        self.name, self.att, self.sha256 = name, att, sha256
        self.model = model or att.candidates_[0]
        self.calibration = dict(calibration or {})

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        shape = self.att.fitted_image_shape()
        return tuple(shape) if shape else None  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "attributor": self.att.name, "model": self.model,
                "threshold": float(self.att.thresholds_[0]), "threshold_level": _level(self.att),
                "calibrated": bool(self.calibration)}

    @torch.no_grad()
    def run(self, x: torch.Tensor, alpha: float, *, scores: torch.Tensor | None = None) -> list[Finding]:
        """``scores``: the detector's ``decision_function(x)`` when the caller already has it (FLIPAD is slow)."""
        scores = scores if scores is not None else self.att.decision_function(x)
        cal = {self.model: self.calibration[self.model]} if self.model in self.calibration else None
        pvals, how = _pvalues(self.att, [self.model], scores, cal)
        tau = float(self.att.thresholds_[0])
        out = []
        for i in range(scores.shape[0]):
            p = pvals[i][0]
            ok = p.accepts(alpha)
            answer = self.model if ok else UNKNOWN
            details = {"component": self.name, "attributor": self.att.name, "model": self.model,
                       "score": float(scores[i, 0]), "threshold": tau, "accepted": ok, "p_bound": p.bound,
                       "p_values": how, "alpha": alpha if how.startswith("conformal") else _level(self.att),
                       "null": CRED_NULL.replace("the named candidate", self.model)}
            out.append(Finding(Evidence("flipad", answer, p.value, details), answer, p=p, candidates={self.model: p},
                               component=self.name))
        return out


class Reconstructor:
    """Seed reconstruction (Zhang et al. 2020) of each image on its shortlisted generators (white-box)."""

    method = "seed-reconstruction"

    def __init__(self, generators: Mapping[str, Any], *, restarts: int = 3, steps: int = 200, lr: float = 0.1,
                 seed: int = 0, lr_schedule: str = "cosine") -> None:
        self.loaders = dict(generators)
        self.restarts, self.steps, self.lr, self.seed = restarts, steps, lr, seed
        self.lr_schedule = lr_schedule  # cosine: chosen on validation (docs/zhang2020.md)
        self._cache: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "_cache"} | {"_cache": {}}

    def available(self, name: str) -> bool:
        return name in self.loaders

    def _generator(self, name: str) -> Any:
        if name not in self._cache:
            from genattr.attribution.seed_reconstruction import candidate_latent_dim, frozen_copy, restart_pool

            src = self.loaders[name]
            g = src() if callable(src) and not isinstance(src, torch.nn.Module) else src
            d = candidate_latent_dim(name, g)
            self._cache[name] = (frozen_copy(g), restart_pool(d, self.restarts, self.seed))
        return self._cache[name]

    def run(self, x: torch.Tensor, shortlists: Sequence[Sequence[str]]) -> list[Finding]:
        from genattr.attribution.seed_reconstruction import reconstruct
        from genattr.unified.verdict import png_data_url

        n = x.shape[0]
        dist: list[dict[str, float]] = [{} for _ in range(n)]
        recon: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
        for name in sorted({c for s in shortlists for c in s}):
            rows = [i for i in range(n) if name in shortlists[i]]
            g, z0 = self._generator(name)
            r = reconstruct(g, x[rows], z0, steps=self.steps, lr=self.lr, lr_schedule=self.lr_schedule)
            with torch.no_grad():
                imgs = g(r.best_seed).float() if rows else None
            for t, i in enumerate(rows):
                dist[i][name] = float(r.distance[t])
                recon[i][name] = imgs[t]  # type: ignore[index]
        out = []
        for i in range(n):
            if not dist[i]:
                why = "no shortlisted candidate has a generator to reconstruct with"
                out.append(Finding(Evidence("seed-reconstruction", None, None, {"skipped": why}), None))
                continue
            best = min(dist[i], key=lambda c: (dist[i][c], c))
            details = {"distances": [{"candidate": c, "distance": d} for c, d in sorted(dist[i].items(),
                                                                                        key=lambda kv: kv[1])],
                       "best": best, "reconstruction": png_data_url(recon[i][best]), "restarts": self.restarts,
                       "steps": self.steps, "lr_schedule": self.lr_schedule,
                       "distance": "pixel RMS (Zhang et al. 2020, Eq. 4-5)",
                       "note": "closed-set over the shortlist: the smallest distance wins; no p-value"}
            out.append(Finding(Evidence("seed-reconstruction", best, None, details), best))
        return out


__all__ = ["CRED_NULL", "ClassifierComponent", "DetectorComponent", "Reconstructor"]
