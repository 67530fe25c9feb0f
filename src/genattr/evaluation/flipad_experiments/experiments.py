"""FLIPAD reproduction: one fit + evaluation, Tables 1-3 and Fig. 4."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genattr import REAL
from genattr.data import real_images
from genattr.evaluation.flipad_experiments.config import COMMAND, FlipadConfig
from genattr.evaluation.flipad_experiments.data import (
    _method_params,
    _subset,
    make_attributor,
    pair_metrics,
    sample_model,
)
from genattr.evaluation.flipad_experiments.results import save_experiment
from genattr.sampling import derive_seed

# -- one fit + evaluation ---------------------------------------------------------------------------------------


@dataclass
class FitResult:
    rows: list[dict[str, Any]]
    timings: dict[str, float]
    attributor: Any


def run_one(method: str, g: Any, g_name: str, test_sources: Mapping[str, torch.Tensor], *, config: FlipadConfig,
            run: int, experiment: str, negatives: torch.Tensor, positives: torch.Tensor | None,
            validation: torch.Tensor, g_test: torch.Tensor, perturbation: str = "none") -> FitResult:
    """Fit ``method`` on G, calibrate (G.1), score G's test samples and each G' source; rows per pair."""
    seed = derive_seed(config.seed, experiment, run, g_name, method, perturbation)
    att = make_attributor(method, config, seed)
    t0 = time.perf_counter()
    att.fit(generator=g, negatives=negatives, name=g_name,
            **({"positives": positives} if positives is not None and method != "sm-inv" else {}))
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    att.calibrate({g_name: validation}, target_fnr=config.target_fnr)
    t_cal = time.perf_counter() - t0
    tau = float(att.thresholds_[0])
    t0 = time.perf_counter()
    s_pos = att.decision_function(g_test)[:, 0]
    t_score = time.perf_counter() - t0
    rows = []
    for other, x in test_sources.items():
        m = pair_metrics(s_pos, att.decision_function(x)[:, 0], tau)
        for metric, value in m.items():
            rows.append({"experiment": experiment, "run": run, "model": g_name, "method": method, "other": other,
                         "perturbation": perturbation, "metric": metric, "value": value, "n": int(x.shape[0])})
    per_1k = 1000 * t_score / max(g_test.shape[0], 1)
    # end to end as the issue asks: fit + calibrate (n_val images) + score 1k test images
    timings = {"fit_s": t_fit, "calibrate_s": t_cal, "score_s_per_1k": per_1k, "end_to_end_s": t_fit + t_cal + per_1k}
    timings.update({k: float(v) for k, v in getattr(att, "timings_", {}).items() if k.endswith("_s")})
    return FitResult(rows, timings, att)


# -- experiments ------------------------------------------------------------------------------------------------


def ship(res: FitResult, g_name: str, config: FlipadConfig, models_dir: Path, command: str,
         experiment: str) -> Path:
    """Ship the first run's calibrated FLIPAD for G (used by `genattr demo` and `genattr flipad score`)."""
    from genattr.attribution.shipping import ship_attributor

    acc = {r["other"]: r["value"] for r in res.rows if r["metric"] == "accuracy"}
    return ship_attributor(res.attributor, models_dir, g_name, {
        "target_fnr": config.target_fnr, "seed": config.seed, "command": command,
        "data": {"positives": f"{config.n_train} 8-bit quantised samples of {g_name} (genattr zoo, sha256-verified)",
                 "negatives": f"{config.n_train} Fashion-MNIST train images (32×32)",
                 "validation": f"{config.n_val} fresh samples of {g_name} (threshold at fnr {config.target_fnr})"},
        "test_accuracy": {"experiment": experiment, "run": 0, "n_test": config.n_test, "vs": acc},
        "timings": res.timings})


def _load(name: str) -> Any:
    from genattr import zoo

    return zoo.load(name)


def _n_test(method: str, config: FlipadConfig) -> int:
    return min(config.n_test, config.sm_inv_n_test) if method == "sm-inv" else config.n_test


def _runs(method: str, config: FlipadConfig) -> int:
    return min(config.runs, config.sm_inv_runs) if method == "sm-inv" else config.runs


