"""`genattr reproduce zhang2020`: the experiments of Zhang et al. 2020 ("Not my deepfake") on the zoo."""

from genattr.evaluation.zhang2020.experiments import (
    EXPERIMENTS,
    PAPER,
    Zhang2020Config,
    quick_config,
    reproduce_zhang2020,
    write_report,
)

__all__ = ["EXPERIMENTS", "PAPER", "Zhang2020Config", "quick_config", "reproduce_zhang2020", "write_report"]
