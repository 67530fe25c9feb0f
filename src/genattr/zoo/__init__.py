"""The shipped generator zoo: Fashion-MNIST GANs with a manifest and sha256-verified loading.

Layout (``zoo/`` at the repository root, or ``$GENATTR_ZOO_DIR``)::

    zoo/manifest.json                 one entry per model: arch, config, seed, epochs, data and file sha256,
                                      measured quality (Fréchet distance in classifier-feature space)
    zoo/<name>/config.json            Generator.save_pretrained output
    zoo/<name>/model.safetensors
    zoo/fmnist-classifier/...         the feature extractor used to measure quality
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from genattr.errors import DataError, IntegrityError, UnknownNameError

MANIFEST = "manifest.json"
CLASSIFIER = "fmnist-classifier"


def zoo_dir() -> Path:
    """``$GENATTR_ZOO_DIR``, else ``$GENATTR_HOME/zoo``, else the checkout's ``zoo/`` (:mod:`genattr.paths`)."""
    from genattr import paths

    return paths.zoo_dir()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def manifest(root: str | Path | None = None) -> dict[str, Any]:
    path = Path(root or zoo_dir()) / MANIFEST
    if not path.is_file():
        from genattr.paths import HINT

        raise DataError(f"zoo manifest {path} not found; {HINT}, or GENATTR_ZOO_DIR, or run `genattr zoo rebuild`")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            raise ValueError("no 'models' mapping")
    except (json.JSONDecodeError, ValueError) as exc:
        raise DataError(f"{path}: malformed zoo manifest ({exc})") from exc
    return data


def names(root: str | Path | None = None) -> list[str]:
    """Names of the generators in the zoo (the classifier is not a generator and is not listed)."""
    return sorted(manifest(root)["models"])


ARCHITECTURES = ("dcgan", "wgan_gp", "lsgan", "ebgan")
# Zoo v2's names, used as defaults where no zoo is installed (the tables then fail with the zoo's own message).
_V2_ARCHITECTURE_MODELS = ("fmnist-dcgan-s0", "fmnist-wgangp-s5", "fmnist-lsgan-s6", "fmnist-ebgan-s7")
_V2_DCGAN_SEEDS = tuple(f"fmnist-dcgan-s{i}" for i in range(5))


def _by_arch(root: str | Path | None) -> dict[str, list[str]] | None:
    try:
        models = manifest(root)["models"]
    except DataError:
        return None
    out: dict[str, list[tuple[int, str]]] = {}
    for name, e in models.items():
        if isinstance(e, dict) and e.get("arch") in ARCHITECTURES:
            out.setdefault(e["arch"], []).append((int(e.get("seed", 0)), name))
    return {a: [n for _, n in sorted(v)] for a, v in out.items()}


def architecture_models(root: str | Path | None = None) -> tuple[str, ...]:
    """One generator per architecture (DCGAN, WGAN-GP, LSGAN, EBGAN order), the lowest seed of each: the models
    the papers' cross-architecture tables compare. Read from the installed zoo's manifest, so the tables follow
    whichever zoo version is on disk."""
    by = _by_arch(root)
    if by is None:
        return _V2_ARCHITECTURE_MODELS
    return tuple(by[a][0] for a in ARCHITECTURES if a in by)


def dcgan_seed_models(root: str | Path | None = None) -> tuple[str, ...]:
    """The zoo's DCGANs in seed order (same architecture and recipe, different seeds: the seed tables)."""
    by = _by_arch(root)
    return _V2_DCGAN_SEEDS if by is None else tuple(by.get("dcgan", ()))


def provenance(root: str | Path | None = None) -> str:
    """One line naming the zoo a result was measured on (version and manifest sha256), for results READMEs."""
    path = Path(root or zoo_dir()) / MANIFEST
    if not path.is_file():
        return "Zoo: none installed."
    version = manifest(root).get("zoo_version", 1)
    return f"Zoo: v{version}, `zoo/manifest.json` sha256 `{sha256_file(path)[:16]}…` (`genattr zoo list`)."


def entry(name: str, root: str | Path | None = None) -> dict[str, Any]:
    m = manifest(root)
    models = m["models"] | ({CLASSIFIER: m["classifier"]} if "classifier" in m else {})
    if name not in models:
        raise UnknownNameError(f"unknown zoo model {name!r}; known: {', '.join(sorted(m['models']))}")
    return models[name]


def verify(name: str, root: str | Path | None = None) -> Path:
    """Check the weights' sha256 and the config against the manifest; returns the model directory."""
    e = entry(name, root)
    d = Path(root or zoo_dir()) / name
    want = e.get("file_sha256") if isinstance(e, dict) else None
    if not isinstance(want, str) or len(want) != 64:
        raise IntegrityError(f"zoo model {name}: the manifest entry has no valid file_sha256")
    weights = d / "model.safetensors"
    if not weights.is_file():
        raise DataError(f"zoo model {name}: {weights} is missing")
    got = sha256_file(weights)
    if got != want:
        raise IntegrityError(f"zoo model {name}: sha256 {got[:16]}… does not match the manifest "
                             f"({want[:16]}…); the file is corrupt or was modified")
    cfg = d / "config.json"
    try:
        meta = json.loads(cfg.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DataError(f"zoo model {name}: unreadable {cfg} ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("config") != e.get("config") \
            or ("arch" in e and meta.get("arch") != e["arch"]):
        raise IntegrityError(f"zoo model {name}: {cfg} does not match the manifest (architecture or config)")
    return d


@lru_cache(maxsize=32)
def _load_cached(name: str, root: str) -> Any:
    from genattr.generators import Generator

    return Generator.from_pretrained(verify(name, root))


def load(name: str, root: str | Path | None = None):  # -> Generator (lazy import keeps torch optional here)
    """Load a zoo generator after verifying its sha256. Returns a fresh copy each call (safe to modify)."""
    import copy

    return copy.deepcopy(_load_cached(name, str(root or zoo_dir())))


def load_classifier(root: str | Path | None = None):  # -> FashionClassifier
    from genattr.training.classifier import FashionClassifier

    return FashionClassifier.from_pretrained(verify(CLASSIFIER, root))


__all__ = ["ARCHITECTURES", "CLASSIFIER", "architecture_models", "dcgan_seed_models", "entry", "load",
           "load_classifier", "manifest", "names", "provenance", "sha256_file", "verify", "zoo_dir"]
