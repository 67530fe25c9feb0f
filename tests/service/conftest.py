"""Service fixtures: a registry in a temporary SQLite file (with a token), a scripted stand-in pipeline (its
answer names each image's mean pixel, so order and batching are visible) and image-file builders."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from genattr.registry import Registry
from genattr.unified.verdict import Evidence, Verdict


def png(value: int | np.ndarray = 0, size: tuple[int, int] = (8, 8), *, mode: str = "L", fmt: str = "PNG") -> bytes:
    """An image file: constant ``value`` (or the given uint8 array) of ``size`` (width, height)."""
    if isinstance(value, np.ndarray):
        im = Image.fromarray(value)
    else:
        im = Image.new(mode, size, value if mode == "L" else (value, value, value))
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ScriptedPipeline:
    """Stands in for genattr.unified.Pipeline where a test needs to see exactly what the service passed on."""

    def __init__(self, image_shape: tuple[int, int, int] = (1, 8, 8)) -> None:
        self.image_shape = image_shape
        self.calls: list[dict[str, Any]] = []

    def attribute(self, images: Any, *, deep: bool = False, image_bytes: Any = None) -> list[Verdict]:
        self.calls.append({"shape": tuple(images.shape), "deep": deep, "dtype": str(images.dtype),
                           "range": (float(images.min()), float(images.max())), "n_bytes": len(image_bytes)})
        out = []
        for x, data in zip(images, image_bytes, strict=True):
            level = round((float(x.mean()) + 1) * 127.5)  # back to the 0-255 pixel value
            ev = Evidence("classifier", f"level-{level}", 0.5, {"top": [{"candidate": f"level-{level}",
                                                                        "probability": 0.9, "p_value": 0.5,
                                                                        "accepted": True, "p_bound": "exact"}]})
            out.append(Verdict(f"level-{level}", 0.75, None, (ev,), sha(data), "classifier"))
        return out


@pytest.fixture
def registry(tmp_path) -> Iterator[Registry]:
    reg = Registry.open(f"sqlite:///{tmp_path / 'registry.db'}")
    yield reg
    reg.close()


@pytest.fixture
def token(registry) -> str:
    return registry.create_token("tests")


@pytest.fixture
def scripted() -> ScriptedPipeline:
    return ScriptedPipeline()


@pytest.fixture
def client(registry, scripted):
    from fastapi.testclient import TestClient

    from genattr.service import ServiceSettings, create_app

    settings = ServiceSettings(max_body_bytes=64 * 1024, max_files=4, max_pixels=10_000, max_deep_files=2)
    with TestClient(create_app(settings, pipeline=scripted, registry=registry)) as c:
        yield c
