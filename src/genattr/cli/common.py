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


def read_model_images(paths: list[Any], mode: str, size: int) -> tuple[Any, list[int], dict[int, str]]:
    """Decode image files one by one: (tensor of the good ones or None, their indices, {index: error} for the
    bad ones). A bad file is reported and skipped, never the end of the batch."""
    import torch

    from genattr.data import load_images

    good, idx, bad = [], [], {}
    for i, p in enumerate(paths):
        try:
            good.append(load_images([p], mode=mode, size=size))
            idx.append(i)
        except GenattrError as exc:
            bad[i] = str(exc)
        except OSError as exc:
            bad[i] = f"{exc.strerror or exc}: {exc.filename or p}"
    x = torch.cat(good) if good else None
    return x, idx, bad


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
