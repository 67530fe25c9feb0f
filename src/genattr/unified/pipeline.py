"""The one-call pipeline: every registered component, cheapest first, one :class:`Verdict` per image.

    pipe = Pipeline.from_registry()                 # or Pipeline.from_parts(classifiers={...}, detectors={...})
    verdicts = pipe.attribute(x)                    # x: (n, C, H, W) in [-1, 1]
    verdicts[0].answer, verdicts[0].confidence, verdicts[0].to_json()

Order (each later step only sees the images no earlier step decided): trusted logs → Kim keys → Yu 2022
fingerprints → classifiers → the detectors of the classifiers' surviving candidates → seed reconstruction over
the shortlist (``deep=True``). Every method appears in every verdict's evidence; a method that did not run says
why (``details["skipped"]``). The rules that turn findings into the answer are :mod:`genattr.unified.policy`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from genattr.errors import ConfigError
from genattr.unified.active import (
    FingerprintComponent,
    KeysComponent,
    LogComponent,
    check_component_shape,
    pixel_hashes,
)
from genattr.unified.conformal import FEATURES, Calibration
from genattr.unified.findings import Finding
from genattr.unified.passive import ClassifierComponent, DetectorComponent, Reconstructor
from genattr.unified.policy import Policy, break_tie, combine, decide, decisive
from genattr.unified.verdict import METHODS, REAL, SCHEMA_VERSION, Verdict, json_clean, skipped

DEFAULT_SHAPE = (1, 32, 32)
_KIND_OF_METHOD = {"log": "log-origin", "kim-keys": "kim-keys", "yu2022": "yu2022-index", "classifier": "classifier",
                   "flipad": "flipad-detector"}


def _skip(method: str, reason: str, component: str | None = None) -> Finding:
    return Finding(skipped(method, reason, **({"component": component} if component else {})), None)


class Pipeline:
    """Loaded components + the combining policy. Build with :meth:`from_registry` or :meth:`from_parts`."""

    def __init__(self, components: Sequence[Any] = (), *, policy: Policy | None = None,
                 models: Mapping[str, str | None] | None = None, generators: Mapping[str, Any] | None = None,
                 calibration: Calibration | None = None, image_shape: Sequence[int] | None = None,
                 architectures: Mapping[str, str] | None = None) -> None:
        self.policy = policy or Policy()
        self.logs = [c for c in components if isinstance(c, LogComponent)]
        self.keys = [c for c in components if isinstance(c, KeysComponent)]
        self.fingerprints = [c for c in components if isinstance(c, FingerprintComponent)]
        self.classifiers = [c for c in components if isinstance(c, ClassifierComponent)]
        self.detectors = [c for c in components if isinstance(c, DetectorComponent)]
        known = len(self.logs) + len(self.keys) + len(self.fingerprints) + len(self.classifiers) + len(self.detectors)
        if known != len(components):
            bad = [type(c).__name__ for c in components if not hasattr(c, "kind")]
            raise ConfigError(f"not pipeline components: {bad}")
        names = [c.name for c in components]
        if len(set(names)) != len(names):
            raise ConfigError(f"component names must be unique, got {names}")
        self.models = dict(models) if models is not None else None  # name → registry id; None: any name goes
        self.architectures = dict(architectures or {})  # name → architecture (the registry's), for tie-breaks
        self.reconstructor = Reconstructor(generators, restarts=self.policy.deep_restarts,
                                           steps=self.policy.deep_steps) if generators else None
        self.calibration = calibration
        if calibration is not None:
            self.apply_calibration(calibration)
        self.image_shape = tuple(int(s) for s in image_shape) if image_shape is not None else self._shape()

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def from_parts(cls, *, classifiers: Mapping[str, Any] | None = None, detectors: Mapping[str, Any] | None = None,
                   keys: Mapping[str, Any] | None = None, fingerprints: Mapping[str, tuple[Any, Any]] | None = None,
                   logs: Mapping[str, Any] | None = None, **kwargs: Any) -> Pipeline:
        """A pipeline from already-loaded parts, each under a component name: classifiers and detectors are fitted
        attributors; keys are ``KeySet`` objects; fingerprints are ``(FingerprintModel, FingerprintIndex)`` pairs;
        logs are log database paths or ``(path, trusted log vkey)``. ``kwargs`` go to the constructor (policy,
        models, generators, calibration, image_shape, architectures)."""
        comps: list[Any] = []
        for name, (path_key) in (logs or {}).items():
            path, vkey = path_key if isinstance(path_key, tuple) else (path_key, None)
            by_id = {v: k for k, v in (kwargs.get("models") or {}).items() if v}
            comps.append(LogComponent(name, path, log_key=vkey, models_by_id=by_id))
        comps += [KeysComponent(n, ks) for n, ks in (keys or {}).items()]
        comps += [FingerprintComponent(n, m, idx) for n, (m, idx) in (fingerprints or {}).items()]
        comps += [ClassifierComponent(n, att) for n, att in (classifiers or {}).items()]
        comps += [DetectorComponent(n, att) for n, att in (detectors or {}).items()]
        return cls(comps, **kwargs)

    @classmethod
    def from_registry(cls, registry: Any = None, *, calibration: Any = None, policy: Policy | None = None
                      ) -> Pipeline:
        """Load every registered component once (``registry=None``: ``Registry.open()``, i.e.
        ``GENATTR_DATABASE_URL`` or the SQLite file under ``GENATTR_HOME``). ``calibration``: a
        :class:`Calibration`, a path, or None for the shipped ``models/unified/calibration.json`` when present."""
        from genattr.unified.loading import pipeline_from_registry

        return pipeline_from_registry(cls, registry, calibration=calibration, policy=policy)

    def _shape(self) -> tuple[int, int, int]:
        for c in (*self.classifiers, *self.detectors, *self.keys, *self.fingerprints):
            shape = getattr(c, "image_shape", None)
            if shape:
                return tuple(int(s) for s in shape)  # type: ignore[return-value]
        return DEFAULT_SHAPE

    @property
    def components(self) -> list[Any]:
        return [*self.logs, *self.keys, *self.fingerprints, *self.classifiers, *self.detectors]

    def apply_calibration(self, calibration: Calibration) -> None:
        for c in (*self.classifiers, *self.detectors, *self.keys):
            scores = calibration.for_component(c.name, c.sha256)
            if scores is not None:
                c.calibration = dict(scores)
        for c in self.classifiers:
            c.features = calibration.features_for(c.name, c.sha256)
        self.calibration = calibration

    def calibrate(self, sources: Mapping[str, torch.Tensor], *, meta: Mapping[str, Any] | None = None) -> Calibration:
        """Calibration scores from held-out images (``{model name or "real": images}``, a *validation* split):
        classifiers and detectors get each candidate's own scores, keys get the real images' scores. Applied to
        this pipeline and returned (save it with ``.save(path)``)."""
        from genattr.watermark.keys import key_scores

        cal = Calibration(meta=dict(meta or {}) | {"policy": self.policy.to_json()})
        for c in self.classifiers:
            got, cents, fscores = {}, {}, {}
            for j, name in enumerate(c.names):
                x = sources.get(name)
                if x is None or not x.shape[0]:
                    continue
                got[name] = c.att.decision_function(x)[:, j].double().numpy()
                if c.has_features and x.shape[0] >= 4:  # split conformal: centroid from one half, scores the other
                    f = c.att.fingerprints(x).double().numpy()
                    half = f.shape[0] // 2
                    cents[name] = f[:half].mean(0)
                    fscores[name] = -((f[half:] - cents[name]) ** 2).sum(1)
            if got:
                cal.set(c.name, got, c.sha256)
            if cents:
                cal.set(c.name + FEATURES, fscores, c.sha256)
                cal.set_centroids(c.name, cents)
        for d in self.detectors:
            if d.model in sources and sources[d.model].shape[0]:
                cal.set(d.name, {d.model: d.att.decision_function(sources[d.model])[:, 0].double().numpy()}, d.sha256)
        real = sources.get(REAL)
        if real is not None and real.shape[0]:
            for k in self.keys:
                if check_component_shape(k, real.shape[1:]) is None:
                    s = key_scores(k.keys, real).double().numpy()
                    cal.set(k.name, {u: s[:, j] for j, u in enumerate(k.users)}, k.sha256)
        self.apply_calibration(cal)
        return cal

    def warnings(self) -> list[str]:
        """Settings that cannot work: calibration sets too small for the policy's alpha. The smallest conformal
        p-value from m scores is 1/(m + 1); a classifier with the feature test doubles it, and a candidate judged
        by k components multiplies its smallest one by k (Bonferroni), so below that nothing is ever rejected."""
        floors: dict[str, list[float]] = {}
        for c in self.classifiers:
            feat = c.features[1] if c.features is not None else {}
            for cand, scores in c.calibration.items():
                f = 1.0 / (len(scores) + 1)
                if cand in feat:
                    f = 2.0 * max(f, 1.0 / (len(feat[cand]) + 1))
                floors.setdefault(cand, []).append(f)
        for d in self.detectors:
            for cand, scores in d.calibration.items():
                floors.setdefault(cand, []).append(1.0 / (len(scores) + 1))
        a = self.policy.alpha
        return [f"{cand}: with these calibration sets its combined p-value is never below {len(fs) * min(fs):.3g}, "
                f"so alpha {a:g} cannot reject it (calibrate on more images, or raise alpha)"
                for cand, fs in sorted(floors.items()) if len(fs) * min(fs) > a]

    def registered(self, name: str) -> bool:
        return self.models is None or name in self.models

    def describe(self) -> dict[str, Any]:
        """What was loaded: components per method, the policy, the models answers can name, deep support."""
        return json_clean({
            "schema": SCHEMA_VERSION, "image_shape": list(self.image_shape), "policy": self.policy.to_json(),
            "components": [c.describe() for c in self.components],
            "methods": {m: sum(1 for c in self.components if c.method == m) for m in METHODS
                        if m != "seed-reconstruction"},
            "models": None if self.models is None else dict(self.models),
            "deep": sorted(self.reconstructor.loaders) if self.reconstructor else [],
            "calibration": None if self.calibration is None else dict(self.calibration.meta),
            "warnings": self.warnings()})

    # -- attribution -------------------------------------------------------------------------------------------
    def attribute(self, images: torch.Tensor, *, deep: bool = False,
                  image_bytes: Sequence[bytes | None] | None = None) -> list[Verdict]:
        """One verdict per image; ``images`` (n, C, H, W) in [-1, 1] of :attr:`image_shape`; ``image_bytes`` the
        original files when known (their exact pixels are looked up in the logs; their sha256 is reported)."""
        x, per, open_ = self._findings(images, image_bytes)
        p, n = self.policy, x.shape[0]
        decisions = {i: decide(per[i], p, self.registered, self.architectures.get) for i in range(n)}
        self._deep(x, per, open_, decisions, deep)
        out = []
        for i in range(n):
            d = decisions[i]
            data = image_bytes[i] if image_bytes is not None else None
            ev = [f.evidence for m in METHODS for f in per[i] if f.evidence.method == m]
            mid = self.models.get(d.answer) if self.models is not None else None
            out.append(Verdict(d.answer, d.confidence, mid, tuple(ev),
                               hashlib.sha256(data).hexdigest() if data is not None else None, d.decided_by, d.notes))
        return out

    def findings(self, images: torch.Tensor, image_bytes: Sequence[bytes | None] | None = None
                 ) -> list[list[Finding]]:
        """Every component's findings per image (rules 1–4 consulted cheapest first, as :meth:`attribute` does,
        without deciding): for choosing policy settings on validation data, e.g. ``several_keys`` from one
        ``defer`` pass, since ``ambiguous`` / ``unknown`` decide at rule 2 before any later finding counts."""
        return self._findings(images, image_bytes)[1]

    def _findings(self, images: torch.Tensor, image_bytes: Sequence[bytes | None] | None
                  ) -> tuple[torch.Tensor, list[list[Finding]], list[int]]:
        from genattr.attribution.inputs import validate_images

        x = validate_images(images, self.image_shape, what="images").detach().to("cpu", torch.float32)
        n = x.shape[0]
        if image_bytes is not None and len(image_bytes) != n:
            raise ConfigError(f"image_bytes has {len(image_bytes)} entries for {n} images")
        per: list[list[Finding]] = [[] for _ in range(n)]
        open_ = list(range(n))
        decided_by: dict[int, str] = {}
        p = self.policy

        def not_needed(method: str, comps: Sequence[Any]) -> None:
            for i, m in decided_by.items():
                for c in comps or [None]:
                    per[i].append(_skip(method, f"not needed: {m} answered", c.name if c else None))

        def absent(method: str) -> None:
            for i in range(n):
                per[i].append(_skip(method, f"no {_KIND_OF_METHOD[method]} component is registered"))

        def run(method: str, comps: Sequence[Any], fn: Any) -> None:
            if not comps:
                absent(method)
                return
            not_needed(method, comps)
            if not open_:
                return
            for c in comps:
                why = check_component_shape(c, x.shape[1:])
                if why is not None:
                    for i in open_:
                        per[i].append(_skip(method, why, c.name))
                    continue
                for i, f in zip(open_, fn(c, open_), strict=True):
                    per[i].append(f)
            for i in list(open_):
                if decisive(method, [f for f in per[i] if f.evidence.method == method], p) is not None:
                    decided_by[i] = method
                    open_.remove(i)

        hashes = pixel_hashes(x, image_bytes) if self.logs else []
        run("log", self.logs, lambda c, idx: c.run([hashes[i] for i in idx]))
        run("kim-keys", self.keys, lambda c, idx: c.run(x[idx], p.alpha_detect))
        run("yu2022", self.fingerprints, lambda c, idx: c.run(x[idx]))
        run("classifier", self.classifiers, lambda c, idx: c.run(x[idx], p.alpha, p.top))
        self._detectors(x, per, open_, not_needed)
        return x, per, open_

    def _detectors(self, x: torch.Tensor, per: list[list[Finding]], open_: list[int], not_needed: Any) -> None:
        """Run each detector only where its model survived the classifiers (or where no classifier knows it)."""
        if not self.detectors:
            for f_list in per:
                f_list.append(_skip("flipad", "no flipad-detector component is registered"))
            return
        not_needed("flipad", self.detectors)
        for d in self.detectors:
            why = check_component_shape(d, x.shape[1:])
            known = any(d.model in c.names for c in self.classifiers)
            rows, skip = [], []
            for i in open_:
                if why is None and (not known or self._survives(per[i], d.model)):
                    rows.append(i)
                else:
                    skip.append(i)
            for i in skip:
                per[i].append(_skip("flipad", why or f"not needed: the classifiers rejected {d.model}", d.name))
            if rows:
                for i, f in zip(rows, d.run(x[rows], self.policy.alpha), strict=True):
                    per[i].append(f)

    def _survives(self, findings: Sequence[Finding], model: str) -> bool:
        """Whether ``model`` can still be in the prediction set once its detector has judged too (the detector's
        test counts in the Bonferroni factor already, so this never skips a detector the final rule would need)."""
        ps = [f.candidates[model] for f in findings if f.evidence.method == "classifier" and model in f.candidates]
        return combine(ps, extra_tests=1).accepts(self.policy.alpha)

    def _deep(self, x: torch.Tensor, per: list[list[Finding]], open_: list[int], decisions: dict[int, Any],
              deep: bool) -> None:
        n = x.shape[0]
        if not deep:
            for i in range(n):
                per[i].append(_skip("seed-reconstruction", "deep=False (ask with deep=True / --deep)"))
            return
        rec = self.reconstructor
        rows, lists = [], []
        for i in range(n):
            if i not in open_:
                per[i].append(_skip("seed-reconstruction", f"not needed: {decisions[i].decided_by} answered"))
                continue
            short = self._shortlist(per[i]) if rec is not None else []
            if not short:
                why = "no registered generator weights to reconstruct with" if rec is None else \
                    "no shortlisted candidate has generator weights"
                per[i].append(_skip("seed-reconstruction", why))
                continue
            rows.append(i)
            lists.append(short)
        if rows and rec is not None:
            for i, f in zip(rows, rec.run(x[rows], lists), strict=True):
                per[i].append(f)
                decisions[i] = break_tie(decisions[i], f)

    def _shortlist(self, findings: Sequence[Finding]) -> list[str]:
        """The ``deep_top`` most credible generated candidates with generator weights (all of them, up to
        ``deep_top``, when no classifier ranked them)."""
        rec = self.reconstructor
        assert rec is not None
        best: dict[str, float] = {}
        for f in findings:
            if f.evidence.method in ("classifier", "flipad"):
                for c, pv in f.candidates.items():
                    best[c] = min(best.get(c, 1.0), pv.value)
        ranked = sorted((c for c in best if c != REAL and rec.available(c)), key=lambda c: (-best[c], c))
        if not best:
            ranked = sorted(rec.loaders)
        return ranked[: self.policy.deep_top]


def attribute(images: torch.Tensor, registry: Any = None, *, deep: bool = False,
              image_bytes: Sequence[bytes | None] | None = None) -> list[Verdict]:
    """``Pipeline.from_registry(registry).attribute(images, deep=deep)``: who made each image? (one call). For
    many calls, build the pipeline once and call its :meth:`Pipeline.attribute`."""
    if isinstance(registry, Pipeline):
        return registry.attribute(images, deep=deep, image_bytes=image_bytes)
    return Pipeline.from_registry(registry).attribute(images, deep=deep, image_bytes=image_bytes)


__all__ = ["DEFAULT_SHAPE", "Pipeline", "attribute"]
