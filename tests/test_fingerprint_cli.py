"""`genattr fingerprint train | issue | decode` through Typer's CliRunner on a local app."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from genattr.cli.fingerprint_cmds import fingerprint_app, reproduce_yu2022_cmd
from genattr.data import save_png
from genattr.generators import Generator
from genattr.watermark.fingerprint_index import FingerprintIndex
from tests.conftest import needs_fmnist
from tests.test_watermark_fingerprint import tiny_decoding_model

app = typer.Typer()
app.add_typer(fingerprint_app, name="fingerprint")
app.command("reproduce-yu2022")(reproduce_yu2022_cmd)
runner = CliRunner()


@pytest.fixture
def model_dir(tmp_path):
    return tiny_decoding_model().save(tmp_path / "model")


def _run(*args: str):
    return runner.invoke(app, ["fingerprint", *args])


def test_issue_writes_an_instance_and_registers_it(tmp_path, model_dir) -> None:
    idx = tmp_path / "index"
    r = _run("issue", "--user", "alice", "--out", str(tmp_path / "alice"), "--index", str(idx),
             "--model", str(model_dir), "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["user"] == "alice" and info["registered"] == 1
    inst = Generator.from_pretrained(tmp_path / "alice")
    assert inst.sample(2, torch.Generator().manual_seed(0)).shape == (2, 1, 32, 32)
    reg = FingerprintIndex.load(idx)
    assert "alice" in reg and len(reg) == 1
    # duplicate user name: one clear line, nothing written, nobody lost
    r = _run("issue", "--user", "alice", "--out", str(tmp_path / "alice2"), "--index", str(idx),
             "--model", str(model_dir))
    assert r.exit_code == 1 and "already registered" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "alice2").exists() and len(FingerprintIndex.load(idx)) == 1
    # an existing, non-empty --out is refused
    r = _run("issue", "--user", "bob", "--out", str(tmp_path / "alice"), "--index", str(idx),
             "--model", str(model_dir))
    assert r.exit_code == 1 and "not empty" in r.output


def test_decode_names_the_user(tmp_path, model_dir, monkeypatch) -> None:
    import secrets

    seeds = iter([16, 15])  # codes come from the OS CSPRNG; fixed here so the test is deterministic
    monkeypatch.setattr(secrets, "randbits", lambda k: next(seeds))
    idx = tmp_path / "index"
    for user in ("alice", "bob"):
        assert _run("issue", "--user", user, "--out", str(tmp_path / user), "--index", str(idx),
                    "--model", str(model_dir)).exit_code == 0
    x = Generator.from_pretrained(tmp_path / "alice").sample(6, torch.Generator().manual_seed(1))
    paths = [str(save_png(x[i], tmp_path / f"a{i}.png")) for i in range(6)]
    save_png(torch.zeros(1, 1, 28, 28), tmp_path / "small.png")
    r = _run("decode", *paths, "--index", str(idx), "--model", str(model_dir), "--rule", "fixed", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["schema"] == "genattr.verdict/1"  # the shape of `genattr attribute`, fingerprint evidence only
    users = [img["answer"] for img in out["results"]]
    assert users.count("alice") >= 3 and "bob" not in users and set(users) <= {"alice", "unknown"}
    ev = [img["evidence"][0] for img in out["results"]]
    assert all(e["method"] == "yu2022" and len(e["details"]["bits"]) == 8 and 0 <= e["p_value"] <= 1 for e in ev)
    r = _run("decode", paths[0], str(tmp_path / "small.png"), "--index", str(idx), "--model", str(model_dir))
    assert r.exit_code == 1 and "32×32" in r.output
    r = _run("decode", paths[0], "--index", str(tmp_path / "missing"), "--model", str(model_dir))
    assert r.exit_code == 1 and "registry" in r.output and "Traceback" not in r.output


@needs_fmnist
def test_train_tiny(tmp_path) -> None:
    r = _run("train", "--out", str(tmp_path / "run"), "--bits", "8", "--epochs", "1", "--warm-start", "none",
             "--batch-size", "8", "--steps-per-epoch", "1", "--ngf", "4", "--ndf", "4", "--limit", "16",
             "--no-fd", "--no-progress", "--threads", "1", "--decoder-warmup", "2")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert "bit accuracy" in r.output


def test_reproduce_writes_results(tmp_path) -> None:
    tiny_decoding_model().save(tmp_path / "models" / "fp64")
    r = runner.invoke(app, ["reproduce-yu2022", "--out", str(tmp_path / "res"), "--models", str(tmp_path / "models"),
                            "--only", "accuracy", "--only", "distinct", "--only", "capacity", "--quick",
                            "--threads", "1", "--set", "n_codes=300"])
    assert r.exit_code == 0, r.output
    acc = json.loads((tmp_path / "res" / "accuracy.json").read_text())
    assert acc["config"]["n_codes"] == 300
    assert acc["n"] == 300 and 0.5 < acc["bit_accuracy"] <= 1 and "fixed" in acc["word_accuracy"]
    assert json.loads((tmp_path / "res" / "distinct.json").read_text())["distinct_decoded"] > 1
    assert "## accuracy" in (tmp_path / "res" / "README.md").read_text()
    r = runner.invoke(app, ["reproduce-yu2022", "--out", str(tmp_path / "res2"), "--models", str(tmp_path / "none")])
    assert r.exit_code == 1 and "no fingerprint model" in r.output
    r = runner.invoke(app, ["reproduce-yu2022", "--out", str(tmp_path / "res3"), "--set", "table2_stpes=5"])
    assert r.exit_code == 1 and "unknown yu2022 setting" in r.output


@needs_fmnist
def test_fidelity_compares_with_the_same_recipe_baseline(tmp_path) -> None:
    from genattr.watermark.fingerprint import FingerprintModel

    tiny_decoding_model().save(tmp_path / "models" / "fp64")
    same = FingerprintModel(code_bits=8, latent_dim=2, ngf=8, ndf=8, embed_dim=16, embed_layers=1, demodulate=False)
    for n, p in same.named_parameters():
        if ".affine." in n:
            torch.nn.init.zeros_(p)
    same.save(tmp_path / "models" / "baseline")
    r = runner.invoke(app, ["reproduce-yu2022", "--out", str(tmp_path / "res"), "--models", str(tmp_path / "models"),
                            "--only", "fidelity", "--quick", "--threads", "1", "--set", "fd_n=64",
                            "--set", "fd_instances=2"])
    assert r.exit_code == 0, r.output
    fid = json.loads((tmp_path / "res" / "fidelity.json").read_text())
    assert fid["n"] == 64 and fid["same_recipe"] == "baseline" and fid["fd_same_recipe"] > 0
    assert fid["ratio_same_recipe"] == pytest.approx(fid["fd_instances"] / fid["fd_same_recipe"])
    import shutil

    shutil.rmtree(tmp_path / "models" / "baseline")
    r = runner.invoke(app, ["reproduce-yu2022", "--out", str(tmp_path / "res2"), "--models", str(tmp_path / "models"),
                            "--only", "fidelity", "--quick", "--threads", "1", "--set", "fd_n=64"])
    assert r.exit_code == 0, r.output
    assert "ratio_same_recipe" not in json.loads((tmp_path / "res2" / "fidelity.json").read_text())


def test_ship_verifies_and_serves_as_default(tmp_path, model_dir, monkeypatch) -> None:
    dest = tmp_path / "shipped"
    monkeypatch.setenv("GENATTR_YU2022_DIR", str(dest))
    r = _run("ship", "--run", str(model_dir), "--variant", "fp64", "--examples", "5")
    assert r.exit_code == 0, r.output
    man = json.loads((dest / "manifest.json").read_text())
    assert man["variants"]["fp64"]["bits"] == 8 and man["index"]["users"] == 5 and man["variants"]["fp64"]["decoder"]
    tiny_decoding_model().save(tmp_path / "same", extra={"train_config": {"fingerprint": False}})
    assert _run("ship", "--run", str(tmp_path / "same"), "--variant", "baseline").exit_code == 0
    assert json.loads((dest / "manifest.json").read_text())["variants"]["baseline"]["decoder"] is False
    assert _run("ship", "--run", str(model_dir)).exit_code == 1  # exists: needs --force
    r = _run("issue", "--user", "carol", "--out", str(tmp_path / "carol"))  # shipped model + shipped index
    assert r.exit_code == 0, r.output
    assert len(FingerprintIndex.load(dest / "index")) == 6
    blob = bytearray((dest / "fp64" / "model.safetensors").read_bytes())
    blob[-1] ^= 1
    (dest / "fp64" / "model.safetensors").write_bytes(bytes(blob))
    r = _run("issue", "--user", "dave", "--out", str(tmp_path / "dave"))
    assert r.exit_code == 1 and "sha256" in r.output


def test_rebuild_command_replays_the_recorded_training(tmp_path, monkeypatch) -> None:
    import shlex

    from genattr.watermark.fingerprint_shipping import rebuild_command

    monkeypatch.chdir(tmp_path)
    tc = {"code_bits": 64, "epochs": 1, "init_from": str(tmp_path / "runs" / "yu2022-64" / "best.safetensors"),
          "perturb": {"name": "blur", "kernel_size": {"choice": [1, 3]}}}
    train, ship = rebuild_command(tc, "fp64-immune-blur", 64).split(" && ")
    args = shlex.split(train)
    assert args[:3] == ["genattr", "fingerprint", "train"]
    assert args[args.index("--init-from") + 1] == "runs/yu2022-64/best.safetensors"  # relative to the repository
    assert json.loads(args[args.index("--perturb") + 1]) == tc["perturb"]
    assert args[args.index("--out") + 1] == "runs/yu2022-64-immune-blur" and "--variant fp64-immune-blur" in ship
    base = shlex.split(rebuild_command({"code_bits": 64, "epochs": 26, "warm_start": "fmnist-dcgan-s0"}, "fp64", 64))
    assert base[base.index("--warm-start") + 1] == "fmnist-dcgan-s0" and "--init-from" not in base
    ema = shlex.split(rebuild_command({"code_bits": 64, "epochs": 8, "init_from": "r/best.safetensors",
                                       "ema_decay": 0.999, "decoder_warmup_steps": 0}, "fp64-ema", 64))
    assert ema[ema.index("--ema") + 1] == "0.999" and ema[ema.index("--decoder-warmup") + 1] == "0"
    lam = shlex.split(rebuild_command({"code_bits": 64, "lambdas": [1, 1, 2, 8]}, "fp64-c8", 64))
    assert lam[lam.index("--lambdas") + 1] == "1,1,2,8" and "--lambdas" not in ema
    same = shlex.split(rebuild_command({"code_bits": 64, "epochs": 26, "fingerprint": False,
                                        "decoder_warmup_steps": 2000}, "baseline", 64))
    assert "--no-fingerprint" in same and "--decoder-warmup" not in same and "--ema" not in same
    assert "--no-fingerprint" not in base
