"""Table 3's learned baseline: our Yu et al. (2019) attribution network trained on the fingerprinted instances.

The paper compares its fingerprint lookup with the classifier of Yu, Davis & Fritz (ICCV 2019) over {real,
GAN 1..N}. Here the N sources are N instances of the one fingerprint model, and the classifier is our
``gan-fingerprint-classifier`` with the Yu 2019 reproduction's architecture (width 8, 512-d fingerprint,
BatchNorm; batch 64, Adam with a cosine schedule).

Data, per instance count N (all images 8-bit quantised, as in the Yu 2019 reproduction — real images are
8-bit, so unquantised fakes could be told apart by quantisation alone):

* train / validation: ``baseline_train_per_source`` + ``baseline_val_per_source`` images of each instance from
  its own seed stream (disjoint latents from the test images), and the same numbers of real images drawn from
  the Fashion-MNIST *train* split;
* test: 8-bit copies of exactly the images the fingerprint attributor is scored on (same latents), and the same
  real images from the Fashion-MNIST *test* split.

The learning rate is chosen among ``baseline_lrs`` by accuracy on the validation split (all N + 1 classes);
the test images are never seen before the chosen model is scored.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from genattr import REAL, UNKNOWN
from genattr.errors import ConfigError
from genattr.sampling import derive_seed

METHOD = "gan-fingerprint-classifier"


def check_baseline_config(cfg: Any) -> None:
    """Refuse settings the baseline cannot run with (before any experiment spends time)."""
    for key in ("baseline_train_per_source", "baseline_val_per_source", "baseline_epochs"):
        v = getattr(cfg, key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{key} must be a positive integer, got {v!r}")
    lrs = cfg.baseline_lrs
    if not isinstance(lrs, Sequence) or not lrs or not all(isinstance(x, int | float) and x > 0 for x in lrs):
        raise ConfigError(f"baseline_lrs must be a non-empty list of positive learning rates, got {lrs!r}")
    if not isinstance(cfg.attribution_unseen, int) or cfg.attribution_unseen < 0:
        raise ConfigError(f"attribution_unseen must be a non-negative integer, got {cfg.attribution_unseen!r}")


def real_train_val(cfg: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Real training and validation images from the Fashion-MNIST train split (the test split is for testing)."""
    from genattr.data import load_fashion_mnist, to_model

    pool = load_fashion_mnist("train").images
    n_tr, n_val = cfg.baseline_train_per_source, cfg.baseline_val_per_source
    if n_tr + n_val > pool.shape[0]:
        raise ConfigError(f"baseline_train_per_source + baseline_val_per_source = {n_tr + n_val} exceeds the "
                          f"{pool.shape[0]} real training images")
    g = torch.Generator().manual_seed(derive_seed("yu2022-baseline", "real", cfg.seed))
    idx = torch.randperm(pool.shape[0], generator=g)[:n_tr + n_val].numpy()
    x = to_model(pool[idx], size=32)  # only the picked images: converting all 60 000 costs ~250 MB
    return x[:n_tr], x[n_tr:]


def instance_train_val(cfg: Any, instances: Mapping[str, Any], n_inst: int
                       ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Each instance's training and validation images: a seed stream of their own, never the test stream."""
    from genattr.data import quantize_8bit

    n_tr, n_val = cfg.baseline_train_per_source, cfg.baseline_val_per_source
    train, val = {}, {}
    for i, (name, inst) in enumerate(instances.items()):
        g = torch.Generator().manual_seed(derive_seed("yu2022-baseline", "train", i, n_inst, cfg.seed))
        x = quantize_8bit(inst.sample(n_tr + n_val, g))
        train[name], val[name] = x[:n_tr], x[n_tr:]
    return train, val


def _accuracy(att: Any, data: Mapping[str, torch.Tensor]) -> float:
    ok = total = 0
    for name, x in data.items():
        labels = att.predict(x)
        ok += sum(lab == name for lab in labels)
        total += len(labels)
    return ok / total


def select_classifier(train: Mapping[str, torch.Tensor], val: Mapping[str, torch.Tensor], *, epochs: int,
                      lrs: Sequence[float], seed: int, progress: bool = False) -> tuple[Any, dict[str, Any]]:
    """One classifier per learning rate, fitted on ``train``; the one with the best accuracy on ``val`` (ties:
    the first listed) and the selection record. Only ``val`` decides: no test image is involved."""
    from genattr.attribution import create_attributor

    best, best_acc, tried = None, -1.0, []
    t0 = time.perf_counter()
    for lr in lrs:
        att = create_attributor(METHOD, epochs=epochs, lr=float(lr), seed=seed)
        att.fit(dict(train), progress=progress)
        acc = _accuracy(att, val)
        tried.append({"lr": float(lr), "val_accuracy": acc, "train_accuracy": att.train_log_["accuracy"][-1]
                      if att.train_log_["accuracy"] else None})
        if acc > best_acc:
            best, best_acc = att, acc
    info = {"selected_lr": best.lr, "val_accuracy": best_acc, "tried": tried,
            "train_seconds": round(time.perf_counter() - t0, 1)}
    return best, info


def score_baseline(att: Any, test: Mapping[str, torch.Tensor], real: torch.Tensor,
                   unseen: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Closed world (instance images → their instance), open world (plus real images → REAL or UNKNOWN) and
    images of unseen instances (the share wrongly attributed to a trained instance)."""
    from genattr.data import quantize_8bit

    known = set(test)
    correct = total = called_real = 0
    for name, x in test.items():
        labels = att.predict(quantize_8bit(x))
        correct += sum(lab == name for lab in labels)
        called_real += sum(lab == REAL for lab in labels)
        total += len(labels)
    real_ok = sum(lab in (REAL, UNKNOWN) for lab in att.predict(real))
    out: dict[str, Any] = {"closed_world": correct / total, "open_world": (correct + real_ok) / (total + real.shape[0]),
                           "real_as_real": real_ok / real.shape[0], "instances_called_real": called_real / total}
    if unseen:
        labels = [lab for x in unseen.values() for lab in att.predict(quantize_8bit(x))]
        out["unseen_instances"] = {"attributed_to_known": sum(lab in known for lab in labels) / len(labels),
                                   "called_real": sum(lab == REAL for lab in labels) / len(labels),
                                   "images": len(labels)}
    return out


def run_baseline(cfg: Any, instances: Mapping[str, Any], test: Mapping[str, torch.Tensor], real: torch.Tensor,
                 unseen: Mapping[str, torch.Tensor], n_inst: int, real_train_val_images: tuple[torch.Tensor,
                 torch.Tensor] | None = None) -> dict[str, Any]:
    """Train (settings chosen on validation) and score the classifier on N = ``len(instances)`` instances."""
    r_tr, r_val = real_train_val_images if real_train_val_images is not None else real_train_val(cfg)
    i_tr, i_val = instance_train_val(cfg, instances, n_inst)
    att, sel = select_classifier({REAL: r_tr, **i_tr}, {REAL: r_val, **i_val}, epochs=cfg.baseline_epochs,
                                 lrs=cfg.baseline_lrs, seed=cfg.seed, progress=True)
    return score_baseline(att, test, real, unseen) | {
        "selection": sel, "classes": len(instances) + 1, "train_per_source": cfg.baseline_train_per_source,
        "val_per_source": cfg.baseline_val_per_source, "epochs": cfg.baseline_epochs}


__all__ = ["METHOD", "check_baseline_config", "instance_train_val", "real_train_val", "run_baseline",
           "score_baseline", "select_classifier"]
