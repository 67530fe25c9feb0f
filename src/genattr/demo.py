"""`genattr demo`: the end-to-end tour on the shipped zoo: verify and sample every model, write grids, a
class-histogram figure and a short markdown report; then attribute fresh zoo samples with the shipped
Yu et al. 2019 attribution network and ask the shipped FLIPAD detector (Laszkiewicz et al. 2024) "was this
made by fmnist-dcgan-s0?"; key a user's model (Kim et al. 2021); issue a demo user a fingerprinted instance of the
shipped Yu et al. 2022 model and decode its images; finally ask the one-call pipeline (``genattr.attribute``, from a
throwaway registry of everything shipped) about a handful of images from every kind of source, and print the
command that starts the service (each step skipped, with a line saying so, when its model is not shipped)."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genattr.paths import models_dir as _models_dir


def _demo_images(name: str, n: int, seed: int) -> torch.Tensor:
    """n real test images, or n fresh 8-bit-quantised samples of a zoo model (as PNGs would be)."""
    from genattr import zoo
    from genattr.data import load_fashion_mnist, to_model, to_uint8
    from genattr.sampling import derive_seed

    if name == "real":
        return load_fashion_mnist("test").to_model(32)[:n]
    g = torch.Generator().manual_seed(derive_seed(seed, "demo", name))
    return to_model(to_uint8(zoo.load(name).sample(n, g)))


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
    single = flipad_step(n=min(n, 16), seed=seed, console=console)
    keys = keys_step(out, seed=seed, console=console)
    fingerprint = fingerprint_step(out, seed=seed, console=console)
    unified = unified_step(out, seed=seed, console=console, fingerprint=fingerprint)

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
    if single is not None:
        lines += ["## Was it made by my model? FLIPAD (Laszkiewicz et al. 2024)", "",
                  f"Shipped detector for `{single['model']}` on {single['n']} fresh images per source "
                  f"(threshold from its manifest: {single['threshold']:.4g}, set at "
                  f"{100 * single['target_fnr']:g} % FNR).", "",
                  f"| source | accepted as {single['model']} |", "| --- | --- |"]
        lines += [f"| {r['source']} | {r['accepted']}/{r['n']} |" for r in single["rows"]]
        lines.append("")
        lines += [f"- {note}" for note in single.get("notes", [])]
        lines.append("")
    if keys is not None:
        lines += ["## Registry keys and keyed user models (Kim et al. 2021)", "",
                  "Three orthogonal, data-compliant keys issued for `fmnist-dcgan-s0`; user-000's model fine-tuned "
                  f"for a short demo run ({keys['finetune_seconds']:.0f} s), then the public linear verifier "
                  "sign(φᵀx) asked about 8-bit samples of that model and real test images:", "",
                  f"- user-000's samples attributed to user-000: {100 * keys['keyed_attributed']:.1f} %",
                  f"- real test images that fire no key: {100 * keys['real_unknown']:.1f} %", ""]
    lines += fingerprint_report(fingerprint) + unified_report(unified)
    report = out / "report.md"
    report.write_text("\n".join(lines))
    (out / "report.json").write_text(json.dumps({"seconds": seconds, "n": n, "seed": seed, "models": rows,
                                                 "attribution": attribution, "flipad": single, "keys": keys,
                                                 "fingerprint": fingerprint, "unified": unified},
                                                indent=2))
    console.print(f"start the service: [bold]{escape(serve_command(unified))}[/]", highlight=False, soft_wrap=True)
    return report


def keys_step(out: Path, *, seed: int, console: Console) -> dict | None:
    """Issue keys, fine-tune one user briefly and verify its samples and real images (Kim et al. 2021);
    None (and one line) when it cannot run here (e.g. no Fashion-MNIST)."""
    from genattr.errors import GenattrError
    from genattr.evaluation.kim2021.demo import keys_demo

    try:
        return keys_demo(out / "keys", seed=seed, log=lambda m: console.print(m, highlight=False, markup=False))
    except GenattrError as exc:
        from rich.markup import escape

        console.print(f"[yellow]keys step skipped:[/] {escape(str(exc))}", highlight=False)
        return None


def fingerprint_step(out: Path, *, seed: int, console: Console, models_dir: str | Path | None = None,
                     n: int = 16) -> dict | None:
    """Issue a demo user a fingerprinted instance of the shipped Yu et al. 2022 model, registered in a copy of the
    shipped index under ``out/fingerprint``, and decode its 8-bit samples and real test images; None (and one
    line) when no fingerprint model is shipped."""
    from genattr.errors import GenattrError
    from genattr.evaluation.yu2022.demo import fingerprint_demo

    try:
        res = fingerprint_demo(out / "fingerprint", shipped=models_dir, n=n, n_real=n, seed=seed,
                               log=lambda m: console.print(m, highlight=False, markup=False))
    except GenattrError as exc:
        console.print(f"[yellow]fingerprint step skipped:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return None
    for note in res["notes"]:
        console.print(f"[yellow]fingerprint step: skipping {escape(note)}[/]", highlight=False, soft_wrap=True)
    d = res["bits"]
    table = Table(title=escape(f"fingerprints: who made it? ({d} bits, {res['registered']} registered, accept "
                               f"k ≥ {res['threshold_bits']} of {d})"))
    for col in ("source", f"attributed to {res['user']}", "unknown", "another user", f"matched bits k of {d}",
                "p-value"):
        table.add_column(escape(col))
    for r in res["summary"]:
        table.add_row(escape(r["source"]), f"{r['attributed']}/{r['n']}", str(r["unknown"]), str(r["other"]),
                      f"{r['matched_min']}–{r['matched_max']}", f"{r['p_min']:.2g}–{r['p_max']:.2g}")
    console.print(table)
    return res


def fingerprint_report(res: dict | None) -> list[str]:
    if res is None:
        return []
    d = res["bits"]
    lines = ["## Fingerprinted instances (Yu et al. 2022)", "",
             f"`{res['user']}` was issued a {d}-bit instance of the shipped `{res['variant']}` model "
             f"({res['instance_ms']:.1f} ms) → `{res['instance']}`; its code was registered in a copy of the shipped "
             f"index (`{res['index']}`, {res['registered']} users; the shipped index is unchanged). The decoder "
             f"read 8-bit samples of the instance and real test images; the registry accepts k ≥ "
             f"{res['threshold_bits']} matched bits of {d} (N · P(Bin({d}, ½) ≥ k) ≤ {res['alpha']:g}).", "",
             f"| source | attributed to {res['user']} | unknown | another user | matched bits k of {d} | p-value |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['source']} | {r['attributed']}/{r['n']} | {r['unknown']} | {r['other']} | "
              f"{r['matched_min']}–{r['matched_max']} | {r['p_min']:.2g}–{r['p_max']:.2g} |" for r in res["summary"]]
    lines += [f"- skipped: {note}" for note in res["notes"]]
    return [*lines, ""]


def unified_step(out: Path, *, seed: int, console: Console, fingerprint: dict | None = None,
                 per_source: int = 4) -> dict | None:
    """The one-call answer (``genattr.attribute``'s pipeline, from a throwaway registry of everything shipped
    under ``out/unified``) for ``per_source`` images of every kind of source; None (and one line) when it
    cannot run."""
    from genattr.errors import GenattrError
    from genattr.unified.demo import unified_demo

    try:
        res = unified_demo(out / "unified", per_source=per_source, seed=seed, fingerprint=fingerprint)
    except GenattrError as exc:
        console.print(f"[yellow]unified step skipped:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return None
    for note in res["notes"]:
        console.print(f"[yellow]unified step: skipping {escape(note)}[/]", highlight=False, soft_wrap=True)
    table = Table(title=f"genattr.attribute: one answer per image ({per_source} images per source)")
    for col in ("source", "true answer", "genattr's answer", "confidence", "correct"):
        table.add_column(col)
    for r in res["rows"]:
        table.add_row(escape(r["source"]), escape(r["expected"]), escape(_answers(r["answers"])), _confidence(r),
                      f"{r['correct']}/{r['n']}")
    console.print(table)
    console.print(escape(unified_summary(res)), highlight=False, soft_wrap=True)
    return res


def _confidence(row: dict) -> str:
    lo, hi = min(v["confidence"] for v in row["verdicts"]), max(v["confidence"] for v in row["verdicts"])
    return f"{lo:.3f}" if f"{lo:.3f}" == f"{hi:.3f}" else f"{lo:.3f}–{hi:.3f}"


def _answers(answers: dict[str, int]) -> str:
    return ", ".join(a if k == 1 and len(answers) == 1 else f"{a} ×{k}" for a, k in answers.items())


def unified_summary(res: dict) -> str:
    k, n = res["correct"], res["total"]
    uk, un = res["unregistered_unknown"]
    cal = "calibrated (models/unified/calibration.json)" if res["calibrated"] else \
        "uncalibrated: threshold-only confidences are bounds"
    why = "" if res["calibrated"] or uk == un else (
        " Without a calibration the classifiers judge by their softmax alone, which can accept an unseen generator "
        "of a known architecture; the calibrated feature test rejects such images (docs/attribute.md; "
        "`python benchmarks/attribute_accuracy.py --ship` writes models/unified/calibration.json).")
    comps = _plural(len(res["components"]), "component")
    return (f"{k}/{n} images answered correctly ({100 * k / max(n, 1):.0f} %); the unregistered generator came back "
            f"unknown {uk}/{un}; {comps} ({cal}).{why} A handful of images illustrates, it does not measure: "
            "benchmarks/attribute_accuracy.py measures (docs/results/attribute/).")


def _plural(k: int, word: str) -> str:
    return f"{k} {word}" if k == 1 else f"{k} {word}s"


def unified_report(res: dict | None) -> list[str]:
    if res is None:
        return []
    extra = " plus the fingerprint step's instance" if any(r["kind"] == "fingerprint-instance" for r in res["rows"]) \
        else ""
    lines = ["## One question, one answer: `genattr.attribute`", "",
             f"The pipeline of `genattr attribute` and the service, loaded from a throwaway registry "
             f"(`{res['registry']}`) holding everything shipped (`import_shipped`){extra}, asked about "
             f"{res['per_source']} 8-bit images per source:", "",
             "| source | kind | true answer | genattr's answer | confidence | correct | decided by |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in res["rows"]:
        lines.append(f"| {r['source']} | {r['kind']} | {r['expected']} | {_answers(r['answers'])} | "
                     f"{_confidence(r)} | {r['correct']}/{r['n']} | "
                     f"{', '.join(f'{m} ×{c}' for m, c in r['decided_by'].items())} |")
    lines += ["", unified_summary(res), ""]
    lines += [f"- skipped: {note}" for note in res["notes"]]
    lines += ["", f"Start the service on this registry: `{serve_command(res)}` (the web page at "
              "http://127.0.0.1:8000/, API docs at /docs).", ""]
    return lines


def serve_command(unified: dict | None) -> str:
    """The command that starts the service: on the demo's registry when the unified step built one, else on the
    user's own registry (filled with the shipped models first)."""
    if unified is None:
        return "genattr registry import-shipped && genattr serve"
    return f"genattr serve --db {shlex.quote(unified['url'])}"


