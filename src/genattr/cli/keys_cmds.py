"""`genattr keys …`: decentralized attribution with registry keys (Kim, Ren & Yang, ICLR 2021).

    genattr keys issue --n 10 --out models/kim2021/orthogonal            # the registry issues keys
    genattr keys finetune --keys models/kim2021/orthogonal --user user-000 \\
        --out models/kim2021/orthogonal/user-000 [--robust jpeg]         # a user keys its copy of G0
    genattr keys verify --keys models/kim2021/orthogonal img.png … [--json]   # anyone verifies

``issue`` generates data-compliant, orthogonal unit keys (Eq. 8; ``--angle 45`` for the baseline) from real
images and root-model samples, checks each on held-out real images and fresh root samples before issuing it,
and writes ``keys.safetensors`` + ``keys.json`` atomically. ``finetune`` turns the root model into the user's
keyed model (hinge + C·MSE, or Alg. 1; robust against a post-process). ``verify`` scores images against all
keys: the user whose key alone fires, or UNKNOWN (none fired, or several: ambiguous).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from genattr.cli.common import clean_errors, console

keys_app = typer.Typer(help="Registry keys and keyed user models (Kim, Ren & Yang, ICLR 2021).",
                       no_args_is_help=True)

ROOT_DEFAULT = "fmnist-dcgan-s0"


def load_root(spec: str) -> Any:
    """A zoo model name or a ``save_pretrained`` directory."""
    from genattr.generators import Generator

    if Path(spec).is_dir():
        return Generator.from_pretrained(spec)
    from genattr import zoo

    return zoo.load(spec)


def load_real(spec: str, limit: int | None = None) -> tuple[Any, Any]:
    """(training, held-out) real images: ``fmnist`` = Fashion-MNIST train / test at 32×32; a folder of images
    = its first half / second half (sorted)."""
    if spec == "fmnist":
        from genattr.data import load_fashion_mnist

        train, test = load_fashion_mnist("train").to_model(32), load_fashion_mnist("test").to_model(32)
    else:
        from genattr.data import load_image_folder
        from genattr.errors import DataError

        x = load_image_folder(spec, size=None)[0]
        if x.shape[0] < 2:
            raise DataError(f"{spec}: need at least 2 real images (half to train on, half held out)")
        half = x.shape[0] // 2
        train, test = x[:half], x[half:]
    return (train if limit is None else train[:limit]), test


def _command() -> str:
    return shlex.join(["genattr", *sys.argv[1:]]) if sys.argv and "genattr" in Path(sys.argv[0]).name \
        else "genattr keys …"


@keys_app.command("issue")
@clean_errors
def issue(
    n: Annotated[int, typer.Option("--n", min=1, help="Number of keys (users) to issue.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New key-set directory (must not exist).")],
    root: Annotated[str, typer.Option(help="Root model G0: zoo name or save_pretrained directory.")] = ROOT_DEFAULT,
    real: Annotated[str, typer.Option(help="'fmnist' (train to fit, test held out) or an image folder.")
                    ] = "fmnist",
    angle: Annotated[float, typer.Option(help="Angle between keys in degrees: 90 = orthogonal; 45 = the "
                                              "paper's failing baseline.")] = 90.0,
    mask_border: Annotated[bool, typer.Option(help="Keys only on the 28×28 content area (ablation).")] = False,
    lowpass: Annotated[int, typer.Option(min=0, help="Smooth keys (our extension): only 2-D DCT frequencies "
                                         "u + v < LOWPASS on the 28×28 content area; 0 = the paper's keys.")] = 0,
    users: Annotated[str | None, typer.Option(help="Comma-separated user names (default user-000, …).")] = None,
    n_train: Annotated[int, typer.Option(min=1, help="Real images to fit keys on.")] = 60_000,
    n_root: Annotated[int, typer.Option(min=1, help="Root-model samples to fit keys on.")] = 20_000,
    n_heldout: Annotated[int, typer.Option(min=1, help="Fresh root samples for the compliance check.")] = 10_000,
    steps: Annotated[int, typer.Option(min=1, help="Adam steps per block of keys.")] = 150,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    probe: Annotated[bool, typer.Option("--probe/--no-probe", help="Time a short key optimisation first to print "
                                        "the expected time.")] = True,
) -> None:
    """Issue N data-compliant keys (Eq. 8), each checked on held-out images before it is issued.

    Prints its plan first (sizes, expected time from a quick probe), then a progress bar per phase. The
    defaults are the paper's sizes and take a few minutes on 2 cores for ten keys."""
    import torch

    from genattr.errors import ConfigError
    from genattr.sampling import derive_seed
    from genattr.watermark.keys import (
        KeyGenConfig,
        KeySet,
        border_mask,
        check_user_names,
        compliance_report,
        default_users,
        generate_keys,
        save_keys,
    )

    names = [u.strip() for u in users.split(",")] if users else default_users(n)
    if len(names) != n:
        raise ConfigError(f"--users names {len(names)} users for --n {n}")
    check_user_names(names)
    if out.exists():
        raise ConfigError(f"{out} already exists; choose another --out or remove it")
    from genattr.cli.common import print_plan, progress_bars
    from genattr.progress import phase

    g0 = load_root(root)
    x_train, x_test = load_real(real, n_train)
    estimate = _probe_issue(g0, x_train, x_test, n, n_root + n_heldout, steps, angle) if probe else None
    print_plan(f"keys issue: {n} keys at {angle:g}° for {root}", {
        "fit on": f"{x_train.shape[0]} real ({real}) + {n_root} root samples, {steps} Adam steps per block",
        "compliance check": f"{x_test.shape[0]} held-out real + {n_heldout} fresh root samples",
        "output": str(out)}, estimate_s=estimate)
    gen = torch.Generator().manual_seed(derive_seed(seed, "kim2021", "root-samples"))
    with progress_bars():
        with phase("sampling (root model)", total=n_root + n_heldout) as advance:
            r_train = g0.sample(n_root, gen)
            advance(n_root)
            r_held = g0.sample(n_heldout, gen)
            advance(n_heldout)
        if tuple(r_train.shape[1:]) != tuple(x_train.shape[1:]):
            raise ConfigError(f"root model makes {tuple(r_train.shape[1:])} images, real images are "
                              f"{tuple(x_train.shape[1:])}")
        mask = border_mask(tuple(x_train.shape[1:])) if mask_border else None
        keys, info = generate_keys(n, x_train, r_train, real_heldout=x_test, root_heldout=r_held,
                                   angle_deg=angle, mask=mask, seed=derive_seed(seed, "kim2021", "keys"),
                                   config=KeyGenConfig(steps=steps, lowpass=lowpass))
    meta = {"angle_deg": angle, "root": root, "real": real, "border_masked": mask_border, "lowpass": lowpass,
            "seed": seed,
            "compliance": dict(zip(names, compliance_report(keys, x_test, r_held), strict=True)),
            "generation": info, "command": _command()}
    save_keys(KeySet(keys, tuple(names), meta), out)
    worst = max(max(v["max_real"], v["max_root"]) for v in meta["compliance"].values())
    if as_json:
        print(json.dumps({"out": str(out), "users": names, "seconds": info["seconds"], "worst_margin": worst}))
        return
    console.print(f"issued {n} keys ({angle:g}°) in {info['seconds']:.1f} s → {out}; every held-out real image "
                  f"and fresh root sample has φᵀx ≤ {worst:.4g} < 0", highlight=False)


