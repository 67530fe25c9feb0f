"""FLIPAD reproduction: samples, subsets, per-pair metrics and the attributor factory."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from genattr.errors import ConfigError
from genattr.evaluation.flipad_experiments.config import VARIANTS, FlipadConfig
from genattr.sampling import sample_8bit

# -- data -----------------------------------------------------------------------------------------------------


sample_model = sample_8bit  # n 8-bit-quantised samples of a generator, deterministic in the seed


def _subset(x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    if n > x.shape[0]:
        raise ConfigError(f"asked for {n} images of a set of {x.shape[0]}")
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    return x[perm[:n]].clone()


def pair_metrics(s_pos: torch.Tensor, s_neg: torch.Tensor, threshold: float) -> dict[str, float]:
    """Accuracy (mean of TPR and TNR at ``threshold``; equal to plain accuracy for equal sizes) and AUC."""
    from genattr.metrics import roc_auc

    tpr = float((s_pos >= threshold).double().mean())
    tnr = float((s_neg < threshold).double().mean())
    y = np.r_[np.ones(s_pos.numel()), np.zeros(s_neg.numel())]
    auc = roc_auc(y, torch.cat([s_pos, s_neg]).double().numpy())
    return {"accuracy": 100 * (tpr + tnr) / 2, "auc": 100 * auc, "tpr": 100 * tpr, "tnr": 100 * tnr}


def _method_params(method: str, config: FlipadConfig) -> tuple[str, dict[str, Any]]:
    """(registry name, hyperparameters) of a method or variant, with ``config.params`` applied."""
    base, extra = VARIANTS.get(method, (method, {}))
    return base, {**extra, **config.params.get(base, {}), **config.params.get(method, {})}


def make_attributor(method: str, config: FlipadConfig, seed: int) -> Any:
    from genattr.attribution import create_attributor

    base, params = _method_params(method, config)
    if base not in ("sm-inv",):
        params.setdefault("n_train", config.n_train)
    params.setdefault("seed", seed)
    return create_attributor(base, **params)
