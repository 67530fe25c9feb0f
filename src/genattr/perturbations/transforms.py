"""Perturbation objects that split drawing random parameters from applying them.

Kept in one module (over 400 lines): one small class per perturbation family, all on the same
sample_params/apply pattern.

``t.sample_params(batch, generator)`` draws every random choice for a batch (per-image strengths, crop
positions, noise seeds, which members of a combination fire) into a small dict of tensors;
``t.apply(x, params)`` is then a deterministic function of ``(x, params)``. So every draw is replayable
(store the params, or the generator seed) and the same draw can be applied to several batches.

Strength arguments accept a fixed number, :class:`Uniform` (a continuous or integer range) or
:class:`Choice` (a finite set), so one class covers both the fixed-strength grids of FLIPAD Table 3 and the
randomised attacks of Yu et al. 2019 / Kim et al. 2021.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch

from genattr.errors import ConfigError, UnknownNameError
from genattr.perturbations import functional as PF

Params = dict[str, Any]


# --------------------------------------------------------------------------------------------------------
# Strength specifications
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Uniform:
    """U[low, high]; with ``integer=True`` a uniformly drawn integer in {low, …, high}."""

    low: float
    high: float
    integer: bool = False

    def __post_init__(self) -> None:
        if self.high < self.low:
            raise ConfigError(f"Uniform needs low <= high, got [{self.low}, {self.high}]")

    def sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        if self.integer:
            return torch.randint(int(self.low), int(self.high) + 1, (n,), generator=generator).double()
        return self.low + (self.high - self.low) * torch.rand(n, generator=generator, dtype=torch.float64)

    def to_config(self) -> dict[str, Any]:
        return {"uniform": [self.low, self.high], "integer": self.integer}

    def __str__(self) -> str:
        return f"{'U{' if self.integer else 'U['}{self.low:g},{self.high:g}{'}' if self.integer else ']'}"


@dataclass(frozen=True)
class Choice:
    """A value drawn uniformly from a finite set."""

    values: tuple[float, ...]

    def __init__(self, values: Sequence[float]) -> None:
        if len(values) == 0:
            raise ConfigError("Choice needs at least one value")
        object.__setattr__(self, "values", tuple(values))

    def sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        idx = torch.randint(0, len(self.values), (n,), generator=generator)
        return torch.tensor(self.values, dtype=torch.float64)[idx]

    def to_config(self) -> dict[str, Any]:
        return {"choice": list(self.values)}

    def __str__(self) -> str:
        return "{" + ",".join(f"{v:g}" for v in self.values) + "}"


Spec = float | int | Uniform | Choice


def sample_spec(spec: Spec, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """Draw n values (float64) from a fixed number, a :class:`Uniform` or a :class:`Choice`."""
    if isinstance(spec, Uniform | Choice):
        return spec.sample(n, generator)
    return torch.full((n,), float(spec), dtype=torch.float64)


def spec_to_config(spec: Spec) -> Any:
    return spec.to_config() if isinstance(spec, Uniform | Choice) else spec


def spec_from_config(value: Any) -> Spec:
    if isinstance(value, dict) and "uniform" in value:
        low, high = value["uniform"]
        return Uniform(low, high, bool(value.get("integer", False)))
    if isinstance(value, dict) and "choice" in value:
        return Choice(value["choice"])
    if isinstance(value, int | float):
        return value
    raise ConfigError(f"not a strength specification: {value!r}")


def _seeds(n: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randint(0, 2**62, (n,), generator=generator, dtype=torch.int64)


def _masked(x: torch.Tensor, mask: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply fn to the images selected by a boolean mask (others pass through unchanged)."""
    if bool(mask.all()):
        return fn(x)
    out = x.clone()
    idx = torch.nonzero(mask, as_tuple=False).view(-1).to(x.device)
    if idx.numel():
        out = out.index_copy(0, idx, fn(x.index_select(0, idx)))
    return out


