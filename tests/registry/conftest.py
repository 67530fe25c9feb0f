"""Registry fixtures: every test that takes ``url`` or ``reg`` runs once on SQLite (a temporary file) and once on
PostgreSQL (a fresh schema per test, from ``pg_schema`` in tests/conftest.py; skipped outside CI when no server
is reachable). A tiny fake checkout (zoo + models/) for ``import_shipped``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from genattr.registry import Registry
from tests.registry.helpers import build_fake_repo, fake_weights


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'registry.db'}"
    return request.getfixturevalue("pg_schema")


@pytest.fixture
def reg(url) -> Iterator[Registry]:
    r = Registry.open(url)
    yield r
    r.close()


@pytest.fixture
def weights(tmp_path) -> Callable[[str], tuple[Path, str]]:
    """``weights("g1")`` → (directory holding a model.safetensors unique to g1, its sha256)."""

    def make(name: str) -> tuple[Path, str]:
        d = tmp_path / "w" / name
        return d, fake_weights(d)

    return make


@pytest.fixture
def fake_repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    build_fake_repo(root)
    return root
