"""`genattr reproduce flipad`: the single-model attribution experiments of Laszkiewicz et al. (ICML 2024).

Experiments (each writes ``<out>/<name>/rows.csv`` + ``summary.json``; ``<out>/README.md`` is rebuilt from
whatever experiments exist, with the paper's CelebA / LSUN numbers beside ours):

* ``table1`` — each of the zoo's one-per-architecture models (``genattr.zoo.architecture_models``) as G,
  negatives real; accuracy of G vs each
  G' ∈ {real, the other three} (Table 8 detail), averaged over G' (Table 1), AUC (Table 9), run times
  (Table 6) and Fig. 4-style figures of mean reconstructed activations per source.
* ``table2`` — G = dcgan-s0, G' ∈ dcgan-s1..s4 (same architecture and data, other seeds), negatives real.
* ``table3`` — immunised: training, validation and test images all perturbed by the same
  ``flipad-table3`` perturbation; accuracy averaged over all G and G'.

Protocol (§5.1, G.1): n_train samples of G (label +1) and n_train real training images (label −1) train the
method; the threshold is the (1 − fnr)-quantile of the anomaly scores of n_val held-out samples of G
(fnr = 0.005); the accuracy of a pair (G, G') is the mean of "G's n_test test samples accepted" and "G''s
n_test samples rejected" (equal sizes). Repeated ``runs`` times with independent data (SM-Inv once, as in
the paper). Generated images are quantised to 8 bits like the real ones (see attributors' docstring)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from genattr import REAL
from genattr.errors import ConfigError
from genattr.evaluation.flipad_experiments.config import (
    COMMAND,
    EXPERIMENTS,
    METHODS,
    PAPER,
    PAPER_METHODS,
    FlipadConfig,
    quick_config,
)
from genattr.evaluation.flipad_experiments.data import make_attributor, pair_metrics, sample_model
from genattr.evaluation.flipad_experiments.experiments import (
    _load,
    _single_model_experiment,
    fig4,
    run_one,
    ship,
    table3,
)
from genattr.evaluation.flipad_experiments.report import merge_results, write_report
from genattr.evaluation.flipad_experiments.results import read_rows, save_experiment, summarize


def reproduce_flipad(out: str | Path = "docs/results/flipad", *, config: FlipadConfig | None = None,
                     only: Sequence[str] | None = None, command: str = COMMAND,
                     log: Callable[[str], None] = print, loader: Callable[[str], Any] = _load,
                     real_train: torch.Tensor | None = None, real_test: torch.Tensor | None = None,
                     models_dir: str | Path | None = None) -> Path:
    """Run the experiments (all, or ``only``) and rebuild the report; returns the README path.

    ``models_dir``: where Table 1's first-run FLIPAD fits of ``config.ship_models`` are shipped (None: not saved).

    ``loader`` (zoo name → generator) and ``real_train`` / ``real_test`` exist for tests and custom zoos.
    """
    config = config or FlipadConfig()
    todo = list(only or EXPERIMENTS)
    bad = [e for e in todo if e not in EXPERIMENTS]
    if bad:
        raise ConfigError(f"unknown experiments {bad}; known: {', '.join(EXPERIMENTS)}")
    unknown = [m for m in (*config.methods, *config.table2_methods, *config.table3_methods) if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    t0 = time.perf_counter()
    try:
        data = {"loader": loader, "real_train": real_train, "real_test": real_test}
        if "table1" in todo:
            models = list(config.models)
            _single_model_experiment("table1", models, lambda g: [REAL, *[m for m in models if m != g]],
                                     config.methods, config, out, log, figures="flipad" in config.methods,
                                     models_dir=None if models_dir is None else Path(models_dir), command=command,
                                     **data)
        if "table2" in todo:
            _single_model_experiment("table2", [config.seed_model], lambda g: list(config.seed_others),
                                     config.table2_methods, config, out, log, command=command, **data)
        if "table3" in todo:
            table3(config, out, log, command=command, **data)
    finally:
        torch.set_num_threads(old_threads)
    readme = write_report(out, config, command)
    log(f"flipad experiments {', '.join(todo)} done in {(time.perf_counter() - t0) / 60:.1f} min → {readme}")
    return readme


__all__ = ["EXPERIMENTS", "METHODS", "PAPER", "PAPER_METHODS", "FlipadConfig", "fig4", "make_attributor",
           "merge_results", "pair_metrics", "quick_config", "read_rows", "reproduce_flipad", "run_one", "sample_model",
           "save_experiment", "ship", "summarize", "write_report"]
