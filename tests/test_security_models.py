"""Shipped-model integrity fails closed (issue 13 items 1, 4, 9) and the classify/flipad CLIs' robustness
(issue 12: escaped paths, fitted image shape, honest one-candidate output, ±inf in JSON, per-file errors).

Every test here first reproduces the original failure on a copy of the shipped models (never the originals).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from genattr.attribution import create_attributor
from genattr.attribution.config_schema import (
    SUPPORTED_FORMAT_VERSION,
    validate_saved_config,
    validate_saved_state,
)
from genattr.attribution.shipping import load_attributor_dir, load_shipped, ship_attributor
from genattr.cli.classify_cmds import classify_app
from genattr.cli.flipad_cmds import flipad_app
from genattr.errors import DataError, GenattrError, IntegrityError

ROOT = Path(__file__).resolve().parents[1]
YU = ROOT / "models" / "yu2019"
FLIPAD = ROOT / "models" / "flipad"
runner = CliRunner()
app = typer.Typer()
app.add_typer(classify_app, name="classify")
app.add_typer(flipad_app, name="flipad")


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def flat(r) -> str:
    return " ".join(r.output.split())


@pytest.fixture
def yu(tmp_path: Path) -> Path:
    dst = tmp_path / "yu2019"
    shutil.copytree(YU, dst)
    return dst


@pytest.fixture
def fl(tmp_path: Path) -> Path:
    dst = tmp_path / "flipad"
    shutil.copytree(FLIPAD, dst)
    return dst


@pytest.fixture
def grey_png(tmp_path: Path) -> Path:
    p = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)).save(p)
    return p


def _edit_json(path: Path, fn) -> None:
    d = json.loads(path.read_text())
    fn(d)
    path.write_text(json.dumps(d, indent=2))


# -- item 1: classify predict verifies the shipped manifest ------------------------------------------------------


def test_classify_predict_refuses_a_renamed_candidate(yu: Path, grey_png: Path) -> None:
    _edit_json(yu / "architectures" / "state.json", lambda d: d["json"]["candidates_"].__setitem__(1, "EVIL"))
    r = invoke("classify", "predict", "--model", yu / "architectures", grey_png, "--json")
    assert r.exit_code == 1, r.output
    assert "EVIL" not in r.stdout and "sha256 does not match" in flat(r)
    # --trust-unverified does not relax a model that IS listed in a manifest
    r = invoke("classify", "predict", "--model", yu / "architectures", grey_png, "--trust-unverified")
    assert r.exit_code == 1 and "sha256" in flat(r)


@pytest.mark.parametrize("value", ["NaN", "-Infinity"])
def test_tampered_thresholds_are_refused(yu: Path, value: str) -> None:
    # thresholds live in state.safetensors (sha256) and in the manifest (cross-checked): edit the manifest
    man = yu / "manifest.json"
    data = json.loads(man.read_text())
    first = json.dumps(data["models"]["architectures"]["thresholds"][0])
    assert first in man.read_text()
    man.write_text(man.read_text().replace(first, value, 1))
    with pytest.raises(IntegrityError, match="thresholds"):
        load_shipped("architectures", yu)


def test_tampered_weights_are_refused(yu: Path) -> None:
    w = yu / "seeds" / "state.safetensors"
    b = bytearray(w.read_bytes())
    b[-3] ^= 0x01
    w.write_bytes(bytes(b))
    with pytest.raises(IntegrityError):
        load_shipped("seeds", yu)


def test_shipped_models_verify_and_match_their_manifest() -> None:
    for name in ("architectures", "seeds"):
        att, verified = load_attributor_dir(YU / name)
        assert verified and att.candidates_ == json.loads((YU / "manifest.json").read_text())["models"][name][
            "candidates"]
    att, verified = load_attributor_dir(FLIPAD / "fmnist-dcgan-s0")
    assert verified and att.name == "flipad"


# -- item 4: the FLIPAD integrity check fails closed --------------------------------------------------------------


def _break_manifest(fl: Path, how: str) -> None:
    man = fl / "manifest.json"
    if how == "deleted":
        man.unlink()
    elif how == "directory":
        man.unlink()
        man.mkdir()
    elif how == "unreadable":
        man.write_bytes(b"\xff\xfe{not json")
    elif how == "not-an-object":
        man.write_text("[1, 2]")
    elif how == "renamed-path":
        (fl / "fmnist-dcgan-s0").rename(fl / "renamed")
        (fl / "fmnist-dcgan-s0").mkdir()  # an empty directory under the old name
        shutil.copytree(fl / "renamed", fl / "x", dirs_exist_ok=True)
    else:
        def edit(d):
            e = d["models"]["fmnist-dcgan-s0"]
            if how == "files-empty":
                e["files"] = {}
            elif how == "files-missing":
                del e["files"]
            elif how == "files-list":
                e["files"] = ["config.json"]
            elif how == "files-string":
                e["files"] = "config.json"
            elif how == "sha-not-hex":
                e["files"]["config.json"] = 12
            elif how == "path-escape":
                e["path"] = "../flipad/fmnist-dcgan-s0"
            elif how == "path-missing":
                e["path"] = "nowhere"
        _edit_json(man, edit)


@pytest.mark.parametrize("how", ["deleted", "directory", "unreadable", "not-an-object", "files-empty",
                                 "files-missing", "files-list", "files-string", "sha-not-hex", "path-escape",
                                 "path-missing"])
def test_flipad_score_fails_closed(fl: Path, grey_png: Path, how: str) -> None:
    _break_manifest(fl, how)
    r = invoke("flipad", "score", fl / "fmnist-dcgan-s0", grey_png, "--json")
    assert r.exit_code == 1, (how, r.output)
    assert "Traceback" not in r.output and r.stdout == "", (how, r.output)
    assert "error:" in r.output


def test_renamed_model_directory_is_not_listed(fl: Path, grey_png: Path) -> None:
    (fl / "fmnist-dcgan-s0").rename(fl / "renamed")
    r = invoke("flipad", "score", fl / "renamed", grey_png)
    assert r.exit_code == 1 and "does not list 'renamed'" in flat(r)
    with pytest.raises(IntegrityError):  # and the manifest's own path is gone
        load_shipped("fmnist-dcgan-s0", fl)


def test_unlisted_model_needs_trust_unverified_which_is_loud(fl: Path, tmp_path: Path, grey_png: Path) -> None:
    own = tmp_path / "mine" / "det"
    shutil.copytree(fl / "fmnist-dcgan-s0", own)
    r = invoke("flipad", "score", own, grey_png)
    assert r.exit_code == 1 and "--trust-unverified" in flat(r) and "no manifest.json" in flat(r)
    r = invoke("flipad", "score", own, grey_png, "--trust-unverified", "--json")
    assert r.exit_code == 0, r.output
    assert "NOT verified" in r.stderr and json.loads(r.stdout)["results"][0]["answer"] in ("fmnist-dcgan-s0",
                                                                                          "unknown")


# -- item 9: malformed config.json / state.json are one clean error, never an allocation --------------------------


def _own_copy(yu: Path, tmp_path: Path) -> Path:
    own = tmp_path / "own" / "net"
    shutil.copytree(yu / "seeds", own)
    return own


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.__setitem__("format_version", "2"), "format_version"),
    (lambda c: c.__setitem__("format_version", 99), "newer format"),
    (lambda c: c.pop("params"), "missing field 'params'"),
    (lambda c: c.pop("name"), "missing field 'name'"),
    (lambda c: c["params"].__setitem__("feature_dim", 1e9), "feature_dim"),
    (lambda c: c["params"].__setitem__("feature_dim", 10**9), "feature_dim"),
    (lambda c: c["params"].__setitem__("width", -1), "width"),
    (lambda c: c["params"].__setitem__("batch_norm", "yes"), "batch_norm"),
    (lambda c: c["params"].__setitem__("lr", "fast"), "lr"),
    (lambda c: c["params"].__setitem__("bogus", 1), "bogus"),
    (lambda c: c.__setitem__("params", [1]), "params"),
])
def test_malformed_config_is_one_data_error(yu: Path, tmp_path: Path, edit, match: str) -> None:
    own = _own_copy(yu, tmp_path)
    _edit_json(own / "config.json", edit)
    with pytest.raises(DataError, match=match):
        load_attributor_dir(own, trust_unverified=True)


@pytest.mark.parametrize("edit, match", [
    (lambda m: m["json"].__setitem__("image_shape_", [1, 100000, 100000]), "image_shape_"),
    (lambda m: m["json"].__setitem__("image_shape_", [1, 32]), "image_shape_"),
    (lambda m: m["json"].__setitem__("image_shape_", "big"), "image_shape_"),
    (lambda m: m["json"].__setitem__("candidates_", []), "candidates_"),
    (lambda m: m["json"].__setitem__("candidates_", ["a", "a", "b", "c", "d", "e"]), "distinct"),
    (lambda m: m["json"].__setitem__("candidates_", ["UNKNOWN", "b", "c", "d", "e", "f"]), "candidates_"),
    (lambda m: m["kinds"].__setitem__("net_", "pickle"), "unknown state kind"),
    (lambda m: m["kinds"].__setitem__("ghost_", "tensor"), "missing from state.safetensors"),
    (lambda m: m.pop("kinds"), "kinds"),
    (lambda m: m["json"].pop("candidates_"), "candidates_"),
])
def test_malformed_state_is_one_data_error(yu: Path, tmp_path: Path, edit, match: str) -> None:
    own = _own_copy(yu, tmp_path)
    _edit_json(own / "state.json", edit)
    with pytest.raises(DataError, match=match):
        load_attributor_dir(own, trust_unverified=True)


def test_flipad_rep_dim_bound(fl: Path) -> None:
    cfg = json.loads((fl / "fmnist-dcgan-s0" / "config.json").read_text())
    assert validate_saved_config(cfg, "flipad") is cfg
    for bad in (1e9, 10**9, 0.5, None, True):
        cfg["params"]["rep_dim"] = bad
        with pytest.raises(DataError, match="rep_dim"):
            validate_saved_config(cfg, "flipad")
    cfg["params"]["rep_dim"] = 32
    cfg["params"]["widths"] = [32, 10**7]
    with pytest.raises(DataError, match="widths"):
        validate_saved_config(cfg, "flipad")
    meta = json.loads((fl / "fmnist-dcgan-s0" / "state.json").read_text())
    assert validate_saved_state(meta) is meta
    meta["json"]["operator_config_"]["in_shape"] = [10**6, 10**6, 1]
    with pytest.raises(DataError, match="in_shape"):
        validate_saved_state(meta)


def test_schema_version_matches_the_writer() -> None:
    from genattr.attribution import persistence

    assert persistence.FORMAT_VERSION == SUPPORTED_FORMAT_VERSION


# -- issue 12: CLI robustness --------------------------------------------------------------------------------------


def test_rich_markup_in_a_path_is_printed_not_parsed(tmp_path: Path) -> None:
    bad = tmp_path / "a[/x]b" / "[bold]model"
    r = invoke("classify", "predict", "--model", bad, tmp_path / "[/x].png")
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and isinstance(r.exception, SystemExit)
    assert "a[/x]b" in flat(r) and "[bold]model" in flat(r)


@pytest.fixture
def rgb_one_candidate(tmp_path: Path) -> tuple[Path, torch.Tensor]:
    """A user's own one-candidate nearest-mean model, fitted on 3×16×16 images, shipped with a manifest."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(8, 3, 16, 16, generator=g) * 0.4 + 0.3) * 2 - 1
    att = create_attributor("nearest-mean").fit({"mine": x})
    att.calibrate({"mine": x}, target_fnr=0.25)
    ship_attributor(att, tmp_path / "models", "mine", {})
    return tmp_path / "models" / "mine", x


