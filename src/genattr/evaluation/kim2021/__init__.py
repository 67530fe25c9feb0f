"""`genattr reproduce kim2021`: Kim, Ren & Yang (ICLR 2021) on the zoo DCGAN (Fashion-MNIST 32×32).

Experiments (each writes ``<out>/<name>/summary.json`` and figures; ``<out>/README.md`` is rebuilt from the
summaries that exist, with the paper's MNIST numbers beside ours):

* ``table1`` — 20 users with orthogonal keys vs 20 at 45°: D̄, A, ‖Δx‖ (Eq. 3), FD vs real (FD0 for G0) and
  FD vs G0.
* ``theory`` — Fig. 2a/2b: Algorithm-1 users; Eq. 6 (γ vs its RHS) and Eq. 7 RHS for every key pair.
* ``capacity`` — Fig. 2c: 100 orthogonal keys; o_n and d_max for all, D and A for every 10th user trained.
* ``robust`` — Table 2: D, A before/after robust training under each worst-case post-process (kim2021-worst
  grid; blur also at σ/2), ‖Δx‖ and FD after.
* ``ablation_c`` — Tables 5–6: C ∈ {10, 100, 1000}: D, A, ‖Δx‖, FD, and robustness per post-process.
* ``masked`` — keys restricted to the 28×28 content area (the −1 border is a shortcut) vs unmasked keys, clean
  and under cropping.
* ``grids`` — sample grids: G0 vs keyed users vs robust users (same z), with |Δx| maps.
* ``simulation`` — a SIMULATION (no training) of up to 10³ users, x = G0(z) + γφ + ε quantised to 8 bits, with
  γ and the residual's RMS measured on the table1 users: A vs number of users and vs key angle, beside the
  measured fine-tuning cost per user.

Data: keys are fitted on the Fashion-MNIST train split and root samples, checked on the test split and fresh
root samples; D uses the test split; every generated image is quantised to 8 bits before it is verified
(post-processed images are quantised again). Post-processes attack generated images only; the false-positive
rate of the keys on attacked *real* images is reported beside.

Modules: :mod:`.config` (settings, paper numbers), :mod:`.context` (data, keys, cached users), :mod:`.measure`,
:mod:`.experiments`, :mod:`.simulation`, :mod:`.report`, :mod:`.ship`; the driver is here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from genattr.errors import ConfigError
from genattr.evaluation.kim2021.config import ATTACKS, COMMAND, EXPERIMENTS, PAPER, ROBUST, Kim2021Config, quick_config
from genattr.evaluation.kim2021.context import Context
from genattr.evaluation.kim2021.experiments import (
    exp_ablation_c,
    exp_capacity,
    exp_grids,
    exp_masked,
    exp_robust,
    exp_table1,
    exp_theory,
)
from genattr.evaluation.kim2021.measure import cost_summary, mean_std, measure
from genattr.evaluation.kim2021.report import write_figures, write_report
from genattr.evaluation.kim2021.ship import ship
from genattr.evaluation.kim2021.simulation import exp_simulation

_EXPERIMENT_FNS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "table1": exp_table1, "theory": exp_theory, "capacity": exp_capacity, "robust": exp_robust,
    "ablation_c": exp_ablation_c, "masked": exp_masked, "simulation": exp_simulation}


def reproduce_kim2021(config: Kim2021Config | None, out_dir: str | Path, *, models_dir: str | Path | None = None,
                      only: Sequence[str] | None = None, command: str = COMMAND,
                      log: Callable[[str], None] = print) -> Path:
    """Run the experiments (all, or ``only``), write ``<out_dir>/<exp>/summary.json`` + figures and the
    README; ship ``models_dir`` when given. Returns the README path."""
    cfg = config or Kim2021Config()
    chosen = list(only) if only else list(EXPERIMENTS)
    unknown = [e for e in chosen if e not in EXPERIMENTS]
    if unknown:
        raise ConfigError(f"unknown kim2021 experiment(s) {unknown}; choose from {', '.join(EXPERIMENTS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(cfg, log)
    for name in EXPERIMENTS:
        if name not in chosen:
            continue
        t0 = time.perf_counter()
        log(f"kim2021: {name} …")
        sub = out_dir / name
        sub.mkdir(exist_ok=True)
        res = exp_grids(ctx, sub) if name == "grids" else _EXPERIMENT_FNS[name](ctx)
        figs = write_figures(name, res, sub)
        summary = {"experiment": name, "seconds": time.perf_counter() - t0, "config": asdict(cfg),
                   "command": command, "figures": figs, "paper": PAPER.get(name), "result": res}
        tmp = sub / "summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2, default=float, allow_nan=True) + "\n")
        tmp.replace(sub / "summary.json")
    if models_dir is not None:
        log(f"kim2021: shipping → {models_dir}")
        ship(ctx, Path(models_dir), command)
    return write_report(out_dir, command)


__all__ = ["ATTACKS", "COMMAND", "EXPERIMENTS", "PAPER", "ROBUST", "Context", "Kim2021Config", "cost_summary",
           "exp_ablation_c", "exp_capacity", "exp_grids", "exp_masked", "exp_robust", "exp_simulation", "exp_table1",
           "exp_theory", "mean_std", "measure", "quick_config", "reproduce_kim2021", "ship", "write_figures",
           "write_report"]
