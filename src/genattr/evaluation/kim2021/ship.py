"""Shipping the kim2021 key sets and user models to ``models/kim2021/`` with a sha256 manifest."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from genattr.evaluation.kim2021.config import ROBUST
from genattr.evaluation.kim2021.context import Context


def ship(ctx: Context, models_dir: Path, command: str) -> Path:
    """models/kim2021/: orthogonal/, angle45/, robust-<p>/ — key set + one save_pretrained dir per user —
    and manifest.json with every file's sha256 and the rebuild command."""
    import hashlib

    from genattr.watermark.keys import KeySet, atomic_dir
    from genattr.watermark.kim_training import save_user_model

    cfg = ctx.cfg
    sets: dict[str, tuple[KeySet, list[Any]]] = {}
    cap = ctx.keyset("capacity", cfg.n_capacity_keys)
    # every shipped user gets a key of its own, across sets (two registered users sharing a key could never be
    # told apart): robust-<p> takes the j-th trained key (j < n_robust), orthogonal the ship_users keys after them
    m = max(1, min(cfg.n_robust, cfg.ship_robust_users))
    lo = min(len(ROBUST) * m, cfg.n_robust)
    hi = min(cfg.n_users, lo + cfg.ship_users)
    sets["orthogonal"] = (KeySet(cap.keys[lo:hi], cap.users[lo:hi], {**cap.meta, "set": "orthogonal"}),
                          [ctx.user("capacity", i)[0] for i in range(lo, hi)])
    a45 = ctx.keyset("angle45", cfg.n_users_45, angle=45.0)
    n45 = min(cfg.n_users_45, cfg.ship_users)
    sets["angle45"] = (KeySet(a45.keys[:n45], a45.users[:n45], {**a45.meta}),
                       [ctx.user("angle45", i)[0] for i in range(n45)])
    for j, p in enumerate(ROBUST):
        idx = [(j * m + i) % cfg.n_robust for i in range(m)]
        sets[f"robust-{p}"] = (KeySet(cap.keys[idx], tuple(cap.users[i] for i in idx),
                                      {**cap.meta, "set": f"robust-{p}", "robust": p,
                                       "C": cfg.robust_c(p)}),
                               [ctx.user("capacity", i, C=cfg.robust_c(p), robust=p, start_C=10.0)[0] for i in idx])

    def write(tmp: Path) -> None:
        from genattr.watermark.keys import _write_keyset

        files: dict[str, dict[str, str]] = {}
        for name, (ks, gens) in sets.items():
            (tmp / name).mkdir()
            _write_keyset(ks, tmp / name)
            for u, g in zip(ks.users, gens, strict=True):
                save_user_model(g, tmp / name / u, extra={"kim2021": {"set": name, "user": u}})
            files[name] = {str(f.relative_to(tmp)): hashlib.sha256(f.read_bytes()).hexdigest()
                           for f in sorted((tmp / name).rglob("*")) if f.is_file()}
        (tmp / "manifest.json").write_text(json.dumps({"format": 1, "paper": "kim2021", "command": command,
                                                       "config": asdict(cfg), "sets": files}, indent=2) + "\n")

    return atomic_dir(models_dir, write, overwrite=True)


__all__ = ["ship"]
