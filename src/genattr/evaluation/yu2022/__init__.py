"""`genattr reproduce yu2022`: the experiments of Yu et al. (ICLR 2022) on a 32×32 fingerprinting model.

See :mod:`genattr.evaluation.yu2022.experiments` (``reproduce_yu2022``) and ``docs/yu2022.md``.
"""

from genattr.evaluation.yu2022.experiments import EXPERIMENTS, Yu2022Config, reproduce_yu2022, zoo_fd_fn

__all__ = ["EXPERIMENTS", "Yu2022Config", "reproduce_yu2022", "zoo_fd_fn"]