# --------------------------------------------------------------------------------------------------------
# Base class and registry
# --------------------------------------------------------------------------------------------------------
class Perturbation(ABC):
    """A replayable, batched perturbation. Subclasses implement ``sample_params`` and ``apply``.

    Constructor arguments are keyword strengths (fixed values or specs); ``to_config`` returns them as
    JSON so that an evaluation run records exactly what was applied.
    """

    name: ClassVar[str] = ""
    differentiable: ClassVar[bool] = True

    @abstractmethod
    def sample_params(self, batch: int, generator: torch.Generator | None) -> Params:
        """All random choices for a batch of ``batch`` images; tensors with leading dimension ``batch``."""

    @abstractmethod
    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """Deterministic given ``params``; returns a new tensor."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return self.apply(x, self.sample_params(x.shape[0], generator))

    def _kwargs(self) -> dict[str, Any]:
        return {}

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, **{k: spec_to_config(v) for k, v in self._kwargs().items()}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!s}" if isinstance(v, Uniform | Choice) else f"{k}={v!r}"
                         for k, v in self._kwargs().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_config() == self.to_config()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(repr(self))


P = TypeVar("P", bound=type[Perturbation])
_PERTURBATIONS: dict[str, type[Perturbation]] = {}


def register_perturbation(name: str) -> Callable[[P], P]:
    """Class decorator adding a perturbation to the registry; duplicate names raise ConfigError."""

    def deco(cls: P) -> P:
        if name in _PERTURBATIONS and _PERTURBATIONS[name].__qualname__ != cls.__qualname__:
            raise ConfigError(f"perturbation {name!r} is already registered ({_PERTURBATIONS[name].__name__})")
        if not (isinstance(cls, type) and issubclass(cls, Perturbation)):
            raise ConfigError(f"{cls!r} must subclass genattr.perturbations.Perturbation")
        cls.name = name
        _PERTURBATIONS[name] = cls
        return cls

    return deco


def list_perturbations() -> list[str]:
    return sorted(_PERTURBATIONS)


def create_perturbation(name: str, **kwargs: Any) -> Perturbation:
    """Instantiate a registered perturbation; strength kwargs may be JSON specs (as in ``to_config``)."""
    try:
        cls = _PERTURBATIONS[name]
    except KeyError:
        raise UnknownNameError(f"unknown perturbation {name!r}; known: {', '.join(list_perturbations())}"
                               ) from None
    if cls is Combination:
        kwargs = dict(kwargs)
        kwargs["transforms"] = [t if isinstance(t, Perturbation) else perturbation_from_config(t)
                                for t in kwargs.get("transforms", [])]
    else:
        kwargs = {k: spec_from_config(v) if isinstance(v, dict) else v for k, v in kwargs.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad arguments for perturbation {name!r}: {exc}") from exc


def perturbation_from_config(config: dict[str, Any]) -> Perturbation:
    """Inverse of ``Perturbation.to_config``."""
    config = dict(config)
    return create_perturbation(config.pop("name"), **config)


# --------------------------------------------------------------------------------------------------------
# Concrete perturbations
# --------------------------------------------------------------------------------------------------------
@register_perturbation("identity")
class Identity(Perturbation):
    """No change (the "clean" column of every grid)."""

    def sample_params(self, batch: int, generator: torch.Generator | None) -> Params:
        return {}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return x.clone()


@register_perturbation("blur")
class GaussianBlur(Perturbation):
    """Gaussian blur. σ is ``sigma`` if given, else ``sigma_scale · kernel_size`` if given (Kim et al.
    2021: widths (1/3){1,3,5,7,9}), else OpenCV's default for the kernel size (Yu et al. 2019)."""

    def __init__(self, *, kernel_size: Spec = 3, sigma: Spec | None = None,
                 sigma_scale: float | None = None) -> None:
        if sigma is not None and sigma_scale is not None:
            raise ConfigError("give sigma or sigma_scale, not both")
        self.kernel_size, self.sigma, self.sigma_scale = kernel_size, sigma, sigma_scale

    def _kwargs(self) -> dict[str, Any]:
        return {"kernel_size": self.kernel_size, "sigma": self.sigma, "sigma_scale": self.sigma_scale}

    def sample_params(self, batch: int, generator: torch.Generator | None) -> Params:
        k = sample_spec(self.kernel_size, batch, generator).round().long()
        if self.sigma is not None:
            sigma = sample_spec(self.sigma, batch, generator)
        elif self.sigma_scale is not None:
            sigma = k.double() * self.sigma_scale
        else:
            sigma = torch.tensor([PF.opencv_sigma(int(v)) for v in k.tolist()], dtype=torch.float64)
        return {"kernel_size": k, "sigma": sigma}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        ks, sig = params["kernel_size"].tolist(), params["sigma"].tolist()
        if len(set(zip(ks, sig, strict=True))) == 1 and ks:
            return PF.gaussian_blur(x, ks[0], sig[0])
        out = torch.empty_like(x)
        for i, (k, s) in enumerate(zip(ks, sig, strict=True)):
            out[i:i + 1] = PF.gaussian_blur(x[i:i + 1], k, s)
        return out


