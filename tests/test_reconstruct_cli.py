"""`genattr reconstruct` (CliRunner on the module's own Typer app) and the ledger deniability helpers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from genattr.cli.reconstruct_cmds import reconstruct_app, split_candidates
from tests.test_seed_reconstruction import TinyMLPGenerator, samples

runner = CliRunner()


def _png(x: torch.Tensor, path: Path) -> Path:
    arr = ((x[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    Image.fromarray(arr, mode="L").save(path)
    return path


@pytest.fixture
def setup(tmp_path: Path) -> dict:
    gens = {}
    for i in range(2):
        g = TinyMLPGenerator(seed=i).eval()
        g.save_pretrained(tmp_path / f"gen{i}")
        gens[f"gen{i}"] = g
    imgs = [_png(samples(g, 1, 70 + i)[0], tmp_path / f"img{i}.png") for i, g in enumerate(gens.values())]
    return {"dirs": [str(tmp_path / "gen0"), str(tmp_path / "gen1")], "images": imgs, "tmp": tmp_path}


def test_reconstruct_json_ranking_and_figures(setup: dict) -> None:
    out = setup["tmp"] / "out"
    args = ["--candidates", ",".join(setup["dirs"]), *map(str, setup["images"]), "--json", "--out", str(out),
            "--restarts", "2", "--steps", "60", "--threads", "1"]
    r = runner.invoke(reconstruct_app, args)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)  # the plan and progress go to stderr
    assert data["candidates"] == ["gen0", "gen1"]
    assert [row["label"] for row in data["images"]] == ["gen0", "gen1"]
    for row in data["images"]:
        d = [c["distance"] for c in row["ranking"]]
        assert d == sorted(d) and row["ranking"][0]["candidate"] == row["label"]
        assert all(len(c["restart_distances"]) == 2 for c in row["ranking"])
        assert min(c["restart_distances"][0] for c in row["ranking"]) >= 0
        assert Path(row["figure"]).is_file() and Image.open(row["figure"]).size[0] > 100
    saved = json.loads((out / "reconstruct.json").read_text())
    assert saved["params"]["restarts"] == 2 and len(saved["images"]) == 2
    assert not list(out.glob("*.tmp*"))


def test_reconstruct_text_output_and_repeated_option(setup: dict) -> None:
    r = runner.invoke(reconstruct_app, ["-c", setup["dirs"][0], "-c", setup["dirs"][1], str(setup["images"][1]),
                                        "--restarts", "1", "--steps", "5", "--threads", "1"])
    assert r.exit_code == 0, r.output
    assert "img1.png" in r.output and "1. " in r.output and "2. " in r.output and "restarts:" in r.output


def test_reconstruct_bad_input_is_one_line(setup: dict, tmp_path: Path) -> None:
    big = _png(torch.zeros(1, 16, 16), tmp_path / "big.png")
    cases = [
        (["--candidates", setup["dirs"][0], str(big)], "shape"),
        (["--candidates", setup["dirs"][0], str(tmp_path / "missing.png")], "no such image"),
        (["--candidates", setup["dirs"][0], str(setup["images"][0]), "--distance", "lpips"], "distance"),
        (["--candidates", setup["dirs"][0], str(setup["images"][0]), "--engine", "spark"], "engine"),
        (["--candidates", setup["dirs"][0], str(setup["images"][0]), "--lr-schedule", "step"], "lr_schedule"),
        (["--candidates", setup["dirs"][0] + "," + setup["dirs"][0], str(setup["images"][0])], "duplicate"),
        (["--candidates", setup["dirs"][0], str(setup["images"][0]), "--policy", "p.txt"], "--log"),
    ]
    for args, what in cases:
        r = runner.invoke(reconstruct_app, [*args, "--steps", "1", "--restarts", "1"])
        assert r.exit_code == 1, (args, r.output)
        assert "error:" in r.output and what in r.output and "Traceback" not in r.output


def test_split_candidates() -> None:
    assert split_candidates(["a,b", "c", " d , "]) == ["a", "b", "c", "d"]


# -- the generation log: strict attribution and deniability ------------------------------------------------------


def _logged(tmp_path: Path, g: TinyMLPGenerator, n: int = 2) -> tuple:
    from genattr.attribution.deniability import logged_sampler
    from genattr.ledger import LoggedGenerator, TransparencyLog, generate_signer

    log_key, owner = generate_signer("example.com/seedrec-log"), generate_signer("owner.example/alice")
    g.save_pretrained(tmp_path / "owner-model")
    weights = tmp_path / "owner-model" / "model.safetensors"
    db = tmp_path / "gen.db"
    log = TransparencyLog.create(db, "example.com/seedrec-log", log_key.vkey, owners=[owner.vkey])
    out = LoggedGenerator(logged_sampler(g), log, owner=owner, model_id=weights)(batch_size=n, seed=1234)
    log.sign_checkpoint(log_key)
    log.close()
    return out, db, weights, log_key


def test_check_entry_regenerates_from_the_opened_seed(tmp_path: Path) -> None:
    from genattr.attribution.deniability import check_entry

    g = TinyMLPGenerator(seed=0).eval()
    out, _, weights, _ = _logged(tmp_path, g)
    rec = out.receipts[1]
    ok = check_entry(rec, g, image=out.images[1], weights=weights)
    assert ok.entry_verified and ok.strict_attribution and ok.image_max_level_diff == 0
    other = check_entry(rec.to_dict(), g, image=out.images[0])  # another logged sample is not this one
    assert other.entry_verified and not other.strict_attribution and "NOT this logged output" in other.message
    wrong_model = check_entry(rec, TinyMLPGenerator(seed=5).eval(), image=out.images[1])
    assert not wrong_model.entry_verified and "does NOT reproduce" in wrong_model.message
    from genattr.ledger import Receipt

    bad_seed = Receipt(rec.index, rec.entry, 999, rec.salt, rec.sample)
    assert not check_entry(bad_seed, g).commitment_opens


def test_reconstruct_reports_a_logged_image(tmp_path: Path) -> None:
    g = TinyMLPGenerator(seed=0).eval()
    out, db, _, log_key = _logged(tmp_path, g)
    logged = tmp_path / "logged.png"
    Image.fromarray(np.asarray(out.images[0])[..., 0], mode="L").save(logged)
    fresh = _png(samples(g, 1, 99)[0], tmp_path / "fresh.png")
    r = runner.invoke(reconstruct_app, ["--candidates", str(tmp_path / "owner-model"), str(logged), str(fresh),
                                        "--log", str(db), "--log-key", log_key.vkey, "--json", "--steps", "2",
                                        "--restarts", "1", "--threads", "1"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["images"]
    assert rows[0]["log"]["found"] and rows[0]["log"]["index"] == 0
    assert not rows[1]["log"]["found"] and "weak evidence" in rows[1]["log"]["message"]
    r = runner.invoke(reconstruct_app, ["--candidates", str(tmp_path / "owner-model"), str(logged),
                                        "--log", str(db), "--steps", "1", "--restarts", "1"])
    assert r.exit_code == 0 and "FOUND" in r.output and "Strict attribution" in r.output


# -- genattr reproduce zhang2020 (smoke test on the tiny zoo; numbers are meaningless) -------------------------


def test_reproduce_zhang2020_quick_writes_every_summary_and_the_report(tiny_zoo: Path, tmp_path: Path) -> None:
    import typer

    from genattr.cli.reconstruct_cmds import reproduce_zhang2020_command
    from genattr.evaluation.zhang2020 import EXPERIMENTS

    app = typer.Typer()
    app.command("zhang2020")(reproduce_zhang2020_command)
    models = "tiny-dcgan,tiny-lsgan"
    out = tmp_path / "res"
    args = ["--out", str(out), "--quick", "--set", f"two_arch_models={models}", "--set",
            f"three_arch_models={models}", "--set", f"control_models={models}", "--set", "figures=0",
            "--set", "open_set_unseen=tiny-lsgan"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    for exp in EXPERIMENTS:
        s = json.loads((out / exp / "summary.json").read_text())
        assert s["config"]["steps"] == 3 and s["seconds"] >= 0
    three = json.loads((out / "three_arch" / "summary.json").read_text())
    assert set(three["accuracy_by_restarts"]) == {"1", "2", "3"} and 0 <= three["accuracy"] <= 1
    sel = json.loads((out / "distance_selection" / "summary.json").read_text())
    assert set(sel["accuracy"]) == {"pixel", "feature"} and sel["best"] in sel["accuracy"]
    assert set(sel["grid"]) == {"pixel/constant", "pixel/cosine", "feature/constant", "feature/cosine"}
    assert sel["best_schedule"] in ("constant", "cosine")
    assert sel["grid"][f"{sel['best']}/{sel['best_schedule']}"] == max(sel["grid"].values())
    report = (out / "README.md").read_text()
    assert "## Targets" in report and "Table I" in report and "Fig. 9" in report
    assert "chosen on validation" in report and "open_set: feature ℓ2" in report  # the default distance ran
    r = runner.invoke(app, ["--out", str(out), "--quick", "--set", "experiments=nope"])
    assert r.exit_code == 1 and "unknown experiments" in r.output
    # the adversarial experiment with pixel ℓ2 (the attacks then use the attributor's pixel distance)
    r = runner.invoke(app, ["--quick", "--only", "adversarial", "--set", f"three_arch_models={models}",
                            "--set", "figures=0", "--set", "distance=pixel", "--out", str(tmp_path / "pix")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "pix" / "adversarial" / "summary.json").read_text())["distance"] == "pixel"
    r = runner.invoke(app, ["--out", str(out), "--quick", "--set", "distance=cosine"])
    assert r.exit_code == 1 and "distance must be one of" in r.output
    r = runner.invoke(app, ["--out", str(out), "--quick", "--set", "lr_schedule=linear"])
    assert r.exit_code == 1 and "lr_schedule must be one of" in r.output
