"""zhang2020 output files: atomic JSON and PNG writes, line plots and the reconstruction figure."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["line_plot", "reconstruction_figure", "savefig", "write_json"]


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    tmp.replace(path)
    return path


def savefig(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)
    return path


def line_plot(path: Path, xs: Sequence[float], series: Mapping[str, Sequence[float]], *, xlabel: str, ylabel: str,
               title: str) -> Path:
    from genattr.figures import figure

    fig = figure(4.5, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    for label, ys in series.items():
        ax.plot(list(xs), list(ys), marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return savefig(fig, path)


def reconstruction_figure(path: Path, x: torch.Tensor, recons: torch.Tensor, names: Sequence[str],
                          true: Sequence[int], pred: Sequence[int]) -> Path:
    """Rows: images; columns: the target and each candidate's best reconstruction (winner in green)."""
    from genattr.figures import figure

    n, k = x.shape[0], len(names)
    fig = figure(1.3 * (k + 1), 1.3 * n + 0.4)
    axes = fig.subplots(n, k + 1, squeeze=False)
    for i in range(n):
        cols = [(x[i], f"target ({names[true[i]]})", "black")]
        cols += [(recons[i, j], names[j], "green" if j == pred[i] else "black") for j in range(k)]
        for c, (img, title, color) in enumerate(cols):
            ax = axes[i][c]
            ax.imshow(((img[0].clamp(-1, 1) + 1) / 2).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0 or c == 0:
                ax.set_title(title, fontsize=6, color=color)
            else:
                for s in ax.spines.values():
                    s.set_color(color)
    fig.tight_layout()
    return savefig(fig, path)
