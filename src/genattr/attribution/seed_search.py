"""Seed reconstruction, search side: distance spaces (pixels or features) and the batched Adam latent search."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genattr.attribution.flipad.inversion import invert_latents, step_size
from genattr.attribution.seed_candidates import frozen_copy
from genattr.errors import ConfigError, GenattrError

__all__ = ["FeatureMap", "Problem", "Reconstruction", "Settings", "objective", "on_device", "reconstruct",
           "reconstruct_looped", "target_of"]


class FeatureMap(nn.Module):
    """x ↦ extractor.features(resize(x)): the ℓ2-feature space (bilinear resize to ``size`` if needed)."""

    def __init__(self, extractor: nn.Module, size: int | None = 32) -> None:
        super().__init__()
        if not callable(getattr(extractor, "features", None)):
            raise ConfigError(f"the feature extractor {type(extractor).__name__} has no features(x) method")
        self.extractor, self.size = extractor, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.extractor.features(x).flatten(1)


def objective(generator: nn.Module, feature: nn.Module | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """z ↦ the space distances are measured in: g(z), or f(g(z)) for the feature distance."""
    if feature is None:
        return generator
    return lambda z: feature(generator(z))


@torch.no_grad()
def target_of(x: torch.Tensor, feature: nn.Module | None, batch_size: int = 256) -> torch.Tensor:
    if feature is None:
        return x
    return torch.cat([feature(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]) if x.shape[0] \
        else feature(x)


@dataclass(frozen=True)
class Reconstruction:
    """Seed reconstruction of n images on one candidate with R restarts."""

    restart_distances: torch.Tensor  # (R, n) final RMS distance of every restart
    best_seed: torch.Tensor  # (n, D) the seed of the best restart
    best_restart: torch.Tensor  # (n,) its index

    @property
    def distance(self) -> torch.Tensor:
        """(n,) d_g = the smallest distance over the restarts."""
        return self.restart_distances.min(0).values if self.restart_distances.shape[0] else \
            torch.full((self.restart_distances.shape[1],), math.inf)

    @staticmethod
    def concat(parts: Sequence[Reconstruction], restarts: int, latent_dim: int) -> Reconstruction:
        if not parts:
            return Reconstruction(torch.empty(restarts, 0), torch.empty(0, latent_dim),
                                  torch.empty(0, dtype=torch.long))
        return Reconstruction(torch.cat([p.restart_distances for p in parts], 1),
                              torch.cat([p.best_seed for p in parts]), torch.cat([p.best_restart for p in parts]))


_DEVICE_COPIES: weakref.WeakKeyDictionary[nn.Module, dict[str, nn.Module]] = weakref.WeakKeyDictionary()


def on_device(module: nn.Module | None, device: str | None) -> nn.Module | None:
    """``module`` itself on the CPU; elsewhere a cached copy on ``device`` (the original is never moved)."""
    if module is None or device is None or torch.device(device).type == "cpu":
        return module
    copies = _DEVICE_COPIES.setdefault(module, {})
    if device not in copies:
        copies[device] = frozen_copy(module).to(device)
    return copies[device]


def reconstruct(generator: nn.Module, x: torch.Tensor, z0: torch.Tensor, *, feature: nn.Module | None = None,
                steps: int = 500, lr: float = 0.1, betas: tuple[float, float] = (0.0, 0.99),
                name: str = "G", device: str | None = None, lr_schedule: str = "constant") -> Reconstruction:
    """Batched seed reconstruction: all restarts (z0: (R, D) or (R, n, D)) of all images x in one tensor, one
    Adam. ``generator`` (and ``feature``) must be in eval mode with frozen weights (see :func:`frozen_copy`).
    ``device``: run there (e.g. "cuda"); results come back on the CPU.
    """
    if device is not None and torch.device(device).type != "cpu":
        generator, feature = on_device(generator, device), on_device(feature, device)  # type: ignore[assignment]
        x, z0 = x.to(device), z0.to(device)
    target = target_of(x, feature)
    dim = target[0].numel() if target.shape[0] else 1
    with torch.enable_grad():
        inv = invert_latents(objective(generator, feature), target, z0, steps=steps, lr=lr, betas=tuple(betas),
                             chunk_size=max(1, x.shape[0]), lr_schedule=lr_schedule)
    rms = inv.all_distances.cpu() * math.sqrt(dim)  # invert_latents reports ‖e‖₂ / numel; we report ‖e‖₂ / √numel
    if not bool(torch.isfinite(rms).all()):
        raise GenattrError(f"candidate {name!r} produced NaN or infinite outputs while reconstructing seeds "
                           "(check the generator for numerical problems)")
    return Reconstruction(rms, inv.z.detach().cpu().clone(), inv.restart.cpu().clone())


def reconstruct_looped(generator: nn.Module, x: torch.Tensor, z0: torch.Tensor, *,
                       feature: nn.Module | None = None, steps: int = 500, lr: float = 0.1,
                       betas: tuple[float, float] = (0.0, 0.99), lr_schedule: str = "constant") -> Reconstruction:
    """Reference implementation: one Adam per (image, restart) attempt, as in Alg. 1 (slow; tests, benchmark)."""
    forward = objective(generator, feature)
    target = target_of(x, feature)
    r, n, d = z0.shape[0], x.shape[0], z0.shape[1]
    dist = torch.empty(r, n)
    seeds = torch.empty(r, n, d)
    for i in range(n):
        t = target[i:i + 1]
        for k in range(r):
            z = z0[k:k + 1].detach().clone().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=lr, betas=tuple(betas))
            for t_ in range(steps):
                for group in opt.param_groups:
                    group["lr"] = step_size(lr, lr_schedule, t_, steps)
                opt.zero_grad(set_to_none=True)
                loss = (forward(z) - t).pow(2).sum()
                loss.backward()
                opt.step()
            with torch.no_grad():
                err = forward(z) - t
                dist[k, i] = torch.linalg.vector_norm(err.flatten()) / math.sqrt(err.numel())
            seeds[k, i] = z.detach()[0]
    best = dist.argmin(0) if r else torch.empty(n, dtype=torch.long)
    return Reconstruction(dist, seeds[best, torch.arange(n)] if r else torch.empty(n, d), best)


@dataclass(frozen=True)
class Problem:
    """One candidate's share of a scoring call: reconstruct images ``x`` (rows ``index`` of the batch)."""

    name: str
    generator: nn.Module
    feature: nn.Module | None
    x: torch.Tensor
    index: torch.Tensor
    z0: torch.Tensor


@dataclass(frozen=True)
class Settings:
    steps: int
    lr: float
    betas: tuple[float, float]
    chunk_size: int
    device: str | None = None
    lr_schedule: str = "constant"
