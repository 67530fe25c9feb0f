"""Shipping the fingerprinting model: ``models/yu2022/`` with a sha256 manifest and example registrations.

Layout::

    models/yu2022/manifest.json     per variant: bits, config, file sha256, last-epoch metrics, rebuild command;
                                    the registry: user count, manifest sha256, how the examples were drawn
    models/yu2022/<variant>/        FingerprintModel.save (config.json + model.safetensors: E, G, F; no D)
    models/yu2022/index/            FingerprintIndex with the example users ``example-000`` … (codes from a
                                    fixed seed, so each example instance can be rebuilt: ``example_instance``)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from genattr.errors import ConfigError, DataError, IntegrityError

MANIFEST = "manifest.json"
EXAMPLE_SEED = 20220425


def _sha256(path: Path) -> str:
    from genattr.zoo import sha256_file

    return sha256_file(path)


def example_codes(n: int, bits: int, seed: int = EXAMPLE_SEED) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, size=(n, bits), dtype=np.uint8)


def read_manifest(dest: str | Path) -> dict[str, Any]:
    p = Path(dest) / MANIFEST
    if not p.is_file():
        return {"format": "genattr-yu2022-models", "variants": {}}
    try:
        man = json.loads(p.read_text())
        if not isinstance(man.get("variants"), dict):
            raise ValueError("no 'variants' mapping")
    except (json.JSONDecodeError, ValueError) as exc:
        raise DataError(f"{p}: malformed manifest ({exc})") from exc
    return man


def ship(model_dir: str | Path, dest: str | Path, *, variant: str = "fp64", n_examples: int = 100,
         rebuild: str = "", force: bool = False) -> dict[str, Any]:
    """Copy a trained model into ``dest/variant``, register ``n_examples`` example codes in ``dest/index``
    (first variant only, same bits) and write the manifest. Returns the manifest."""
    from genattr.watermark.fingerprint import FingerprintModel
    from genattr.watermark.fingerprint_index import MANIFEST as INDEX_MANIFEST
    from genattr.watermark.fingerprint_index import FingerprintIndex, locked

    src, dest = Path(model_dir), Path(dest)
    model = FingerprintModel.load(src)  # validates before anything is written
    target = dest / variant
    if target.exists() and not force:
        raise ConfigError(f"{target} exists; pass force=True (--force) to replace it")
    tmp = dest / f".{variant}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(src / name, tmp / name)
    if target.exists():
        shutil.rmtree(target)
    tmp.replace(target)
    meta = json.loads((target / "config.json").read_text())
    history = (meta.get("extra") or {}).get("history") or [{}]
    man = read_manifest(dest)
    tc = (meta.get("extra") or {}).get("train_config") or {}
    man["variants"][variant] = {
        # a --no-fingerprint model (the FD baseline) has no working decoder: registries must not run it
        "decoder": tc.get("fingerprint", True) is not False,
        "bits": model.code_bits, "config": model.config, "file_sha256": _sha256(target / "model.safetensors"),
        "last_epoch": {k: history[-1].get(k) for k in ("epoch", "bit_accuracy", "word_accuracy", "fd")},
        "kept_epoch": (meta.get("extra") or {}).get("kept_epoch", history[-1].get("epoch")),
        "rebuild": rebuild or rebuild_command(tc, variant, model.code_bits),
    }
    idx_dir = dest / "index"
    with locked(idx_dir):
        idx = FingerprintIndex.load(idx_dir) if (idx_dir / INDEX_MANIFEST).is_file() else None
        if idx is None:
            idx = FingerprintIndex(model.code_bits)
            idx.add_many([f"example-{i:03d}" for i in range(n_examples)], example_codes(n_examples, model.code_bits))
            idx.save(idx_dir)
        elif idx.code_bits != model.code_bits:
            raise ConfigError(f"{idx_dir} holds {idx.code_bits}-bit codes; {variant} uses {model.code_bits}")
    man["index"] = {"bits": idx.code_bits, "users": len(idx), "examples": n_examples, "example_seed": EXAMPLE_SEED,
                    "manifest_sha256": _sha256(idx_dir / INDEX_MANIFEST)}
    tmp_man = dest / (MANIFEST + ".tmp")
    tmp_man.write_text(json.dumps(man, indent=2, sort_keys=True) + "\n")
    tmp_man.replace(dest / MANIFEST)
    return man


def rebuild_command(tc: dict[str, Any], variant: str, bits: int) -> str:
    """The commands that rebuild a shipped variant from its recorded training config: what it started from
    (``--warm-start`` / ``--init-from``, relative to the repository when inside it), its epochs, and the
    immunisation perturbation; then the ship step."""
    import shlex

    run = f"runs/yu2022-{variant.removeprefix('fp')}"  # fp64 → runs/yu2022-64, fp64-immune-blur → …-64-immune-blur
    cmd = ["genattr", "fingerprint", "train", "--bits", str(tc.get("code_bits", bits))]
    if tc.get("epochs"):
        cmd += ["--epochs", str(tc["epochs"])]
    for key, flag in (("warm_start", "--warm-start"), ("init_from", "--init-from")):
        if tc.get(key):
            src = Path(str(tc[key]))
            cmd += [flag, str(src.relative_to(Path.cwd()) if src.is_relative_to(Path.cwd()) else src)]
    if tc.get("perturb"):
        cmd += ["--perturb", json.dumps(tc["perturb"], separators=(",", ":"))]
    if tc.get("code_pool"):
        cmd += ["--code-pool", str(tc["code_pool"])]
    from genattr.watermark.fingerprint_training import FingerprintTrainConfig

    default = FingerprintTrainConfig()  # flags are written only where the run left a default
    if tc.get("lambdas") and [float(v) for v in tc["lambdas"]] != list(default.lambdas):
        cmd += ["--lambdas", ",".join(f"{float(v):g}" for v in tc["lambdas"])]
    if tc.get("ema_decay"):
        cmd += ["--ema", f"{tc['ema_decay']:g}"]
    if tc.get("decoder_only"):
        cmd += ["--decoder-only"]
    if tc.get("fingerprint") is False:
        cmd += ["--no-fingerprint"]
    if tc.get("decoder_warmup_steps", default.decoder_warmup_steps) != default.decoder_warmup_steps \
            and tc.get("fingerprint", True):
        cmd += ["--decoder-warmup", str(tc["decoder_warmup_steps"])]
    cmd += ["--out", run]
    return f"{shlex.join(cmd)} && genattr fingerprint ship --run {run} --variant {variant} --force"


def verify(dest: str | Path, variant: str) -> Path:
    """sha256 of a shipped variant against the manifest; returns its directory."""
    dest = Path(dest)
    entry = read_manifest(dest)["variants"].get(variant)
    d = dest / variant
    if entry is None:
        return d  # not a shipped variant (a user's own run): nothing to verify against
    got = _sha256(d / "model.safetensors") if (d / "model.safetensors").is_file() else "missing"
    if got != entry["file_sha256"]:
        raise IntegrityError(f"{d}: model.safetensors sha256 does not match {dest / MANIFEST} (corrupt or modified)")
    return d


def example_instance(model: Any, i: int, n_examples: int = 100) -> Any:
    """The i-th example user's generator instance (codes are drawn from the fixed example seed)."""
    if not 0 <= i < n_examples:
        raise ConfigError(f"example index must lie in [0, {n_examples})")
    return model.instance(example_codes(n_examples, model.code_bits)[i])


__all__ = ["EXAMPLE_SEED", "example_codes", "example_instance", "read_manifest", "rebuild_command", "ship",
           "verify"]
