"""Throughput of the fast path (no seed reconstruction) of `genattr.attribute`, in-process, on 2 cores.

The mixed set of benchmarks/attribute_common.py (real test images and samples of every registered generator,
round-robin so that every batch is mixed) is attributed in batches by one pipeline loaded once from the registry
(``--db``; default: a temporary registry of the shipped models, with the shipped calibration if there is one).
Timed: ``Pipeline.attribute`` on tensors (the pipeline itself), and separately the file path of
`genattr attribute` in-process (PNG bytes → decode → attribute), after one warm-up batch each. Reports images/s
against the target (≥ 100 images/s) and how many images ran each method (the FLIPAD detector, which inverts the
generator, dominates where it runs).

    python benchmarks/attribute_speed.py        # 2000 images, 2 threads → docs/results/attribute/speed.json
    python benchmarks/attribute_speed.py --n 64 --out /tmp/speed.json    # a smoke run
"""

from __future__ import annotations

import argparse
import io
import json
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from attribute_common import ROOT, machine, mixed_sources, open_registry

OUT = ROOT / "docs" / "results" / "attribute" / "speed.json"
TARGET = 100.0


def mixed(sources: list, n: int, seed: int) -> torch.Tensor:
    per = -(-n // len(sources))
    parts = [s.make(per, seed, "test") for s in sources]
    rows = [p[i] for i in range(per) for p in parts]  # round-robin: every batch holds every source
    return torch.stack(rows[:n])


def png_bytes(x: torch.Tensor) -> list[bytes]:
    from PIL import Image

    out = []
    for a in ((x[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy():
        buf = io.BytesIO()
        Image.fromarray(a, mode="L").save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="registry URL (default: a temporary registry of the shipped models)")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--calibration", type=Path, help="calibration JSON (default: the shipped one, if any)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from genattr.unified import Pipeline
    from genattr.unified.images import decode_image

    reg, tmp = open_registry(args.db)
    t0 = time.perf_counter()
    pipe = Pipeline.from_registry(reg, calibration=args.calibration)
    t_load = time.perf_counter() - t0
    sources = mixed_sources(reg, pipe)
    x = mixed(sources, args.n, args.seed)
    data = png_bytes(x)
    pipe.attribute(x[: min(args.batch, 32)])  # warm-up (lazy allocations, first-call overheads)

    t0 = time.perf_counter()
    verdicts = [v for i in range(0, x.shape[0], args.batch) for v in pipe.attribute(x[i:i + args.batch])]
    t_tensor = time.perf_counter() - t0

    shape = pipe.image_shape
    t0 = time.perf_counter()
    for i in range(0, len(data), args.batch):
        chunk = data[i:i + args.batch]
        xs = torch.stack([decode_image(b, shape) for b in chunk])
        pipe.attribute(xs, image_bytes=chunk)
    t_files = time.perf_counter() - t0

    ran = Counter(e.method for v in verdicts for e in v.evidence if e.verdict is not None)
    rate, rate_files = x.shape[0] / t_tensor, x.shape[0] / t_files
    result = {"command": shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv]), "n": int(x.shape[0]),
              "batch": args.batch, "threads": args.threads, "sources": [s.name for s in sources],
              "load_seconds": t_load, "seconds": t_tensor, "images_per_s": rate,
              "files_seconds": t_files, "files_images_per_s": rate_files, "target_images_per_s": TARGET,
              "met": rate >= TARGET, "images_per_method": dict(ran),
              "answers": dict(Counter(v.answer for v in verdicts)),
              "calibrated": pipe.calibration is not None, "policy": pipe.policy.to_json(),
              "components": [c["name"] for c in pipe.describe()["components"]], "machine": machine()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"fast path: {rate:.1f} images/s on tensors, {rate_files:.1f} images/s from PNG bytes "
          f"({x.shape[0]} images, batches of {args.batch}, {args.threads} threads; target ≥ {TARGET:g}: "
          f"{'met' if rate >= TARGET else 'NOT met'}); methods run: {dict(ran)} → {args.out}")
    reg.close()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
