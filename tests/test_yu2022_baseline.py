"""Table 3's Yu 2019 classifier baseline beside the fingerprint attributor (``genattr reproduce yu2022``,
experiment ``attribution``): the fingerprint numbers stay what they were, the classifier never sees a test image,
its learning rate is chosen on validation only, bad settings are refused, and the README shows both side by side.

Tiny sizes throughout (16-bit codes, a few images per source, one or two epochs). The "ideal" pair — an instance
that paints its code into row 0 and a decoder that reads it back — is copied from tests/test_demo_steps.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from genattr.errors import ConfigError
from tests.conftest import needs_fmnist
from tests.fingerprint_helpers import BITS


def tiny_model() -> Any:
    from genattr.watermark.fingerprint import FingerprintModel

    torch.manual_seed(0)
    return FingerprintModel(code_bits=BITS, latent_dim=6, ngf=4, ndf=4, embed_dim=8, embed_layers=1).eval()


def tiny_cfg(**kw: Any) -> Any:
    from genattr.evaluation.yu2022 import Yu2022Config

    base = dict(attribution_sizes=(1, 3), attribution_n=8, attribution_unseen=2, baseline_train_per_source=16,
                baseline_val_per_source=6, baseline_epochs=1, baseline_lrs=(1e-3, 3e-3), threads=1)
    return Yu2022Config(**(base | kw))


def _digests(x: torch.Tensor) -> set[str]:
    from genattr.data import quantize_8bit

    q = quantize_8bit(x)
    return {hashlib.sha256(q[i].numpy().tobytes()).hexdigest() for i in range(q.shape[0])}


# --------------------------------------------------------------------------------------------------------
# the experiment
# --------------------------------------------------------------------------------------------------------
@needs_fmnist
def test_fingerprint_results_are_those_of_the_loop_without_the_baseline() -> None:
    """The fingerprint rows equal the original experiment's loop (re-implemented here), baseline on or off."""
    from genattr import UNKNOWN
    from genattr.attribution import create_attributor
    from genattr.data import load_fashion_mnist
    from genattr.evaluation.yu2022.experiments import _codes, exp_attribution
    from genattr.sampling import derive_seed

    model, cfg = tiny_model(), tiny_cfg(attribution_sizes=(2, 3))
    real = load_fashion_mnist("test").to_model(32)[: cfg.attribution_n]
    expected = {}
    for n_inst in cfg.attribution_sizes:  # the code as it was before the baseline existed
        codes = _codes(n_inst, model.code_bits, "attribution", n_inst, cfg.seed)
        users = {f"instance-{i}": c.to(torch.uint8) for i, c in enumerate(codes)}
        att = create_attributor("yu2022-fingerprint", alpha=cfg.alpha).fit(users, decoder=model)
        correct = total = 0
        for i, (name, c) in enumerate(users.items()):
            labels = att.predict(model.instance(c).sample(cfg.attribution_n,
                                                          torch.Generator().manual_seed(derive_seed("att", i, n_inst))))
            correct += sum(lab == name for lab in labels)
            total += len(labels)
        real_ok = sum(lab == UNKNOWN for lab in att.predict(real))
        expected[str(n_inst)] = {"closed_world": correct / total,
                                 "open_world": (correct + real_ok) / (total + real.shape[0]),
                                 "real_rejected": real_ok / real.shape[0], "threshold_bits": att.threshold_bits(),
                                 "images_per_source": cfg.attribution_n}
    with_bl = exp_attribution(cfg, model)["results"]
    cfg.attribution_baseline = False
    without = exp_attribution(cfg, model)
    assert "not run" in without["baseline_classifier"]
    for n, exp in expected.items():
        assert {k: with_bl[n][k] for k in exp} == exp
        assert {k: without["results"][n][k] for k in exp} == exp
        assert "classifier" in with_bl[n] and "classifier" not in without["results"][n]
    # a wrong-code image must not count: this untrained decoder reads noise, so not everything is right
    assert any(exp["closed_world"] < 1.0 for exp in expected.values())


@needs_fmnist
def test_side_by_side_with_an_ideal_decoder(ideal_decoder: None, tmp_path: Path) -> None:
    from genattr.evaluation.yu2022.experiments import _write, exp_attribution
    from genattr.evaluation.yu2022.report import write_report

    cfg = tiny_cfg()
    res = exp_attribution(cfg, tiny_model())
    assert set(res["results"]) == {"1", "3"} and set(res["definitions"]) >= {"closed_world", "open_world",
                                                                            "unseen_instances"}
    for n, row in res["results"].items():
        # the ideal decoder reads every code: all instances found, real and unseen instances never attributed
        assert row["closed_world"] == row["open_world"] == row["real_rejected"] == 1.0
        assert row["unseen_instances"] == {"attributed_to_known": 0.0, "unknown": 1.0, "instances": 2,
                                           "images": 2 * cfg.attribution_n}
        clf = row["classifier"]
        assert clf["classes"] == int(n) + 1 and clf["epochs"] == 1 and clf["train_per_source"] == 16
        total, n_real = int(n) * cfg.attribution_n, cfg.attribution_n
        assert clf["open_world"] == pytest.approx((clf["closed_world"] * total + clf["real_as_real"] * n_real)
                                                  / (total + n_real))
        assert 0.0 <= clf["instances_called_real"] <= 1.0 - clf["closed_world"] + 1e-12
        assert clf["unseen_instances"]["images"] == 2 * cfg.attribution_n
        tried = clf["selection"]["tried"]
        assert [t["lr"] for t in tried] == [1e-3, 3e-3]
        assert clf["selection"]["val_accuracy"] == max(t["val_accuracy"] for t in tried)
    assert "trivial" in res["results"]["1"]["note"] and "note" not in res["results"]["3"]

    _write(tmp_path, "attribution", res)
    text = write_report(tmp_path).read_text()
    assert "| instances | closed world: fingerprint | closed world: classifier |" in text
    c3 = res["results"]["3"]["classifier"]
    assert f"| 3 | 1.000 | {c3['closed_world']:.3f} | 1.000 | {c3['open_world']:.3f} |" in text
    assert "| 0.997 / 1.000 | 0.893 / 1.000 |" in text  # the paper's Table 3 beside ours (it has 1 / 10 / 100)
    assert text.count("| — / — | — / — |") == 1  # no paper number for 3 instances
    assert "* **open_world**:" in text


