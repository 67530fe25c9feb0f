"""The evaluation runner every ``genattr reproduce …`` uses: a fitted attributor, named sources and a
perturbation grid in; a tidy results table (CSV + JSON) and confusion-matrix / ROC plots out."""

from genattr.evaluation.plots import plot_confusion_matrix, plot_roc
from genattr.evaluation.runner import ALL, COLUMNS, EvaluationResult, evaluate
from genattr.sampling import SamplingSource, Source, derive_seed, draw, source_size

__all__ = [
    "ALL", "COLUMNS", "EvaluationResult", "SamplingSource", "Source", "derive_seed", "draw", "evaluate",
    "plot_confusion_matrix", "plot_roc", "source_size",
]
