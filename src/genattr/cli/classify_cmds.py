"""`genattr classify …`: train the Yu et al. 2019 attribution network and attribute image files with it.

    genattr classify train --out models/my-net --source fmnist-dcgan-s0 --source fmnist-lsgan-s6 [--paper-size]
    genattr classify predict --model models/yu2019/architectures img1.png img2.png [--json]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from genattr.cli.common import clean_errors, console


def console_() -> Any:
    return console


classify_app = typer.Typer(help="Passive attribution with learned GAN fingerprints (Yu et al. 2019).",
                           no_args_is_help=True)


def _load_source(spec: str, n: int, seed: int, image_size: int) -> tuple[str, Any]:
    """``NAME`` (a zoo model: n samples, 8-bit quantised) or ``NAME=FOLDER`` (every image in the folder)."""
    import torch

    from genattr.data import load_image_folder, to_model, to_uint8
    from genattr.sampling import derive_seed

    if "=" in spec:
        name, folder = spec.split("=", 1)
        x, _ = load_image_folder(folder, size=image_size)
        return name, x
    from genattr import zoo

    g = zoo.load(spec)
    with torch.no_grad():
        x = g.sample(n, torch.Generator().manual_seed(derive_seed(seed, "train", spec)))
    return spec, to_model(to_uint8(x))


DEFAULT_N_TRAIN, DEFAULT_EPOCHS = 2000, 4
PAPER_N_TRAIN, PAPER_EPOCHS = 3000, 12  # the shipped `architectures` net (docs/results/yu2019, Table 1)
PROBE_N = 32


@classify_app.command("train")
@clean_errors
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to save the trained attributor to.")],
    source: Annotated[list[str], typer.Option("--source", "-s", help="Candidate: a zoo model name or NAME=FOLDER "
                                                                     "of images (repeatable).")],
    real: Annotated[str, typer.Option(help="Real class from this dataset (fashion-mnist, digits) or 'none'.")
                    ] = "fashion-mnist",
    n_train: Annotated[int | None, typer.Option(min=2, help="Training images per zoo source / real (default "
                                                f"{DEFAULT_N_TRAIN}; {PAPER_N_TRAIN} with --paper-size).")] = None,
    n_val: Annotated[int, typer.Option(min=1, help="Held-out images per source for calibration.")] = 200,
    epochs: Annotated[int | None, typer.Option(min=0, help=f"Training epochs (default {DEFAULT_EPOCHS}; "
                                               f"{PAPER_EPOCHS} with --paper-size).")] = None,
    width: Annotated[int, typer.Option(min=1, help="Channels at full resolution (doubling per level).")] = 8,
    variant: Annotated[str, typer.Option(help="full, lowpass or highpass (§3.2).")] = "full",
    factor: Annotated[int, typer.Option(min=1, help="Pre-downsampling factor for lowpass/highpass.")] = 1,
    pool_at: Annotated[int, typer.Option(min=1, help="Resolution where global pooling starts (§3.2).")] = 4,
    target_fnr: Annotated[float, typer.Option(min=0.0, max=1.0, help="Open-set thresholds: fraction of held-out "
                                                                     "images of each source allowed UNKNOWN.")] = 0.05,
    paper_size: Annotated[bool, typer.Option("--paper-size", help=f"The shipped net's sizes: {PAPER_N_TRAIN} "
                                             f"images per source, {PAPER_EPOCHS} epochs (about 5 min for five "
                                             "sources on 2 cores, vs about 1 min by default).")] = False,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(min=1)] = 2,
    probe: Annotated[bool, typer.Option("--probe/--no-probe", help="Time a tiny fit first to print the "
                                        "expected time.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary on stdout.")] = False,
) -> None:
    """Train the attribution network on {real, sources}, calibrate open-set thresholds, save it.

    Prints its plan first (sizes, expected time from a quick probe), then a progress bar per phase."""
    import torch

    n = n_train if n_train is not None else (PAPER_N_TRAIN if paper_size else DEFAULT_N_TRAIN)
    ep = epochs if epochs is not None else (PAPER_EPOCHS if paper_size else DEFAULT_EPOCHS)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:  # the command may run in-process (tests, notebooks): leave the caller's thread count alone
        summary = _train(out, source, real, n, n_val, variant, factor, pool_at, width, ep, target_fnr, seed,
                         probe=probe, paper_size=paper_size, quiet=as_json)
    finally:
        torch.set_num_threads(old_threads)
    if as_json:
        from genattr.cli.common import emit_json

        emit_json(summary)


def _probe_seconds(source: list[str], n_classes: int, n_train: int, n_val: int, epochs: int, size: int,
                   make: Any) -> float:
    """Expected seconds: sampling cost per zoo image and training cost per image-epoch, from a tiny run."""
    import time

    import torch

    from genattr import zoo

    zoo_sources = [s for s in source if "=" not in s]
    per_image = 0.0
    if zoo_sources:
        g = zoo.load(zoo_sources[0])
        t0 = time.perf_counter()
        with torch.no_grad():
            g.sample(PROBE_N, torch.Generator().manual_seed(0))
        per_image = (time.perf_counter() - t0) / PROBE_N
    data = {f"c{i}": torch.rand(PROBE_N, 1, size, size) * 2 - 1 for i in range(n_classes)}
    make(4, 1).fit({k: v[:4] for k, v in data.items()})  # pays the one-off costs (lazy imports, kernel set-up)
    t0 = time.perf_counter()
    make(PROBE_N, 1).fit(data)
    per_image_epoch = (time.perf_counter() - t0) / (PROBE_N * n_classes)
    return per_image * len(zoo_sources) * (n_train + n_val) + per_image_epoch * n_classes * n_train * epochs


def _train(out: Path, source: list[str], real: str, n_train: int, n_val: int, variant: str, factor: int,
           pool_at: int, width: int, epochs: int, target_fnr: float, seed: int, *, probe: bool = True,
           paper_size: bool = False, quiet: bool = False) -> dict[str, Any]:
    import torch

    from genattr import REAL
    from genattr.attribution.gan_fingerprint import GANFingerprintClassifier
    from genattr.cli.common import err_console, json_float, print_plan, progress_bars
    from genattr.data import real_splits
    from genattr.errors import ConfigError
    from genattr.progress import phase
    from genattr.sampling import derive_seed

    size = 32
    n_classes = len(source) + (real != "none")
    if n_classes < 2:
        raise ConfigError("need at least two candidates (add --source, or keep --real)")

    def make(n: int, ep: int) -> GANFingerprintClassifier:
        return GANFingerprintClassifier(variant=variant, factor=factor, pool_at=pool_at, width=width, epochs=ep,
                                        n_samples=n, seed=seed)

    estimate = _probe_seconds(source, n_classes, n_train, n_val, epochs, size, make) if probe else None
    print_plan("classify train (Yu et al. 2019 attribution net)", {
        "candidates": ", ".join(([REAL] if real != "none" else []) + [s.split("=", 1)[0] for s in source]),
        "images": f"{n_train} training + {n_val} calibration per zoo source / real (folders: all, half kept)",
        "training": f"{epochs} epochs, width {width}, variant {variant}",
        "output": str(out)}, estimate_s=estimate,
        paper_size_hint=None if paper_size else
        f"--paper-size uses the shipped net's {PAPER_N_TRAIN} images and {PAPER_EPOCHS} epochs.")
    data: dict[str, torch.Tensor] = {}
    with progress_bars():
        if real != "none":
            pool, _ = real_splits(real, size, seed=derive_seed(seed, "real"))
            perm = torch.randperm(pool.shape[0], generator=torch.Generator().manual_seed(seed))
            data[REAL] = pool[perm[:n_train + n_val]]
        with phase("sampling (sources)", total=len(source)) as advance:
            for spec in source:
                name, x = _load_source(spec, n_train + n_val, seed, size)
                if name in data:
                    raise ConfigError(f"candidate {name!r} given twice")
                data[name] = x
                advance(1)
        train_set, val_set = {}, {}
        for name, x in data.items():
            k = min(n_val, x.shape[0] // 2)  # folders may be small: keep at least half for training
            train_set[name], val_set[name] = x[: x.shape[0] - k], x[x.shape[0] - k:]
        att = make(n_train, epochs)
        att.fit(train_set, progress=True)
        with phase("calibration", total=2) as advance:
            closed = att.predict(torch.cat(list(val_set.values())))
            advance(1)
            truth = [n for n, x in val_set.items() for _ in range(x.shape[0])]
            acc = sum(p == t for p, t in zip(closed, truth, strict=True)) / len(truth)
            att.calibrate(val_set, target_fnr=target_fnr)
            advance(1)
    att.save(out)
    from rich.markup import escape

    (err_console if quiet else console_()).print(
        escape(f"trained on {', '.join(f'{n} ({x.shape[0]})' for n, x in train_set.items())} in "
               f"{att.train_seconds_:.0f} s; held-out closed-set accuracy {100 * acc:.2f} %; open-set "
               f"thresholds at {100 * target_fnr:g} % FNR; saved to {out}"), highlight=False)
    return {"out": str(out), "candidates": list(att.candidates_), "n_train": {n: int(x.shape[0])
                                                                              for n, x in train_set.items()},
            "epochs": epochs, "train_seconds": round(att.train_seconds_, 3), "heldout_accuracy": acc,
            "target_fnr": target_fnr, "thresholds": [json_float(t) for t in att.thresholds_.tolist()],
            "expected_seconds": None if estimate is None else round(estimate, 1)}


def _confidences(att: Any, scores: Any) -> Any:
    """Per-candidate confidence: the classifier's softmax probabilities (exp of its log-probability scores);
    for other attributors, a softmax of their scores. ``None`` for a one-candidate model: a softmax over one
    score is always 1, which says nothing; its output is the open-set score against the threshold instead."""
    from genattr.attribution.gan_fingerprint import GANFingerprintClassifier

    if scores.shape[1] < 2:
        return None
    return scores.exp() if isinstance(att, GANFingerprintClassifier) else scores.double().softmax(dim=1)


ONE_CANDIDATE_NOTE = ("one-candidate model: no softmax confidence (it would always be 1.000); the label comes from "
                      "score ≥ threshold, see margin = score − threshold")


@classify_app.command("predict")
@clean_errors
def predict(
    images: Annotated[list[Path], typer.Argument(help="PNG/JPEG files to attribute.")],
    model: Annotated[Path, typer.Option("--model", help="A saved attributor directory (genattr classify train).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output; infinite thresholds and scores "
                                                         "are the strings \"inf\"/\"-inf\".")] = False,
    top: Annotated[int, typer.Option(min=1, help="How many candidates to list per image.")] = 3,
    trust_unverified: Annotated[bool, typer.Option(
        "--trust-unverified", help="Load a model that no manifest lists (one you trained yourself) without "
                                   "integrity check. Shipped models are always verified.")] = False,
    fit_images: Annotated[bool, typer.Option(
        "--fit-images", help="Centre-crop/pad images of another size and convert colour to grey instead of "
                             "refusing them (loud warning per image; the answer is then out of distribution).")
                          ] = False,
) -> None:
    """Attribute images: label (or UNKNOWN), confidence and the top candidates.

    Images must be what the model was trained on (its size, grey for a grey model): others are refused
    (use --fit-images to adapt them anyway). A closed-set classifier only says which of ITS candidates is
    closest; an image whose confidence is below every candidate's open-set threshold is UNKNOWN, but a
    generator that is not a candidate can still get a confident label (see the note printed after the
    table). A file that cannot be read or is refused is reported and skipped; the exit code is then 1."""
    from rich.markup import escape
    from rich.table import Table

    from genattr.cli.common import json_float, load_model_dir, model_image_spec, read_model_images, warn

    att = load_model_dir(model, trust_unverified=trust_unverified)
    mode, size = model_image_spec(att, model)
    x, ok_idx, bad = read_model_images(list(images), mode, size, adapt=fit_images)
    for i, msg in bad.items():
        warn(f"skipped {images[i]}: {msg}")
    k = min(top, len(att.candidates_))
    results: dict[int, dict[str, Any]] = {}
    if x is not None:
        res = att.attribute(x)
        conf = _confidences(att, res.scores)
        thresholds = att.thresholds_.tolist()
        for row, i in enumerate(ok_idx):
            scores = res.scores[row].double()
            order = scores.argsort(descending=True)[:k].tolist()
            r: dict[str, Any] = {"path": str(images[i]), "label": res.labels[row]}
            if conf is not None:
                r["confidence"] = float(conf[row].max())
                r["top"] = [{"candidate": att.candidates_[j], "confidence": float(conf[row, j])} for j in order]
            else:
                s, t = float(scores[0]), thresholds[0]
                r["confidence"] = None
                r["confidence_note"] = ONE_CANDIDATE_NOTE
                r["margin"] = json_float(s - t)
                r["top"] = [{"candidate": att.candidates_[0], "score": json_float(s), "threshold": json_float(t)}]
            r["scores"] = {c: json_float(v) for c, v in zip(att.candidates_, scores.tolist(), strict=True)}
            results[i] = r
    out = [results[i] if i in results else {"path": str(p), "error": bad[i]} for i, p in enumerate(images)]
    if as_json:  # the genattr.verdict/1 shape of `genattr attribute`, with this classifier's evidence only
        from genattr.cli.attribute_cmds import emit_results
        from genattr.unified.single import classifier_verdicts

        vs = classifier_verdicts(att, x, name=str(model), top=k, result=res) if x is not None else []
        emit_results(list(images), dict(zip(ok_idx, vs, strict=True)), bad, model=str(model), attributor=att.name,
                     candidates=list(att.candidates_), thresholds=att.thresholds_.tolist())
    else:
        table = Table(title=escape(f"{att.name} ({model})"))
        for col in ("image", "label", "confidence", f"top {k}"):
            table.add_column(col)
        for r in out:
            if "error" in r:
                table.add_row(escape(Path(r["path"]).name), "[red]error[/]", "", escape(r["error"]))
            elif r["confidence"] is None:
                t = r["top"][0]
                table.add_row(escape(Path(r["path"]).name), escape(r["label"]), "n/a (one candidate)",
                              escape(f"score {_fmt(t['score'])} vs threshold {_fmt(t['threshold'])}"))
            else:
                table.add_row(escape(Path(r["path"]).name), escape(r["label"]), f"{r['confidence']:.3f}",
                              escape(", ".join(f"{t['candidate']} {t['confidence']:.3f}" for t in r["top"])))
        console_().print(table)
        console_().print(escape(open_set_note(att)), highlight=False, soft_wrap=True)
    if bad:
        raise typer.Exit(1)


def open_set_note(att: Any) -> str:
    """What the open-set answer can and cannot say, printed under every human-readable prediction table."""
    return (f"Open set: a label is given only when the image's confidence clears that candidate's threshold "
            f"(calibrated on held-out images of each candidate); otherwise UNKNOWN. This classifier knows "
            f"{len(att.candidates_)} candidates and cannot recognise a generator it was not trained on: images of "
            "an unseen model of the same architecture often still get a confident label (the shipped nets "
            "reject only 36-45 % of an unseen zoo model's images, docs/results/yu2019/README.md). Read a label "
            "as 'closest of these candidates', not as proof; ask the model's own detector (genattr flipad score) "
            "or the generation log to confirm.")


def _fmt(v: float | str) -> str:
    return v if isinstance(v, str) else f"{v:.4g}"


__all__ = ["classify_app"]
