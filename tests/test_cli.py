"""The CLI through Typer's CliRunner: happy paths on a tiny zoo, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from genattr.cli.main import app

runner = CliRunner()


def test_version() -> None:
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.startswith("genattr ")


def test_zoo_list(tiny_zoo: Path) -> None:
    r = runner.invoke(app, ["zoo", "list"])
    assert r.exit_code == 0, r.output
    assert "tiny-dcgan" in r.stdout and "tiny-lsgan" in r.stdout and "1.50" in r.stdout
    r = runner.invoke(app, ["zoo", "list", "--json"])
    assert json.loads(r.stdout)["tiny-lsgan"]["arch"] == "lsgan"


def test_zoo_sample_is_deterministic(tiny_zoo: Path, tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        r = runner.invoke(app, ["zoo", "sample", "tiny-dcgan", "-n", "6", "--seed", "3", "-o",
                                str(tmp_path / name), "--scale", "1"])
        assert r.exit_code == 0, r.output
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    with Image.open(tmp_path / "a.png") as im:
        assert im.size == (8 * 34 + 2, 34 + 2)


def test_unknown_model_is_one_clear_line(tiny_zoo: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["zoo", "sample", "nope", "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 1
    assert "unknown zoo model 'nope'" in r.stderr and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) <= 2  # one logical line (may wrap)


def test_tampered_zoo_fails_cleanly(tiny_zoo: Path, tmp_path: Path) -> None:
    w = tiny_zoo / "tiny-dcgan" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-1] + b"\x00")
    r = runner.invoke(app, ["zoo", "sample", "tiny-dcgan", "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and "sha256" in r.stderr


def test_zoo_train_tiny_then_resume(tmp_path: Path) -> None:
    args = ["zoo", "train", "dcgan", "--seed", "1", "--epochs", "1", "--out", str(tmp_path / "run"),
            "--ngf", "4", "--ndf", "4", "--batch-size", "32", "--limit", "64", "--data", "digits"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "generator" / "model.safetensors").is_file()
    r = runner.invoke(app, [*args[:6], "2", *args[7:]])  # extend to 2 epochs: resumes
    assert r.exit_code == 0 and "for 2 epochs" in r.stdout


def test_zoo_train_unknown_arch() -> None:
    r = runner.invoke(app, ["zoo", "train", "biggan"])
    assert r.exit_code == 1 and "unknown generator architecture 'biggan'" in r.stderr


def test_usage_error_exit_code() -> None:
    r = runner.invoke(app, ["zoo", "sample", "x", "-n", "0"])
    assert r.exit_code == 2


def test_demo_on_tiny_zoo(tiny_zoo: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "-n", "8"])
    assert r.exit_code == 0, r.output
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "tiny-dcgan" in report and "tiny-lsgan" in report
    assert (tmp_path / "demo" / "grids" / "tiny-lsgan.png").is_file()
    assert (tmp_path / "demo" / "class_histogram.png").is_file()
    data = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert [sum(m["class_counts"]) for m in data["models"]] == [8, 8]
