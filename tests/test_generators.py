"""Every registered generator architecture passes the generator contract."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genattr.errors import ConfigError, DataError, UnknownNameError
from genattr.generators import (
    DCGANDiscriminator,
    EBGANDiscriminator,
    Generator,
    LSGANDiscriminator,
    create_generator,
    list_generators,
    register_generator,
)
from tests.generator_contract import GeneratorContract

TINY = {"latent_dim": 8, "ngf": 4}


def test_registry_lists_the_four_architectures() -> None:
    assert set(list_generators()) >= {"dcgan", "wgan_gp", "lsgan", "ebgan"}


def test_duplicate_registration_raises() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        @register_generator("dcgan")
        class Dup(Generator):
            pass


def test_unknown_name_lists_known() -> None:
    with pytest.raises(UnknownNameError, match="known: dcgan"):
        create_generator("stylegan9")


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        create_generator("dcgan", image_size=64)
    with pytest.raises(ConfigError):
        create_generator("dcgan", no_such_option=1)


@pytest.mark.parametrize("arch", ["dcgan", "wgan_gp", "lsgan", "ebgan"])
class TestRegisteredGenerators(GeneratorContract):
    @pytest.fixture(autouse=True)
    def _arch(self, arch: str) -> None:
        self.arch, self.config = arch, dict(TINY)


class TestRGBGenerator(GeneratorContract):
    arch, config = "dcgan", {"latent_dim": 8, "ngf": 4, "channels": 3}


def test_dcgan_final_layer_has_no_bias_lsgan_has() -> None:
    assert create_generator("dcgan", **TINY).final_layer.bias is None  # G.2: "without bias"
    assert create_generator("lsgan", **TINY).final_layer.bias is not None


@pytest.mark.parametrize("disc", [DCGANDiscriminator(ndf=4), DCGANDiscriminator(ndf=4, norm="layer"),
                                  LSGANDiscriminator()])
def test_discriminators_output_one_score_per_image(disc: torch.nn.Module) -> None:
    assert disc(torch.zeros(3, 1, 32, 32)).shape == (3,)


def test_ebgan_discriminator_energy() -> None:
    e, code = EBGANDiscriminator(ndf=4)(torch.zeros(3, 1, 32, 32))
    assert e.shape == (3,) and (e >= 0).all() and code.shape[0] == 3


def test_from_pretrained_rejects_bad_dirs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"config\.json"):
        Generator.from_pretrained(tmp_path)
    g = create_generator("dcgan", **TINY)
    g.save_pretrained(tmp_path / "g")
    (tmp_path / "g" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DataError, match="unreadable"):
        Generator.from_pretrained(tmp_path / "g")
    g.save_pretrained(tmp_path / "h")
    (tmp_path / "h" / "config.json").write_text("{")
    with pytest.raises(DataError, match="malformed"):
        Generator.from_pretrained(tmp_path / "h")
    # weights of another shape
    create_generator("dcgan", latent_dim=8, ngf=5).save_pretrained(tmp_path / "k")
    (tmp_path / "k" / "config.json").write_text(_config_text(g))
    with pytest.raises(DataError, match="do not match"):
        Generator.from_pretrained(tmp_path / "k")


def _config_text(g: Generator) -> str:
    import json

    return json.dumps({"arch": g.arch, "config": g.config})


def test_positional_args_rejected() -> None:
    from genattr.generators import DCGANGenerator

    with pytest.raises(ConfigError, match="keyword"):
        DCGANGenerator(8)  # type: ignore[misc]