@keys_app.command("finetune")
@clean_errors
def finetune_cmd(
    user: Annotated[str, typer.Option("--user", help="The user whose key to embed.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New directory for the user's model (save_pretrained).")],
    key: Annotated[Path | None, typer.Option("--keys", help="Key-set directory (from `keys issue`).")] = None,
    robust: Annotated[str | None, typer.Option(help="Train against a post-process: blur, crop, noise, jpeg or "
                                                    "combination (starts from --start if given).")] = None,
    root: Annotated[str, typer.Option(help="Root model G0: zoo name or save_pretrained directory.")] = ROOT_DEFAULT,
    start: Annotated[Path | None, typer.Option(help="Continue from this keyed model (robust training starts "
                                                    "from the non-robust user model).")] = None,
    mode: Annotated[str, typer.Option(help="'hinge' (Eq. 11, the tables) or 'alg1' (Algorithm 1).")] = "hinge",
    steps: Annotated[int, typer.Option(min=1)] = 600,
    c: Annotated[float | None, typer.Option("--C", min=0.0, help="Weight of the MSE to G0 (default 10; with "
                                            "--robust the C validated for that post-process, e.g. blur 0.3).")
                 ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(min=1)] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary on stdout.")] = False,
    key_alias: Annotated[Path | None, typer.Option("--key", hidden=True)] = None,
) -> None:
    """Fine-tune the root model into USER's keyed model and save it to OUT (atomically).

    Prints its plan (steps, expected time from the first steps' speed) and a progress bar with an ETA."""
    import torch

    from genattr.cli.common import renamed_option
    from genattr.errors import ConfigError
    from genattr.generators import Generator
    from genattr.watermark.keys import load_keys
    from genattr.watermark.kim_training import FinetuneConfig, finetune, save_user_model

    key = renamed_option(key, key_alias, "--keys", "--key", usage=("`keys finetune --key`", "`keys finetune --keys`"))
    if key is None:
        raise ConfigError("give the key set with --keys DIR (from `genattr keys issue`)")
    ks = load_keys(key)
    phi = ks.key(user)
    if c is None:
        from genattr.evaluation.kim2021.config import ROBUST, Kim2021Config

        c = Kim2021Config().robust_c(robust) if robust in ROBUST else 10.0
    cfg = FinetuneConfig(mode=mode, steps=steps, C=c, batch_size=batch_size, robust=robust, seed=seed)
    if out.exists():
        raise ConfigError(f"{out} already exists; choose another --out or remove it")
    g0 = load_root(root)
    begin = Generator.from_pretrained(start) if start is not None else None
    real = load_real(ks.meta.get("real", "fmnist"))[1] if mode == "alg1" else None
    from genattr.cli.common import err_console, print_plan, progress_bars

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        import time

        finetune(g0, phi, FinetuneConfig(**{**cfg.__dict__, "steps": 1, "mode": "hinge"}), start=begin)  # warm-up
        t0 = time.perf_counter()
        finetune(g0, phi, FinetuneConfig(**{**cfg.__dict__, "steps": 4, "mode": "hinge"}), start=begin)
        per_step = (time.perf_counter() - t0) / 4
        print_plan(f"keys finetune: {user}'s keyed model from {root}", {
            "training": f"{steps} steps ({mode}), batch {batch_size}, C = {c:g}" + (f", robust to {robust}"
                                                                                  if robust else ""),
            "output": str(out)}, estimate_s=per_step * steps * (3 if mode == "alg1" else 1))
        say = err_console if as_json else console
        with progress_bars():
            g, info = finetune(g0, phi, cfg, real=real, start=begin,
                               log=lambda m: say.print(f"  {m}", highlight=False))
    finally:
        torch.set_num_threads(old)
    extra = {"kim2021": {"user": user, "key_index": ks.users.index(user), "key_set": str(key), "root": root,
                         "robust": robust, "start": str(start) if start else None,
                         "training": {k: v for k, v in info.items() if k != "history"}}}
    save_user_model(g, out, extra=extra)
    if as_json:
        print(json.dumps({"user": user, "out": str(out), "steps": info["steps"], "seconds": info["seconds"],
                          "seconds_per_step": info["seconds_per_step"]}))
        return
    console.print(f"{user}: {info['steps']} steps in {info['seconds']:.1f} s "
                  f"({1000 * info['seconds_per_step']:.1f} ms/step) → {out}", highlight=False)


