"""Yu 2019 reproduction: disjoint train/validation/test splits of every source, drawn once per run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from genattr import REAL
from genattr.data import quantize_8bit, real_splits
from genattr.errors import ConfigError
from genattr.evaluation.yu2019.config import Yu2019Config
from genattr.sampling import derive_seed


# --------------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------------
@dataclass
class Split:
    train: dict[str, torch.Tensor]
    val: dict[str, torch.Tensor]
    test: dict[str, torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)


class DataCache:
    """Draws each source once per run: every experiment on the same setup sees the same images."""

    def __init__(self, cfg: Yu2019Config) -> None:
        self.cfg = cfg
        self._gan: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._real: tuple[torch.Tensor, torch.Tensor] | None = None

    def _real_split(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._real is None:
            cfg = self.cfg
            pool, test = real_splits(cfg.real, cfg.image_size, seed=derive_seed(cfg.seed, "real"))
            need = cfg.n_train + cfg.n_val
            g = torch.Generator().manual_seed(derive_seed(cfg.seed, "real", "train"))
            idx = torch.randperm(pool.shape[0], generator=g)[:need]
            gt = torch.Generator().manual_seed(derive_seed(cfg.seed, "real", "test"))
            tidx = torch.randperm(test.shape[0], generator=gt)[:cfg.n_test]
            if idx.numel() < need or tidx.numel() < cfg.n_test:
                raise ConfigError(f"{cfg.real} has too few images for n_train + n_val = {need} / n_test = {cfg.n_test}")
            self._real = (pool[idx], test[tidx])
        return self._real

    def _gan_split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in self._gan:
            from genattr import zoo

            cfg = self.cfg
            gen = zoo.load(name)
            g_train = torch.Generator().manual_seed(derive_seed(cfg.seed, "train", name))
            g_test = torch.Generator().manual_seed(derive_seed(cfg.seed, "test", name))
            with torch.no_grad():
                tr = gen.sample(cfg.n_train + cfg.n_val, g_train)
                te = gen.sample(cfg.n_test, g_test)
            if cfg.quantize:
                tr, te = quantize_8bit(tr), quantize_8bit(te)
            if tuple(tr.shape[-2:]) != (cfg.image_size, cfg.image_size):
                raise ConfigError(f"zoo model {name} makes {tuple(tr.shape[-2:])} images, not {cfg.image_size}²")
            self._gan[name] = (tr, te)
        return self._gan[name]

    def split(self, names: Sequence[str]) -> Split:
        train, val, test = {}, {}, {}
        cfg = self.cfg
        for name in [REAL, *names]:
            tv, te = self._real_split() if name == REAL else self._gan_split(name)
            train[name], val[name], test[name] = tv[:cfg.n_train], tv[cfg.n_train:cfg.n_train + cfg.n_val], te
        return Split(train, val, test, {"sources": [REAL, *names], "n_train": cfg.n_train, "n_val": cfg.n_val,
                                        "n_test": cfg.n_test})

    def test_only(self, name: str) -> torch.Tensor:
        return (self._real_split() if name == REAL else self._gan_split(name))[1]
