"""Where the shipped assets live: the zoo (``zoo/``) and the shipped models (``models/``).

Resolution, first match wins: ``$GENATTR_ZOO_DIR`` / ``$GENATTR_MODELS_DIR`` for one of them;
``$GENATTR_HOME`` (a folder holding ``zoo/`` and ``models/``, e.g. a genattr checkout or a copy of its
assets); the source checkout this package runs from (``pip install -e .``); the current directory when it
holds a zoo. A non-editable ``pip install .`` has no assets of its own: set ``GENATTR_HOME``.
"""

from __future__ import annotations

import os
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]  # <checkout>/src/genattr/paths.py → <checkout>
HINT = "set GENATTR_HOME to a genattr checkout (the folder holding zoo/ and models/)"


def _has_zoo(root: Path) -> bool:
    return (root / "zoo" / "manifest.json").is_file()


def home() -> Path:
    """The folder holding ``zoo/`` and ``models/`` (may not exist: callers say what is missing and :data:`HINT`)."""
    env = os.environ.get("GENATTR_HOME")
    if env:
        return Path(env).expanduser()
    for root in (_CHECKOUT, Path.cwd()):
        if _has_zoo(root):
            return root
    return _CHECKOUT


def zoo_dir() -> Path:
    env = os.environ.get("GENATTR_ZOO_DIR")
    return Path(env).expanduser() if env else home() / "zoo"


def models_dir(family: str | None = None) -> Path:
    env = os.environ.get("GENATTR_MODELS_DIR")
    root = Path(env).expanduser() if env else home() / "models"
    return root / family if family else root


__all__ = ["HINT", "home", "models_dir", "zoo_dir"]
