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
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import torch

from genattr import UNKNOWN
from genattr.attribution.calibration import CalibrationMixin
from genattr.attribution.inputs import InvalidInputError, check_images, validate_images
from genattr.attribution.persistence import (
    CONFIG_FILE,
    FORMAT_VERSION,
    STATE_JSON_FILE,
    STATE_TENSORS_FILE,
    PersistenceMixin,
)
from genattr.attribution.results import AttributionResult, assign_labels
from genattr.errors import ConfigError, GenattrError


class NotFittedError(GenattrError):
    """An attributor was used (scored, calibrated, saved) before ``fit``."""


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


class Attributor(CalibrationMixin, PersistenceMixin):
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

    def fitted_image_shape(self) -> list[int] | None:
        """(C, H, W) the attributor accepts: ``image_shape_`` (set by ``_fit``, or by the base from tensor
        candidates), else None (then only the convention is checked)."""
        shape = vars(self).get("image_shape_")
        return [int(s) for s in shape] if shape is not None else None

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
        if "image_shape_" not in vars(self):
            shapes = {tuple(v.shape[1:]) for v in candidates.values() if isinstance(v, torch.Tensor) and v.ndim == 4}
            if len(shapes) == 1:  # tensor candidates of one shape fix what the method accepts
                self.image_shape_ = list(shapes.pop())
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
        x = validate_images(x, self.fitted_image_shape())
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



__all__ = ["CONFIG_FILE", "FORMAT_VERSION", "STATE_JSON_FILE", "STATE_TENSORS_FILE", "AttributionResult",
           "Attributor", "Capabilities", "InvalidInputError", "NotFittedError", "assign_labels", "check_images",
           "validate_images"]
