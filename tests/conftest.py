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
