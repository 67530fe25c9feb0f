"""How alike are the zoo generators' final layers? (FLIPAD inverts only the final layer.)

    python benchmarks/zoo_final_layers.py [--out docs/zoo/final_layers.md]

Prints each generator's final-layer weight norm and the cosine similarity of every pair with the same
final-layer shape, and writes the table to ``--out``. Generators of one architecture started from the same
seed stay close after a short training run, and no final-layer method can then tell them apart; the zoo
target is no pair above cosine 0.3.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from genattr import zoo

LIMIT = 0.3


def pairwise(weights: dict[str, torch.Tensor]) -> list[tuple[str, str, float]]:
    return [(a, b, float(torch.nn.functional.cosine_similarity(weights[a], weights[b], dim=0)))
            for a, b in itertools.combinations(sorted(weights), 2) if weights[a].shape == weights[b].shape]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/zoo/final_layers.md"))
    args = ap.parse_args()
    weights = {name: zoo.load(name).final_layer.weight.detach().flatten().double() for name in zoo.names()}
    man = zoo.manifest()
    lines = ["# Final-layer similarity of the zoo generators", "",
             f"Zoo manifest version {man.get('zoo_version', 1)}; cosine similarity of the flattened final-layer "
             f"weights of every pair with the same final-layer shape (target: none above {LIMIT}).", "",
             "| model | final-layer norm | size |", "| --- | --- | --- |"]
    for name, w in weights.items():
        print(f"{name:20s} norm {float(w.norm()):.3f}  shape-size {w.numel()}")
        lines.append(f"| {name} | {float(w.norm()):.3f} | {w.numel()} |")
    print()
    lines += ["", "| model A | model B | cosine |", "| --- | --- | --- |"]
    pairs = pairwise(weights)
    for a, b, cos in pairs:
        print(f"{a:20s} {b:20s} cosine {cos:+.3f}")
        lines.append(f"| {a} | {b} | {cos:+.3f} |")
    worst = max(pairs, key=lambda p: abs(p[2]), default=None)
    if worst:
        verdict = "met" if abs(worst[2]) <= LIMIT else "**not met**"
        lines += ["", f"Largest |cosine|: {abs(worst[2]):.3f} ({worst[0]} vs {worst[1]}): target {verdict}."]
        print(f"\nlargest |cosine| {abs(worst[2]):.3f} ({worst[0]} vs {worst[1]})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
