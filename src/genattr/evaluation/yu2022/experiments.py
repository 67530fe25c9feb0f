"""`genattr reproduce yu2022`: the experiments of Yu et al. (ICLR 2022) on our 32×32 fingerprinting model.

Each experiment writes ``<out>/<name>.json``; ``<out>/README.md`` is rebuilt from whatever results exist.

* ``accuracy`` — Table 1: mean bit accuracy and **word accuracy** (share of images with k ≥ threshold, fixed
  and registry rules) on ≥ 10⁴ fresh random codes; per-bit accuracy spread (correlated errors).
* ``fidelity`` — FD of instances (pooled over several codes) vs the unfingerprinted reference generator.
* ``robustness`` — Fig. 5: bit accuracy under blur, crop, noise, JPEG and their combination, for the model
  and each immunised variant found (``<models>/<variant>-immune-<attack>``).
* ``attribution`` — Table 3: 1 / 10 / 100 instances, closed world (instances only) and open world (plus real
  images that must come out real / unknown), with the fingerprint attributor and, beside it, our Yu 2019
  classifier trained on the instances (:mod:`genattr.evaluation.yu2022.baseline`); also images of unseen
  instances (the paper's open world), which must not be attributed to a known one.
* ``false_attribution`` — real test images decoded and matched against a registry of 10⁶ random codes:
  measured false-attribution rate at both rules, predicted N · P(Bin ≥ k), extrapolated to 10⁹ codes.
* ``distinct`` — distinct codes decode distinctly: images of M random codes are matched among those M codes.
* ``capacity`` — the paper's "bottom line": the largest bit overlap among random codes.
* ``table2`` — train/test bit accuracy vs fingerprint-set size (10 … 10⁴ and fresh codes): short runs
  warm-started from the zoo generator (slow: ``--only table2``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genattr.errors import ConfigError, DataError
from genattr.sampling import derive_seed

EXPERIMENTS = ("accuracy", "fidelity", "distinct", "capacity", "attribution", "false_attribution", "robustness",
               "table2")
DEFAULT_EXPERIMENTS = EXPERIMENTS[:-1]  # table2 trains 5 models: opt in
COMMAND = "genattr reproduce yu2022"

# Fig. 5 strengths (CelebA 128²) scaled to 32 px: blur kernels 0…7 px → ≤ 2 px (we probe 1…7 anyway),
# crops 60…128 of 128 → fractions 0.47…1, noise σ 0…0.4 (image range [-1, 1]: σ doubled), JPEG 100…50.
ROBUSTNESS_GRID: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "blur": [(f"k={k}", {"name": "blur", "kernel_size": k}) for k in (1, 3, 5, 7)],
    "crop": [(f"{f:g}", {"name": "crop", "fraction": f}) for f in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)],
    "noise": [(f"σ={s:g}", {"name": "noise", "std": s}) for s in (0.0, 0.1, 0.2, 0.4, 0.8)],
    "jpeg": [(f"q={q}", {"name": "jpeg", "quality": q}) for q in (100, 90, 80, 70, 60, 50)],
    "combination": [("all", {"name": "combination", "p": 0.5, "transforms": [
        {"name": "blur", "kernel_size": 3}, {"name": "crop", "fraction": 0.8}, {"name": "noise", "std": 0.2},
        {"name": "jpeg", "quality": 80}]})],
}
PAPER = {"bit_accuracy": 0.991, "fid_fingerprinted": 11.50, "fid_plain": 9.37, "attribution": 1.0,
         # Table 3, CelebA: #GANs → (classifier [Yu 2019], ours); the paper's open world tests *unseen* GANs
         "table3": {"closed_world": {"1": (0.997, 1.0), "10": (0.998, 1.0), "100": (0.955, 1.0)},
                    "open_world_unseen_gans": {"1": (0.893, 1.0), "10": (0.102, 1.0), "100": (None, 1.0)}},
         "table2": {10: (1.000, 0.512), 100: (1.000, 0.537), 1000: (1.000, 0.752), 10000: (0.990, 0.988),
                    "fresh": (0.991, 0.991)}}


@dataclass
class Yu2022Config:
    models: str | None = None  # directory with fp64/ (and <variant>-immune-<attack>/), default models/yu2022
    variant: str = "fp64"
    baseline: str = "fmnist-dcgan-s0"  # unfingerprinted reference: zoo name or generator directory
    # the same recipe with the fingerprint off (`fingerprint train --no-fingerprint`), a variant in models/yu2022;
    # the "FD ≤ 1.5× an unfingerprinted model of the same recipe" is measured against it when shipped
    same_recipe: str = "baseline"
    n_codes: int = 10_000
    fd_n: int = 10_000
    fd_instances: int = 10
    robustness_n: int = 2000
    attribution_sizes: tuple[int, ...] = (1, 10, 100)
    attribution_n: int = 200  # test images per source
    attribution_unseen: int = 10  # instances never registered nor trained on (the paper's open world); 0: skip
    # Table 3's Yu 2019 classifier baseline: its training is bounded by these (≈ 3 min for 100 instances on 2
    # idle cores: 101 classes × 300 images × 8 epochs × 2 learning rates at ≈ 3000 images/s).
    attribution_baseline: bool = True
    baseline_train_per_source: int = 300
    baseline_val_per_source: int = 50  # chooses the learning rate; never the test images
    baseline_epochs: int = 8
    baseline_lrs: tuple[float, ...] = (1e-3, 3e-3)
    registry_size: int = 1_000_000
    n_real: int = 10_000
    distinct_codes: int = 1000
    table2_sizes: tuple[int | None, ...] = (10, 100, 1000, 10_000, None)
    table2_steps: int = 1500
    table2_eval: int = 2000
    # Checkpoints of the Table 2 runs (tens of MB each): scratch space, never the results folder.
    table2_dir: str = "runs/yu2022-table2"
    alpha: float = 0.01
    seed: int = 0
    threads: int = 2
    experiments: tuple[str, ...] = DEFAULT_EXPERIMENTS
    extra: dict[str, Any] = field(default_factory=dict)

    def models_dir(self) -> Path:
        return Path(self.models) if self.models else Path(__file__).resolve().parents[4] / "models" / "yu2022"


def zoo_fd_fn(n: int = 2000, seed: int = 4321) -> Callable[[torch.Tensor], float]:
    """FD in the zoo classifier's feature space against ``n`` real Fashion-MNIST test images."""
    from genattr import zoo
    from genattr.data import load_fashion_mnist
    from genattr.metrics.functional import feature_stats, frechet_distance_from_stats

    clf = zoo.load_classifier()
    real = load_fashion_mnist("test").to_model(32)
    pick = torch.randperm(real.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    with torch.no_grad():
        ref = feature_stats(clf.embed(real[pick]).double().numpy())

    def fd(images: torch.Tensor) -> float:
        with torch.no_grad():
            return float(frechet_distance_from_stats(*feature_stats(clf.embed(images).double().numpy()), *ref))

    return fd


ATTRIBUTION_DEFINITIONS = {
    "closed_world": "test images of the N instances only; correct = attributed to its own instance (with N = 1 "
                    "attribution is trivial: one candidate; what is left is whether the images are recognised at all "
                    "— fingerprint: k at or over the threshold; classifier: not labelled real)",
    "open_world": "the closed-world images plus attribution_n real Fashion-MNIST test images (as many as one "
                  "instance contributes); a real image is correct when labelled real (classifier) or unknown "
                  "(fingerprint: no registered code matches); accuracy over all these images",
    "unseen_instances": "the paper's open world (test GAN sources unseen in training): images of instances neither "
                        "registered nor trained on; attributed_to_known = share wrongly attributed to one of the N "
                        "(lower is better); the classifier has no unknown output, so it can at best call them real",
    "classifier_inputs": "the classifier is trained on 8-bit quantised instance images and real Fashion-MNIST train "
                         "images, and tested on 8-bit copies of the fingerprint attributor's test images",
}


# --------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------
def _load(cfg: Yu2022Config, variant: str | None = None) -> Any:
    from genattr.watermark.fingerprint import FingerprintModel

    d = cfg.models_dir() / (variant or cfg.variant)
    if not d.is_dir():
        raise DataError(f"no fingerprint model at {d}; train it with `genattr fingerprint train` (docs/yu2022.md)")
    return FingerprintModel.load(d)


@torch.no_grad()
def matched_bits(model: Any, codes: torch.Tensor, *, seed: int, batch: int = 500,
                 perturb: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(matched bits per image (n,), per-bit correctness (n, d) bool) for one image per code row."""
    g = torch.Generator().manual_seed(seed)
    ks, corr = [], []
    for i in range(0, codes.shape[0], batch):
        c = codes[i:i + batch].float()
        x = model(torch.randn(c.shape[0], model.latent_dim, generator=g), c)
        if perturb is not None:
            x = perturb(x).clamp(-1, 1)
        ok = (model.decoder(x)[1] > 0).float() == c
        corr.append(ok.numpy())
        ks.append(ok.sum(1).numpy())
    return np.concatenate(ks).astype(np.int64), np.concatenate(corr)


def _codes(n: int, bits: int, *parts: Any) -> torch.Tensor:
    from genattr.watermark.fingerprint import sample_codes

    return sample_codes(n, bits, torch.Generator().manual_seed(derive_seed("yu2022", *parts)))


def _write(out: Path, name: str, summary: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"{name}.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=float) + "\n")
    tmp.replace(out / f"{name}.json")


# --------------------------------------------------------------------------------------------------------
# experiments
# --------------------------------------------------------------------------------------------------------
def exp_accuracy(cfg: Yu2022Config, model: Any) -> dict[str, Any]:
    from genattr.watermark.fingerprint_index import fixed_threshold, registry_threshold

    d = model.code_bits
    k, corr = matched_bits(model, _codes(cfg.n_codes, d, "accuracy", cfg.seed), seed=cfg.seed + 1)
    rules = {"fixed": fixed_threshold(d), "registry_1e6": registry_threshold(d, 10**6, cfg.alpha),
             "registry_1e9": registry_threshold(d, 10**9, cfg.alpha)}
    per_bit = corr.mean(0)
    return {"n": int(k.size), "bits": d, "bit_accuracy": float(k.mean() / d),
            "word_accuracy": {r: float((k >= t).mean()) for r, t in rules.items()}, "thresholds": rules,
            "per_bit_accuracy": {"min": float(per_bit.min()), "max": float(per_bit.max())},
            "matched_histogram": {int(v): int((k == v).sum()) for v in np.unique(k)},
            "paper_bit_accuracy": PAPER["bit_accuracy"], "target": 0.98}


def exp_fidelity(cfg: Yu2022Config, model: Any) -> dict[str, Any]:
    from genattr.generators import Generator

    fd = zoo_fd_fn(cfg.fd_n)
    per = cfg.fd_n // cfg.fd_instances
    codes = _codes(cfg.fd_instances, model.code_bits, "fidelity", cfg.seed)
    xs = [model.instance(c).sample(per, torch.Generator().manual_seed(derive_seed("fd", cfg.seed, i)))
          for i, c in enumerate(codes)]
    fd_inst = fd(torch.cat(xs))
    if Path(cfg.baseline).is_dir():
        base = Generator.from_pretrained(cfg.baseline)
    else:
        from genattr import zoo

        base = zoo.load(cfg.baseline)
    fd_base = fd(base.sample(per * cfg.fd_instances, torch.Generator().manual_seed(derive_seed("fd-base", cfg.seed))))
    out = {"variant": cfg.variant, "fd_instances": fd_inst, "fd_unfingerprinted": fd_base, "ratio": fd_inst / fd_base,
           "baseline": cfg.baseline, "n": per * cfg.fd_instances, "instances": cfg.fd_instances, "target_ratio": 1.5,
           "paper": {"fid_fingerprinted": PAPER["fid_fingerprinted"], "fid_plain": PAPER["fid_plain"]}}
    if (cfg.models_dir() / cfg.same_recipe).is_dir():
        same = _load(cfg, cfg.same_recipe)
        # its modulation is zero, so every code gives the same plain generator
        g = same.instance(torch.zeros(same.code_bits))
        fd_same = fd(g.sample(per * cfg.fd_instances, torch.Generator().manual_seed(derive_seed("fd-same", cfg.seed))))
        out.update(same_recipe=cfg.same_recipe, fd_same_recipe=fd_same, ratio_same_recipe=fd_inst / fd_same)
    return out


def exp_distinct(cfg: Yu2022Config, model: Any) -> dict[str, Any]:
    from genattr.watermark.fingerprint_index import FingerprintIndex

    codes = torch.unique(_codes(cfg.distinct_codes, model.code_bits, "distinct", cfg.seed), dim=0)  # (short codes)
    idx = FingerprintIndex(model.code_bits)
    idx.add_many([f"c{i}" for i in range(codes.shape[0])], codes.to(torch.uint8).numpy())
    g = torch.Generator().manual_seed(cfg.seed + 3)
    with torch.no_grad():
        bits = model.decode(model(torch.randn(codes.shape[0], model.latent_dim, generator=g), codes))
    ids, k = idx.nearest(bits.numpy(), 1)
    decoded = {b.tobytes() for b in bits.numpy()}
    return {"codes": int(codes.shape[0]), "distinct_decoded": len(decoded),
            "nearest_is_own_code": float((ids[:, 0] == np.arange(codes.shape[0])).mean()),
            "mean_matched_bits": float(k.mean())}


def exp_capacity(cfg: Yu2022Config, model: Any) -> dict[str, Any]:
    from genattr.watermark.fingerprint_index import FingerprintIndex, random_codes

    d = model.code_bits
    n = 10_000
    codes = random_codes(n, d, cfg.seed + 11)
    idx = FingerprintIndex(d)
    idx.add_many([str(i) for i in range(n)], codes, check_codes=False)
    _, k = idx.nearest(codes, 2)
    overlap = k[:, 1] / d  # the nearest *other* code
    return {"n_codes": n, "bits": d, "max_overlap": float(overlap.max()), "mean_nearest_overlap": float(overlap.mean()),
            "note": "the paper's bottom line: decoding must be more accurate than the largest overlap"}


def exp_attribution(cfg: Yu2022Config, model: Any) -> dict[str, Any]:
    from genattr import UNKNOWN
    from genattr.attribution import create_attributor
    from genattr.data import load_fashion_mnist
    from genattr.evaluation.yu2022 import baseline as bl

    if cfg.attribution_baseline:
        bl.check_baseline_config(cfg)
    real = load_fashion_mnist("test").to_model(32)[: cfg.attribution_n]
    real_train_val = bl.real_train_val(cfg) if cfg.attribution_baseline else None
    out: dict[str, Any] = {}
    for n_inst in cfg.attribution_sizes:
        codes = _codes(n_inst, model.code_bits, "attribution", n_inst, cfg.seed)
        users = {f"instance-{i}": c.to(torch.uint8) for i, c in enumerate(codes)}
        att = create_attributor("yu2022-fingerprint", alpha=cfg.alpha).fit(users, decoder=model)
        instances = {name: model.instance(c) for name, c in users.items()}
        tests: dict[str, torch.Tensor] = {}
        correct, total = 0, 0
        for i, (name, inst) in enumerate(instances.items()):
            g = torch.Generator().manual_seed(derive_seed("att", i, n_inst))
            x = inst.sample(cfg.attribution_n, g)
            if cfg.attribution_baseline:
                tests[name] = x
            labels = att.predict(x)
            correct += sum(lab == name for lab in labels)
            total += len(labels)
        real_ok = sum(lab == UNKNOWN for lab in att.predict(real))
        row: dict[str, Any] = {"closed_world": correct / total,
                               "open_world": (correct + real_ok) / (total + real.shape[0]),
                               "real_rejected": real_ok / real.shape[0], "threshold_bits": att.threshold_bits(),
                               "images_per_source": cfg.attribution_n}
        unseen = _unseen_instances(cfg, model, codes, n_inst)
        if unseen:
            labels = [lab for x in unseen.values() for lab in att.predict(x)]
            row["unseen_instances"] = {"attributed_to_known": sum(lab in users for lab in labels) / len(labels),
                                       "unknown": sum(lab == UNKNOWN for lab in labels) / len(labels),
                                       "instances": len(unseen), "images": len(labels)}
        if n_inst == 1:
            row["note"] = "closed world with one instance is trivial: a single candidate, nothing to confuse"
        if cfg.attribution_baseline:
            row["classifier"] = bl.run_baseline(cfg, instances, tests, real, unseen, n_inst, real_train_val)
        out[str(n_inst)] = row
    return {"rule": "registry", "alpha": cfg.alpha, "results": out, "paper": PAPER["attribution"],
            "paper_table3": PAPER["table3"], "target": 0.99, "definitions": ATTRIBUTION_DEFINITIONS,
            "baseline_classifier": (f"{bl.METHOD} (Yu 2019) over {{real, instances}}; learning rate chosen on the "
                                    "validation split" if cfg.attribution_baseline else
                                    "not run (attribution_baseline = False)")}


def _unseen_instances(cfg: Yu2022Config, model: Any, known: torch.Tensor, n_inst: int) -> dict[str, torch.Tensor]:
    """Images of ``attribution_unseen`` instances whose codes are neither registered nor trained on."""
    if cfg.attribution_unseen <= 0:
        return {}
    codes = _codes(cfg.attribution_unseen, model.code_bits, "attribution-unseen", n_inst, cfg.seed)
    seen = {bytes(c.to(torch.uint8).tolist()) for c in known}
    out = {}
    for j, c in enumerate(codes):
        if bytes(c.to(torch.uint8).tolist()) in seen:  # only possible with very short test codes
            continue
        g = torch.Generator().manual_seed(derive_seed("att-unseen", j, n_inst, cfg.seed))
        out[f"unseen-{j}"] = model.instance(c.to(torch.uint8)).sample(cfg.attribution_n, g)
    return out


def exp_false_attribution(cfg: Yu2022Config, model: Any) -> dict[str, Any]:
    from genattr.data import load_fashion_mnist
    from genattr.watermark.fingerprint_index import (
        FingerprintIndex,
        fixed_threshold,
        p_value,
        random_codes,
        registry_threshold,
    )

    d = model.code_bits
    real = load_fashion_mnist("test").to_model(32)[: cfg.n_real]
    bits = model.decode(real).numpy()
    idx = FingerprintIndex(d)
    t = time.perf_counter()
    idx.add_many([f"u{i}" for i in range(cfg.registry_size)], random_codes(cfg.registry_size, d, cfg.seed + 21),
                  check_codes=False)
    t_build = time.perf_counter() - t
    _, k = idx.nearest(bits, 1)
    k = k[:, 0]
    res: dict[str, Any] = {}
    for rule, thr in (("registry", registry_threshold(d, cfg.registry_size, cfg.alpha)), ("fixed", fixed_threshold(d))):
        pred = cfg.registry_size * float(p_value(thr, d)) if thr <= d else 0.0
        n9 = 10**9
        thr9 = registry_threshold(d, n9, cfg.alpha) if rule == "registry" else thr
        res[rule] = {"threshold_bits": thr, "measured_rate": float((k >= thr).mean()),
                     "predicted_rate_uniform_bits": min(pred, 1.0),
                     "extrapolated_1e9": {"threshold_bits": thr9,
                                          "predicted_rate": min(n9 * float(p_value(min(thr9, d), d)), 1.0)
                                          if thr9 <= d else 0.0}}
    ones = bits.mean(0)
    return {"n_real": int(bits.shape[0]), "registry_size": cfg.registry_size, "registry_build_seconds": t_build,
            "rules": res, "nearest_matched_bits": {"mean": float(k.mean()), "max": int(k.max())},
            "decoded_bit_bias": {"min_p1": float(ones.min()), "max_p1": float(ones.max()),
                                 "distinct_codes": len({b.tobytes() for b in bits})},
            "target": {"measured": 0.01, "predicted": 1e-6}}


def exp_robustness(cfg: Yu2022Config, model: Any) -> dict[str, Any]:
    from genattr.perturbations import perturbation_from_config

    variants = {"original": model}
    for attack in ROBUSTNESS_GRID:
        d = cfg.models_dir() / f"{cfg.variant}-immune-{attack}"
        if d.is_dir():
            variants[f"immune-{attack}"] = _load(cfg, d.name)
    codes = _codes(cfg.robustness_n, model.code_bits, "robustness", cfg.seed)
    curves: dict[str, Any] = {}
    for vname, m in variants.items():
        curves[vname] = {}
        for attack, grid in ROBUSTNESS_GRID.items():
            if vname.startswith("immune-") and vname != f"immune-{attack}":
                continue
            pts = []
            for label, pcfg in grid:
                p = perturbation_from_config(json.loads(json.dumps(pcfg)))
                g = torch.Generator().manual_seed(derive_seed("robust", attack, label))
                k, _ = matched_bits(m, codes, seed=cfg.seed + 5, perturb=lambda x, p=p, g=g: p(x, g))
                pts.append({"strength": label, "bit_accuracy": float(k.mean() / m.code_bits)})
            curves[vname][attack] = pts
    return {"n": cfg.robustness_n, "curves": curves, "accept": 0.75,
            "note": "strengths of Fig. 5 scaled to 32 px; immunised variants are separate trained models"}


def exp_table2(cfg: Yu2022Config, model: Any) -> dict[str, Any]:
    from genattr.watermark.fingerprint import bit_accuracy_on_fresh_codes
    from genattr.watermark.fingerprint_training import FingerprintTrainConfig, train_fingerprint

    base = cfg.baseline
    if not Path(base).is_dir():
        from genattr import zoo

        base = str(zoo.verify(base))
    rows = {}
    for size in cfg.table2_sizes:
        tc = FingerprintTrainConfig(code_bits=model.code_bits, warm_start=base, code_pool=size, epochs=1,
                                    steps_per_epoch=cfg.table2_steps, eval_codes=500, seed=cfg.seed,
                                    threads=cfg.threads)
        res = train_fingerprint(tc, Path(cfg.table2_dir) / str(size or "fresh"), progress=True)
        m = res.model
        if size is None:
            train_acc = bit_accuracy_on_fresh_codes(m, cfg.table2_eval, seed=7)["bit_accuracy"]
        else:
            from genattr.watermark.fingerprint import sample_codes

            pool = sample_codes(size, tc.code_bits, torch.Generator().manual_seed(tc.seed + 99))
            pick = torch.randint(0, size, (cfg.table2_eval,), generator=torch.Generator().manual_seed(8))
            k, _ = matched_bits(m, pool[pick], seed=9)
            train_acc = float(k.mean() / m.code_bits)
        test_acc = bit_accuracy_on_fresh_codes(m, cfg.table2_eval, seed=10)["bit_accuracy"]
        rows[str(size or "fresh")] = {"train_bit_accuracy": train_acc, "test_bit_accuracy": test_acc,
                                      "paper": PAPER["table2"].get(size or "fresh")}
    return {"steps": cfg.table2_steps, "warm_start": cfg.baseline, "runs": cfg.table2_dir, "results": rows}


def reproduce_yu2022(config: Yu2022Config | dict[str, Any] | None, out_dir: str | Path) -> dict[str, Any]:
    """Run the selected experiments; returns {experiment: summary} and writes ``out_dir``."""
    cfg = config if isinstance(config, Yu2022Config) else Yu2022Config(**(config or {}))
    unknown = [e for e in cfg.experiments if e not in EXPERIMENTS]
    if unknown:
        raise ConfigError(f"unknown yu2022 experiments {unknown}; known: {', '.join(EXPERIMENTS)}")
    if "attribution" in cfg.experiments and cfg.attribution_baseline:
        from genattr.evaluation.yu2022.baseline import check_baseline_config

        check_baseline_config(cfg)  # before hours of other experiments
    out = Path(out_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    results: dict[str, Any] = {}
    try:
        model = _load(cfg).eval()
        for name in cfg.experiments:
            t = time.perf_counter()
            fn = globals()[f"exp_{name}"]
            summary = fn(cfg, model)
            summary["seconds"] = round(time.perf_counter() - t, 1)
            summary["config"] = json.loads(json.dumps(asdict(cfg)))
            _write(out, name, summary)
            results[name] = summary
    finally:
        torch.set_num_threads(threads)
    from genattr.evaluation.yu2022.report import write_report

    write_report(out)
    return results


__all__ = ["ATTRIBUTION_DEFINITIONS", "COMMAND", "DEFAULT_EXPERIMENTS", "EXPERIMENTS", "ROBUSTNESS_GRID",
           "Yu2022Config", "matched_bits", "reproduce_yu2022", "zoo_fd_fn"]
