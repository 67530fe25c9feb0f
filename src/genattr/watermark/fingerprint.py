"""Scalable GAN fingerprints (Yu, Skripniuk, Chen, Davis, Fritz, ICLR 2022) at 32×32.

One model is trained once: an embedding E(c) of a d_c-bit fingerprint c ~ Ber(½)^{d_c}, a generator G(z, c)
whose every convolution is **modulated** by A_l(E(c)) (Eq. 6), a decoder F(x) → (ẑ, d_c bit logits) and a
discriminator D. Afterwards each user receives an *instance* G(·, c₀): the modulation is folded into plain
convolution weights (:meth:`FingerprintModel.instance`), an ordinary :class:`~genattr.generators.Generator`
that save_pretrained / from_pretrained like any zoo model and never contains E, F or the code.

Modulation (Eq. 6, per-channel activation scaling): layer l scales its *input* channels by
s = 1 + A_l(E(c)) — for a convolution that is exactly W̃[·, k, ·, ·] = s_k · W[·, k, ·, ·] — and, with
``demodulate=True`` (StyleGAN2), divides each output channel by d_o = ‖s ⊙ W_{o}‖₂ (per sample, no batch
statistics), then adds the bias. The last layer (our ToRGB) is modulated but never demodulated. Both are
linear in the weights for a fixed code, so an instance reproduces G(z, c₀) up to float rounding.

Architecture (DCGAN at 32×32, as the zoo, without BatchNorm — batch statistics would mix codes across a
batch): z → ConvT 4ngf@4² → 2ngf@8² → ngf@16² → C@32², ReLU between, tanh out. A zoo DCGAN generator can be
the warm start: its eval-mode BatchNorm is folded into the convolution weights and biases and A_l starts at
zero (s ≡ 1), so G(·, c) equals the zoo generator at step 0 (with demodulation a per-channel gain keeps it).

Loss (Eq. 5): λ₁ L_adv + λ₂ L_z + λ₃ L_c + λ₄ L_const with λ = (1, 1, 2, 2): non-saturating logistic
adversarial loss, ‖z − ẑ‖², BCE of the bit logits and ‖G(z, c₁) − G(z, c₂)‖² (same z, two fresh codes);
every term is a mean. The discriminator gets the logistic loss plus a lazy R1 penalty.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genattr.errors import ConfigError, DataError
from genattr.generators import DCGANDiscriminator, Generator
from genattr.generators.architectures import INSTANCE_ARCH, FingerprintInstance
from genattr.watermark.fingerprint_codes import as_bits

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "genattr-yu2022-fingerprint-model"
LAMBDAS = (1.0, 1.0, 2.0, 2.0)  # (adv, z, c, const), Yu et al. 2022 §3.2
DEMOD_EPS = 1e-8


# --------------------------------------------------------------------------------------------------------
# codes
# --------------------------------------------------------------------------------------------------------
def code_tensor(code: Any, code_bits: int, *, what: str = "code") -> torch.Tensor:
    """One code (d,) or a batch (n, d) as float {0, 1}; wrong length or non-bits → ConfigError."""
    return torch.from_numpy(as_bits(code, code_bits, what=what).astype(np.float32))


def sample_codes(n: int, code_bits: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n fresh codes c ~ Ber(½)^{d_c} as float {0, 1} (n, d_c)."""
    return torch.randint(0, 2, (n, code_bits), generator=generator).float()


# --------------------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------------------
class FingerprintEmbedding(nn.Module):
    """E: c ∈ {0,1}^{d_c} → e ∈ R^{embed_dim}: ``layers`` fully connected layers with LeakyReLU(0.2)
    (the paper uses StyleGAN2's 8-layer mapping network; 4 suffice at this scale)."""

    def __init__(self, code_bits: int, embed_dim: int = 128, layers: int = 4) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        d = code_bits
        for _ in range(layers):
            lin = nn.Linear(d, embed_dim)
            # He init for LeakyReLU: PyTorch's default shrinks the code-dependent part of e by ~2× per layer,
            # leaving E(c) nearly constant across codes and the fingerprint nothing to start from
            nn.init.kaiming_normal_(lin.weight, a=0.2, nonlinearity="leaky_relu")
            nn.init.zeros_(lin.bias)
            mods += [lin, nn.LeakyReLU(0.2)]
            d = embed_dim
        self.net = nn.Sequential(*mods)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.net(c)


