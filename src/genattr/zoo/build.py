"""Rebuild the zoo from its recipes: train (resumably), copy weights, measure quality, write the manifest.

Quality is *measured*: Fréchet distance between penultimate features of our Fashion-MNIST classifier on
``n_eval`` generated samples and on the real test split, next to the real-train-vs-real-test figure, which is
the floor any generator can reach at that sample size.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from genattr.zoo import CLASSIFIER, MANIFEST, sha256_file, zoo_dir
from genattr.zoo.recipes import FD_EVAL_N, RECIPES, ZOO_VERSION, Recipe, converged, recipe


def docs_dir(root: Path) -> Path:
    """Grids and the zoo report live in docs/zoo/ next to the zoo directory (the repository root)."""
    return root.resolve().parent / "docs" / "zoo"


def _log(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(msg)


def build_classifier(root: Path, *, epochs: int = 3, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    from genattr.data import fashion_mnist_sha256, load_fashion_mnist
    from genattr.training.classifier import train_classifier

    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    model, seconds = train_classifier(train.to_model(32), torch.as_tensor(train.labels), epochs=epochs,
                                      seed=seed, progress=progress)
    acc = (model.predict(test.to_model(32)) == torch.as_tensor(test.labels)).float().mean().item()
    model.save_pretrained(root / CLASSIFIER, extra={"epochs": epochs, "seed": seed})
    return {"kind": "classifier", "config": model.config, "seed": seed, "epochs": epochs,
            "data": "fashion-mnist train", "data_sha256": fashion_mnist_sha256("train"),
            "file_sha256": sha256_file(root / CLASSIFIER / "model.safetensors"),
            "train_seconds": round(seconds, 1), "test_accuracy": round(acc, 4),
            "rebuild": f"genattr zoo rebuild --only {CLASSIFIER}"}


class EpochFD:
    """Per-epoch convergence probe: FD of ``n`` samples (fixed latents) against ``n`` real *training* images in
    the zoo classifier's feature space, recorded in the run's history as ``fd_val``. It is a validation figure:
    the stop and the kept epoch are chosen on it, never on the test split (the manifest's FD, on 10k test
    images, is measured once afterwards). With ``best_dir`` the generator of the best epoch so far is saved
    there: GAN training oscillates (LSGAN's FD went 39 → 74 between two epochs), so the zoo keeps the best
    epoch rather than the last. Asks the trainer to stop once :func:`genattr.zoo.recipes.converged` says the
    curve has flattened."""

    def __init__(self, root: Path, *, n: int = FD_EVAL_N, seed: int = 4321, min_epochs: int = 5,
                 best_dir: Path | None = None) -> None:
        from genattr.data import load_fashion_mnist
        from genattr.metrics.functional import feature_stats
        from genattr.training.classifier import FashionClassifier

        self.clf = FashionClassifier.from_pretrained(root / CLASSIFIER)
        self.n, self.seed, self.min_epochs, self.best_dir = n, seed, min_epochs, best_dir
        train = load_fashion_mnist("train").to_model(32)
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
        self.real = feature_stats(self.clf.embed(train[pick]).double().numpy())

    def fd(self, G: Any) -> float:
        from genattr.metrics.functional import feature_stats, frechet_distance_from_stats

        with torch.no_grad():
            x = G.sample(self.n, torch.Generator().manual_seed(self.seed))
        return frechet_distance_from_stats(*feature_stats(self.clf.embed(x).double().numpy()), *self.real)

    def __call__(self, epoch: int, G: Any, history: list[dict[str, float]]) -> bool:
        fd = self.fd(G)
        earlier = [h["fd_val"] for h in history[:-1] if "fd_val" in h]
        history[-1]["fd_val"] = fd
        if self.best_dir is not None and (not earlier or fd < min(earlier)):
            G.save_pretrained(self.best_dir, extra={"epoch": epoch, "fd_val": fd})
        _log(f"  epoch {epoch}: FD_val({self.n}) {fd:.2f}")
        return converged([h["fd_val"] for h in history if "fd_val" in h], min_epochs=self.min_epochs)


def train_generator(r: Recipe, root: Path, runs: Path, *, progress: bool = True) -> Any:
    """Train (or resume) one recipe under ``runs/<name>`` with the per-epoch FD probe; no zoo writes."""
    from genattr.training import train_gan

    return train_gan(r.train_config(), runs / r.name, progress=progress,
                     on_epoch=EpochFD(root, min_epochs=r.min_epochs, best_dir=runs / r.name / "best"))


def _curve(history: list[dict[str, float]]) -> list[dict[str, float]]:
    # "fd_val": FD against 2k training images (the validation figure); "fd_2k_test": the first runs of zoo v2
    # probed the test split before the probe moved to training images; kept for the plot, chose nothing.
    return [{"epoch": int(h["epoch"]), **{k2: round(h[k], 3) for k, k2 in (("fd_val", "fd_val"),
                                                                         ("fd_2k", "fd_2k_test")) if k in h}}
            for h in history if "fd_val" in h or "fd_2k" in h]


def build_generator(r: Recipe, root: Path, runs: Path, *, progress: bool = True) -> dict[str, Any]:
    from genattr.data import fashion_mnist_sha256

    res = train_generator(r, root, runs, progress=progress)
    dest = root / r.name
    if dest.exists():
        shutil.rmtree(dest)
    best = runs / r.name / "best"
    kept = best if (best / "model.safetensors").is_file() else runs / r.name / "generator"
    shutil.copytree(kept, dest)
    vals = [(h["fd_val"], int(h["epoch"])) for h in res.history if "fd_val" in h]
    return {"kind": "generator", "arch": r.arch, "config": res.generator.config, "seed": r.seed,
            "epochs": res.epochs_done, "epoch_cap": r.epochs,
            "kept_epoch": min(vals)[1] if kept == best and vals else res.epochs_done,
            "fd_curve": _curve(res.history),
            "train_config": {k: v for k, v in vars(r.train_config().resolved()).items()},
            "data": "fashion-mnist train", "data_sha256": fashion_mnist_sha256("train"),
            "file_sha256": sha256_file(dest / "model.safetensors"), "train_seconds": round(res.seconds, 1),
            "rebuild": f"genattr zoo rebuild --only {r.name}"}


def measure_quality(root: Path, model_names: Iterable[str], *, n_eval: int = 10_000, seed: int = 1234,
                    grids: Path | None = None) -> dict[str, Any]:
    """FD per model (classifier feature space) plus the real-train-vs-real-test reference."""
    from genattr.data import load_fashion_mnist, save_png
    from genattr.generators import Generator
    from genattr.metrics import frechet_distance
    from genattr.training.classifier import FashionClassifier

    clf = FashionClassifier.from_pretrained(root / CLASSIFIER)
    test = load_fashion_mnist("test").to_model(32)[:n_eval]
    train = load_fashion_mnist("train").to_model(32)
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n_eval]
    f_test = clf.embed(test).double().numpy()
    out: dict[str, Any] = {"reference": {"real_train_vs_real_test":
                                         float(frechet_distance(clf.embed(train[pick]).double().numpy(), f_test)),
                                         "n": n_eval, "feature": "fmnist-classifier penultimate (128-d)"}}
    for name in model_names:
        g = Generator.from_pretrained(root / name)
        x = g.sample(n_eval, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            confidence = torch.softmax(clf.head(clf.embed(x)), 1).max(1).values.mean().item()
        out[name] = {"fd": float(frechet_distance(clf.embed(x).double().numpy(), f_test)), "n": n_eval,
                     "classifier_confidence": confidence}
        if grids is not None:
            save_png(g.sample(64, torch.Generator().manual_seed(0)), grids / f"{name}.png", scale=2)
    return out


def plot_fd_curves(man: dict[str, Any], path: Path) -> Path | None:
    """One panel per model: the per-epoch FD(2k) recorded during training (convergence evidence)."""
    from genattr.figures import figure

    curves = {n: e["fd_curve"] for n, e in sorted(man["models"].items()) if e.get("fd_curve")}
    if not curves:
        return None
    cols = min(4, len(curves))
    rows = (len(curves) + cols - 1) // cols
    fig = figure(3.2 * cols, 2.6 * rows)
    for i, (name, points) in enumerate(curves.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        for key, label in (("fd_val", "vs 2k train (validation)"), ("fd_2k_test", "vs 2k test (early runs)")):
            pts = [(p["epoch"], p[key]) for p in points if isinstance(p, dict) and key in p]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", linewidth=1.2, label=label)
        kept = man["models"][name].get("kept_epoch")
        if kept:
            ax.axvline(kept, color="green", linestyle="--", linewidth=1, label=f"kept: epoch {kept}")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("FD (2k samples)", fontsize=8)
        ax.axhline(40, color="grey", linestyle=":", linewidth=1)  # the zoo target
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def write_report(man: dict[str, Any], path: Path) -> None:
    ref = man["quality_reference"]
    lines = ["# The genattr zoo", "",
             "Fashion-MNIST generators (FLIPAD G.2 architectures at 32×32, ngf = ndf = 32). Quality is the "
             f"Fréchet distance (FD) between {ref['n']} generated and real-test images in the penultimate "
             "feature space of our Fashion-MNIST classifier "
             f"(test accuracy {man['classifier']['test_accuracy']:.2%}); lower is better. "
             f"Real train vs real test: **{ref['real_train_vs_real_test']:.2f}**.", "",
             "| model | arch | seed | epoch kept / trained | train time (s) | FD ↓ | mean classifier confidence "
             "| samples |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, e in sorted(man["models"].items()):
        q = e["quality"]
        lines.append(f"| {name} | {e['arch']} | {e['seed']} | {e.get('kept_epoch', e['epochs'])} / {e['epochs']} | "
                     f"{e['train_seconds']:.0f} | "
                     f"{q['fd']:.2f} | {q['classifier_confidence']:.3f} | ![]({name}.png) |")
    if any(e.get("fd_curve") for e in man["models"].values()):
        lines += ["", "## Convergence", "",
                  f"Per-epoch FD of {FD_EVAL_N} samples against {FD_EVAL_N} *training* images during training "
                  "(the validation figure: training stops once the best FD of the last 3 epochs is under 5 % below "
                  "the best before them, or at the recipe's epoch cap, and the zoo keeps the epoch with the best "
                  "validation FD, marked green). The test split is used only for the table above. The first "
                  "epochs of the WGAN-GP, LSGAN, EBGAN and DCGAN-s1 runs were probed against test images before "
                  "the probe moved to training images; those points are drawn separately and chose nothing (the "
                  "kept epochs were all chosen among validation points, or are the last epoch).", "",
                  "![FD curves](fd_curves.png)"]
    if (path.parent / "final_layers.md").is_file():
        lines += ["", "Final-layer similarity of every pair: [final_layers.md](final_layers.md) "
                      "(`python benchmarks/zoo_final_layers.py`)."]
    lines += ["", "Train times are wall-clock seconds of single-threaded runs sharing 2 CPU cores with other jobs.",
              "LSGAN and EBGAN update the generator every step (G.2: every 5th), EBGAN uses margin m = 0.3; see "
              "`genattr.zoo.recipes` and `genattr.training.gan` for why.", "",
              "Regenerate: `genattr zoo rebuild` (trains or resumes every recipe and measures what changed); "
              "`genattr zoo rebuild --measure-only` re-measures every model from the shipped weights.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def rebuild(*, only: list[str] | None = None, runs: str | Path = "runs/zoo", root: str | Path | None = None,
            n_eval: int = 10_000, progress: bool = True, retrain: bool = True) -> dict[str, Any]:
    """Train (or resume) the selected entries, then re-measure every model and rewrite the manifest.

    ``retrain=False`` only re-measures and rewrites the manifest from the weights already in the zoo.
    """
    root, runs = Path(root or zoo_dir()), Path(runs)
    root.mkdir(parents=True, exist_ok=True)
    path = root / MANIFEST
    man: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {"models": {}}
    selected = set(only) if only else {r.name for r in RECIPES} | {CLASSIFIER}
    for name in selected - {CLASSIFIER}:
        recipe(name)  # unknown names fail before any training
    t0 = time.perf_counter()
    if retrain and CLASSIFIER in selected:
        _log("training the Fashion-MNIST feature classifier")
        man["classifier"] = build_classifier(root, progress=progress)
    for r in RECIPES:
        if retrain and r.name in selected:
            _log(f"training {r.name}")
            man["models"][r.name] = build_generator(r, root, runs, progress=progress)
    # Once every current recipe has been built (v2 entries carry "epoch_cap"), the manifest is a v2 zoo and the
    # v1 names it replaced are retired; until then it stays a mixed v1 manifest.
    if all("epoch_cap" in man["models"].get(r.name, {}) for r in RECIPES):
        man["zoo_version"] = ZOO_VERSION
        for stale_name in set(man["models"]) - {r.name for r in RECIPES}:
            man["models"].pop(stale_name)
            if (root / stale_name).is_dir():
                shutil.rmtree(root / stale_name)
    # Measure what was just trained, what has never been measured, and everything on --measure-only.
    stale = [n for n, e in sorted(man["models"].items())
             if not retrain or n in selected or e.get("quality", {}).get("n") != n_eval]
    quality = measure_quality(root, stale, n_eval=n_eval, grids=docs_dir(root))
    man["quality_reference"] = quality.pop("reference")
    for name, q in quality.items():
        man["models"][name]["quality"] = q
        man["models"][name]["file_sha256"] = sha256_file(root / name / "model.safetensors")
    man["format"] = 1
    path.write_text(json.dumps(man, indent=2, sort_keys=True) + "\n")
    plot_fd_curves(man, docs_dir(root) / "fd_curves.png")
    write_report(man, docs_dir(root) / "README.md")
    _log(f"zoo rebuilt in {time.perf_counter() - t0:.0f} s → {path}")
    return man
