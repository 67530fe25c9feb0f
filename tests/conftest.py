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