class ModulatedConvTranspose(nn.Module):
    """A transposed convolution whose input channels are scaled per sample by s = 1 + A(e) (Eq. 6), with
    optional demodulation of the output channels; ``fold(e)`` returns the equivalent plain weights."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, embed_dim: int, *,
                 demodulate: bool, affine_init: float = 0.1) -> None:
        super().__init__()
        self.stride, self.padding, self.demodulate = stride, padding, demodulate
        # He initialisation with the transposed convolution's effective fan-in (in · k² / stride²): without
        # BatchNorm the DCGAN N(0, 0.02) init shrinks activations towards zero layer by layer
        fan_in = in_ch * kernel * kernel / (stride * stride)
        self.weight = nn.Parameter(torch.randn(in_ch, out_ch, kernel, kernel) * math.sqrt(2.0 / fan_in))
        # per output channel, after demodulation; folds into the weights. Demodulated weights have unit norm
        # and a stride-s transposed conv reaches each output with 1/s² of them: s·√2 keeps ReLU activations' scale
        self.gain = nn.Parameter(torch.full((out_ch,), stride * math.sqrt(2.0) if demodulate else 1.0))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.affine = nn.Linear(embed_dim, in_ch)  # A_l
        # s = 1 + A_l(e) starts at 1 ± affine_init (for e of unit scale): a zero init would leave the images
        # independent of c, the decoder with nothing to read and L_c without a gradient (a stalled run)
        nn.init.normal_(self.affine.weight, 0.0, affine_init / math.sqrt(embed_dim))
        nn.init.zeros_(self.affine.bias)

    def scales(self, e: torch.Tensor) -> torch.Tensor:
        return 1.0 + self.affine(e)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        s = self.scales(e)  # (B, in)
        y = F.conv_transpose2d(x * s[:, :, None, None], self.weight, None, self.stride, self.padding)
        g = self.gain.view(1, -1)
        if self.demodulate:
            g = g * torch.rsqrt(s.pow(2) @ self.weight.pow(2).sum((2, 3)) + DEMOD_EPS)  # (B, out)
        return y * g[:, :, None, None] + self.bias.view(1, -1, 1, 1)

    @torch.no_grad()
    def fold(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Plain (weight, bias) with conv_transpose2d(x, weight) + bias == forward(x, e) for one code."""
        s = self.scales(e.reshape(1, -1))[0]
        w = self.weight * s.view(-1, 1, 1, 1)
        g = self.gain
        if self.demodulate:
            g = g * torch.rsqrt(w.pow(2).sum((0, 2, 3)) + DEMOD_EPS)
        return (w * g.view(1, -1, 1, 1)).contiguous(), self.bias.detach().clone()


class ModulatedGenerator(nn.Module):
    """G(z, e): the DCGAN layout with every transposed convolution modulated by the code embedding."""

    def __init__(self, *, latent_dim: int, channels: int, ngf: int, embed_dim: int, demodulate: bool,
                 affine_init: float = 0.1) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        widths = [latent_dim, 4 * ngf, 2 * ngf, ngf]
        specs = [(widths[0], widths[1], 4, 1, 0), (widths[1], widths[2], 4, 2, 1), (widths[2], widths[3], 4, 2, 1)]
        self.blocks = nn.ModuleList(ModulatedConvTranspose(*sp, embed_dim, demodulate=demodulate,
                                                           affine_init=affine_init) for sp in specs)
        self.to_image = ModulatedConvTranspose(ngf, channels, 4, 2, 1, embed_dim, demodulate=False,
                                               affine_init=affine_init)

    def forward(self, z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = z.reshape(z.shape[0], self.latent_dim, 1, 1)
        for blk in self.blocks:
            h = F.relu(blk(h, e))
        return torch.tanh(self.to_image(h, e))


class FingerprintDecoder(nn.Module):
    """F: image → (ẑ, bit logits): the discriminator's conv stack (no normalisation) with a d_z + d_c head."""

    def __init__(self, *, channels: int = 1, ndf: int = 32, latent_dim: int = 100, code_bits: int = 64) -> None:
        super().__init__()
        self.config = {"channels": channels, "ndf": ndf, "latent_dim": latent_dim, "code_bits": code_bits}
        self.latent_dim, self.code_bits, self.channels = latent_dim, code_bits, channels
        self.net = nn.Sequential(
            nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2),  # 16²
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1), nn.LeakyReLU(0.2),  # 8²
            nn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1), nn.LeakyReLU(0.2),  # 4²
        )
        self.head = nn.Linear(4 * ndf * 16, latent_dim + code_bits)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.net(x).flatten(1))
        return out[:, :self.latent_dim], out[:, self.latent_dim:]


