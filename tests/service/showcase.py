"""A real :class:`genattr.unified.Pipeline` with one tiny component of every kind (from the unified tests' synthetic
world, tests/unified/helpers.py) — a signed generation log, two registry keys, a fingerprint index, a classifier,
a detector, and stand-in generators for seed reconstruction — plus one image file per source, so the web page has every
kind of evidence to show. Built in a few seconds."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from tests.unified.helpers import RowDecoder, classifier, detector, fingerprint_index, keyset, make_images, validation

IDS = {"gen-a": "a" * 64, "gen-b": "b" * 64, "alice": "c" * 64, "bob": "d" * 64, "carol": "e" * 64}
#: file name → (source, expected answer) of the showcase images, in upload order
IMAGES = {"logged-by-gen-a.png": ("logged", "gen-a"), "alice-keyed.png": ("alice", "alice"),
          "carol-fingerprinted.png": ("carol", "carol"), "gen-a-sample.png": ("gen-a", "gen-a"),
          "unregistered-gan.png": ("stranger", "unknown")}


class PatternGenerator(nn.Module):
    """A stand-in generator of one synthetic source: that source's mean image plus a small latent-driven
    variation, so seed reconstruction finds a close latent for the source's own images."""

    def __init__(self, kind: str, latent_dim: int = 8, seed: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("base", make_images(kind, 64, 300 + seed).mean(0, keepdim=True))
        g = torch.Generator().manual_seed(seed)
        self.mix = nn.Parameter(0.05 * torch.randn(latent_dim, 32 * 32, generator=g))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.base + (z @ self.mix).view(-1, 1, 32, 32)).clamp(-1, 1)


def png_of(x: torch.Tensor) -> bytes:
    from PIL import Image

    arr = ((x[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _log(directory: Path, image: torch.Tensor) -> tuple[Path, bytes]:
    from genattr.ledger import Entry, TransparencyLog, commit_seed, generate_signer, pixel_hash, seed_material

    log_key, owner = generate_signer("example.com/genattr-showcase"), generate_signer("owner.example/gen-a")
    u8 = ((image[0, 0] + 1) * 127.5).round().to(torch.uint8).numpy()
    path = directory / "log.db"
    with TransparencyLog.create(path, "example.com/genattr-showcase", log_key.vkey, owners=[owner.vkey]) as log:
        e = Entry.create(model_id=bytes.fromhex(IDS["gen-a"]), output_hash=pixel_hash(u8),
                         seed_commitment=commit_seed(seed_material(0), b"\x01" * 32), owner=owner,
                         timestamp_ms=1_700_000_000_000)
        log.append([e])
        log.sign_checkpoint(log_key)
    return path, log_key.vkey


def build_showcase(directory: Path) -> tuple[object, dict[str, bytes]]:
    """(pipeline, {file name: PNG bytes})."""
    from genattr.unified import Pipeline, Policy

    logged = make_images("real", 1, 42)
    log_path, vkey = _log(directory, logged)
    gens = {name: PatternGenerator(name, seed=i) for i, name in enumerate(("gen-a", "gen-b"))}
    policy = Policy(alpha=0.02, alpha_detect=0.05, deep_steps=60, deep_restarts=2)
    pipe = Pipeline.from_parts(classifiers={"demo-classifier": classifier()}, detectors={"gen-a-detector": detector()},
                               keys={"demo-keys": keyset()}, fingerprints={"demo-fingerprints": (RowDecoder(),
                                                                                                fingerprint_index())},
                               logs={"demo-log": (log_path, vkey)}, policy=policy, models=IDS, generators=gens)
    pipe.calibrate(validation())
    files = {}
    for i, (fname, (source, _)) in enumerate(IMAGES.items()):
        files[fname] = png_of((logged if source == "logged" else make_images(source, 1, 700 + i))[0])
    return pipe, files


__all__ = ["IDS", "IMAGES", "PatternGenerator", "build_showcase", "png_of"]
