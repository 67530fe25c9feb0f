"""The fingerprint step of ``genattr demo``: issue a demo user a fingerprinted instance of the shipped model
(Yu et al. 2022), register its code in a copy of the shipped index, then decode the instance's 8-bit samples and
real test images. Seconds: an instance is folded in milliseconds, decoding is one forward pass of F.

The shipped index is never written: the demo user goes into ``OUT/index``, a fresh copy made on every run.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from genattr.errors import DataError, GenattrError
from genattr.sampling import derive_seed

DEMO_USER = "demo-user"
VARIANT = "fp64"
REBUILD = ("genattr fingerprint train --bits 64 --paper-size --warm-start fmnist-dcgan-s0 --out runs/yu2022-64; "
           "genattr fingerprint ship --run runs/yu2022-64")


def fingerprint_demo(out: str | Path, *, shipped: str | Path | None = None, variant: str = VARIANT,
                     user: str = DEMO_USER, n: int = 16, n_real: int = 16, seed: int = 0, alpha: float = 0.01,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Issue ``user`` an instance of ``shipped/variant`` (default ``models/yu2022/fp64``) into ``out/user``,
    register its code in ``out/index`` (a copy of ``shipped/index``), decode ``n`` 8-bit samples of the instance
    and ``n_real`` Fashion-MNIST test images, and return what the registry says about each (registry rule k_N at
    ``alpha``). A :class:`~genattr.errors.DataError` when nothing is shipped; an IntegrityError when the shipped
    model does not match its manifest."""
    import torch

    from genattr.paths import models_dir
    from genattr.sampling import sample_8bit
    from genattr.watermark.fingerprint import FingerprintModel
    from genattr.watermark.fingerprint_index import FingerprintIndex, pack_bits, register
    from genattr.watermark.fingerprint_shipping import verify

    shipped = Path(shipped) if shipped is not None else models_dir("yu2022")
    model_dir, index_dir = shipped / variant, shipped / "index"
    if not (model_dir / "model.safetensors").is_file() or not (index_dir / "manifest.json").is_file():
        raise DataError(f"no shipped fingerprint model ({model_dir} and its index {index_dir}); train and ship "
                        f"one: {REBUILD}")
    verify(shipped, variant)  # sha256 against models/yu2022/manifest.json
    fp = FingerprintModel.load(model_dir)
    out = Path(out)
    idx_dir, inst_dir = out / "index", out / user
    for d in (idx_dir, inst_dir):  # this demo's own output of an earlier run: start afresh
        if d.exists():
            shutil.rmtree(d)
    # a verified load + save writes a clean copy (no lock file, one generation); the demo user goes only there
    shipped_index = FingerprintIndex.load(index_dir)
    shipped_index.save(idx_dir)
    code = np.random.default_rng(derive_seed(seed, "demo", "fingerprint-code", user)).integers(
        0, 2, fp.code_bits, dtype=np.uint8)  # seeded, not the CLI's CSPRNG: the demo is reproducible
    t0 = time.perf_counter()
    inst = fp.instance(code)
    instance_ms = 1000 * (time.perf_counter() - t0)
    register(idx_dir, user, code)
    inst.save_pretrained(inst_dir, extra={"fingerprint": "yu2022", "bits": fp.code_bits, "user": user})
    index = FingerprintIndex.load(idx_dir)
    log(f"fingerprint: issued {user} a {fp.code_bits}-bit instance in {instance_ms:.1f} ms → {inst_dir}; "
        f"registered in a copy of the shipped index ({len(index)} users) → {idx_dir}")

    sources: list[tuple[str, torch.Tensor]] = [(user, sample_8bit(inst, n, derive_seed(seed, "demo", "fp", user)))]
    notes: list[str] = []
    try:
        sources.append(("real", _real(n_real, seed)))
    except GenattrError as exc:
        notes.append(f"real images: {exc}")
    images: list[dict[str, Any]] = []
    for src, x in sources:
        bits = fp.decode(x).numpy()
        for m in index.identify(bits, rule="registry", alpha=alpha):
            images.append({"source": src, "user": m.name, "matched_bits": m.matched, "p_value": m.p_value,
                           "nearest": m.nearest})
    summary = [_summarise(src, [r for r in images if r["source"] == src], user) for src, _ in sources]
    return {"user": user, "bits": fp.code_bits, "variant": variant, "model": str(model_dir),
            "instance": str(inst_dir), "index": str(idx_dir), "shipped_index": str(index_dir),
            "code": pack_bits(code)[0].tobytes().hex(), "registered": len(index),
            "threshold_bits": index.threshold("registry", alpha), "alpha": alpha,
            "instance_ms": instance_ms, "summary": summary, "images": images, "notes": notes}


def _real(n: int, seed: int) -> Any:
    import torch

    from genattr.data import load_fashion_mnist

    x = load_fashion_mnist("test").to_model(32)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(derive_seed(seed, "demo", "fp-real")))
    return x[perm[:n]].clone()


def _summarise(source: str, rows: list[dict[str, Any]], user: str) -> dict[str, Any]:
    k = [r["matched_bits"] for r in rows]
    return {"source": source, "n": len(rows), "attributed": sum(r["user"] == user for r in rows),
            "unknown": sum(r["user"] is None for r in rows),
            "other": sum(r["user"] not in (None, user) for r in rows),
            "matched_min": min(k, default=0), "matched_max": max(k, default=0),
            "p_max": max((r["p_value"] for r in rows), default=float("nan")),
            "p_min": min((r["p_value"] for r in rows), default=float("nan"))}


__all__ = ["DEMO_USER", "REBUILD", "fingerprint_demo"]
