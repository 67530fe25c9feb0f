"""The combining policy: from every component's findings for one image to one answer and its confidence.

The rules, in order (docs/attribute.md has the prose and the reasons):

1. **log** — an exact pixel-hash hit with a verified inclusion proof, logged by a registered model → that model,
   confidence 1.
2. **kim-keys** — exactly one key fires and its p-value (H0: not that user) ≤ ``alpha_detect`` → that user;
   several keys fire, in one key set or across sets → ``several_keys``: ``ambiguous`` (several users claim it),
   ``unknown`` (Kim et al.'s Eq. 2: not attributable) or ``defer`` (the keys are inconclusive — e.g. an
   unregistered model's images, off the manifold the keys were checked on, fire keys at random — and rules 3–4
   decide).
3. **yu2022** — the decoded code matches a registered code with m · N · P(Bin(d_c, ½) ≥ k) ≤ ``alpha_fingerprint``
   (default ``alpha_detect``) → that user (N registered codes of that decoder; Bonferroni over the m decoders
   that read the image). A fingerprinted image matches with p ≈ 1e-15, so a level far below the keys' costs
   little and cuts real images falsely attributed (their expected rate is the level itself).
   (Two decisive findings that disagree — two logs, two key sets — → ``ambiguous``.)
4. **classifier + flipad** — conformal prediction set: candidate c (a model or ``real``) stays in the set when its
   combined credibility — Bonferroni over the classifiers that know c and c's detector, p_c = min(1, k · min p) —
   is ≥ ``alpha`` (threshold-only components by their own threshold). Candidates that are not registered models
   are dropped. Tie-break: a candidate goes
   when a classifier that does not know it rejects every model of its architecture it knows while accepting
   another member of the set. One left → it; none → ``unknown``; several → ``ambiguous``.
5. **seed-reconstruction** (``deep=True``) — breaks an ``ambiguous`` tie among classifier candidates: the one with
   the smallest reconstruction distance (Zhang et al.'s Eq. 5 restricted to the set). It never overrides 1–4.

Confidence = 1 − p of the strongest alternative: rules 2–3, 1 − their p-value; rule 4, 1 − the largest combined
credibility among the candidates *not* in the answer; 0 when no p-value exists to judge by (uncalibrated
components).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from genattr.errors import ConfigError
from genattr.unified.conformal import PValue
from genattr.unified.findings import Finding
from genattr.unified.verdict import AMBIGUOUS, REAL, UNKNOWN

DECISIVE = ("log", "kim-keys", "yu2022")
SEVERAL_KEYS = ("ambiguous", "unknown", "defer")


@dataclass(frozen=True)
class Policy:
    """The settings of the combining rules. Chosen on a validation split, never on the test split."""

    alpha: float = 0.005  # credibility level: reject candidate c when p_c < alpha (classifiers, detectors)
    alpha_detect: float = 0.01  # family-wise level of the watermark methods (keys, fingerprints)
    top: int = 3  # candidates listed per classifier
    deep_top: int = 3  # shortlist size for seed reconstruction
    deep_restarts: int = 3
    deep_steps: int = 200
    several_keys: str = "ambiguous"  # several keys fired: one of SEVERAL_KEYS (rule 2)
    alpha_fingerprint: float | None = None  # family-wise level of rule 3; None: alpha_detect

    def __post_init__(self) -> None:
        if self.several_keys not in SEVERAL_KEYS:
            raise ConfigError(f"policy several_keys must be one of {', '.join(SEVERAL_KEYS)}, "
                              f"got {self.several_keys!r}")
        for k in ("alpha", "alpha_detect", "alpha_fingerprint"):
            v = getattr(self, k)
            if v is None and k == "alpha_fingerprint":
                continue
            if not isinstance(v, int | float) or not 0 < float(v) < 1:
                raise ConfigError(f"policy {k} must lie in (0, 1), got {v!r}")
        for k in ("top", "deep_top", "deep_restarts"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"policy {k} must be a positive integer, got {v!r}")
        if not isinstance(self.deep_steps, int) or self.deep_steps < 0:
            raise ConfigError(f"policy deep_steps must be a non-negative integer, got {self.deep_steps!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Policy:
        if not data:
            return cls()
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(data) - known)
        if bad:
            raise ConfigError(f"unknown policy settings {bad}; known: {sorted(known)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class Decision:
    answer: str
    confidence: float
    decided_by: str | None
    prediction_set: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _conf(p: PValue | None) -> float:
    """1 − p, or 0 when there is no p-value (or only a lower bound, which says nothing against the null)."""
    if p is None or p.bound == "lower":
        return 0.0
    return max(0.0, min(1.0, 1.0 - p.value))


def combine(ps: Sequence[PValue], extra_tests: int = 0) -> PValue:
    """A candidate's combined credibility over the components that judged it, Bonferroni: p = min(1, k · min p_i)
    over the k exact p-values (``extra_tests`` more still to come), so rejecting at alpha loses at most a fraction
    alpha of the candidate's own images however many components judge it. A threshold-only component's reject
    (an "upper" bound) rejects; its accept ("lower") leaves the decision to the others."""
    upper = [p for p in ps if p.bound == "upper"]
    if upper:
        return PValue(min(p.value for p in upper), "upper")
    exact = [p.value for p in ps if p.bound == "exact"]
    if not exact:
        return PValue(min(p.value for p in ps), "lower") if ps else PValue(1.0, "lower")
    return PValue(min(1.0, (len(exact) + extra_tests) * min(exact)))


def decide(findings: Sequence[Finding], policy: Policy, registered: Callable[[str], bool] | None = None,
           architecture: Callable[[str], str | None] | None = None) -> Decision:
    """Apply the rules (module docstring) to one image's findings. ``registered(name)``: may the answer name this
    model; ``architecture(name)``: its architecture (registry), for the tie-break of rule 4."""
    by: dict[str, list[Finding]] = {}
    for f in findings:
        by.setdefault(f.evidence.method, []).append(f)
    for method in DECISIVE:
        d = decisive(method, by.get(method, []), policy)
        if d is not None:
            return d
    return _passive(by.get("classifier", []) + by.get("flipad", []), policy, registered, architecture)


def _fired(findings: Sequence[Finding]) -> list[str]:
    """The users (models) whose keys fired, over every key set that judged the image."""
    return sorted({str(k.get("model") or k.get("user")) for f in findings
                   for k in (f.evidence.details.get("fired") or []) if isinstance(k, dict)})


def decisive(method: str, findings: Sequence[Finding], policy: Policy) -> Decision | None:
    """Rules 1–3 for one method's findings on one image: the decision, or None when the method leaves the image
    to the later ones. Kim et al.'s Eq. 2 counts positive keys over *all* registered keys, so several keys that
    fired in different key sets are "several keys" too (``policy.several_keys``)."""
    if method == "kim-keys":
        fired = _fired(findings)
        if len(fired) > 1:
            if policy.several_keys == "defer":
                return None
            strong = [f for f in findings if f.strong] or list(findings)
            if policy.several_keys == "unknown":
                return Decision(UNKNOWN, 0.0, method, (), (f"{len(fired)} keys fired ({', '.join(fired)}): not "
                                                          "attributable (Kim et al. Eq. 2 needs exactly one)",))
            return Decision(AMBIGUOUS, min(_conf(f.p) for f in strong), method, tuple(fired),
                            (f"{len(fired)} keys fired: several users claim the image",))
    if method == "yu2022":
        return _fingerprint_decision(findings, policy)
    strong = [f for f in findings if f.strong]
    if not strong:
        return None
    answers = sorted({f.answer for f in strong if f.answer is not None})
    if len(answers) > 1:
        conf = min(_conf(f.p) for f in strong)
        return Decision(AMBIGUOUS, conf, method, tuple(answers), ("decisive findings disagree",))
    f = strong[0]
    conf = 1.0 if method == "log" else _conf(f.p)
    return Decision(f.answer or UNKNOWN, conf, method)


def _fingerprint_decision(findings: Sequence[Finding], policy: Policy) -> Decision | None:
    """Rule 3. Every decoder that read the image is one more chance that uniform bits match some registered code,
    so its p-value (N · P(Bin ≥ k), over its own registry) is multiplied by m, the number of decoders that ran
    (Bonferroni); the component's own k_N threshold alone would let m decoders add up their false matches."""
    ran = [(f, f.p.value) for f in findings if f.p is not None]
    m = max(1, len(ran))
    level = policy.alpha_detect if policy.alpha_fingerprint is None else policy.alpha_fingerprint
    strong = [(f, PValue(min(1.0, m * p))) for f, p in ran if f.strong and m * p <= level]
    if not strong:
        return None
    answers = sorted({f.answer for f, _ in strong if f.answer is not None})
    conf = min(_conf(p) for _, p in strong)
    if len(answers) > 1:
        return Decision(AMBIGUOUS, conf, "yu2022", tuple(answers), ("decisive findings disagree",))
    note = (f"Bonferroni over {m} fingerprint decoders",) if m > 1 else ()
    return Decision(strong[0][0].answer or UNKNOWN, conf, "yu2022", (), note)