def _save_rgb(x: torch.Tensor, path: Path) -> Path:
    arr = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(np.ascontiguousarray(arr), mode="RGB").save(path)
    return path


def test_images_are_read_with_the_models_fitted_shape(rgb_one_candidate, tmp_path: Path) -> None:
    model, x = rgb_one_candidate
    img = _save_rgb(x.mean(0), tmp_path / "a.png")
    r = invoke("flipad", "score", model, img, "--json")  # was: read as 32×32 grey → shape error
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["results"][0]["answer"] == "mine"
    r = invoke("classify", "predict", "--model", model, img, "--json")
    assert r.exit_code == 0, r.output


def test_one_candidate_model_reports_no_softmax_confidence(rgb_one_candidate, tmp_path: Path) -> None:
    model, x = rgb_one_candidate
    imgs = [_save_rgb(x.mean(0), tmp_path / "own.png"), _save_rgb(torch.ones(3, 16, 16), tmp_path / "other.png")]
    r = invoke("classify", "predict", "--model", model, *imgs, "--json")
    assert r.exit_code == 0, r.output
    preds = json.loads(r.stdout)["results"]
    assert [p["answer"] for p in preds] == ["mine", "unknown"]
    tops = [p["evidence"][0]["details"]["top"][0] for p in preds]
    assert all("probability" not in t for t in tops)  # no softmax over one score (it would always be 1)
    # accepting the one candidate has no alternative to measure against: confidence 0, not a fake 1.000
    assert preds[0]["confidence"] == 0.0 and tops[0]["score"] >= tops[0]["threshold"]
    assert tops[1]["score"] < tops[1]["threshold"]
    r = invoke("classify", "predict", "--model", model, *imgs)
    assert r.exit_code == 0 and "1.000" not in r.stdout and "n/a" in r.stdout


