"""A tiny synthetic world for the unified-pipeline tests: 1×32×32 images from known "sources", hand-built
components (a nearest-mean classifier, a one-pixel detector, two orthogonal keys, a fingerprint index read by a stub
decoder) whose right answers are obvious, so the combining policy can be checked case by case on fixed seeds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from genattr.attribution.base import Attributor
from genattr.attribution.baselines import NearestMean
from genattr.watermark.fingerprint_index import FingerprintIndex
from genattr.watermark.keys import KeySet

SHAPE = (1, 32, 32)
BG = -0.6
CODE_BITS = 32
ALICE = (slice(1, 4), slice(20, 28))  # pixels alice's key reads
BOB = (slice(4, 7), slice(20, 28))
CAROL_CODE = np.random.default_rng(7).integers(0, 2, CODE_BITS, dtype=np.uint8)


def make_images(kind: str, n: int, seed: int) -> torch.Tensor:
    """n images of one synthetic source (background BG, a source-specific pattern, small noise)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, *SHAPE), BG)
    if kind in ("gen-a", "clone-a"):
        x[:, 0, 1:16, 0:16] = 0.5
        x[:, 0, 31, 31] = 0.0 if kind == "gen-a" else BG  # the detector's "fingerprint pixel" (noise-free)
    elif kind == "gen-b":
        x[:, 0, 16:32, 16:32] = 0.5
    elif kind == "stranger":
        x[:, 0, 16:32, 0:16] = 0.5
    elif kind in ("alice", "bob", "alice+bob"):
        for who, region in (("alice", ALICE), ("bob", BOB)):
            if who in kind:
                x[:, 0, region[0], region[1]] = 0.9
    elif kind == "carol":
        x[:, 0, 0, :CODE_BITS] = torch.from_numpy(CAROL_CODE.astype(np.float32)) * 1.8 - 0.9
    elif kind != "real":
        raise ValueError(kind)
    noise = 0.25 * torch.randn(x.shape, generator=g)  # enough that one pixel does not move a nearest-mean score
    if kind == "carol":
        noise[:, 0, 0, :CODE_BITS] = 0  # keep the code row's signs
    if kind in ("gen-a", "clone-a"):
        noise[:, 0, 31, 31] = 0
    from genattr.data import quantize_8bit

    return quantize_8bit(x + noise)  # what a PNG holds: the CLI tests read these back from files


class CornerDetector(Attributor):
    """A one-candidate "detector": the score is the bottom-right pixel (gen-a's made-up fingerprint)."""

    name = "corner-detector"

    def _fit(self, candidates: Mapping[str, Any], **fit_params: Any) -> None:
        self.image_shape_ = list(SHAPE)

    def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 31, 31:32].float()


class RowDecoder(nn.Module):
    """A stand-in fingerprint decoder: bit i is the sign of pixel (0, i)."""

    channels, code_bits = 1, CODE_BITS

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.new_zeros(x.shape[0], 1), x[:, 0, 0, :CODE_BITS]


def keyset() -> KeySet:
    keys = torch.zeros(2, *SHAPE)
    for i, region in enumerate((ALICE, BOB)):
        keys[i, 0, region[0], region[1]] = 1.0
    keys = keys / keys.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    # the issuing step's held-out compliance record: every one of 100 real images scored below 0
    comp = {u: {"max_real": -1.0, "n_real": 100} for u in ("alice", "bob")}
    return KeySet(keys, ("alice", "bob"), {"compliance": comp})


def fingerprint_index() -> FingerprintIndex:
    idx = FingerprintIndex(CODE_BITS)
    rng = np.random.default_rng(11)
    others = rng.integers(0, 2, (30, CODE_BITS), dtype=np.uint8)
    idx.add_many(["carol", *[f"user-{i:02d}" for i in range(30)]], np.vstack([CAROL_CODE[None], others]))
    return idx


