"""``--set KEY=VALUE`` for the experiment configs (frozen or plain dataclasses of simple fields)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar

from genattr.errors import ConfigError

C = TypeVar("C")


def parse_value(key: str, raw: str, current: Any) -> Any:
    """``raw`` converted to the type of ``current``: dict ← JSON object of objects, bool ← 1/0/true/false/
    yes/no, tuple ← comma-separated (element type of the current tuple), else int / float / str."""
    try:
        if isinstance(current, dict):
            val = json.loads(raw)
            if not isinstance(val, dict) or not all(isinstance(v, dict) for v in val.values()):
                raise ValueError('expected a JSON object of objects, e.g. {"name": {"epochs": 8}}')
            return val
        if isinstance(current, bool):
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        if isinstance(current, tuple):
            elem = type(current[0]) if current else str
            return tuple(elem(v.strip()) for v in raw.split(",") if v.strip())
        return type(current)(raw)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise ConfigError(f"bad value for {key}: {raw!r} ({exc})") from None


def override_fields(config: C, items: Mapping[str, str], *, what: str = "setting") -> C:
    """A copy of the dataclass ``config`` with fields set from strings; unknown names raise ConfigError."""
    known = sorted(f.name for f in fields(config))  # type: ignore[arg-type]
    changes = {}
    for key, raw in items.items():
        if key not in known:
            raise ConfigError(f"unknown {what} {key!r}; known: {', '.join(known)}")
        changes[key] = parse_value(key, raw, getattr(config, key))
    return replace(config, **changes)  # type: ignore[type-var]


__all__ = ["override_fields", "parse_value"]