@register_perturbation("crop")
class Crop(Perturbation):
    """Crop a ``fraction`` of each side (centre or random position), then resize back (bilinear)."""

    def __init__(self, *, fraction: Spec = 0.9, position: str = "center", mode: str = "bilinear") -> None:
        if position not in ("center", "random"):
            raise ConfigError(f"crop position must be 'center' or 'random', got {position!r}")
        self.fraction, self.position, self.mode = fraction, position, mode

    def _kwargs(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "position": self.position, "mode": self.mode}

    def sample_params(self, batch: int, generator: torch.Generator | None) -> Params:
        frac = sample_spec(self.fraction, batch, generator)
        pos = (torch.rand(batch, 2, generator=generator, dtype=torch.float64) if self.position == "random"
               else torch.full((batch, 2), 0.5, dtype=torch.float64))
        return {"fraction": frac, "position": pos}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        if self.position == "center" and len(set(params["fraction"].tolist())) <= 1 and x.shape[0]:
            return PF.center_crop(x, float(params["fraction"][0]), mode=self.mode)
        return PF.random_crop(x, params["fraction"], params["position"], mode=self.mode)


@register_perturbation("jpeg")
class JPEG(Perturbation):
    """JPEG at an integer ``quality``. ``mode``: ``"pillow"`` (the real libjpeg codec, for evaluation),
    ``"differentiable"`` (:func:`~genattr.perturbations.functional.jpeg_differentiable`, for training) or
    ``"straight-through"`` (real codec forward, identity gradient)."""

    def __init__(self, *, quality: Spec = 75, mode: str = "pillow") -> None:
        if mode not in ("pillow", "differentiable", "straight-through"):
            raise ConfigError(f"JPEG mode must be pillow, differentiable or straight-through, got {mode!r}")
        self.quality, self.mode = quality, mode

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        return self.mode != "pillow"

    def _kwargs(self) -> dict[str, Any]:
        return {"quality": self.quality, "mode": self.mode}

    def sample_params(self, batch: int, generator: torch.Generator | None) -> Params:
        return {"quality": sample_spec(self.quality, batch, generator).round().clamp(1, 100).long()}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        if self.mode == "differentiable":
            return PF.jpeg_differentiable(x, params["quality"])
        y = PF.jpeg(x, params["quality"])
        return x + (y - x).detach() if self.mode == "straight-through" else y


@register_perturbation("noise")
class GaussianNoise(Perturbation):
    """Additive Gaussian noise; ``std`` (or ``variance``) in [-1, 1] units. Each image's noise comes from its
    own seed, so results do not depend on how a set is split into batches."""

    def __init__(self, *, std: Spec | None = None, variance: Spec | None = None, clip: bool = True) -> None:
        if std is not None and variance is not None:
            raise ConfigError("give std or variance, not both")
        if std is None and variance is None:
            std = 0.1
        self.std, self.variance, self.clip = std, variance, clip

    def _kwargs(self) -> dict[str, Any]:
        return {"std": self.std, "variance": self.variance, "clip": self.clip}

    def sample_params(self, batch: int, generator: torch.Generator | None) -> Params:
        # Yu et al. 2019 draw the *variance* uniformly, so the spec may be on either quantity.
        std = (sample_spec(self.std, batch, generator) if self.std is not None
               else sample_spec(self.variance, batch, generator).clamp_min(0).sqrt())  # type: ignore[arg-type]
        return {"std": std, "seed": _seeds(batch, generator)}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        # Per-image seeds make the noise independent of how the batch is split.
        noise = torch.stack([torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(int(s)))
                             for s in params["seed"].tolist()]) if x.shape[0] else torch.empty(x.shape)
        std = params["std"].to(x.dtype).to(x.device)
        return PF.gaussian_noise(x, std, None, noise=noise.to(device=x.device, dtype=x.dtype), clip=self.clip)


