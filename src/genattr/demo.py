"""`genattr demo`: the end-to-end tour on the shipped zoo: verify and sample every model, write grids, a
class-histogram figure and a short markdown report; then attribute fresh zoo samples with the shipped
Yu et al. 2019 attribution network (skipped, with a line saying so, when it is not shipped)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table


def run_demo(out: str | Path, *, n: int = 64, seed: int = 0, console: Console | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genattr import zoo
    from genattr.data import FMNIST_CLASSES, save_png

    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    man = zoo.manifest()
    clf = zoo.load_classifier()
    rows = []
    table = Table(title=f"zoo samples ({n} per model, seed {seed})")
    for col in ("model", "arch", "FD (manifest)", "top class", "grid"):
        table.add_column(col)
    hist = {}
    for name in zoo.names():
        g = zoo.load(name)  # verifies sha256
        x = g.sample(n, torch.Generator().manual_seed(seed))
        grid = save_png(x, out / "grids" / f"{name}.png", scale=2)
        counts = torch.bincount(clf.predict(x), minlength=10).tolist()
        hist[name] = counts
        top = FMNIST_CLASSES[max(range(10), key=counts.__getitem__)]
        fd = man["models"][name].get("quality", {}).get("fd")
        rows.append({"model": name, "arch": man["models"][name]["arch"], "fd": fd, "class_counts": counts,
                     "grid": str(grid.relative_to(out))})
        table.add_row(name, rows[-1]["arch"], f"{fd:.2f}" if fd is not None else "-", top, rows[-1]["grid"])
    console.print(table)

    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(len(hist), 1)
    for i, (name, counts) in enumerate(hist.items()):
        ax.bar([c + i * width for c in range(10)], counts, width=width, label=name)
    ax.set_xticks([c + 0.4 for c in range(10)], FMNIST_CLASSES, rotation=30, ha="right")
    ax.set_ylabel("samples (classifier prediction)")
    ax.set_title("What each zoo generator draws")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "class_histogram.png", dpi=100)
    plt.close(fig)

    attribution = attribution_step(n=min(n, 16), seed=seed, console=console)

    seconds = time.perf_counter() - t0
    ref = man.get("quality_reference", {}).get("real_train_vs_real_test")
    lines = ["# genattr demo", "", f"{len(rows)} zoo generators verified (sha256) and sampled, {n} images each, "
             f"seed {seed}, in {seconds:.1f} s.", "",
             f"FD = Fréchet distance to real test images in classifier features (real vs real: {ref:.2f})."
             if ref is not None else "", "", "| model | arch | FD | samples |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['arch']} | {r['fd']:.2f} | ![]({r['grid']}) |" if r["fd"] is not None else
              f"| {r['model']} | {r['arch']} | - | ![]({r['grid']}) |" for r in rows]
    lines += ["", "![class histogram](class_histogram.png)", ""]
    if attribution is not None:
        lines += ["## Attribution with learned GAN fingerprints (Yu et al. 2019)", "",
                  f"Shipped model `{attribution['model']}` on {attribution['n']} fresh images per source "
                  "(open-set thresholds from its manifest).", "",
                  "| source | correct | UNKNOWN | most often predicted |", "| --- | --- | --- | --- |"]
        lines += [f"| {r['source']} | {r['correct']}/{r['n']} | {r['unknown']} | {r['top']} |"
                  for r in attribution["rows"]]
        lines.append("")
    report = out / "report.md"
    report.write_text("\n".join(lines))
    (out / "report.json").write_text(json.dumps({"seconds": seconds, "n": n, "seed": seed, "models": rows,
                                                 "attribution": attribution}, indent=2))
    return report


def attribution_step(*, n: int, seed: int, console: Console, models_dir: str | Path | None = None,
                     model: str = "architectures") -> dict | None:
    """Classify fresh samples of each candidate of a shipped yu2019 attribution net (8-bit quantised, as
    PNGs would be) plus real test images; None (and one line) when the net is not shipped."""
    from collections import Counter

    from genattr import zoo
    from genattr.data import load_fashion_mnist, to_model, to_uint8
    from genattr.errors import GenattrError
    from genattr.evaluation.sources import derive_seed
    from genattr.evaluation.yu2019 import REAL, load_shipped

    if models_dir is None:  # models/ of the source checkout, next to zoo/
        models_dir = Path(__file__).resolve().parents[2] / "models" / "yu2019"
    try:
        att = load_shipped(model, Path(models_dir))
    except GenattrError as exc:
        console.print(f"[yellow]attribution step skipped:[/] no shipped yu2019 net ({exc})")
        return None
    table = Table(title=f"attribution with learned GAN fingerprints ({model}, {n} images per source)")
    for col in ("source", "correct", "UNKNOWN", "most often predicted"):
        table.add_column(col)
    rows = []
    for name in att.candidates_:
        try:
            if name == REAL:
                x = load_fashion_mnist("test").to_model(32)[:n]
            else:
                g = torch.Generator().manual_seed(derive_seed(seed, "demo", name))
                x = to_model(to_uint8(zoo.load(name).sample(n, g)))
        except GenattrError as exc:
            console.print(f"[yellow]attribution step: skipping {name}:[/] {exc}")
            continue
        labels = att.predict(x)
        top, _ = Counter(labels).most_common(1)[0]
        rows.append({"source": name, "n": len(labels), "correct": sum(lab == name for lab in labels),
                     "unknown": sum(lab == "UNKNOWN" for lab in labels), "top": top})
        table.add_row(name, f"{rows[-1]['correct']}/{len(labels)}", str(rows[-1]["unknown"]), top)
    console.print(table)
    return {"model": model, "n": n, "rows": rows}
