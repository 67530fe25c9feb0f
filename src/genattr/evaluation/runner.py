"""The evaluation runner: attributor × named sources × perturbation grid → tidy table + plots.

One row per (source, perturbation, metric), columns :data:`COLUMNS`. Source ``"all"`` rows pool every
source. Every random choice (which images each source yields, every perturbation draw) comes from a
generator seeded by ``(seed, source, perturbation)``, so a run is reproducible given ``seed`` (and does not
depend on ``batch_size``), and adding a source or grid entry does not change the draws of the others.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genattr import UNKNOWN
from genattr.errors import ConfigError
from genattr.metrics import functional as MF
from genattr.perturbations.grids import GridEntry, as_grid
from genattr.perturbations.transforms import Perturbation, select_params
from genattr.sampling import Source, derive_seed, draw

COLUMNS = ("source", "label", "perturbation", "family", "strength", "metric", "value", "n", "ci_low", "ci_high")
ALL = "all"


def _clean(v: Any) -> Any:
    """JSON-safe: NaN/inf → None, tensors/arrays → lists."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, torch.Tensor | np.ndarray):
        return _clean(v.tolist())
    if isinstance(v, np.generic):
        return _clean(v.item())
    if isinstance(v, Mapping):
        return {str(k): _clean(e) for k, e in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(e) for e in v]
    return v


def slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", key).strip("_") or "none"


@dataclass
class EvaluationResult:
    """Rows of the tidy table plus what the plots need (confusion matrices, ROC curves) per perturbation."""

    rows: list[dict[str, Any]]
    metadata: dict[str, Any]
    confusion: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)
    roc: dict[str, dict[str, tuple[np.ndarray, np.ndarray, float]]] = field(default_factory=dict)

    def value(self, metric: str, *, source: str = ALL, perturbation: str = "none") -> float:
        for r in self.rows:
            if r["metric"] == metric and r["source"] == source and r["perturbation"] == perturbation:
                return float(r["value"])
        raise KeyError(f"no row for metric={metric!r}, source={source!r}, perturbation={perturbation!r}")

    def table(self, metric: str, *, source: str = ALL) -> dict[str, float]:
        """{perturbation key: value} for one metric and source, in grid order (one row of a paper table)."""
        return {r["perturbation"]: float(r["value"]) for r in self.rows
                if r["metric"] == metric and r["source"] == source}

    def to_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(COLUMNS), lineterminator="\n")
            w.writeheader()
            for r in self.rows:
                w.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else
                                (repr(v) if isinstance(v, float) else v)) for k, v in r.items()})
        return path

    def to_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_clean({"metadata": self.metadata, "rows": self.rows}), indent=2,
                                   allow_nan=False) + "\n")
        return path

    def write(self, out_dir: str | Path, *, plots: bool = True) -> dict[str, Path]:
        """``results.csv``, ``results.json`` and, with ``plots``, ``confusion_<key>.png`` / ``roc_<key>.png``."""
        from genattr.evaluation.plots import plot_confusion_matrix, plot_roc

        out = Path(out_dir)
        written = {"csv": self.to_csv(out / "results.csv"), "json": self.to_json(out / "results.json")}
        if plots:
            for key, (labels, cm) in self.confusion.items():
                true_rows = [i for i in range(len(labels)) if cm[i].sum() > 0]
                written[f"confusion:{key}"] = plot_confusion_matrix(
                    cm[true_rows], [labels[i] for i in true_rows], labels, out / f"confusion_{slug(key)}.png",
                    title=f"{self.metadata.get('attributor', {}).get('name') or 'attributor'} — {key}")
            for key, curves in self.roc.items():
                if curves:
                    written[f"roc:{key}"] = plot_roc(curves, out / f"roc_{slug(key)}.png", title=key)
        return written


def _progress(enabled: bool, console: Any = None):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), disable=not enabled, console=console, transient=False)


