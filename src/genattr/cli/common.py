"""What every CLI module shares: consoles and the one-line error handling. No torch import here, so
command trees that do not need torch (the ledger) stay fast to start."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from genattr.errors import GenattrError

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    return typer.Exit(code)


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
