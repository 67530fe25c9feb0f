"""Matplotlib figures without pyplot's global state (safe in threads, servers and tests): a low-level helper
every part that draws (evaluation plots, fingerprint visualisation, method reports) shares."""

from __future__ import annotations

from typing import Any


def figure(width: float, height: float, *, dpi: int = 100) -> Any:
    """A ``matplotlib.figure.Figure`` of ``width`` × ``height`` inches bound to an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


__all__ = ["figure"]
