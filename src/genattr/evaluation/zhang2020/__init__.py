"""Every experiment of Zhang et al. 2020 ("Not my deepfake", seed reconstruction) on the Fashion-MNIST zoo.

    from genattr.evaluation.zhang2020 import Zhang2020Config, reproduce_zhang2020
    reproduce_zhang2020(Zhang2020Config(), "docs/results/zhang2020")    # = genattr reproduce zhang2020

Experiments (each writes ``<out>/<name>/summary.json`` and figures; ``<out>/README.md`` is rebuilt from
whatever summaries exist, so experiments can be run one at a time with ``experiments=...``):

* ``two_arch`` — App. A replica: two architectures (DCGAN vs LSGAN), pixel ℓ2, 1 restart, 500 steps.
* ``distance_selection`` — pixel vs feature ℓ2 × constant vs cosine Adam step on a validation seed stream:
  the evidence for the ``distance`` and ``lr_schedule`` settings.
* ``three_arch`` — DCGAN, LSGAN, WGAN-GP at the ``distance`` setting (the paper's feature ℓ2 by default: zoo
  classifier features); one run with ``max_restarts`` restarts gives the accuracy at every r ≤ max_restarts
  (Fig. 5; restart pools nest) and the headline at 3 restarts; ``three_arch_other_distance`` adds the other
  distance at 3 restarts.
* ``perturbations`` — Table I (blur k 3–7, noise, mirror, random crop 90–100 %, rotation 0–5°, zoom 90 %)
  and JPEG qualities 50 / 70 / 90 / 100, error at 3 and 10 restarts (one 10-restart run each).
* ``seed_recovery`` — per-dimension mean squared difference between reconstructed and true seeds, and
  starts at the true seed + N(0, 0.0025).
* ``adversarial`` — Fig. 6: FGSM in seed space, FGSM in image space, ℓ2 FGM, the CW variant of Eq. 6 and
  PGD (our extension): accuracy, SSIM and perturbation size per strength.
* ``transfer`` — Fig. 9: a substitute classifier (our ``gan-fingerprint-classifier``) attacked with FGSM
  (ℓ∞) and CW (ℓ2); accuracy of the substitute and of seed reconstruction on the transferred examples.
* ``open_set`` — **our extension**: thresholds from ``calibrate(target_fnr=…)`` on held-out own-model images;
  rejection of real Fashion-MNIST images and of an unseen architecture (EBGAN).
* ``shortlist`` — reconstruct only over the top-K candidates of a cheap classifier (our
  ``gan-fingerprint-classifier``, Yu 2019) among all zoo models: accuracy and cost vs K.
* ``controls`` — negative control: same architecture, different training seeds (DCGAN s0, s1, s2).

Images are quantised to 8 bits (as saved deepfakes). ε values in the config are in the paper's [0, 1] image
units; the attacks get 2ε (our tensors are in [-1, 1]). Sizes default to what 2 CPU cores finish in a few
hours (see docs/zhang2020.md); ``quick_config()`` is a seconds-long smoke test.

Modules: ``config``, ``data``, ``plots``, ``experiments`` (attribution), ``robustness``, ``report``; the driver
is here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from genattr.errors import ConfigError
from genattr.evaluation.zhang2020.config import (
    COMMAND,
    EXPERIMENTS,
    PAPER,
    TARGETS,
    Zhang2020Config,
    estimate_latent_steps,
    quick_config,
)
from genattr.evaluation.zhang2020.data import Context
from genattr.evaluation.zhang2020.experiments import (
    exp_controls,
    exp_distance_selection,
    exp_open_set,
    exp_shortlist,
    exp_three_arch,
    exp_two_arch,
)
from genattr.evaluation.zhang2020.plots import write_json
from genattr.evaluation.zhang2020.report import write_report
from genattr.evaluation.zhang2020.robustness import exp_adversarial, exp_perturbations, exp_seed_recovery, exp_transfer

RUNNERS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "distance_selection": exp_distance_selection, "open_set": exp_open_set, "shortlist": exp_shortlist,
    "two_arch": exp_two_arch, "three_arch": exp_three_arch, "perturbations": exp_perturbations,
    "seed_recovery": exp_seed_recovery, "adversarial": exp_adversarial, "transfer": exp_transfer,
    "controls": exp_controls,
}


def reproduce_zhang2020(config: Zhang2020Config | None = None, out_dir: str | Path = "docs/results/zhang2020", *,
                        log: Callable[[str], None] = print, command: str = COMMAND) -> Path:
    """Run the configured experiments, write ``<out>/<exp>/summary.json`` and rebuild ``<out>/README.md``."""
    cfg = config or Zhang2020Config()
    bad = [e for e in cfg.experiments if e not in EXPERIMENTS]
    if bad:
        raise ConfigError(f"unknown experiments {bad}; known: {', '.join(EXPERIMENTS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prev = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    ctx = Context(cfg, out, log)
    est = estimate_latent_steps(cfg)
    log(f"[zhang2020] planned work: {sum(est.values()) / 1e6:.1f} M latent-steps (" +
        ", ".join(f"{e} {v / 1e6:.2f} M" for e, v in est.items()) + ")")
    try:
        for exp in EXPERIMENTS:
            if exp not in cfg.experiments:
                continue
            log(f"[zhang2020] {exp}")
            t0 = time.perf_counter()
            summary = RUNNERS[exp](ctx)
            summary["seconds"] = round(time.perf_counter() - t0, 1)
            summary["config"] = asdict(cfg)
            write_json(out / exp / "summary.json", summary)
            log(f"[zhang2020] {exp} done in {summary['seconds']:.0f} s")
    finally:
        torch.set_num_threads(prev)
    return write_report(out, command=command)


__all__ = ["COMMAND", "EXPERIMENTS", "PAPER", "RUNNERS", "TARGETS", "Zhang2020Config", "estimate_latent_steps",
           "quick_config", "reproduce_zhang2020", "write_report"]
