"""How alike are the zoo generators' final layers? (FLIPAD inverts only the final layer.)

    PYTHONPATH=src python benchmarks/zoo_final_layers.py

Prints each generator's final-layer weight norm and the cosine similarity of every pair with the same
final-layer shape. Generators of one architecture started from the same seed stay close after a short
training run, and no final-layer method can then tell them apart.
"""

from __future__ import annotations

import itertools

import torch

from genattr import zoo


def main() -> None:
    weights = {name: zoo.load(name).final_layer.weight.detach().flatten().double() for name in zoo.names()}
    for name, w in weights.items():
        print(f"{name:20s} norm {float(w.norm()):.3f}  shape-size {w.numel()}")
    print()
    for a, b in itertools.combinations(weights, 2):
        if weights[a].shape == weights[b].shape:
            cos = float(torch.nn.functional.cosine_similarity(weights[a], weights[b], dim=0))
            print(f"{a:20s} {b:20s} cosine {cos:+.3f}")


if __name__ == "__main__":
    main()
