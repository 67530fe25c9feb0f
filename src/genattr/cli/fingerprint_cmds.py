"""`genattr fingerprint …`: scalable GAN fingerprints (Yu et al., ICLR 2022).

    genattr fingerprint train --bits 64 --out runs/yu2022-64 --warm-start fmnist-dcgan-s0 [--paper-size]
    genattr fingerprint issue --user alice --out instances/alice [--index PATH]
    genattr fingerprint decode img1.png img2.png [--json] [--index PATH]

``issue`` draws a fresh random code (from the OS's CSPRNG), bakes it into a plain generator instance written
to OUT (a ``Generator.save_pretrained`` directory: no code, E or F inside) and registers the code under the
user name in the registry (the shipped ``models/yu2022/index`` unless ``--index``). ``decode`` reads the bits
of each image with the owner's decoder and looks them up: user, matched bits k, p-value — or unknown.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from genattr.cli.common import PAPER_SIZE_HELP, clean_errors, console, json_float, warn

fingerprint_app = typer.Typer(help="Scalable GAN fingerprints: issue fingerprinted generators, decode images "
                                   "(Yu et al., ICLR 2022).", no_args_is_help=True)

DEFAULT_VARIANT = "fp64"
QUICK_EPOCHS, QUICK_STEPS, PAPER_EPOCHS = 1, 150, 10


def shipped_dir() -> Path:
    """``$GENATTR_YU2022_DIR`` if set, else ``models/yu2022`` under the assets home (:mod:`genattr.paths`)."""
    from genattr.paths import models_dir

    env = os.environ.get("GENATTR_YU2022_DIR")
    return Path(env) if env else models_dir("yu2022")


def _model_dir(model: Path | None) -> Path:
    return model if model is not None else shipped_dir() / DEFAULT_VARIANT


def _index_dir(index: Path | None) -> Path:
    return index if index is not None else shipped_dir() / "index"


def _load_model(model: Path | None) -> Any:
    from genattr.errors import DataError
    from genattr.watermark.fingerprint import FingerprintModel

    d = _model_dir(model)
    if not d.is_dir():
        raise DataError(f"no fingerprint model at {d}; train one with `genattr fingerprint train` or pass --model")
    if model is None:  # the shipped model: check its sha256 against models/yu2022/manifest.json
        from genattr.watermark.fingerprint_shipping import verify

        verify(d.parent, d.name)
    return FingerprintModel.load(d)


@fingerprint_app.command("train")
@clean_errors
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (checkpoints; the model ends in "
                                      "OUT/model).")] = Path("runs/yu2022-64"),
    bits: Annotated[int, typer.Option("--bits", min=8, help="Fingerprint length d_c (multiple of 8).")] = 64,
    epochs: Annotated[int | None, typer.Option(min=1, help=f"Epochs (default {QUICK_EPOCHS} short epoch of "
                                               f"{QUICK_STEPS} steps, minutes; {PAPER_EPOCHS} full epochs with "
                                               "--paper-size, hours).")] = None,
    warm_start: Annotated[str | None, typer.Option(help="Zoo DCGAN name or generator directory to start G from "
                                                        "(its BatchNorm is folded in); 'none' trains G from scratch.")
                                 ] = "fmnist-dcgan-s0",
    init_from: Annotated[Path | None, typer.Option(help="A finished run directory to start from (E, G, F and D; "
                                                        "replaces --warm-start), e.g. to immunise the trained "
                                                        "model: --init-from runs/yu2022-64 --perturb ...")] = None,
    demodulate: Annotated[bool, typer.Option("--demod/--no-demod", help="StyleGAN2 demodulation.")] = True,
    perturb: Annotated[str | None, typer.Option(help="Immunisation: a perturbation config as JSON, applied "
                                                     "before the decoder, e.g. '{\"name\": \"blur\", "
                                                     "\"kernel_size\": 3}'.")] = None,
    code_pool: Annotated[int | None, typer.Option(min=1, help="Ablation (Table 2): train on a fixed set of "
                                                              "this many codes instead of fresh ones.")] = None,
    batch_size: Annotated[int, typer.Option(min=2)] = 64,
    steps_per_epoch: Annotated[int | None, typer.Option(min=1, help="Steps per epoch (default: a full pass over "
                                                        "the data once --epochs or --paper-size is given).")] = None,
    ngf: Annotated[int, typer.Option(min=1)] = 32,
    ndf: Annotated[int, typer.Option(min=1)] = 32,
    limit: Annotated[int | None, typer.Option(min=2, help="Use only the first N training images.")] = None,
    decoder_warmup: Annotated[int, typer.Option(min=0, help="Steps of decoder-only warm-up before joint "
                                                            "training (fresh runs).")] = 2000,
    fd: Annotated[bool, typer.Option("--fd/--no-fd", help="Per-epoch FD with the zoo classifier.")] = True,
    ema: Annotated[float, typer.Option("--ema", min=0.0, max=0.9999, help="EMA decay of E and G's weights for "
                                       "evaluation and the saved model (StyleGAN2's G_ema; 0 = off).")] = 0.0,
    decoder_only: Annotated[bool, typer.Option("--decoder-only", help="Immunise the decoder alone (with --perturb "
                                               "and --init-from): G, E unchanged, issued instances stay valid.")
                            ] = False,
    lambdas: Annotated[str | None, typer.Option(help="Eq. 5 weights adv,z,c,const (default 1,1,2,2).")] = None,
    fingerprint: Annotated[bool, typer.Option("--fingerprint/--no-fingerprint", help="--no-fingerprint trains the "
                                              "same recipe with the fingerprint off (the FD baseline).")] = True,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(min=1)] = 2,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    paper_size: Annotated[bool, typer.Option("--paper-size", help=f"{PAPER_EPOCHS} full epochs (the shipped "
                                             "model's run: about 2 h on 2 cores).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary on stdout.")] = False,
) -> None:
    """Train (or resume) the fingerprinting GAN on Fashion-MNIST; rerun the same command to resume.

    Without --epochs or --paper-size this is a short run (minutes): enough to see the pipeline work, not a
    usable fingerprint model. Prints its plan first (steps and the expected time from a few timed steps)."""
    from genattr.errors import ConfigError
    from genattr.watermark.fingerprint_training import FingerprintTrainConfig, train_fingerprint

    if epochs is None and not paper_size:
        epochs, steps_per_epoch = QUICK_EPOCHS, steps_per_epoch or QUICK_STEPS
    epochs = epochs if epochs is not None else PAPER_EPOCHS
    ws = warm_start if warm_start and warm_start.lower() != "none" and init_from is None else None
    if ws and not Path(ws).is_dir():  # a zoo name
        from genattr import zoo

        ws = str(zoo.verify(ws))
    try:
        pert = json.loads(perturb) if perturb else None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--perturb must be JSON: {exc}") from exc
    lam: dict[str, Any] = {}
    if lambdas is not None:
        try:
            lam["lambdas"] = tuple(float(v) for v in lambdas.split(","))
        except ValueError as exc:
            raise ConfigError(f"--lambdas must be four numbers adv,z,c,const: {exc}") from exc
    cfg = FingerprintTrainConfig(**lam, code_bits=bits, epochs=epochs, warm_start=ws, demodulate=demodulate,
                                 perturb=pert,
                                 code_pool=code_pool, batch_size=batch_size, steps_per_epoch=steps_per_epoch,
                                 ngf=ngf, ndf=ndf, limit=limit, seed=seed, threads=threads,
                                 decoder_warmup_steps=decoder_warmup,
                                 ema_decay=ema, fingerprint=fingerprint, decoder_only=decoder_only,
                                 init_from=str(init_from.resolve()) if init_from is not None else None)
    fd_fn = None
    if fd:
        from genattr.evaluation.yu2022 import zoo_fd_fn

        fd_fn = zoo_fd_fn(cfg.fd_n)
    _plan_train(cfg, out, paper_size)
    res = train_fingerprint(cfg, out, progress=progress, fd_fn=fd_fn)
    last = res.history[-1] if res.history else {}
    if as_json:
        print(json.dumps({"out": str(out), "model": str(out / "model"), "epochs": res.epochs_done,
                          "seconds": res.seconds, "bit_accuracy": last.get("bit_accuracy")}))
        return
    score = (f"bit accuracy {last.get('bit_accuracy', float('nan')):.4f}" if fingerprint
             else f"FD {last.get('fd', float('nan')):.2f}")
    console.print(f"trained {res.epochs_done} epochs in {res.seconds:.0f} s; {score}; model saved to "
                  f"{out / 'model'}", highlight=False)


def _plan_train(cfg: Any, out: Path, paper_size: bool) -> None:
    """Print the plan with the expected time from three timed training steps (in a scratch directory)."""
    import dataclasses
    import tempfile
    import time

    from genattr.cli.common import print_plan
    from genattr.watermark.fingerprint_training import train_fingerprint

    probe = dataclasses.replace(cfg, epochs=1, steps_per_epoch=3, decoder_warmup_steps=0, limit=cfg.batch_size * 4)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train_fingerprint(probe, Path(tmp), progress=False)
        per_step = (time.perf_counter() - t0) / 3  # includes set-up: an upper bound for short runs
    steps = cfg.epochs * (cfg.steps_per_epoch or (cfg.limit or 60_000) // cfg.batch_size)
    print_plan(f"fingerprint train: {cfg.code_bits}-bit model", {
        "training": f"{cfg.epochs} epoch(s) × {cfg.steps_per_epoch or 'all'} steps (batch {cfg.batch_size}) = "
                    f"{steps} steps, " + (f"after {cfg.decoder_warmup_steps} decoder warm-up steps (fresh runs)"
                                          if cfg.fingerprint else "fingerprint off (the same-recipe baseline)"),
        "output": f"{out} (rerun the same command to resume)"},
        estimate_s=per_step * steps,
        paper_size_hint=None if paper_size else f"--paper-size: {PAPER_EPOCHS} full epochs (hours).")


@fingerprint_app.command("ship")
@clean_errors
def ship_cmd(
    run: Annotated[Path, typer.Option("--run", help="A training run directory (uses RUN/best, the best "
                                      "validation epoch, else RUN/model) or a model dir.")],
    dest: Annotated[Path | None, typer.Option(help="Shipping directory (default: models/yu2022).")] = None,
    variant: Annotated[str, typer.Option(help="Name of the shipped variant.")] = DEFAULT_VARIANT,
    examples: Annotated[int, typer.Option(min=1, help="Example users registered in a new index.")] = 100,
    force: Annotated[bool, typer.Option(help="Replace an existing variant.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary on stdout.")] = False,
) -> None:
    """Ship a trained model: copy it to DEST/VARIANT, register example users, write the sha256 manifest."""
    from genattr.watermark.fingerprint_shipping import ship

    # a run's best validation epoch (RUN/best) if it kept one, else its last (RUN/model), else a model dir
    src = next((run / d for d in ("best", "model") if (run / d).is_dir()), run)
    man = ship(src, dest or shipped_dir(), variant=variant, n_examples=examples, force=force)
    if as_json:
        print(json.dumps({"variant": variant, "dest": str(dest or shipped_dir()),
                          "bits": man["variants"][variant]["bits"], "users": man["index"]["users"]}))
        return
    console.print(f"shipped {variant} ({man['variants'][variant]['bits']} bits) to {dest or shipped_dir()}; "
                  f"registry holds {man['index']['users']} users", highlight=False)


@fingerprint_app.command("issue")
@clean_errors
def issue(
    user: Annotated[str, typer.Option("--user", help="Unique user name to register the fingerprint under.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the user's generator instance to.")],
    index: Annotated[Path | None, typer.Option("--index", help="Registry directory (default: the shipped one).")
                     ] = None,
    model: Annotated[Path | None, typer.Option("--model", help="Fingerprint model directory (default: shipped).")
                     ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Issue USER a fingerprinted generator instance and register its code."""
    import secrets
    import shutil
    import time

    import numpy as np

    from genattr.errors import ConfigError
    from genattr.watermark.fingerprint_index import MANIFEST, FingerprintIndex, locked

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists and is not empty; choose a new --out")
    fp = _load_model(model)
    idx_dir = _index_dir(index)
    t0 = time.perf_counter()
    with locked(idx_dir):
        reg = FingerprintIndex.load(idx_dir) if (idx_dir / MANIFEST).is_file() else FingerprintIndex(fp.code_bits)
        if reg.code_bits != fp.code_bits:
            raise ConfigError(f"registry {idx_dir} holds {reg.code_bits}-bit codes; the model uses {fp.code_bits}")
        if user in reg:
            raise ConfigError(f"user {user!r} is already registered in {idx_dir}; user names must be unique")
        rng = np.random.default_rng(secrets.randbits(128))
        code = reg.fresh_code(rng)
        inst = fp.instance(code)
        t_inst = time.perf_counter() - t0
        tmp = out.with_name(out.name + ".tmp-issue")
        if tmp.exists():
            shutil.rmtree(tmp)
        inst.save_pretrained(tmp, extra={"fingerprint": "yu2022", "bits": fp.code_bits})
        try:
            uid = reg.add(user, code)
            reg.save(idx_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if out.exists():
            out.rmdir()
        tmp.replace(out)
    info = {"user": user, "user_id": uid, "instance": str(out), "index": str(idx_dir), "registered": len(reg),
            "bits": fp.code_bits, "instance_seconds": round(t_inst, 4)}
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        console.print(f"issued {user!r} (user {uid} of {len(reg)}) a {fp.code_bits}-bit fingerprinted generator "
                      f"→ {out}", highlight=False)


@fingerprint_app.command("decode")
@clean_errors
def decode(
    images: Annotated[list[Path], typer.Argument(help="PNG/JPEG images (32×32 grey) to decode.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    index: Annotated[Path | None, typer.Option("--index", help="Registry directory (default: the shipped one).")
                     ] = None,
    model: Annotated[Path | None, typer.Option("--model", help="Fingerprint model directory (default: shipped).")
                     ] = None,
    rule: Annotated[str, typer.Option(help="'registry' (k_N: N·P(Bin ≥ k) ≤ alpha) or 'fixed' (121/128 scaled).")
                    ] = "registry",
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.01,
) -> None:
    """Decode each image's fingerprint and name the registered user (k, p-value), or unknown."""
    import torch
    from rich.markup import escape
    from rich.table import Table

    from genattr.cli.common import read_model_images
    from genattr.errors import ConfigError
    from genattr.watermark.fingerprint_index import FingerprintIndex

    fp = _load_model(model)
    reg = FingerprintIndex.load(_index_dir(index))
    if reg.code_bits != fp.code_bits:
        raise ConfigError(f"registry holds {reg.code_bits}-bit codes; the model decodes {fp.code_bits}")
    if rule not in ("registry", "fixed"):
        raise ConfigError(f"--rule must be 'registry' or 'fixed', got {rule!r}")
    good, bad = [], {}
    for i, p in enumerate(images):  # no padding or cropping: the decoder reads 32×32 images only
        x, _, err = read_model_images([p], "L" if fp.channels == 1 else "RGB", None)  # type: ignore[arg-type]
        if err:
            bad[i] = err[0]
        elif x is not None and tuple(x.shape[1:]) != (fp.channels, 32, 32):
            bad[i] = f"image is {x.shape[-1]}×{x.shape[-2]}; the decoder reads 32×32 images"
        else:
            good.append((i, x))
    rows: dict[int, dict[str, Any]] = {}
    if good:
        bits = fp.decode(torch.cat([x for _, x in good]))
        for (i, _), m, b in zip(good, reg.identify(bits.numpy(), rule=rule, alpha=alpha), bits, strict=True):
            rows[i] = {"path": str(images[i]), **m.to_dict(), "p_value": json_float(m.p_value),
                       "bits": "".join(map(str, b.tolist()))}
    for i, msg in bad.items():
        warn(f"skipped {images[i]}: {msg}")
    out = [rows[i] if i in rows else {"path": str(p), "error": bad[i]} for i, p in enumerate(images)]
    if as_json:  # the genattr.verdict/1 shape of `genattr attribute`, with the fingerprint evidence only
        from genattr.cli.attribute_cmds import emit_results
        from genattr.unified.single import fingerprint_verdicts

        vs = fingerprint_verdicts(fp, reg, torch.cat([x for _, x in good]), name=str(_index_dir(index)), rule=rule,
                                  alpha=alpha) if good else []
        emit_results(list(images), dict(zip([i for i, _ in good], vs, strict=True)), bad, registered=len(reg),
                     bits=reg.code_bits, rule=rule, threshold=reg.threshold(rule, alpha))
    else:
        t = reg.threshold(rule, alpha)
        table = Table(title=escape(f"fingerprints ({reg.code_bits} bits, {len(reg)} registered, "
                                   f"accept k ≥ {t})"))
        for col in ("image", "user", "matched bits", "p-value"):
            table.add_column(col)
        for r in out:
            if "error" in r:
                table.add_row(escape(r["path"]), "[red]error[/]", escape(r["error"]), "")
            else:
                who = r["user"] if r["user"] is not None else f"unknown (nearest {r['nearest']})"
                table.add_row(escape(r["path"]), escape(str(who)), f"{r['matched_bits']}/{reg.code_bits}",
                              f"{r['p_value']:.3g}")
        console.print(table)
    if bad:
        raise typer.Exit(1)


@clean_errors
def reproduce_yu2022_cmd(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Results directory (default: a fresh "
                                             "runs/reproduce/yu2022-TIMESTAMP).")] = None,
    write_docs: Annotated[bool, typer.Option("--write-docs", help="Write to docs/results/yu2022, replacing the "
                                             "committed results (needs --paper-size).")] = False,
    paper_size: Annotated[bool, typer.Option("--paper-size", help=PAPER_SIZE_HELP)] = False,
    models: Annotated[Path | None, typer.Option(help="Directory holding fp64/ and immunised variants "
                                                     "(default: models/yu2022).")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="Run only these experiments (repeatable): "
                                                   "accuracy, fidelity, distinct, capacity, attribution, "
                                                   "false_attribution, robustness, table2.")] = None,
    quick: Annotated[bool, typer.Option("--quick", hidden=True)] = False,
    threads: Annotated[int, typer.Option(min=1)] = 2,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a setting, KEY=VALUE (repeatable; "
                                                   "tuples comma-separated), e.g. --set table2_steps=1000.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary on stdout.")] = False,
) -> None:
    """Yu et al. (ICLR 2022) scalable fingerprints: every experiment → OUT (JSON + README.md)."""
    from genattr.cli.common import deprecated, parse_set, prepare_reproduce, reproduce_done
    from genattr.evaluation.settings import override_fields
    from genattr.evaluation.yu2022 import Yu2022Config, reproduce_yu2022
    from genattr.evaluation.yu2022.experiments import DEFAULT_EXPERIMENTS

    if quick:
        deprecated("--quick", "nothing (small sizes are the default; --paper-size for the real run)")
    cfg = Yu2022Config(models=str(models) if models else None, threads=threads,
                       experiments=tuple(only) if only else DEFAULT_EXPERIMENTS)
    if not paper_size:
        cfg.n_codes, cfg.fd_n, cfg.robustness_n, cfg.attribution_n = 1000, 2000, 200, 50
        cfg.registry_size, cfg.n_real, cfg.distinct_codes, cfg.table2_steps = 100_000, 1000, 200, 200
        cfg.baseline_train_per_source, cfg.baseline_epochs = 100, 4
    cfg = override_fields(cfg, parse_set(set_), what="yu2022 setting")
    out_dir, _, _ = prepare_reproduce("yu2022", out=out, models=None, write_docs=write_docs, ship=False,
                                      paper_size=paper_size, only=only, set_=set_)
    reproduce_yu2022(cfg, out_dir)
    reproduce_done("yu2022", out_dir / "README.md", out_dir, None, as_json)


__all__ = ["fingerprint_app", "reproduce_yu2022_cmd", "shipped_dir"]
