"""The attributor registry: ``@register_attributor("name")``, ``create_attributor``, ``list_attributors``.

Every public module in ``genattr.attribution`` is imported on the first registry lookup, so a new method
registers itself just by living in a file there (no list to edit).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, TypeVar

from genattr.errors import ConfigError, UnknownNameError

A = TypeVar("A", bound=type)
_ATTRIBUTORS: dict[str, type] = {}
_NOT_METHODS = {"base", "registry", "inputs", "results", "calibration", "persistence"}
_discovered = False


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    import genattr.attribution as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_") and info.name not in _NOT_METHODS:
            importlib.import_module(f"{pkg.__name__}.{info.name}")
    _discovered = True


def register_attributor(name: str) -> Callable[[A], A]:
    """Class decorator: register an :class:`~genattr.attribution.base.Attributor` subclass under ``name``.

    A second, different class under the same name raises ConfigError (re-executing the same class
    definition, e.g. on module reload, replaces it).
    """
    from genattr.attribution.base import Attributor

    if not isinstance(name, str) or not name:
        raise ConfigError(f"attributor name must be a non-empty string, got {name!r}")

    def deco(cls: A) -> A:
        if not (isinstance(cls, type) and issubclass(cls, Attributor)):
            raise ConfigError(f"{cls!r} must subclass genattr.attribution.Attributor")
        old = _ATTRIBUTORS.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ConfigError(f"attributor {name!r} is already registered ({old.__module__}.{old.__qualname__})")
        cls.name = name
        _ATTRIBUTORS[name] = cls
        return cls

    return deco


def unregister_attributor(name: str) -> None:
    """Remove a registration (for tests and plugins); unknown names raise UnknownNameError."""
    if _ATTRIBUTORS.pop(name, None) is None:
        raise UnknownNameError(f"attributor {name!r} is not registered")


def registered_name(cls: type) -> str:
    """The registry name of exactly this class, or "" (e.g. for an unregistered subclass of a method)."""
    name = getattr(cls, "name", "")
    return name if name and _ATTRIBUTORS.get(name) is cls else ""


def list_attributors() -> list[str]:
    _discover()
    return sorted(_ATTRIBUTORS)


def attributor_class(name: str) -> type:
    _discover()
    try:
        return _ATTRIBUTORS[name]
    except KeyError:
        raise UnknownNameError(f"unknown attributor {name!r}; known: {', '.join(sorted(_ATTRIBUTORS))}") from None


def create_attributor(name: str, **params: Any) -> Any:
    """An unfitted attributor, e.g. ``create_attributor("nearest-mean", n_samples=128)``."""
    cls = attributor_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"bad hyperparameters for attributor {name!r}: {exc}") from exc


__all__ = ["attributor_class", "create_attributor", "list_attributors", "register_attributor",
           "registered_name", "unregister_attributor"]
