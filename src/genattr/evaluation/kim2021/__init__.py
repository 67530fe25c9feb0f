"""Experiments of Kim, Ren & Yang (ICLR 2021) for `genattr reproduce kim2021` (see :mod:`.experiments`)."""

from genattr.evaluation.kim2021.experiments import (
    COMMAND,
    EXPERIMENTS,
    PAPER,
    Kim2021Config,
    quick_config,
    reproduce_kim2021,
    ship,
    write_report,
)

__all__ = ["COMMAND", "EXPERIMENTS", "PAPER", "Kim2021Config", "quick_config", "reproduce_kim2021", "ship",
           "write_report"]
