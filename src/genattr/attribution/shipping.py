"""Shipped (pre-fitted) attributors: ``models/<family>/<name>/`` plus ``models/<family>/manifest.json``.

The manifest records, per model, the files' sha256, the attributor's parameters and thresholds, the data it
was fitted on, its measured test figures and the command that rebuilds it.

Loading fails closed. A model is loaded only after its manifest entry verified: the manifest parses, the
entry names a plain sub-directory and lists (at least) the three files of a saved attributor with a
64-hex-digit sha256 each, and every listed file hashes to its value. The loader then reads *only the bytes it
hashed* (copied to a private temporary directory, so a file swapped after the check is never read), checks
``config.json``/``state.json`` against :mod:`genattr.attribution.config_schema` before anything is built,
and finally compares the loaded attributor's name, candidates, parameters and thresholds with the manifest.
Anything else — no manifest, an unreadable one, ``files: {}``, a renamed directory — is an
:class:`~genattr.errors.IntegrityError` or :class:`~genattr.errors.DataError`.

Users' own models (``genattr classify train``, ``genattr flipad fit``) have no manifest; they load through
:func:`load_attributor_dir` with ``trust_unverified=True`` (CLI ``--trust-unverified``), which the CLI
announces loudly. Even then the config and state are schema-checked.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genattr.errors import DataError, GenattrError, IntegrityError, UnknownNameError

MANIFEST = "manifest.json"
#: the files of a saved attributor (``persistence.CONFIG_FILE`` …); each must be listed and verified
REQUIRED_FILES = ("config.json", "state.json", "state.safetensors")
MAX_FILE_BYTES = 1 << 31  # 2 GiB: larger "model files" are refused before hashing
_SHA256 = re.compile(r"[0-9a-f]{64}")


def ship_attributor(att: Any, models_dir: str | Path, name: str, entry: Mapping[str, Any]) -> Path:
    """Save a fitted, calibrated attributor to ``models_dir/name`` and record it (with ``entry``'s extra
    fields: data, metrics, command, …) in ``models_dir/manifest.json`` (written atomically); returns the
    model directory."""
    from genattr import __version__
    from genattr.zoo import sha256_file

    _check_component(name, "model name")
    models_dir = Path(models_dir)
    target = att.save(models_dir / name)
    manifest_path = models_dir / MANIFEST
    man = _read_manifest(manifest_path) if manifest_path.exists() else {"format": 1, "models": {}}
    man["models"][name] = {
        "path": name, "attributor": att.name, "candidates": list(att.candidates_), "params": att.get_params(),
        "thresholds": att.thresholds_.tolist(), "genattr_version": __version__,
        "files": {p.name: sha256_file(p) for p in sorted(target.iterdir()) if p.is_file()},
        **entry,
    }
    text = json.dumps(man, indent=2, sort_keys=True, default=float) + "\n"
    fd, tmp = tempfile.mkstemp(dir=models_dir, prefix=".manifest.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, manifest_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# -- manifest ----------------------------------------------------------------------------------------------------


def _check_component(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or value in (".", "..") or "/" in value or "\\" in value \
            or "\0" in value or len(value) > 255:
        raise IntegrityError(f"{what} {value!r:.80} is not a plain file or directory name")
    return value


def _read_manifest(path: Path, rebuild: str = "") -> dict[str, Any]:
    """The parsed manifest; DataError unless it is a readable JSON object with a ``models`` object."""
    hint = f"; build the models with `{rebuild}`" if rebuild else ""
    if not path.exists():
        raise DataError(f"{path} not found{hint}")
    if not path.is_file():
        raise DataError(f"{path} is not a file (a model manifest is expected there){hint}")
    try:
        man = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: unreadable model manifest ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DataError(f"{path} is not a valid model manifest ({exc})") from exc
    if not isinstance(man, dict) or not isinstance(man.get("models"), dict):
        raise DataError(f"{path} is not a valid model manifest (no 'models' object)")
    return man


def _entry_files(entry: Any, name: str, manifest_path: Path) -> tuple[str, dict[str, str]]:
    """(directory name, {file: sha256}) of a manifest entry, or IntegrityError."""
    if not isinstance(entry, dict):
        raise IntegrityError(f"{manifest_path}: entry {name!r} is not an object")
    path = _check_component(entry.get("path"), f"{manifest_path}: entry {name!r}: path")
    files = entry.get("files")
    if not isinstance(files, dict):
        raise IntegrityError(f"{manifest_path}: entry {name!r} has no 'files' object of sha256 values "
                             f"(got {type(files).__name__}); refusing to load an unverifiable model")
    missing = [f for f in REQUIRED_FILES if f not in files]
    if missing:
        raise IntegrityError(f"{manifest_path}: entry {name!r} does not list {', '.join(missing)}; "
                             "refusing to load files the manifest does not cover")
    for fname, sha in files.items():
        _check_component(fname, f"{manifest_path}: entry {name!r}: file")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise IntegrityError(f"{manifest_path}: entry {name!r}: sha256 of {fname!r} is not 64 hex digits")
    return path, dict(files)


def _read_verified(d: Path, files: Mapping[str, str], manifest_path: Path) -> dict[str, bytes]:
    import hashlib

    if not d.is_dir():
        raise IntegrityError(f"{d}: model directory named by {manifest_path} is missing (renamed or deleted?)")
    subdirs = sorted(p.name for p in d.iterdir() if p.is_dir())
    if subdirs:  # e.g. a seed-reconstruction shortlist: the manifest covers top-level files only
        raise IntegrityError(f"{d}: holds sub-directories the manifest cannot cover ({', '.join(subdirs)}); "
                             "refusing to load unverified parts")
    out: dict[str, bytes] = {}
    for fname, sha in files.items():
        p = d / fname
        try:
            if not p.is_file():
                raise IntegrityError(f"{p}: missing or not a regular file (listed in {manifest_path})")
            if p.stat().st_size > MAX_FILE_BYTES:
                raise IntegrityError(f"{p}: larger than {MAX_FILE_BYTES} bytes; refusing")
            data = p.read_bytes()
        except OSError as exc:
            raise IntegrityError(f"{p}: unreadable ({exc.strerror or exc})") from exc
        if hashlib.sha256(data).hexdigest() != sha:
            raise IntegrityError(f"{p}: sha256 does not match {manifest_path}; the file is corrupt or was modified")
        out[fname] = data
    return out


# -- loading -------------------------------------------------------------------------------------------------------


def _load_from_bytes(files: Mapping[str, bytes], shown: Path) -> Any:
    """Schema-check and load an attributor from file contents (never from the original paths)."""
    with tempfile.TemporaryDirectory(prefix="genattr-verified-") as tmp:
        for fname, data in files.items():
            (Path(tmp) / fname).write_bytes(data)
        try:
            return _load_checked_dir(Path(tmp))
        except GenattrError as exc:
            raise type(exc)(str(exc).replace(tmp, str(shown))) from None


def _load_checked_dir(d: Path) -> Any:
    """``Attributor.load`` after :mod:`config_schema` checks of config.json, state.json and tensor names."""
    from safetensors import SafetensorError, safe_open

    from genattr.attribution import Attributor
    from genattr.attribution.config_schema import validate_saved_config, validate_saved_state

    missing = [f for f in REQUIRED_FILES if not (d / f).is_file()]
    if missing:
        raise DataError(f"{d}: not a saved attributor (missing {', '.join(missing)})")
    try:
        cfg = json.loads((d / "config.json").read_bytes().decode("utf-8"))
        meta = json.loads((d / "state.json").read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DataError(f"{d}: malformed attributor files ({exc})") from exc
    validate_saved_config(cfg, str(cfg.get("name") or cfg.get("class") or "") if isinstance(cfg, dict) else "",
                          where=str(d / "config.json"))
    try:
        with safe_open(str(d / "state.safetensors"), "pt") as f:
            names = list(f.keys())
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{d / 'state.safetensors'}: unreadable safetensors file ({exc})") from exc
    validate_saved_state(meta, tensor_names=names, where=str(d / "state.json"))
    try:
        att = Attributor.load(d)
    except GenattrError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:  # a shape the schema cannot see
        raise DataError(f"{d}: saved attributor does not load ({type(exc).__name__}: {exc})") from exc
    thresholds = att.thresholds_.tolist()
    if len(thresholds) != len(att.candidates_) or any(math.isnan(t) for t in thresholds):
        raise DataError(f"{d}: thresholds {thresholds} are not one number per candidate")
    return att


def _same_number(a: Any, b: Any) -> bool:
    if not isinstance(a, int | float) or isinstance(a, bool) or not isinstance(b, int | float):
        return False
    if math.isnan(a) or math.isnan(b):
        return False
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _cross_check(att: Any, entry: Mapping[str, Any], name: str, manifest_path: Path) -> None:
    """The loaded attributor must be the one the manifest describes (defence in depth beyond sha256)."""
    problems = []
    if "attributor" in entry and entry["attributor"] != att.name:
        problems.append(f"attributor {att.name!r} ≠ {entry['attributor']!r}")
    if "candidates" in entry and entry["candidates"] != list(att.candidates_):
        problems.append(f"candidates {list(att.candidates_)} ≠ {entry['candidates']}")
    if "thresholds" in entry:
        want, got = entry["thresholds"], att.thresholds_.tolist()
        if not isinstance(want, list) or len(want) != len(got) \
                or not all(_same_number(a, b) for a, b in zip(got, want, strict=True)):
            problems.append(f"thresholds {got} ≠ {want}")
    if "params" in entry:  # hyperparameters added after shipping keep their defaults and are not listed
        got_params = json.loads(json.dumps(att.get_params()))
        want_params = entry["params"]
        if not isinstance(want_params, dict) or any(got_params.get(k, object()) != v for k, v in want_params.items()):
            problems.append("hyperparameters differ")
    if problems:
        raise IntegrityError(f"{manifest_path}: model {name!r} does not match its manifest entry: "
                             + "; ".join(problems))


def load_shipped(name: str, models_dir: str | Path, *, rebuild: str = "") -> Any:
    """Load shipped model ``name`` from ``models_dir`` after verifying it against ``models_dir/manifest.json``.

    ``rebuild`` names the command that builds the models (for the error message when they are missing)."""
    models_dir = Path(models_dir)
    manifest_path = models_dir / MANIFEST
    man = _read_manifest(manifest_path, rebuild)
    models = man["models"]
    if name not in models:
        raise UnknownNameError(f"no shipped model {name!r} in {manifest_path}; known: {', '.join(sorted(models))}")
    entry = models[name]
    path, files = _entry_files(entry, name, manifest_path)
    d = models_dir / path
    att = _load_from_bytes(_read_verified(d, files, manifest_path), d)
    _cross_check(att, entry, name, manifest_path)
    return att


def manifest_entry_for(directory: str | Path) -> tuple[Path, str] | None:
    """``(models_dir, name)`` if ``directory`` is listed in ``directory/../manifest.json``; None if there is no
    manifest there. A manifest that exists but cannot be read, or that does not list the directory, is an
    :class:`IntegrityError`/:class:`DataError` (fail closed)."""
    directory = Path(directory)
    if directory.name in ("", ".", ".."):
        directory = directory.resolve()
    manifest_path = directory.parent / MANIFEST
    if not manifest_path.exists() and not manifest_path.is_symlink():
        return None
    man = _read_manifest(manifest_path)
    for name, entry in man["models"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            # a damaged entry might be this directory's: never fall back to "not listed" (fail closed)
            raise IntegrityError(f"{manifest_path}: entry {name!r} is malformed (no 'path'); refusing to guess "
                                 "which model it describes")
        if entry["path"] == directory.name:
            return directory.parent, name
    return None


def load_attributor_dir(directory: str | Path, *, trust_unverified: bool = False) -> tuple[Any, bool]:
    """Load the attributor in ``directory``; returns ``(attributor, verified)``.

    If ``directory/../manifest.json`` lists it, it is verified and loaded as by :func:`load_shipped`
    (``trust_unverified`` does not relax that). Otherwise — no manifest, or a manifest that does not list
    this directory (e.g. it was renamed) — loading is refused with an :class:`IntegrityError` unless
    ``trust_unverified=True``, for models the user trained; the result is then ``verified=False`` and the
    caller must say so loudly. A manifest that exists but cannot be read is an error either way.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a saved attributor (no such directory)")
    found = manifest_entry_for(directory)
    if found is not None:
        models_dir, name = found
        return load_shipped(name, models_dir), True
    listed_nowhere = (directory.parent / MANIFEST).exists()
    if not trust_unverified:
        why = (f"{directory.parent / MANIFEST} does not list {directory.name!r} (renamed?)" if listed_nowhere
               else f"there is no {MANIFEST} next to it")
        raise IntegrityError(f"{directory}: cannot verify this model ({why}); refusing to load it. For a model "
                             "you trained yourself, pass --trust-unverified")
    return _load_checked_dir(directory), False


UNVERIFIED_WARNING = ("WARNING: --trust-unverified: {path} is NOT verified against any manifest; its weights, "
                      "candidates and thresholds are used as found on disk. Use this only for models you trained "
                      "yourself.")

__all__ = ["MANIFEST", "REQUIRED_FILES", "UNVERIFIED_WARNING", "load_attributor_dir", "load_shipped",
           "manifest_entry_for", "ship_attributor"]
