"""Shared by benchmarks/attribute_speed.py and benchmarks/attribute_accuracy.py: the registry to test, and the
mixed set of sources with the answer the pipeline should give for each.

Sources (each a tensor of 8-bit images, as deployed PNGs hold them):

* ``real``: Fashion-MNIST **test** split — its first half is the validation split, its second half the test
  split (neither was used to train any shipped component);
* every registered generator with weights on disk (zoo models, keyed users, fingerprint instances) → its name;
* ``--fingerprint-examples K``: the shipped index's first K example users (codes without instance models) → the
  user's name, sampled through the registered decoder's model;
* unregistered generators → ``unknown``: a freshly initialised DCGAN (``fresh-dcgan``), and every ``--unregistered
  NAME`` (a zoo model sampled but removed from the answers the pipeline may give — e.g. a zoo model no
  classifier was trained on, the realistic case of an unseen, differently-seeded generator).

Validation and test images of a generator come from disjoint seed streams (``derive_seed(seed, split, name)``).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
FRESH = "fresh-dcgan"


@dataclass
class Source:
    name: str
    expected: str  # the right answer: a model name, "real" or "unknown"
    kind: str  # real, zoo, keyed-user, fingerprint-instance, fingerprint-example, unregistered
    make: Any  # (n, seed) -> 8-bit images


def open_registry(db: str | None) -> tuple[Any, tempfile.TemporaryDirectory[str] | None]:
    """The registry at ``db``; without one, a temporary SQLite registry holding the shipped models
    (``import_shipped``), so the benchmark measures exactly what is shipped."""
    from genattr.registry import Registry

    if db is not None:
        return Registry.open(db), None
    tmp = tempfile.TemporaryDirectory(prefix="genattr-attribute-bench-")
    reg = Registry.open(f"sqlite:///{Path(tmp.name) / 'registry.db'}")
    reg.import_shipped()
    return reg, tmp


def _generator_source(name: str, expected: str, kind: str, g: Any) -> Source:
    from genattr.sampling import derive_seed, sample_8bit

    def make(n: int, seed: int, split: str) -> torch.Tensor:
        return sample_8bit(g, n, derive_seed(seed, split, name))

    return Source(name, expected, kind, make)


def fresh_dcgan(seed: int = 12345) -> Any:
    from genattr.generators import create_generator

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return create_generator("dcgan", channels=1, image_size=32, latent_dim=100, ngf=32).eval()


def mixed_sources(reg: Any, pipe: Any, *, unregistered: list[str] = (), fingerprint_examples: int = 0
                  ) -> list[Source]:
    """Every source of the mixed set (module docstring); removes ``unregistered`` names from ``pipe.models``."""
    from genattr.data import real_images
    from genattr.generators import Generator

    out: list[Source] = []
    test = real_images("fashion-mnist", "test")
    half = test.shape[0] // 2

    def real(n: int, seed: int, split: str) -> torch.Tensor:
        pool = test[:half] if split == "validation" else test[half:]
        perm = torch.randperm(pool.shape[0], generator=torch.Generator().manual_seed(seed))
        return pool[perm[:n]].clone()

    out.append(Source("real", "real", "real", real))
    for m in reg.list_models():
        if not m.path or not Path(m.path, "model.safetensors").is_file():
            continue
        g = Generator.from_pretrained(m.path)
        if m.name in unregistered:
            out.append(_generator_source(m.name, "unknown", "unregistered", g))
        else:
            out.append(_generator_source(m.name, m.name, m.kind, g))
    missing = sorted(set(unregistered) - {s.name for s in out})
    if missing:
        raise SystemExit(f"--unregistered {', '.join(missing)}: no registered model of that name with weights")
    if pipe.models is not None:
        for name in unregistered:
            pipe.models.pop(name, None)
    if fingerprint_examples:
        out += _fingerprint_examples(reg, fingerprint_examples)
    out.append(_generator_source(FRESH, "unknown", "unregistered", fresh_dcgan()))
    return out


def _fingerprint_examples(reg: Any, k: int) -> list[Source]:
    from genattr.watermark.fingerprint import FingerprintModel
    from genattr.watermark.fingerprint_shipping import example_instance

    decoders = reg.list_components("yu2022-decoder")
    if not decoders:
        raise SystemExit("--fingerprint-examples: no yu2022-decoder is registered")
    model = FingerprintModel.load(decoders[0].path)
    return [_generator_source(f"example-{i:03d}", f"example-{i:03d}", "fingerprint-example",
                              example_instance(model, i)) for i in range(k)]


def covered(pipe: Any) -> set[str]:
    """Model names some component can name (classifier candidates, detector models, key users, index users)."""
    names: set[str] = set()
    for c in pipe.classifiers:
        names.update(c.names)
    names.update(d.model for d in pipe.detectors)
    for k in pipe.keys:
        names.update(k.models)
    for f in pipe.fingerprints:  # an index user without an instance model is named by the index
        names.update(f.models.values())
        names.update(n for n in f.index.names(np.arange(len(f.index))) if n is not None)
    return names


def machine() -> dict[str, Any]:
    import os
    import platform

    return {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "machine": platform.machine(), "torch_threads": torch.get_num_threads()}


__all__ = ["FRESH", "ROOT", "Source", "covered", "fresh_dcgan", "machine", "mixed_sources", "open_registry"]
