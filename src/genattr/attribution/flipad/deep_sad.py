"""Deep SAD (Ruff et al. 2020) as used by FLIPAD (Laszkiewicz et al. 2024, appendix B, eq. 6–7, G.7).

    min_W 1/(n+m) Σ_unlabelled ‖φ(x) − c‖² + η/(n+m) Σ_labelled (‖φ(x̃) − c‖²)^ỹ + λ/2 Σ_l ‖W^l‖²_F   (eq. 6)

with ỹ = +1 for samples of the model G ("normal") and −1 for negatives; the weight-decay term is Adam's
``weight_decay``. The anomaly score is ‖φ(x) − c‖ (eq. 7). As in Ruff et al., φ has no bias terms (a
bias would let φ map everything onto c, the trivial hypersphere collapse), uses batch norm without affine
parameters, and c is the mean of the initial network's outputs with near-zero coordinates pushed to ±0.1.

Sizing (why φ is narrower than the paper's): the paper uses Ruff's CIFAR-10 LeNet (32-64-128 channels,
5×5 kernels, 27 M multiply-adds per 32×32 image) on raw/DCT images and a 64-128-256-128 variant on
64×32×32 inversion features. Fifty epochs over 10k + 10k samples is 10⁶ sample-steps; measured on one
thread of the (busy) 2-core box, Ruff's LeNet needs 8.7 ms per sample-step (≈ 145 min per fit), and even
an 8-16-32 5×5 version 3.5–4.5 ms (oneDNN is inefficient for 1-channel 5×5 convolutions at 32×32). We use

* RawPAD / DCTPAD: the 1×32×32 input rearranged space-to-depth (lossless) to 4×16×16, then 16-32-64
  channels with 3×3 kernels (0.75 M multiply-adds; 16-32 measured at 0.37 ms/sample-step ≈ 6 min per fit);
* FLIPAD: inversions max-pooled to C×8×8 (G.7: max-pooling performed best), then 32-64 channels, 3×3
  (0.89 M multiply-adds, 0.36 ms/sample-step ≈ 6 min per fit; pooling to 16×16 instead: ≈ 20 min).

The accuracy cost of these choices against the paper's φ is to be measured (docs/flipad.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from genattr.errors import ConfigError
from genattr.progress import phase

DEFAULT_WIDTHS = (16, 32, 64)


class DeepSADNet(nn.Module):
    """LeNet-style φ without bias terms (Ruff et al.'s CIFAR-10 net, width and depth configurable).

    Blocks of conv(k×k, padding k//2, no bias) → BN(affine=False) → leaky ReLU → 2×2 max-pool while the
    map is at least 2×2, then a bias-free linear layer to ``rep_dim``.
    """

    def __init__(self, in_channels: int, in_size: int, widths: Sequence[int] = DEFAULT_WIDTHS, *,
                 kernel_size: int = 3, rep_dim: int = 32) -> None:
        super().__init__()
        if in_channels < 1 or in_size < 1 or rep_dim < 1 or kernel_size < 1 or not widths \
                or any(int(w) < 1 for w in widths):
            raise ConfigError(f"bad Deep SAD network: channels={in_channels} size={in_size} widths={widths} "
                              f"kernel={kernel_size} rep_dim={rep_dim}")
        layers: list[nn.Module] = []
        c, s = in_channels, in_size
        for w in widths:
            layers += [nn.Conv2d(c, int(w), kernel_size, padding=kernel_size // 2, bias=False),
                       nn.BatchNorm2d(int(w), eps=1e-4, affine=False), nn.LeakyReLU(0.01)]
            if s >= 2:
                layers.append(nn.MaxPool2d(2))
                s //= 2
            c = int(w)
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c * s * s, rep_dim, bias=False)
        self.rep_dim = rep_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


def multiply_adds(net: DeepSADNet, in_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward pass for one input (for sizing, see the module docstring)."""
    total = 0
    x = torch.zeros(1, *in_shape)
    for m in net.features:
        y = m(x)
        if isinstance(m, nn.Conv2d):
            total += y.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
        x = y
    return total + net.fc.in_features * net.fc.out_features


def deep_sad_loss(dist_sq: torch.Tensor, semi_targets: torch.Tensor, eta: float, eps: float = 1e-6) -> torch.Tensor:
    """Mean of eq. 6's data terms: ‖φ−c‖² for unlabelled (0), η(‖φ−c‖² + ε)^ỹ for labelled ỹ = ±1."""
    labelled = eta * (dist_sq + eps) ** semi_targets.to(dist_sq.dtype)
    return torch.where(semi_targets == 0, dist_sq, labelled).mean()


@torch.no_grad()
def embed(net: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    was = net.training
    net.eval()
    try:
        return torch.cat([net(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]) if x.shape[0] \
            else torch.empty(0, getattr(net, "rep_dim", 0))
    finally:
        net.train(was)


def init_center(net: nn.Module, x: torch.Tensor, *, eps: float = 0.1, batch_size: int = 512) -> torch.Tensor:
    """c = mean φ(x) of the initial network (train-mode batch norm, as in Ruff et al.'s first forward pass);
    coordinates within ε of 0 are moved to ±ε so that a zero weight cannot trivially reach them."""
    with torch.no_grad():
        net.train()
        c = torch.zeros(net.rep_dim) if hasattr(net, "rep_dim") else None
        n = 0
        for i in range(0, x.shape[0], batch_size):
            out = net(x[i:i + batch_size])
            c = out.sum(0) if c is None else c + out.sum(0)
            n += out.shape[0]
        assert c is not None
        c /= max(n, 1)
    c[(c.abs() < eps) & (c < 0)] = -eps
    c[(c.abs() < eps) & (c >= 0)] = eps
    return c


@dataclass(frozen=True)
class DeepSADFit:
    center: torch.Tensor
    epoch_losses: list[float]
    seconds: float


def train_deep_sad(net: nn.Module, x: torch.Tensor, semi_targets: torch.Tensor, *, epochs: int = 50,
                   lr: float = 5e-4, lr_milestones: Sequence[int] = (25,), gamma: float = 0.1,
                   weight_decay: float = 0.5e-6, batch_size: int = 128, eta: float = 1.0,
                   generator: torch.Generator | None = None) -> DeepSADFit:
    """Train φ with eq. 6 (FLIPAD G.7 schedule: Adam, lr 5e-4 → ×0.1 after 25 of 50 epochs, weight decay
    0.5e-6). ``semi_targets``: +1 (model G), −1 (negatives), 0 (unlabelled). Returns the centre c."""
    if x.shape[0] != semi_targets.shape[0] or x.shape[0] == 0:
        raise ConfigError("Deep SAD needs as many targets as samples, and at least one sample")
    if epochs < 0 or batch_size < 1 or lr <= 0 or eta <= 0:
        raise ConfigError("Deep SAD: epochs >= 0, batch_size >= 1, lr > 0 and eta > 0 are required")
    t0 = time.perf_counter()
    c = init_center(net, x)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(lr_milestones), gamma=gamma)
    losses: list[float] = []
    net.train()
    n = x.shape[0]
    with phase("training (Deep SAD epochs)", total=epochs) as advance:
        for _ in range(epochs):
            perm = torch.randperm(n, generator=generator)
            total, count = 0.0, 0
            for i in range(0, n, batch_size):
                sel = perm[i:i + batch_size]
                if sel.numel() < 2:  # batch norm needs two samples in train mode
                    continue
                out = net(x[sel])
                dist = ((out - c) ** 2).sum(1)
                loss = deep_sad_loss(dist, semi_targets[sel], eta)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * sel.numel()
                count += sel.numel()
            sched.step()
            losses.append(total / max(count, 1) if count else math.nan)
            advance(1)
    net.eval()
    return DeepSADFit(c, losses, time.perf_counter() - t0)


def anomaly_score(net: nn.Module, center: torch.Tensor, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """‖φ(x) − c‖ (eq. 7), eval-mode batch norm so each score depends only on its own sample."""
    return torch.linalg.vector_norm(embed(net, x, batch_size) - center, dim=1)


__all__ = ["DEFAULT_WIDTHS", "DeepSADFit", "DeepSADNet", "anomaly_score", "deep_sad_loss", "embed",
           "init_center", "multiply_adds", "train_deep_sad"]
