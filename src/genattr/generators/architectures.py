"""Generator and discriminator architectures of FLIPAD appendix G.2, adapted to 32×32 and any channel count.

The paper's 64×64 DCGAN generator has 5 transposed convolutions 100→512→256→128→64→3. At 32×32 one
upsampling stage fewer is needed, so we drop the widest stage and keep the penultimate width (``ngf``=64 in
the paper): latent→4ngf (4×4)→2ngf (8×8)→ngf (16×16)→C (32×32). WGAN-GP and EBGAN reuse this generator
(as in the paper); LSGAN has its own (linear layer + nearest-neighbour upsampling + 3×3 convs).
"""

from __future__ import annotations

import torch
from torch import nn

from genattr.errors import ConfigError
from genattr.generators.base import Generator, register_generator


def _check_size(image_size: int, supported: tuple[int, ...] = (32,)) -> None:
    if image_size not in supported:
        raise ConfigError(f"image_size {image_size} not supported (supported: {supported})")


def dcgan_init(module: nn.Module) -> None:
    """DCGAN weight initialisation (Radford et al. 2016): N(0, 0.02) convs, N(1, 0.02) norms."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.LayerNorm) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


@register_generator("dcgan")
class DCGANGenerator(Generator):
    """DCGAN generator (G.2): ConvT+BN+ReLU blocks, final ConvT without bias, tanh."""

    def __init__(self, *, latent_dim: int = 100, channels: int = 1, ngf: int = 64, image_size: int = 32) -> None:
        super().__init__()
        _check_size(image_size)
        if latent_dim < 1 or channels < 1 or ngf < 1:
            raise ConfigError("latent_dim, channels and ngf must be positive")
        self.latent_dim, self.channels, self.image_size = latent_dim, channels, image_size
        self.body = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        )
        self.final_layer = nn.ConvTranspose2d(ngf, channels, 4, 2, 1, bias=False)
        self.output_activation = nn.Tanh()
        dcgan_init(self)

    def penultimate(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z.reshape(z.shape[0], self.latent_dim, 1, 1))


@register_generator("wgan_gp")
class WGANGPGenerator(DCGANGenerator):
    """WGAN-GP generator: the DCGAN architecture (G.2), trained with a gradient-penalty critic."""


@register_generator("ebgan")
class EBGANGenerator(DCGANGenerator):
    """EBGAN generator: the DCGAN architecture (G.2), trained against an auto-encoder energy."""


@register_generator("lsgan")
class LSGANGenerator(Generator):
    """LSGAN generator (G.2): linear → 2ngf×4×4, three (upsample×2, conv3×3, BN, ReLU) blocks with
    channels 2ngf→2ngf→2ngf→ngf (128→128→128→64 at the paper's ngf=64), final conv3×3 (with bias, as in
    the paper) and tanh."""

    def __init__(self, *, latent_dim: int = 100, channels: int = 1, ngf: int = 64, image_size: int = 32) -> None:
        super().__init__()
        _check_size(image_size)
        self.latent_dim, self.channels, self.image_size = latent_dim, channels, image_size
        self.init_size, self.width = image_size // 8, 2 * ngf
        self.fc = nn.Linear(latent_dim, self.width * self.init_size ** 2)
        blocks: list[nn.Module] = []
        for cin, cout in ((self.width, self.width), (self.width, self.width), (self.width, ngf)):
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1),
                       nn.BatchNorm2d(cout), nn.ReLU(True)]
        self.body = nn.Sequential(*blocks)
        self.final_layer = nn.Conv2d(ngf, channels, 3, 1, 1)
        self.output_activation = nn.Tanh()
        dcgan_init(self)

    def penultimate(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], self.width, self.init_size, self.init_size)
        return self.body(h)


# Lives here, not in genattr.watermark, so an issued instance loads in any process with from_pretrained.
INSTANCE_ARCH = "yu2022-instance"


@register_generator(INSTANCE_ARCH)
class FingerprintInstance(Generator):
    """A fingerprinted generator instance: the DCGAN layout with plain (already modulated) weights and
    biases, no BatchNorm; made by :meth:`FingerprintModel.instance`, saved/loaded like any generator."""

    def __init__(self, *, latent_dim: int = 100, channels: int = 1, ngf: int = 32, image_size: int = 32) -> None:
        super().__init__()
        if image_size != 32:
            raise ConfigError(f"image_size {image_size} not supported (supported: (32,))")
        if latent_dim < 1 or channels < 1 or ngf < 1:
            raise ConfigError("latent_dim, channels and ngf must be positive")
        self.latent_dim, self.channels, self.image_size = latent_dim, channels, image_size
        self.body = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, 4 * ngf, 4, 1, 0), nn.ReLU(),
            nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1), nn.ReLU(),
        )
        self.final_layer = nn.ConvTranspose2d(ngf, channels, 4, 2, 1)
        self.output_activation = nn.Tanh()

    def penultimate(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z.reshape(z.shape[0], self.latent_dim, 1, 1))


# --- discriminators / critics (not shipped in the zoo; used by genattr.training) ------------------------

class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator (G.2) at 32×32: conv (no bias)+LReLU, 2×(conv+norm+LReLU), conv 4×4 → 1 logit.

    ``norm='batch'`` for DCGAN, ``'layer'`` for the WGAN-GP critic (batch norm would break the per-sample
    gradient penalty). Returns logits; the paper's sigmoid is folded into the BCE-with-logits loss.
    """

    def __init__(self, *, channels: int = 1, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()

        def norm_layer(c: int, hw: int) -> nn.Module:
            return nn.BatchNorm2d(c) if norm == "batch" else nn.LayerNorm([c, hw, hw])

        self.net = nn.Sequential(
            nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),            # 16×16
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1), norm_layer(ndf * 2, 8), nn.LeakyReLU(0.2, True),  # 8×8
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1), norm_layer(ndf * 4, 4), nn.LeakyReLU(0.2, True),  # 4×4
            nn.Conv2d(ndf * 4, 1, 4, 1, 0),
        )
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


