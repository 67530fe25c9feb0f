"""Learned GAN fingerprints: the attribution network of Yu, Davis & Fritz (ICCV 2019), §3.1–3.2.

A CNN classifier over {real, GAN 1..N}. The ``feature_dim``-d (512 in the paper) tensor before the last
linear layer is the *image fingerprint*; the rows of that layer's weight matrix are the *model fingerprints*
(§3.1). The layout follows the paper's Figure 2(a), which is the ProGAN discriminator: two 3×3 convolutions
per resolution and 2× average-pool downscaling, from the input size down to 4×4, then the 512-d feature.

Component analysis variants (§3.2, Tables 4–5), selected by hyperparameters:

* ``variant="lowpass", factor=f`` — *pre-downsampling network* (Fig. 2b): the first log2(f) trainable
  levels are replaced by fixed Gaussian blur + 2× subsampling, so the network only sees the low-frequency
  image at size/f.
* ``variant="highpass", factor=f`` — *pre-downsampling residual network* (Fig. 2c): the Laplacian-pyramid
  band between size/f and size/(2f), i.e. ``d − up(down(d))`` with ``d`` the image Gaussian-downsampled to
  size/f. As in the paper's Table 4, factor 1 is the unfiltered image for both variants.
* ``pool_at=s`` — *post-pooling network* (Fig. 2d): the convolution levels stop at resolution s; every
  position there describes one image patch (its receptive field, ``patch_size()``), global average pooling
  aggregates these patch statistics, and a dense layer maps them to the fingerprint. The default
  (``pool_at=4``) sees the whole image.

Scores are log-softmax probabilities (higher = more likely); ``exp(score)`` is the classifier confidence.
Open-set use: :meth:`~genattr.attribution.base.Attributor.calibrate` with held-out images of each source
sets τ_c to the ``target_fnr``-quantile of class c's own log-confidence, so an image whose confidence stays
below τ_c for every class is labelled UNKNOWN.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genattr.attribution.base import Attributor, Capabilities, InvalidInputError, check_images
from genattr.attribution.registry import register_attributor
from genattr.errors import ConfigError
from genattr.sampling import derive_seed, draw

VARIANTS = ("full", "lowpass", "highpass")


# --------------------------------------------------------------------------------------------------------
# Fixed filters for the component-analysis variants
# --------------------------------------------------------------------------------------------------------
def _binomial_kernel(channels: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    # 5-tap binomial (Burt & Adelson 1983), the Gaussian of a Laplacian pyramid.
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=dtype) / 16.0
    return (k1[:, None] * k1[None, :]).expand(channels, 1, 5, 5).contiguous()


def gaussian_down(x: torch.Tensor) -> torch.Tensor:
    """Gaussian blur then 2× subsampling (one pyramid level); reflect padding keeps borders unbiased."""
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), _binomial_kernel(c, x.dtype).to(x.device), groups=c)
    return y[..., ::2, ::2]


def gaussian_up(x: torch.Tensor) -> torch.Tensor:
    """Inverse pyramid step: zero-insertion 2× upsampling then the same blur (×4 to keep the mean)."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[..., ::2, ::2] = x
    return F.conv2d(F.pad(up, (2, 2, 2, 2), mode="reflect"), 4.0 * _binomial_kernel(c, x.dtype).to(x.device),
                    groups=c)


