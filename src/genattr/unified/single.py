"""Verdicts from one method alone: what ``classify predict``, ``flipad score``, ``keys verify`` and ``fingerprint
decode`` print with ``--json`` — the same ``genattr.verdict/1`` shape as ``genattr attribute``, with the evidence of
their one method (so a script reads every command's output the same way)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from genattr.unified.active import FingerprintComponent, KeysComponent
from genattr.unified.findings import Finding
from genattr.unified.passive import ClassifierComponent, DetectorComponent
from genattr.unified.policy import Policy, decide
from genattr.unified.verdict import UNKNOWN, Verdict


def one_method_verdicts(findings: Sequence[Finding], policy: Policy | None = None,
                        image_bytes: Sequence[bytes | None] | None = None) -> list[Verdict]:
    """The method's own answer per image, with the confidence the combining policy gives it on its own."""
    pol = policy or Policy()
    out = []
    for i, f in enumerate(findings):
        d = decide([f], pol)
        answer = f.answer or UNKNOWN
        data = image_bytes[i] if image_bytes is not None else None
        out.append(Verdict(answer, d.confidence if d.answer == answer else 0.0, None, (f.evidence,),
                           hashlib.sha256(data).hexdigest() if data is not None else None, f.evidence.method,
                           d.notes))
    return out


def classifier_verdicts(att: Any, x: torch.Tensor, *, name: str, top: int = 3, result: Any = None,
                        policy: Policy | None = None) -> list[Verdict]:
    """``result``: ``att.attribute(x)`` if already computed."""
    pol = policy or Policy()
    return one_method_verdicts(ClassifierComponent(name, att).run(x, pol.alpha, top, result=result), pol)


def detector_verdicts(att: Any, x: torch.Tensor, *, name: str, scores: torch.Tensor | None = None,
                      policy: Policy | None = None) -> list[Verdict]:
    """``scores``: ``att.decision_function(x)`` if already computed."""
    pol = policy or Policy()
    return one_method_verdicts(DetectorComponent(name, att).run(x, pol.alpha, scores=scores), pol)


def keys_verdicts(keyset: Any, x: torch.Tensor, *, name: str, threshold: float = 0.0,
                  policy: Policy | None = None) -> list[Verdict]:
    pol = policy or Policy()
    return one_method_verdicts(KeysComponent(name, keyset, threshold=threshold).run(x, pol.alpha_detect), pol)


def fingerprint_verdicts(model: Any, index: Any, x: torch.Tensor, *, name: str, rule: str = "registry",
                         alpha: float = 0.01, policy: Policy | None = None) -> list[Verdict]:
    return one_method_verdicts(FingerprintComponent(name, model, index, alpha=alpha, rule=rule).run(x), policy)


__all__ = ["classifier_verdicts", "detector_verdicts", "fingerprint_verdicts", "keys_verdicts", "one_method_verdicts"]
