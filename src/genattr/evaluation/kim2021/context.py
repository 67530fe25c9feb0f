"""Shared state of one kim2021 run: data, root samples, key sets and fine-tuned users (cached on disk under
``Kim2021Config.cache``, so an interrupted run resumes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from genattr.evaluation.kim2021.config import Kim2021Config
from genattr.sampling import derive_seed


class Context:
    def __init__(self, cfg: Kim2021Config, log: Callable[[str], None]) -> None:
        self.cfg, self.log = cfg, log
        self._memo: dict[str, Any] = {}
        self.users: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}
        self.keysets: dict[str, Any] = {}

    @property
    def cache(self) -> Path | None:
        """Where key sets and users are kept; low-pass keys get their own subdirectory (never mixed up)."""
        if not self.cfg.cache:
            return None
        base = Path(self.cfg.cache)
        return base / f"lowpass-{self.cfg.key_lowpass}" if self.cfg.key_lowpass else base

    def memo(self, name: str, fn: Callable[[], Any]) -> Any:
        if name not in self._memo:
            self._memo[name] = fn()
        return self._memo[name]

    # data
    @property
    def g0(self) -> Any:
        from genattr import zoo

        return self.memo("g0", lambda: zoo.load(self.cfg.root))

    @property
    def real_train(self) -> torch.Tensor:
        from genattr.data import load_fashion_mnist

        return self.memo("real_train", lambda: load_fashion_mnist("train").to_model(32)[:self.cfg.n_real_train])

    @property
    def real_test(self) -> torch.Tensor:
        from genattr.data import load_fashion_mnist

        return self.memo("real_test", lambda: load_fashion_mnist("test").to_model(32))

    def root_samples(self, which: str, n: int) -> torch.Tensor:
        return self.memo(f"root-{which}-{n}", lambda: self.g0.sample(
            n, torch.Generator().manual_seed(derive_seed(self.cfg.seed, "kim2021", "root", which))))

    def latents(self, n: int, what: str = "eval") -> torch.Tensor:
        return torch.randn(n, self.g0.latent_dim,
                           generator=torch.Generator().manual_seed(derive_seed(self.cfg.seed, "kim2021", what)))

    @property
    def features(self) -> Callable[[torch.Tensor], torch.Tensor]:
        from genattr import zoo

        clf = self.memo("clf", zoo.load_classifier)
        return clf.embed

    # keys
    def keyset(self, name: str, n: int, *, angle: float = 90.0, masked: bool = False) -> Any:
        """A named key set (orthogonal / angle45 / masked), generated once per run (cached on disk)."""
        from genattr.watermark.keys import (
            KeyGenConfig,
            KeySet,
            border_mask,
            compliance_report,
            default_users,
            generate_keys,
            load_keys,
            save_keys,
        )

        if name in self.keysets:
            return self.keysets[name]
        path = self.cache / "keys" / name if self.cache is not None else None
        if path is not None and path.is_dir():
            ks = load_keys(path)
            if len(ks) >= n:
                self.keysets[name] = ks
                return ks
        held = self.root_samples("heldout", self.cfg.n_root_heldout)
        mask = border_mask(tuple(self.real_train.shape[1:])) if masked else None
        keys, info = generate_keys(n, self.real_train, self.root_samples("train", self.cfg.n_root_train),
                                   real_heldout=self.real_test, root_heldout=held, angle_deg=angle, mask=mask,
                                   seed=derive_seed(self.cfg.seed, "kim2021", "keys", name),
                                   config=KeyGenConfig(steps=self.cfg.key_steps, lowpass=0 if masked else
                                                       self.cfg.key_lowpass), log=self.log)
        users = default_users(n)
        ks = KeySet(keys, tuple(users), {"angle_deg": angle, "root": self.cfg.root, "real": "fmnist",
                                         "border_masked": masked, "lowpass": 0 if masked else self.cfg.key_lowpass,
                                         "generation": info,
                                         "compliance": dict(zip(users, compliance_report(keys, self.real_test, held),
                                                                strict=True))})
        if path is not None:
            save_keys(ks, path, overwrite=True)
        self.keysets[name] = ks
        return ks

    # users
    def user(self, set_name: str, index: int, *, C: float = 10.0, robust: str | None = None,
             mode: str = "hinge", start_C: float | None = None) -> tuple[Any, dict[str, Any]]:
        """The fine-tuned user ``index`` of a key set (robust users start from the non-robust one, trained with
        ``start_C`` — default ``C``)."""
        from genattr.generators import Generator
        from genattr.watermark.kim_training import FinetuneConfig, finetune, save_user_model

        ks = self.keysets[set_name]
        start_C = C if start_C is None or not robust else start_C
        tag = (f"C{C:g}" + (f"-{robust}" if robust else "") + ("" if start_C == C else f"-from-C{start_C:g}")
               + ("" if mode == "hinge" else f"-{mode}"))
        key = (set_name, f"{ks.users[index]}-{tag}")
        if key in self.users:
            return self.users[key]
        path = self.cache / "users" / set_name / key[1] if self.cache is not None else None
        if path is not None and (path / "info.json").is_file():
            self.users[key] = (Generator.from_pretrained(path), json.loads((path / "info.json").read_text()))
            return self.users[key]
        start = self.user(set_name, index, C=start_C)[0] if robust else None
        steps = self.cfg.robust_steps if robust else (self.cfg.alg1_steps if mode == "alg1" else self.cfg.steps)
        fc = FinetuneConfig(mode=mode, C=C, steps=steps, batch_size=self.cfg.batch_size, robust=robust,
                            max_rounds=self.cfg.alg1_rounds, seed=derive_seed(self.cfg.seed, *key) % 2**31)
        old = torch.get_num_threads()
        torch.set_num_threads(self.cfg.threads)
        try:
            g, info = finetune(self.g0, ks.keys[index], fc, real=self.real_test if mode == "alg1" else None,
                               start=start)
        finally:
            torch.set_num_threads(old)
        info = {k: v for k, v in info.items()}
        self.log(f"  {set_name}/{key[1]}: {info['steps']} steps in {info['seconds']:.0f} s")
        if path is not None:
            save_user_model(g, path, extra={"kim2021": {"set": set_name, "user": ks.users[index], "C": C,
                                                        "robust": robust, "mode": mode, "start_C": start_C}},
                            overwrite=True)
            (path / "info.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
        self.users[key] = (g, info)
        return g, info


__all__ = ["Context"]
