"""The fingerprint visualisation network of Yu et al. 2019 §3.3 (Figure 3, eq. 1–4), registered as
``gan-fingerprint-visnet``.

* An autoencoder R reconstructs the image; the *image fingerprint* is the residual F_im = R(I) − I.
* Each source y has a freely trainable *model fingerprint* image F_mod^y of the same size.
* corr(F_im, F_mod^y) — the inner product of the zero-mean, unit-norm, vectorised images — is the softmax
  logit of the source (eq. 3). Eq. 3 prints a ratio of correlations, but the text calls corr "the softmax
  logit"; since corr ∈ [−1, 1] we multiply it by a fixed ``logit_scale`` (a softmax temperature) so the
  cross-entropy can approach zero.
* Reconstruction is grounded by L_pix = ‖R(I) − I‖₁ (eq. 1, as a per-pixel mean) and a WGAN-GP adversarial
  loss (eq. 2, Gulrajani et al.): the critic D minimises D(R(I)) − D(I) + γ·GP, R minimises −D(R(I)).
* Objective (eq. 4): λ₁ L_pix + λ₂ L_adv + λ₃ L_cls with the paper's λ = (20, 0.1, 1).

Scores are the correlations corr(F_im, F_mod^y) ∈ [−1, 1] (higher = more likely).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genattr.attribution.base import Attributor, Capabilities, InvalidInputError, check_images
from genattr.attribution.gan_fingerprint import collect_training_data
from genattr.attribution.passive_baselines import normalized_correlation
from genattr.attribution.registry import register_attributor
from genattr.errors import ConfigError
from genattr.sampling import derive_seed


class ReconstructionAE(nn.Module):
    """R: a small convolutional autoencoder (two 2× downsamplings), tanh output in [-1, 1]."""

    def __init__(self, channels: int = 1, width: int = 16) -> None:
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, w, 3, padding=1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.LeakyReLU(0.2, True),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, channels, 3, padding=1), nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class Critic(nn.Module):
    """D_rec: a WGAN-GP critic (no normalisation layers, as the gradient penalty requires)."""

    def __init__(self, channels: int = 1, width: int = 16, image_size: int = 32) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Flatten(), nn.Linear(4 * w * max(1, image_size // 8) ** 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(-1)


def correlation_logits(image_fp: torch.Tensor, model_fp: torch.Tensor, scale: float) -> torch.Tensor:
    """Eq. 3 logits: scale · corr(F_im, F_mod^y), differentiable (float32)."""
    a = image_fp.flatten(1)
    b = model_fp.flatten(1)
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return scale * (a @ b.T)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Gulrajani et al. 2017: E[(‖∇D(x̂)‖₂ − 1)²] at random interpolates x̂ of real and fake images."""
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=generator)
    xh = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(xh).sum(), xh, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def visnet_losses(ae: nn.Module, critic: nn.Module, model_fp: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *,
                  logit_scale: float, lambdas: tuple[float, float, float] = (20.0, 0.1, 1.0),
                  gp_weight: float = 10.0, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Every term of eq. 1–4 for one batch.

    Returns ``pix`` (eq. 1), ``adv`` (R's adversarial term −D(R(I))), ``cls`` (eq. 3), ``total`` (eq. 4,
    minimised by R and the model fingerprints), ``critic`` (eq. 2: D(R(I)) − D(I) + γ·GP, minimised by D on
    detached reconstructions), ``gp`` and ``logits``.
    """
    rec = ae(x)
    image_fp = rec - x
    logits = correlation_logits(image_fp, model_fp, logit_scale)
    pix = (rec - x).abs().mean()
    adv = -critic(rec).mean()
    cls = F.cross_entropy(logits, y)
    total = lambdas[0] * pix + lambdas[1] * adv + lambdas[2] * cls
    fake = rec.detach()
    gp = gradient_penalty(critic, x, fake, generator)
    critic_loss = critic(fake).mean() - critic(x).mean() + gp_weight * gp
    return {"pix": pix, "adv": adv, "cls": cls, "total": total, "critic": critic_loss, "gp": gp, "logits": logits}


@register_attributor("gan-fingerprint-visnet")
class FingerprintVisNet(Attributor):
    """Yu et al. 2019 §3.3 visualisation network as an attributor; ``fit(candidates)`` as the classifier
    (name → images or sampler; include ``"real"``). ``image_fingerprints(x)`` and ``model_fingerprints_``
    are the images of Figure 7."""

    capabilities = Capabilities(needs_training_images=True, supports_open_set=True)

    def __init__(self, *, width: int = 16, critic_width: int = 16, epochs: int = 4, batch_size: int = 64,
                 lr: float = 2e-4, fingerprint_lr: float = 1e-2, lambda_pix: float = 20.0, lambda_adv: float = 0.1,
                 lambda_cls: float = 1.0, gp_weight: float = 10.0, logit_scale: float = 20.0,
                 n_samples: int = 2000, seed: int = 0) -> None:
        self.width = width
        self.critic_width = critic_width
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.fingerprint_lr = fingerprint_lr
        self.lambda_pix = lambda_pix
        self.lambda_adv = lambda_adv
        self.lambda_cls = lambda_cls
        self.gp_weight = gp_weight
        self.logit_scale = logit_scale
        self.n_samples = n_samples
        self.seed = seed

    def _build_module(self, name: str) -> nn.Module:
        if name != "ae_":
            raise NotImplementedError(name)
        return ReconstructionAE(self.image_shape_[0], self.width)

    def _fit(self, candidates: Mapping[str, Any], *, progress: bool = False) -> None:
        for p in ("width", "critic_width", "batch_size", "n_samples"):
            if not isinstance(getattr(self, p), int) or getattr(self, p) < 1:
                raise ConfigError(f"{p} must be a positive integer, got {getattr(self, p)!r}")
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"epochs must be a non-negative integer, got {self.epochs!r}")
        if len(candidates) < 2:
            raise ConfigError("the visualisation network needs at least two candidates")
        x, y = collect_training_data(candidates, self.n_samples, self.seed)
        c, h, w = x.shape[1:]
        if h != w or h % 4:
            raise InvalidInputError(f"square images with a side divisible by 4 required, got {h}×{w}")
        self.image_shape_ = [int(c), int(h), int(w)]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, "init") % (2**31))
            ae = ReconstructionAE(c, self.width)
            critic = Critic(c, self.critic_width, h)
            model_fp = nn.Parameter(0.01 * torch.randn(len(candidates), c, h, w))
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "order"))
        opt_r = torch.optim.Adam([{"params": ae.parameters()},
                                  {"params": [model_fp], "lr": self.fingerprint_lr}], lr=self.lr, betas=(0.5, 0.9))
        opt_d = torch.optim.Adam(critic.parameters(), lr=self.lr, betas=(0.5, 0.9))
        lambdas = (self.lambda_pix, self.lambda_adv, self.lambda_cls)
        n = x.shape[0]
        steps = max(1, math.ceil(n / self.batch_size))
        log: dict[str, list[float]] = {k: [] for k in ("pix", "adv", "cls", "critic", "accuracy")}
        t0 = time.perf_counter()
        from rich.progress import track

        for _ in track(range(self.epochs), description="visnet", disable=not progress, transient=True):
            order = torch.randperm(n, generator=gen)
            sums = dict.fromkeys(log, 0.0)
            for b in range(steps):
                idx = order[b * self.batch_size:(b + 1) * self.batch_size]
                xb, yb = x[idx], y[idx]
                out = visnet_losses(ae, critic, model_fp, xb, yb, logit_scale=self.logit_scale, lambdas=lambdas,
                                    gp_weight=self.gp_weight, generator=gen)
                # Simultaneous updates: gradients of both players first (the critic's step would otherwise
                # modify weights that R's adversarial term still needs), then the two optimiser steps.
                opt_r.zero_grad(set_to_none=True)
                opt_d.zero_grad(set_to_none=True)
                out["total"].backward(inputs=[*ae.parameters(), model_fp])
                out["critic"].backward(inputs=list(critic.parameters()))
                opt_r.step()
                opt_d.step()
                k = xb.shape[0]
                for key in ("pix", "adv", "cls", "critic"):
                    sums[key] += float(out[key].detach()) * k
                sums["accuracy"] += float((out["logits"].argmax(1) == yb).sum())
            for key in log:
                log[key].append(sums[key] / n)
        self.train_seconds_ = time.perf_counter() - t0
        self.train_log_ = log
        self.ae_ = ae.eval()
        self.model_fingerprints_ = model_fp.detach().clone()

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if list(x.shape[1:]) != self.image_shape_:
            raise InvalidInputError(f"expected images of shape {self.image_shape_}, got {list(x.shape[1:])}")
        return x.detach().to("cpu", torch.float32)

    @torch.no_grad()
    def image_fingerprints(self, x: torch.Tensor) -> torch.Tensor:
        """F_im = R(I) − I (eq. 1's residual), same shape as x."""
        self._check_fitted()
        x = self._prepare(check_images(x))
        self.ae_.eval()
        if x.shape[0] == 0:
            return x.clone()
        return torch.cat([self.ae_(x[i:i + 512]) - x[i:i + 512] for i in range(0, x.shape[0], 512)])

    def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
        return normalized_correlation(self.image_fingerprints(x), self.model_fingerprints_).float()


def _show(ax: Any, img: torch.Tensor, title: str = "", *, signed: bool = True) -> None:
    """Signed fingerprints on a diverging map (red +, blue −, symmetric range); images in grey [-1, 1]."""
    a = img.detach().cpu().double()
    a = a[0] if a.shape[0] == 1 else a.permute(1, 2, 0)
    lim = (float(a.abs().max()) or 1.0) if signed else 1.0
    if a.ndim == 2:
        ax.imshow(a.numpy(), cmap="RdBu_r" if signed else "gray", vmin=-lim, vmax=lim)
    else:
        ax.imshow(((a / lim + 1) / 2).clamp(0, 1).numpy())
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def plot_fingerprints(att: FingerprintVisNet, images: Mapping[str, torch.Tensor], path: str | Path,
                      *, title: str = "") -> tuple[Path, np.ndarray]:
    """Figure 7: model fingerprints (top row), one image fingerprint per source (left column) and their
    response matrix; returns (path, mean response matrix over all given images [source i, fingerprint j])."""
    from genattr.figures import figure

    names = list(att.candidates_)
    srcs = [s for s in names if s in images]
    k = len(names)
    mean_resp = np.zeros((len(srcs), k))
    examples = {}
    for i, s in enumerate(srcs):
        fp = att.image_fingerprints(images[s])
        mean_resp[i] = normalized_correlation(fp, att.model_fingerprints_).mean(0).numpy()
        examples[s] = (images[s][0], fp[0])
    cell = 1.1
    fig = figure(cell * (k + 2) + 1.0, cell * (len(srcs) + 1) + 0.8)
    gs = fig.add_gridspec(len(srcs) + 1, k + 2)
    def short(name: str) -> str:  # zoo names share a prefix; keep the titles from overlapping
        return name.removeprefix("fmnist-")

    for j, name in enumerate(names):
        _show(fig.add_subplot(gs[0, j + 2]), att.model_fingerprints_[j], f"F_mod\n{short(name)}")
    for i, s in enumerate(srcs):
        img, fp = examples[s]
        _show(fig.add_subplot(gs[i + 1, 0]), img, short(s), signed=False)
        _show(fig.add_subplot(gs[i + 1, 1]), fp, "F_im" if i == 0 else "")
        single = normalized_correlation(fp[None], att.model_fingerprints_)[0].numpy()
        for j in range(k):
            ax = fig.add_subplot(gs[i + 1, j + 2])
            lo, hi = min(0.0, float(mean_resp.min())), max(float(mean_resp.max()), 1e-9)
            ax.imshow([[mean_resp[i, j]]], cmap="Blues", vmin=lo, vmax=hi)
            ax.text(0, 0, f"{mean_resp[i, j]:.2f}\n({single[j]:.2f})", ha="center", va="center", fontsize=6)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title or "model fingerprints (top), image fingerprints (left), mean corr (one image's corr)",
                 fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path, mean_resp


__all__ = ["Critic", "FingerprintVisNet", "ReconstructionAE", "correlation_logits", "gradient_penalty",
           "plot_fingerprints", "visnet_losses"]