class LSGANDiscriminator(nn.Module):
    """LSGAN discriminator (G.2): blocks of conv3×3/2 + LReLU + dropout(0.25) (+BN except the first), then a
    linear layer 512 → 1 (no sigmoid: least squares).

    The paper's 5 blocks (C→16→32→64→128→128) take 64×64 to 2×2 so the head sees 128·2·2 = 512 features.
    At 32×32 we use the first 4 blocks (C→16→32→64→128), which again ends at 128×2×2 = 512. A fifth block
    would end at 1×1, where batch norm over a batch of only-real or only-fake images erases exactly the
    batch-mean difference the discriminator needs (we saw D collapse to a constant 0.5).
    """

    def __init__(self, *, channels: int = 1, image_size: int = 32) -> None:
        super().__init__()
        _check_size(image_size)
        layers: list[nn.Module] = []
        chans = (channels, 16, 32, 64, 128)
        for i in range(4):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, 2, 1), nn.LeakyReLU(0.2, True), nn.Dropout2d(0.25)]
            if i > 0:
                layers.append(nn.BatchNorm2d(chans[i + 1], 0.8))  # eps=0.8 as in the reference implementation
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(128 * (image_size // 16) ** 2, 1)
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x).flatten(1)).flatten()


class EBGANDiscriminator(nn.Module):
    """EBGAN auto-encoder discriminator (G.2): encoder conv (no bias) C→64→128→256, BN+LReLU between;
    decoder conv-transpose 256→128→64→C with BN+ReLU. Energy = per-sample mean squared reconstruction error.
    """

    def __init__(self, *, channels: int = 1, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()

        def nrm(c: int) -> nn.Module:
            return nn.BatchNorm2d(c) if norm == "batch" else nn.Identity()

        self.encoder = nn.Sequential(
            nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), nrm(ndf), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nrm(ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
        )
        self.decoder = nn.Sequential(
            nrm(ndf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ndf * 4, ndf * 2, 4, 2, 1), nrm(ndf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ndf * 2, ndf, 4, 2, 1), nrm(ndf), nn.ReLU(True),
            nn.ConvTranspose2d(ndf, channels, 4, 2, 1), nn.Tanh(),
        )
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (energy per sample, encoder embedding flattened)."""
        code = self.encoder(x)
        recon = self.decoder(code)
        energy = (recon - x).pow(2).flatten(1).mean(1)
        return energy, code.flatten(1)
