"""The `genattr reproduce flipad` driver at toy scale (tiny random generators, no zoo, no Fashion-MNIST)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from genattr.errors import ConfigError
from genattr.evaluation.flipad_experiments import (
    PAPER_METHODS,
    FlipadConfig,
    pair_metrics,
    quick_config,
    reproduce_flipad,
    summarize,
)
from tests.test_flipad_attributors import negatives, tiny_generator

GENS = {"fmnist-dcgan-s0": ("dcgan", 0), "fmnist-lsgan-s0": ("lsgan", 1), "fmnist-dcgan-s1": ("dcgan", 2)}


def _loader(name: str):
    arch, seed = GENS[name]
    return tiny_generator(seed, arch)


def _config() -> FlipadConfig:
    deep = {"epochs": 1, "batch_size": 16, "widths": (4,), "rep_dim": 4}
    return FlipadConfig(models=("fmnist-dcgan-s0", "fmnist-lsgan-s0"), seed_model="fmnist-dcgan-s0",
                        seed_others=("fmnist-dcgan-s1",), n_train=32, n_val=16, n_test=16, runs=2, sm_inv_runs=1,
                        sm_inv_n_test=4, n_figure=8, threads=1, grid_keys=("blur/3",),
                        table3_models=("fmnist-lsgan-s0",), table3_n_train=24, table3_n_test=8, table3_runs=1,
                        params={"flipad": {**deep, "n_mean": 64, "max_iter": 10}, "rawpad": deep, "dctpad": deep,
                                "sm-inv": {"restarts": 2, "steps": 3}})


def test_reproduce_at_toy_scale(tmp_path: Path) -> None:
    logs: list[str] = []
    readme = reproduce_flipad(tmp_path, config=_config(), loader=_loader, real_train=negatives(64, 0),
                              real_test=negatives(32, 1), log=logs.append, command="genattr reproduce flipad --test",
                              models_dir=tmp_path / "models")
    text = readme.read_text()
    for title in ("Table 1", "Table 9", "Table 8", "Table 6", "Table 2", "Table 3"):
        assert title in text
    assert "99.34 / 97.75" in text  # the paper's FLIPAD DCGAN number sits beside ours
    assert "genattr reproduce flipad --test" in text
    assert (tmp_path / "figures" / "fig4_fmnist-dcgan-s0.png").is_file()
    assert (tmp_path / "figures" / "fig4_fmnist-lsgan-s0.png").is_file()
    with (tmp_path / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    t1 = [r for r in rows if r["experiment"] == "table1" and r["metric"] == "accuracy"]
    # 2 runs × 2 G × 2 G′ × 7 methods (4 of the paper + rawpad+g, flipad-c, flipad-c+g) + SM-Inv once
    assert len(t1) == 2 * 2 * 2 * 7 + 2 * 2
    assert {r["method"] for r in t1} == {*PAPER_METHODS, "rawpad+g", "flipad-c", "flipad-c+g"}
    assert {r["other"] for r in t1 if r["model"] == "fmnist-dcgan-s0"} == {"real", "fmnist-lsgan-s0"}
    assert all(0 <= float(r["value"]) <= 100 for r in rows)
    t3 = [r for r in rows if r["experiment"] == "table3"]
    assert {r["perturbation"] for r in t3} == {"blur/3"}
    assert {r["model"] for r in t3} == {"fmnist-lsgan-s0"}  # table3_models, with their own sizes
    assert {r["other"] for r in t3} == {"real", "fmnist-dcgan-s0"} and {int(r["n"]) for r in t3} == {8}
    assert {r["other"] for r in rows if r["experiment"] == "table2"} == {"fmnist-dcgan-s1"}
    timings = json.loads((tmp_path / "table1" / "timings.json").read_text())
    assert {t["method"] for t in timings} == {*PAPER_METHODS, "rawpad+g", "flipad-c", "flipad-c+g"}
    assert any(log.startswith("[table1]") for log in logs)
    # the report is rebuilt from what exists: rerunning one experiment keeps the others
    reproduce_flipad(tmp_path, config=_config(), only=["table2"], loader=_loader, real_train=negatives(64, 0),
                     real_test=negatives(32, 1), log=logs.append)
    assert "Table 1" in readme.read_text()


def test_pair_metrics_and_summary() -> None:
    m = pair_metrics(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.0, 2.5, -1.0, -2.0]), threshold=1.5)
    assert m["tpr"] == 75.0 and m["tnr"] == 75.0 and m["accuracy"] == 75.0
    assert m["auc"] == pytest.approx(100 * 14 / 16)  # 14 of the 16 (G, G′) pairs are ordered correctly
    rows = [{"method": "flipad", "model": "g", "other": o, "perturbation": "none", "metric": "accuracy",
             "run": run, "value": v} for run, vals in enumerate(((90.0, 100.0), (80.0, 90.0)))
            for o, v in zip(("real", "h"), vals, strict=True)]
    mean, std, n = summarize(rows)[("flipad", "g", "none")]
    assert (mean, n) == (90.0, 2) and std == pytest.approx(7.0710678)


def test_config_override_and_errors(tmp_path: Path) -> None:
    cfg = quick_config().override({"runs": "3", "models": "a,b", "params": '{"flipad": {"lam": 0.001}}'})
    assert cfg.runs == 3 and cfg.models == ("a", "b") and cfg.params == {"flipad": {"lam": 0.001}}
    with pytest.raises(ConfigError):
        cfg.override({"nope": "1"})
    with pytest.raises(ConfigError):
        cfg.override({"runs": "x"})
    with pytest.raises(ConfigError):
        reproduce_flipad(tmp_path, config=cfg, only=["table7"])


def test_reproduce_ships_the_first_run_flipad(tmp_path: Path) -> None:
    from genattr.attribution.shipping import load_shipped
    from genattr.errors import IntegrityError

    models = tmp_path / "models"
    reproduce_flipad(tmp_path, config=_config(), only=["table1"], loader=_loader, real_train=negatives(64, 0),
                     real_test=negatives(32, 1), log=lambda m: None, command="cmd", models_dir=models)
    man = json.loads((models / "manifest.json").read_text())
    assert list(man["models"]) == ["fmnist-dcgan-s0"]  # only config.ship_models
    entry = man["models"]["fmnist-dcgan-s0"]
    assert entry["attributor"] == "flipad" and entry["command"] == "cmd"
    assert set(entry["test_accuracy"]["vs"]) == {"real", "fmnist-lsgan-s0"}
    att = load_shipped("fmnist-dcgan-s0", models)
    assert att.candidates_ == ["fmnist-dcgan-s0"] and att.thresholds_.tolist() == entry["thresholds"]
    x = tiny_generator(0, "dcgan").sample(4, torch.Generator().manual_seed(9)).clamp(-1, 1)
    assert att.decision_function(x).shape == (4, 1)
    (models / "fmnist-dcgan-s0" / "state.safetensors").write_bytes(b"tampered")
    with pytest.raises(IntegrityError):
        load_shipped("fmnist-dcgan-s0", models)


def test_rerunning_one_method_keeps_the_others_rows(tmp_path: Path) -> None:
    from dataclasses import replace

    from genattr.evaluation.flipad_experiments import read_rows

    data = {"loader": _loader, "real_train": negatives(64, 0), "real_test": negatives(32, 1), "log": lambda m: None}
    cfg = replace(_config(), runs=1)
    reproduce_flipad(tmp_path, config=cfg, only=["table2"], command="first", **data)
    before = read_rows(tmp_path / "table2" / "rows.csv")
    again = replace(cfg, table2_methods=("flipad",), seed=5)
    readme = reproduce_flipad(tmp_path, config=again, only=["table2"], command="second", **data)
    after = read_rows(tmp_path / "table2" / "rows.csv")
    assert [r for r in after if r["method"] != "flipad"] == [r for r in before if r["method"] != "flipad"]
    assert len(after) == len(before)
    assert [r for r in after if r["method"] == "flipad"] != [r for r in before if r["method"] == "flipad"]  # seed 5
    prov = json.loads((tmp_path / "table2" / "provenance.json").read_text())
    assert prov["flipad"]["command"] == "second" and prov["rawpad"]["command"] == "first"
    text = readme.read_text()
    assert "- `first`: table2/rawpad, table2/dctpad" in text and "- `second`: table2/flipad" in text


def test_merge_results_copies_methods_with_their_provenance(tmp_path: Path) -> None:
    from genattr.errors import DataError
    from genattr.evaluation.flipad_experiments import merge_results, read_rows, save_experiment

    cfg = FlipadConfig(runs=1)
    row = {"experiment": "table1", "run": 0, "model": "fmnist-dcgan-s0", "other": "real", "perturbation": "none",
           "metric": "accuracy", "value": 90.0, "n": 10}
    save_experiment(tmp_path / "main" / "table1", [{**row, "method": "rawpad"}], [], ["rawpad"], cfg, "cmd-a")
    save_experiment(tmp_path / "side" / "table1", [{**row, "method": "flipad-c", "value": 99.0}],
                    [{"method": "flipad-c", "fit_s": 1.0}], ["flipad-c"], cfg, "cmd-b")
    readme = merge_results(tmp_path / "side", tmp_path / "main")
    rows = read_rows(tmp_path / "main" / "table1" / "rows.csv")
    assert sorted(r["method"] for r in rows) == ["flipad-c", "rawpad"]
    prov = json.loads((tmp_path / "main" / "table1" / "provenance.json").read_text())
    assert prov["rawpad"]["command"] == "cmd-a" and prov["flipad-c"]["command"] == "cmd-b"
    assert "flipad-c" in readme.read_text() and "cmd-b" in readme.read_text()
    with pytest.raises(DataError):
        merge_results(tmp_path / "nothing", tmp_path / "main")


def test_a_variant_with_its_own_n_train_gets_as_many_negatives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    import genattr.evaluation.flipad_experiments.experiments as fe

    seen: dict[str, int] = {}
    real_run_one = fe.run_one

    def spy(method: str, *args, negatives: torch.Tensor, **kw):  # type: ignore[no-untyped-def]
        seen[method] = int(negatives.shape[0])
        return real_run_one(method, *args, negatives=negatives, **kw)

    monkeypatch.setattr(fe, "run_one", spy)
    base = _config()
    cfg = FlipadConfig(**{**base.__dict__, "methods": ("rawpad", "rawpad+g"), "runs": 1, "models": ("fmnist-dcgan-s0",),
                          "params": {**base.params, "rawpad+g": {"n_train": 48}}})
    reproduce_flipad(tmp_path, config=cfg, only=["table1"], loader=_loader, real_train=negatives(64, 0),
                     real_test=negatives(32, 1), log=lambda m: None)
    assert seen == {"rawpad": 32, "rawpad+g": 48}