@register_perturbation("mirror")
class Mirror(Perturbation):
    """Horizontal flip with probability ``p``."""

    def __init__(self, *, p: float = 1.0) -> None:
        self.p = p

    def _kwargs(self) -> dict[str, Any]:
        return {"p": self.p}

    def sample_params(self, batch: int, generator: torch.Generator | None) -> Params:
        return {"flip": torch.rand(batch, generator=generator, dtype=torch.float64) < self.p}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return PF.mirror(x, params["flip"])


@register_perturbation("rotation")
class Rotation(Perturbation):
    """Rotation by ``degrees`` (counter-clockwise), corners filled with ``fill``."""

    def __init__(self, *, degrees: Spec = 10.0, fill: float = -1.0) -> None:
        self.degrees, self.fill = degrees, fill

    def _kwargs(self) -> dict[str, Any]:
        return {"degrees": self.degrees, "fill": self.fill}

    def sample_params(self, batch: int, generator: torch.Generator | None) -> Params:
        return {"degrees": sample_spec(self.degrees, batch, generator)}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return PF.rotate(x, params["degrees"].to(x.dtype), fill=self.fill)


@register_perturbation("brightness-contrast")
class BrightnessContrast(Perturbation):
    """Global brightness and contrast factors (1 = unchanged); a relighting-free photometric attack."""

    def __init__(self, *, brightness: Spec = 1.0, contrast: Spec = 1.0) -> None:
        self.brightness, self.contrast = brightness, contrast

    def _kwargs(self) -> dict[str, Any]:
        return {"brightness": self.brightness, "contrast": self.contrast}

    def sample_params(self, batch: int, generator: torch.Generator | None) -> Params:
        return {"brightness": sample_spec(self.brightness, batch, generator),
                "contrast": sample_spec(self.contrast, batch, generator)}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return PF.brightness_contrast(x, params["brightness"].to(x.dtype), params["contrast"].to(x.dtype))


@register_perturbation("combination")
class Combination(Perturbation):
    """Each member fires independently with probability ``p``, in the given fixed order (Yu et al. 2019
    §4.4 and Kim et al. 2021 use p = 0.5)."""

    def __init__(self, *, transforms: Sequence[Perturbation] = (), p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"p must be in [0, 1], got {p}")
        self.transforms, self.p = tuple(transforms), p

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        return all(t.differentiable for t in self.transforms)

    def _kwargs(self) -> dict[str, Any]:
        return {"transforms": list(self.transforms), "p": self.p}

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "transforms": [t.to_config() for t in self.transforms], "p": self.p}

    def sample_params(self, batch: int, generator: torch.Generator | None) -> Params:
        mask = torch.rand(batch, len(self.transforms), generator=generator, dtype=torch.float64) < self.p
        return {"apply": mask, "children": [t.sample_params(batch, generator) for t in self.transforms]}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        y = x.clone()
        for j, (t, child) in enumerate(zip(self.transforms, params["children"], strict=True)):
            mask = params["apply"][:, j]
            if bool(mask.any()):
                y = _masked(y, mask, lambda z, t=t, c=child, m=mask: t.apply(z, select_params(c, m)))
        return y


def select_params(params: Params, mask: torch.Tensor) -> Params:
    """The params of the images selected by a boolean mask (recursing into nested params)."""
    out: Params = {}
    for k, v in params.items():
        if isinstance(v, torch.Tensor):
            out[k] = v[mask.to(v.device)]
        elif isinstance(v, dict):
            out[k] = select_params(v, mask)
        elif isinstance(v, list):
            out[k] = [select_params(c, mask) if isinstance(c, dict) else c for c in v]
        else:
            out[k] = v
    return out