@needs_fmnist
def test_the_classifier_never_sees_a_test_image(ideal_decoder: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training and validation images (instances and real) are disjoint from every test image."""
    from genattr.evaluation.yu2022 import baseline as bl
    from genattr.evaluation.yu2022.experiments import exp_attribution

    seen: dict[str, list[Any]] = {"fit": [], "score": []}
    select, score = bl.select_classifier, bl.score_baseline

    def spy_select(train: Any, val: Any, **kw: Any) -> Any:
        seen["fit"].append((dict(train), dict(val)))
        return select(train, val, **kw)

    def spy_score(att: Any, test: Any, real: Any, unseen: Any) -> Any:
        seen["score"].append((dict(test), real, dict(unseen)))
        return score(att, test, real, unseen)

    monkeypatch.setattr(bl, "select_classifier", spy_select)
    monkeypatch.setattr(bl, "score_baseline", spy_score)
    exp_attribution(tiny_cfg(attribution_sizes=(3,), baseline_lrs=(1e-3,)), tiny_model())
    (train, val), (test, real, unseen) = seen["fit"][0], seen["score"][0]
    assert list(train) == list(val) == ["real", "instance-0", "instance-1", "instance-2"]
    fit_imgs = set().union(*(_digests(x) for x in [*train.values(), *val.values()]))
    test_imgs = set().union(*(_digests(x) for x in [real, *test.values(), *unseen.values()]))
    assert len(fit_imgs) == 4 * (16 + 6) and len(test_imgs) == (1 + 3 + 2) * 8  # all distinct images
    assert not fit_imgs & test_imgs
    assert not set().union(*map(_digests, train.values())) & set().union(*map(_digests, val.values()))


# --------------------------------------------------------------------------------------------------------
# selection, settings, report
# --------------------------------------------------------------------------------------------------------
def test_the_learning_rate_is_chosen_by_validation_accuracy(monkeypatch: pytest.MonkeyPatch) -> None:
    from genattr.evaluation.yu2022 import baseline as bl

    g = torch.Generator().manual_seed(0)
    train = {"a": torch.rand(8, 1, 8, 8, generator=g) - 1, "b": torch.rand(8, 1, 8, 8, generator=g)}
    val = {k: v[:2] for k, v in train.items()}
    accs = iter([0.2, 0.9, 0.5, 0.9])
    monkeypatch.setattr(bl, "_accuracy", lambda att, data: next(accs))
    att, info = bl.select_classifier(train, val, epochs=1, lrs=[1e-3, 2e-3, 3e-3, 4e-3], seed=0)
    assert att.lr == info["selected_lr"] == 2e-3 and info["val_accuracy"] == 0.9  # a tie keeps the first
    assert [t["val_accuracy"] for t in info["tried"]] == [0.2, 0.9, 0.5, 0.9] and att.is_fitted


@pytest.mark.parametrize("bad", [{"baseline_epochs": 0}, {"baseline_train_per_source": -1},
                                 {"baseline_val_per_source": 1.5}, {"baseline_lrs": ()}, {"baseline_lrs": (0.0,)},
                                 {"baseline_lrs": "fast"}, {"attribution_unseen": -1}])
def test_bad_baseline_settings_are_refused_before_anything_runs(bad: dict[str, Any], tmp_path: Path) -> None:
    from genattr.evaluation.yu2022 import reproduce_yu2022

    cfg = tiny_cfg(models=str(tmp_path / "no-model"), experiments=("attribution",), **bad)
    with pytest.raises(ConfigError, match=next(iter(bad))):  # a ConfigError, not the missing model's DataError
        reproduce_yu2022(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_table_renders_old_results_without_a_classifier(tmp_path: Path) -> None:
    from genattr.evaluation.yu2022.report import write_report

    old = {"rule": "registry", "results": {"10": {"closed_world": 1.0, "open_world": 0.995, "real_rejected": 0.99}},
           "baseline_classifier": "not run here (see docs/yu2022.md)"}
    (tmp_path / "attribution.json").write_text(json.dumps(old))
    text = write_report(tmp_path).read_text()
    assert "| 10 | 1.000 | — | 0.995 | — | — / — | 0.998 / 1.000 | 0.102 / 1.000 |" in text


def test_table2_renders_as_a_table_beside_the_paper(tmp_path: Path) -> None:
    from genattr.evaluation.yu2022.experiments import PAPER
    from genattr.evaluation.yu2022.report import write_report

    res = {"steps": 1000, "warm_start": "fmnist-dcgan-s0",
           "results": {"10": {"train_bit_accuracy": 0.97, "test_bit_accuracy": 0.69, "paper": PAPER["table2"][10]},
                       "fresh": {"train_bit_accuracy": 0.9, "test_bit_accuracy": 0.875, "paper": None}}}
    (tmp_path / "table2.json").write_text(json.dumps(res))
    text = write_report(tmp_path).read_text()
    assert "| 10 | 1.000 | 0.512 | 0.970 | 0.690 |" in text
    assert "| sampled on the fly | — | — | 0.900 | 0.875 |" in text and "1000 training steps" in text
