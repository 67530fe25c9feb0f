"""The ``simulation`` experiment of kim2021: many users simulated (no training) from statistics measured on
trained users."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from genattr.evaluation.kim2021.context import Context
from genattr.evaluation.kim2021.measure import cost_summary
from genattr.sampling import derive_seed


def exp_simulation(ctx: Context) -> dict[str, Any]:
    from genattr.watermark.keys import KeyGenConfig, generate_keys, keys_at_angle
    from genattr.watermark.kim_metrics import simulate_attributability
    from genattr.watermark.kim_training import sample_eval

    cfg = ctx.cfg
    # measured statistics of real fine-tuned users (table1's first users)
    ks = ctx.keyset("capacity", max(cfg.n_users, cfg.n_capacity_keys))
    z = ctx.latents(cfg.n_eval)
    x0 = sample_eval(ctx.g0, z)
    gammas, resid, infos = [], [], []
    for i in range(min(cfg.n_users, 5)):
        g, info = ctx.user("capacity", i)
        d = (sample_eval(g, z) - x0).flatten(1)
        phi = ks.matrix[i]
        gm = float((d @ phi).mean())
        gammas.append(gm)
        resid.append(float((d - gm * phi).pow(2).mean().sqrt()))
        infos.append(info)
    gamma, noise = statistics.fmean(gammas), statistics.fmean(resid)
    root = ctx.root_samples("heldout", cfg.n_root_heldout)
    n_max = max(max(cfg.sim_users), cfg.sim_angle_users + 1)
    t0 = time.perf_counter()
    base, kinfo = generate_keys(n_max, ctx.real_train, ctx.root_samples("train", cfg.n_root_train),
                                real_heldout=ctx.real_test, root_heldout=root,
                                seed=derive_seed(cfg.seed, "kim2021", "sim-keys"),
                                config=KeyGenConfig(steps=cfg.key_steps), allow_fewer=True, log=ctx.log)
    key_seconds = time.perf_counter() - t0
    note = None if kinfo["issued"] == n_max else (
        f"only {kinfo['issued']} of {n_max} orthogonal keys could be issued (the compliant cone is full at "
        "d = 1024): user counts beyond that are simulated with that many keys at most")
    out: dict[str, Any] = {"simulation": True, "gamma": gamma, "noise_std": noise, "gammas": gammas,
                           "key_generation_seconds": key_seconds, "keys_issued": kinfo["issued"],
                           "capacity_note": note, "measured_cost": cost_summary(infos), "vs_users": {}, "vs_angle": {}}
    avail = base.shape[0]
    for n in cfg.sim_users:
        if n > avail:
            continue
        a, _ = simulate_attributability(base[:n], root, gamma, noise, n_per_user=cfg.sim_n_per_user,
                                        seed=derive_seed(cfg.seed, "sim", n))
        out["vs_users"][str(n)] = a
    # beyond the capacity: random unit keys (nearly orthogonal, |cos| ≈ 1/√d, but NOT data-compliant)
    g = torch.Generator().manual_seed(derive_seed(cfg.seed, "sim-random-keys"))
    rk = torch.randn(max(cfg.sim_users), *base.shape[1:], generator=g)
    rk = rk / rk.flatten(1).norm(dim=1).view(-1, *([1] * (rk.ndim - 1)))
    out["vs_users_random_keys"] = {str(n): simulate_attributability(
        rk[:n], root, gamma, noise, n_per_user=cfg.sim_n_per_user, seed=derive_seed(cfg.seed, "sim-r", n))[0]
        for n in cfg.sim_users}
    m = min(cfg.sim_angle_users, avail - 1)
    for ang in cfg.sim_angles:
        k = base[:m] if ang >= 90 else keys_at_angle(base[:m + 1], ang)
        a, _ = simulate_attributability(k, root, gamma, noise, n_per_user=cfg.sim_n_per_user,
                                        seed=derive_seed(cfg.seed, "sim-angle", ang))
        out["vs_angle"][f"{ang:g}"] = a
    return out


__all__ = ["exp_simulation"]
