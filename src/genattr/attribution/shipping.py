"""Shipped (pre-fitted) attributors: ``models/<family>/<name>/`` plus ``models/<family>/manifest.json``.

The manifest records, per model, the files' sha256, the attributor's parameters and thresholds, the data it
was fitted on, its measured test figures and the command that rebuilds it. Loading checks every sha256
before anything is read, so a corrupted or swapped file is an error, not a silently different model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def ship_attributor(att: Any, models_dir: str | Path, name: str, entry: Mapping[str, Any]) -> Path:
    """Save a fitted, calibrated attributor to ``models_dir/name`` and record it (with ``entry``'s extra
    fields: data, metrics, command, …) in ``models_dir/manifest.json``; returns the model directory."""
    from genattr import __version__
    from genattr.zoo import sha256_file

    models_dir = Path(models_dir)
    target = att.save(models_dir / name)
    manifest_path = models_dir / "manifest.json"
    man = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"format": 1, "models": {}}
    man["models"][name] = {
        "path": name, "attributor": att.name, "candidates": list(att.candidates_), "params": att.get_params(),
        "thresholds": att.thresholds_.tolist(), "genattr_version": __version__,
        "files": {p.name: sha256_file(p) for p in sorted(target.iterdir()) if p.is_file()},
        **entry,
    }
    manifest_path.write_text(json.dumps(man, indent=2, sort_keys=True, default=float) + "\n")
    return target


def load_shipped(name: str, models_dir: str | Path, *, rebuild: str = "") -> Any:
    """Load a shipped attributor after checking its files' sha256 against the manifest.

    ``rebuild`` names the command that builds the models (for the error message when they are missing)."""
    from genattr.attribution import Attributor
    from genattr.errors import DataError, IntegrityError, UnknownNameError
    from genattr.zoo import sha256_file

    models_dir = Path(models_dir)
    manifest_path = models_dir / "manifest.json"
    if not manifest_path.is_file():
        raise DataError(f"{manifest_path} not found" + (f"; build the models with `{rebuild}`" if rebuild else ""))
    try:
        man = json.loads(manifest_path.read_text())
        models = man["models"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{manifest_path} is not a valid model manifest ({exc})") from exc
    if name not in models:
        raise UnknownNameError(f"no shipped model {name!r} in {manifest_path}; known: {', '.join(sorted(models))}")
    entry = models[name]
    d = models_dir / entry["path"]
    for fname, sha in entry["files"].items():
        if not (d / fname).is_file() or sha256_file(d / fname) != sha:
            raise IntegrityError(f"{d / fname}: missing or sha256 does not match {manifest_path}")
    return Attributor.load(d)


__all__ = ["load_shipped", "ship_attributor"]
