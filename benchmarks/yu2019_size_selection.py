"""Yu 2019 Tables 1 and 3 on zoo v2: choose training size, epochs and width on the VALIDATION split.

    PYTHONPATH=src python benchmarks/yu2019_size_selection.py --setup seeds 1500:4:0.002:8 6000:12:0.002:8

Each spec is ``n_train:epochs:lr:width``. Trains the attribution net on ``n_train`` images per source of the
setup (``seeds``: real + the zoo's DCGANs by seed; ``architectures``: real + one model per architecture) and
prints the closed-set accuracy (argmax) on the validation images (``n_val`` per source, drawn from their own
seed stream, never the test split). The converged zoo v2 generators carry much weaker artefacts than v1's
2-epoch models, so the v1 sizes no longer suffice; this is how the shipped defaults were re-chosen.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from genattr.evaluation.yu2019 import DataCache, Yu2019Config, make_ours


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("specs", nargs="+", help="n_train:epochs:lr:width")
    p.add_argument("--setup", choices=("seeds", "architectures"), default="seeds")
    p.add_argument("--n-val", type=int, default=400)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for spec in args.specs:
        n, epochs, lr, width = spec.split(":")
        cfg = replace(Yu2019Config(), n_train=int(n), n_val=args.n_val)
        sources = cfg.seeds if args.setup == "seeds" else cfg.architectures
        split = DataCache(cfg).split(sources)
        t0 = time.perf_counter()
        att = make_ours(cfg, epochs=int(epochs), lr=float(lr), width=int(width)).fit(split.train)
        correct = total = 0
        for name, x in split.val.items():
            pred = att.decision_function(x).argmax(1).tolist()
            correct += sum(att.candidates_[i] == name for i in pred)
            total += len(pred)
        print(f"{args.setup} {spec}: val {correct / total:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
