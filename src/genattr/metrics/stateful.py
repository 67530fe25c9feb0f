"""Thin stateful wrappers: accumulate batches with ``update``, then ``compute`` calls the functional core.

They exist so that evaluation loops can stream batches; all arithmetic lives in ``functional.py``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from genattr.metrics import functional as MF
from genattr.metrics.functional import _np


class _Accumulator:
    """Concatenates the arrays passed to ``update`` (one list per positional argument)."""

    n_inputs = 2

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._parts: list[list[np.ndarray]] = [[] for _ in range(self.n_inputs)]

    def update(self, *arrays: Any) -> None:
        if len(arrays) != self.n_inputs:
            raise TypeError(f"{type(self).__name__}.update takes {self.n_inputs} arrays, got {len(arrays)}")
        conv = [_np(a) for a in arrays]
        if len({a.shape[0] for a in conv}) != 1:
            raise ValueError("update arrays differ in length")
        for part, a in zip(self._parts, conv, strict=True):
            part.append(a)

    @property
    def n(self) -> int:
        return int(sum(a.shape[0] for a in self._parts[0]))

    def _arrays(self) -> list[np.ndarray]:
        return [np.concatenate(p) if p else np.empty(0) for p in self._parts]

    def compute(self) -> Any:
        raise NotImplementedError


class Accuracy(_Accumulator):
    def compute(self) -> float:
        return MF.accuracy(*self._arrays())


class BalancedAccuracy(_Accumulator):
    def compute(self) -> float:
        return MF.balanced_accuracy(*self._arrays())


class ConfusionMatrix(_Accumulator):
    def __init__(self, labels: Sequence[Hashable] | None = None) -> None:
        self.labels = None if labels is None else list(labels)
        super().__init__()

    def compute(self) -> np.ndarray:
        return MF.confusion_matrix(*self._arrays(), labels=self.labels)


class RocAuc(_Accumulator):
    """``update(y_true_binary, scores)``."""

    def compute(self) -> float:
        return MF.roc_auc(*self._arrays())


class TprAtFpr(_Accumulator):
    def __init__(self, target_fpr: float = 0.01) -> None:
        self.target_fpr = target_fpr
        super().__init__()

    def compute(self) -> float:
        return MF.tpr_at_fpr(*self._arrays(), self.target_fpr)


class BitAccuracy(_Accumulator):
    """``update(bits_true, bits_pred)`` with (n, n_bits) arrays."""

    def compute(self) -> float:
        return MF.bit_accuracy(*self._arrays())  # type: ignore[return-value]


class FrechetDistance:
    """Streams two feature sets as running sums (float64), so features need not be kept in memory.

    ``update(features, which)`` with ``which`` 0 or 1; ``compute()`` → Fréchet distance.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._n = [0, 0]
        self._sum: list[np.ndarray | None] = [None, None]
        self._outer: list[np.ndarray | None] = [None, None]

    def update(self, features: Any, which: int) -> None:
        if which not in (0, 1):
            raise ValueError("which must be 0 or 1")
        f = _np(features).astype(np.float64)
        f = f.reshape(f.shape[0], -1)
        s, o = f.sum(axis=0), f.T @ f
        self._n[which] += f.shape[0]
        self._sum[which] = s if self._sum[which] is None else self._sum[which] + s
        self._outer[which] = o if self._outer[which] is None else self._outer[which] + o

    def _stats(self, which: int) -> tuple[np.ndarray, np.ndarray]:
        n, s, o = self._n[which], self._sum[which], self._outer[which]
        if n < 2 or s is None or o is None:
            raise ValueError("need at least two samples in each feature set")
        mu = s / n
        return mu, (o - n * np.outer(mu, mu)) / (n - 1)

    def compute(self) -> float:
        return MF.frechet_distance_from_stats(*self._stats(0), *self._stats(1))


__all__ = ["Accuracy", "BalancedAccuracy", "BitAccuracy", "ConfusionMatrix", "FrechetDistance", "RocAuc",
           "TprAtFpr"]
