"""What the one-call pipeline answers: :class:`Evidence` (one method's finding) and :class:`Verdict` (the answer for
one image, with every method's evidence), their JSON form (``"schema": "genattr.verdict/1"``) and its JSON Schema.

JSON conventions (the same as every ``--json`` output of the CLI): floats that are not finite are the strings
``"inf"``, ``"-inf"`` and ``"nan"`` (JSON has no infinities); tensors and arrays become lists; nothing else but
JSON values, so the output of :meth:`Verdict.to_json` goes through ``json.dumps(..., allow_nan=False)``.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = "genattr.verdict/1"
#: the methods, cheapest first (the order evidence is listed in)
METHODS = ("log", "kim-keys", "yu2022", "classifier", "flipad", "seed-reconstruction")
#: answers that are not model names
REAL, UNKNOWN, AMBIGUOUS = "real", "unknown", "ambiguous"
SPECIAL_ANSWERS = (REAL, UNKNOWN, AMBIGUOUS)


def json_clean(value: Any, _depth: int = 0) -> Any:
    """A JSON-able copy of ``value``: non-finite floats as strings, tensors/arrays as lists, tuples as lists,
    bytes as hex. Anything else that JSON cannot hold is a TypeError (a bug in the caller, not user input)."""
    if _depth > 32:
        raise TypeError("evidence details nest deeper than 32 levels")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if hasattr(value, "detach") and hasattr(value, "tolist"):  # torch tensor (not imported here)
        return json_clean(value.detach().cpu().tolist(), _depth + 1)
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy array or scalar
        return json_clean(value.tolist(), _depth + 1)
    if isinstance(value, Mapping):
        return {str(k): json_clean(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [json_clean(v, _depth + 1) for v in value]
    raise TypeError(f"cannot put a {type(value).__name__} into verdict JSON")


def png_data_url(image: Any) -> str:
    """One image (C, H, W) in [-1, 1] (a torch tensor) as a ``data:image/png;base64,…`` URL (for the web page)."""
    import numpy as np
    import torch
    from PIL import Image

    a = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    pil = Image.fromarray(a[0], mode="L") if a.shape[0] == 1 else Image.fromarray(np.ascontiguousarray(
        a[:3].transpose(1, 2, 0)), mode="RGB")
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass(frozen=True)
class Evidence:
    """What one method found for one image.

    ``method``: one of :data:`METHODS`. ``verdict``: the method's own answer (a model name, ``real``,
    ``unknown`` or ``ambiguous``), or None when the method was skipped (``details["skipped"]`` says why).
    ``p_value``: the method's p-value under the null hypothesis named in ``details["null"]`` (see
    docs/attribute.md); None when skipped or when the method has no calibration. ``details``: JSON-able facts
    (keys fired and margins, decoded bits, top candidates with scores, the detector's score and threshold, …).
    """

    method: str
    verdict: str | None
    p_value: float | None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.p_value is not None:
            p = float(self.p_value)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"p_value must lie in [0, 1], got {p}")
            object.__setattr__(self, "p_value", p)

    @property
    def skipped(self) -> bool:
        return self.verdict is None

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "verdict": self.verdict, "p_value": self.p_value,
                "details": json_clean(self.details)}


def skipped(method: str, reason: str, **details: Any) -> Evidence:
    """Evidence for a method that was not run on this image, and why."""
    return Evidence(method, None, None, {"skipped": reason, **details})


@dataclass(frozen=True)
class Verdict:
    """The answer for one image: a registered model's name, ``real``, ``unknown`` or ``ambiguous``; the
    ``confidence`` in [0, 1] (docs/attribute.md: 1 − the p-value of the strongest alternative); the registry id of
    the answer when it is a registered model; every method's evidence, cheapest first; the sha256 of the image
    file's bytes when they were given; and the method that decided (``decided_by``, None when nothing did)."""

    answer: str
    confidence: float
    model_id: str | None
    evidence: tuple[Evidence, ...]
    image_sha256: str | None
    decided_by: str | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.answer, str) or not self.answer:
            raise ValueError("answer must be a non-empty string")
        c = float(self.confidence)
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"confidence must lie in [0, 1], got {c}")
        object.__setattr__(self, "confidence", c)
        object.__setattr__(self, "evidence", tuple(self.evidence))
        object.__setattr__(self, "notes", tuple(str(n) for n in self.notes))

    def evidence_of(self, method: str) -> list[Evidence]:
        return [e for e in self.evidence if e.method == method]

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, "answer": self.answer, "confidence": self.confidence,
                "model_id": self.model_id, "image_sha256": self.image_sha256, "decided_by": self.decided_by,
                "notes": list(self.notes), "evidence": [e.to_json() for e in self.evidence]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verdict:
        """Inverse of :meth:`to_json` (details stay as parsed JSON)."""
        if data.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"not a {SCHEMA_VERSION} verdict (schema {data.get('schema')!r})")
        ev = tuple(Evidence(e["method"], e["verdict"], e["p_value"], dict(e["details"])) for e in data["evidence"])
        return cls(data["answer"], data["confidence"], data["model_id"], ev, data["image_sha256"],
                   data.get("decided_by"), tuple(data.get("notes") or ()))


