"""``kim2021-keys``: the public linear verifiers of Kim, Ren & Yang (ICLR 2021) as one attributor.

A registry issued each user a unit key φ_i; user i's model was fine-tuned so that φ_iᵀx > 0 on its outputs,
while authentic images have φ_iᵀx < 0 for every key (data compliance). The score of candidate i is φ_iᵀx (all
keys at once: one (n × d)·(d × N) matrix product), and key i *fires* when φ_iᵀx ≥ its threshold (0 by
default, the verifier sign(φᵀx)).

Decision (Eq. 2's "exactly one positive key"): the label is the user whose key fires when exactly one fires;
UNKNOWN when none fires (authentic or unregistered content) **or when more than one fires** (ambiguous —
extras ``ambiguous``). With thresholds at −inf (closed set, e.g. after ``set_thresholds([-inf] * N)``) no key
is said to fire and the label is the arg-max, as the contract requires.

``fit({user: key})`` takes keys (C, H, W) or (1, C, H, W), or objects with a ``key`` attribute (a keyed user
model); keys must be unit-norm and of one shape. ``fit(..., real=images[, root=images])`` also checks data
compliance and refuses non-compliant keys.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch

from genattr import UNKNOWN
from genattr.attribution.base import AttributionResult, Attributor, Capabilities
from genattr.attribution.registry import register_attributor
from genattr.errors import ConfigError, DataError
from genattr.watermark.keys import check_compliance, check_keys, key_scores


@register_attributor("kim2021-keys")
class KeyAttributor(Attributor):
    """Scores φ_iᵀx for every registered key (Kim et al. 2021, §2 verifier f_φ(x) = sign(φᵀx))."""

    capabilities = Capabilities(needs_training_images=False, needs_generator_weights=False,
                                modifies_generators=True, supports_open_set=True)

    def __init__(self, *, threshold: float = 0.0, compliance_margin: float = 0.0) -> None:
        self.threshold = threshold
        self.compliance_margin = compliance_margin

    def _fit(self, candidates: Mapping[str, Any], **fit_params: Any) -> None:
        unknown = set(fit_params) - {"real", "root"}
        if unknown:
            raise ConfigError(f"kim2021-keys fit takes real= and root= images only, got {sorted(unknown)}")
        if not math.isfinite(float(self.threshold)):
            raise ConfigError(f"threshold must be finite, got {self.threshold}")
        keys = []
        for name, v in candidates.items():
            k = getattr(v, "key", v)
            if not isinstance(k, torch.Tensor):
                raise ConfigError(f"candidate {name!r}: expected a key tensor (C, H, W) or an object with a .key, "
                                  f"got {type(v).__name__}")
            if k.ndim == 4 and k.shape[0] == 1:
                k = k[0]
            if k.ndim != 3:
                raise DataError(f"key of {name!r} must be (C, H, W), got shape {tuple(k.shape)}")
            keys.append(check_keys(k, what=f"key of {name!r}"))
        shapes = {tuple(k.shape[1:]) for k in keys}
        if len(shapes) != 1:
            raise DataError(f"keys have different shapes {sorted(shapes)}")
        self.keys_ = torch.cat(keys)
        real, root = fit_params.get("real"), fit_params.get("root")
        if real is not None:
            check_compliance(self.keys_, real, root, margin=float(self.compliance_margin),
                             names=[f"key of {n!r}" for n in candidates])
        self.image_shape_ = list(self.keys_.shape[1:])
        self.thresholds_ = torch.full((len(keys),), float(self.threshold), dtype=torch.float64)

    def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
        return key_scores(self.keys_, x)

    def _fired(self, scores: torch.Tensor) -> torch.Tensor:
        thr = self.thresholds_.to(torch.float64)
        return (scores.to(torch.float64) >= thr) & torch.isfinite(thr)

    def _extras(self, x: torch.Tensor, scores: torch.Tensor) -> dict[str, Any]:
        fired = self._fired(scores)
        n_fired = fired.sum(1)
        return {"n_fired": n_fired, "ambiguous": n_fired > 1, "fired": fired,
                "margin": scores.max(1).values}

    def attribute(self, x: torch.Tensor) -> AttributionResult:
        res = super().attribute(x)
        amb = res.extras.get("ambiguous")
        if amb is None or not bool(amb.any()):
            return res
        labels = tuple(UNKNOWN if a else lab for lab, a in zip(res.labels, amb.tolist(), strict=True))
        return dataclasses.replace(res, labels=labels)


__all__ = ["KeyAttributor"]
