"""What a component hands the combining policy for one image: its :class:`Evidence` plus the numbers the rules use."""

from __future__ import annotations

from dataclasses import dataclass, field

from genattr.unified.conformal import PValue
from genattr.unified.verdict import Evidence


@dataclass
class Finding:
    """One component's result for one image.

    ``answer``: the component's own verdict (model name, real, unknown, ambiguous). ``strong``: the answer is
    decisive by itself (a log hit, exactly one key fired significantly, a fingerprint match): later methods are
    skipped. ``p``: the p-value the confidence comes from (detection methods: H0 "not from the answer"; passive
    methods: the credibility of ``answer``). ``candidates``: passive methods' credibility per candidate (model
    names and ``real``), used to form the prediction set.
    """

    evidence: Evidence
    answer: str | None
    strong: bool = False
    p: PValue | None = None
    candidates: dict[str, PValue] = field(default_factory=dict)
    component: str = ""


__all__ = ["Finding"]