def _schema_defs() -> dict[str, Any]:
    evidence = {
        "type": "object",
        "required": ["method", "verdict", "p_value", "details"],
        "additionalProperties": False,
        "properties": {
            "method": {"enum": list(METHODS)},
            "verdict": {"type": ["string", "null"]},
            "p_value": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "details": {"type": "object"},
        },
    }
    verdict = {
        "type": "object",
        "required": ["schema", "answer", "confidence", "model_id", "image_sha256", "evidence"],
        "properties": {
            "schema": {"const": SCHEMA_VERSION},
            "answer": {"type": "string", "minLength": 1,
                       "description": "a registered model name, or 'real', 'unknown', 'ambiguous'"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "model_id": {"type": ["string", "null"], "description": "registry id (sha256 of the weights)"},
            "image_sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
            "decided_by": {"anyOf": [{"enum": list(METHODS)}, {"type": "null"}]},
            "notes": {"type": "array", "items": {"type": "string"}},
            "evidence": {"type": "array", "items": {"$ref": "#/$defs/evidence"}},
            "path": {"type": "string"},
            "filename": {"type": "string"},
        },
    }
    error = {"type": "object", "required": ["error"], "not": {"required": ["answer"]},
             "properties": {"error": {"type": "string"}, "path": {"type": "string"},
                            "filename": {"type": "string"}}}
    results = {
        "type": "object",
        "required": ["schema", "results"],
        "properties": {"schema": {"const": SCHEMA_VERSION},
                       "results": {"type": "array",
                                   "items": {"oneOf": [{"$ref": "#/$defs/verdict"}, {"$ref": "#/$defs/error"}]}}},
    }
    return {"verdict": verdict, "evidence": evidence, "error": error, "results": results}


def verdict_json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of :meth:`Verdict.to_json`. Its ``$defs`` also hold ``results``, the
    ``{"schema", "results": [...]}`` envelope of the CLI and the service (see :func:`results_json_schema`), where an
    item is a verdict (perhaps with the file's ``path`` or ``filename``) or an ``error`` for an unreadable image."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://genattr.invalid/schema/verdict-1.json", "title": "genattr verdict",
            "description": f"One image's attribution ({SCHEMA_VERSION}); see docs/attribute.md.",
            "$ref": "#/$defs/verdict", "$defs": _schema_defs()}


def results_json_schema() -> dict[str, Any]:
    """JSON Schema of the ``{"schema": …, "results": [verdict or error, …]}`` envelope."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://genattr.invalid/schema/results-1.json", "title": "genattr results",
            "$ref": "#/$defs/results", "$defs": _schema_defs()}


def results_json(verdicts: Sequence[Verdict | Mapping[str, Any]], **extra: Any) -> dict[str, Any]:
    """The ``{"schema": …, "results": […]}`` envelope; items may be verdicts or prepared dicts (errors)."""
    return {"schema": SCHEMA_VERSION, **extra,
            "results": [v.to_json() if isinstance(v, Verdict) else dict(v) for v in verdicts]}


__all__ = ["AMBIGUOUS", "METHODS", "REAL", "SCHEMA_VERSION", "SPECIAL_ANSWERS", "UNKNOWN", "Evidence", "Verdict",
           "json_clean", "png_data_url", "results_json", "results_json_schema", "skipped", "verdict_json_schema"]
