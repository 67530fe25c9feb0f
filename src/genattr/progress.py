"""Progress of long loops, reported by phase (sampling, inversion, training, calibration, …).

Library loops call :func:`phase`; it costs nothing unless a front-end (the CLI) has installed a reporter
with :func:`reporting`, which shows one Rich progress bar per phase with its own ETA on stderr. Library code
never prints progress by itself, so a notebook or a server that calls it stays quiet.

    with phase("inversion", total=n) as advance:
        for chunk in chunks:
            ...
            advance(len(chunk))

Only the standard library is imported at module level (Rich lazily, by :func:`reporting`), so every layer
may use this module.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any, Protocol

__all__ = ["Reporter", "active", "phase", "reporting", "rich_progress", "stage"]


class Reporter(Protocol):
    def start(self, name: str, total: int | None) -> Any: ...
    def advance(self, handle: Any, k: int) -> None: ...
    def finish(self, handle: Any) -> None: ...


_REPORTER: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar("genattr_progress", default=None)
_STAGE: contextvars.ContextVar[str] = contextvars.ContextVar("genattr_progress_stage", default="")


def active() -> bool:
    """Whether a reporter is installed (library code with its own display should then stay quiet)."""
    return _REPORTER.get() is not None


def _noop(k: int = 1) -> None:
    pass


@contextlib.contextmanager
def phase(name: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """Report one phase of work; yields ``advance(k=1)``. A no-op without a reporter."""
    rep = _REPORTER.get()
    if rep is None:
        yield _noop
        return
    prefix = _STAGE.get()
    handle = rep.start(f"{prefix}: {name}" if prefix else name, total)

    def advance(k: int = 1) -> None:
        rep.advance(handle, k)

    try:
        yield advance
    finally:
        rep.finish(handle)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Prefix the phases reported inside with ``name`` (e.g. "calibration: inversion")."""
    token = _STAGE.set(name)
    try:
        yield
    finally:
        _STAGE.reset(token)


def rich_progress(console: Any = None, *, label: str = "[bold]{task.description}") -> Any:
    """The Rich progress display the front-ends show: label, bar, done/total, elapsed, ETA, left on screen
    (on ``console``, by default a new one on stderr)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=console or Console(stderr=True), transient=False)


class _RichReporter:
    """One Rich progress display; each phase is a task (bar, done/total, elapsed, ETA) left on screen."""

    def __init__(self, console: Any = None) -> None:
        self.progress = rich_progress(console)

    def start(self, name: str, total: int | None) -> Any:
        return self.progress.add_task(name, total=total)

    def advance(self, handle: Any, k: int) -> None:
        self.progress.advance(handle, k)

    def finish(self, handle: Any) -> None:
        task = next((t for t in self.progress.tasks if t.id == handle), None)
        if task is not None and task.total is not None:
            self.progress.update(handle, completed=task.total)
        self.progress.stop_task(handle)


@contextlib.contextmanager
def reporting(console: Any = None, reporter: Reporter | None = None) -> Iterator[Reporter]:
    """Install a reporter (default: Rich bars on stderr, or on ``console``) for the phases run inside."""
    if reporter is not None:
        token = _REPORTER.set(reporter)
        try:
            yield reporter
        finally:
            _REPORTER.reset(token)
        return
    rich_rep = _RichReporter(console)
    token = _REPORTER.set(rich_rep)
    try:
        with rich_rep.progress:
            yield rich_rep
    finally:
        _REPORTER.reset(token)
