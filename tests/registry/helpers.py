"""Helpers for the registry tests: stand-in weights, a tiny fake checkout, row counts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from genattr.registry import Registry


def fake_weights(directory: Path, name: str = "model.safetensors", content: bytes | None = None) -> str:
    """A stand-in weights file (the registry only hashes it); returns its sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    data = content if content is not None else f"weights of {directory.name}".encode()
    (directory / name).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _attributor_dir(d: Path, attributor: str, candidates: list[str]) -> dict[str, str]:
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"name": attributor, "class": "Fake", "params": {}}))
    (d / "state.json").write_text(json.dumps({"json": {"candidates_": candidates, "image_shape_": [1, 32, 32],
                                                       "calibration_": {"mode": "fnr", "target": 0.05}}}))
    fake_weights(d, "state.safetensors", f"state of {d.name}".encode())
    return {f: _sha(d / f) for f in ("config.json", "state.json", "state.safetensors")}


def build_fake_repo(root: Path, *, kim: bool = True, yu2022: bool = True) -> dict[str, Any]:
    """zoo/ (two tiny real generators) + models/yu2019, models/flipad, models/kim2021, models/yu2022 laid out and
    manifested as the shipping code writes them (weights and states are stand-in bytes)."""
    from tests.conftest import build_tiny_zoo

    (root / "zoo").mkdir(parents=True)
    zoo = build_tiny_zoo(root / "zoo")
    models = root / "models"
    y19 = {"closed": _attributor_dir(models / "yu2019" / "closed", "gan-fingerprint-classifier",
                                     ["real", "tiny-dcgan", "tiny-lsgan"])}
    (models / "yu2019" / "manifest.json").write_text(json.dumps(
        {"format": 1, "models": {n: {"attributor": "gan-fingerprint-classifier", "path": n, "files": f,
                                     "test_accuracy": 0.9} for n, f in y19.items()}}))
    fl = {"tiny-dcgan": _attributor_dir(models / "flipad" / "tiny-dcgan", "flipad", ["tiny-dcgan"])}
    (models / "flipad" / "manifest.json").write_text(json.dumps(
        {"format": 1, "models": {n: {"attributor": "flipad", "path": n, "files": f} for n, f in fl.items()}}))
    if kim:
        s = models / "kim2021" / "orthogonal"
        fake_weights(s, "keys.safetensors", b"two keys")
        (s / "keys.json").write_text(json.dumps({"format": 1, "users": ["alice", "bob"], "angle_deg": 90.0}))
        fake_weights(s / "alice", content=b"alice's keyed model")  # bob has a key but no model yet
        (s / "alice" / "config.json").write_text(json.dumps({"arch": "dcgan", "extra": {"kim2021": {"user": "alice"}}}))
        files = {str(f.relative_to(models / "kim2021")): _sha(f) for f in sorted(s.rglob("*")) if f.is_file()}
        (models / "kim2021" / "manifest.json").write_text(json.dumps({"format": 1, "sets": {"orthogonal": files}}))
    if yu2022:
        from genattr.watermark.fingerprint_index import FingerprintIndex

        y = models / "yu2022"
        fp = fake_weights(y / "fp16", content=b"fingerprint model")
        idx = FingerprintIndex(16)
        idx.add_many(["example-000", "example-001", "example-002"], [[0, 1] * 8, [1, 0] * 8, [1] * 8 + [0] * 8])
        idx.save(y / "index")
        (y / "manifest.json").write_text(json.dumps(
            {"variants": {"fp16": {"bits": 16, "file_sha256": fp, "rebuild": "genattr fingerprint train --bits 16"},
                          "baseline": {"bits": 16, "decoder": False, "file_sha256": fake_weights(
                              y / "baseline", content=b"same recipe, no fingerprint")}},
             "index": {"bits": 16, "users": 3, "manifest_sha256": _sha(y / "index" / "manifest.json")}}))
    return zoo


def row_counts(reg: Registry) -> dict[str, int]:
    """Rows per registry table (to assert that a failed write left nothing behind)."""
    import sqlalchemy as sa

    from genattr.registry.schema import Base

    with reg._db.engine.connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in Base.metadata.sorted_tables}
