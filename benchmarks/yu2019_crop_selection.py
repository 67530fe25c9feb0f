"""Yu 2019 Table 7: choose the crop-immunisation training on the VALIDATION split, never the test split.

    PYTHONPATH=src python benchmarks/yu2019_crop_selection.py ft:4:0.001:8 ft:12:0.002:8 scratch:12:0.002:8

Each spec is ``kind:epochs:lr:width``: ``ft`` fine-tunes the shipped seeds net (``models/yu2019/seeds``) on
crop-attacked training images, ``scratch`` trains a fresh net with crop augmentation from the start. Prints
the validation accuracy (argmax over {real, dcgan-s0..s4}) on crop-attacked and on clean validation images.
"""

from __future__ import annotations

import argparse
import time

import torch

from genattr.attribution import Attributor
from genattr.evaluation.yu2019 import DataCache, Yu2019Config, make_ours
from genattr.perturbations import get_grid


def accuracy(att: Attributor, images: dict[str, torch.Tensor], transform: object | None, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    correct = total = 0
    for name, x in images.items():
        if transform is not None:
            x = transform.apply(x, transform.sample_params(x.shape[0], g)).float().clamp(-1, 1)  # type: ignore
        pred = att.decision_function(x).argmax(1).tolist()
        correct += sum(att.candidates_[i] == name for i in pred)
        total += len(pred)
    return correct / total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("specs", nargs="+", help="kind:epochs:lr:width, kind = ft or scratch")
    p.add_argument("--base", default="models/yu2019/seeds", help="the clean seeds-setup net to fine-tune")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = Yu2019Config()
    split = DataCache(cfg).split(cfg.seeds)
    crop = next(e for e in get_grid("yu2019-table7") if e.family == "crop").transform
    base = Attributor.load(args.base)
    print(f"base: val crop {accuracy(base, split.val, crop, 123):.4f}, clean {accuracy(base, split.val, None, 0):.4f}")
    for spec in args.specs:
        kind, epochs, lr, width = spec.split(":")
        t0 = time.perf_counter()
        if kind == "ft":
            att = base.clone().set_params(epochs=int(epochs), lr=float(lr))
            att.fit(split.train, init_from=base, augment=crop)
        else:
            att = make_ours(cfg, epochs=int(epochs), lr=float(lr), width=int(width)).fit(split.train, augment=crop)
        print(f"{spec}: val crop {accuracy(att, split.val, crop, 123):.4f}, clean "
              f"{accuracy(att, split.val, None, 0):.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
