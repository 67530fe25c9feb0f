"""An ideal fingerprint instance/decoder pair for tests: the instance paints its code's bits into row 0 and the
decoder reads them back, so pipeline logic can be tested without a trained Yu 2022 model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genattr.generators import Generator, list_generators, register_generator

BITS = 16
PAINTER = "test-code-painter"


class CodePainter(Generator):
    """Noise images with the code's bits as ±1 in the first pixels of row 0."""

    def __init__(self, *, code: tuple[int, ...] = (0,) * BITS) -> None:
        super().__init__()
        self.latent_dim, self.channels, self.image_size = 32 * 32, 1, 32
        self.scale = nn.Parameter(torch.tensor(0.3))
        self.register_buffer("bits", torch.tensor(list(code), dtype=torch.float32))
        self.final_layer, self.output_activation = nn.Identity(), nn.Identity()

    def penultimate(self, z: torch.Tensor) -> torch.Tensor:
        x = (self.scale * z).clamp(-1, 1).view(-1, 1, 32, 32).clone()
        x[:, 0, 0, :self.bits.numel()] = 2 * self.bits - 1
        return x


if PAINTER not in list_generators():
    register_generator(PAINTER)(CodePainter)


@pytest.fixture
def ideal_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    from genattr.watermark.fingerprint import FingerprintDecoder, FingerprintModel

    monkeypatch.setattr(FingerprintModel, "instance", lambda self, code: CodePainter(code=tuple(int(b) for b in code)))
    monkeypatch.setattr(FingerprintDecoder, "forward",
                        lambda self, x: (torch.zeros(x.shape[0], self.latent_dim), 10 * x[:, 0, 0, :self.code_bits]))
