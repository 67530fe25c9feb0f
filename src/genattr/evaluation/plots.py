"""Confusion-matrix and ROC figures, rendered with the Agg canvas directly (no pyplot, so importing this
never changes the user's matplotlib backend and works headless)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from genattr.figures import figure


def plot_confusion_matrix(matrix: np.ndarray, true_labels: Sequence[str], pred_labels: Sequence[str],
                          path: str | Path, *, title: str = "") -> Path:
    """Row-normalised colours (recall per true label), raw counts as annotations."""
    m = np.asarray(matrix, dtype=np.float64)
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    size = max(3.5, 0.6 * max(len(true_labels), len(pred_labels)) + 2.0)
    fig = figure(size, size * 0.9)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, vmin=0.0, vmax=1.0, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true label")
    ax.set_xticks(range(len(pred_labels)), labels=list(pred_labels), rotation=45, ha="right")
    ax.set_yticks(range(len(true_labels)), labels=list(true_labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], path: str | Path, *,
             title: str = "") -> Path:
    """One one-vs-rest ROC curve per candidate, with its AUC in the legend."""
    fig = figure(4.5, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})", linewidth=1.5)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    if curves:
        ax.legend(loc="lower right", fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


__all__ = ["plot_confusion_matrix", "plot_roc"]