def component(x: torch.Tensor, variant: str, factor: int) -> torch.Tensor:
    """The image component a variant sees (§3.2): low band at size/f, or the band between size/f and size/2f."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}; use one of {VARIANTS}")
    if variant == "full" or factor == 1:
        return x
    for _ in range(int(math.log2(factor))):
        x = gaussian_down(x)
    if variant == "highpass":
        x = x - gaussian_up(gaussian_down(x))
    return x


# --------------------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------------------
class FingerprintNet(nn.Module):
    """Fig. 2(a–d) at small scale. Channels at resolution r are ``width * image_size / r`` (capped at
    ``max_width``), so a variant that starts at a lower resolution has the same widths there.

    ``batch_norm`` (a departure from the ProGAN-style discriminator) makes the small network converge within
    the few epochs a CPU budget allows; in eval mode it is a fixed affine map, so scores stay per-image."""

    def __init__(self, *, channels: int = 1, image_size: int = 32, width: int = 8, max_width: int = 128,
                 feature_dim: int = 512, n_classes: int = 2, variant: str = "full", factor: int = 1,
                 pool_at: int = 4, batch_norm: bool = False) -> None:
        super().__init__()
        check_architecture(image_size, variant, factor, pool_at)
        self.variant, self.factor, self.pool_at = variant, factor, pool_at
        start = image_size // factor
        self.start = start
        layers: list[nn.Module] = []
        c_in, r = channels, start
        self._plan: list[tuple[str, int]] = []  # (kind, kernel or stride) for the receptive field
        def norm(c: int) -> nn.Module:
            return nn.BatchNorm2d(c) if batch_norm else nn.Identity()

        while True:
            c = min(max_width, width * image_size // r)
            layers += [nn.Conv2d(c_in, c, 3, padding=1), norm(c), nn.LeakyReLU(0.2, True),
                       nn.Conv2d(c, c, 3, padding=1), norm(c), nn.LeakyReLU(0.2, True)]
            self._plan += [("conv", 3), ("conv", 3)]
            c_in = c
            if r <= pool_at:
                break
            layers.append(nn.AvgPool2d(2))
            self._plan.append(("pool", 2))
            r //= 2
        self.body = nn.Sequential(*layers)
        # Global average pooling of the per-position (per-patch) features (§3.2 post-pooling), then a dense
        # layer to the fingerprint. Pooling first keeps early-pooling variants cheap: a 512-channel map at
        # 32×32 would cost more than the whole rest of the network.
        self.head = nn.Sequential(nn.Linear(c_in, feature_dim), nn.LeakyReLU(0.2, True))
        self.fc = nn.Linear(feature_dim, n_classes)  # its weight rows are the model fingerprints (§3.1)
        # He initialisation for leaky ReLU (the role of ProGAN's equalised learning rate): PyTorch's default
        # shrinks the signal through this un-normalised stack and training stalls at chance for epochs.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)

    def fingerprint(self, x: torch.Tensor) -> torch.Tensor:
        """The image fingerprint: the feature before the last linear layer (N, feature_dim)."""
        x = component(x, self.variant, self.factor)
        return self.head(self.body(x).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.fingerprint(x))

    def patch_size(self) -> int:
        """Receptive field (in input pixels of the component image) of one position before pooling."""
        rf, jump = 1, 1
        for kind, k in self._plan:
            if kind == "conv":
                rf += (k - 1) * jump
            else:
                rf += (k - 1) * jump
                jump *= k
        return rf


def check_architecture(image_size: int, variant: str, factor: int, pool_at: int) -> None:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}; use one of {VARIANTS}")

    def pow2(v: int) -> bool:
        return isinstance(v, int) and v >= 1 and (v & (v - 1)) == 0

    if not pow2(image_size) or image_size < 4:
        raise ConfigError(f"image_size must be a power of two >= 4, got {image_size}")
    if not pow2(factor) or image_size // factor < 2:
        raise ConfigError(f"factor must be a power of two leaving at least 2×2 pixels, got {factor}")
    if variant == "full" and factor != 1:
        raise ConfigError("factor applies to variant 'lowpass' or 'highpass' only")
    if variant == "highpass" and image_size // factor < 4:
        raise ConfigError(f"highpass needs size/factor >= 4 (a band down to 2×2), got {image_size // factor}")
    if not pow2(pool_at) or pool_at > image_size // factor:
        raise ConfigError(f"pool_at must be a power of two <= the start resolution {image_size // factor}, "
                          f"got {pool_at}")


# --------------------------------------------------------------------------------------------------------
# Training helpers shared with the visualisation network
# --------------------------------------------------------------------------------------------------------
def collect_training_data(candidates: Mapping[str, Any], n_samples: int, seed: int
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack every candidate's images (tensors: all of them; samplers: ``n_samples`` seeded draws)."""
    xs, ys, shape = [], [], None
    for i, (name, src) in enumerate(candidates.items()):
        g = torch.Generator().manual_seed(derive_seed(seed, name))
        x = check_images(draw(src, None if isinstance(src, torch.Tensor) else n_samples, g),
                         what=f"candidates[{name!r}]")
        if x.shape[0] == 0:
            raise InvalidInputError(f"candidate {name!r} has no images")
        shape = tuple(x.shape[1:]) if shape is None else shape
        if tuple(x.shape[1:]) != shape:
            raise InvalidInputError(f"candidate {name!r}: images of shape {list(x.shape[1:])}, expected {list(shape)}")
        xs.append(x)
        ys.append(torch.full((x.shape[0],), i, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)


def _progress(enabled: bool) -> Any:
    """The caller's progress reporter if one is installed (the CLI's), else Rich bars when ``enabled``."""
    import contextlib

    from genattr.progress import active, reporting

    return reporting() if enabled and not active() else contextlib.nullcontext()


@register_attributor("gan-fingerprint-classifier")
class GANFingerprintClassifier(Attributor):
    """Yu et al. 2019 §3.1 attribution network (and the §3.2 variants): cross-entropy over the candidates.

    ``fit(candidates)``: name → images (N, C, H, W) in [-1, 1] or a source with ``sample(n, generator=…)``
    (``n_samples`` images drawn). Include a ``"real"`` candidate for the paper's {real, GAN 1..N} setup.
    Fit parameters: ``augment`` — a :class:`~genattr.perturbations.Perturbation` applied with fresh random
    parameters to every training batch (the §4.4 "immunisation" fine-tuning); ``init_from`` — a fitted
    classifier with the same candidates and architecture to start from (fine-tuning); ``progress``.
    """

    capabilities = Capabilities(needs_training_images=True, supports_open_set=True)

    def __init__(self, *, variant: str = "full", factor: int = 1, pool_at: int = 4, width: int = 8,
                 max_width: int = 128, feature_dim: int = 512, batch_norm: bool = True, epochs: int = 4,
                 batch_size: int = 64, lr: float = 2e-3, weight_decay: float = 0.0, n_samples: int = 2000,
                 seed: int = 0) -> None:
        self.variant = variant
        self.factor = factor
        self.pool_at = pool_at
        self.width = width
        self.max_width = max_width
        self.feature_dim = feature_dim
        self.batch_norm = batch_norm
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.n_samples = n_samples
        self.seed = seed

    # -- construction ------------------------------------------------------------------------------------
    def _make_net(self, channels: int, image_size: int, n_classes: int) -> FingerprintNet:
        return FingerprintNet(channels=channels, image_size=image_size, width=self.width, max_width=self.max_width,
                              feature_dim=self.feature_dim, n_classes=n_classes, variant=self.variant,
                              factor=self.factor, pool_at=self.pool_at, batch_norm=self.batch_norm)

    def _build_module(self, name: str) -> nn.Module:
        if name != "net_":
            raise NotImplementedError(name)
        c, h, _ = self.image_shape_
        return self._make_net(c, h, len(self.candidates_))

    def _check_params(self) -> None:
        for p in ("width", "max_width", "feature_dim", "batch_size", "n_samples"):
            if not isinstance(getattr(self, p), int) or getattr(self, p) < 1:
                raise ConfigError(f"{p} must be a positive integer, got {getattr(self, p)!r}")
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"epochs must be a non-negative integer, got {self.epochs!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")

    # -- fitting -----------------------------------------------------------------------------------------
    def _fit(self, candidates: Mapping[str, Any], *, augment: Any = None, init_from: Any = None,
             progress: bool = False) -> None:
        self._check_params()
        if len(candidates) < 2:
            raise ConfigError("the attribution network needs at least two candidates (e.g. real and one GAN)")
        x, y = collect_training_data(candidates, self.n_samples, self.seed)
        c, h, w = x.shape[1:]
        if h != w:
            raise InvalidInputError(f"square images required, got {h}×{w}")
        check_architecture(h, self.variant, self.factor, self.pool_at)
        self.image_shape_ = [int(c), int(h), int(w)]
        with torch.random.fork_rng(devices=[]):  # initialise from self.seed without touching global RNG state
            torch.manual_seed(derive_seed(self.seed, "init") % (2**31))
            net = self._make_net(c, h, len(candidates))
        if init_from is not None:
            if not isinstance(init_from, GANFingerprintClassifier) or not init_from.is_fitted:
                raise ConfigError("init_from must be a fitted GANFingerprintClassifier")
            if init_from.candidates_ != list(candidates) or init_from.image_shape_ != self.image_shape_:
                raise ConfigError("init_from was fitted on other candidates or image shapes")
            try:
                net.load_state_dict(init_from.net_.state_dict())
            except RuntimeError as exc:
                raise ConfigError(f"init_from has a different architecture ({exc})") from exc
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "order"))
        t0 = time.perf_counter()
        self.train_log_ = train_classifier_net(net, x, y, epochs=self.epochs, batch_size=self.batch_size,
                                               lr=self.lr, weight_decay=self.weight_decay, generator=gen,
                                               augment=augment, progress=progress)
        self.train_seconds_ = time.perf_counter() - t0
        self.net_ = net.eval()

    # -- scoring -----------------------------------------------------------------------------------------
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if list(x.shape[1:]) != self.image_shape_:
            raise InvalidInputError(f"expected images of shape {self.image_shape_}, got {list(x.shape[1:])}")
        return x.detach().to("cpu", torch.float32)

    @torch.no_grad()
    def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare(x)
        self.net_.eval()
        return torch.cat([F.log_softmax(self.net_(x[i:i + 512]), dim=1) for i in range(0, x.shape[0], 512)])

    def _extras(self, x: torch.Tensor, scores: torch.Tensor) -> dict[str, Any]:
        return {"confidence": scores.exp().max(dim=1).values}

    @torch.no_grad()
    def fingerprints(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Image fingerprints (N, feature_dim): the features before the last layer (§3.1)."""
        self._check_fitted()
        x = self._prepare(check_images(x))
        self.net_.eval()
        if x.shape[0] == 0:
            return torch.empty(0, self.feature_dim)
        return torch.cat([self.net_.fingerprint(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])

    @property
    def model_fingerprints(self) -> torch.Tensor:
        """Model fingerprints (k, feature_dim): the last linear layer's weights, one row per candidate."""
        self._check_fitted()
        return self.net_.fc.weight.detach().clone()

    def patch_size(self) -> int:
        """Receptive field of one pooled position, in pixels of the image the network sees (≤ its size)."""
        self._check_fitted()
        return min(self.net_.patch_size(), self.image_shape_[1] // self.factor)


def train_classifier_net(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int,
                         lr: float, weight_decay: float, generator: torch.Generator, augment: Any = None,
                         progress: bool = False) -> dict[str, list[float]]:
    """Adam + cross-entropy with a cosine learning-rate schedule; returns per-epoch loss and accuracy.

    ``augment`` (a Perturbation) is applied to every batch with parameters drawn from ``generator``.
    """
    n = x.shape[0]
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs * steps_per_epoch))
    log: dict[str, list[float]] = {"loss": [], "accuracy": []}
    from genattr.progress import phase

    with _progress(progress), phase("training (steps)", total=epochs * steps_per_epoch) as advance:
        net.train()
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator)
            tot_loss, tot_ok = 0.0, 0
            for b in range(steps_per_epoch):
                idx = order[b * batch_size:(b + 1) * batch_size]
                xb, yb = x[idx], y[idx]
                if augment is not None:
                    with torch.no_grad():
                        xb = augment.apply(xb, augment.sample_params(xb.shape[0], generator)).float()
                logits = net(xb)
                loss = F.cross_entropy(logits, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                tot_loss += float(loss.detach()) * xb.shape[0]
                tot_ok += int((logits.argmax(1) == yb).sum())
                advance(1)
            log["loss"].append(tot_loss / n)
            log["accuracy"].append(tot_ok / n)
    net.eval()
    return log


__all__ = ["FingerprintNet", "GANFingerprintClassifier", "collect_training_data", "component", "gaussian_down",
           "gaussian_up", "train_classifier_net"]
