"""Attribution by seed reconstruction over candidate generators (Zhang, Zhou, Shumailov & Papernot 2020).

An investigator holds an image x and white-box access to candidate generators g. For each g and each of R
fixed restart seeds s₀, Adam searches the latent space for s' = argmin_s d(g(s), x) (Eq. 4); d_g is the
smallest final distance over the restarts, and x is attributed to argmin_g d_g (Eq. 5, Alg. 1)::

    att = create_attributor("seed-reconstruction", distance="feature", restarts=3)
    att.fit({"dcgan": g1, "lsgan": g2})            # any nn.Module with an int ``latent_dim``
    res = att.attribute(x)                          # scores = −d_g; extras: seeds, reconstructions, …
    att.calibrate({"dcgan": held_out_dcgan_images}, target_fnr=0.05)   # open set: OUR extension

* Candidates: any ``nn.Module`` with an integer ``latent_dim`` whose forward maps (n, latent_dim) N(0, I)
  latents to images (n, C, H, W) in [-1, 1]; no genattr base class is needed. ``fit`` works on private
  deep copies in eval mode with frozen weights (batch norm uses running statistics; the caller's modules are
  left untouched).
* ``distance="pixel"``: root-mean-square pixel difference (App. A, MNIST). ``distance="feature"``: the same on
  the penultimate features of the zoo classifier (``genattr.zoo.load_classifier()``, input bilinearly resized
  to ``feature_size``), standing in for the paper's Inception-V3 Mixed_5d. Both are the ℓ2 distance divided
  by √(number of elements), so the attribution is the paper's ℓ2 argmin and values are comparable across
  sizes. The optimiser minimises the summed squared error (the code's MSE up to a constant Adam ignores).
* Optimisation: lr 0.1, Adam betas (0, 0.99) (the released code), ``steps`` = 500, score = final iterate.
  ``lr_schedule="cosine"`` (the default) decays the step size to 0 so the final iterate settles — our
  extension, chosen on zoo validation images (pixel ℓ2: 84 → 100 %, docs/zhang2020.md); ``"constant"`` is
  the released code's.
  Restarts × images are one tensor with one Adam (``genattr.attribution.flipad.inversion.invert_latents``):
  every (restart, image) trajectory is exactly the one it follows alone. Restart seeds are fixed at fit
  and depend only on (``seed``, latent_dim, restart index), so the first r restarts of an R-restart run are
  an r-restart run (the accuracy-vs-restarts curve needs one run).
* Decision score = −min over restarts of the final distance: higher = more likely. Closed set by default, as
  in the paper (which defines no threshold); ``calibrate(x_in, target_fnr=…)`` on held-out images of each
  candidate sets an open-set threshold — **our extension**, not the paper's.
* ``shortlist_k``: reconstruct only over the top-k candidates of a cheaper fitted attributor passed as
  ``fit(..., shortlist=att)``; the others get score −inf (not reconstructed), so cost grows with k, not with
  the number of candidates.
* ``device``: where the optimisation runs (``"cuda"`` for a GPU; results always come back on the CPU).
* ``engine``: ``"local"`` (in-process) or ``"ray"`` (``genattr.attribution.reconstruction_engines``), which
  fans (image chunk × candidate) tasks out; both give identical answers.
* ``attribute(x).extras``: ``distances`` (n, k), ``restart_distances`` (n, k, R), ``best_restart`` (n, k),
  ``reconstructions`` (n, k, C, H, W) and ``best_seed/<candidate>`` (n, latent_dim); NaN / −1 where a
  candidate was not on an image's shortlist.

Saving: ``genattr.generators.Generator`` candidates are saved with their arch and config and rebuilt on
load; other modules are saved as weights only and must be re-attached after loading with
``att.bind_generator(name, module)`` (the saved weights are loaded into it), since rebuilding an arbitrary
class from a file would mean importing code named by that file.

Split: `seed_candidates` (candidate checks, frozen copies, restart seeds), `seed_search` (distance spaces and
the latent search); their public names are re-exported here.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import torch
from torch import nn

from genattr.attribution.base import AttributionResult, Attributor, Capabilities, InvalidInputError, check_images
from genattr.attribution.flipad.inversion import LR_SCHEDULES
from genattr.attribution.registry import register_attributor
from genattr.attribution.seed_candidates import (
    RANGE_TOL,
    CandidateError,
    candidate_latent_dim,
    frozen_copy,
    probe_candidate,
    restart_pool,
    spec_of,
)
from genattr.attribution.seed_search import (
    FeatureMap,
    Problem,
    Reconstruction,
    Settings,
    reconstruct,
    reconstruct_looped,
)
from genattr.errors import ConfigError, DataError
from genattr.sampling import derive_seed

DISTANCES = ("pixel", "feature")
ENGINES = ("local", "ray")
SHORTLIST_DIR = "shortlist"


def _x_key(x: torch.Tensor) -> str:
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest() + str(tuple(x.shape))


@register_attributor("seed-reconstruction")
class SeedReconstruction(Attributor):
    """Zhang et al. 2020: attribute to the candidate whose best seed reconstruction is closest (module docs)."""

    capabilities = Capabilities(needs_generator_weights=True, supports_open_set=True)

    def __init__(self, *, distance: str = "pixel", restarts: int = 3, steps: int = 500, lr: float = 0.1,
                 betas: tuple[float, float] = (0.0, 0.99), seed: int = 0, chunk_size: int = 64,
                 engine: str = "local", ray_address: str | None = None, shortlist_k: int | None = None,
                 feature_size: int | None = 32, device: str = "cpu", lr_schedule: str = "cosine") -> None:
        self.distance = distance
        self.restarts = restarts
        self.steps = steps
        self.lr = lr
        self.betas = betas
        self.seed = seed
        self.chunk_size = chunk_size
        self.engine = engine
        self.ray_address = ray_address
        self.shortlist_k = shortlist_k
        self.feature_size = feature_size
        self.device = device
        self.lr_schedule = lr_schedule

    # -- checks ------------------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.distance not in DISTANCES:
            raise ConfigError(f"distance must be one of {DISTANCES}, got {self.distance!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if not isinstance(self.restarts, int) or self.restarts < 1:
            raise ConfigError(f"restarts must be a positive integer, got {self.restarts!r}")
        if not isinstance(self.steps, int) or self.steps < 0:
            raise ConfigError(f"steps must be a non-negative integer, got {self.steps!r}")
        if not self.lr > 0 or len(tuple(self.betas)) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"need lr > 0 and two betas in [0, 1); got lr={self.lr}, betas={self.betas}")
        if not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise ConfigError(f"chunk_size must be a positive integer, got {self.chunk_size!r}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(f"device must be a torch device string such as 'cpu' or 'cuda', got {self.device!r}"
                              ) from exc
        if self.shortlist_k is not None and (not isinstance(self.shortlist_k, int) or self.shortlist_k < 1):
            raise ConfigError(f"shortlist_k must be None or a positive integer, got {self.shortlist_k!r}")

    def _check(self, x: Any) -> torch.Tensor:
        x = check_images(x)
        if tuple(x.shape[1:]) != tuple(self.image_shape_):
            c, h, w = self.image_shape_
            raise InvalidInputError(f"images have shape {tuple(x.shape[1:])} but the candidates "
                                    f"({', '.join(self.candidates_)}) generate ({c}, {h}, {w}) images; "
                                    "seed reconstruction compares images of the same size")
        if x.numel():
            if not bool(torch.isfinite(x).all()):
                raise InvalidInputError("x contains NaN or infinite values")
            lo, hi = float(x.min()), float(x.max())
            if lo < -1 - RANGE_TOL or hi > 1 + RANGE_TOL:
                raise InvalidInputError(f"x has values in [{lo:.3g}, {hi:.3g}], outside [-1, 1]; "
                                        "convert uint8 images with genattr.data.to_model")
        return x.detach().to("cpu", torch.float32)

    # -- fit ---------------------------------------------------------------------------------------------------
    def _fit(self, candidates: Mapping[str, Any], *, feature_extractor: nn.Module | None = None,
             shortlist: Attributor | None = None, image_shape: Sequence[int] | None = None,
             **unexpected: Any) -> None:
        if unexpected:
            raise ConfigError(f"unexpected fit parameters {sorted(unexpected)}; known: feature_extractor, "
                              "shortlist, image_shape")
        self._check_params()
        self._last: dict[str, Any] | None = None
        self._saved_weights: dict[str, dict[str, torch.Tensor]] = {}
        gens: dict[str, nn.Module] = {}
        dims: dict[str, int] = {}
        shape: tuple[int, int, int] | None = tuple(image_shape) if image_shape is not None else None  # type: ignore
        first = None
        for name, g in candidates.items():
            d = candidate_latent_dim(name, g)
            gc = frozen_copy(g)
            got = probe_candidate(name, gc, d, seed=derive_seed(self.seed, "probe"))
            if shape is not None and got != shape:
                ref = f"candidate {first!r}" if first is not None else "the declared image_shape"
                raise CandidateError(f"candidate {name!r} generates images of shape {got}, but {ref} "
                                     f"has {shape}; all candidates must produce images of one size")
            shape, first = got, first or name
            gens[name], dims[name] = gc, d
        assert shape is not None
        self.image_shape_ = list(shape)  # (C, H, W): the base class validates inputs against it
        self.latent_dims_ = [dims[n] for n in self.candidates_]
        self.generator_specs_ = [spec_of(gens[n]) for n in self.candidates_]
        self.generators_ = gens
        self.restart_seeds_ = {n: restart_pool(dims[n], self.restarts, self.seed) for n in self.candidates_}
        if self.distance == "feature":
            ext = feature_extractor
            if ext is None:
                from genattr import zoo

                ext = zoo.load_classifier()
            self.feature_net_ = frozen_copy(FeatureMap(ext, self.feature_size))
            with torch.no_grad():
                self.feature_net_(torch.zeros(1, *shape))  # fails early if the extractor cannot take the images
        elif feature_extractor is not None:
            raise ConfigError("feature_extractor= only applies with distance='feature'")
        if self.shortlist_k is not None:
            if shortlist is None:
                raise ConfigError("shortlist_k is set: pass a fitted cheaper attributor as fit(..., shortlist=att)")
            if not isinstance(shortlist, Attributor) or not shortlist.is_fitted:
                raise ConfigError("shortlist= must be a fitted genattr Attributor")
            missing = [n for n in self.candidates_ if n not in shortlist.candidates_]
            if missing:
                raise ConfigError(f"the shortlist attributor does not know candidates {missing}; "
                                  f"it has {shortlist.candidates_}")
            self.shortlist_ = shortlist
        elif shortlist is not None:
            raise ConfigError("shortlist= needs shortlist_k (the number of candidates to keep)")

    # -- binding generators after load -------------------------------------------------------------------------
    def bind_generator(self, name: str, module: nn.Module) -> Self:
        """Attach a generator module to a loaded attributor: the saved weights are loaded into (a copy of) it."""
        self._check_fitted()
        if name not in self.candidates_:
            raise ConfigError(f"unknown candidate {name!r}; known: {self.candidates_}")
        j = self.candidates_.index(name)
        d = candidate_latent_dim(name, module)
        if d != self.latent_dims_[j]:
            raise CandidateError(f"candidate {name!r}: module has latent_dim {d}, the saved one {self.latent_dims_[j]}")
        m = copy.deepcopy(module)
        saved = getattr(self, "_saved_weights", {}).get(name)
        if saved is not None:
            try:
                m.load_state_dict(saved, strict=True)
            except RuntimeError as exc:
                raise CandidateError(f"candidate {name!r}: the saved weights do not fit this module ({exc})") from exc
        m = frozen_copy(m)
        got = probe_candidate(name, m, d, seed=derive_seed(self.seed, "probe"))
        if got != tuple(self.image_shape_):
            raise CandidateError(f"candidate {name!r} generates {got}, expected {tuple(self.image_shape_)}")
        self.generators_[name] = m
        return self

    # -- scoring -----------------------------------------------------------------------------------------------
    def _shortlist_mask(self, x: torch.Tensor) -> torch.Tensor:
        """(n, k) bool: which candidates each image is reconstructed on."""
        n, k = x.shape[0], len(self.candidates_)
        if self.shortlist_k is None or self.shortlist_k >= k:
            return torch.ones(n, k, dtype=torch.bool)
        if "shortlist_" not in vars(self):
            raise ConfigError("this attributor was saved with a shortlist attributor that is not attached: load "
                              "it with SeedReconstruction.load(dir) or call set_shortlist(att)")
        s = self.shortlist_.decision_function(x)
        cols = [self.shortlist_.candidates_.index(c) for c in self.candidates_]
        s = s[:, cols]
        top = s.topk(self.shortlist_k, dim=1).indices
        mask = torch.zeros(n, k, dtype=torch.bool)
        mask.scatter_(1, top, True)
        return mask

    def set_shortlist(self, shortlist: Attributor) -> Self:
        self._check_fitted()
        missing = [n for n in self.candidates_ if n not in getattr(shortlist, "candidates_", [])]
        if missing:
            raise ConfigError(f"the shortlist attributor does not know candidates {missing}")
        self.shortlist_ = shortlist
        return self

    def make_engine(self) -> Any:
        """The engine a scoring call uses: the one passed to :meth:`attribute`, else a new one per ``engine``."""
        override = getattr(self, "_engine_override", None)
        if override is not None:
            return override
        from genattr.attribution.reconstruction_engines import make_engine

        return make_engine(self.engine, address=self.ray_address)

    def attribute(self, x: torch.Tensor, *, engine: Any = None) -> AttributionResult:
        """The contract's ``attribute``; ``engine`` (a LocalEngine / RayEngine) runs this call's reconstructions.
        One reconstruction run serves both the scores and the extras."""
        if engine is None:
            return super().attribute(x)
        self._engine_override = engine
        try:
            return super().attribute(x)
        finally:
            self._engine_override = None

    def settings(self) -> Settings:
        return Settings(self.steps, float(self.lr), (float(self.betas[0]), float(self.betas[1])), self.chunk_size,
                        self.device, self.lr_schedule)

    def reconstruct_all(self, x: torch.Tensor, *, engine: Any = None) -> dict[str, Any]:
        """Reconstruct every (image, shortlisted candidate); returns the raw per-candidate results and mask."""
        self._check_fitted()
        x = self._check(x)
        unbound = [n for n in self.candidates_ if self.generators_.get(n) is None]
        if unbound:
            raise ConfigError(f"candidates {unbound} have no generator attached (saved as weights only): "
                              "call bind_generator(name, module) after loading")
        mask = self._shortlist_mask(x)
        problems = []
        for j, name in enumerate(self.candidates_):
            idx = mask[:, j].nonzero().flatten()
            problems.append(Problem(name, self.generators_[name], getattr(self, "feature_net_", None), x[idx],
                                    idx, self.restart_seeds_[name]))
        eng = engine if engine is not None else self.make_engine()
        results = eng.run(problems, self.settings())
        return {"mask": mask, "problems": problems, "results": results, "key": _x_key(x)}

    def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
        out = self.reconstruct_all(x)
        self._last = out
        return self._scores(out, x.shape[0])

    def _scores(self, out: Mapping[str, Any], n: int) -> torch.Tensor:
        scores = torch.full((n, len(self.candidates_)), -math.inf)
        for j, p in enumerate(out["problems"]):
            scores[p.index, j] = -out["results"][p.name].distance
        return scores

    def _extras(self, x: torch.Tensor, scores: torch.Tensor) -> dict[str, Any]:
        last = getattr(self, "_last", None)
        if last is None or last["key"] != _x_key(self._check(x)):
            last = self.reconstruct_all(x)
        n, k, r = x.shape[0], len(self.candidates_), self.restarts
        dist = torch.full((n, k), math.nan)
        per_restart = torch.full((n, k, r), math.nan)
        best_restart = torch.full((n, k), -1, dtype=torch.long)
        recon = torch.full((n, k, *self.image_shape_), math.nan)
        extras: dict[str, Any] = {}
        for j, p in enumerate(last["problems"]):
            res: Reconstruction = last["results"][p.name]
            dist[p.index, j] = res.distance
            per_restart[p.index, j] = res.restart_distances.T
            best_restart[p.index, j] = res.best_restart
            seeds = torch.full((n, self.latent_dims_[j]), math.nan)
            seeds[p.index] = res.best_seed
            extras[f"best_seed/{p.name}"] = seeds
            if p.index.numel():
                with torch.no_grad():
                    recon[p.index, j] = self.generators_[p.name](res.best_seed).float()
        return {"distance": self.distance, "distances": dist, "restart_distances": per_restart,
                "best_restart": best_restart, "reconstructions": recon, "shortlisted": last["mask"], **extras}

    # -- persistence -------------------------------------------------------------------------------------------
    _CUSTOM = ("generators_", "feature_net_", "shortlist_")

    def _get_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        held = {a: vars(self).pop(a) for a in self._CUSTOM if a in vars(self)}
        try:
            tensors, meta = super()._get_state()
        finally:
            vars(self).update(held)
        gens = held["generators_"]
        for j, name in enumerate(self.candidates_):
            g = gens.get(name)
            sd = g.state_dict() if g is not None else getattr(self, "_saved_weights", {}).get(name, {})
            for key, t in sd.items():
                tensors[f"generator.{j}.{key}"] = t
            meta.setdefault("seedrec", {}).setdefault("generator_keys", {})[str(j)] = list(sd)
        feat = held.get("feature_net_")
        if feat is not None:
            from genattr.training.classifier import FashionClassifier

            ext = feat.extractor
            if not isinstance(ext, FashionClassifier):
                raise ConfigError(f"cannot save a {type(ext).__name__} feature extractor (only the genattr "
                                  "FashionClassifier can be rebuilt on load)")
            sd = ext.state_dict()
            tensors.update({f"feature.{k}": t for k, t in sd.items()})
            meta.setdefault("seedrec", {})["feature"] = {"config": ext.config, "keys": list(sd)}
        meta.setdefault("seedrec", {})["shortlist"] = "shortlist_" in held
        return tensors, meta

    def _set_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        from genattr.generators import create_generator

        extra = meta.get("seedrec", {})
        super()._set_state(tensors, meta)
        self.image_shape_ = [int(v) for v in self.image_shape_]
        self.generators_ = {}
        self._saved_weights = {}
        for j, (name, spec) in enumerate(zip(self.candidates_, self.generator_specs_, strict=True)):
            sd = {k: tensors[f"generator.{j}.{k}"] for k in extra.get("generator_keys", {}).get(str(j), [])}
            if spec.get("kind") == "genattr":
                g = create_generator(spec["arch"], **spec["config"])
                try:
                    g.load_state_dict(sd, strict=True)
                except RuntimeError as exc:
                    raise DataError(f"saved weights of candidate {name!r} do not fit {spec['arch']} ({exc})") from exc
                self.generators_[name] = frozen_copy(g)
            else:
                self.generators_[name] = None  # type: ignore[assignment]
                self._saved_weights[name] = sd
        if "feature" in extra:
            from genattr.training.classifier import FashionClassifier

            ext = FashionClassifier(**extra["feature"]["config"])
            ext.load_state_dict({k: tensors[f"feature.{k}"] for k in extra["feature"]["keys"]}, strict=True)
            self.feature_net_ = frozen_copy(FeatureMap(ext, self.feature_size))

    def save(self, directory: str | Path) -> Path:
        """The base format, plus the shortlist attributor (if any) in ``<directory>/shortlist``."""
        d = super().save(directory)
        if "shortlist_" in vars(self):
            self.shortlist_.save(Path(d) / SHORTLIST_DIR)
        return d

    @classmethod
    def load(cls, directory: str | Path) -> Attributor:
        obj = super().load(directory)
        sub = Path(directory) / SHORTLIST_DIR
        if isinstance(obj, SeedReconstruction) and sub.is_dir():
            obj.shortlist_ = Attributor.load(sub)
        return obj


__all__ = ["DISTANCES", "CandidateError", "FeatureMap", "Problem", "Reconstruction", "SeedReconstruction", "Settings",
           "candidate_latent_dim", "frozen_copy", "probe_candidate", "reconstruct", "reconstruct_looped",
           "restart_pool"]
