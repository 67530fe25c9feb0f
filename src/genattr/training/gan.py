"""GAN training loops for the four zoo architectures (FLIPAD G.2 losses), deterministic and resumable.

Losses (one function each, pure given the networks' outputs):
* dcgan   — BCE with soft labels 0.9 (real) / 0.1 (fake) for D; non-saturating BCE for G.
* wgan_gp — Wasserstein critic loss + gradient penalty λ·(‖∇D(x̂)‖₂ − 1)² (Gulrajani et al. 2017, λ = 10),
            5 critic steps per generator step, Adam β = (0, 0.9).
* lsgan   — least squares: D ½[(D(x) − 1)² + D(G(z))²], G ½(D(G(z)) − 1)² (Mao et al. 2017).
* ebgan   — D energy = auto-encoder MSE; D: E(x) + [m − E(G(z))]₊, G: E(G(z)) + 0.1·PT (pull-away term on
            the encoder embedding, Zhao et al. 2016 eq. 6). Our energy is a per-pixel mean in [-1, 1] units,
            where real images reach ≈0.1; with m = 1 the hinge let D push fakes out of reach and G stalled
            on grey noise, m = 0.3 trains.

Determinism: every random draw comes from generators seeded by ``seed`` (data order per epoch from
``seed + epoch``); a checkpoint at the end of each epoch stores weights, optimiser and RNG states (all as
safetensors + JSON), so a resumed run reproduces an uninterrupted one bit for bit on the same machine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genattr.errors import ConfigError, DataError
from genattr.generators import (
    DCGANDiscriminator,
    EBGANDiscriminator,
    Generator,
    LSGANDiscriminator,
    create_generator,
)
from genattr.training.checkpoint import read_checkpoint, restore_checkpoint, write_checkpoint

CHECKPOINT = "checkpoint.safetensors"
STATE = "train_state.json"


@dataclass
class TrainConfig:
    arch: str
    seed: int = 0
    epochs: int = 5
    batch_size: int = 128
    lr: float = 2e-4
    betas: tuple[float, float] | None = None  # None → the architecture's default (G.2)
    n_critic: int | None = None  # discriminator steps per generator step; None → default
    ngf: int = 64
    ndf: int = 64
    latent_dim: int = 100
    gp_lambda: float = 10.0
    soft_labels: tuple[float, float] = (0.9, 0.1)
    ebgan_margin: float = 0.3  # m of the hinge [m − E(G(z))]₊ on per-pixel mean-squared energies
    d_norm: str = "batch"  # EBGAN auto-encoder normalisation: "batch" (G.2) or "none"
    pt_weight: float = 0.1
    data: str = "fashion-mnist"
    limit: int | None = None  # use only the first `limit` training images (tests)
    sample_every: int = 1  # epochs between sample grids
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> TrainConfig:
        d = ARCH_DEFAULTS.get(self.arch)
        if d is None:
            raise ConfigError(f"no training recipe for architecture {self.arch!r}; known: {sorted(ARCH_DEFAULTS)}")
        cfg = TrainConfig(**asdict(self))
        cfg.betas = tuple(self.betas) if self.betas is not None else d["betas"]  # type: ignore[assignment]
        cfg.n_critic = self.n_critic if self.n_critic is not None else d["n_critic"]
        cfg.soft_labels = tuple(cfg.soft_labels)  # type: ignore[assignment]
        if cfg.epochs < 1 or cfg.batch_size < 2:
            raise ConfigError("epochs must be ≥ 1 and batch_size ≥ 2")
        return cfg


# G.2: generator trained every 5th iteration for WGAN-GP, LSGAN and EBGAN; Adam β=(0, 0.9) for WGAN-GP.
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "dcgan": {"betas": (0.5, 0.999), "n_critic": 1},
    "wgan_gp": {"betas": (0.0, 0.9), "n_critic": 5},
    "lsgan": {"betas": (0.5, 0.999), "n_critic": 5},
    "ebgan": {"betas": (0.5, 0.999), "n_critic": 5},
}


# Loss options that only one architecture reads; the others ignore them (also when comparing configs).
_ARCH_ONLY = {"soft_labels": "dcgan", "gp_lambda": "wgan_gp", "ebgan_margin": "ebgan", "pt_weight": "ebgan",
              "d_norm": "ebgan"}


def _resume_key(config: dict[str, Any]) -> dict[str, Any]:
    """What must match to resume a run: everything but the epoch count (more epochs extend a run) and
    options the architecture does not use."""
    return {k: v for k, v in config.items()
            if k != "epochs" and _ARCH_ONLY.get(k, config["arch"]) == config["arch"]}


def make_discriminator(cfg: TrainConfig, channels: int) -> nn.Module:
    if cfg.arch == "dcgan":
        return DCGANDiscriminator(channels=channels, ndf=cfg.ndf, norm="batch")
    if cfg.arch == "wgan_gp":
        return DCGANDiscriminator(channels=channels, ndf=cfg.ndf, norm="layer")
    if cfg.arch == "lsgan":
        return LSGANDiscriminator(channels=channels)
    if cfg.arch == "ebgan":
        return EBGANDiscriminator(channels=channels, ndf=cfg.ndf, norm=cfg.d_norm)
    raise ConfigError(f"no discriminator for {cfg.arch!r}")


# ---- losses (pure functions of network outputs) ---------------------------------------------------------

def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator
                     ) -> torch.Tensor:
    """E[(‖∇_x̂ D(x̂)‖₂ − 1)²] on random interpolates x̂ (Gulrajani et al. 2017, eq. 3)."""
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=gen).to(real)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def pull_away_term(embedding: torch.Tensor) -> torch.Tensor:
    """EBGAN pull-away term (Zhao et al. 2016, eq. 6): mean squared cosine similarity of distinct pairs."""
    n = embedding.shape[0]
    if n < 2:
        return embedding.new_zeros(())
    e = F.normalize(embedding, dim=1)
    sim = e @ e.t()
    return (sim.pow(2).sum() - n) / (n * (n - 1))


def _d_loss(cfg: TrainConfig, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator
            ) -> torch.Tensor:
    if cfg.arch == "dcgan":
        hi, lo = cfg.soft_labels
        lr, lf = D(real), D(fake)
        return F.binary_cross_entropy_with_logits(lr, torch.full_like(lr, hi)) + \
            F.binary_cross_entropy_with_logits(lf, torch.full_like(lf, lo))
    if cfg.arch == "wgan_gp":
        return D(fake).mean() - D(real).mean() + cfg.gp_lambda * gradient_penalty(D, real, fake, gen)
    if cfg.arch == "lsgan":
        return 0.5 * ((D(real) - 1).pow(2).mean() + D(fake).pow(2).mean())
    if cfg.arch == "ebgan":
        e_real, _ = D(real)
        e_fake, _ = D(fake)
        return e_real.mean() + F.relu(cfg.ebgan_margin - e_fake).mean()
    raise ConfigError(cfg.arch)


def _g_loss(cfg: TrainConfig, D: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    if cfg.arch == "dcgan":
        lf = D(fake)
        return F.binary_cross_entropy_with_logits(lf, torch.ones_like(lf))
    if cfg.arch == "wgan_gp":
        return -D(fake).mean()
    if cfg.arch == "lsgan":
        return 0.5 * (D(fake) - 1).pow(2).mean()
    if cfg.arch == "ebgan":
        e_fake, code = D(fake)
        return e_fake.mean() + cfg.pt_weight * pull_away_term(code)
    raise ConfigError(cfg.arch)


@dataclass
class TrainResult:
    generator: Generator
    out_dir: Path
    epochs_done: int
    seconds: float
    history: list[dict[str, float]]


def train_gan(cfg: TrainConfig, out_dir: str | Path, *, images: torch.Tensor | None = None,
              resume: bool = True, progress: bool = True,
              on_epoch: Callable[[int, Generator, list[dict[str, float]]], bool | None] | None = None
              ) -> TrainResult:
    """Train one GAN; writes checkpoints, sample grids and finally ``generator/`` (save_pretrained).

    ``images``: float (N,C,32,32) in [-1, 1]; default loads ``cfg.data`` (Fashion-MNIST train, padded to 32).
    ``on_epoch(epoch, G, history)`` runs before each checkpoint (G in eval mode); it may add metrics to
    ``history[-1]`` (they are checkpointed) and return True to stop early (a converged run): the stop is
    recorded, so resuming a stopped run with the same config trains no further.
    """
    cfg = cfg.resolved()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, out, images, resume, progress, on_epoch)
    finally:
        torch.set_num_threads(threads_before)


def _train(cfg: TrainConfig, out: Path, images: torch.Tensor | None, resume: bool, progress: bool,
           on_epoch: Callable[[int, Generator, list[dict[str, float]]], bool | None] | None) -> TrainResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from genattr.data import load_dataset, save_png

    if images is None:
        images = load_dataset(cfg.data, "train").to_model(32)
    if cfg.limit is not None:
        images = images[: cfg.limit]
    if images.ndim != 4 or images.shape[-1] != 32 or not torch.isfinite(images).all():
        raise DataError(f"training images must be finite (N,C,32,32), got {tuple(images.shape)}")
    n, channels = images.shape[0], images.shape[1]
    if n < cfg.batch_size:
        raise ConfigError(f"{n} training images is fewer than one batch of {cfg.batch_size}")

    with torch.random.fork_rng(devices=[]):  # weight init from cfg.seed without touching the caller's RNG
        torch.manual_seed(cfg.seed)
        G = create_generator(cfg.arch, latent_dim=cfg.latent_dim, channels=channels, ngf=cfg.ngf)
        D = make_discriminator(cfg, channels)
        init_rng = torch.get_rng_state()
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas)  # type: ignore[arg-type]
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)  # type: ignore[arg-type]
    noise = torch.Generator().manual_seed(cfg.seed + 1_000_003)
    fixed_z = torch.randn(64, cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed + 7))
    start_epoch, step, history, elapsed, stopped = 0, 0, [], 0.0, False

    ckpt = out / CHECKPOINT
    if resume and ckpt.is_file():
        t, meta = read_checkpoint(ckpt)
        # Everything but the epoch count must match: resuming with more epochs extends a finished run.
        # Options added after a run was saved take their defaults, so old runs stay resumable.
        defaults = json.loads(json.dumps(asdict(TrainConfig(arch=cfg.arch))))
        if _resume_key(defaults | meta["config"]) != _resume_key(json.loads(json.dumps(asdict(cfg)))):
            raise ConfigError(f"{out} holds a run with a different config; use another --out or resume=False")
        restore_checkpoint(t, meta, modules={"G": G, "D": D}, optimizers={"opt_g": opt_g, "opt_d": opt_d})
        noise.set_state(t["rng.noise"])
        start_epoch, step, history, elapsed = meta["epoch"], meta["step"], meta["history"], meta["seconds"]
        stopped = bool(meta.get("stopped", False))
        init_rng = t["rng.torch"]

    steps_per_epoch = n // cfg.batch_size
    t0 = time.perf_counter() - elapsed
    G.train()
    D.train()
    # Dropout in the discriminators draws from the global RNG; run the loop on a fork seeded from the run's
    # own state (checkpointed) so training is reproducible and the caller's RNG is left as it was.
    end_epoch = start_epoch if stopped else cfg.epochs
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[stats]}"), TimeRemainingColumn())
    with torch.random.fork_rng(devices=[]), Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(f"{cfg.arch} s{cfg.seed}", total=end_epoch * steps_per_epoch,
                            completed=start_epoch * steps_per_epoch, stats="")
        torch.set_rng_state(init_rng)
        for epoch in range(start_epoch, end_epoch):
            order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
            sums = {"loss_d": 0.0, "loss_g": 0.0}
            g_steps = 0
            for b in range(steps_per_epoch):
                real = images[order[b * cfg.batch_size:(b + 1) * cfg.batch_size]]
                z = torch.randn(real.shape[0], cfg.latent_dim, generator=noise)
                with torch.no_grad():
                    fake = G(z)
                loss_d = _d_loss(cfg, D, real, fake, noise)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                sums["loss_d"] += loss_d.item()
                step += 1
                if step % cfg.n_critic == 0:  # type: ignore[operator]
                    z = torch.randn(real.shape[0], cfg.latent_dim, generator=noise)
                    loss_g = _g_loss(cfg, D, G(z))
                    opt_g.zero_grad(set_to_none=True)
                    loss_g.backward()
                    opt_g.step()
                    sums["loss_g"] += loss_g.item()
                    g_steps += 1
                bar.update(task, advance=1, stats=f"D {loss_d.item():+.3f}")
            history.append({"epoch": epoch + 1, "loss_d": sums["loss_d"] / steps_per_epoch,
                            "loss_g": sums["loss_g"] / max(g_steps, 1),
                            "seconds": time.perf_counter() - t0})
            if (epoch + 1) % cfg.sample_every == 0 or epoch + 1 == cfg.epochs:
                G.eval()
                with torch.no_grad():
                    save_png(G(fixed_z), out / "samples" / f"epoch_{epoch + 1:03d}.png", scale=2)
                G.train()
            if on_epoch is not None:
                G.eval()
                stopped = bool(on_epoch(epoch + 1, G, history))
                G.train()
            _save_checkpoint(out, cfg, G, D, opt_g, opt_d, noise, epoch + 1, step, history,
                             time.perf_counter() - t0, stopped)
            if stopped:
                end_epoch = epoch + 1
                break
    G.eval()
    seconds = history[-1]["seconds"] if history else time.perf_counter() - t0
    G.save_pretrained(out / "generator", extra={"train_config": asdict(cfg), "train_seconds": seconds,
                                                "epochs_done": end_epoch, "stopped_early": stopped})
    return TrainResult(G, out, end_epoch, seconds, history)


def _save_checkpoint(out: Path, cfg: TrainConfig, G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer,
                     opt_d: torch.optim.Optimizer, noise: torch.Generator, epoch: int, step: int,
                     history: list[dict[str, float]], seconds: float, stopped: bool = False) -> None:
    meta = {"config": asdict(cfg), "epoch": epoch, "step": step, "history": history, "seconds": seconds,
            "stopped": stopped}
    write_checkpoint(out / CHECKPOINT, modules={"G": G, "D": D}, optimizers={"opt_g": opt_g, "opt_d": opt_d},
                     rngs={"noise": noise.get_state(), "torch": torch.get_rng_state()}, meta=meta,
                     state_copy=out / STATE)
