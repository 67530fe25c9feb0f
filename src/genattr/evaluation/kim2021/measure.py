"""Measurements shared by the kim2021 experiments: D, A, ‖Δx‖ and FD of a set of users, and fine-tuning cost."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import torch

from genattr.evaluation.kim2021.context import Context
from genattr.sampling import derive_seed


def mean_std(v: Sequence[float]) -> dict[str, float]:
    v = [float(a) for a in v]
    return {"mean": statistics.fmean(v), "std": statistics.pstdev(v) if len(v) > 1 else 0.0, "n": len(v)}


def measure(ctx: Context, keys: torch.Tensor, gens: Sequence[Any], *, attack: str | None = None,
            quality: bool = True) -> dict[str, Any]:
    """D per user, A (Eq. 2) among these users, ‖Δx‖, FD; samples 8-bit quantised; ``attack`` = a key of the
    kim2021-worst grid applied to the quantised samples (and re-quantised)."""
    from genattr.perturbations import get_grid
    from genattr.watermark.kim_metrics import attributability, delta_x, distinguishability, fd_between, quantize_8bit
    from genattr.watermark.kim_training import sample_eval

    cfg = ctx.cfg
    z = ctx.latents(cfg.n_eval)
    x0 = ctx.memo(f"x0-{cfg.n_eval}", lambda: sample_eval(ctx.g0, z))
    t = {e.key: e.transform for e in get_grid("kim2021-worst")}[attack] if attack else None
    real = ctx.real_test
    samples, dx, d = [], [], []
    for i, g in enumerate(gens):
        x = sample_eval(g, z)
        if quality:
            dx.append(delta_x(x, x0)["eq3"])
        q = quantize_8bit(x)
        if t is not None:
            q = quantize_8bit(t(q, torch.Generator().manual_seed(derive_seed(cfg.seed, "attack", attack, i))))
        samples.append(q)
        d.append(distinguishability(keys[i], q, real))
    a, rates = attributability(keys, samples)
    out: dict[str, Any] = {"D": mean_std(d), "A": a, "A_per_user": rates, "D_per_user": d}
    if t is not None:
        r = quantize_8bit(t(real, torch.Generator().manual_seed(derive_seed(cfg.seed, "attack-real", attack))))
        from genattr.watermark.keys import key_scores

        out["real_attacked_fpr"] = float((key_scores(keys, r) > 0).any(1).double().mean())
    if quality:
        out["dx"] = mean_std(dx)
        zf = ctx.latents(cfg.n_fd, "fd")
        f_real = ctx.memo("f_real", lambda: ctx.features(real[:cfg.n_fd]))
        x0f = ctx.memo("x0f", lambda: sample_eval(ctx.g0, zf))
        fd_real, fd_root = [], []
        from genattr.metrics import frechet_distance

        for g in gens:
            xf = quantize_8bit(sample_eval(g, zf))
            fx = ctx.features(xf)
            fd_real.append(float(frechet_distance(fx.double().numpy(), f_real.double().numpy())))
            fd_root.append(fd_between(ctx.features, xf, quantize_8bit(x0f)))
        out["fd_real"], out["fd_root"] = mean_std(fd_real), mean_std(fd_root)
        out["fd0_real"] = ctx.memo("fd0", lambda: float(frechet_distance(
            ctx.features(quantize_8bit(x0f)).double().numpy(), f_real.double().numpy())))
    return out


def cost_summary(infos: Sequence[dict[str, Any]]) -> dict[str, float]:
    return {"seconds_per_user": statistics.fmean(i["seconds"] for i in infos),
            "seconds_per_step": statistics.fmean(i["seconds_per_step"] for i in infos),
            "steps": statistics.fmean(i["steps"] for i in infos)}


__all__ = ["cost_summary", "mean_std", "measure"]
