"""FLIPAD reproduction: the results README (tables beside the paper's) and merging result directories."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from genattr import REAL
from genattr import zoo as _zoo
from genattr.errors import DataError
from genattr.evaluation.flipad_experiments.config import ARCH_ORDER, COMMAND, EXPERIMENTS, METHODS, PAPER, FlipadConfig
from genattr.evaluation.flipad_experiments.results import _write_rows, read_rows, save_experiment, summarize


def _arch(model: str) -> int | None:
    for i, a in enumerate(ARCH_ORDER):
        if f"-{a}-" in f"-{model}-".replace("wgan_gp", "wgangp"):
            return i
    return None


def _fmt(v: tuple[float, float, int] | None) -> str:
    if v is None:
        return "–"
    return f"{v[0]:.2f} ± {v[1]:.2f}" if v[2] > 1 else f"{v[0]:.2f}"


def _paper(table: str, method: str, model: str) -> str:
    i = _arch(model)
    entry = PAPER.get(table, {}).get(method)
    if entry is None or i is None:
        return "–"
    return f"{entry[0][i]:.2f} / {entry[1][i]:.2f}"


def _table(rows: Sequence[dict[str, Any]], table: str, metric: str, title: str) -> list[str]:
    s = summarize(rows, metric)
    models = sorted({k[1] for k in s}, key=lambda m: (_arch(m) or 0, m))
    methods = [m for m in METHODS if any(k[0] == m for k in s)]
    avg = len(models) > 1  # the targets are averages over G: show them
    lines = [f"### {title}", "", "| method | " + " | ".join(f"{m} (ours) | paper CelebA / LSUN" for m in models)
             + (" | mean over G (ours) | paper CelebA / LSUN |" if avg else " |"),
             "|---|" + "---|---|" * (len(models) + avg)]
    for meth in methods:
        cells = []
        for m in models:
            cells += [_fmt(s.get((meth, m, "none"))), _paper(table, meth, m)]
        if avg:
            ours = [s[(meth, m, "none")][0] for m in models if (meth, m, "none") in s]
            entry, idx = PAPER.get(table, {}).get(meth), [_arch(m) for m in models]
            cells += [f"{np.mean(ours):.2f}" if len(ours) == len(models) else "–",
                      f"{np.mean([entry[0][i] for i in idx]):.2f} / {np.mean([entry[1][i] for i in idx]):.2f}"
                      if entry is not None and None not in idx else "–"]
        lines.append(f"| {meth} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _detail(rows: Sequence[dict[str, Any]]) -> list[str]:
    s = summarize(rows, "accuracy", by_other=True)
    others = sorted({k[2] for k in s}, key=lambda o: (o != REAL, _arch(o) or 0))
    lines = ["### Table 8-style detail: accuracy of G vs each G′", "",
             "| method | G | " + " | ".join(others) + " |", "|---|---|" + "---|" * len(others)]
    for meth in METHODS:
        for g in sorted({k[1] for k in s if k[0] == meth}, key=lambda m: (_arch(m) or 0, m)):
            lines.append(f"| {meth} | {g} | " + " | ".join(_fmt(s.get((meth, g, o, "none"))) for o in others) + " |")
    return [*lines, ""]


def _table3(rows: Sequence[dict[str, Any]]) -> list[str]:
    per: dict[tuple[str, str], dict[int, list[float]]] = {}
    for r in rows:
        if r["metric"] == "accuracy":
            per.setdefault((r["method"], r["perturbation"]), {}).setdefault(r["run"], []).append(r["value"])
    keys = sorted({k[1] for k in per}, key=lambda k: list(PAPER["table3"]["flipad"]).index(k)
                  if k in PAPER["table3"]["flipad"] else 99)
    lines = ["### Table 3: immunised, accuracy averaged over all G, G′ (ours; paper CelebA / LSUN)", "",
             "| method | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for meth in METHODS:
        if not any(k[0] == meth for k in per):
            continue
        cells = []
        for k in keys:
            runs = per.get((meth, k))
            ours = "–" if not runs else _fmt((float(np.mean([np.mean(v) for v in runs.values()])),
                                              float(np.std([np.mean(v) for v in runs.values()], ddof=1))
                                              if len(runs) > 1 else 0.0, len(runs)))
            p = PAPER["table3"].get(meth, {}).get(k)
            cells.append(f"{ours} ({p[0]:.2f} / {p[1]:.2f})" if p else ours)
        lines.append(f"| {meth} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _table6(timings: list[dict[str, Any]]) -> list[str]:
    keys = ("sampling_s", "features_s", "deep_sad_s", "fingerprint_s", "fit_s", "calibrate_s", "score_s_per_1k",
            "end_to_end_s")
    lines = ["### Table 6: wall-clock (minutes; mean over runs and G; CPU, `threads` in Settings)", "",
             "| method | " + " | ".join(keys) + " | paper (A40, 1000 samples, CelebA / LSUN) |",
             "|---|" + "---|" * (len(keys) + 1)]
    for meth in METHODS:
        ts = [t for t in timings if t["method"] == meth]
        if not ts:
            continue
        cells = [f"{np.mean([t[k] for t in ts if k in t]) / 60:.2f}" if any(k in t for t in ts) else "–"
                 for k in keys]
        paper = "; ".join(f"{k} {v[0]} / {v[1]}" for k, v in PAPER["table6"].get(meth, {}).items())
        lines.append(f"| {meth} | " + " | ".join(cells) + f" | {paper} |")
    return [*lines, "", "Features of FLIPAD = final-layer inversion of all training images; paper's 'Inverting "
            "Samples' of SM-Inv corresponds to our score time.", ""]


def write_report(out: Path, config: FlipadConfig, command: str = COMMAND) -> Path:
    """Rebuild ``README.md`` and ``results.csv`` from every experiment directory present in ``out``."""
    lines = ["# FLIPAD (Laszkiewicz et al., ICML 2024) on the genattr zoo (Fashion-MNIST, 32×32)", "",
             f"Command: `{command}`", "", _zoo.provenance(), "",
             "Settings: " + json.dumps(asdict(config), default=list), "",
             "Ours: mean ± std over runs (%); paper: CelebA / LSUN (64×64). Accuracy at the G.1 threshold "
             f"(fnr = {config.target_fnr}).", ""]
    all_rows: list[dict[str, Any]] = []
    commands: dict[str, list[str]] = {}
    for exp in EXPERIMENTS:
        ppath = out / exp / "provenance.json"
        for method, p in (json.loads(ppath.read_text()) if ppath.is_file() else {}).items():
            commands.setdefault(p["command"], []).append(f"{exp}/{method}")
    if len(commands) > 1:
        lines += ["Rows come from these commands:", ""] + [f"- `{c}`: {', '.join(w)}" for c, w in commands.items()] \
            + [""]
    if (out / "table1" / "rows.csv").is_file():
        rows = read_rows(out / "table1" / "rows.csv")
        all_rows += rows
        lines += _table(rows, "table1", "accuracy", "Table 1: single-model attribution accuracy (avg over G′)")
        lines += _table(rows, "table9", "auc", "Table 9: AUC (avg over G′)")
        lines += _detail(rows)
        tpath = out / "table1" / "timings.json"
        if tpath.is_file():
            lines += _table6(json.loads(tpath.read_text()))
        figs = sorted((out / "figures").glob("fig4_*.png")) if (out / "figures").is_dir() else []
        lines += ["### Fig. 4-style mean reconstructed activations", ""] + \
            [f"![{p.stem}](figures/{p.name})" for p in figs] + [""]
    if (out / "table2" / "rows.csv").is_file():
        rows = read_rows(out / "table2" / "rows.csv")
        all_rows += rows
        lines += _table(rows, "table2", "accuracy", "Table 2: G = dcgan-s0 vs dcgan-s1..s4 (paper: DCGAN column)")
        lines += _detail(rows)
    if (out / "table3" / "rows.csv").is_file():
        rows = read_rows(out / "table3" / "rows.csv")
        all_rows += rows
        lines += _table3(rows)
    _write_rows(out, all_rows, "results.csv")
    readme = out / "README.md"
    readme.write_text("\n".join(lines) + "\n")
    return readme


def merge_results(src: str | Path, out: str | Path, config: FlipadConfig | None = None) -> Path:
    """Copy the methods found in another results directory (e.g. one run in parallel with ``--out``) into
    ``out``, replacing those methods' rows, timings and provenance there; rebuilds the report."""
    src, out = Path(src), Path(out)
    found = False
    for exp in EXPERIMENTS:
        d = src / exp
        if not (d / "rows.csv").is_file() or not (d / "provenance.json").is_file():
            continue
        found = True
        rows = read_rows(d / "rows.csv")
        prov = json.loads((d / "provenance.json").read_text())
        methods = sorted({r["method"] for r in rows})
        missing = [m for m in methods if m not in prov]
        if missing:
            raise DataError(f"{d}: rows of {missing} have no provenance")
        tpath = d / "timings.json"
        timings = json.loads(tpath.read_text()) if tpath.is_file() else None
        save_experiment(out / exp, rows, None if timings is None else [t for t in timings if t["method"] in methods],
                        methods, None, None, provenance=prov)
    if not found:
        raise DataError(f"{src}: no experiment results (table1/rows.csv, …) to merge")
    return write_report(out, config or FlipadConfig(), "see the list of commands below")
