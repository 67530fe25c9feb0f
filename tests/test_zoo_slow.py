"""Slow checks on the shipped zoo (run with `pytest -m slow`): quality figures reproduce from the weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import needs_fmnist

SHIPPED = Path(__file__).resolve().parents[1] / "zoo"

pytestmark = [pytest.mark.slow, needs_fmnist,
              pytest.mark.skipif(not (SHIPPED / "manifest.json").is_file(), reason="zoo not built")]


def test_manifest_fd_reproduces_exactly(tmp_path: Path) -> None:
    """Re-measure every model into a copy of the zoo: the manifest's FD figures are measured, not typed."""
    from genattr.zoo.build import rebuild

    copy = tmp_path / "zoo"
    shutil.copytree(SHIPPED, copy)
    shipped = json.loads((SHIPPED / "manifest.json").read_text())
    n = shipped["quality_reference"]["n"]
    man = rebuild(root=copy, n_eval=n, retrain=False, progress=False)
    for name, e in shipped["models"].items():
        assert man["models"][name]["quality"]["fd"] == pytest.approx(e["quality"]["fd"], rel=1e-6), name
        assert man["models"][name]["file_sha256"] == e["file_sha256"]