def _architecture_tiebreak(accepted: list[str], findings: Sequence[Finding], alpha: float,
                           architecture: Callable[[str], str | None]) -> tuple[list[str], list[str]]:
    """Rule 4's tie-break: drop candidate c from an ambiguous set when a classifier that does not know c knows
    other models of c's architecture, rejects every one of them, and accepts another member of the set (it
    judges by architecture where it cannot judge by model; e.g. an architectures classifier vs a seeds one)."""
    keep, notes = list(accepted), []
    for c in accepted:
        arch = architecture(c)
        if arch is None:
            continue
        for f in findings:
            if f.evidence.method != "classifier" or c in f.candidates:
                continue
            same = [o for o in f.candidates if architecture(o) == arch]
            others = [o for o in accepted if o != c and o in f.candidates and f.candidates[o].accepts(alpha)]
            if same and others and not any(f.candidates[o].accepts(alpha) for o in same):
                keep.remove(c)
                notes.append(f"{c} dropped from the tie: {f.component} rejects every {arch} model it knows and "
                             f"accepts {others[0]}")
                break
    return keep, notes


def _passive(findings: Sequence[Finding], policy: Policy, registered: Callable[[str], bool] | None,
             architecture: Callable[[str], str | None] | None = None) -> Decision:
    if not findings:
        return Decision(UNKNOWN, 0.0, None, (), ("no passive component judged this image",))
    pv: dict[str, list[PValue]] = {}
    for f in findings:
        for c, p in f.candidates.items():
            pv.setdefault(c, []).append(p)
    combined = {c: combine(ps) for c, ps in pv.items()}
    accepted = [c for c, p in combined.items() if p.accepts(policy.alpha)]
    notes: list[str] = []
    if registered is not None:
        dropped = [c for c in accepted if c != REAL and not registered(c)]
        if dropped:
            notes.append(f"accepted but not registered: {', '.join(dropped)}")
            accepted = [c for c in accepted if c not in dropped]
    if len(accepted) > 1 and architecture is not None:
        kept, why = _architecture_tiebreak(accepted, findings, policy.alpha, architecture)
        if kept:  # never tie-break everything away
            accepted, notes = kept, notes + why
    inside = set(accepted)
    alts = [combined[c] for c in combined if c not in inside]
    if not alts:
        conf = 0.0  # nothing outside the answer was judged: no alternative to measure the answer against
    else:
        worst = max(alts, key=lambda p: p.value)
        conf = 0.0 if worst.bound == "lower" else max(0.0, min(1.0, 1.0 - worst.value))
    by = "classifier" if any(f.evidence.method == "classifier" for f in findings) else "flipad"
    if len(accepted) == 1:
        return Decision(accepted[0], conf, by, tuple(accepted), tuple(notes))
    if not accepted:
        return Decision(UNKNOWN, conf, by, (), tuple(notes))
    return Decision(AMBIGUOUS, conf, by, tuple(sorted(accepted)), tuple(notes))


def break_tie(decision: Decision, deep: Finding | None) -> Decision:
    """Rule 5: seed reconstruction picks among an ambiguous prediction set."""
    if deep is None or decision.answer != AMBIGUOUS or deep.answer not in decision.prediction_set \
            or decision.decided_by not in ("classifier", "flipad"):
        return decision
    return Decision(deep.answer, decision.confidence, "seed-reconstruction", decision.prediction_set,
                    (*decision.notes, f"ambiguous among {', '.join(decision.prediction_set)}; the closest "
                                      "reconstruction decided"))


__all__ = ["DECISIVE", "SEVERAL_KEYS", "Decision", "Policy", "break_tie", "combine", "decide", "decisive"]
