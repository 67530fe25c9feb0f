"""The attribution contract every method implements (scikit-learn style).

* The constructor takes keyword-only hyperparameters and stores each one unchanged under its own name.
* ``fit(candidates, **fit_params)`` learns state (attributes ending in ``_``) and returns ``self``.
  ``candidates`` maps each candidate name (a generator the content may come from) to what the method needs
  for it: training images, a generator, a key … (see the method's docstring and capability flags).
* ``decision_function(x)`` → float tensor (n, n_candidates); higher = more likely from that candidate.
* ``predict(x)`` → list of candidate names, or :data:`genattr.UNKNOWN` where every score is below its
  threshold (``thresholds_``, −inf until :meth:`Attributor.calibrate` is called, i.e. closed-set).
* ``attribute(x)`` → frozen :class:`AttributionResult` (scores, labels, thresholds, method extras).
* ``save(dir)`` / ``Attributor.load(dir)``: ``config.json`` + ``state.safetensors`` + ``state.json``.
  Never pickle.

Subclasses implement ``_fit`` and ``_decision_function`` (and optionally ``_extras``, ``_get_state`` /
``_set_state``); see ``docs/contract.md``.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Self

import numpy as np
import torch

from genattr import UNKNOWN
from genattr.errors import ConfigError, DataError, GenattrError

CONFIG_FILE = "config.json"
STATE_TENSORS_FILE = "state.safetensors"
STATE_JSON_FILE = "state.json"
FORMAT_VERSION = 1


class NotFittedError(GenattrError):
    """An attributor was used (scored, calibrated, saved) before ``fit``."""


class InvalidInputError(GenattrError, ValueError):
    """Images passed to an attributor do not follow the tensor convention or the fitted shape."""


@dataclass(frozen=True)
class Capabilities:
    """What a method needs and offers; the CLI and benchmarks use these to pick compatible settings."""

    needs_training_images: bool = False  # fit needs images sampled from each candidate
    needs_generator_weights: bool = False  # white-box access to the candidate generators (FLIPAD, inversion)
    modifies_generators: bool = False  # the method alters the generators (keys, fingerprints, watermarks)
    supports_open_set: bool = False  # scores are meaningful for rejecting inputs from unknown sources

    def to_dict(self) -> dict[str, bool]:
        return {"needs_training_images": self.needs_training_images,
                "needs_generator_weights": self.needs_generator_weights,
                "modifies_generators": self.modifies_generators,
                "supports_open_set": self.supports_open_set}


@dataclass(frozen=True)
class AttributionResult:
    """The outcome of attributing a batch of n images among k candidates."""

    candidates: tuple[str, ...]
    scores: torch.Tensor  # (n, k) float, higher = more likely from that candidate
    labels: tuple[str, ...]  # n names from ``candidates`` or UNKNOWN
    thresholds: torch.Tensor  # (k,) float64, the thresholds used
    extras: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "extras", MappingProxyType(dict(self.extras)))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_unknown(self) -> torch.Tensor:
        return torch.tensor([lab == UNKNOWN for lab in self.labels], dtype=torch.bool)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (lists); tensor extras become nested lists."""

        def conv(v: Any) -> Any:
            if isinstance(v, torch.Tensor):
                return v.detach().cpu().tolist()
            if isinstance(v, np.ndarray):
                return v.tolist()
            return v

        return {"candidates": list(self.candidates), "scores": conv(self.scores), "labels": list(self.labels),
                "thresholds": [None if math.isinf(t) else t for t in conv(self.thresholds)],
                "extras": {k: conv(v) for k, v in self.extras.items()}}


def assign_labels(scores: torch.Tensor, thresholds: torch.Tensor, candidates: Sequence[str]) -> list[str]:
    """Open-set decision rule shared by all methods.

    A candidate is *accepted* for a sample if its score ≥ its threshold; the label is the accepted
    candidate with the highest score, or UNKNOWN if none is accepted. With thresholds at −inf this is the
    closed-set argmax.
    """
    if scores.ndim != 2 or scores.shape[1] != len(candidates) or thresholds.shape != (len(candidates),):
        raise ValueError("scores must be (n, k) and thresholds (k,) for k candidates")
    s = scores.detach().to(torch.float64).cpu()
    accepted = s >= thresholds.detach().to(torch.float64).cpu()
    masked = torch.where(accepted, s, torch.tensor(-math.inf, dtype=torch.float64))
    best = masked.argmax(dim=1).tolist()
    any_acc = accepted.any(dim=1).tolist()
    return [candidates[b] if ok else UNKNOWN for b, ok in zip(best, any_acc, strict=True)]