def attribution_step(*, n: int, seed: int, console: Console, models_dir: str | Path | None = None,
                     model: str = "architectures") -> dict | None:
    """Classify fresh samples of each candidate of a shipped yu2019 attribution net (8-bit quantised, as
    PNGs would be) plus real test images; None (and one line) when the net is not shipped."""
    from collections import Counter

    from genattr.attribution.shipping import load_shipped
    from genattr.errors import GenattrError

    models_dir = _models_dir("yu2019") if models_dir is None else models_dir
    try:
        att = load_shipped(model, Path(models_dir), rebuild="genattr reproduce yu2019 --paper-size --write-docs --ship")
    except GenattrError as exc:
        console.print(f"[yellow]attribution step skipped:[/] no shipped yu2019 net ({exc})")
        return None
    table = Table(title=f"attribution with learned GAN fingerprints ({model}, {n} images per source)")
    for col in ("source", "correct", "UNKNOWN", "most often predicted"):
        table.add_column(col)
    rows = []
    for name in att.candidates_:
        try:
            x = _demo_images(name, n, seed)
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


def flipad_step(*, n: int, seed: int, console: Console, models_dir: str | Path | None = None,
                model: str = "fmnist-dcgan-s0") -> dict | None:
    """Ask the shipped FLIPAD detector of ``model`` about fresh images of every zoo model and real images;
    None (and one line) when it is not shipped."""
    from genattr import zoo
    from genattr.attribution.shipping import load_shipped
    from genattr.errors import GenattrError

    models_dir = _models_dir("flipad") if models_dir is None else Path(models_dir)
    try:
        att = load_shipped(model, models_dir,
                           rebuild="genattr reproduce flipad --only table1 --paper-size --write-docs --ship")
    except GenattrError as exc:
        console.print(f"[yellow]FLIPAD step skipped:[/] no shipped detector ({exc})")
        return None
    entry = json.loads((Path(models_dir) / "manifest.json").read_text())["models"][model]
    name = att.candidates_[0]
    table = Table(title=f"FLIPAD: made by {name}? ({n} images per source)")
    for col in ("source", f"accepted as {name}"):
        table.add_column(col)
    rows = []
    for src in [name, "real", *[m for m in zoo.names() if m != name]]:
        try:
            labels = att.predict(_demo_images(src, n, seed))
        except GenattrError as exc:
            console.print(f"[yellow]FLIPAD step: skipping {src}:[/] {exc}")
            continue
        rows.append({"source": src, "n": len(labels), "accepted": sum(lab == name for lab in labels)})
        table.add_row(src, f"{rows[-1]['accepted']}/{len(labels)}")
    console.print(table)
    notes = flipad_notes(name, rows, entry)
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    return {"model": name, "n": n, "threshold": float(att.thresholds_[0]),
            "target_fnr": float(entry.get("target_fnr", float("nan"))), "rows": rows, "notes": notes}


