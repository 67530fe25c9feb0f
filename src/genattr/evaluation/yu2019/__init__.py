"""`genattr reproduce yu2019`: every experiment of Yu, Davis & Fritz (ICCV 2019) on the shipped zoo.

Experiments (each writes ``<out>/<name>/summary.json`` plus the evaluation runner's CSV/JSON/figures, and
the report ``<out>/README.md`` is rebuilt from whatever summaries exist):

* ``architectures`` — Table 1: {real, DCGAN, WGAN-GP, LSGAN, EBGAN}; ours, kNN, Eigenface, PRNU; FD ratio.
* ``seeds`` — Table 3: {real, DCGAN seeds 0..4}; same methods; FD ratio.
* ``components`` — Tables 4–5 on the seeds setup: pre-downsampling (low-frequency) and pre-downsampling
  residual (high-frequency) networks per downsampling factor, post-pooling networks per patch size.
* ``immunisation`` — Table 7 on the seeds setup: accuracy under each attack of the ``yu2019-table7`` grid
  before ("Atk") and after fine-tuning on attacked images ("Dfs"), for ours and PRNU.
* ``visnet`` — Table 3's "Our visNet" row and the Figure 7 fingerprint figure.

Data: train/validation images are sampled from each zoo generator with one seed stream and test images
with another (disjoint latents); real images come from the Fashion-MNIST train split (train/validation)
and the test split (test). Generated images are quantised to 8 bits, as when saved to PNG: real images
are 8-bit, so without this the classifier could separate "real" by quantisation alone."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from genattr.errors import ConfigError, GenattrError
from genattr.evaluation.yu2019.config import COMMAND, EXPERIMENTS, PAPER, TARGETS, Yu2019Config, quick_config
from genattr.evaluation.yu2019.data import DataCache
from genattr.evaluation.yu2019.experiments import (
    attribution_table,
    components,
    immunisation,
    load_or_train_base,
    load_shipped,
    make_baselines,
    make_ours,
    ship_model,
    visnet,
)
from genattr.evaluation.yu2019.report import write_report


# --------------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------------
def run_yu2019(out_dir: str | Path = "docs/results/yu2019", *, models_dir: str | Path | None = "models/yu2019",
               config: Yu2019Config | None = None, only: Sequence[str] | None = None, command: str = COMMAND,
               log: Callable[[str], None] | None = None) -> Path:
    """Run the selected experiments (default: all), write their summaries and rebuild the report.

    ``models_dir``: where the calibrated attribution nets of the architectures and seeds setups are shipped
    (None: do not ship). Returns the report path.
    """
    cfg = config or Yu2019Config()
    exps = list(only or EXPERIMENTS)
    bad = [e for e in exps if e not in EXPERIMENTS]
    if bad:
        raise ConfigError(f"unknown yu2019 experiment(s) {bad}; known: {', '.join(EXPERIMENTS)}")
    log = log or (lambda m: None)
    out = Path(out_dir)
    mdir = Path(models_dir) if models_dir is not None else None
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        caches: dict[tuple[Any, ...], DataCache] = {}
        base = prnu = None
        for exp in [e for e in EXPERIMENTS if e in exps]:
            t0 = time.perf_counter()
            ecfg = cfg.for_experiment(exp)
            key = (ecfg.real, ecfg.n_train, ecfg.n_val, ecfg.n_test, ecfg.image_size, ecfg.quantize, ecfg.seed)
            cache = caches.setdefault(key, DataCache(ecfg))  # same sizes → the very same images
            try:
                summary, run_base = _run_one(exp, ecfg, cache, out, mdir, base, prnu, command, log)
            except GenattrError as exc:  # e.g. a zoo model missing: report it and go on with the others
                log(f"{exp} skipped: {exc}")
                continue
            if run_base is not None:
                base, prnu = run_base
            summary["seconds"] = time.perf_counter() - t0
            summary["config"] = asdict(ecfg)
            summary["command"] = command
            (out / exp).mkdir(parents=True, exist_ok=True)
            (out / exp / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
            log(f"{exp} done in {summary['seconds']:.0f} s")
            write_report(out, command=command)
    finally:
        torch.set_num_threads(prev_threads)
    return write_report(out, command=command)


def _only(command: str, exp: str) -> str:
    """``command`` restricted to one experiment: the command that rebuilds just that shipped model."""
    import shlex

    parts = shlex.split(command)
    kept = [p for i, p in enumerate(parts) if p != "--only" and (i == 0 or parts[i - 1] != "--only")]
    return shlex.join([*kept, "--only", exp])


def _run_one(exp: str, cfg: Yu2019Config, cache: DataCache, out: Path, mdir: Path | None, base: Any, prnu: Any,
             command: str, log: Callable[[str], None]) -> tuple[dict[str, Any], tuple[Any, Any] | None]:
    """One experiment → (summary, (base, prnu) when it produced the seeds-setup models, else None)."""
    if exp in ("architectures", "seeds"):
        run = attribution_table(exp, getattr(cfg, exp), cfg, cache, out, log)
        if mdir is not None:
            ship_model(run.calibrated, mdir, exp, cfg=cfg, summary=run.summary, command=_only(command, exp))
        return run.summary, ((run.ours, run.prnu) if exp == "seeds" else None)
    if exp == "visnet":
        return visnet(cfg, cache, out, log), None
    new_base = None
    if base is None:
        base = load_or_train_base(cfg, cache, mdir, log)
        new_base = (base, prnu)
    summary = components(cfg, cache, out, base, log) if exp == "components" else \
        immunisation(cfg, cache, out, base, prnu, log)
    return summary, new_base


__all__ = ["COMMAND", "EXPERIMENTS", "PAPER", "TARGETS", "DataCache", "Yu2019Config", "load_shipped", "make_baselines",
           "make_ours", "quick_config", "run_yu2019", "ship_model", "write_report"]
