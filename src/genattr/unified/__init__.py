"""One question, one answer: ``genattr.attribute(images)`` → one :class:`Verdict` per image.

The pipeline consults every registered attribution component, cheapest first — a trusted generation log, Kim et
al.'s registry keys, Yu et al.'s fingerprint decoders, closed-set classifiers confirmed or rejected by each
model's own FLIPAD detector, and (``deep=True``) seed reconstruction over the shortlist — and combines their
evidence by a written-down policy (docs/attribute.md) into a registered model's name, ``real``, ``unknown`` or
``ambiguous``, with a confidence made comparable across methods by conformal p-values.

Layering: imports attribution, watermark, generators, data, ledger and registry; never evaluation, cli or service.
"""

from genattr.unified.conformal import Calibration, PValue
from genattr.unified.pipeline import Pipeline, attribute
from genattr.unified.policy import Policy
from genattr.unified.verdict import (
    AMBIGUOUS,
    METHODS,
    REAL,
    SCHEMA_VERSION,
    UNKNOWN,
    Evidence,
    Verdict,
    results_json,
    results_json_schema,
    verdict_json_schema,
)

__all__ = ["AMBIGUOUS", "METHODS", "REAL", "SCHEMA_VERSION", "UNKNOWN", "Calibration", "Evidence", "PValue", "Pipeline",
           "Policy", "Verdict", "attribute", "results_json", "results_json_schema",
           "verdict_json_schema"]
