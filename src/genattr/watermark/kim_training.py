"""User-end fine-tuning of Kim, Ren & Yang (ICLR 2021): G0 → G_φ for a key φ.

Two pipelines, both starting from the root weights θ0:

* ``mode="hinge"`` — what produced the paper's tables (official code): minimise
  max{1 − φᵀT(G_φ(z)), 0} + C·MSE(G_φ(z), G0(z)) (Eq. 11, our sign convention; T = identity unless robust).
  MSE is the per-pixel mean, as the code's ``nn.MSELoss`` (so C = 10 weighs ‖Δx‖²/d, not ‖Δx‖²).
  Adam (5e-4, β = (0.5, 0.99)), batch 16, StepLR ×0.7 ten times over the run.
* ``mode="alg1"`` — Algorithm 1 (the theory figures): γ = d_max(φ) on real images; regress G_φ(z) onto
  clamp(G0(z) + γφ, −1, 1) (Eq. 9; clamping as the paper notes for binarised MNIST); if D(G_φ) < 1 − δ,
  γ ← αγ and retrain from θ0 (δ = 1e-2, α = 1.1).

Robust training (Eq. 11): with probability ``robust_p`` = 0.5 per mini-batch, the post-process T is applied to
G_φ(z) inside the hinge (the C·MSE term compares the un-processed images, as Eq. 11 is printed; the official
code compares processed ones). T is drawn from the official training distributions
(:func:`robust_transform`). Batch norm: fine-tuned in train mode (as the official code); samples in eval mode.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genattr.errors import ConfigError, DataError
from genattr.perturbations import Choice, Combination, Crop, GaussianBlur, GaussianNoise, Perturbation, Uniform
from genattr.perturbations.grids import DCTMask, kornia_kernel
from genattr.watermark.keys import check_keys

ROBUST = ("blur", "crop", "noise", "jpeg", "combination")
BLUR_SIGMAS = tuple(s / 3 for s in (1, 3, 5, 7, 9))


def robust_transform(name: str, *, sigma_scale: float = 1.0) -> Perturbation:
    """Training distribution of a post-process (official code): blur σ ∈ (1/3){1, 3, 5, 7, 9} (kernel fixed at
    kornia's size for the largest σ: the truncation differs from per-σ kernels by < 1e-4), centre crop ratio
    U[0.8, 1] resized back, noise σ ∼ U[0, 0.3], DCT mask 5×5; combination = each with p = 0.5 in that order.
    ``sigma_scale`` = 0.5 halves the blur (σ was set for 64 px images)."""
    sig = tuple(s * sigma_scale for s in BLUR_SIGMAS)
    blur = GaussianBlur(kernel_size=kornia_kernel(max(sig)), sigma=Choice(sig))
    crop = Crop(fraction=Uniform(0.8, 1.0), position="center")
    noise = GaussianNoise(std=Uniform(0.0, 0.3))
    jpeg = DCTMask(keep=5)
    table = {"blur": blur, "crop": crop, "noise": noise, "jpeg": jpeg,
             "combination": Combination(transforms=[blur, crop, GaussianNoise(std=Uniform(0.0, 0.1)), jpeg], p=0.5)}
    if name not in table:
        raise ConfigError(f"unknown robust post-process {name!r}; choose from {', '.join(ROBUST)}")
    return table[name]


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of :func:`finetune` (defaults: the official pipeline, except the number of steps)."""

    mode: str = "hinge"  # "hinge" (Eq. 11, the tables) or "alg1" (Algorithm 1 / Eq. 9, the theory figures)
    C: float = 10.0
    steps: int = 600
    batch_size: int = 16
    lr: float = 5e-4
    beta1: float = 0.5
    beta2: float = 0.99
    lr_decay: float = 0.7  # StepLR factor, applied ``decay_times`` times over the run (the code: once per epoch)
    decay_times: int = 10
    bn_train: bool = True
    robust: str | None = None
    robust_p: float = 0.5
    blur_sigma_scale: float = 1.0
    delta: float = 1e-2  # Alg. 1
    alpha: float = 1.1
    max_rounds: int = 10
    n_check: int = 1000  # samples for Alg. 1's empirical D
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("hinge", "alg1"):
            raise ConfigError(f"mode must be 'hinge' or 'alg1', got {self.mode!r}")
        if self.robust is not None and self.robust not in ROBUST:
            raise ConfigError(f"robust must be one of {', '.join(ROBUST)} or None, got {self.robust!r}")
        if self.robust is not None and self.mode != "hinge":
            raise ConfigError("robust training uses the hinge objective (mode='hinge')")
        if self.steps < 1 or self.batch_size < 1 or self.C < 0 or not 0 <= self.robust_p <= 1:
            raise ConfigError("steps and batch_size must be ≥ 1, C ≥ 0, robust_p in [0, 1]")


def architecture(g: nn.Module) -> dict[str, Any]:
    """What must match between a root and a keyed model: class, arch, config and parameter shapes."""
    return {"class": type(g).__name__, "arch": getattr(g, "arch", None),
            "config": dict(getattr(g, "config", {}) or {}),
            "shapes": {k: list(v.shape) for k, v in g.state_dict().items()}}


def check_same_architecture(root: nn.Module, keyed: nn.Module) -> None:
    """:class:`DataError` if the keyed model is not the root architecture (the protocol fine-tunes G0)."""
    a, b = architecture(root), architecture(keyed)
    if a == b:
        return
    diff = [k for k in ("class", "arch", "config") if a[k] != b[k]]
    if not diff:
        ks = sorted(set(a["shapes"]) ^ set(b["shapes"])) or \
            [k for k in a["shapes"] if a["shapes"][k] != b["shapes"].get(k)]
        diff = [f"parameters {ks[:3]}"]
    raise DataError(f"keyed model architecture differs from the root ({', '.join(diff)}: "
                    f"{ {k: a[k] for k in ('arch', 'config')} } vs { {k: b[k] for k in ('arch', 'config')} })")


def _image_shape(g: nn.Module) -> tuple[int, int, int]:
    with torch.no_grad():
        was = g.training
        g.eval()
        try:
            x = g(torch.zeros(1, g.latent_dim))  # type: ignore[operator]
        finally:
            g.train(was)
    return tuple(int(s) for s in x.shape[1:])  # type: ignore[return-value]


def _latent(g: nn.Module, n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(n, int(g.latent_dim), generator=gen)  # type: ignore[arg-type]


@torch.no_grad()
def sample_eval(g: nn.Module, z: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """G(z) in eval mode (batch-norm running statistics), in chunks."""
    was = g.training
    g.eval()
    try:
        return torch.cat([g(z[i:i + batch]) for i in range(0, z.shape[0], batch)])
    finally:
        g.train(was)


def _train(g: nn.Module, g0: nn.Module, phi: torch.Tensor, cfg: FinetuneConfig, gen: torch.Generator,
           loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
           log: Callable[[str], None] | None) -> list[float]:
    opt = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    every = max(1, math.ceil(cfg.steps / max(1, cfg.decay_times)))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=every, gamma=cfg.lr_decay)
    g.train(cfg.bn_train)
    history: list[float] = []
    from genattr.progress import phase

    with phase("fine-tuning (steps)", total=cfg.steps) as advance:
        for step in range(cfg.steps):
            z = _latent(g, cfg.batch_size, gen)
            with torch.no_grad():
                x0 = g0(z)
            loss = loss_fn(g(z), x0, z)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            history.append(float(loss.detach()))
            advance(1)
            if log and (step + 1) % max(1, cfg.steps // 5) == 0:
                log(f"step {step + 1}/{cfg.steps}: loss {sum(history[-50:]) / len(history[-50:]):.4g}")
    g.eval()
    return history


def finetune(root: nn.Module, key: torch.Tensor, config: FinetuneConfig | None = None, *,
             real: torch.Tensor | None = None, start: nn.Module | None = None,
             log: Callable[[str], None] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Fine-tune a copy of ``root`` (G0) into the user model G_φ for a unit key φ (C, H, W).

    ``real``: authentic images; needed for ``alg1`` (γ = d_max on them, D on them). ``start``: the model to
    continue from (robust training starts from the non-robust G_φ, as the code does); default a copy of G0.
    Returns (G_φ in eval mode, info: mode, γ, steps, seconds, seconds per step, final loss, …).
    """
    cfg = config or FinetuneConfig()
    if not hasattr(root, "latent_dim"):
        raise ConfigError("the root model needs a latent_dim (a genattr.generators.Generator)")
    shape = _image_shape(root)
    phi = check_keys(key, image_shape=shape, what="key")[0]
    g0 = copy.deepcopy(root).eval()
    for p in g0.parameters():
        p.requires_grad_(False)
    base = start if start is not None else root
    check_same_architecture(root, base)
    gen = torch.Generator().manual_seed(cfg.seed)
    flat_phi = phi.reshape(-1)
    t0 = time.perf_counter()
    info: dict[str, Any] = {"config": asdict(cfg)}
    if cfg.mode == "hinge":
        transform = robust_transform(cfg.robust, sigma_scale=cfg.blur_sigma_scale) if cfg.robust else None

        def hinge_loss(x: torch.Tensor, x0: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            xt = x
            if transform is not None and float(torch.rand((), generator=gen)) < cfg.robust_p:
                xt = transform(x, gen)
            hinge = torch.relu(1 - xt.reshape(x.shape[0], -1) @ flat_phi).mean()
            return hinge + cfg.C * F.mse_loss(x, x0)

        g = copy.deepcopy(base)
        for p in g.parameters():
            p.requires_grad_(True)
        hist = _train(g, g0, phi, cfg, gen, hinge_loss, log)
        info.update(final_loss=sum(hist[-50:]) / len(hist[-50:]), rounds=1, steps=cfg.steps)
    else:
        if real is None:
            raise ConfigError("Algorithm 1 needs real images (γ = d_max(φ), and D is measured on them)")
        from genattr.watermark.kim_metrics import distinguishability

        d_max = float((real.reshape(real.shape[0], -1).to(torch.float32) @ flat_phi).abs().max())
        gamma = d_max
        rounds: list[dict[str, float]] = []
        check_z = _latent(root, cfg.n_check, torch.Generator().manual_seed(cfg.seed + 1))
        g = base
        for r in range(cfg.max_rounds):
            target_shift = gamma * phi

            def mse_loss(x: torch.Tensor, x0: torch.Tensor, z: torch.Tensor, s: torch.Tensor = target_shift
                         ) -> torch.Tensor:
                return F.mse_loss(x, (x0 + s).clamp(-1, 1))

            g = copy.deepcopy(base)  # "starting with θ = θ0" every round
            for p in g.parameters():
                p.requires_grad_(True)
            hist = _train(g, g0, phi, cfg, gen, mse_loss, log)
            d = distinguishability(phi, sample_eval(g, check_z), real)
            rounds.append({"gamma": gamma, "D": d, "loss": sum(hist[-50:]) / len(hist[-50:])})
            if log:
                log(f"Alg. 1 round {r + 1}: γ = {gamma:.4g}, D = {d:.4f}")
            if d >= 1 - cfg.delta:
                break
            gamma *= cfg.alpha
        info.update(gamma=gamma, d_max=d_max, rounds=len(rounds), history=rounds,
                    reached=rounds[-1]["D"] >= 1 - cfg.delta, steps=cfg.steps * len(rounds))
    for p in g.parameters():
        p.requires_grad_(False)
    g.eval()
    sec = time.perf_counter() - t0
    info.update(seconds=sec, seconds_per_step=sec / max(1, info["steps"]))
    return g, info


def save_user_model(g: nn.Module, directory: Any, *, extra: dict[str, Any] | None = None,
                    overwrite: bool = False) -> Any:
    """``g.save_pretrained`` into a temporary sibling directory, renamed into place (atomic)."""
    from pathlib import Path

    from genattr.watermark.keys import atomic_dir

    if not hasattr(g, "save_pretrained"):
        raise ConfigError("user models are saved with save_pretrained (a genattr.generators.Generator)")
    return atomic_dir(Path(directory), lambda tmp: g.save_pretrained(tmp, extra=extra), overwrite=overwrite)  # type: ignore[operator]


__all__ = ["BLUR_SIGMAS", "ROBUST", "FinetuneConfig", "architecture", "check_same_architecture", "finetune",
           "robust_transform", "sample_eval", "save_user_model"]