def check_images(x: Any, *, what: str = "x") -> torch.Tensor:
    """Validate a float NCHW batch (no copy)."""
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"{what} must be a torch.Tensor (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise InvalidInputError(f"{what} must be a batch (N, C, H, W); got shape {tuple(x.shape)} "
                                "(use x[None] for a single image)")
    if not x.is_floating_point():
        raise InvalidInputError(f"{what} must be a float tensor in [-1, 1], got {x.dtype}")
    return x


def _is_jsonable(v: Any) -> bool:
    if v is None or isinstance(v, bool | int | float | str):
        return True
    if isinstance(v, list | tuple):
        return all(_is_jsonable(e) for e in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _is_jsonable(e) for k, e in v.items())
    return False


class Attributor:
    """Base class of all attribution methods. See the module docstring for the contract."""

    #: registry name, set by ``@register_attributor``
    name: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()

    # learned state every fitted attributor has
    candidates_: list[str]
    thresholds_: torch.Tensor

    def __init__(self) -> None:  # methods without hyperparameters need no __init__ of their own
        pass

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
            if p.kind is not inspect.Parameter.KEYWORD_ONLY:
                raise TypeError(f"{cls.__name__}.__init__: hyperparameter {p.name!r} must be keyword-only "
                                "(def __init__(self, *, ...)), with a default")
            if p.default is inspect.Parameter.empty:
                raise TypeError(f"{cls.__name__}.__init__: hyperparameter {p.name!r} needs a default")
        if not isinstance(cls.capabilities, Capabilities):
            raise TypeError(f"{cls.__name__}.capabilities must be a Capabilities instance")

    # -- parameters (scikit-learn style) -----------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """The constructor hyperparameters (each stored as an attribute of the same name)."""
        try:
            return {p: getattr(self, p) for p in self._param_names()}
        except AttributeError as exc:
            raise TypeError(f"{type(self).__name__}.__init__ must store every hyperparameter as an attribute "
                            f"of the same name ({exc})") from exc

    def set_params(self, **params: Any) -> Self:
        valid = set(self._param_names())
        for k, v in params.items():
            if k not in valid:
                raise ConfigError(f"{type(self).__name__} has no hyperparameter {k!r}; valid: {sorted(valid)}")
            setattr(self, k, v)
        return self

    def clone(self) -> Self:
        """A new, unfitted attributor with deep copies of the same hyperparameters."""
        return type(self)(**copy.deepcopy(self.get_params()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    # -- fitted state ----------------------------------------------------------------------------------------
    def learned_attributes(self) -> list[str]:
        """Names of learned-state attributes (public, ending in ``_``)."""
        return sorted(k for k in vars(self) if k.endswith("_") and not k.startswith("_"))

    @property
    def is_fitted(self) -> bool:
        return "candidates_" in vars(self)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(...) first "
                                 "(or Attributor.load(dir))")

    @property
    def n_candidates(self) -> int:
        self._check_fitted()
        return len(self.candidates_)

    # -- the contract ------------------------------------------------------------------------------------
    def fit(self, candidates: Mapping[str, Any], /, **fit_params: Any) -> Self:
        """Learn from ``candidates`` (name → method-specific data); returns ``self``.

        Clears previous learned state, then calls ``_fit``. Thresholds start at −inf (closed set) unless
        ``_fit`` sets ``thresholds_`` itself.
        """
        if not isinstance(candidates, Mapping) or len(candidates) == 0:
            raise ConfigError("fit needs a non-empty mapping of candidate name → data")
        names = list(candidates)
        for nm in names:
            if not isinstance(nm, str) or not nm or nm == UNKNOWN:
                raise ConfigError(f"candidate names must be non-empty strings other than {UNKNOWN!r}; got {nm!r}")
        for attr in self.learned_attributes():
            delattr(self, attr)
        self.candidates_ = names  # available to _fit (e.g. to score its own validation data)
        try:
            self._fit(candidates, **fit_params)
        except BaseException:
            for attr in self.learned_attributes():  # never leave a half-fitted object behind
                delattr(self, attr)
            raise
        if "thresholds_" not in vars(self):
            self.thresholds_ = torch.full((len(names),), -math.inf, dtype=torch.float64)
        if tuple(self.thresholds_.shape) != (len(names),):
            raise RuntimeError(f"{type(self).__name__}._fit set thresholds_ of shape {tuple(self.thresholds_.shape)}")
        return self

    def _fit(self, candidates: Mapping[str, Any], **fit_params: Any) -> None:
        raise NotImplementedError

    def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _extras(self, x: torch.Tensor, scores: torch.Tensor) -> dict[str, Any]:
        """Method-specific outputs for :meth:`attribute` (e.g. decoded bits, reconstructed latents)."""
        return {}

    def decision_function(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (n, n_candidates), float, on the CPU; higher = more likely from that candidate."""
        self._check_fitted()
        x = check_images(x)
        k = len(self.candidates_)
        if x.shape[0] == 0:
            return torch.empty(0, k, dtype=torch.float32)
        scores = self._decision_function(x)
        if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (x.shape[0], k) \
                or not scores.is_floating_point():
            got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise RuntimeError(f"{type(self).__name__}._decision_function returned {got}; "
                               f"expected a float tensor of shape ({x.shape[0]}, {k})")
        return scores.detach().cpu()

    def predict(self, x: torch.Tensor) -> list[str]:
        """Candidate names, or UNKNOWN where no score reaches its threshold."""
        return list(self.attribute(x).labels)

    def attribute(self, x: torch.Tensor) -> AttributionResult:
        scores = self.decision_function(x)
        labels = assign_labels(scores, self.thresholds_, self.candidates_)
        extras = self._extras(x, scores) if x.shape[0] else {}
        return AttributionResult(candidates=tuple(self.candidates_), scores=scores, labels=tuple(labels),
                                 thresholds=self.thresholds_.clone(), extras=extras)

    # -- calibration (FLIPAD G.1) ------------------------------------------------------------------------------
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

    # -- persistence ------------------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Learned state as (tensors for safetensors, JSON-able values).

        The default handles attributes that are tensors, NumPy arrays, ``{str: tensor}`` dicts, JSON values
        and ``nn.Module``s (their ``state_dict``; loading rebuilds them with :meth:`_build_module`).
        Override both this and :meth:`_set_state` for anything else.
        """
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {"kinds": {}, "json": {}}
        for name in self.learned_attributes():
            v = getattr(self, name)
            if isinstance(v, torch.nn.Module):
                sd = v.state_dict()
                tensors.update({f"{name}.{k}": t for k, t in sd.items()})
                meta["kinds"][name] = {"module": list(sd)}
            elif isinstance(v, torch.Tensor):
                tensors[name] = v
                meta["kinds"][name] = "tensor"
            elif isinstance(v, np.ndarray) and v.dtype != object:
                tensors[name] = torch.from_numpy(np.ascontiguousarray(v))
                meta["kinds"][name] = "ndarray"
            elif isinstance(v, dict) and v and all(isinstance(e, torch.Tensor) for e in v.values()) \
                    and all(isinstance(k, str) for k in v):
                for k, e in v.items():
                    tensors[f"{name}.{k}"] = e
                meta["kinds"][name] = {"tensor_dict": list(v)}
            elif _is_jsonable(v):
                meta["json"][name] = v
                meta["kinds"][name] = "tuple" if isinstance(v, tuple) else "json"
            else:
                raise TypeError(f"{type(self).__name__}.{name} ({type(v).__name__}) cannot be saved by default; "
                                "override _get_state/_set_state (see docs/contract.md)")
        return tensors, meta

    def _build_module(self, name: str) -> torch.nn.Module:
        """An untrained module for learned attribute ``name``, built from the hyperparameters and the
        other (already restored) learned state; :meth:`load` then loads its saved weights."""
        raise NotImplementedError(f"{type(self).__name__} has an nn.Module attribute {name!r}: implement "
                                  "_build_module(name) so that load() can rebuild it")

    def _set_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Inverse of :meth:`_get_state` (modules last, so ``_build_module`` can use the other state)."""
        kinds = meta["kinds"]
        modules = [n for n, k in kinds.items() if isinstance(k, dict) and "module" in k]
        for name, kind in kinds.items():
            if name in modules:
                continue
            if kind == "tensor":
                setattr(self, name, tensors[name])
            elif kind == "ndarray":
                setattr(self, name, tensors[name].numpy())
            elif kind in ("json", "tuple"):
                v = meta["json"][name]
                setattr(self, name, tuple(v) if kind == "tuple" else v)
            elif isinstance(kind, dict) and "tensor_dict" in kind:
                setattr(self, name, {k: tensors[f"{name}.{k}"] for k in kind["tensor_dict"]})
            else:
                raise DataError(f"unknown state kind {kind!r} for {name}")
        for name in modules:
            module = self._build_module(name)
            keys = kinds[name]["module"]
            try:
                module.load_state_dict({k: tensors[f"{name}.{k}"] for k in keys}, strict=True)
            except (KeyError, RuntimeError) as exc:
                raise DataError(f"saved weights of {name} do not fit the rebuilt module ({exc})") from exc
            setattr(self, name, module.eval())

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` (class, registry name, hyperparameters, package version),
        ``state.safetensors`` (tensors) and ``state.json`` (other learned state). No pickle."""
        from safetensors.torch import save_file

        from genattr import __version__
        from genattr.attribution.registry import registered_name

        self._check_fitted()
        params = self.get_params()
        if not _is_jsonable(params):
            raise ConfigError(f"{type(self).__name__} hyperparameters must be JSON values to be saved: {params!r}")
        tensors, meta = self._get_state()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"format_version": FORMAT_VERSION, "name": registered_name(type(self)),
                  "class": type(self).__qualname__, "module": type(self).__module__, "params": params,
                  "genattr_version": __version__, "capabilities": self.capabilities.to_dict()}
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()},
                  str(directory / STATE_TENSORS_FILE), metadata={"format_version": str(FORMAT_VERSION)})
        (directory / STATE_JSON_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Attributor:
        """Rebuild an attributor written by :meth:`save`.

        The class is resolved through the attributor registry (never by importing a path from the file);
        calling ``SomeClass.load`` also accepts an unregistered ``SomeClass``.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from genattr.attribution.registry import attributor_class

        directory = Path(directory)
        paths = [directory / f for f in (CONFIG_FILE, STATE_TENSORS_FILE, STATE_JSON_FILE)]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise DataError(f"{directory}: not a saved attributor (missing {', '.join(missing)})")
        try:
            config = json.loads(paths[0].read_text())
            meta = json.loads(paths[2].read_text())
            name, qualname, params = config["name"], config["class"], config["params"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{directory}: malformed attributor files ({exc})") from exc
        if config.get("format_version", 0) > FORMAT_VERSION:
            raise DataError(f"{directory}: saved with a newer format ({config['format_version']}); "
                            "upgrade genattr")
        if cls is not Attributor and cls.__qualname__ == qualname:
            target: type[Attributor] = cls
        elif name:
            target = attributor_class(name)
        else:
            raise DataError(f"{directory}: {qualname} is not registered; load it with {qualname}.load(...)")
        if not issubclass(target, cls):
            raise DataError(f"{directory} holds a {target.__name__}, not a {cls.__name__}")
        try:
            obj = target(**params)
        except TypeError as exc:
            raise DataError(f"{directory}: hyperparameters do not match {target.__name__} ({exc})") from exc
        try:
            tensors = load_file(str(paths[1]))
        except (SafetensorError, OSError) as exc:
            raise DataError(f"{paths[1]}: unreadable safetensors file ({exc})") from exc
        obj._set_state(tensors, meta)
        if not obj.is_fitted:
            raise DataError(f"{directory}: saved state has no candidates_")
        return obj


__all__ = ["AttributionResult", "Attributor", "Capabilities", "InvalidInputError", "NotFittedError",
           "assign_labels", "check_images"]
