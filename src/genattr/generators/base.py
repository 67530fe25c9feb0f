"""The generator interface every attribution method relies on, and the generator registry.

FLIPAD (Laszkiewicz et al. 2024, eq. 2–5) inverts only the *final* layer, so each generator is split as

    forward(z) == output_activation(final_layer(penultimate(z)))

where ``final_layer`` is a single conv / conv-transpose module (a linear operator plus optional bias) and
``output_activation`` is tanh. Seed-reconstruction methods (Zhang et al. 2020) need ``latent_dim`` and a
differentiable ``forward``; everything needs ``sample(n, generator=...)``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from genattr.errors import ConfigError, DataError, UnknownNameError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class Generator(nn.Module):
    """Base class: an image generator G: R^latent_dim → [-1, 1]^(C×H×W).

    Subclasses set ``self.final_layer`` and ``self.output_activation`` and implement ``penultimate``.
    Constructor arguments must be JSON-serialisable keyword arguments: they are captured automatically
    (``self.config``) so that ``save_pretrained``/``from_pretrained`` can rebuild the exact module.
    """

    arch: ClassVar[str] = ""
    latent_dim: int
    channels: int
    image_size: int
    final_layer: nn.Module
    output_activation: nn.Module

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__init__

        # Capture the effective constructor kwargs (defaults included) before the subclass body runs.
        def wrapped(self: Generator, *args: Any, **kw: Any) -> None:
            if args:
                raise ConfigError(f"{cls.__name__} takes keyword arguments only")
            if not hasattr(self, "_config_captured"):
                bound = inspect.signature(init).bind(self, **kw)
                bound.apply_defaults()
                cfg = {k: v for k, v in bound.arguments.items() if k != "self"}
                init(self, **kw)
                self._config_captured = cfg
            else:
                init(self, **kw)

        wrapped.__signature__ = inspect.signature(init)  # type: ignore[attr-defined]
        wrapped.__doc__ = init.__doc__
        cls.__init__ = wrapped  # type: ignore[method-assign]

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config_captured)

    # -- the split used by final-layer inversion ------------------------------------------------------
    def penultimate(self, z: torch.Tensor) -> torch.Tensor:
        """Activations fed into ``final_layer`` (after the last nonlinearity)."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.output_activation(self.final_layer(self.penultimate(z)))

    # -- sampling --------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I) of shape (n, latent_dim); drawn on CPU so results do not depend on the device."""
        return torch.randn(n, self.latent_dim, generator=generator).to(self.device)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *, batch_size: int = 512,
               return_latent: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """n images (n, C, H, W) in [-1, 1], in eval mode (batch-norm running statistics).

        The same ``generator`` state gives the same images regardless of ``batch_size``: all latents are
        drawn first, then decoded in chunks.
        """
        if n < 0:
            raise ConfigError(f"n must be non-negative, got {n}")
        z = self.sample_latent(n, generator)
        was_training = self.training
        self.eval()
        try:
            out = torch.cat([self(z[i:i + batch_size]) for i in range(0, n, batch_size)]) if n else \
                torch.empty(0, self.channels, self.image_size, self.image_size)
        finally:
            self.train(was_training)
        return (out, z) if return_latent else out

    # -- persistence -----------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
        """Write ``config.json`` (arch, class, kwargs, package version) and ``model.safetensors``."""
        from safetensors.torch import save_file

        from genattr import __version__

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"arch": self.arch, "class": type(self).__name__, "config": self.config,
                "genattr_version": __version__}
        if extra:
            meta["extra"] = extra
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE), metadata={"arch": self.arch})
        (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, map_location: str | torch.device = "cpu") -> Generator:
        """Rebuild a generator saved by :meth:`save_pretrained` (safetensors only; never pickle)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        cfg_path, w_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        if not cfg_path.is_file() or not w_path.is_file():
            raise DataError(f"{directory}: expected {CONFIG_FILE} and {WEIGHTS_FILE} (a save_pretrained dir)")
        try:
            meta = json.loads(cfg_path.read_text())
            arch, config = meta["arch"], meta["config"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{cfg_path}: malformed generator config ({exc})") from exc
        model = create_generator(arch, **config)
        if cls is not Generator and not isinstance(model, cls):
            raise DataError(f"{directory} holds a {type(model).__name__}, not a {cls.__name__}")
        try:
            state = load_file(str(w_path), device=str(map_location))
        except (SafetensorError, OSError) as exc:
            raise DataError(f"{w_path}: unreadable safetensors file ({exc})") from exc
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:  # missing/unexpected keys or shape mismatches
            first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
            raise DataError(f"{w_path}: weights do not match {arch} {config} ({first})") from None
        return model.eval()


G = TypeVar("G", bound=type[Generator])
_GENERATORS: dict[str, type[Generator]] = {}


def register_generator(name: str) -> Callable[[G], G]:
    """Class decorator adding a generator architecture to the registry; duplicate names raise."""

    def deco(cls: G) -> G:
        if name in _GENERATORS:
            raise ConfigError(f"generator {name!r} is already registered ({_GENERATORS[name].__name__})")
        if not issubclass(cls, Generator):
            raise ConfigError(f"{cls.__name__} must subclass genattr.generators.Generator")
        cls.arch = name
        _GENERATORS[name] = cls
        return cls

    return deco


def list_generators() -> list[str]:
    return sorted(_GENERATORS)


def generator_class(name: str) -> type[Generator]:
    try:
        return _GENERATORS[name]
    except KeyError:
        raise UnknownNameError(f"unknown generator architecture {name!r}; known: {', '.join(list_generators())}"
                               ) from None


def create_generator(name: str, **config: Any) -> Generator:
    """Instantiate a registered architecture, e.g. ``create_generator("dcgan", channels=1)``."""
    cls = generator_class(name)
    try:
        return cls(**config)
    except TypeError as exc:
        raise ConfigError(f"bad config for generator {name!r}: {exc}") from exc