def make_discriminator(channels: int = 1, ndf: int = 32) -> nn.Module:
    """D: the DCGAN discriminator with per-sample LayerNorm (no batch statistics, R1-compatible)."""
    return DCGANDiscriminator(channels=channels, ndf=ndf, norm="layer")


# --------------------------------------------------------------------------------------------------------
# the shipped instance: an ordinary Generator
# --------------------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------------------
class FingerprintModel(nn.Module):
    """E, G and F of Yu et al. (2022); ``instance(code)`` bakes a code into a plain Generator."""

    def __init__(self, *, code_bits: int = 64, latent_dim: int = 100, channels: int = 1, ngf: int = 32,
                 ndf: int = 32, embed_dim: int = 128, embed_layers: int = 4, demodulate: bool = True,
                 affine_init: float = 0.1) -> None:
        super().__init__()
        for key, v in (("code_bits", code_bits), ("latent_dim", latent_dim), ("channels", channels), ("ngf", ngf),
                       ("ndf", ndf), ("embed_dim", embed_dim), ("embed_layers", embed_layers)):
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{key} must be a positive integer, got {v!r}")
        if code_bits % 8:
            raise ConfigError(f"code_bits must be a multiple of 8 (packed registry codes), got {code_bits}")
        self.config = {"code_bits": code_bits, "latent_dim": latent_dim, "channels": channels, "ngf": ngf,
                       "ndf": ndf, "embed_dim": embed_dim, "embed_layers": embed_layers,
                       "demodulate": bool(demodulate), "affine_init": float(affine_init)}
        self.code_bits, self.latent_dim, self.channels, self.image_size = code_bits, latent_dim, channels, 32
        self.embed = FingerprintEmbedding(code_bits, embed_dim, embed_layers)
        if not 0.0 <= affine_init <= 10.0:
            raise ConfigError(f"affine_init must lie in [0, 10], got {affine_init!r}")
        self.generator = ModulatedGenerator(latent_dim=latent_dim, channels=channels, ngf=ngf, embed_dim=embed_dim,
                                            demodulate=demodulate, affine_init=affine_init)
        self.decoder = FingerprintDecoder(channels=channels, ndf=ndf, latent_dim=latent_dim, code_bits=code_bits)

    # -- generation and decoding ------------------------------------------------------------------------------
    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """G(z, c) for float {0,1} codes c (n, d_c)."""
        return self.generator(z, self.embed(c))

    def decode_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder(x)

    @torch.no_grad()
    def decode(self, x: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
        """Decoded bits ĉ = 1[logit > 0] as uint8 (n, d_c)."""
        check_decoder_input(x, self.channels)
        was = self.training
        self.eval()
        try:
            out = [self.decoder(x[i:i + batch_size])[1] > 0 for i in range(0, x.shape[0], batch_size)]
        finally:
            self.train(was)
        return torch.cat(out).to(torch.uint8) if out else torch.zeros(0, self.code_bits, dtype=torch.uint8)

    @torch.no_grad()
    def sample(self, n: int, codes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images G(z, c) with z ~ N(0, I) drawn on the CPU; ``codes`` (d,) for all or (n, d) per image."""
        c = codes.float().expand(n, -1) if codes.ndim == 1 else codes.float()
        z = torch.randn(n, self.latent_dim, generator=generator)
        return self(z, c)

    # -- instances --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def instance(self, code: Any) -> FingerprintInstance:
        """G(·, code) as a plain :class:`FingerprintInstance` (no E, F or code inside; milliseconds)."""
        c = code_tensor(code, self.code_bits)
        if c.ndim != 1:
            raise ConfigError(f"instance() takes one code of {self.code_bits} bits, got shape {tuple(c.shape)}")
        e = self.embed(c[None])
        with torch.device("meta"):  # no random init of weights that are replaced right away
            inst = FingerprintInstance(latent_dim=self.latent_dim, channels=self.channels, ngf=self.config["ngf"])
        targets = [inst.body[0], inst.body[2], inst.body[4], inst.final_layer]
        for layer, target in zip([*self.generator.blocks, self.generator.to_image], targets, strict=True):
            w, b = layer.fold(e)
            target.weight = nn.Parameter(w)
            target.bias = nn.Parameter(b)
        return inst.eval()

    # -- warm start ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def warm_start(self, base: Generator, *, reset_modulation: bool = False) -> FingerprintModel:
        """Copy a zoo DCGAN generator (eval-mode BatchNorm folded into the weights): G(·, c) == base exactly
        when the A_l are zero (``reset_modulation=True``), and base modulated by s = 1 ± affine_init otherwise
        (the default: training needs code-dependent images from step 0). ConfigError if the layouts differ."""
        convs = [m for m in base.modules() if isinstance(m, nn.ConvTranspose2d)]
        norms = [m for m in base.modules() if isinstance(m, nn.BatchNorm2d)]
        layers = [*self.generator.blocks, self.generator.to_image]
        if len(convs) != 4 or len(norms) != 3 or any(c.weight.shape != m.weight.shape for c, m in zip(convs, layers,
                                                                                                        strict=True)):
            raise ConfigError(f"cannot warm-start from {type(base).__name__}: expected the DCGAN layout with "
                              f"latent_dim={self.latent_dim}, ngf={self.config['ngf']}, channels={self.channels}")
        for i, layer in enumerate(layers):
            w = convs[i].weight.detach().clone()
            b = convs[i].bias.detach().clone() if convs[i].bias is not None else torch.zeros(w.shape[1])
            if i < 3:
                bn = norms[i]
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                w = w * scale.view(1, -1, 1, 1)
                b = (b - bn.running_mean) * scale + bn.bias
            layer.weight.copy_(w)
            layer.bias.copy_(b)
            if reset_modulation:
                layer.affine.weight.zero_()
                layer.affine.bias.zero_()
            # at s ≡ 1 demodulation divides output channel o by ‖W_o‖; the gain (after it) undoes that
            layer.gain.copy_(torch.sqrt(w.pow(2).sum((0, 2, 3)) + DEMOD_EPS) if layer.demodulate
                             else torch.ones_like(layer.gain))
        return self

    # -- persistence ----------------------------------------------------------------------------------------------
    def save(self, directory: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
        """``config.json`` + ``model.safetensors`` (E, G, F; never pickle), each written then renamed."""
        from safetensors.torch import save_file

        from genattr import __version__

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict().items()}
        tmp = d / (WEIGHTS_FILE + ".tmp")
        save_file(state, str(tmp), metadata={"format": FORMAT})
        tmp.replace(d / WEIGHTS_FILE)
        meta = {"format": FORMAT, "config": self.config, "genattr_version": __version__, **({"extra": extra}
                                                                                             if extra else {})}
        tmp = d / (CONFIG_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        tmp.replace(d / CONFIG_FILE)
        return d

    @classmethod
    def load(cls, directory: str | Path) -> FingerprintModel:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        d = Path(directory)
        cfg_path, w_path = d / CONFIG_FILE, d / WEIGHTS_FILE
        if not cfg_path.is_file() or not w_path.is_file():
            raise DataError(f"{d}: not a fingerprint model (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
        try:
            meta = json.loads(cfg_path.read_text())
            if meta.get("format") != FORMAT:
                raise ValueError(f"format is {meta.get('format')!r}")
            model = cls(**meta["config"])
        except (json.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{cfg_path}: malformed fingerprint-model config ({exc})") from exc
        try:
            state = load_file(str(w_path))
            model.load_state_dict(state, strict=True)
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise DataError(f"{w_path}: unreadable or mismatched weights ({str(exc).splitlines()[0]})") from None
        return model.eval()


def check_decoder_input(x: Any, channels: int, size: int = 32) -> torch.Tensor:
    """Images for F must be float (N, C, 32, 32); anything else is an InvalidInputError."""
    from genattr.attribution.base import InvalidInputError, check_images

    x = check_images(x)
    if tuple(x.shape[1:]) != (channels, size, size):
        raise InvalidInputError(f"the fingerprint decoder reads ({channels}, {size}, {size}) images; got "
                                f"{tuple(x.shape[1:])}")
    return x


# --------------------------------------------------------------------------------------------------------
# losses (Eq. 5)
# --------------------------------------------------------------------------------------------------------
def generator_losses(model: FingerprintModel, D: nn.Module, z: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor,
                     *, lambdas: tuple[float, float, float, float] = LAMBDAS,
                     perturb: Callable[[torch.Tensor], torch.Tensor] | None = None
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 5 for E, G, F on one batch: both code batches are generated with the same z.

    Returns (total, terms) with terms ``adv`` (non-saturating logistic on D), ``z`` (‖z − ẑ‖², mean),
    ``c`` (BCE of the bit logits), ``const`` (‖G(z,c₁) − G(z,c₂)‖², mean) and the monitoring value
    ``bit_acc``. ``perturb`` is applied to the images before F only (immunisation).
    """
    n = z.shape[0]
    x = model(torch.cat([z, z]), torch.cat([c1, c2]))
    x_dec = perturb(x) if perturb is not None else x
    z_hat, logits = model.decode_logits(x_dec)
    codes = torch.cat([c1, c2])
    terms = {
        "adv": F.softplus(-D(x)).mean() if lambdas[0] else x.new_zeros(()),
        "z": (z_hat - torch.cat([z, z])).pow(2).mean(),
        "c": F.binary_cross_entropy_with_logits(logits, codes),
        "const": (x[:n] - x[n:]).pow(2).mean(),
    }
    total = lambdas[0] * terms["adv"] + lambdas[1] * terms["z"] + lambdas[2] * terms["c"] + lambdas[3] * terms["const"]
    terms["bit_acc"] = ((logits.detach() > 0).float() == codes).float().mean()
    return total, terms


def discriminator_loss(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, *, r1_gamma: float = 0.0
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logistic D loss softplus(D(fake)) + softplus(−D(real)) plus (γ/2)·E‖∇ₓD(real)‖² when γ > 0."""
    real = real.detach().requires_grad_(r1_gamma > 0)
    out_real = D(real)
    loss = F.softplus(D(fake.detach())).mean() + F.softplus(-out_real).mean()
    terms = {"d": loss.detach()}
    if r1_gamma > 0:
        (grad,) = torch.autograd.grad(out_real.sum(), real, create_graph=True)
        r1 = grad.pow(2).flatten(1).sum(1).mean()
        loss = loss + 0.5 * r1_gamma * r1
        terms["r1"] = r1.detach()
    return loss, terms


@torch.no_grad()
def bit_accuracy_on_fresh_codes(model: FingerprintModel, n: int, *, seed: int = 0, batch_size: int = 256,
                                perturb: Callable[[torch.Tensor], torch.Tensor] | None = None,
                                min_matched: int | None = None) -> dict[str, float]:
    """Mean bit accuracy and word accuracy (share of images with ≥ ``min_matched`` matched bits; the
    scaled fixed rule by default) over n images, each made with its own fresh random code."""
    from genattr.watermark.fingerprint_codes import fixed_threshold

    g = torch.Generator().manual_seed(seed)
    t = fixed_threshold(model.code_bits) if min_matched is None else min_matched
    was = model.training
    model.eval()
    matched: list[torch.Tensor] = []
    try:
        for i in range(0, n, batch_size):
            m = min(batch_size, n - i)
            c = sample_codes(m, model.code_bits, g)
            x = model(torch.randn(m, model.latent_dim, generator=g), c)
            if perturb is not None:
                x = perturb(x)
            bits = (model.decoder(x)[1] > 0).float()
            matched.append((bits == c).sum(1))
    finally:
        model.train(was)
    k = torch.cat(matched).double() if matched else torch.zeros(0, dtype=torch.float64)
    return {"bit_accuracy": float(k.mean() / model.code_bits) if k.numel() else math.nan,
            "word_accuracy": float((k >= t).double().mean()) if k.numel() else math.nan, "threshold": t, "n": n}


__all__ = ["INSTANCE_ARCH", "LAMBDAS", "FingerprintDecoder", "FingerprintEmbedding", "FingerprintInstance",
           "FingerprintModel", "ModulatedConvTranspose", "ModulatedGenerator", "bit_accuracy_on_fresh_codes",
           "check_decoder_input",
           "code_tensor", "discriminator_loss", "generator_losses", "make_discriminator", "sample_codes"]
