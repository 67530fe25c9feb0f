"""`genattr attribute IMAGE…|DIR` through CliRunner: JSON (the verdict schema), CSV, the table, bad files as error
rows (exit 1), streaming in chunks, and the Ray engine giving the in-process engine's answers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from genattr.cli.main import app
from genattr.data import save_png
from genattr.unified import Pipeline, Policy
from tests.unified.helpers import build_registry, check_verdict_json, make_images, validation

runner = CliRunner()
KINDS = ("real", "gen-a", "gen-b", "clone-a", "alice", "alice+bob", "stranger")
WANT = {"real": "real", "gen-a": "gen-a", "gen-b": "gen-b", "clone-a": "unknown", "alice": "alice",
        "alice+bob": "ambiguous", "stranger": "unknown"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("attr")
    url = build_registry(root)
    # the pipeline's calibration, computed once on a validation split and saved as the CLI reads it
    pipe = Pipeline.from_registry(url, calibration=None, policy=Policy(alpha=0.02, alpha_detect=0.05))
    cal = pipe.calibrate(validation())
    cal_path = cal.save(root / "calibration.json")
    folder = root / "images"
    names = []
    for k in KINDS:
        for i, img in enumerate(make_images(k, 2, 300)):
            names.append(save_png(img, folder / f"{k}-{i}.png").name)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    save_png(torch.zeros(1, 1, 28, 28), folder / "small.png")
    return {"url": url, "cal": cal_path, "folder": folder}


def _run(world: dict, *args: str) -> object:
    return runner.invoke(app, ["attribute", str(world["folder"]), "--db", world["url"], "--calibration",
                               str(world["cal"]), "--threads", "1", *args])


def _answers(results: list[dict]) -> dict[str, str]:
    return {Path(r["path"]).name: r.get("answer", "error") for r in results}


def test_json_answers_every_image_in_the_schema(world: dict) -> None:
    r = _run(world, "--json")
    assert r.exit_code == 1, r.output  # two files could not be attributed ...
    data = json.loads(r.stdout)
    check_verdict_json(data, envelope=True)
    got = _answers(data["results"])
    assert got.pop("broken.png") == "error" and got.pop("small.png") == "error"  # ... and say why
    assert got == {f"{k}-{i}.png": WANT[k] for k in KINDS for i in range(2)}
    by_name = {Path(x["path"]).name: x for x in data["results"]}
    assert "28×28" in by_name["small.png"]["error"] and "PNG" in by_name["broken.png"]["error"]
    assert by_name["alice-0.png"]["decided_by"] == "kim-keys" and len(by_name["alice-0.png"]["image_sha256"]) == 64
    assert "attributing 16 image(s)" in r.stderr


def test_csv_and_table(world: dict, tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    r = _run(world, "--out", str(out))
    assert r.exit_code == 1
    rows = list(csv.DictReader(out.open()))
    answers = {Path(row["path"]).name: row["answer"] or "error" for row in rows}
    assert len(rows) == 16 and answers["gen-b-1.png"] == "gen-b" and answers["broken.png"] == "error"
    row = next(x for x in rows if x["path"].endswith("clone-a-0.png"))
    assert row["classifier"] == "gen-a" and row["flipad"] == "unknown" and row["answer"] == "unknown"
    assert row["kim-keys"] == "unknown" and row["log"] == "skipped" and float(row["confidence"]) >= 0.98
    flat = " ".join(r.stdout.split())
    assert "alice+bob-0.png" in flat and "ambiguous" in flat and "error" in flat


def test_chunks_stream_to_the_same_answers(world: dict) -> None:
    a = json.loads(_run(world, "--json").stdout)
    b = json.loads(_run(world, "--json", "--chunk-size", "3").stdout)
    assert a == b


def test_single_files_and_missing_ones(world: dict) -> None:
    f = world["folder"]
    r = runner.invoke(app, ["attribute", str(f / "gen-a-0.png"), str(f / "nope.png"), "--db", world["url"],
                            "--calibration", str(world["cal"]), "--json"])
    assert r.exit_code == 1
    assert _answers(json.loads(r.stdout)["results"]) == {"gen-a-0.png": "gen-a", "nope.png": "error"}
    r = runner.invoke(app, ["attribute", str(f / "gen-a-0.png"), "--db", world["url"], "--engine", "spark"])
    assert r.exit_code == 1 and "unknown engine" in r.output
    r = runner.invoke(app, ["attribute", str(f / "gen-a-0.png"), "--db", world["url"], "--ray-address", "auto"])
    assert r.exit_code == 1 and "--engine ray" in r.output


def test_an_empty_default_registry_is_filled_from_the_shipped_models(tmp_path: Path, monkeypatch) -> None:
    from tests.conftest import build_tiny_zoo

    (tmp_path / "zoo").mkdir()
    build_tiny_zoo(tmp_path / "zoo")
    monkeypatch.setenv("GENATTR_HOME", str(tmp_path))
    monkeypatch.delenv("GENATTR_DATABASE_URL", raising=False)
    monkeypatch.delenv("GENATTR_MODELS_DIR", raising=False)
    monkeypatch.delenv("GENATTR_ZOO_DIR", raising=False)
    img = save_png(make_images("real", 1, 1)[0], tmp_path / "x.png")
    r = runner.invoke(app, ["attribute", str(img)])
    flat = " ".join(r.output.split())
    # the zoo is registered, but a zoo alone has no attribution component: a clear error, not a traceback
    assert r.exit_code == 1 and "registering the shipped models" in flat and "no attribution components" in flat
    assert (tmp_path / "registry.db").is_file()


# -- Ray ------------------------------------------------------------------------------------------------------------
def test_ray_engine_gives_the_same_answers(world: dict, local_ray: None) -> None:
    local = json.loads(_run(world, "--json", "--chunk-size", "5").stdout)
    remote = _run(world, "--json", "--chunk-size", "5", "--engine", "ray")
    assert remote.exit_code == 1, remote.output  # the same two bad files
    assert json.loads(remote.stdout) == local and "engine ray" in remote.stderr
    import ray

    assert ray.is_initialized()  # joined the running Ray, so left it running
