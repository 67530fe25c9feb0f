"""What every CLI module shares: consoles and the one-line error handling. No torch import here, so
command trees that do not need torch (the ledger) stay fast to start."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from genattr.errors import GenattrError

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: MESSAGE`` on stderr and return the Exit to raise. The message is escaped: it carries
    user-controlled text (paths, names) that Rich would otherwise read as markup (``[/x]`` is a traceback)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True, markup=True)
    return typer.Exit(code)


def warn(message: str) -> None:
    """A loud, escaped warning line on stderr (e.g. a model loaded without verification)."""
    err_console.print(f"[bold yellow]{escape(message)}[/]", highlight=False, soft_wrap=True, markup=True)


def json_float(v: float) -> float | str:
    """A float for JSON output: finite values as numbers; +inf, -inf and NaN as the strings "inf", "-inf" and
    "nan" (JSON has no infinities; ``null`` would make an open threshold (-inf) and a closed one (+inf)
    indistinguishable, and Python's ``Infinity`` is not JSON). Parse back with ``float(value)``."""
    v = float(v)
    if math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def load_model_dir(directory: Any, *, trust_unverified: bool) -> Any:
    """Load an attributor directory for a CLI command: verified against its manifest, or, with
    ``--trust-unverified`` and no manifest listing it, loaded with a loud warning on stderr."""
    from genattr.attribution.shipping import UNVERIFIED_WARNING, load_attributor_dir

    att, verified = load_attributor_dir(directory, trust_unverified=trust_unverified)
    if not verified:
        warn(UNVERIFIED_WARNING.format(path=directory))
    return att


def model_image_spec(att: Any, directory: Any) -> tuple[str, int]:
    """(Pillow mode, side) to read image files for ``att``, from its fitted (C, H, W) shape
    (``fitted_image_shape()`` / ``image_shape_``); grey for one channel, RGB for three."""
    from genattr.errors import DataError

    getter = getattr(att, "fitted_image_shape", None)
    shape = getter() if callable(getter) else getattr(att, "image_shape_", None)
    if not shape or len(shape) != 3:
        raise DataError(f"{directory}: the attributor records no fitted image shape; cannot prepare images for it")
    c, h, w = (int(v) for v in shape)
    if h != w:
        raise DataError(f"{directory}: fitted on {h}×{w} images; only square image files are supported")
    if c not in (1, 3):
        raise DataError(f"{directory}: fitted on {c}-channel images; image files give 1 (grey) or 3 (RGB)")
    return ("L" if c == 1 else "RGB"), h


# Colour is "real" when some pixel's channels differ by more than this many 8-bit levels (JPEG chroma noise
# on a grey picture stays below it).
COLOUR_TOLERANCE = 4


def _image_problem(path: Any, mode: str, size: int | None) -> str | None:
    """Why an image file is outside what a model of (``mode``, ``size``) was trained on, or None.

    Size: the model's own size, or 28×28 into a 32×32 model (the Fashion-MNIST padding every zoo model
    was trained with). Colour: a grey model given an image whose channels differ (decoding it to grey
    would answer about a different picture)."""
    from genattr.data import read_image

    rgb = read_image(path, mode="RGB")  # decodes every mode; grey files come back with equal channels
    _, h, w = rgb.shape
    problems = []
    if size is not None and (h, w) != (size, size) and not (size == 32 and (h, w) == (28, 28)):
        hint = ""
        if h == w and h % size == 0:
            hint = (f" (a ×{h // size} upscale? `genattr zoo sample` grids are previews; write the per-image "
                    f"{size}×{size} PNGs with `genattr zoo sample --out-dir DIR`)")
        problems.append(f"image is {w}×{h} but the model reads {size}×{size} images{hint}")
    if mode == "L":
        spread = int((rgb.max(axis=0).astype("int16") - rgb.min(axis=0).astype("int16")).max())
        if spread > COLOUR_TOLERANCE:
            problems.append("colour image but the model reads grey images (converting would discard the colour "
                            "it was not trained on)")
    return "; ".join(problems) or None


def read_model_images(paths: list[Any], mode: str, size: int | None, *, adapt: bool = False
                      ) -> tuple[Any, list[int], dict[int, str]]:
    """Decode image files one by one: (tensor of the good ones or None, their indices, {index: error} for the
    bad ones). A bad file is reported and skipped, never the end of the batch.

    An image outside the model's input distribution (another size, colour for a grey model) is refused with
    the reason: centre-cropping a 64×64 picture or turning RGB into grey and then answering with full
    confidence would be an answer about another image. ``adapt=True`` (the commands' ``--fit-images``)
    crops/pads and converts anyway, with a loud warning per image."""
    import torch

    from genattr.data import load_images

    good, idx, bad = [], [], {}
    for i, p in enumerate(paths):
        try:
            problem = _image_problem(p, mode, size)
            if problem is not None and not adapt:
                bad[i] = f"{problem}; refusing (pass --fit-images to centre-crop/pad and convert anyway)"
                continue
            if problem is not None:
                warn(f"WARNING: {p}: {problem}; centre-cropped/padded and converted because of --fit-images: "
                     "the answer is about the adapted image and is out of the model's distribution")
            good.append(load_images([p], mode=mode, size=size))
            idx.append(i)
        except GenattrError as exc:
            bad[i] = str(exc)
        except OSError as exc:
            bad[i] = f"{exc.strerror or exc}: {exc.filename or p}"
    x = torch.cat(good) if good else None
    return x, idx, bad


def emit_json(obj: Any) -> None:
    """One JSON document on stdout (everything else a command prints goes to stderr when --json is given)."""
    import json

    typer.echo(json.dumps(obj, indent=2, allow_nan=False, default=str))


def deprecated(old: str, new: str) -> None:
    """Say once, on stderr, that an old spelling still works but will go."""
    warn(f"note: {old} is deprecated; use {new}")


V = TypeVar("V")


def renamed_option(value: V | None, old_value: V | None, new: str, old: str, *,
                   usage: tuple[str, str] | None = None) -> V | None:
    """The value of an option given under its new name ``new`` or its hidden old name ``old``: the old one
    works, with a `deprecated` note (``usage``: the (old, new) spellings to show, default (old, new));
    both at once is a ConfigError."""
    if old_value is None:
        return value
    if value is not None:
        from genattr.errors import ConfigError

        raise ConfigError(f"give {new} only ({old} is its old spelling)")
    deprecated(*(usage or (old, new)))
    return old_value


def fmt_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def print_plan(title: str, rows: dict[str, Any], *, estimate_s: float | None = None, note: str | None = None,
               paper_size_hint: str | None = None) -> None:
    """The plan a long command prints before it starts (stderr): sizes, the expected time from a probe."""
    err_console.print(f"[bold]plan[/] {escape(title)}", highlight=False)
    for k, v in rows.items():
        err_console.print(f"  {escape(k)}: {escape(str(v))}", highlight=False)
    if estimate_s is not None:
        err_console.print(f"  expected time: about {fmt_seconds(estimate_s)} (from a quick probe on this machine)",
                          highlight=False)
    if note:
        err_console.print(f"  {escape(note)}", highlight=False, soft_wrap=True)
    if paper_size_hint:
        err_console.print(f"  {escape(paper_size_hint)}", highlight=False, soft_wrap=True)


def progress_bars() -> Any:
    """Rich progress bars with an ETA per phase on stderr, for the library phases run inside."""
    from genattr.progress import reporting

    return reporting(err_console)


def clean_errors(fn: F) -> F:
    """Decorator: user-facing errors become one line + exit 1 instead of a traceback (GENATTR_DEBUG=1 shows it)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except GenattrError as exc:
            if os.environ.get("GENATTR_DEBUG"):
                raise
            raise fail(str(exc) or type(exc).__name__) from None
        except OSError as exc:  # missing files, permissions, directories where files were expected
            if os.environ.get("GENATTR_DEBUG"):
                raise
            where = f": {exc.filename}" if exc.filename else ""
            raise fail(f"{exc.strerror or exc}{where}") from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper  # type: ignore[return-value]


def reproduce_dirs(paper: str, *, out: Any, models: Any, write_docs: bool, ship: bool, paper_size: bool
                   ) -> tuple[Any, Any]:
    """(results directory, models directory or None) for `genattr reproduce PAPER`.

    By default a run writes to a fresh run directory (runs/reproduce/PAPER-YYYYmmdd-HHMMSS) and ships nothing:
    docs/results/PAPER and models/PAPER (what the repository commits) are written only when asked, with
    --write-docs / --ship (or an explicit --out / --models), and only from a --paper-size run."""
    import time
    from pathlib import Path

    from genattr.errors import ConfigError

    if (write_docs or ship) and not paper_size:
        raise ConfigError("--write-docs / --ship replace the committed results and shipped models: only from a "
                          "--paper-size run (the default sizes are a smoke test whose numbers mean nothing)")
    if out is not None and write_docs:
        raise ConfigError("give --out or --write-docs, not both")
    if out is None:
        out = Path("docs/results") / paper if write_docs else \
            Path("runs/reproduce") / f"{paper}-{time.strftime('%Y%m%d-%H%M%S')}"
    if models is None and ship:
        models = Path("models") / paper
    return out, models


def reproduce_command(paper: str, *, out: Any, models: Any, write_docs: bool, ship: bool, paper_size: bool,
                      only: list[str] | None, set_: list[str] | None, extra: list[str] | None = None) -> str:
    """The command line recorded in the results (rebuilds exactly these results)."""
    import shlex

    parts = ["genattr", "reproduce", paper, *(["--paper-size"] if paper_size else []),
             *(["--write-docs"] if write_docs else ["--out", str(out)] if out is not None else []),
             *(["--ship"] if ship and models is None else ["--models", str(models)] if models is not None else []),
             *[a for e in only or [] for a in ("--only", e)], *[a for kv in set_ or [] for a in ("--set", kv)],
             *(extra or [])]
    return shlex.join(parts)


def plan_reproduce(paper: str, out: Any, models: Any, paper_size: bool, only: list[str] | None,
                   experiments: Any = None) -> None:
    print_plan(f"reproduce {paper}", {
        "experiments": ", ".join(only or experiments or ["all"]),
        "sizes": "the paper's (hours on 2 cores; wall times per table in docs/results/" + paper + "/README.md)"
        if paper_size else "smoke test (minutes; the numbers mean nothing)",
        "results": str(out), "ship models to": str(models) if models is not None else "nowhere (no --ship)"},
        paper_size_hint=None if paper_size else
        "--paper-size runs the real experiments; add --write-docs --ship to replace docs/results and models/.")


def prepare_reproduce(paper: str, *, out: Any, models: Any, write_docs: bool, ship: bool, paper_size: bool,
                      only: list[str] | None, set_: list[str] | None) -> tuple[Any, Any, str]:
    """What every `genattr reproduce PAPER` does before it runs: resolve the results and models directories
    (`reproduce_dirs`), record the command line (`reproduce_command`) and print the plan.

    Returns (results directory, models directory or None, command line)."""
    out_dir, models_dir = reproduce_dirs(paper, out=out, models=models, write_docs=write_docs, ship=ship,
                                         paper_size=paper_size)
    command = reproduce_command(paper, out=out, models=models, write_docs=write_docs, ship=ship,
                                paper_size=paper_size, only=only, set_=set_)
    plan_reproduce(paper, out_dir, models_dir, paper_size, only)
    return out_dir, models_dir, command


def parse_set(pairs: list[str] | None) -> dict[str, str]:
    """``--set KEY=VALUE`` options → {KEY: VALUE} (both stripped); ConfigError on an item without '='."""
    from genattr.errors import ConfigError

    items = {}
    for kv in pairs or []:
        if "=" not in kv:
            raise ConfigError(f"--set expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        items[k.strip()] = v.strip()
    return items


def reproduce_log(message: str, quiet: bool) -> None:
    """A progress line of a reproduce run: on stdout, or on stderr when stdout carries --json."""
    (err_console if quiet else console).print(message, highlight=False)


def reproduce_done(paper: str, report: Any, out: Any, models: Any, as_json: bool) -> None:
    """The last word of `genattr reproduce PAPER`: the JSON summary, or a "done → report" line."""
    if as_json:
        emit_json({"paper": paper, "report": str(report), "out": str(out),
                   "models": None if models is None else str(models)})
        return
    console.print(f"[bold green]{paper} done[/] → {escape(str(report))}")


# One wording for every `reproduce` command's --paper-size flag.
PAPER_SIZE_HELP = "The paper's sizes (hours on 2 cores). Default: smoke-test sizes (minutes, numbers meaningless)."
