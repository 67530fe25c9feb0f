"""The evaluation runner on tiny random generators: tidy outputs, metrics, determinism, plots."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import sklearn.metrics as skm
import torch

from genattr import UNKNOWN
from genattr.attribution import create_attributor
from genattr.errors import ConfigError
from genattr.evaluation import ALL, COLUMNS, derive_seed, draw, evaluate
from genattr.perturbations import GaussianBlur, GaussianNoise, Identity


class TinyGenerator(torch.nn.Module):
    def __init__(self, seed: int, latent_dim: int = 4, size: int = 8) -> None:
        super().__init__()
        self.latent_dim, self.size = latent_dim, size
        with torch.random.fork_rng(devices=[]):  # seeded weights, global RNG untouched
            torch.manual_seed(seed)
            self.net = torch.nn.Sequential(torch.nn.Linear(latent_dim, 3 * size * size), torch.nn.Tanh())

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.net(torch.randn(n, self.latent_dim, generator=generator)).view(n, 3, self.size, self.size)


GENS = {f"g{i}": TinyGenerator(i) for i in range(3)}
REAL = torch.rand(20, 3, 8, 8, generator=torch.Generator().manual_seed(9)) * 2 - 1
GRID = {"none": Identity(), "blur/3": GaussianBlur(kernel_size=3, sigma=1.0), "noise/0.2": GaussianNoise(std=0.2)}


@pytest.fixture(scope="module")
def attributor():
    att = create_attributor("nearest-mean", n_samples=32).fit(GENS)
    return att.calibrate({k: g.sample(16, torch.Generator().manual_seed(1)) for k, g in GENS.items()},
                         target_fnr=0.1)


def run(att, tmp_path=None, **kw):
    sources = {**GENS, "real": REAL, "fn": lambda n, g: GENS["g0"].sample(n, g)}
    args = {"n_samples": 16, "batch_size": 6, "seed": 0, "progress": False, "labels": {"fn": "g0"}}
    args.update(kw)
    return evaluate(att, sources, GRID, out_dir=tmp_path, **args)


def test_sources_are_duck_typed() -> None:
    g = torch.Generator().manual_seed(0)
    assert torch.equal(draw(REAL, 5, g), REAL[:5]) and draw(REAL, None).shape[0] == 20
    a = draw(GENS["g0"], 7, torch.Generator().manual_seed(3), batch_size=3)
    b = draw(lambda n, gen: GENS["g0"].sample(n, gen), 7, torch.Generator().manual_seed(3), batch_size=3)
    assert a.shape == (7, 3, 8, 8) and torch.equal(a, b)
    with pytest.raises(ConfigError):
        draw(object(), 3)
    with pytest.raises(ConfigError):
        draw(lambda n, gen: torch.zeros(n + 1, 3, 8, 8), 2)
    assert derive_seed(0, "a") == derive_seed(0, "a") != derive_seed(0, "b")


def test_tidy_rows_and_metrics_match_predictions(attributor) -> None:
    res = run(attributor, n_bootstrap=100)
    keys = [r["perturbation"] for r in res.rows]
    assert list(dict.fromkeys(keys)) == ["none", "blur/3", "noise/0.2"]
    assert all(set(r) == set(COLUMNS) for r in res.rows)
    sources = {r["source"] for r in res.rows}
    assert sources == {"g0", "g1", "g2", "real", "fn", ALL}
    by = {(r["source"], r["perturbation"], r["metric"]): r for r in res.rows}
    assert by[("real", "none", "accuracy")]["label"] == UNKNOWN and by[("fn", "none", "accuracy")]["label"] == "g0"

    # Recompute the clean-column metrics from the attributor directly.
    y_true, y_pred, scores = [], [], []
    for name, src in {**GENS, "real": REAL}.items():
        x = draw(src, 16, torch.Generator().manual_seed(derive_seed(0, "source", name)))
        r = attributor.attribute(x)
        t = name if name in GENS else UNKNOWN
        assert by[(name, "none", "accuracy")]["value"] == pytest.approx(np.mean([lab == t for lab in r.labels]))
        y_true += [t] * 16
        y_pred += list(r.labels)
        scores.append(r.scores)
    # "fn" draws g0's images with its own seed; add them to the pooled reference too.
    xf = draw(lambda n, g: GENS["g0"].sample(n, g), 16, torch.Generator().manual_seed(derive_seed(0, "source", "fn")))
    rf = attributor.attribute(xf)
    y_true += ["g0"] * 16
    y_pred += list(rf.labels)
    scores.append(rf.scores)
    s = torch.cat(scores).numpy()
    y_true_a, y_pred_a = np.array(y_true, dtype=object), np.array(y_pred, dtype=object)
    assert res.value("accuracy") == pytest.approx(skm.accuracy_score(y_true_a, y_pred_a))
    assert res.value("balanced_accuracy") == pytest.approx(skm.balanced_accuracy_score(y_true_a, y_pred_a))
    aucs = [skm.roc_auc_score(y_true_a == c, s[:, j]) for j, c in enumerate(attributor.candidates_)]
    assert res.value("roc_auc") == pytest.approx(np.mean(aucs))
    assert res.value("roc_auc:g1") == pytest.approx(aucs[1])
    labels, cm = res.confusion["none"]
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true_a, y_pred_a, labels=labels))
    row = by[(ALL, "none", "accuracy")]
    assert row["n"] == 80 and row["ci_low"] <= row["value"] <= row["ci_high"]
    assert res.table("accuracy", source="g0").keys() == {"none", "blur/3", "noise/0.2"}


def test_outputs_written_and_deterministic(attributor, tmp_path) -> None:
    a = run(attributor, tmp_path / "a", n_bootstrap=20)
    run(attributor, tmp_path / "b", n_bootstrap=20)
    for f in ("results.csv", "results.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    for key in ("none", "blur_3", "noise_0.2"):
        assert (tmp_path / "a" / f"confusion_{key}.png").stat().st_size > 1000
        assert (tmp_path / "a" / f"roc_{key}.png").stat().st_size > 1000
    with (tmp_path / "a" / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == COLUMNS and len(rows) == len(a.rows)
    doc = json.loads((tmp_path / "a" / "results.json").read_text())
    meta = doc["metadata"]
    assert meta["seed"] == 0 and meta["attributor"]["name"] == "nearest-mean"
    assert [g["key"] for g in meta["grid"]] == ["none", "blur/3", "noise/0.2"]
    assert meta["grid"][2]["config"] == {"name": "noise", "std": 0.2, "variance": None, "clip": True}
    assert meta["sources"]["real"] == {"label": UNKNOWN, "n": 16, "kind": "tensor"}
    # Batching is an implementation detail: the same seed gives the same table at any batch size.
    assert json.dumps(run(attributor, batch_size=16, n_bootstrap=20).rows) == json.dumps(a.rows)
    # A different seed changes the draws (and hence, almost surely, some value).
    c = run(attributor, seed=1)
    assert [r["value"] for r in c.rows] != [r["value"] for r in a.rows]


def test_named_grid_and_no_plots(attributor, tmp_path) -> None:
    res = evaluate(attributor, {"g0": GENS["g0"], "real": REAL}, "flipad-table3", n_samples=8, batch_size=8,
                   progress=False, out_dir=tmp_path, plots=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results.json"]
    assert len(res.table("accuracy")) == 9
    # Only one candidate has positives here, so only its ROC curve exists.
    assert set(res.roc["none"]) == {"g0"}


def test_progress_bar_renders(attributor) -> None:
    from rich.console import Console

    console = Console(record=True, force_terminal=True, width=100)
    evaluate(attributor, {"g0": GENS["g0"]}, None, n_samples=4, progress=True, console=console)
    assert "1/1" in console.export_text()


def test_argument_validation(attributor) -> None:
    with pytest.raises(ConfigError, match="fitted"):
        evaluate(create_attributor("nearest-mean"), {"g0": GENS["g0"]}, progress=False)
    with pytest.raises(ConfigError, match="labels"):
        evaluate(attributor, {"g0": GENS["g0"]}, labels={"zz": "g0"}, progress=False)
    with pytest.raises(ConfigError, match="candidates"):
        evaluate(attributor, {"x": REAL}, labels={"x": "not-a-candidate"}, progress=False)
    with pytest.raises(ConfigError):
        evaluate(attributor, {}, progress=False)
