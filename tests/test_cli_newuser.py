"""What a new user hit (issue 17), each fixed and pinned here: tiny, offline CliRunner tests on a tiny zoo."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from genattr.cli.main import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: object, code: int = 0):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == code, (r.output, r.exception)
    return r


@pytest.fixture(scope="module")
def classifier(module_tiny_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("net") / "net"
    invoke("classify", "train", "--out", out, "--source", "tiny-dcgan", "--source", "tiny-lsgan", "--real", "digits",
           "--n-train", "24", "--n-val", "8", "--epochs", "1", "--width", "2", "--threads", "1", "--no-probe")
    return out


@pytest.fixture
def log_setup(module_tiny_zoo: Path, tmp_path: Path) -> dict:
    k = tmp_path / "keys"
    invoke("log", "keygen", "example.com/newuser", "--out", k / "log")
    invoke("log", "keygen", "owner.example/u", "--out", k / "owner", "--kind", "owner")
    db = tmp_path / "gen.db"
    invoke("log", "init", "--db", db, "--origin", "example.com/newuser", "--log-key", k / "log.vkey",
           "--owner", k / "owner.vkey")
    return {"k": k, "db": db, "tmp": tmp_path}


# -- 1. httpx is a runtime dependency: `log checkpoint --policy` reaches the witness client -----------------------


def test_httpx_is_a_runtime_dependency_and_checkpoint_policy_runs(log_setup: dict) -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(re.match(r"httpx\b", d) for d in deps)  # runtime, not only in the dev extra
    k, db, tmp = log_setup["k"], log_setup["db"], log_setup["tmp"]
    img = tmp / "a.png"
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(img)
    invoke("log", "append", "--db", db, img, "--owner-key", k / "owner.skey", "--model-id", "ab" * 32)
    from genattr.ledger import ALG_COSIGNATURE_V1, generate_signer

    w = generate_signer("w.example", ALG_COSIGNATURE_V1)
    log_vkey = (k / "log.vkey").read_text().strip()
    (tmp / "policy.txt").write_text(f"log {log_vkey}\nwitness w {w.vkey} http://127.0.0.1:9\nquorum w\n")
    r = invoke("log", "checkpoint", "--db", db, "--key", k / "log.skey", "--policy", tmp / "policy.txt", code=1)
    # The witness is unreachable (loopback, closed port): a clear one-line error, not a ModuleNotFoundError.
    assert "ModuleNotFoundError" not in r.output and "Traceback" not in r.output and r.output.startswith("error:")


# -- 2. classify predict refuses out-of-distribution size and colour, and says what it cannot tell ----------------


def _png(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr).save(path)
    return path


def test_classify_predict_refuses_other_sizes_and_colour(classifier: Path, tmp_path: Path) -> None:
    from genattr import zoo
    from genattr.data import save_png

    x = zoo.load("tiny-dcgan").sample(1, torch.Generator().manual_seed(0))
    ok = save_png(x, tmp_path / "ok.png")  # 32×32 grey: what the net was trained on
    big = save_png(x, tmp_path / "big.png", scale=2)  # 64×64: the old `zoo sample -n 1` default
    grey = np.asarray(Image.open(ok))
    colour = _png(tmp_path / "colour.png", np.stack([grey, grey // 2, 255 - grey], -1))
    grey_rgb = _png(tmp_path / "grey_rgb.png", np.stack([grey] * 3, -1))  # RGB file, grey content: fine
    r = runner.invoke(app, ["classify", "predict", "--model", str(classifier), "--trust-unverified", str(ok),
                            str(big), str(colour), str(grey_rgb)])
    assert r.exit_code == 1, r.output
    flat = " ".join(r.stderr.split())
    assert "big.png: image is 64×64 but the model reads 32×32 images" in flat and "--out-dir" in flat
    assert "colour.png: colour image but the model reads grey images" in flat
    assert "ok.png" not in flat and "grey_rgb.png" not in flat
    out = " ".join(r.stdout.split())
    assert "cannot recognise a generator it was not trained on" in out  # the open-set caveat under the table
    r = runner.invoke(app, ["classify", "predict", "--model", str(classifier), "--trust-unverified", str(big),
                            str(colour), "--fit-images"])
    assert r.exit_code == 0, r.output
    assert " ".join(r.stderr.split()).count("out of the model's distribution") == 2  # one loud warning per image


def test_fmnist_28px_images_are_the_padding_convention_not_refused(tmp_path: Path) -> None:
    from genattr.cli.common import read_model_images

    small = _png(tmp_path / "s.png", np.zeros((28, 28), np.uint8))
    odd = _png(tmp_path / "o.png", np.zeros((20, 20), np.uint8))
    x, idx, bad = read_model_images([small, odd], "L", 32)
    assert idx == [0] and x.shape == (1, 1, 32, 32) and "20×20" in bad[1]


# -- 3. zoo sample writes per-image PNGs with their seeds, at the models' size ------------------------------------


def test_zoo_sample_per_image_pngs_with_seeds(module_tiny_zoo: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    r = invoke("zoo", "sample", "tiny-dcgan", "-n", "3", "--seed", "5", "--out-dir", out, "--json")
    data = json.loads(r.stdout)
    assert data["seeds"] == [5, 6, 7] and data["grid"] is None
    index = json.loads((out / "samples.json").read_text())
    assert [(im["file"], im["seed"]) for im in index["images"]] == [(f"tiny-dcgan-seed{s}.png", s) for s in (5, 6, 7)]
    assert (out / "samples.csv").read_text().splitlines()[1] == "tiny-dcgan-seed5.png,5"
    for im in index["images"]:
        with Image.open(out / im["file"]) as png:
            assert png.size == (32, 32) and png.mode == "L"
    # one seed per image: any image regenerates alone from its seed
    invoke("zoo", "sample", "tiny-dcgan", "-n", "1", "--seed", "6", "--out-dir", tmp_path / "one")
    assert (tmp_path / "one" / "tiny-dcgan-seed6.png").read_bytes() == (out / "tiny-dcgan-seed6.png").read_bytes()
    # a single image without --out-dir is written at the model's size; a grid is an upscaled preview
    invoke("zoo", "sample", "tiny-dcgan", "-n", "1", "-o", tmp_path / "single.png")
    assert Image.open(tmp_path / "single.png").size == (32, 32)
    r = invoke("zoo", "sample", "tiny-dcgan", "-n", "4", "-o", tmp_path / "grid.png")
    assert "preview" in " ".join(r.stdout.split()) and Image.open(tmp_path / "grid.png").size[0] == 2 * (8 * 34 + 2)
    r = invoke("zoo", "sample", "tiny-dcgan", "-n", "2", "--output", tmp_path / "old.png")  # old spelling works
    assert (tmp_path / "old.png").is_file() and "deprecated" in r.stderr


# -- 4. logged generation from the CLI and from the documented Python example -------------------------------------


def test_zoo_sample_log_one_seed_per_image_then_audit(log_setup: dict) -> None:
    from genattr import zoo
    from genattr.attribution.deniability import check_entry
    from genattr.ledger import Receipt

    k, db, tmp = log_setup["k"], log_setup["db"], log_setup["tmp"]
    out = tmp / "out"
    r = invoke("zoo", "sample", "tiny-dcgan", "-n", "3", "--out-dir", out, "--log", db, "--owner-key",
               k / "owner.skey", "--json")
    data = json.loads(r.stdout)
    assert data["log"]["indices"] == [0, 1, 2] and len(set(data["seeds"])) == 3  # fresh random seed per image
    files = [Path(f) for f in data["files"]]
    assert [f.name for f in files] == [f"tiny-dcgan-log{i}.png" for i in range(3)]  # no seed in public names
    assert (out / "receipts.jsonl").stat().st_mode & 0o077 == 0 and (out / "samples.json").stat().st_mode & 0o077 == 0
    receipts = [Receipt.from_dict(json.loads(line)) for line in (out / "receipts.jsonl").read_text().splitlines()]
    g = zoo.load("tiny-dcgan")
    weights = zoo.verify("tiny-dcgan") / "model.safetensors"
    for rec, f, seed in zip(receipts, files, data["seeds"], strict=True):
        assert rec.seed == seed and rec.sample == 0 and rec.opens()
        check = check_entry(rec, g, image=f, weights=weights)  # regenerates G(seed) from the receipt alone
        assert check.entry_verified and check.strict_attribution
    invoke("log", "checkpoint", "--db", db, "--key", k / "log.skey")
    r = invoke("log", "audit", files[1], "--db", db)
    assert r.output.startswith("FOUND: logged at index 1")
    r = invoke("zoo", "sample", "tiny-dcgan", "-n", "1", "--log", db, "--owner-key", k / "owner.skey", code=1)
    assert "--log needs --out-dir" in r.output


def test_documented_logged_generation_example_runs(log_setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "docs" / "ledger.md").read_text()
    start = text.index("Logged generation with a zoo model")
    code = re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)  # type: ignore[union-attr]
    monkeypatch.chdir(log_setup["tmp"])  # the walkthrough's keys/ and gen.db
    exec(compile(code.replace("fmnist-dcgan-s0", "tiny-dcgan"), "docs/ledger.md", "exec"), {})
    pngs = sorted(Path("out").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i}.png" for i in range(8)]
    from genattr.ledger import TransparencyLog, pixel_hash_file

    with TransparencyLog.open("gen.db") as log:
        assert log.find(pixel_hash_file(pngs[3])) == [3]  # the saved file is exactly what was logged


def test_hook_explains_float_tensors_and_checks_seed_counts() -> None:
    from genattr.ledger import FormatError, LoggedGenerator, generate_signer

    class Memory:
        def append(self, entries):
            return list(range(len(entries)))

    owner = generate_signer("owner.example/x")
    floats = LoggedGenerator(lambda seed: torch.zeros(2, 1, 4, 4), Memory(), owner=owner, model_id=b"\0" * 32)
    with pytest.raises(FormatError, match="image_sampler"):
        floats()
    per = LoggedGenerator(lambda seeds: [np.zeros((4, 4), np.uint8)], Memory(), owner=owner, model_id=b"\0" * 32,
                          per_sample_seeds=True)
    with pytest.raises(FormatError, match="one sample per seed"):
        per(seeds=[1, 2])
    with pytest.raises(FormatError, match="one seed per image"):
        per()


# -- 5. log append commits one seed per image ---------------------------------------------------------------------


def test_log_append_one_seed_per_image(log_setup: dict) -> None:
    from genattr.ledger import Receipt

    k, db, tmp = log_setup["k"], log_setup["db"], log_setup["tmp"]
    imgs = [_png(tmp / f"i{i}.png", np.full((8, 8), i * 40, np.uint8)) for i in range(2)]
    base = ["log", "append", "--db", db, *imgs, "--owner-key", k / "owner.skey", "--model-id", "ab" * 32]
    r = invoke(*base, "--seed", "11", code=1)
    assert "one --seed per image: got 1 seed(s) for 2 images" in " ".join(r.output.split())
    invoke(*base, "--seed", "11", "--seed", "12", "--receipts", tmp / "r.jsonl")
    recs = [Receipt.from_dict(json.loads(line)) for line in (tmp / "r.jsonl").read_text().splitlines()]
    assert [(r.seed, r.sample) for r in recs] == [(11, 0), (12, 0)] and all(r.opens() for r in recs)
    (tmp / "samples.json").write_text(json.dumps({"images": [{"file": "i1.png", "seed": 21},
                                                             {"file": "i0.png", "seed": 20}]}))
    invoke(*base, "--seeds-from", tmp / "samples.json", "--receipts", tmp / "r2.jsonl")
    recs = [Receipt.from_dict(json.loads(line)) for line in (tmp / "r2.jsonl").read_text().splitlines()]
    assert [r.seed for r in recs] == [20, 21]
    invoke(*base, "--batch-seed", "7", "--receipts", tmp / "r3.jsonl")  # ONE batch from one seed: positions
    recs = [Receipt.from_dict(json.loads(line)) for line in (tmp / "r3.jsonl").read_text().splitlines()]
    assert [(r.seed, r.sample) for r in recs] == [(7, 0), (7, 1)] and all(r.opens() for r in recs)
    r = invoke(*base, "--json")  # no seed given: a fresh random seed per image
    assert [e["index"] for e in json.loads(r.stdout)["entries"]] == [6, 7]


# -- 6. log audit: FOUND and NOT FOUND exit differently -------------------------------------------------------------


def test_log_audit_exit_codes(log_setup: dict) -> None:
    k, db, tmp = log_setup["k"], log_setup["db"], log_setup["tmp"]
    img = _png(tmp / "in.png", np.full((8, 8), 3, np.uint8))
    other = _png(tmp / "out.png", np.full((8, 8), 4, np.uint8))
    invoke("log", "append", "--db", db, img, "--owner-key", k / "owner.skey", "--model-id", "ab" * 32)
    invoke("log", "checkpoint", "--db", db, "--key", k / "log.skey")
    assert invoke("log", "audit", img, "--db", db).output.startswith("FOUND")
    assert invoke("log", "audit", other, "--db", db, code=3).output.startswith("NOT FOUND")
    assert json.loads(invoke("log", "audit", other, "--db", db, "--json", code=3).stdout)["found"] is False
    invoke("log", "audit", tmp / "missing.png", "--db", db, code=1)  # an error is neither


# -- 7. one CLI style ----------------------------------------------------------------------------------------------

OURS = ("zoo", "demo", "classify", "flipad", "keys", "fingerprint", "reconstruct", "reproduce", "log", "witness")


def _leaf_commands() -> list[tuple[str, object]]:
    import typer.main

    root = typer.main.get_command(app)
    out = []

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            out.append((" ".join(path), cmd))

    for name, cmd in root.commands.items():
        if name in OURS:
            walk(cmd, [name])
    return out


def test_every_command_has_json_and_out_has_o() -> None:
    leaves = _leaf_commands()
    assert len(leaves) > 25
    for path, cmd in leaves:
        opts = {o for p in cmd.params for o in p.opts}
        assert "--json" in opts, f"`genattr {path}` has no --json"
        if "--out" in opts:
            assert "-o" in opts, f"`genattr {path}` has --out but not -o"
        models = [p for p in cmd.params if "--model" in p.opts and not p.hidden]
        for p in models:  # --model is always a saved attribution model directory, never a zoo generator name
            assert "dir" in (p.help or "").lower() or "attributor" in (p.help or "").lower(), path


def test_renamed_options_still_work(module_tiny_zoo: Path, tmp_path: Path, log_setup: dict) -> None:
    k, db = log_setup["k"], log_setup["db"]
    r = invoke("log", "fsck", db)  # old positional database
    assert r.output.startswith("OK: 0 entries")
    assert json.loads(invoke("log", "fsck", "--db", db, "--json").stdout)["entries"] == 0
    invoke("log", "fsck", db, "--db", db, code=1)
    assert "--generator" in invoke("flipad", "fit", "--help").output
    assert "--model " not in " ".join(invoke("flipad", "fit", "--help").output.split())  # hidden old spelling
    del k


# -- 8. reproduce writes to a run directory unless asked -------------------------------------------------------------


def test_reproduce_writes_a_run_directory_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genattr.cli.common import reproduce_command, reproduce_dirs
    from genattr.errors import ConfigError

    out, models = reproduce_dirs("yu2019", out=None, models=None, write_docs=False, ship=False, paper_size=False)
    assert re.fullmatch(r"runs/reproduce/yu2019-\d{8}-\d{6}", out.as_posix()) and models is None
    with pytest.raises(ConfigError, match="--paper-size"):
        reproduce_dirs("yu2019", out=None, models=None, write_docs=True, ship=False, paper_size=False)
    out, models = reproduce_dirs("yu2019", out=None, models=None, write_docs=True, ship=True, paper_size=True)
    assert out == Path("docs/results/yu2019") and models == Path("models/yu2019")
    assert reproduce_command("yu2019", out=None, models=None, write_docs=True, ship=True, paper_size=True,
                             only=["seeds"], set_=["epochs=3"]) == \
        "genattr reproduce yu2019 --paper-size --write-docs --ship --only seeds --set epochs=3"
    monkeypatch.chdir(tmp_path)
    r = invoke("reproduce", "kim2021", "--write-docs", code=1)
    assert "--paper-size" in r.output and not (tmp_path / "docs").exists()


# -- 9. the demo explains why the paper's FLIPAD accepts the EBGAN -------------------------------------------------


def test_demo_flipad_notes_explain_the_same_seed_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    from genattr import demo, zoo

    man = {"models": {"g-dcgan-s0": {"seed": 0}, "g-ebgan-s0": {"seed": 0}, "g-lsgan-s1": {"seed": 1}}}
    monkeypatch.setattr(zoo, "manifest", lambda root=None: man)
    rows = [{"source": "g-dcgan-s0", "n": 16, "accepted": 16}, {"source": "real", "n": 16, "accepted": 0},
            {"source": "g-ebgan-s0", "n": 16, "accepted": 16}, {"source": "g-lsgan-s1", "n": 16, "accepted": 1}]
    notes = demo.flipad_notes("g-dcgan-s0", rows, {"params": {}})
    assert len(notes) == 2
    assert "16/16 images of g-ebgan-s0" in notes[0] and "same seed (0)" in notes[0] and "Zoo v2" in notes[0]
    assert "genattr flipad fit --generator g-dcgan-s0" in notes[1] and "94.7" in notes[1]
    assert demo.flipad_notes("g-dcgan-s0", rows[:2], {"params": {}}) == []  # nothing to explain


# -- 10. the better FLIPAD variant has a name and is the default ---------------------------------------------------

SMALL = ["--n-train", "32", "--n-val", "16", "--threads", "1", "--set", "n_mean=64", "--set", "epochs=1",
         "--set", "max_iter=10", "--set", "widths=[4]", "--set", "batch_size=16", "--set", "rep_dim=4"]


def test_flipad_fit_variant_default_plan_and_progress(module_tiny_zoo: Path, tmp_path: Path) -> None:
    from genattr.cli.flipad_cmds import resolve_variant
    from genattr.errors import ConfigError

    assert resolve_variant("flipad", None) == ("censored-gaussian", {"data_term": "censored",
                                                                     "detector": "deep-sad+gaussian"})
    assert resolve_variant("rawpad", None)[0] == "gaussian" and resolve_variant("sm-f", None) == ("paper", {})
    with pytest.raises(ConfigError, match="applies to flipad"):
        resolve_variant("rawpad", "censored-gaussian")
    r = invoke("flipad", "fit", "--generator", "tiny-dcgan", "--negatives", "tiny-lsgan", "--out", tmp_path / "d",
               *SMALL, "--json")
    cfg = json.loads((tmp_path / "d" / "config.json").read_text())["params"]
    assert cfg["data_term"] == "censored" and cfg["detector"] == "deep-sad+gaussian"
    assert json.loads(r.stdout)["variant"] == "censored-gaussian"
    err = " ".join(r.stderr.split())
    # 11. the plan (sizes, expected time from a probe) comes first, then one bar per phase
    assert err.index("plan flipad fit") < err.index("fit: sampling")
    assert "expected time: about" in err and "--paper-size" in err
    for phase in ("fit: inversion", "fit: training (Deep SAD epochs)", "calibration: sampling",
                  "calibration: inversion"):
        assert phase in err, phase
    invoke("flipad", "fit", "--model", "tiny-dcgan", "--negatives", "tiny-lsgan", "--out", tmp_path / "p",
           "--variant", "paper", *SMALL)
    cfg = json.loads((tmp_path / "p" / "config.json").read_text())["params"]
    assert cfg["data_term"] == "clipped" and cfg["detector"] == "deep-sad"
    r = invoke("flipad", "score", "--model", tmp_path / "p", "--trust-unverified", tmp_path / "x.png", code=1)
    assert "x.png" in r.output


# -- 11. long commands: defaults finish in minutes, paper sizes behind a flag ---------------------------------------


def test_long_command_defaults_are_small_and_paper_size_is_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    from genattr.cli import classify_cmds, fingerprint_cmds, flipad_cmds

    seen = {}

    def capture(model, out, negatives, method, variant, n_train, *a, **k):
        seen["n_train"] = n_train
        return {}

    monkeypatch.setattr(flipad_cmds, "_fit", capture)
    invoke("flipad", "fit", "--generator", "g", "--out", "x")
    assert seen["n_train"] == flipad_cmds.DEFAULT_N_TRAIN == 2000
    invoke("flipad", "fit", "--generator", "g", "--out", "x", "--paper-size")
    assert seen["n_train"] == flipad_cmds.PAPER_N_TRAIN == 10_000
    assert (classify_cmds.DEFAULT_N_TRAIN, classify_cmds.DEFAULT_EPOCHS) == (2000, 4)
    assert (fingerprint_cmds.QUICK_EPOCHS, fingerprint_cmds.QUICK_STEPS, fingerprint_cmds.PAPER_EPOCHS) == (1, 150, 10)


def test_classify_train_prints_plan_and_clean_json(module_tiny_zoo: Path, tmp_path: Path) -> None:
    r = invoke("classify", "train", "--out", tmp_path / "n", "--source", "tiny-dcgan", "--real", "digits",
               "--n-train", "16", "--n-val", "4", "--epochs", "1", "--width", "2", "--threads", "1", "--json")
    data = json.loads(r.stdout)
    assert data["candidates"] == ["real", "tiny-dcgan"] and data["expected_seconds"] is not None
    err = " ".join(r.stderr.split())
    assert "plan classify train" in err and "training (steps)" in err and "calibration" in err


def test_progress_phases_are_silent_without_a_reporter() -> None:
    from genattr.progress import phase, reporting, stage

    with phase("x", total=3) as advance:
        advance(3)  # no reporter: nothing happens

    class Rec:
        def __init__(self) -> None:
            self.events: list[tuple] = []

        def start(self, name, total):
            self.events.append(("start", name, total))
            return name

        def advance(self, handle, k):
            self.events.append(("advance", handle, k))

        def finish(self, handle):
            self.events.append(("finish", handle))

    rec = Rec()
    with reporting(reporter=rec), stage("calibration"), phase("inversion", total=2) as advance:
        advance(2)
    assert rec.events == [("start", "calibration: inversion", 2), ("advance", "calibration: inversion", 2),
                          ("finish", "calibration: inversion")]
