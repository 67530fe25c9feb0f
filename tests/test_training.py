"""GAN training: every recipe runs, is deterministic, resumes bit for bit; loss terms vs direct formulas."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genattr.errors import ConfigError, DataError
from genattr.generators import DCGANDiscriminator, Generator
from genattr.training import TrainConfig, gradient_penalty, pull_away_term, train_gan
from genattr.training.classifier import FashionClassifier, train_classifier


def tiny_images(n: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 32, 32, generator=g) * 2 - 1
    return x


def tiny_cfg(arch: str, **kw) -> TrainConfig:
    return TrainConfig(arch=arch, epochs=kw.pop("epochs", 1), batch_size=16, ngf=4, ndf=4, latent_dim=8, **kw)


def weights(g: Generator) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in g.parameters()])


@pytest.mark.parametrize("arch", ["dcgan", "wgan_gp", "lsgan", "ebgan"])
def test_each_recipe_trains_and_is_deterministic(arch: str, tmp_path: Path) -> None:
    a = train_gan(tiny_cfg(arch), tmp_path / "a", images=tiny_images(), progress=False)
    b = train_gan(tiny_cfg(arch), tmp_path / "b", images=tiny_images(), progress=False)
    assert torch.equal(weights(a.generator), weights(b.generator))
    assert (tmp_path / "a" / "samples" / "epoch_001.png").is_file()
    loaded = Generator.from_pretrained(tmp_path / "a" / "generator")
    assert torch.equal(weights(loaded), weights(a.generator))
    assert len(a.history) == 1 and all(torch.isfinite(torch.tensor(v)) for v in a.history[0].values())
    c = train_gan(tiny_cfg(arch, seed=1), tmp_path / "c", images=tiny_images(), progress=False)
    assert not torch.equal(weights(c.generator), weights(a.generator))


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    full = train_gan(tiny_cfg("wgan_gp", epochs=2), tmp_path / "full", images=tiny_images(), progress=False)
    train_gan(tiny_cfg("wgan_gp", epochs=1), tmp_path / "part", images=tiny_images(), progress=False)
    resumed = train_gan(tiny_cfg("wgan_gp", epochs=2), tmp_path / "part", images=tiny_images(), progress=False)
    assert torch.equal(weights(full.generator), weights(resumed.generator))
    assert len(resumed.history) == 2


def test_resume_refuses_other_config(tmp_path: Path) -> None:
    train_gan(tiny_cfg("dcgan"), tmp_path / "r", images=tiny_images(), progress=False)
    with pytest.raises(ConfigError, match="different config"):
        train_gan(tiny_cfg("dcgan", lr=1e-3), tmp_path / "r", images=tiny_images(), progress=False)


def test_bad_training_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="recipe"):
        train_gan(TrainConfig(arch="nope"), tmp_path, images=tiny_images(), progress=False)
    bad = tiny_images()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="finite"):
        train_gan(tiny_cfg("dcgan"), tmp_path, images=bad, progress=False)
    with pytest.raises(ConfigError, match="fewer than one batch"):
        train_gan(tiny_cfg("dcgan"), tmp_path, images=tiny_images(8), progress=False)


def test_gradient_penalty_matches_direct_computation() -> None:
    torch.manual_seed(0)
    critic = DCGANDiscriminator(ndf=4, norm="layer")
    real, fake = tiny_images(4), tiny_images(4).flip(0)
    gp = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(5))
    eps = torch.rand(4, 1, 1, 1, generator=torch.Generator().manual_seed(5))
    expected = 0.0
    for i in range(4):  # per-sample gradient norms, one at a time
        xi = (eps[i] * real[i] + (1 - eps[i]) * fake[i])[None].requires_grad_(True)
        (g,) = torch.autograd.grad(critic(xi).sum(), xi)
        expected += (g.norm() - 1) ** 2 / 4
    torch.testing.assert_close(gp, expected)


def test_pull_away_term_matches_definition() -> None:
    e = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    s = 0.0
    for i in range(5):
        for j in range(5):
            if i != j:
                s += (e[i] @ e[j] / (e[i].norm() * e[j].norm())) ** 2
    torch.testing.assert_close(pull_away_term(e), s / 20)
    assert pull_away_term(e[:1]) == 0
    # identical embeddings are maximally penalised, orthogonal ones not at all
    assert pull_away_term(torch.ones(3, 4)).item() == pytest.approx(1.0)
    assert pull_away_term(torch.eye(4)).item() == pytest.approx(0.0)


def test_classifier_learns_and_roundtrips(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (256,), generator=g)
    x = torch.randn(256, 1, 32, 32, generator=g) * 0.1
    x[y == 1, :, :16] += 1.0  # class 1: bright top half (flip-invariant)
    model, _ = train_classifier(x, y, epochs=2, batch_size=32, progress=False)
    assert (model.predict(x) == y).float().mean() > 0.95
    model.save_pretrained(tmp_path / "c")
    back = FashionClassifier.from_pretrained(tmp_path / "c")
    torch.testing.assert_close(back.embed(x[:8]), model.embed(x[:8]))
    with pytest.raises(DataError):
        FashionClassifier.from_pretrained(tmp_path / "missing")


def test_resume_ignores_options_the_architecture_does_not_use(tmp_path: Path) -> None:
    first = train_gan(tiny_cfg("dcgan"), tmp_path / "r", images=tiny_images(), progress=False)
    again = train_gan(tiny_cfg("dcgan", ebgan_margin=5.0, gp_lambda=1.0), tmp_path / "r", images=tiny_images(),
                      progress=False)
    assert torch.equal(weights(first.generator), weights(again.generator))
    with pytest.raises(ConfigError, match="different config"):
        train_gan(tiny_cfg("dcgan", soft_labels=(1.0, 0.0)), tmp_path / "r", images=tiny_images(), progress=False)