def classifier() -> NearestMean:
    return NearestMean().fit({"real": make_images("real", 40, 1), "gen-a": make_images("gen-a", 40, 2),
                              "gen-b": make_images("gen-b", 40, 3)})


def detector() -> CornerDetector:
    return CornerDetector().fit({"gen-a": make_images("gen-a", 4, 4)})


def validation() -> dict[str, torch.Tensor]:
    """Held-out images per source (a validation split: seeds the test images never use)."""
    return {name: make_images(name, 150, 100 + i) for i, name in enumerate(("real", "gen-a", "gen-b"))}




def build_registry(root: Any, *, log: Any = None) -> str:
    """A SQLite registry under ``root`` with the tiny world's components (classifier, a nearest-mean detector of
    gen-a, the key set; and a log origin when ``log = (path, origin, vkey)``); returns its URL. Only registered
    attributor classes here: the registry loads components by their saved names."""
    from pathlib import Path

    from genattr.registry import Registry
    from genattr.watermark.keys import save_keys

    root = Path(root)
    url = f"sqlite:///{root / 'registry.db'}"
    with Registry.open(url) as reg:
        for name in ("gen-a", "gen-b", "alice", "bob"):
            d = root / "models" / name
            d.mkdir(parents=True)
            (d / "model.safetensors").write_bytes(f"stand-in weights of {name}".encode())
            reg.add_model(name=name, kind="keyed-user" if name in ("alice", "bob") else "external",
                          architecture="synthetic", path=str(d))
        classifier().save(root / "clf")
        # standardised pixels: gen-a's noise-free corner pixel weighs so much that a clone without it is rejected
        NearestMean(standardize=True).fit({"gen-a": make_images("gen-a", 20, 2)}).save(root / "det")
        save_keys(keyset(), root / "keys")
        reg.add_component(kind="classifier", name="clf", path=str(root / "clf"), models=["real", "gen-a", "gen-b"])
        reg.add_component(kind="flipad-detector", name="det", path=str(root / "det"), models=["gen-a"])
        reg.add_component(kind="kim-keys", name="keys", path=str(root / "keys"), models=["alice", "bob"])
        if log is not None:
            path, origin, vkey = log
            reg.add_component(kind="log-origin", name="log", path=str(path),
                              meta={"origin": origin, "verifier_key": vkey})
    return url



def check_verdict_json(data: Any, *, envelope: bool = False) -> None:
    """Validate a verdict (or a results envelope) against the published JSON Schema with ``jsonschema`` when it is
    installed, else by a structural check of the same rules; AssertionError either way."""
    from genattr.unified import METHODS, SCHEMA_VERSION, results_json_schema, verdict_json_schema

    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if jsonschema is not None:
        try:
            jsonschema.validate(data, results_json_schema() if envelope else verdict_json_schema())
        except jsonschema.ValidationError as exc:
            raise AssertionError(f"not a valid verdict: {exc.message}") from None
        return
    items = data["results"] if envelope else [data]
    assert data["schema"] == SCHEMA_VERSION
    for v in items:
        if "error" in v:
            assert isinstance(v["error"], str) and "answer" not in v
            continue
        assert set(v) >= {"schema", "answer", "confidence", "model_id", "image_sha256", "evidence"}, "not a verdict"
        assert v["schema"] == SCHEMA_VERSION and isinstance(v["answer"], str) and v["answer"]
        assert 0 <= v["confidence"] <= 1, "confidence outside [0, 1]"
        assert v["model_id"] is None or isinstance(v["model_id"], str)
        for e in v["evidence"]:
            assert set(e) == {"method", "verdict", "p_value", "details"} and e["method"] in METHODS
            assert e["p_value"] is None or 0 <= e["p_value"] <= 1
            assert isinstance(e["details"], dict)


__all__ = ["SHAPE", "CornerDetector", "RowDecoder", "build_registry", "check_verdict_json", "classifier", "detector",
           "fingerprint_index", "keyset", "make_images", "validation"]
