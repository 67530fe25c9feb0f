"""`genattr reconstruct …`: attribute images by seed reconstruction (Zhang et al. 2020) from the command line.

    genattr reconstruct --candidates fmnist-dcgan-s0,fmnist-lsgan-s6 img1.png img2.png [--json] [--out DIR]
    genattr reconstruct --candidates a --candidates b img.png --engine ray --restarts 3 --steps 500
    genattr reconstruct --candidates fmnist-dcgan-s0 img.png --log gen.db --policy policy.txt

Candidates are zoo names or ``save_pretrained`` directories (repeat ``--candidates`` or separate with
commas). Prints, per image, the ranking of the candidates by their best reconstruction distance (closed set,
as in the paper), and with ``--out`` writes ``<image>.reconstruction.png`` (the image next to each
candidate's best reconstruction) and ``reconstruct.json``. With ``--log`` it first asks the generation log
whether the image's exact pixel hash is logged: a logged image is strictly attributed by the log (§VII),
which beats the relaxed attribution by reconstruction.

``reproduce_zhang2020_command`` is the ``genattr reproduce zhang2020`` command (mounted by the CLI root).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from genattr.cli.common import PAPER_SIZE_HELP, clean_errors, console

reconstruct_app = typer.Typer(help="Attribution by seed reconstruction over candidate generators (Zhang 2020).")


def split_candidates(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        out.extend(s.strip() for s in v.split(",") if s.strip())
    return out


def load_candidate(spec: str) -> tuple[str, Any]:
    """A zoo name, or a directory written by ``Generator.save_pretrained`` (named after the directory)."""
    p = Path(spec)
    if p.is_dir():
        from genattr.generators import Generator

        return p.resolve().name, Generator.from_pretrained(p)
    from genattr import zoo

    return spec, zoo.load(spec)


def load_image(path: Path, channels: int, shape: tuple[int, ...]) -> Any:
    from genattr.data import read_image, to_model
    from genattr.errors import DataError

    x = to_model(read_image(path, mode="L" if channels == 1 else "RGB")[None])
    if tuple(x.shape[1:]) != tuple(shape):
        raise DataError(f"{path}: image of shape {tuple(x.shape[1:])} (channels, height, width), but the "
                        f"candidates generate {tuple(shape)} images")
    return x


def _jsonable(v: float) -> float | None:
    return None if math.isnan(v) or math.isinf(v) else float(v)


def write_figure(path: Path, image: Any, recons: Any, names: list[str], dists: list[float], label: str) -> Path:
    """Image vs each candidate's best reconstruction, titled with the distances; written atomically."""
    from genattr.figures import figure

    k = len(names)
    fig = figure(1.6 * (k + 1), 2.0)
    axes = fig.subplots(1, k + 1, squeeze=False)[0]

    def show(ax: Any, t: Any, title: str, color: str = "black") -> None:
        arr = ((t.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
        ax.imshow(arr[..., 0] if arr.shape[-1] == 1 else arr, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=7, color=color)
        ax.set_xticks([])
        ax.set_yticks([])

    show(axes[0], image, "image")
    for j, (name, d) in enumerate(zip(names, dists, strict=True)):
        if math.isnan(d):
            axes[j + 1].axis("off")
            axes[j + 1].set_title(f"{name}\n(not shortlisted)", fontsize=7)
            continue
        show(axes[j + 1], recons[j], f"{name}\nd = {d:.4f}", "green" if name == label else "black")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)
    return path


@reconstruct_app.command("reconstruct")
@clean_errors
def reconstruct(
    images: Annotated[list[Path], typer.Argument(help="Image files (PNG/JPEG) to attribute.")],
    candidates: Annotated[list[str], typer.Option("--candidates", "-c", help="Candidate generators: zoo names or "
                                                  "save_pretrained directories (repeat, or comma-separated).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write a PNG per image (image vs "
                                             "reconstructions) and reconstruct.json here.")] = None,
    engine: Annotated[str, typer.Option(help="local (in-process) or ray.")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address (default: start Ray locally).")
                           ] = None,
    restarts: Annotated[int, typer.Option(min=1, help="Random restarts per candidate.")] = 3,
    steps: Annotated[int, typer.Option(min=0, help="Adam steps per restart.")] = 500,
    distance: Annotated[str, typer.Option(help="pixel (ℓ2) or feature (ℓ2 on the zoo classifier's features).")
                        ] = "pixel",
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 0.1,
    lr_schedule: Annotated[str, typer.Option(help="Adam step schedule: cosine (decay to 0; chosen on validation, "
                                             "docs/zhang2020.md) or constant (the paper's code).")] = "cosine",
    seed: Annotated[int, typer.Option(help="Seed of the restart pool.")] = 0,
    log: Annotated[Path | None, typer.Option("--log", help="Generation log database: check whether the image's "
                                             "exact hash is logged (strict attribution).")] = None,
    policy: Annotated[Path | None, typer.Option(help="tlog-policy file for --log.")] = None,
    log_key: Annotated[str | None, typer.Option("--log-key", help="Trusted log vkey for --log (if no policy).")
                       ] = None,
    threads: Annotated[int, typer.Option(min=1, help="Torch threads.")] = 2,
) -> None:
    """Attribute images to the candidate generator that reconstructs them best (Zhang et al. 2020).

    Prints its plan first (work and the expected time from a few timed steps), then a progress bar with an ETA
    over the (image chunk × candidate) tasks."""
    import torch

    from genattr.attribution.seed_reconstruction import SeedReconstruction
    from genattr.errors import ConfigError

    torch.set_num_threads(threads)
    names = split_candidates(candidates)
    if not names:
        raise ConfigError("give at least one candidate with --candidates")
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate candidates in {names}")
    for p in images:
        if not p.is_file():
            raise ConfigError(f"{p}: no such image file")
    gens = dict(load_candidate(n) for n in names)
    if len(gens) != len(names):
        raise ConfigError("two candidates resolve to the same name; rename a directory")
    ledger: dict[str, Any] = {}
    if log is not None:
        from genattr.attribution.deniability import audit_image

        for p in images:
            ledger[str(p)] = audit_image(p, log, policy=policy, log_key=log_key).to_dict()
    elif policy is not None or log_key is not None:
        raise ConfigError("--policy / --log-key only apply with --log")
    att = SeedReconstruction(distance=distance, restarts=restarts, steps=steps, lr=lr, seed=seed, engine=engine,
                             ray_address=ray_address, lr_schedule=lr_schedule).fit(gens)
    x = torch.cat([load_image(p, att.image_shape_[0], tuple(att.image_shape_)) for p in images])
    _plan(att, gens, x, engine, as_json)
    from genattr.cli.common import progress_bars

    eng = att.make_engine()
    try:
        with progress_bars():
            res = att.attribute(x, engine=eng)
    finally:
        eng.shutdown()
    cand = list(res.candidates)
    rows = []
    for i, p in enumerate(images):
        d = res.extras["distances"][i].tolist()
        order = sorted(range(len(cand)), key=lambda j: (math.isnan(d[j]), d[j]))
        row: dict[str, Any] = {
            "image": str(p), "label": res.labels[i],
            "ranking": [{"candidate": cand[j], "distance": _jsonable(d[j]),
                         "restart_distances": [_jsonable(v) for v in res.extras["restart_distances"][i, j].tolist()]}
                        for j in order],
        }
        if str(p) in ledger:
            row["log"] = ledger[str(p)]
        rows.append(row)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for i, p in enumerate(images):
            fig_path = write_figure(out / f"{p.stem}.reconstruction.png", x[i], res.extras["reconstructions"][i],
                                    cand, res.extras["distances"][i].tolist(), res.labels[i])
            rows[i]["figure"] = str(fig_path)
        summary = {"method": "seed-reconstruction (Zhang et al. 2020)", "params": att.get_params(),
                   "candidates": cand, "images": rows}
        tmp = out / "reconstruct.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        tmp.replace(out / "reconstruct.json")
    if as_json:
        typer.echo(json.dumps({"candidates": cand, "distance": distance, "restarts": restarts, "steps": steps,
                               "images": rows}, indent=2))
        return
    for row in rows:
        console.print(f"[bold]{row['image']}[/]: {row['label']}", highlight=False)
        if "log" in row:
            lg = row["log"]
            if lg["found"]:
                console.print(f"  log: FOUND — {lg['message']} Strict attribution by the log beats the relaxed "
                              "attribution below.", highlight=False, soft_wrap=True)
            else:
                console.print(f"  log: NOT FOUND — {lg['message']}", highlight=False, soft_wrap=True)
        for rank, r in enumerate(row["ranking"], 1):
            dist = "not shortlisted" if r["distance"] is None else f"{r['distance']:.5f}"
            per = ", ".join("-" if v is None else f"{v:.5f}" for v in r["restart_distances"])
            console.print(f"  {rank}. {r['candidate']:<24} d = {dist}  (restarts: {per})", highlight=False)
        if "figure" in row:
            console.print(f"  figure: {row['figure']}", highlight=False)


def _plan(att: Any, gens: dict[str, Any], x: Any, engine: str, quiet: bool) -> None:
    """Print the plan; locally, the expected time from 3 timed steps on the first chunk of images."""
    import time

    from genattr.attribution.seed_reconstruction import SeedReconstruction
    from genattr.cli.common import print_plan

    p = att.get_params()
    chunks = math.ceil(x.shape[0] / p["chunk_size"])
    estimate = None
    if engine == "local" and p["steps"] > 0:
        SeedReconstruction(**{**p, "steps": 1, "engine": "local"}).fit(gens).attribute(x[:1])  # one-off costs
        probe = SeedReconstruction(**{**p, "steps": 3, "engine": "local"}).fit(gens)
        t0 = time.perf_counter()
        probe.attribute(x[:p["chunk_size"]])
        estimate = (time.perf_counter() - t0) * p["steps"] / 3 * chunks
    print_plan(f"reconstruct: {x.shape[0]} image(s) × {len(gens)} candidate(s)", {
        "optimisation": f"{p['restarts']} restarts × {p['steps']} Adam steps per image and candidate "
                        f"({p['distance']} distance), {chunks} chunk(s) of up to {p['chunk_size']} images",
        "engine": engine}, estimate_s=estimate)


def reproduce_zhang2020_command(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Results directory (default: a fresh "
                                             "runs/reproduce/zhang2020-TIMESTAMP).")] = None,
    write_docs: Annotated[bool, typer.Option("--write-docs", help="Write to docs/results/zhang2020, replacing the "
                                             "committed results (needs --paper-size).")] = False,
    paper_size: Annotated[bool, typer.Option("--paper-size", help=PAPER_SIZE_HELP)] = False,
    only: Annotated[list[str] | None, typer.Option(help="Run only these experiments (repeatable); see "
                                                        "genattr.evaluation.zhang2020.EXPERIMENTS.")] = None,
    quick: Annotated[bool, typer.Option("--quick", hidden=True)] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a setting, KEY=VALUE (repeatable).")
                    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary on stdout.")] = False,
) -> None:
    """Zhang et al. 2020 (seed reconstruction): App. A, three architectures, Fig. 5, Table I, Fig. 6, Fig. 9."""
    from genattr.cli.common import deprecated, parse_set, prepare_reproduce, reproduce_done, reproduce_log
    from genattr.evaluation.zhang2020 import Zhang2020Config, quick_config, reproduce_zhang2020

    if quick:
        deprecated("--quick", "nothing (smoke-test sizes are the default; --paper-size for the real run)")
    cfg = (Zhang2020Config() if paper_size else quick_config()).override(parse_set(set_))
    if only:
        cfg = cfg.override({"experiments": ",".join(only)})
    out_dir, _, command = prepare_reproduce("zhang2020", out=out, models=None, write_docs=write_docs, ship=False,
                                            paper_size=paper_size, only=only, set_=set_)
    report = reproduce_zhang2020(cfg, out_dir, log=lambda m: reproduce_log(m, as_json), command=command)
    reproduce_done("zhang2020", report, out_dir, None, as_json)


reproduce_zhang2020_command = clean_errors(reproduce_zhang2020_command)

__all__ = ["load_candidate", "reconstruct", "reconstruct_app", "reproduce_zhang2020_command", "split_candidates"]
