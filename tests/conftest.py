"""Shared fixtures. Tests are tiny, offline and deterministic; one thread keeps small ops fast and CI stable."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


def _fmnist_available() -> bool:
    from genattr.data import fashion_mnist_dir

    return (fashion_mnist_dir() / "train-images-idx3-ubyte.gz").is_file() or \
        (fashion_mnist_dir() / "train-images-idx3-ubyte").is_file()


needs_fmnist = pytest.mark.skipif(not _fmnist_available(),
                                  reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def build_tiny_zoo(root) -> dict:
    """A two-model zoo of untrained tiny generators + classifier, with a valid manifest."""
    import json

    from genattr.generators import create_generator
    from genattr.training.classifier import FashionClassifier
    from genattr.zoo import CLASSIFIER, sha256_file

    models = {}
    for i, (name, arch) in enumerate((("tiny-dcgan", "dcgan"), ("tiny-lsgan", "lsgan"))):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(i)
            g = create_generator(arch, latent_dim=8, ngf=4)
            g.save_pretrained(root / name)
        models[name] = {"arch": arch, "seed": i, "epochs": 0, "config": g.config,
                        "file_sha256": sha256_file(root / name / "model.safetensors"),
                        "quality": {"fd": 1.5 + i, "classifier_confidence": 0.5, "n": 10},
                        "train_seconds": 0.0}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        clf = FashionClassifier(feature_dim=8)
        clf.save_pretrained(root / CLASSIFIER)
    man = {"format": 1, "models": models,
           "classifier": {"file_sha256": sha256_file(root / CLASSIFIER / "model.safetensors"), "config": clf.config,
                          "test_accuracy": 0.1},
           "quality_reference": {"real_train_vs_real_test": 0.5, "n": 10}}
    (root / "manifest.json").write_text(json.dumps(man))
    return man


@pytest.fixture
def tiny_zoo(tmp_path, monkeypatch):
    root = tmp_path / "zoo"
    root.mkdir()
    build_tiny_zoo(root)
    monkeypatch.setenv("GENATTR_ZOO_DIR", str(root))
    from genattr.zoo import _load_cached

    _load_cached.cache_clear()
    yield root
    _load_cached.cache_clear()


@pytest.fixture(scope="module")
def module_tiny_zoo(tmp_path_factory):
    """`tiny_zoo` shared by a whole module: GENATTR_ZOO_DIR points at one tiny zoo until the module ends."""
    from genattr.zoo import _load_cached

    root = tmp_path_factory.mktemp("module-zoo") / "zoo"
    root.mkdir()
    build_tiny_zoo(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENATTR_ZOO_DIR", str(root))
        _load_cached.cache_clear()
        yield root
    _load_cached.cache_clear()


# PostgreSQL: `.ci/run` starts Debian's server (`.ci/ensure-postgres`) and sets GENATTR_TEST_POSTGRES_URL and
# GENATTR_REQUIRE_POSTGRES=1, so there a missing server fails the run; elsewhere the PostgreSQL half is skipped.
_PG_DEFAULT = "postgresql+psycopg://genattr:genattr@127.0.0.1:5432/genattr_test"


def _postgres_url() -> str | None:
    url = os.environ.get("GENATTR_TEST_POSTGRES_URL", _PG_DEFAULT)
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return url
    except Exception as exc:  # any failure means "no server here"
        if os.environ.get("GENATTR_REQUIRE_POSTGRES") == "1":
            raise RuntimeError(f"GENATTR_REQUIRE_POSTGRES=1 but PostgreSQL at {url} is unreachable: {exc}") from exc
        return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of an empty-able PostgreSQL database for tests (skips when none is reachable outside CI)."""
    url = _postgres_url()
    if url is None:
        pytest.skip("PostgreSQL not reachable (run .ci/ensure-postgres, or set GENATTR_TEST_POSTGRES_URL)")
    return url


@pytest.fixture
def pg_schema(postgres_url: str):
    """A fresh PostgreSQL schema per test (dropped afterwards): yields a URL whose connections use only it."""
    import uuid

    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    sep = "&" if "?" in postgres_url else "?"
    yield f"{postgres_url}{sep}options=-csearch_path%3D{name}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="module")
def local_ray():
    """A local two-CPU Ray for the module (shut down afterwards), or the one this process already runs (left
    running); skips when ray is not installed."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


from tests.fingerprint_helpers import ideal_decoder  # noqa: E402, F401  (a shared fixture)
