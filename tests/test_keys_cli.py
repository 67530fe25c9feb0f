"""`genattr keys issue | finetune | verify` through CliRunner on a tiny root model and a folder of images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from genattr.cli.keys_cmds import keys_app
from genattr.generators import Generator, create_generator
from genattr.watermark.keys import load_keys

runner = CliRunner()


def _png(path, arr: np.ndarray) -> None:
    Image.fromarray(arr).save(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    torch.manual_seed(0)
    create_generator("dcgan", latent_dim=8, ngf=4).save_pretrained(root / "g0")
    real = root / "real"
    real.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):  # Fashion-MNIST-like: 28×28 content in a black 32×32 frame
        a = np.zeros((32, 32), np.uint8)
        a[2:30, 2:30] = rng.integers(0, 256, (28, 28), dtype=np.uint8)
        _png(real / f"r{i:02d}.png", a)
    res = runner.invoke(keys_app, ["issue", "--n", "2", "--out", str(root / "set"), "--root", str(root / "g0"),
                                   "--real", str(real), "--n-root", "64", "--n-heldout", "64", "--users", "alice,bob",
                                   "--json"])
    assert res.exit_code == 0, res.output
    return root


def test_issue_writes_a_compliant_key_set(setup) -> None:
    ks = load_keys(setup / "set")
    assert ks.users == ("alice", "bob") and ks.keys.shape == (2, 1, 32, 32)
    assert ks.meta["angle_deg"] == 90.0
    comp = ks.meta["compliance"]
    assert comp["alice"]["max_real"] < 0 and comp["bob"]["max_root"] < 0
    assert abs(float(ks.keys[0].flatten() @ ks.keys[1].flatten())) < 1e-5
    res = runner.invoke(keys_app, ["issue", "--n", "1", "--out", str(setup / "set"), "--root", str(setup / "g0"),
                                   "--real", str(setup / "real")])
    assert res.exit_code == 1 and "already exists" in res.output


def test_finetune_and_verify(setup) -> None:
    res = runner.invoke(keys_app, ["finetune", "--key", str(setup / "set"), "--user", "alice", "--out",
                                   str(setup / "alice"), "--root", str(setup / "g0"), "--steps", "60"])
    assert res.exit_code == 0, res.output
    g = Generator.from_pretrained(setup / "alice")
    x = g.sample(4, torch.Generator().manual_seed(0))
    paths = []
    for i, img in enumerate(((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)[:, 0].numpy()):
        _png(setup / f"k{i}.png", img)
        paths.append(str(setup / f"k{i}.png"))
    real = [str(setup / "real" / "r39.png")]
    res = runner.invoke(keys_app, ["verify", "--keys", str(setup / "set"), *paths, *real, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)  # the shape of `genattr attribute`, with the keys' evidence only
    assert out["schema"] == "genattr.verdict/1"
    rows = [(r, r["evidence"][0]["details"]) for r in out["results"]]
    assert rows[-1][1]["n_fired"] == 0 and rows[-1][1]["max_margin"] < 0 and rows[-1][0]["answer"] == "unknown"
    ks = load_keys(setup / "set")
    q = (((x + 1) * 127.5).round() / 127.5 - 1).flatten(1)  # what the 8-bit files hold
    s = q @ ks.matrix.T
    for (r, d), si in zip(rows[:-1], s.tolist(), strict=True):  # the verdict is sign(φᵀx) per key
        fired = [f["user"] for f in d["fired"]]
        assert fired == [u for u, v in zip(ks.users, si, strict=True) if v >= 0]
        assert d["max_margin"] == pytest.approx(max(si), abs=1e-4)
        assert r["answer"] == (fired[0] if len(fired) == 1 else "ambiguous" if fired else "unknown")
    res = runner.invoke(keys_app, ["verify", "--keys", str(setup / "set"), *paths[:1]])
    assert res.exit_code == 0 and "kim2021 keys: 2 users" in res.output


def test_robust_finetune_defaults_to_the_validated_c(setup, tmp_path) -> None:
    from genattr.evaluation.kim2021.config import Kim2021Config

    def trained_c(name: str, *extra: str) -> float:
        res = runner.invoke(keys_app, ["finetune", "--keys", str(setup / "set"), "--user", "alice", "--out",
                                       str(tmp_path / name), "--root", str(setup / "g0"), "--steps", "2", *extra])
        assert res.exit_code == 0, res.output
        meta = json.loads((tmp_path / name / "config.json").read_text())["extra"]["kim2021"]
        return meta["training"]["config"]["C"]

    assert trained_c("plain") == 10.0
    assert trained_c("blur", "--robust", "blur") == Kim2021Config().robust_c("blur") != 10.0
    assert trained_c("noise", "--robust", "noise") == 10.0
    assert trained_c("own", "--robust", "blur", "--C", "5") == 5.0


def test_bad_inputs_are_one_line_errors(setup, tmp_path) -> None:
    big = tmp_path / "big.png"
    _png(big, np.zeros((64, 64), np.uint8))
    res = runner.invoke(keys_app, ["verify", "--keys", str(setup / "set"), str(big)])
    assert res.exit_code == 1 and "32×32" in res.output and "Traceback" not in res.output
    rgb = tmp_path / "rgb.png"
    _png(rgb, np.zeros((32, 32, 3), np.uint8))
    res = runner.invoke(keys_app, ["verify", "--keys", str(setup / "set"), str(rgb)])
    assert res.exit_code == 1 and "channel" in res.output
    res = runner.invoke(keys_app, ["verify", "--keys", str(tmp_path), str(big)])
    assert res.exit_code == 1 and "not a key set" in res.output
    res = runner.invoke(keys_app, ["finetune", "--key", str(setup / "set"), "--user", "carol", "--out",
                                   str(tmp_path / "c"), "--root", str(setup / "g0"), "--steps", "1"])
    assert res.exit_code == 1 and "no key for user" in res.output and not (tmp_path / "c").exists()
    other = tmp_path / "other"
    create_generator("dcgan", latent_dim=8, ngf=8).save_pretrained(other)
    res = runner.invoke(keys_app, ["finetune", "--key", str(setup / "set"), "--user", "bob", "--out",
                                   str(tmp_path / "b"), "--root", str(setup / "g0"), "--start", str(other),
                                   "--steps", "1"])
    assert res.exit_code == 1 and "architecture differs" in res.output and not (tmp_path / "b").exists()
    res = runner.invoke(keys_app, ["finetune", "--key", str(setup / "set"), "--user", "bob", "--out",
                                   str(tmp_path / "b"), "--root", str(setup / "g0"), "--robust", "rotate"])
    assert res.exit_code == 1 and "robust" in res.output


def test_reproduce_config_and_report(tmp_path) -> None:
    from genattr.errors import ConfigError
    from genattr.evaluation.kim2021 import Kim2021Config, quick_config, reproduce_kim2021, write_report

    cfg = Kim2021Config().override({"steps": "50", "c_values": "10,100", "cache": ""})
    assert cfg.steps == 50 and cfg.c_values == (10.0, 100.0) and cfg.cache == ""
    with pytest.raises(ConfigError, match="unknown kim2021 setting"):
        Kim2021Config().override({"nope": "1"})
    robust = Kim2021Config().override({"robust_C": "blur:0.5, jpeg:2"})
    assert [robust.robust_c(p) for p in ("blur", "jpeg", "crop")] == [0.5, 2.0, 10.0]
    for bad in ("blur=1", "rotate:1", "blur:-1", "blur:x"):
        with pytest.raises(ConfigError, match="robust_C"):
            Kim2021Config().override({"robust_C": bad})
    with pytest.raises(ConfigError, match="unknown kim2021 experiment"):
        reproduce_kim2021(quick_config(), tmp_path, only=["table9"])
    sub = tmp_path / "table1"
    sub.mkdir()
    row = {"D": {"mean": 1.0, "std": 0.0, "n": 2}, "A": 0.99, "dx": {"mean": 4.8, "std": 0.1, "n": 2},
           "fd0_real": 3.0, "fd_real": {"mean": 3.5, "std": 0.2, "n": 2}, "fd_root": {"mean": 1.0, "std": 0.1, "n": 2},
           "cost": {"seconds_per_user": 44.0}}
    (sub / "summary.json").write_text(json.dumps({"result": {"orthogonal": row}}))
    text = write_report(tmp_path, "genattr reproduce kim2021").read_text()
    assert "| orthogonal | 0.99 | 1.000 (0.000) | 0.98 | 0.990 |" in text and "Table 2" not in text