# Zoo v1's Table 1 (docs/results/flipad/README.md, 2k + 2k, FNR 0.005): the variant's advantage over the paper's
# FLIPAD there; not yet re-measured on zoo v2 (the shipped detector's own test figures come from its manifest).
PAPER_FLIPAD_MEAN_V1, BETTER_FLIPAD_MEAN_V1 = 82.74, 94.74


def flipad_notes(model: str, rows: list[dict], entry: dict, *, threshold: float = 0.25) -> list[str]:
    """Why the detector accepted another generator's images, and what does better: one line per source it
    accepts more than ``threshold`` of, plus a pointer to the better variant when the shipped one is the
    paper's."""
    from genattr import zoo
    from genattr.errors import GenattrError

    try:
        models = zoo.manifest()["models"]
    except GenattrError:
        models = {}
    g = models.get(model, {})
    notes = []
    for r in rows:
        src = r["source"]
        if src in (model, "real") or r["n"] == 0 or r["accepted"] / r["n"] <= threshold:
            continue
        other = models.get(src, {})
        if g.get("seed") is not None and other.get("seed") == g.get("seed"):
            why = (f"{src} was trained from the same seed ({g['seed']}) as {model}: the same initial weights, so "
                   "after short training their final layers nearly coincide (cosine 0.87 in this zoo, "
                   "docs/flipad.md), and FLIPAD, which inverts the final layer, cannot tell their images apart. "
                   "Zoo v2 gives every model its own seed, which removes this twin.")
        else:
            why = (f"FLIPAD's one-class detector is trained against real images only and accepts generators "
                   f"whose final layers resemble {model}'s (docs/flipad.md, 'Why Table 1 is not met').")
        notes.append(f"the detector accepted {r['accepted']}/{r['n']} images of {src}. {why}")
    variant = entry.get("params", {})
    if notes and variant.get("data_term", "clipped") != "censored":
        vs = entry.get("test_accuracy", {}).get("vs", {})
        measured = (f"{sum(vs.values()) / len(vs):.1f} % mean test accuracy against {', '.join(sorted(vs))} "
                    "(models/flipad/manifest.json)") if vs else "see models/flipad/manifest.json"
        notes.append(f"This shipped detector is the paper's FLIPAD ({measured}). The better variant, FLIPAD with a "
                     f"censored data term and a Gaussian second detector (on zoo v1: {BETTER_FLIPAD_MEAN_V1:.1f} % "
                     f"vs the paper's {PAPER_FLIPAD_MEAN_V1:.1f} % mean over G), is the default of "
                     f"`genattr flipad fit --generator {model} --out DIR`.")
    return notes
