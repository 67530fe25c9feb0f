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
from tests.conftest import build_tiny_zoo, needs_fmnist

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


def test_assets_found_through_genattr_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-editable install has no zoo beside it: GENATTR_HOME points at one, and without it the error is
    one line that says how to fix it."""
    from typer.testing import CliRunner

    from genattr import paths
    from genattr.cli.main import app
    from genattr.zoo import _load_cached
    from tests.conftest import build_tiny_zoo

    monkeypatch.delenv("GENATTR_ZOO_DIR", raising=False)
    monkeypatch.delenv("GENATTR_MODELS_DIR", raising=False)
    monkeypatch.setattr(paths, "_CHECKOUT", tmp_path / "site-packages")  # as installed: no zoo beside the code
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENATTR_HOME", str(tmp_path / "nowhere"))
    r = CliRunner().invoke(app, ["zoo", "list"])
    assert r.exit_code == 1 and "GENATTR_HOME" in r.output and len(r.output.strip().splitlines()) <= 2
    home = tmp_path / "assets"
    (home / "zoo").mkdir(parents=True)
    build_tiny_zoo(home / "zoo")
    monkeypatch.setenv("GENATTR_HOME", str(home))
    _load_cached.cache_clear()
    assert zoo.names() == ["tiny-dcgan", "tiny-lsgan"] and paths.models_dir("yu2019") == home / "models" / "yu2019"
    monkeypatch.delenv("GENATTR_HOME")
    monkeypatch.chdir(home)  # run from a folder holding the assets
    assert paths.zoo_dir() == home / "zoo"
    _load_cached.cache_clear()


def test_fd_curves_plot_and_report(tmp_path: Path) -> None:
    from genattr.zoo.build import plot_fd_curves, write_report

    man = {"models": {"m-s1": {"arch": "dcgan", "seed": 1, "epochs": 3, "train_seconds": 1.0,
                               "fd_curve": [{"epoch": 1, "fd_2k_test": 90.0}, {"epoch": 2, "fd_val": 50.0},
                                            {"epoch": 3, "fd_val": 41.0}], "kept_epoch": 3,
                               "quality": {"fd": 40.0, "classifier_confidence": 0.8}}},
           "classifier": {"test_accuracy": 0.9}, "quality_reference": {"n": 10, "real_train_vs_real_test": 0.4}}
    png = plot_fd_curves(man, tmp_path / "fd_curves.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    write_report(man, tmp_path / "README.md")
    assert "fd_curves.png" in (tmp_path / "README.md").read_text()
    assert plot_fd_curves({"models": {}}, tmp_path / "none.png") is None


@needs_fmnist
def test_epoch_fd_keeps_the_best_epoch_and_uses_training_images(tmp_path: Path, monkeypatch) -> None:
    from genattr.generators import Generator
    from genattr.zoo.build import EpochFD

    build_tiny_zoo(tmp_path)
    probe = EpochFD(tmp_path, n=32, min_epochs=2, best_dir=tmp_path / "best")
    g = Generator.from_pretrained(tmp_path / "tiny-dcgan")
    scripted = iter([50.0, 40.0, 45.0])
    monkeypatch.setattr(probe, "fd", lambda G: next(scripted))
    history: list[dict] = []
    for epoch in (1, 2, 3):
        history.append({"epoch": epoch})
        probe(epoch, g, history)
        meta = json.loads((tmp_path / "best" / "config.json").read_text())
        assert meta["extra"]["epoch"] == min(epoch, 2)  # epoch 3 (worse) does not replace epoch 2
    assert [h["fd_val"] for h in history] == [50.0, 40.0, 45.0]