def test_json_keeps_infinite_thresholds_distinguishable(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 1, 8, 8, generator=g) * 2 - 1
    att = create_attributor("nearest-mean").fit({"a": x[:3], "b": x[3:]})
    att.set_thresholds([float("-inf"), float("inf")])
    ship_attributor(att, tmp_path / "models", "ab", {})
    p = tmp_path / "i.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(p)
    r = invoke("classify", "predict", "--model", tmp_path / "models" / "ab", p, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)  # strict JSON (no Infinity literal) ...
    assert data["thresholds"] == ["-inf", "inf"]  # ... and the two thresholds stay distinguishable
    assert [float(t) for t in data["thresholds"]] == [float("-inf"), float("inf")]


def test_one_bad_file_does_not_abort_the_batch(rgb_one_candidate, tmp_path: Path) -> None:
    model, x = rgb_one_candidate
    good = _save_rgb(x.mean(0), tmp_path / "good.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    for cmd in (["classify", "predict", "--model", model], ["flipad", "score", model]):
        r = invoke(*cmd, bad, good, "--json")
        assert r.exit_code == 1, r.output  # non-zero at the end ...
        out = json.loads(r.stdout)
        rows = out["results"]
        assert "error" in rows[0] and rows[1]["answer"] == "mine"  # ... but the good file was attributed
        assert "skipped" in r.stderr


def test_all_clean_errors_are_genattr_errors(yu: Path) -> None:
    (yu / "seeds" / "config.json").write_text("{")
    with pytest.raises(GenattrError):
        load_shipped("seeds", yu)


def test_a_damaged_entry_is_never_read_as_not_listed(fl: Path, grey_png: Path) -> None:
    # Had the damaged entry been skipped, --trust-unverified would load the tampered model as "the user's own".
    _edit_json(fl / "manifest.json", lambda d: d["models"]["fmnist-dcgan-s0"].__setitem__("path", 7))
    r = invoke("flipad", "score", fl / "fmnist-dcgan-s0", grey_png, "--trust-unverified")
    assert r.exit_code == 1 and "malformed" in flat(r)
