"""Validation of a saved attributor's ``config.json`` and ``state.json`` *before* anything is built from them.

``Attributor.load`` turns these two JSON files into constructor calls and module shapes. Read from disk, they
are untrusted input: a string where an int belongs (``format_version: "2"``), a missing key, or a dimension
of ``1e9`` (an attempt to allocate hundreds of GB) must become one :class:`~genattr.errors.DataError`, never
a traceback or an allocation. Two entry points, both pure (no torch, no I/O):

* :func:`validate_saved_config` — the config's fields and types, the hyperparameters' types (derived from
  the class's own constructor defaults: an ``int`` default demands an ``int``, a tuple default a list …)
  and bounds on every hyperparameter that sizes a tensor (``rep_dim``, ``feature_dim``, ``width`` …);
* :func:`validate_saved_state` — the learned-state description (kinds, JSON values), bounds on the shapes
  modules are rebuilt from (``image_shape_``, ``feature_shape_``, ``operator_config_``, ``generator_spec_``)
  and, when the tensor names are given, that every tensor the description names exists.

Both return the value they checked (unchanged) so a loader can write ``cfg = validate_saved_config(cfg, n)``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable
from typing import Any

from genattr.errors import DataError

#: the newest format this code reads (kept equal to ``persistence.FORMAT_VERSION`` by a test)
SUPPORTED_FORMAT_VERSION = 1

# Upper bounds for hyperparameters that size tensors or loops when a model is rebuilt. Generous (10–100× the
# largest value any shipped or paper setting uses) but far below what would exhaust memory.
SIZE_LIMITS: dict[str, int] = {
    "rep_dim": 4096, "feature_dim": 16384, "width": 1024, "max_width": 4096, "critic_width": 1024,
    "widths": 4096, "kernel_size": 31, "pool_size": 1024, "pool_at": 4096, "factor": 64, "unshuffle": 16,
    "window": 63, "n_components": 4096, "k": 100_000, "crop": 4096, "size": 4096,
    "batch_size": 1 << 20, "chunk_size": 1 << 20, "n_mean": 1 << 24, "n_train": 1 << 26, "n_samples": 1 << 26,
    "epochs": 1_000_000, "max_iter": 10_000_000, "steps": 10_000_000, "restarts": 100_000, "check_every": 1 << 20,
    "lr_milestones": 1_000_000,
}
MAX_CHANNELS = 64
MAX_SIDE = 4096
MAX_ELEMENTS = 1 << 26  # per image / feature map: 64 Mi values
MAX_CANDIDATES = 10_000
MAX_SEQUENCE = 64  # list-valued hyperparameters (widths, milestones)
MAX_STRING = 1000
_STATE_KINDS = ("tensor", "ndarray", "json", "tuple")
_INT64 = 1 << 63


def _fail(where: str, msg: str) -> DataError:
    return DataError(f"{where}: {msg}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and not isinstance(v, bool)


def _check_json_value(v: Any, where: str, depth: int = 0) -> None:
    """JSON values only, bounded nesting, finite numbers, 64-bit ints."""
    if depth > 16:
        raise _fail(where, "nested too deeply")
    if v is None or isinstance(v, bool | str):
        return
    if _is_int(v):
        if not -_INT64 <= v < _INT64:
            raise _fail(where, f"integer {v} out of the 64-bit range")
        return
    if isinstance(v, float):
        return  # non-finite floats are judged by the caller (thresholds may be ±inf in principle)
    if isinstance(v, list):
        for i, e in enumerate(v):
            _check_json_value(e, f"{where}[{i}]", depth + 1)
        return
    if isinstance(v, dict):
        for k, e in v.items():
            if not isinstance(k, str):
                raise _fail(where, f"key {k!r} is not a string")
            _check_json_value(e, f"{where}.{k}", depth + 1)
        return
    raise _fail(where, f"{type(v).__name__} is not a JSON value")


def _check_bounded_int(v: Any, where: str, lo: int, hi: int) -> int:
    if not _is_int(v):
        raise _fail(where, f"expected an integer, got {type(v).__name__} {v!r}")
    if not lo <= v <= hi:
        raise _fail(where, f"{v} is outside the allowed range [{lo}, {hi}]")
    return v


def _check_param(name: str, value: Any, default: Any, where: str) -> None:
    w = f"{where} params.{name}"
    _check_json_value(value, w)
    limit = SIZE_LIMITS.get(name)
    if default is None:
        # optional (crop, size …): None or, when bounded, a non-negative int / list of them
        if value is None or limit is None:
            return
        items = value if isinstance(value, list) else [value]
        if len(items) > MAX_SEQUENCE:
            raise _fail(w, f"{len(items)} items (at most {MAX_SEQUENCE})")
        for i, e in enumerate(items):
            _check_bounded_int(e, f"{w}[{i}]" if isinstance(value, list) else w, 0, limit)
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _fail(w, f"expected true/false, got {value!r}")
    elif _is_int(default):
        if limit is not None:
            _check_bounded_int(value, w, 0, limit)
        elif not _is_int(value):
            raise _fail(w, f"expected an integer, got {type(value).__name__} {value!r}")
    elif isinstance(default, float):
        if not _is_real(value):
            raise _fail(w, f"expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise _fail(w, f"must be finite, got {value!r}")
    elif isinstance(default, str):
        if not isinstance(value, str) or len(value) > MAX_STRING:
            raise _fail(w, f"expected a string (at most {MAX_STRING} characters), got {value!r:.60}")
    elif isinstance(default, tuple | list):
        if not isinstance(value, list):
            raise _fail(w, f"expected a list, got {type(value).__name__} {value!r:.60}")
        if len(value) > MAX_SEQUENCE:
            raise _fail(w, f"{len(value)} items (at most {MAX_SEQUENCE})")
        kinds = {type(e) for e in default}
        for i, e in enumerate(value):
            if limit is not None:
                _check_bounded_int(e, f"{w}[{i}]", 1 if name == "widths" else 0, limit)
            elif kinds <= {int} and default and not _is_int(e):
                raise _fail(f"{w}[{i}]", f"expected an integer, got {e!r}")
            elif kinds <= {int, float} and default and not _is_real(e):
                raise _fail(f"{w}[{i}]", f"expected a number, got {e!r}")


def _resolve_class(cls_name: str) -> type | None:
    from genattr.attribution.registry import attributor_class, list_attributors

    if cls_name in list_attributors():
        return attributor_class(cls_name)
    for n in list_attributors():  # a qualname (unregistered lookups go through the class's own .load)
        c = attributor_class(n)
        if c.__qualname__ == cls_name:
            return c
    return None


def validate_saved_config(cfg: Any, cls_name: str, *, where: str = "config.json") -> dict[str, Any]:
    """Check a saved attributor's ``config.json`` (already parsed) for the class ``cls_name`` (its registry
    name or class qualname). Raises :class:`DataError` naming the first problem; returns ``cfg``.

    Hyperparameter types follow the class's constructor defaults; names in :data:`SIZE_LIMITS` must lie in
    ``[0, limit]``; hyperparameters the class does not have are refused; missing ones keep their defaults.
    For a class that is not registered only the generic checks run (its own ``load`` gets the rest).
    """
    if not isinstance(cfg, dict):
        raise _fail(where, f"expected a JSON object, got {type(cfg).__name__}")
    version = cfg.get("format_version", 0)
    if not _is_int(version) or version < 0:
        raise _fail(where, f"format_version must be a non-negative integer, got {version!r}")
    if version > SUPPORTED_FORMAT_VERSION:
        raise _fail(where, f"saved with a newer format ({version}); upgrade genattr")
    for key in ("name", "class"):
        if key not in cfg:
            raise _fail(where, f"missing field {key!r}")
        if not isinstance(cfg[key], str) or len(cfg[key]) > MAX_STRING:
            raise _fail(where, f"{key} must be a string, got {cfg[key]!r:.60}")
    for key in ("module", "genattr_version"):
        if key in cfg and not isinstance(cfg[key], str):
            raise _fail(where, f"{key} must be a string, got {cfg[key]!r:.60}")
    if "capabilities" in cfg:
        caps = cfg["capabilities"]
        if not isinstance(caps, dict) or not all(isinstance(v, bool) for v in caps.values()):
            raise _fail(where, "capabilities must be an object of true/false flags")
    if "params" not in cfg:
        raise _fail(where, "missing field 'params'")
    params = cfg["params"]
    if not isinstance(params, dict):
        raise _fail(where, f"params must be an object, got {type(params).__name__}")
    cls = _resolve_class(cls_name)
    if cls is None:
        for k, v in params.items():
            _check_json_value(v, f"{where} params.{k}")
            if k in SIZE_LIMITS and v is not None:
                for i, e in enumerate(v if isinstance(v, list) else [v]):
                    _check_bounded_int(e, f"{where} params.{k}" + (f"[{i}]" if isinstance(v, list) else ""), 0,
                                       SIZE_LIMITS[k])
        return cfg
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise _fail(where, f"{cls.__name__} has no hyperparameter(s) {', '.join(map(repr, unknown))}")
    for k, v in params.items():
        _check_param(k, v, defaults[k], where)
    return cfg


def _check_shape(v: Any, where: str, n: int = 3) -> tuple[int, ...]:
    if not isinstance(v, list) or len(v) != n:
        raise _fail(where, f"expected a list of {n} positive integers, got {v!r:.80}")
    dims = tuple(_check_bounded_int(e, f"{where}[{i}]", 1, MAX_SIDE) for i, e in enumerate(v))
    if n == 3 and dims[0] > MAX_CHANNELS * 64:
        raise _fail(where, f"{dims[0]} channels (at most {MAX_CHANNELS * 64})")
    if math.prod(dims) > MAX_ELEMENTS:
        raise _fail(where, f"shape {dims} has more than {MAX_ELEMENTS} elements")
    return dims


def _check_size_ints(config: dict[str, Any], where: str) -> None:
    """Integers in a module config (channels, widths, latent sizes …) that sizes allocations."""
    for k, v in config.items():
        if isinstance(v, bool):
            continue
        if _is_int(v):
            _check_bounded_int(v, f"{where}.{k}", 0, MAX_SIDE)
        elif isinstance(v, list) and all(_is_int(e) for e in v):
            for i, e in enumerate(v):
                _check_bounded_int(e, f"{where}.{k}[{i}]", 0, MAX_SIDE)


def _check_names(v: Any, where: str) -> None:
    if not isinstance(v, list) or not all(isinstance(e, str) and 0 < len(e) <= MAX_STRING for e in v):
        raise _fail(where, "expected a list of non-empty strings")


def validate_saved_state(meta: Any, *, tensor_names: Iterable[str] | None = None,
                         where: str = "state.json") -> dict[str, Any]:
    """Check a saved attributor's ``state.json`` (already parsed). Raises :class:`DataError`; returns it.

    ``tensor_names`` (the keys of ``state.safetensors``), when given, must hold every tensor the state names.
    """
    from genattr import UNKNOWN

    if not isinstance(meta, dict):
        raise _fail(where, f"expected a JSON object, got {type(meta).__name__}")
    kinds, values = meta.get("kinds"), meta.get("json")
    if not isinstance(kinds, dict) or not isinstance(values, dict):
        raise _fail(where, "expected the objects 'kinds' and 'json'")
    names = set(tensor_names) if tensor_names is not None else None
    needed: list[str] = []
    for attr, kind in kinds.items():
        w = f"{where} kinds.{attr}"
        if not attr.endswith("_") or attr.startswith("_") or not attr.isidentifier():
            raise _fail(w, "not a learned-state attribute name (public, ending in '_')")
        if kind in ("json", "tuple"):
            if attr not in values:
                raise _fail(w, "declared as JSON but missing from 'json'")
        elif kind in ("tensor", "ndarray"):
            needed.append(attr)
        elif isinstance(kind, dict) and len(kind) == 1 and ("module" in kind or "tensor_dict" in kind):
            key = "module" if "module" in kind else "tensor_dict"
            _check_names(kind[key], f"{w}.{key}")
            needed.extend(f"{attr}.{k}" for k in kind[key])
        else:
            raise _fail(w, f"unknown state kind {kind!r:.60}")
    for attr, v in values.items():
        _check_json_value(v, f"{where} json.{attr}")
        if attr not in kinds:
            raise _fail(f"{where} json.{attr}", "has no entry in 'kinds'")
    if "candidates_" not in kinds:
        raise _fail(where, "no candidates_ (not a fitted attributor)")
    cands = values.get("candidates_")
    if kinds["candidates_"] != "json" or not isinstance(cands, list) or not cands \
            or len(cands) > MAX_CANDIDATES:
        raise _fail(f"{where} candidates_", f"expected a list of 1 to {MAX_CANDIDATES} names")
    if not all(isinstance(c, str) and c and c != UNKNOWN and len(c) <= MAX_STRING for c in cands) \
            or len(set(cands)) != len(cands):
        raise _fail(f"{where} candidates_", f"names must be distinct non-empty strings other than {UNKNOWN!r}")
    for attr in ("image_shape_", "input_shape_", "feature_shape_"):
        if attr in values and values[attr] is not None:
            _check_shape(values[attr], f"{where} json.{attr}")
    op = values.get("operator_config_")
    if op is not None:
        if not isinstance(op, dict):
            raise _fail(f"{where} json.operator_config_", "expected an object")
        for key in ("in_shape", "out_shape"):
            if key in op:
                _check_shape(op[key], f"{where} json.operator_config_.{key}")
    specs = [("generator_spec_", values.get("generator_spec_"))]
    if isinstance(values.get("generator_specs_"), list):
        specs += [(f"generator_specs_[{i}]", s) for i, s in enumerate(values["generator_specs_"])]
    elif values.get("generator_specs_") is not None:
        raise _fail(f"{where} json.generator_specs_", "expected a list")
    for label, spec in specs:
        if spec is None:
            continue
        w = f"{where} json.{label}"
        if not isinstance(spec, dict) or ("config" in spec and not isinstance(spec["config"], dict)):
            raise _fail(w, "expected an object with a 'config' object")
        if label == "generator_spec_" and not isinstance(spec.get("arch"), str):
            raise _fail(w, "expected {'arch': name, 'config': {...}}")
        _check_size_ints(spec.get("config") or {}, f"{w}.config")
    extra = meta.get("seedrec")  # seed reconstruction's own rebuild information
    if extra is not None:
        if not isinstance(extra, dict):
            raise _fail(f"{where} seedrec", "expected an object")
        keys = extra.get("generator_keys", {})
        if not isinstance(keys, dict):
            raise _fail(f"{where} seedrec.generator_keys", "expected an object")
        for j, names_j in keys.items():
            _check_names(names_j, f"{where} seedrec.generator_keys.{j}")
            needed.extend(f"generator.{j}.{k}" for k in names_j)
        feat = extra.get("feature")
        if feat is not None:
            if not isinstance(feat, dict) or not isinstance(feat.get("config"), dict):
                raise _fail(f"{where} seedrec.feature", "expected an object with a 'config' object")
            _check_size_ints(feat["config"], f"{where} seedrec.feature.config")
            _check_names(feat.get("keys"), f"{where} seedrec.feature.keys")
            needed.extend(f"feature.{k}" for k in feat["keys"])
    if names is not None:
        missing = [n for n in needed if n not in names]
        if missing:
            raise _fail(where, f"names tensor(s) missing from state.safetensors: {', '.join(missing[:5])}")
    return meta


__all__ = ["SIZE_LIMITS", "SUPPORTED_FORMAT_VERSION", "validate_saved_config", "validate_saved_state"]
