"""The layer rules of docs/contract.md, as import-linter contracts (pyproject.toml), checked here and by
`make lint`; plus a negative control showing the checker does fail on a violating package."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter not installed (pip install -e '.[dev]')")


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(cwd / "src"), "PATH": str(LINT.parent)}
    return subprocess.run([str(LINT), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_project_layer_contracts_are_kept() -> None:
    res = _run(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    for rule in ("ledger imports no torch", "no library module imports the CLI", "attribution never imports evaluation",
                 "low-level parts never import attribution"):
        assert f"{rule}" in out and "BROKEN" not in out


def test_checker_fails_on_a_violating_package(tmp_path: Path) -> None:
    pkg = tmp_path / "src" / "layered"
    for sub in ("attribution", "evaluation"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    lazy = "def f():\n    from layered.evaluation import x  # a lazy import is still an import\n"
    (pkg / "attribution" / "method.py").write_text(lazy)
    (pkg / "evaluation" / "x.py").write_text("")
    (tmp_path / ".importlinter").write_text(textwrap.dedent("""
        [importlinter]
        root_package = layered

        [importlinter:contract:1]
        name = attribution never imports evaluation
        type = forbidden
        source_modules = layered.attribution
        forbidden_modules = layered.evaluation
    """))
    res = _run(tmp_path, "--config", str(tmp_path / ".importlinter"))
    assert res.returncode != 0 and "BROKEN" in res.stdout
