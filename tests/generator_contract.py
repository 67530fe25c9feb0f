"""Contract-test mixin every generator test class inherits (tiny configs, CPU, offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from genattr.generators import Generator, create_generator


class GeneratorContract:
    arch: str = ""
    config: ClassVar[dict[str, Any]] = {}

    def make(self, seed: int = 0) -> Generator:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return create_generator(self.arch, **self.config).eval()

    def test_shapes_and_range(self) -> None:
        g = self.make()
        x = g.sample(5, torch.Generator().manual_seed(0))
        assert x.shape == (5, g.channels, g.image_size, g.image_size) and x.dtype == torch.float32
        assert x.min() >= -1 and x.max() <= 1
        assert g.sample(0).shape == (0, g.channels, g.image_size, g.image_size)

    def test_seeded_determinism_and_batch_invariance(self) -> None:
        g = self.make()
        a = g.sample(6, torch.Generator().manual_seed(3))
        b = g.sample(6, torch.Generator().manual_seed(3), batch_size=4)
        torch.testing.assert_close(a, b)
        assert not torch.allclose(a, g.sample(6, torch.Generator().manual_seed(4)))
        torch.testing.assert_close(self.make(seed=1).state_dict()["final_layer.weight"],
                                   self.make(seed=1).state_dict()["final_layer.weight"])

    def test_penultimate_final_split(self) -> None:
        g = self.make()
        z = torch.randn(4, g.latent_dim, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            h = g.penultimate(z)
            assert isinstance(g.final_layer, torch.nn.Conv2d | torch.nn.ConvTranspose2d)
            assert isinstance(g.output_activation, torch.nn.Tanh)
            torch.testing.assert_close(g.output_activation(g.final_layer(h)), g(z), rtol=0, atol=0)
            assert h.ndim == 4 and h.shape[1] == g.final_layer.in_channels
            assert (h >= 0).all()  # the penultimate activations are post-ReLU

    def test_save_load_roundtrip(self, tmp_path: Path) -> None:
        g = self.make()
        g.save_pretrained(tmp_path / "g")
        h = Generator.from_pretrained(tmp_path / "g")
        assert type(h) is type(g) and h.config == g.config
        z = torch.randn(3, g.latent_dim, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            torch.testing.assert_close(h(z), g(z), rtol=0, atol=0)

    def test_config_captured(self) -> None:
        g = self.make()
        assert g.arch == self.arch
        for k, v in self.config.items():
            assert g.config[k] == v
        assert create_generator(self.arch, **g.config).config == g.config

    def test_gradients_flow_to_latent(self) -> None:
        g = self.make()
        z = torch.randn(2, g.latent_dim, requires_grad=True)
        g(z).sum().backward()
        assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
