"""`genattr flipad fit / score` through Typer's CliRunner on the tiny zoo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from genattr.cli.flipad_cmds import flipad_app

runner = CliRunner()
app = typer.Typer()
app.add_typer(flipad_app, name="flipad")  # the lead mounts it the same way in genattr.cli.main

SMALL = ["--n-train", "32", "--n-val", "16", "--threads", "1", "--set", "n_mean=64", "--set", "epochs=1",
         "--set", "max_iter=10", "--set", "widths=[4]", "--set", "batch_size=16", "--set", "rep_dim=4"]


def _png(path: Path, x: torch.Tensor) -> Path:
    arr = ((x[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    Image.fromarray(np.ascontiguousarray(arr)).save(path)
    return path


def test_fit_then_score(tiny_zoo: Path, tmp_path: Path) -> None:
    out = tmp_path / "att"
    r = runner.invoke(app, ["flipad", "fit", "--model", "tiny-dcgan", "--negatives", "tiny-lsgan", "--out", str(out),
                            *SMALL])
    assert r.exit_code == 0, r.output
    assert "saved to" in r.output and (out / "config.json").is_file()
    from genattr import zoo

    g = zoo.load("tiny-dcgan")
    imgs = [_png(tmp_path / f"{i}.png", g.sample(1, torch.Generator().manual_seed(i))[0]) for i in range(2)]
    imgs.append(_png(tmp_path / "noise.png", torch.rand(1, 32, 32) * 2 - 1))
    r = runner.invoke(app, ["flipad", "score", str(out), *map(str, imgs), "--json"])
    assert r.exit_code == 1 and "--trust-unverified" in r.output  # a fitted directory has no manifest
    r = runner.invoke(app, ["flipad", "score", str(out), *map(str, imgs), "--json", "--trust-unverified"])
    assert r.exit_code == 0, r.output
    assert "NOT verified" in r.stderr
    res = json.loads(r.stdout)  # the verdict shape of `genattr attribute`, with the detector's evidence only
    assert res["schema"] == "genattr.verdict/1" and res["model"] == "tiny-dcgan" and res["method"] == "flipad"
    assert len(res["results"]) == 3 and all([e["method"] for e in v["evidence"]] == ["flipad"]
                                            for v in res["results"])
    # Behaviour on fixed seeds: G's own samples score above the noise image, which is rejected.
    own, noise = res["results"][:2], res["results"][2]
    assert noise["answer"] == "unknown" and noise["evidence"][0]["details"]["accepted"] is False

    def score(v: dict) -> float:
        return v["evidence"][0]["details"]["score"]

    assert all(score(im) > score(noise) for im in own)
    r = runner.invoke(app, ["flipad", "score", str(out), str(imgs[0]), "--trust-unverified"])
    assert r.exit_code == 0 and "tiny-dcgan" in r.stdout


@pytest.mark.parametrize("method", ["sm-f", "rawpad"])
def test_other_methods_fit(tiny_zoo: Path, tmp_path: Path, method: str) -> None:
    extra = SMALL[:6] if method == "sm-f" else [*SMALL[:6], "--set", "epochs=1", "--set", "widths=[4]"]
    r = runner.invoke(app, ["flipad", "fit", "--model", "tiny-dcgan", "--negatives", "tiny-lsgan", "--method", method,
                            "--out", str(tmp_path / method), *extra])
    assert r.exit_code == 0, r.output


def test_errors_are_one_line(tiny_zoo: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["flipad", "fit", "--model", "tiny-dcgan", "--method", "nope", "--out", str(tmp_path)])
    assert r.exit_code == 1 and "unknown method" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["flipad", "fit", "--model", "missing", "--out", str(tmp_path)])
    assert r.exit_code == 1 and "unknown zoo model" in r.output
    r = runner.invoke(app, ["flipad", "score", str(tmp_path / "none"), str(tmp_path / "x.png")])
    assert r.exit_code == 1 and "not a saved attributor" in r.output


def test_reproduce_flipad_is_wired_into_the_main_cli() -> None:
    from typer.testing import CliRunner

    from genattr.cli.main import app

    r = CliRunner().invoke(app, ["reproduce", "flipad", "--help"])
    assert r.exit_code == 0 and "--only" in r.stdout
    r = CliRunner().invoke(app, ["reproduce", "flipad", "--set", "nonsense"])
    assert r.exit_code == 1 and "KEY=VALUE" in r.stderr


def test_demo_flipad_step_on_a_shipped_detector(tiny_zoo: Path, tmp_path: Path) -> None:
    from rich.console import Console

    from genattr import zoo
    from genattr.attribution import Attributor
    from genattr.attribution.shipping import ship_attributor
    from genattr.demo import flipad_step

    out = tmp_path / "att"
    r = runner.invoke(app, ["flipad", "fit", "--model", "tiny-dcgan", "--negatives", "tiny-lsgan", "--out", str(out),
                            *SMALL])
    assert r.exit_code == 0, r.output
    models = tmp_path / "models"
    ship_attributor(Attributor.load(out), models, "tiny-dcgan", {"target_fnr": 0.005})
    console = Console(record=True, width=120)
    res = flipad_step(n=4, seed=0, console=console, models_dir=models, model="tiny-dcgan")
    assert res is not None and res["model"] == "tiny-dcgan" and res["target_fnr"] == 0.005
    assert res["rows"][0]["source"] == "tiny-dcgan"
    assert {row["source"] for row in res["rows"]} >= set(zoo.names())
    assert all(row["n"] == 4 for row in res["rows"])
    # the detector accepts its own generator's samples more often than any other source's
    own = res["rows"][0]["accepted"]
    assert own >= 1 and all(own >= row["accepted"] for row in res["rows"][1:])
    assert flipad_step(n=4, seed=0, console=console, models_dir=tmp_path / "missing") is None
    assert "FLIPAD step skipped" in console.export_text()


def test_score_verifies_a_shipped_detector(tiny_zoo: Path, tmp_path: Path) -> None:
    from genattr import zoo
    from genattr.attribution import Attributor
    from genattr.attribution.shipping import ship_attributor

    out = tmp_path / "att"
    assert runner.invoke(app, ["flipad", "fit", "--model", "tiny-dcgan", "--negatives", "tiny-lsgan", "--out",
                               str(out), *SMALL]).exit_code == 0
    models = tmp_path / "models"
    ship_attributor(Attributor.load(out), models, "tiny-dcgan", {})
    img = _png(tmp_path / "a.png", zoo.load("tiny-dcgan").sample(1, torch.Generator().manual_seed(0))[0])
    r = runner.invoke(app, ["flipad", "score", str(models / "tiny-dcgan"), str(img), "--json"])
    assert r.exit_code == 0, r.output
    w = models / "tiny-dcgan" / "config.json"
    w.write_text(w.read_text() + " ")  # still valid JSON, other bytes
    r = runner.invoke(app, ["flipad", "score", str(models / "tiny-dcgan"), str(img)])
    assert r.exit_code == 1 and "sha256" in r.output
