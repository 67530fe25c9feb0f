"""A tiny registry the real :class:`genattr.unified.Pipeline` is built from: the two untrained generators of
``build_tiny_zoo`` registered as zoo models, a nearest-mean classifier over them and "real" images, and a
detector for one of them, all saved to disk and registered like shipped components. Seconds to build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from genattr.registry import Registry

MODELS = ("tiny-dcgan", "tiny-lsgan")


def real_images(n: int, seed: int) -> torch.Tensor:
    """Stand-in "real" images: a bright centre square over a dark background, with noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 1, 32, 32), -0.8)
    x[:, :, 8:24, 8:24] = 0.4
    return (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def samples(root: Path, name: str, n: int, seed: int) -> torch.Tensor:
    from genattr.generators import Generator

    return Generator.from_pretrained(root / "zoo" / name).sample(n, torch.Generator().manual_seed(seed))


def build_tiny_registry(root: Path, url: str) -> dict[str, Any]:
    """Populate the registry at ``url`` (files under ``root``); returns {model name: id}."""
    from genattr.attribution.baselines import NearestMean
    from tests.conftest import build_tiny_zoo

    (root / "zoo").mkdir(parents=True)
    build_tiny_zoo(root / "zoo")
    with Registry.open(url) as reg:
        ids = {n: reg.add_model(name=n, kind="zoo", architecture=n.split("-")[1], path=str(root / "zoo" / n)).id
               for n in MODELS}
        train = {"real": real_images(24, 1), **{n: samples(root, n, 24, 2 + i) for i, n in enumerate(MODELS)}}
        clf = NearestMean().fit(train)
        clf.save(root / "components" / "classifier")
        reg.add_component(kind="classifier", name="tiny-classifier", path=str(root / "components" / "classifier"),
                          models=["real", *MODELS])
        det = NearestMean().fit({MODELS[0]: train[MODELS[0]]})
        det.calibrate({MODELS[0]: samples(root, MODELS[0], 24, 9)}, target_fnr=0.1)
        det.save(root / "components" / "detector")
        reg.add_component(kind="flipad-detector", name="tiny-dcgan-detector",
                          path=str(root / "components" / "detector"), models=[MODELS[0]])
    return ids


__all__ = ["MODELS", "build_tiny_registry", "real_images", "samples"]
