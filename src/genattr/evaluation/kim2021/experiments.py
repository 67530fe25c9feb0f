"""The trained-model experiments of kim2021: table1, theory, capacity, robust, ablation_c, masked, grids
(the simulation is in :mod:`.simulation`)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import torch

from genattr.evaluation.kim2021.config import ATTACKS, ROBUST
from genattr.evaluation.kim2021.context import Context
from genattr.evaluation.kim2021.measure import cost_summary, mean_std, measure


def exp_table1(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    out: dict[str, Any] = {}
    for name, n, angle in (("orthogonal", cfg.n_users, 90.0), ("angle45", cfg.n_users_45, 45.0)):
        ks = ctx.keyset("capacity" if name == "orthogonal" else name,
                        max(n, cfg.n_capacity_keys) if name == "orthogonal" else n, angle=angle)
        trained = [ctx.user("capacity" if name == "orthogonal" else name, i) for i in range(n)]
        res = measure(ctx, ks.keys[:n], [g for g, _ in trained])
        k = ks.matrix[:n].double()
        res.update(n_users=n, angle_deg=angle, cost=cost_summary([i for _, i in trained]),
                   max_abs_dot=float((k @ k.T - torch.eye(n, dtype=torch.float64)).abs().max()))
        out[name] = res
    return out


def exp_theory(ctx: Context) -> dict[str, Any]:
    from genattr.watermark.kim_metrics import theory_checks
    from genattr.watermark.kim_training import sample_eval

    cfg = ctx.cfg
    ks = ctx.keyset("capacity", max(cfg.n_theory, cfg.n_capacity_keys))
    keys = ks.keys[:cfg.n_theory]
    z = ctx.latents(cfg.theory_samples, "theory")
    x0 = sample_eval(ctx.g0, z)
    rows = []
    for i in range(cfg.n_theory):
        g, info = ctx.user("capacity", i, mode="alg1")
        chk = theory_checks(keys, i, sample_eval(g, z), x0, float(info["gamma"]), ctx.real_test)
        chk.update(D=info["history"][-1]["D"], rounds=info["rounds"], reached=info["reached"])
        rows.append(chk)
    eq7 = [e["rhs"] for r in rows for e in r["eq7"]]
    return {"users": rows, "eq6_holds": sum(r["eq6_holds"] for r in rows), "n": len(rows),
            "eq7_rhs": mean_std(eq7) | {"min": min(eq7) if eq7 else None,
                                         "positive": sum(v > 0 for v in eq7), "pairs": len(eq7)},
            "D": mean_std([r["D"] for r in rows])}


def exp_capacity(ctx: Context) -> dict[str, Any]:
    from genattr.watermark.keys import data_distances, orthogonality

    cfg = ctx.cfg
    ks = ctx.keyset("capacity", cfg.n_capacity_keys)
    keys = ks.keys[:cfg.n_capacity_keys]
    o = orthogonality(keys).tolist()
    dd = data_distances(keys, ctx.real_test)
    idx = list(range(0, cfg.n_capacity_keys, cfg.capacity_every))
    gens = [ctx.user("capacity", i)[0] for i in idx]
    res = measure(ctx, keys[idx], gens, quality=False)
    # A with all n_capacity_keys verifiers: a trained user's sample must fire only its own key among all keys
    from genattr.watermark.kim_metrics import quantize_8bit
    from genattr.watermark.kim_training import sample_eval

    z = ctx.latents(cfg.n_eval)
    scores = [quantize_8bit(sample_eval(g, z)).flatten(1) @ keys.flatten(1).T for g in gens]
    a_all = [float(((s[:, i] > 0) & ((s > 0).sum(1) == 1)).double().mean()) for s, i in zip(scores, idx, strict=True)]
    return {"o_n": o, "d_max": dd["d_max"].tolist(), "d_min": dd["d_min"].tolist(), "trained": idx,
            "D": res["D_per_user"], "A_trained_only": res["A"], "A_all_keys_per_user": a_all,
            "A_all_keys": statistics.fmean(a_all), "max_o_n": max(o)}


def exp_robust(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    ks = ctx.keyset("capacity", max(cfg.n_robust, cfg.n_capacity_keys))
    keys = ks.keys[:cfg.n_robust]
    base = [ctx.user("capacity", i)[0] for i in range(cfg.n_robust)]
    out: dict[str, Any] = {}
    for p in ROBUST:
        c = cfg.robust_c(p)
        trained = [ctx.user("capacity", i, C=c, robust=p, start_C=10.0) for i in range(cfg.n_robust)]
        gens = [g for g, _ in trained]
        row: dict[str, Any] = {"cost": cost_summary([i for _, i in trained]), "attacks": {}, "C": c}
        clean = measure(ctx, keys, gens)
        row.update(clean_D=clean["D"], clean_A=clean["A"], dx=clean["dx"], fd_real=clean["fd_real"],
                   fd_root=clean["fd_root"])
        for atk in ATTACKS[p]:
            before = measure(ctx, keys, base, attack=atk, quality=False)
            after = measure(ctx, keys, gens, attack=atk, quality=False)
            row["attacks"][atk] = {"D_before": before["D"], "D_after": after["D"], "A_before": before["A"],
                                   "A_after": after["A"], "real_fpr_before": before["real_attacked_fpr"],
                                   "real_fpr_after": after["real_attacked_fpr"]}
        out[p] = row
    return out


def exp_ablation_c(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    n = cfg.n_users_c
    ks = ctx.keyset("capacity", max(n, cfg.n_capacity_keys))
    keys = ks.keys[:n]
    out: dict[str, Any] = {}
    for c in cfg.c_values:
        gens = [ctx.user("capacity", i, C=c)[0] for i in range(n)]
        row = measure(ctx, keys, gens)
        row["robust"] = {}
        for p in ROBUST:
            rg = [ctx.user("capacity", i, C=c, robust=p)[0] for i in range(n)]
            atk = ATTACKS[p][0]
            before = measure(ctx, keys, gens, attack=atk, quality=False)
            after = measure(ctx, keys, rg, attack=atk, quality=True)
            row["robust"][p] = {"D_before": before["D"]["mean"], "D_after": after["D"]["mean"],
                                "A_before": before["A"], "A_after": after["A"], "dx": after["dx"]["mean"],
                                "fd_real": after["fd_real"]["mean"]}
        out[f"{c:g}"] = row
    return out


def exp_masked(ctx: Context) -> dict[str, Any]:
    from genattr.watermark.keys import border_mask

    cfg = ctx.cfg
    n = cfg.n_masked
    ks_m = ctx.keyset("masked", n, masked=True)
    ks = ctx.keyset("capacity", max(n, cfg.n_capacity_keys))
    out = {}
    for name, keyset, set_name in (("unmasked", ks, "capacity"), ("masked", ks_m, "masked")):
        gens = [ctx.user(set_name, i)[0] for i in range(n)]
        k = keyset.keys[:n]
        border = 1 - border_mask(tuple(k.shape[1:]))
        out[name] = {"clean": measure(ctx, k, gens),
                     "crop": measure(ctx, k, gens, attack="crop/0.8 centre", quality=False),
                     "key_energy_on_border": float((k * border).flatten(1).pow(2).sum(1).mean())}
    return out


def exp_grids(ctx: Context, out_dir: Path) -> dict[str, Any]:
    from genattr.data import save_png
    from genattr.watermark.kim_metrics import quantize_8bit
    from genattr.watermark.kim_training import sample_eval

    cfg = ctx.cfg
    z = ctx.latents(8, "grid")
    x0 = sample_eval(ctx.g0, z)
    rows = {"G0": x0}
    ctx.keyset("capacity", cfg.n_capacity_keys)
    for i in range(min(3, cfg.n_users)):
        rows[f"user {i}"] = sample_eval(ctx.user("capacity", i)[0], z)
    for p in ROBUST:
        if cfg.n_robust:
            rows[f"robust {p}"] = sample_eval(ctx.user("capacity", 0, C=cfg.robust_c(p), robust=p, start_C=10.0)[0],
                                              z)
    files = {}
    for name, x in rows.items():
        fn = f"{name.replace(' ', '_')}.png"
        save_png(quantize_8bit(x), out_dir / fn, nrow=8, scale=2)
        files[name] = fn
        if name != "G0":
            diff = ((x - x0).abs() * 2 - 1).clamp(-1, 1)  # |Δx| ×2 on the [0, 2] scale
            save_png(diff, out_dir / f"diff_{fn}", nrow=8, scale=2)
    return {"files": files, "note": "same z in every row; diff_* = |G_φ(z) − G0(z)| (0 = black, ≥ 1 = white)"}


__all__ = ["exp_ablation_c", "exp_capacity", "exp_grids", "exp_masked", "exp_robust", "exp_table1", "exp_theory"]
