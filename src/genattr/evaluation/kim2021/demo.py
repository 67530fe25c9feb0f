"""The keys step of ``genattr demo``: issue keys, key one user's copy of the root model, verify.

A few minutes on one core at the defaults; every number printed is measured on this run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from genattr.sampling import derive_seed


def keys_demo(out: str | Path, *, root: Any = None, n_users: int = 3, steps: int = 300, n_check: int = 200,
              seed: int = 0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Issue ``n_users`` keys, fine-tune user 0 for ``steps`` steps, and verify ``n_check`` of its 8-bit samples
    and ``n_check`` real test images against all keys. Writes the key set and the user model under ``out``
    (``keys/``, ``keys/user-000/``) and returns the measured rates."""
    from genattr.attribution.keys import KeyAttributor
    from genattr.data import load_fashion_mnist
    from genattr.watermark.keys import KeySet, compliance_report, default_users, generate_keys, save_keys
    from genattr.watermark.kim_metrics import quantize_8bit
    from genattr.watermark.kim_training import FinetuneConfig, finetune, save_user_model

    if root is None:
        from genattr import zoo

        root = zoo.load("fmnist-dcgan-s0")
    out = Path(out)
    real, test = load_fashion_mnist("train").to_model(32), load_fashion_mnist("test").to_model(32)
    gen = torch.Generator().manual_seed(derive_seed(seed, "demo", "keys"))
    r_train, r_held = root.sample(5000, gen), root.sample(2000, gen)
    keys, info = generate_keys(n_users, real[:20_000], r_train, real_heldout=test, root_heldout=r_held,
                               seed=derive_seed(seed, "demo", "key-gen"))
    users = default_users(n_users)
    ks = KeySet(keys, tuple(users), {"angle_deg": 90.0, "root": "fmnist-dcgan-s0", "real": "fmnist",
                                     "compliance": dict(zip(users, compliance_report(keys, test, r_held),
                                                            strict=True))})
    save_keys(ks, out / "keys", overwrite=True)
    log(f"keys: {n_users} orthogonal, data-compliant keys issued in {info['seconds']:.1f} s → {out / 'keys'}")
    g, tinfo = finetune(root, keys[0], FinetuneConfig(steps=steps, seed=seed))
    save_user_model(g, out / "keys" / users[0], extra={"kim2021": {"user": users[0]}}, overwrite=True)
    log(f"keys: {users[0]}'s model fine-tuned in {tinfo['seconds']:.0f} s ({steps} steps)")
    att = KeyAttributor().fit(ks.as_candidates())
    x = quantize_8bit(g.sample(n_check, torch.Generator().manual_seed(derive_seed(seed, "demo", "check"))))
    keyed = att.predict(x)
    real_pred = att.predict(test[:n_check])
    res = {"keyed_attributed": sum(p == users[0] for p in keyed) / n_check,
           "real_unknown": sum(p not in users for p in real_pred) / n_check,
           "key_seconds": info["seconds"], "finetune_seconds": tinfo["seconds"]}
    log(f"keys: {100 * res['keyed_attributed']:.1f} % of {users[0]}'s samples attributed to {users[0]}; "
        f"{100 * res['real_unknown']:.1f} % of real test images fire no key")
    return res


__all__ = ["keys_demo"]
