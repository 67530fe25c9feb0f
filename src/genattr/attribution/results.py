"""What an attribution returns: :class:`AttributionResult` and the shared open-set decision rule."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from genattr import UNKNOWN


def json_threshold(t: float) -> float | str:
    """A threshold as JSON: ±inf (closed set / reject everything) stay distinguishable as "-inf" / "inf"."""
    if math.isinf(t):
        return "inf" if t > 0 else "-inf"
    return "nan" if math.isnan(t) else t


@dataclass(frozen=True)
class AttributionResult:
    """The outcome of attributing a batch of n images among k candidates."""

    candidates: tuple[str, ...]
    scores: torch.Tensor  # (n, k) float, higher = more likely from that candidate
    labels: tuple[str, ...]  # n names from ``candidates`` or UNKNOWN
    thresholds: torch.Tensor  # (k,) float64, the thresholds used
    extras: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "extras", MappingProxyType(dict(self.extras)))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_unknown(self) -> torch.Tensor:
        return torch.tensor([lab == UNKNOWN for lab in self.labels], dtype=torch.bool)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (lists); tensor extras become nested lists."""

        def conv(v: Any) -> Any:
            if isinstance(v, torch.Tensor):
                return v.detach().cpu().tolist()
            if isinstance(v, np.ndarray):
                return v.tolist()
            return v

        return {"candidates": list(self.candidates), "scores": conv(self.scores), "labels": list(self.labels),
                "thresholds": [json_threshold(t) for t in conv(self.thresholds)],
                "extras": {k: conv(v) for k, v in self.extras.items()}}


def assign_labels(scores: torch.Tensor, thresholds: torch.Tensor, candidates: Sequence[str]) -> list[str]:
    """Open-set decision rule shared by all methods.

    A candidate is *accepted* for a sample if its score ≥ its threshold; the label is the accepted
    candidate with the highest score, or UNKNOWN if none is accepted. With thresholds at −inf this is the
    closed-set argmax.
    """
    if scores.ndim != 2 or scores.shape[1] != len(candidates) or thresholds.shape != (len(candidates),):
        raise ValueError("scores must be (n, k) and thresholds (k,) for k candidates")
    s = scores.detach().to(torch.float64).cpu()
    accepted = s >= thresholds.detach().to(torch.float64).cpu()
    masked = torch.where(accepted, s, torch.tensor(-math.inf, dtype=torch.float64))
    best = masked.argmax(dim=1).tolist()
    any_acc = accepted.any(dim=1).tolist()
    return [candidates[b] if ok else UNKNOWN for b, ok in zip(best, any_acc, strict=True)]




__all__ = ["AttributionResult", "assign_labels", "json_threshold"]
