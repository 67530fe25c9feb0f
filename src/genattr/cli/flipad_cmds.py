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

    from genattr.evaluation.flipad_experiments import real_images, sample_model
    from genattr.sampling import derive_seed

    if spec == "real":
        x = real_images("train")
        perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(derive_seed(seed, "negatives")))
        return x[perm[:n]].clone()
    if Path(spec).is_dir():
        from genattr.data import load_image_folder

        return load_image_folder(spec, size=32)[0][:n]
    from genattr import zoo

    return sample_model(zoo.load(spec), n, derive_seed(seed, "negatives", spec))


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

    from genattr.attribution.flipad import ATTRIBUTORS
    from genattr.errors import ConfigError

    if method not in ATTRIBUTORS:
        raise ConfigError(f"unknown method {method!r}; choose from {', '.join(ATTRIBUTORS)}")
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
    from genattr.evaluation.flipad_experiments import sample_model
    from genattr.sampling import derive_seed

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
    _console().print(f"{method} for {model} fitted in {t_fit:.0f} s"
                     + (f" on {neg.shape[0]} negatives ({negatives})" if neg is not None else "")
                     + f"; threshold {float(att.thresholds_[0]):.4g} at {100 * target_fnr:g} % FNR on {n_val} "
                     f"held-out samples; saved to {out}", highlight=False)


def _load_checked(directory: Path) -> Any:
    """A shipped detector (listed in ``<parent>/manifest.json``) is loaded only after its sha256 check."""
    from genattr.attribution.shipping import load_shipped

    manifest = directory.parent / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        entries = json.loads(manifest.read_text()).get("models", {})
    except (json.JSONDecodeError, AttributeError):
        return None
    for name, entry in entries.items():
        if isinstance(entry, dict) and entry.get("path") == directory.name:
            return load_shipped(name, directory.parent)
    return None


@flipad_app.command("score")
@clean_errors
def score(
    directory: Annotated[Path, typer.Argument(help="A directory written by `genattr flipad fit`.")],
    images: Annotated[list[Path], typer.Argument(help="PNG/JPEG files to score.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Score images: higher = more likely made by the model; label = the model's name or UNKNOWN."""
    from rich.table import Table

    from genattr.attribution import Attributor
    from genattr.data import load_images

    att = _load_checked(directory) or Attributor.load(directory)
    x = load_images(list(images), size=32)
    res = att.attribute(x)
    tau = float(res.thresholds[0])
    if as_json:
        print(json.dumps({"model": res.candidates[0], "method": att.name, "threshold": tau,
                          "images": [{"path": str(p), "score": float(s), "label": lab}
                                     for p, s, lab in zip(images, res.scores[:, 0].tolist(), res.labels, strict=True)]},
                         indent=2))
        return
    table = Table(title=f"{att.name}: made by {res.candidates[0]}? (threshold {tau:.4g})")
    for col in ("image", "score", "label"):
        table.add_column(col)
    for p, s, lab in zip(images, res.scores[:, 0].tolist(), res.labels, strict=True):
        table.add_row(str(p), f"{s:.4g}", lab)
    _console().print(table)


__all__ = ["flipad_app", "load_negatives"]
