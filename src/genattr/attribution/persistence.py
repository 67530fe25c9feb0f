"""Saving and loading fitted attributors: ``config.json`` + ``state.safetensors`` + ``state.json``, no pickle.
Mixed into :class:`~genattr.attribution.Attributor`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from genattr.errors import ConfigError, DataError

if TYPE_CHECKING:
    from genattr.attribution.base import Attributor

CONFIG_FILE = "config.json"
STATE_TENSORS_FILE = "state.safetensors"
STATE_JSON_FILE = "state.json"
FORMAT_VERSION = 1


def is_jsonable(v: Any) -> bool:
    if v is None or isinstance(v, bool | int | float | str):
        return True
    if isinstance(v, list | tuple):
        return all(is_jsonable(e) for e in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and is_jsonable(e) for k, e in v.items())
    return False


class PersistenceMixin:
    """``save`` / ``load`` and the default state (de)serialisation; relies on the host's hyperparameter and
    learned-state accessors."""

    capabilities: Any




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
            elif is_jsonable(v):
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
        if not is_jsonable(params):
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

        from genattr.attribution.base import Attributor
        from genattr.attribution.config_schema import validate_saved_config, validate_saved_state
        from genattr.attribution.registry import attributor_class

        directory = Path(directory)
        paths = [directory / f for f in (CONFIG_FILE, STATE_TENSORS_FILE, STATE_JSON_FILE)]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise DataError(f"{directory}: not a saved attributor (missing {', '.join(missing)})")
        try:
            config = json.loads(paths[0].read_bytes().decode("utf-8"))
            meta = json.loads(paths[2].read_bytes().decode("utf-8"))
        except (ValueError, RecursionError, OSError) as exc:  # JSONDecodeError, UnicodeDecodeError
            raise DataError(f"{directory}: malformed attributor files ({exc})") from exc
        # Bounds and types before anything is allocated (a tampered rep_dim: 1e9 must not try 256 GB).
        label = str(config.get("name") or config.get("class") or "") if isinstance(config, dict) else ""
        validate_saved_config(config, label, where=str(paths[0]))
        name, qualname, params = config["name"], config["class"], config["params"]
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
        validate_saved_state(meta, tensor_names=tensors.keys(), where=str(paths[2]))
        try:
            obj._set_state(tensors, meta)
        except NotImplementedError:  # a programming error in the class (no _build_module), not bad data
            raise
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            raise DataError(f"{directory}: saved state does not fit {target.__name__} ({exc})") from exc
        if not obj.is_fitted:
            raise DataError(f"{directory}: saved state has no candidates_")
        return obj


__all__ = ["CONFIG_FILE", "FORMAT_VERSION", "STATE_JSON_FILE", "STATE_TENSORS_FILE", "PersistenceMixin",
           "is_jsonable"]
