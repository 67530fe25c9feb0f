"""Evaluation metrics: a functional core (:mod:`genattr.metrics.functional`) and thin stateful wrappers
(:mod:`genattr.metrics.stateful`) for streaming batches."""

from genattr.metrics.functional import (
    ConfidenceInterval,
    FDRatio,
    accuracy,
    accuracy_at_fnr,
    balanced_accuracy,
    binomial_p_value,
    bit_accuracy,
    bootstrap_ci,
    confusion_matrix,
    fd_ratio,
    feature_stats,
    frechet_distance,
    frechet_distance_from_stats,
    roc_auc,
    roc_curve,
    threshold_at_fnr,
    threshold_at_fpr,
    tpr_at_fpr,
)
from genattr.metrics.stateful import (
    Accuracy,
    BalancedAccuracy,
    BitAccuracy,
    ConfusionMatrix,
    FrechetDistance,
    RocAuc,
    TprAtFpr,
)

__all__ = [
    "Accuracy", "BalancedAccuracy", "BitAccuracy", "ConfidenceInterval", "ConfusionMatrix", "FDRatio",
    "FrechetDistance", "RocAuc", "TprAtFpr", "accuracy", "accuracy_at_fnr", "balanced_accuracy",
    "binomial_p_value", "bit_accuracy", "bootstrap_ci", "confusion_matrix", "fd_ratio", "feature_stats",
    "frechet_distance", "frechet_distance_from_stats", "roc_auc", "roc_curve", "threshold_at_fnr",
    "threshold_at_fpr", "tpr_at_fpr",
]
