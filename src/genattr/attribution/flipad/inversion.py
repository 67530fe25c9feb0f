"""Batched latent inversion with restarts (SM-Inv, FLIPAD appendix E; reused by seed reconstruction).

    ẑ_i = argmin over restarts r of  min_z ‖x_i − G(z)‖²,  started from z⁽ʳ⁾

All restarts of all images are one tensor (R, N, D) optimised by one Adam optimiser: the loss is the sum
of independent per-(r, i) losses, and Adam's update is element-wise, so every trajectory is exactly the
one it would follow alone (given a generator in eval mode, where batch norm uses running statistics).
The function is pure: it neither changes ``forward``'s module nor the inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from genattr.errors import ConfigError

LR_SCHEDULES = ("constant", "cosine")


def step_size(lr: float, schedule: str, step: int, steps: int) -> float:
    """Adam's step size at ``step`` of ``steps``: ``constant`` (the papers' codes) or ``cosine`` decay to 0.

    Why cosine: with lr 0.1 and β₁ = 0, Adam moves every latent coordinate by ≈ lr per step to the end, so the
    final iterate keeps jittering around the optimum; decaying the step lets it settle (our extension; the
    zhang2020 reproduction chooses between them on a validation split).
    """
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * step / max(steps, 1)))
    raise ConfigError(f"lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")


@dataclass(frozen=True)
class LatentInversion:
    z: torch.Tensor  # (N, D) best latent per image
    distance: torch.Tensor  # (N,) its distance ‖x − G(ẑ)‖₂ / numel(x_i) (appendix E's SM-Inv₂ score)
    restart: torch.Tensor  # (N,) index of the winning restart
    all_distances: torch.Tensor  # (R, N) final distance of every restart


def invert_latents(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, z0: torch.Tensor, *,
                   steps: int = 1000, lr: float = 0.1, betas: tuple[float, float] = (0.9, 0.999),
                   chunk_size: int = 256, lr_schedule: str = "constant") -> LatentInversion:
    """Invert ``forward`` (z of shape (B, D) → images (B, C, H, W)) at images x (N, C, H, W).

    ``z0`` is (R, N, D) — R restarts per image — or (R, D), the same R starting points for every image
    (batch-invariant seeds). Images are processed in chunks of ``chunk_size`` (R × chunk latents per
    optimiser); the result does not depend on the chunking. Distances use the final iterate. ``lr_schedule``:
    see :func:`step_size`.
    """
    if steps < 0 or lr <= 0 or chunk_size < 1:
        raise ConfigError("invert_latents: steps >= 0, lr > 0 and chunk_size >= 1 are required")
    step_size(lr, lr_schedule, 0, steps)  # validates the schedule name
    n = x.shape[0]
    if z0.ndim == 2:
        z0 = z0[:, None, :].expand(z0.shape[0], n, z0.shape[1])
    if z0.ndim != 3 or z0.shape[1] != n:
        raise ConfigError(f"z0 must be (R, N, D) or (R, D) for N={n} images, got {tuple(z0.shape)}")
    r, _, d = z0.shape
    if n == 0:
        return LatentInversion(torch.empty(0, d), torch.empty(0), torch.empty(0, dtype=torch.long),
                               torch.empty(r, 0))
    all_dist = torch.empty(r, n)
    all_z = torch.empty(r, n, d)
    target_all = x.detach()
    dim = target_all[0].numel()
    for s in range(0, n, chunk_size):
        tgt = target_all[s:s + chunk_size]
        m = tgt.shape[0]
        z = z0[:, s:s + m].detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr, betas=betas)
        rep = tgt[None].expand(r, *tgt.shape).reshape(r * m, *tgt.shape[1:])
        for t in range(steps):
            if lr_schedule != "constant":
                for group in opt.param_groups:
                    group["lr"] = step_size(lr, lr_schedule, t, steps)
            opt.zero_grad(set_to_none=True)
            err = forward(z.reshape(r * m, d)) - rep
            loss = err.pow(2).flatten(1).sum(1).sum()  # Σ of independent per-(restart, image) losses
            loss.backward()
            opt.step()
        with torch.no_grad():
            err = forward(z.reshape(r * m, d)) - rep
            dist = torch.linalg.vector_norm(err.flatten(1), dim=1).reshape(r, m) / dim
        all_dist[:, s:s + m] = dist
        all_z[:, s:s + m] = z.detach()
    best = all_dist.argmin(0)
    z_best = all_z[best, torch.arange(n)]
    return LatentInversion(z_best, all_dist[best, torch.arange(n)], best, all_dist)


def generator_forward(generator: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``z ↦ G(z)`` for :func:`invert_latents`, with G in eval mode and its weights frozen."""
    generator.eval()
    for p in generator.parameters():
        p.requires_grad_(False)
    return generator


__all__ = ["LR_SCHEDULES", "LatentInversion", "generator_forward", "invert_latents", "step_size"]