def evaluate(attributor: Any, sources: Mapping[str, Source],
             grid: str | Mapping[str, Perturbation] | Sequence[GridEntry] | None = "clean", *,
             n_samples: int | None = 256, labels: Mapping[str, str] | None = None, batch_size: int = 128,
             seed: int = 0, n_bootstrap: int = 0, confidence_level: float = 0.95,
             out_dir: str | Path | None = None, plots: bool = True, progress: bool = True,
             console: Any = None) -> EvaluationResult:
    """Evaluate a fitted attributor on every source under every perturbation of ``grid``.

    Args:
        attributor: fitted, with ``candidates_`` and ``attribute(x)`` (the attribution contract).
        sources: name → tensor / sampler / callable (see :mod:`genattr.sampling`).
        grid: a grid name (``genattr.perturbations.list_grids()``), ``{key: Perturbation}`` or entries.
        n_samples: images per source (tensor sources: at most this many; None = all of them).
        labels: the true label of each source: a candidate name or ``UNKNOWN`` (real data, unseen
            generators). Default: the source's own name if it is a candidate, else UNKNOWN.
        n_bootstrap: percentile-bootstrap resamples for ``ci_low``/``ci_high`` (0 = no intervals).
        out_dir: when given, writes CSV, JSON and (``plots``) figures there.
    """
    candidates = list(getattr(attributor, "candidates_", []) or [])
    if not candidates:
        raise ConfigError("evaluate needs a fitted attributor (with candidates_)")
    if not sources:
        raise ConfigError("evaluate needs at least one source")
    entries = as_grid(grid)
    labels = dict(labels or {})
    extra = set(labels) - set(sources)
    if extra:
        raise ConfigError(f"labels given for unknown sources: {sorted(extra)}")
    truth = {s: labels.get(s, s if s in candidates else UNKNOWN) for s in sources}
    bad = {s: t for s, t in truth.items() if t != UNKNOWN and t not in candidates}
    if bad:
        raise ConfigError(f"source labels must be candidates {candidates} or {UNKNOWN!r}: {bad}")
    if batch_size < 1:
        raise ConfigError("batch_size must be >= 1")

    # 1. Draw each source once, so every perturbation sees the same clean images.
    clean: dict[str, torch.Tensor] = {}
    for name, src in sources.items():
        g = torch.Generator().manual_seed(derive_seed(seed, "source", name))
        clean[name] = draw(src, n_samples, g)  # fixed chunking: independent of batch_size
        if clean[name].shape[0] == 0:
            raise ConfigError(f"source {name!r} yielded no images")

    rows: list[dict[str, Any]] = []
    confusion: dict[str, tuple[list[str], np.ndarray]] = {}
    roc: dict[str, dict[str, tuple[np.ndarray, np.ndarray, float]]] = {}
    cm_labels = [*candidates, UNKNOWN]
    total = sum(math.ceil(x.shape[0] / batch_size) for x in clean.values()) * len(entries)

    def ci(stat: Callable[..., float], *arrays: Any, key: str) -> tuple[float, float]:
        if n_bootstrap <= 0:
            return float("nan"), float("nan")
        r = MF.bootstrap_ci(stat, *arrays, n_resamples=n_bootstrap, confidence_level=confidence_level,
                            seed=derive_seed(seed, "bootstrap", key))
        return r.low, r.high

    def add(source: str, label: str, entry: GridEntry, metric: str, value: float, n: int,
            bounds: tuple[float, float] = (float("nan"), float("nan"))) -> None:
        rows.append({"source": source, "label": label, "perturbation": entry.key, "family": entry.family,
                     "strength": entry.strength, "metric": metric, "value": float(value), "n": int(n),
                     "ci_low": float(bounds[0]), "ci_high": float(bounds[1])})

    with _progress(progress, console) as bar:
        task = bar.add_task("evaluating", total=total)
        for entry in entries:
            all_true: list[str] = []
            all_pred: list[str] = []
            all_scores: list[torch.Tensor] = []
            for name, x in clean.items():
                bar.update(task, description=f"{entry.key} · {name}")
                g = torch.Generator().manual_seed(derive_seed(seed, "perturb", name, entry.key))
                # Draw the whole source's params at once, so results do not depend on batch_size.
                params = entry.transform.sample_params(x.shape[0], g)
                preds, scores = [], []
                for start in range(0, x.shape[0], batch_size):
                    xb = x[start:start + batch_size]
                    in_batch = torch.zeros(x.shape[0], dtype=torch.bool)
                    in_batch[start:start + batch_size] = True
                    with torch.no_grad():
                        xp = entry.transform.apply(xb, select_params(params, in_batch))
                    res = attributor.attribute(xp)
                    preds.extend(res.labels)
                    scores.append(torch.as_tensor(res.scores).detach().cpu().double())
                    bar.advance(task)
                t = truth[name]
                pred = np.array(preds, dtype=object)
                correct = (pred == t).astype(np.float64)
                unknown = (pred == UNKNOWN).astype(np.float64)
                key = f"{name}/{entry.key}"
                add(name, t, entry, "accuracy", correct.mean(), len(pred), ci(np.mean, correct, key=key + "/acc"))
                add(name, t, entry, "unknown_rate", unknown.mean(), len(pred),
                    ci(np.mean, unknown, key=key + "/unk"))
                all_true.extend([t] * len(preds))
                all_pred.extend(preds)
                all_scores.append(torch.cat(scores))
            y_true = np.array(all_true, dtype=object)
            y_pred = np.array(all_pred, dtype=object)
            s = torch.cat(all_scores).numpy()
            n = len(y_true)
            k = entry.key
            add(ALL, "", entry, "accuracy", MF.accuracy(y_true, y_pred), n,
                ci(MF.accuracy, y_true, y_pred, key=f"all/{k}/acc"))
            add(ALL, "", entry, "balanced_accuracy", MF.balanced_accuracy(y_true, y_pred), n,
                ci(MF.balanced_accuracy, y_true, y_pred, key=f"all/{k}/bacc"))
            add(ALL, "", entry, "unknown_rate", float(np.mean(y_pred == UNKNOWN)), n)
            confusion[k] = (cm_labels, MF.confusion_matrix(y_true, y_pred, labels=cm_labels))
            # One-vs-rest ROC of each candidate's score column (candidates with both classes present).
            curves: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
            for j, c in enumerate(candidates):
                pos = y_true == c
                if pos.any() and (~pos).any():
                    fpr, tpr, _ = MF.roc_curve(pos, s[:, j])
                    curves[c] = (fpr, tpr, MF.roc_auc(pos, s[:, j]))
            roc[k] = curves
            if curves:
                cols = [candidates.index(c) for c in curves]

                def macro_auc(yt: np.ndarray, sc: np.ndarray, cols: list[int] = cols) -> float:
                    vals = [MF.roc_auc(yt == candidates[j], sc[:, j]) for j in cols
                            if (yt == candidates[j]).any() and (yt != candidates[j]).any()]
                    if not vals:
                        raise ValueError("no candidate has both classes")
                    return float(np.mean(vals))

                add(ALL, "", entry, "roc_auc", float(np.mean([c[2] for c in curves.values()])), n,
                    ci(macro_auc, y_true, s, key=f"all/{k}/auc"))
                for c, (_, _, auc) in curves.items():
                    add(ALL, c, entry, f"roc_auc:{c}", auc, n)

    from genattr import __version__

    get_params = getattr(attributor, "get_params", None)
    thresholds = getattr(attributor, "thresholds_", None)
    metadata = {
        "genattr_version": __version__,
        "seed": seed, "n_samples": n_samples, "batch_size": batch_size, "n_bootstrap": n_bootstrap,
        "confidence_level": confidence_level,
        "attributor": {"class": type(attributor).__name__, "name": getattr(attributor, "name", ""),
                       "params": get_params() if callable(get_params) else {}, "candidates": candidates,
                       "thresholds": thresholds},
        "sources": {name: {"label": truth[name], "n": int(clean[name].shape[0]),
                           "kind": "tensor" if isinstance(src, torch.Tensor) else type(src).__name__}
                    for name, src in sources.items()},
        "grid": [{"key": e.key, "family": e.family, "strength": e.strength, "config": e.transform.to_config()}
                 for e in entries],
        "columns": list(COLUMNS),
    }
    result = EvaluationResult(rows=rows, metadata=_clean(metadata), confusion=confusion, roc=roc)
    if out_dir is not None:
        result.write(out_dir, plots=plots)
    return result


__all__ = ["ALL", "COLUMNS", "EvaluationResult", "evaluate"]
