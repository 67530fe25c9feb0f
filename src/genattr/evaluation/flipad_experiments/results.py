"""FLIPAD reproduction: result persistence (rows.csv, timings, provenance) and summaries."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from genattr.evaluation.flipad_experiments.config import ROW_FIELDS, FlipadConfig

# -- report ------------------------------------------------------------------------------------------------------


def save_experiment(directory: Path, rows: list[dict[str, Any]], timings: list[dict[str, Any]] | None,
                    methods: Sequence[str], config: FlipadConfig | None, command: str | None,
                    provenance: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Write an experiment's rows, replacing only the rows of the methods just run: rerunning one method
    (``--set methods=flipad``) keeps the others' results. ``provenance.json`` records, per method, the
    command and settings its rows came from (the report prints it; ``provenance`` gives them ready-made, as
    when merging). Returns all rows now on disk."""
    directory.mkdir(parents=True, exist_ok=True)
    ran = set(methods)
    old = read_rows(directory / "rows.csv") if (directory / "rows.csv").is_file() else []
    merged = [r for r in old if r["method"] not in ran] + rows
    _write_rows(directory, merged)
    if timings is not None:
        tpath = directory / "timings.json"
        old_t = json.loads(tpath.read_text()) if tpath.is_file() else []
        tpath.write_text(json.dumps([t for t in old_t if t["method"] not in ran] + timings, indent=2) + "\n")
    ppath = directory / "provenance.json"
    prov = json.loads(ppath.read_text()) if ppath.is_file() else {}
    prov.update({m: {"command": command, "settings": asdict(config)} for m in methods} if provenance is None
                else {m: provenance[m] for m in methods})
    ppath.write_text(json.dumps(prov, indent=2, default=list) + "\n")
    return merged



def _write_rows(directory: Path, rows: list[dict[str, Any]], name: str = "rows.csv") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(ROW_FIELDS), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open() as fh:
        return [{**r, "run": int(r["run"]), "value": float(r["value"]), "n": int(r["n"])} for r in csv.DictReader(fh)]


def summarize(rows: Sequence[dict[str, Any]], metric: str = "accuracy", *, by_other: bool = False
              ) -> dict[tuple[str, ...], tuple[float, float, int]]:
    """(method, model[, other], perturbation) → (mean, std, runs): per run the mean over G' (Table 1), then
    mean ± std over runs."""
    per_run: dict[tuple[str, ...], dict[int, list[float]]] = {}
    for r in rows:
        if r["metric"] != metric:
            continue
        key = (r["method"], r["model"], *((r["other"],) if by_other else ()), r["perturbation"])
        per_run.setdefault(key, {}).setdefault(r["run"], []).append(r["value"])
    out = {}
    for key, runs in per_run.items():
        vals = [float(np.mean(v)) for v in runs.values()]
        out[key] = (float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, len(vals))
    return out
