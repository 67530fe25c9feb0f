"""`genattr classify …`: train the Yu et al. 2019 attribution network and attribute image files with it.

    genattr classify train --out models/my-net --source fmnist-dcgan-s0 --source fmnist-lsgan-s0
    genattr classify predict --model models/yu2019/architectures img1.png img2.png [--json]
"""

from __future__ import annotations

import json
import math
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


@classify_app.command("train")
@clean_errors
def train(
    out: Annotated[Path, typer.Option("--out", help="Directory to save the trained attributor to.")],
    source: Annotated[list[str], typer.Option("--source", "-s", help="Candidate: a zoo model name or NAME=FOLDER "
                                                                     "of images (repeatable).")],
    real: Annotated[str, typer.Option(help="Real class from this dataset (fashion-mnist, digits) or 'none'.")
                    ] = "fashion-mnist",
    n_train: Annotated[int, typer.Option(min=2, help="Training images per zoo source / real.")] = 2000,
    n_val: Annotated[int, typer.Option(min=1, help="Held-out images per source for calibration.")] = 200,
    epochs: Annotated[int, typer.Option(min=0)] = 4,
    width: Annotated[int, typer.Option(min=1, help="Channels at full resolution (doubling per level).")] = 8,
    variant: Annotated[str, typer.Option(help="full, lowpass or highpass (§3.2).")] = "full",
    factor: Annotated[int, typer.Option(min=1, help="Pre-downsampling factor for lowpass/highpass.")] = 1,
    pool_at: Annotated[int, typer.Option(min=1, help="Resolution where global pooling starts (§3.2).")] = 4,
    target_fnr: Annotated[float, typer.Option(min=0.0, max=1.0, help="Open-set thresholds: fraction of held-out "
                                                                     "images of each source allowed UNKNOWN.")] = 0.05,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(min=1)] = 2,
) -> None:
    """Train the attribution network on {real, sources}, calibrate open-set thresholds, save it."""
    import torch

    from genattr.attribution.gan_fingerprint import GANFingerprintClassifier
    from genattr.errors import ConfigError
    from genattr.evaluation.yu2019 import REAL, Yu2019Config, real_images

    torch.set_num_threads(threads)
    size = 32
    data: dict[str, torch.Tensor] = {}
    if real != "none":
        pool, _ = real_images(Yu2019Config(real=real, seed=seed, image_size=size))
        perm = torch.randperm(pool.shape[0], generator=torch.Generator().manual_seed(seed))
        data[REAL] = pool[perm[:n_train + n_val]]
    for spec in source:
        name, x = _load_source(spec, n_train + n_val, seed, size)
        if name in data:
            raise ConfigError(f"candidate {name!r} given twice")
        data[name] = x
    if len(data) < 2:
        raise ConfigError("need at least two candidates (add --source, or keep --real)")
    train_set, val_set = {}, {}
    for name, x in data.items():
        k = min(n_val, x.shape[0] // 2)  # folders may be small: keep at least half for training
        train_set[name], val_set[name] = x[: x.shape[0] - k], x[x.shape[0] - k:]
    att = GANFingerprintClassifier(variant=variant, factor=factor, pool_at=pool_at, width=width, epochs=epochs,
                                   n_samples=n_train, seed=seed)
    att.fit(train_set, progress=True)
    closed = att.predict(torch.cat(list(val_set.values())))
    truth = [n for n, x in val_set.items() for _ in range(x.shape[0])]
    acc = sum(p == t for p, t in zip(closed, truth, strict=True)) / len(truth)
    att.calibrate(val_set, target_fnr=target_fnr)
    att.save(out)
    console_().print(f"trained on {', '.join(f'{n} ({x.shape[0]})' for n, x in train_set.items())} in "
                  f"{att.train_seconds_:.0f} s; held-out closed-set accuracy {100 * acc:.2f} %; open-set thresholds "
                  f"at {100 * target_fnr:g} % FNR; saved to {out}")


def _confidences(att: Any, scores: Any) -> Any:
    """Per-candidate confidence: the classifier's softmax probabilities (exp of its log-probability scores);
    for other attributors, a softmax of their scores."""
    from genattr.attribution.gan_fingerprint import GANFingerprintClassifier

    return scores.exp() if isinstance(att, GANFingerprintClassifier) else scores.double().softmax(dim=1)


@classify_app.command("predict")
@clean_errors
def predict(
    images: Annotated[list[Path], typer.Argument(help="PNG/JPEG files to attribute.")],
    model: Annotated[Path, typer.Option("--model", help="A saved attributor directory (genattr classify train).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    top: Annotated[int, typer.Option(min=1, help="How many candidates to list per image.")] = 3,
) -> None:
    """Attribute images: label (or UNKNOWN), confidence and the top candidates."""
    from rich.table import Table

    from genattr.attribution import Attributor
    from genattr.data import load_images
    from genattr.errors import DataError

    att = Attributor.load(model)
    shape = getattr(att, "image_shape_", None)
    if not shape:
        raise DataError(f"{model}: attributor has no image shape; cannot prepare images for it")
    x = load_images(list(images), mode="L" if shape[0] == 1 else "RGB", size=shape[1])
    res = att.attribute(x)
    conf = _confidences(att, res.scores)
    k = min(top, len(att.candidates_))
    out = []
    for i, path in enumerate(images):
        vals, idx = conf[i].topk(k)
        label = res.labels[i]
        out.append({"path": str(path), "label": label,
                    "confidence": float(conf[i].max()),
                    "top": [{"candidate": att.candidates_[int(j)], "confidence": float(v)}
                            for v, j in zip(vals, idx, strict=True)],
                    "scores": {c: float(s) for c, s in zip(att.candidates_, res.scores[i].tolist(), strict=True)}})
    if as_json:
        thresholds = [None if math.isinf(t) else t for t in att.thresholds_.tolist()]
        typer.echo(json.dumps({"model": str(model), "attributor": att.name, "candidates": list(att.candidates_),
                               "thresholds": thresholds, "predictions": out}, indent=2))
        return
    table = Table(title=f"{att.name} ({model})")
    for col in ("image", "label", "confidence", f"top {k}"):
        table.add_column(col)
    for r in out:
        table.add_row(Path(r["path"]).name, r["label"], f"{r['confidence']:.3f}",
                      ", ".join(f"{t['candidate']} {t['confidence']:.3f}" for t in r["top"]))
    console_().print(table)


__all__ = ["classify_app"]
