"""`genattr flipad …`: single-model attribution (Laszkiewicz et al. 2024) from the command line.

    genattr flipad fit --model fmnist-dcgan-s0 --negatives real --out models/flipad-dcgan
    genattr flipad score models/flipad-dcgan img1.png img2.png [--json]

``fit`` trains one of ``flipad``, ``rawpad``, ``dctpad``, ``sm-f``, ``sm-inv`` for a zoo generator, sets the
open-set threshold at ``--target-fnr`` on fresh samples of the model (G.1) and saves the attributor;
``score`` loads it and says, per image, whether the model made it (its name) or not (UNKNOWN).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from genattr.cli.common import clean_errors, console

flipad_app = typer.Typer(help="Single-model attribution: was this made by my model? (FLIPAD, ICML 2024)",
                         no_args_is_help=True)


def _console() -> Any:
    return console


def _parse_set(items: list[str] | None) -> dict[str, Any]:
    from genattr.errors import ConfigError

    out: dict[str, Any] = {}
    for kv in items or []:
        if "=" not in kv:
            raise ConfigError(f"--set expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        try:
            val = json.loads(v)
        except json.JSONDecodeError:
            val = v
        out[k.strip()] = tuple(val) if isinstance(val, list) else val
    return out


def load_negatives(spec: str, n: int, seed: int) -> Any:
    """``real`` (Fashion-MNIST train), a zoo model name (n 8-bit samples) or a folder of PNG/JPEG images."""
    import torch

    from genattr.data import real_images
    from genattr.sampling import derive_seed, sample_8bit

    if spec == "real":
        x = real_images("fashion-mnist", "train")
        perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(derive_seed(seed, "negatives")))
        return x[perm[:n]].clone()
    if Path(spec).is_dir():
        from genattr.data import load_image_folder

        return load_image_folder(spec, size=32)[0][:n]
    from genattr import zoo

    return sample_8bit(zoo.load(spec), n, derive_seed(seed, "negatives", spec))


@flipad_app.command("fit")
@clean_errors
def fit(
    model: Annotated[str, typer.Option("--model", help="Zoo generator to attribute to (see `genattr zoo list`).")],
    out: Annotated[Path, typer.Option("--out", help="Directory to save the fitted attributor to.")],
    negatives: Annotated[str, typer.Option(help="'real' (Fashion-MNIST), another zoo model, or an image folder."
                                           )] = "real",
    method: Annotated[str, typer.Option(help="flipad, rawpad, dctpad, sm-f or sm-inv.")] = "flipad",
    n_train: Annotated[int, typer.Option(min=2, help="Samples of the model and negatives to train on.")] = 10_000,
    n_val: Annotated[int, typer.Option(min=1, help="Fresh samples of the model to set the threshold on.")] = 1_000,
    target_fnr: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction of the model's own samples "
                                              "allowed to be rejected (G.1).")] = 0.005,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(min=1)] = 2,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Hyperparameter KEY=VALUE (JSON values; "
                                                   "repeatable), e.g. --set epochs=20 --set lam=0.001.")] = None,
) -> None:
    """Fit a single-model attributor for MODEL, calibrate its threshold and save it to OUT."""
    import torch

    from genattr.attribution.flipad import SINGLE_MODEL_METHODS
    from genattr.errors import ConfigError

    if method not in SINGLE_MODEL_METHODS:
        raise ConfigError(f"unknown method {method!r}; choose from {', '.join(SINGLE_MODEL_METHODS)}")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _fit(model, out, negatives, method, n_train, n_val, target_fnr, seed, _parse_set(set_))
    finally:  # the command may run in-process (tests, notebooks): leave the caller's thread count alone
        torch.set_num_threads(old_threads)


def _fit(model: str, out: Path, negatives: str, method: str, n_train: int, n_val: int, target_fnr: float,
         seed: int, params: dict[str, Any]) -> None:
    import time

    from genattr import zoo
    from genattr.attribution import create_attributor
    from genattr.sampling import derive_seed
    from genattr.sampling import sample_8bit as sample_model

    if method != "sm-inv":
        params.setdefault("n_train", n_train)
    params.setdefault("seed", seed)
    g = zoo.load(model)
    neg = None if method in ("sm-f", "sm-inv") else load_negatives(negatives, n_train, seed)
    t0 = time.perf_counter()
    att = create_attributor(method, **params).fit(generator=g, negatives=neg, name=model)
    t_fit = time.perf_counter() - t0
    val = sample_model(g, n_val, derive_seed(seed, "validation", model))
    att.calibrate({model: val}, target_fnr=target_fnr)
    att.save(out)
    from rich.markup import escape

    _console().print(escape(f"{method} for {model} fitted in {t_fit:.0f} s"
                            + (f" on {neg.shape[0]} negatives ({negatives})" if neg is not None else "")
                            + f"; threshold {float(att.thresholds_[0]):.4g} at {100 * target_fnr:g} % FNR on "
                            f"{n_val} held-out samples; saved to {out}"), highlight=False)


@flipad_app.command("score")
@clean_errors
def score(
    directory: Annotated[Path, typer.Argument(help="A directory written by `genattr flipad fit`.")],
    images: Annotated[list[Path], typer.Argument(help="PNG/JPEG files to score.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output; an infinite threshold is the "
                                                         "string \"inf\"/\"-inf\".")] = False,
    trust_unverified: Annotated[bool, typer.Option(
        "--trust-unverified", help="Load a detector that no manifest lists (one you fitted yourself) without "
                                   "integrity check. Shipped detectors are always verified.")] = False,
) -> None:
    """Score images: higher = more likely made by the model; label = the model's name or UNKNOWN. A file that
    cannot be read is reported and skipped; the exit code is then 1."""
    from rich.markup import escape
    from rich.table import Table

    from genattr.cli.common import json_float, load_model_dir, model_image_spec, read_model_images, warn

    att = load_model_dir(directory, trust_unverified=trust_unverified)
    mode, size = model_image_spec(att, directory)
    x, ok_idx, bad = read_model_images(list(images), mode, size)
    for i, msg in bad.items():
        warn(f"skipped {images[i]}: {msg}")
    tau = float(att.thresholds_[0])
    rows: dict[int, dict[str, Any]] = {}
    if x is not None:
        res = att.attribute(x)
        for row, i in enumerate(ok_idx):
            rows[i] = {"path": str(images[i]), "score": json_float(float(res.scores[row, 0])),
                       "label": res.labels[row]}
    out = [rows[i] if i in rows else {"path": str(p), "error": bad[i]} for i, p in enumerate(images)]
    if as_json:
        print(json.dumps({"model": att.candidates_[0], "method": att.name, "threshold": json_float(tau),
                          "images": out}, indent=2, allow_nan=False))
    else:
        table = Table(title=escape(f"{att.name}: made by {att.candidates_[0]}? (threshold {tau:.4g})"))
        for col in ("image", "score", "label"):
            table.add_column(col)
        for r in out:
            if "error" in r:
                table.add_row(escape(r["path"]), "[red]error[/]", escape(r["error"]))
            else:
                s = r["score"]
                table.add_row(escape(r["path"]), s if isinstance(s, str) else f"{s:.4g}", escape(r["label"]))
        _console().print(table)
    if bad:
        raise typer.Exit(1)


__all__ = ["flipad_app", "load_negatives"]