def _single_model_experiment(experiment: str, models: Sequence[str], others_of: Callable[[str], list[str]],
                             methods: Sequence[str], config: FlipadConfig, out: Path,
                             log: Callable[[str], None], *, loader: Callable[[str], Any] = _load,
                             real_train: torch.Tensor | None = None, real_test: torch.Tensor | None = None,
                             figures: bool = False, models_dir: Path | None = None,
                             command: str = COMMAND) -> list[dict[str, Any]]:
    real_train = real_images("fashion-mnist", "train") if real_train is None else real_train
    real_test = real_images("fashion-mnist", "test") if real_test is None else real_test
    gens = {n: loader(n) for n in {*models, *(o for m in models for o in others_of(m) if o != REAL)}}
    rows: list[dict[str, Any]] = []
    timing_rows: list[dict[str, Any]] = []
    for run in range(config.runs):
        for g_name in models:
            neg = _subset(real_train, config.n_train, derive_seed(config.seed, experiment, run, "negatives"))
            val = sample_model(gens[g_name], config.n_val, derive_seed(config.seed, experiment, run, "val", g_name))
            for method in methods:
                if run >= _runs(method, config):
                    continue
                n_test = _n_test(method, config)
                n_tr = int(_method_params(method, config)[1].get("n_train", config.n_train))
                # same seed: the first n_train negatives are the shared ones
                neg_m = neg if n_tr == config.n_train else _subset(
                    real_train, n_tr, derive_seed(config.seed, experiment, run, "negatives"))
                g_test = sample_model(gens[g_name], n_test, derive_seed(config.seed, experiment, run, "test", g_name))
                sources = {o: (_subset(real_test, n_test, derive_seed(config.seed, experiment, run, "test", o))
                               if o == REAL else
                               sample_model(gens[o], n_test, derive_seed(config.seed, experiment, run, "test", o)))
                           for o in others_of(g_name)}
                log(f"[{experiment}] run {run + 1}/{config.runs} · G = {g_name} · {method}")
                # SM-Inv: calibrate on as many images as it tests on (each costs restarts × steps G passes)
                v = val[:n_test] if method == "sm-inv" else val
                res = run_one(method, gens[g_name], g_name, sources, config=config, run=run, experiment=experiment,
                              negatives=neg_m, positives=None, validation=v, g_test=g_test)
                rows += res.rows
                timing_rows.append({"run": run, "model": g_name, "method": method, **res.timings})
                if figures and run == 0 and method == "flipad":
                    fig4(res.attributor, g_name, {g_name: g_test, **sources}, out / "figures", config.n_figure)
                if models_dir is not None and run == 0 and method == "flipad" and g_name in config.ship_models:
                    ship(res, g_name, config, models_dir, command, experiment)
    return save_experiment(out / experiment, rows, timing_rows, methods, config, command)


def table3(config: FlipadConfig, out: Path, log: Callable[[str], None], *, loader: Callable[[str], Any] = _load,
           real_train: torch.Tensor | None = None, real_test: torch.Tensor | None = None,
           command: str = COMMAND) -> list[dict[str, Any]]:
    """Immunised setting: every image (train, validation, test) perturbed by the same grid entry."""
    from genattr.perturbations import get_grid

    real_train = real_images("fashion-mnist", "train") if real_train is None else real_train
    real_test = real_images("fashion-mnist", "test") if real_test is None else real_test
    models = config.table3_models or config.models
    config = replace(config, n_train=config.table3_n_train, n_val=min(config.n_val, config.table3_n_test),
                     n_test=config.table3_n_test, runs=config.table3_runs)
    gens = {n: loader(n) for n in {*models, *config.models}}
    rows: list[dict[str, Any]] = []
    for entry in get_grid(config.grid):
        if entry.key == "none" or (config.grid_keys and entry.key not in config.grid_keys):
            continue

        def perturb(x: torch.Tensor, *parts: Any, entry: Any = entry) -> torch.Tensor:
            g = torch.Generator().manual_seed(derive_seed(config.seed, "table3", entry.key, *parts))
            with torch.no_grad():
                return entry.transform(x, g).clamp(-1, 1)

        for run in range(config.runs):
            for g_name in models:
                e = f"table3/{entry.key}"
                neg = perturb(_subset(real_train, config.n_train, derive_seed(config.seed, e, run, "neg")), run, "neg")
                pos = perturb(sample_model(gens[g_name], config.n_train, derive_seed(config.seed, e, run, "pos",
                                                                                     g_name)), run, "pos", g_name)
                val = perturb(sample_model(gens[g_name], config.n_val, derive_seed(config.seed, e, run, "val", g_name)),
                              run, "val", g_name)
                g_test = perturb(sample_model(gens[g_name], config.n_test, derive_seed(config.seed, e, run, "test",
                                                                                       g_name)), run, "test", g_name)
                sources = {}
                for o in (REAL, *[m for m in config.models if m != g_name]):
                    x = _subset(real_test, config.n_test, derive_seed(config.seed, e, run, "test", o)) if o == REAL \
                        else sample_model(gens[o], config.n_test, derive_seed(config.seed, e, run, "test", o))
                    sources[o] = perturb(x, run, "test", o)
                for method in config.table3_methods:
                    log(f"[table3] {entry.key} · run {run + 1}/{config.runs} · G = {g_name} · {method}")
                    res = run_one(method, gens[g_name], g_name, sources, config=config, run=run, experiment="table3",
                                  negatives=neg, positives=pos, validation=val, g_test=g_test, perturbation=entry.key)
                    rows += res.rows
    return save_experiment(out / "table3", rows, None, config.table3_methods, config, command)


# -- Fig. 4 ------------------------------------------------------------------------------------------------------


def fig4(att: Any, g_name: str, sources: Mapping[str, torch.Tensor], out_dir: Path, n: int) -> Path:
    """Mean reconstructed activations (eq. 5) per source for the channel where G's and the first other
    source's (real) means differ most, next to z̄ of that channel (as Fig. 4 / Fig. 13)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = {name: att.invert(x[:n]).mean(0) for name, x in sources.items()}
    names = list(means)
    ref = names[1] if len(names) > 1 else names[0]
    c = int((means[g_name] - means[ref]).abs().flatten(1).sum(1).argmax())
    panels = [("z̄ (mean activation)", att.z_bar_[c])] + [(nm, means[nm][c]) for nm in names]
    lo = min(float(p.min()) for _, p in panels)
    hi = max(float(p.max()) for _, p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.6))
    for ax, (title, img) in zip(np.atleast_1d(axes), panels, strict=True):
        ax.imshow(img.numpy(), vmin=lo, vmax=hi, cmap="viridis")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"FLIPAD, G = {g_name}: mean reconstructed channel {c}", fontsize=9)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"fig4_{g_name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
