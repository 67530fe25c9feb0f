"""Zoo loading with sha256 verification, on a tiny temporary zoo and on the shipped one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from genattr import zoo
from genattr.errors import DataError, IntegrityError, UnknownNameError
from genattr.generators import Generator
from genattr.zoo.recipes import RECIPES, recipe, recipes_for
from tests.conftest import needs_fmnist

SHIPPED = Path(__file__).resolve().parents[1] / "zoo"


def test_names_and_load(tiny_zoo: Path) -> None:
    assert zoo.names() == ["tiny-dcgan", "tiny-lsgan"]
    g = zoo.load("tiny-dcgan")
    assert isinstance(g, Generator) and g.latent_dim == 8
    g.final_layer.weight.data.zero_()  # a copy: does not poison the cache
    assert zoo.load("tiny-dcgan").final_layer.weight.abs().sum() > 0
    assert zoo.load_classifier().config["feature_dim"] == 8


def test_unknown_name(tiny_zoo: Path) -> None:
    with pytest.raises(UnknownNameError, match="tiny-dcgan"):
        zoo.load("fmnist-biggan-s0")


def test_tampered_weights_rejected(tiny_zoo: Path) -> None:
    w = tiny_zoo / "tiny-lsgan" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0x01
    w.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        zoo.load("tiny-lsgan")


def test_missing_weights_and_manifest(tiny_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tiny_zoo / "tiny-dcgan" / "model.safetensors").unlink()
    with pytest.raises(DataError, match="missing"):
        zoo.load("tiny-dcgan")
    monkeypatch.setenv("GENATTR_ZOO_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="manifest"):
        zoo.names()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("[1, 2]")
    monkeypatch.setenv("GENATTR_ZOO_DIR", str(tmp_path / "bad"))
    with pytest.raises(DataError, match="malformed"):
        zoo.names()


def test_recipes_cover_the_issue() -> None:
    names = {r.name for r in RECIPES}
    assert {r.arch for r in RECIPES} == {"dcgan", "wgan_gp", "lsgan", "ebgan"}
    assert {f"fmnist-dcgan-s{i}" for i in range(5)} <= names
    assert recipe("fmnist-dcgan-s3").seed == 3
    with pytest.raises(UnknownNameError):
        recipe("nope")


def test_recipes_have_distinct_seeds_named_in_their_names() -> None:
    seeds = [r.seed for r in RECIPES]
    assert len(set(seeds)) == len(seeds), "two zoo entries share a seed (near-twin generators)"
    for r in RECIPES:
        assert r.name.endswith(f"-s{r.seed}")


def test_converged_waits_for_a_flat_curve() -> None:
    from genattr.zoo.recipes import converged

    falling = [300.0, 150.0, 90.0, 60.0, 45.0, 35.0, 28.0]
    assert not converged(falling)
    flat = [300.0, 150.0, 90.0, 60.0, 40.0, 39.5, 40.2, 39.0]
    assert converged(flat)
    assert not converged(flat[:3])  # never before min_epochs
    assert not converged([300.0, 40.0, 39.0, 38.0], min_epochs=5)


shipped = pytest.mark.skipif(not (SHIPPED / "manifest.json").is_file(), reason="zoo not built in this checkout")


@shipped
def test_shipped_zoo_is_complete_verified_and_small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENATTR_ZOO_DIR", raising=False)
    man = json.loads((SHIPPED / "manifest.json").read_text())
    assert set(man["models"]) == {r.name for r in recipes_for(man)}
    total = 0
    for name, e in man["models"].items():
        zoo.verify(name)
        total += (SHIPPED / name / "model.safetensors").stat().st_size
        for key in ("arch", "config", "seed", "epochs", "data_sha256", "file_sha256", "quality"):
            assert key in e, (name, key)
        assert e["quality"]["fd"] >= 0
    assert total < 40 * 2**20
    zoo.verify(zoo.CLASSIFIER)


@shipped
def test_shipped_dcgan_seeds_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENATTR_ZOO_DIR", raising=False)
    a, b = zoo.load("fmnist-dcgan-s0"), zoo.load("fmnist-dcgan-s1")
    assert type(a) is type(b) and a.config == b.config
    z = torch.randn(2, a.latent_dim)
    assert not torch.allclose(a(z), b(z))


@needs_fmnist
def test_measure_only_rebuild_writes_manifest_report_and_grids(tiny_zoo: Path) -> None:
    from genattr.zoo.build import rebuild

    man = rebuild(root=tiny_zoo, n_eval=200, retrain=False, progress=False)
    for name in ("tiny-dcgan", "tiny-lsgan"):
        q = man["models"][name]["quality"]
        assert q["n"] == 200 and q["fd"] > man["quality_reference"]["real_train_vs_real_test"]  # untrained
        assert (tiny_zoo.parent / "docs" / "zoo" / f"{name}.png").is_file()
    assert json.loads((tiny_zoo / "manifest.json").read_text())["models"]["tiny-dcgan"]["quality"] == \
        man["models"]["tiny-dcgan"]["quality"]
    assert "tiny-lsgan" in (tiny_zoo.parent / "docs" / "zoo" / "README.md").read_text()
    again = rebuild(root=tiny_zoo, n_eval=200, retrain=False, progress=False)  # measured deterministically
    assert again["models"]["tiny-lsgan"]["quality"] == man["models"]["tiny-lsgan"]["quality"]