def _probe_issue(g0: Any, x_train: Any, x_test: Any, n: int, n_samples: int, steps: int, angle: float) -> float:
    """Expected seconds for `keys issue`: root sampling per image, and one key block at a tenth of the steps
    (the optimisation works on a fixed pool of 4096 images, so its cost hardly depends on the data size)."""
    import contextlib
    import math
    import time

    import torch

    from genattr.errors import GenattrError
    from genattr.watermark.keys import KeyGenConfig, generate_keys

    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    r = g0.sample(512, gen)
    per_sample = (time.perf_counter() - t0) / 512
    k = max(1, steps // 10)
    t0 = time.perf_counter()
    with contextlib.suppress(GenattrError):  # a probe that issues nothing still measured the block
        generate_keys(1 if angle >= 90 else 2, x_train[:2048], r, real_heldout=x_test[:256], root_heldout=r[:256],
                      angle_deg=angle, seed=0, config=KeyGenConfig(steps=k, max_attempts=1), allow_fewer=True)
    per_block = (time.perf_counter() - t0) * steps / k
    return per_sample * n_samples + per_block * math.ceil(n / 20)


def _check_channels(paths: list[Path], channels: int) -> None:
    from PIL import Image

    from genattr.attribution.base import InvalidInputError

    for p in paths:
        try:
            with Image.open(p) as im:
                bands = [b for b in im.getbands() if b != "A"]
        except OSError:
            continue  # read_image reports unreadable files
        if im.mode == "P":
            bands = ["R", "G", "B"]
        if len(bands) != channels:
            raise InvalidInputError(f"{p}: {len(bands)}-channel image ({im.mode}); the keys are for "
                                    f"{channels}-channel images")


@keys_app.command("verify")
@clean_errors
def verify(
    keys: Annotated[Path, typer.Option("--keys", help="Key-set directory.")],
    images: Annotated[list[Path], typer.Argument(help="PNG/JPEG files to verify.")],
    threshold: Annotated[float, typer.Option(help="A key fires when φᵀx ≥ this (the verifier: 0).")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Which registered user's key fires on each image: the user, or UNKNOWN (none, or several: ambiguous)."""
    from rich.table import Table

    from genattr.attribution.keys import KeyAttributor
    from genattr.data import load_images
    from genattr.watermark.keys import load_keys

    ks = load_keys(keys)
    att = KeyAttributor(threshold=threshold).fit(ks.as_candidates())
    c = ks.image_shape[0]
    _check_channels(list(images), c)
    x = load_images(list(images), mode="L" if c == 1 else "RGB", size=None)
    res = att.attribute(x)
    rows = []
    for i, p in enumerate(images):
        fired = [ks.users[j] for j in res.extras["fired"][i].nonzero().flatten().tolist()]
        rows.append({"path": str(p), "user": res.labels[i], "margin": float(res.extras["margin"][i]),
                     "n_fired": len(fired), "keys_fired": fired, "ambiguous": len(fired) > 1})
    if as_json:  # the genattr.verdict/1 shape of `genattr attribute`, with the keys' evidence only
        from genattr.cli.attribute_cmds import emit_results
        from genattr.unified.single import keys_verdicts

        vs = keys_verdicts(ks, x, name=str(keys), threshold=threshold)
        emit_results(list(images), dict(enumerate(vs)), {}, keys=str(keys), n_keys=len(ks), threshold=threshold)
        return
    table = Table(title=f"kim2021 keys: {len(ks)} users, a key fires at φᵀx ≥ {threshold:g}")
    for col in ("image", "user", "margin (max φᵀx)", "keys fired"):
        table.add_column(col)
    for r in rows:
        fired = ", ".join(r["keys_fired"][:5]) + (" …" if r["n_fired"] > 5 else "")
        table.add_row(r["path"], r["user"] + (" (ambiguous)" if r["ambiguous"] else ""), f"{r['margin']:.4g}",
                      f"{r['n_fired']}" + (f": {fired}" if fired else ""))
    console.print(table)


__all__ = ["keys_app", "load_real", "load_root"]
