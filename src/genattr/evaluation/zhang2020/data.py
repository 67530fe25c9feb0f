"""zhang2020 data: zoo models by architecture, 8-bit quantisation and the shared run `Context`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from genattr.errors import ConfigError
from genattr.evaluation.zhang2020.config import Zhang2020Config
from genattr.sampling import derive_seed

__all__ = ["Context", "quantize", "resolve_models", "zoo_models_by_arch"]


def zoo_models_by_arch() -> dict[str, list[str]]:
    from genattr import zoo

    man = zoo.manifest()["models"]
    out: dict[str, list[str]] = {}
    for name in sorted(man):
        out.setdefault(man[name]["arch"], []).append(name)
    return out


def resolve_models(explicit: Sequence[str], archs: Sequence[str]) -> list[str]:
    if explicit:
        return list(explicit)
    by_arch = zoo_models_by_arch()
    missing = [a for a in archs if a not in by_arch]
    if missing:
        raise ConfigError(f"the zoo has no model of architecture {missing}; set the *_models setting explicitly")
    return [by_arch[a][0] for a in archs]


def quantize(x: torch.Tensor) -> torch.Tensor:
    return torch.round((x.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1


class Context:
    """Models, data and the attribution runs shared by the experiments of one reproduction."""

    def __init__(self, cfg: Zhang2020Config, out: Path, log: Callable[[str], None]) -> None:
        self.cfg, self.out, self.log = cfg, out, log
        self._models: dict[str, Any] = {}
        self._classifier: Any = None

    def model(self, name: str) -> Any:
        if name not in self._models:
            from genattr import zoo

            self._models[name] = zoo.load(name).eval()
        return self._models[name]

    def classifier(self) -> Any:
        if self._classifier is None:
            from genattr import zoo

            self._classifier = zoo.load_classifier()
        return self._classifier

    def samples(self, name: str, n: int, purpose: str) -> tuple[torch.Tensor, torch.Tensor]:
        """n images of a model with their latents (disjoint streams per purpose), 8-bit quantised."""
        g = self.model(name)
        z = torch.randn(n, g.latent_dim, generator=torch.Generator().manual_seed(derive_seed(self.cfg.seed, purpose,
                                                                                            name)))
        with torch.no_grad():
            x = torch.cat([g(z[i:i + 256]) for i in range(0, n, 256)]) if n else torch.empty(0)
        return (quantize(x) if self.cfg.quantize else x).float(), z

    def dataset(self, names: Sequence[str], n: int, purpose: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xs, zs, ys = [], [], []
        for j, name in enumerate(names):
            x, z = self.samples(name, n, purpose)
            xs.append(x)
            zs.append(z)
            ys.append(torch.full((n,), j, dtype=torch.long))
        return torch.cat(xs), torch.cat(zs) if len({z.shape[1] for z in zs}) == 1 else torch.empty(0), torch.cat(ys)

    def attributor(self, names: Sequence[str], *, distance: str, restarts: int, lr_schedule: str | None = None
                   ) -> Any:
        from genattr.attribution.seed_reconstruction import SeedReconstruction

        cfg = self.cfg
        att = SeedReconstruction(distance=distance, restarts=restarts, steps=cfg.steps, lr=cfg.lr, seed=cfg.seed,
                                 chunk_size=cfg.chunk_size, engine=cfg.engine, ray_address=cfg.ray_address or None,
                                 device=cfg.device, lr_schedule=lr_schedule or cfg.lr_schedule)
        kw = {"feature_extractor": self.classifier()} if distance == "feature" else {}
        return att.fit({n: self.model(n) for n in names}, **kw)

    def attribute(self, att: Any, x: torch.Tensor, what: str) -> Any:
        t0 = time.perf_counter()
        res = att.attribute(x)
        self.log(f"  {what}: {x.shape[0]} images × {len(att.candidates_)} candidates × {att.restarts} restarts "
                 f"in {time.perf_counter() - t0:.0f} s")
        return res
