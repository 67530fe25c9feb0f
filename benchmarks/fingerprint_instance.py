"""Benchmark of fingerprinted-instance creation (Yu et al. 2022): time of ``FingerprintModel.instance(code)``
and the largest |G_inst(z) − G(z, c)| over many codes, with and without demodulation.

Uses the shipped model (``models/yu2022/fp64``) when present, else an untrained model of the shipped
configuration (64 bits, latent 100, ngf = ndf = 32, training defaults: s = 1 ± 0.5 at start) warm-started
from the zoo DCGAN: creation time does not depend on the weights, and the random A_l make the equality
check non-trivial.

    python benchmarks/fingerprint_instance.py          # writes docs/results/yu2022/instance_benchmark.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch

from genattr.generators import Generator
from genattr.watermark.fingerprint import FingerprintModel, sample_codes

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "yu2022" / "instance_benchmark.json"


def _model(demodulate: bool, shipped: Path) -> tuple[FingerprintModel, str]:
    if shipped.is_dir():
        m = FingerprintModel.load(shipped)
        if m.config["demodulate"] == demodulate:
            return m, str(shipped)
    torch.manual_seed(0)
    # the training defaults (2-layer E, s = 1 ± 0.5), warm-started from the zoo DCGAN when it is there
    m = FingerprintModel(code_bits=64, latent_dim=100, ngf=32, ndf=32, embed_layers=2, affine_init=0.5,
                         demodulate=demodulate)
    zoo_g = ROOT / "zoo" / "fmnist-dcgan-s0"
    if zoo_g.is_dir():
        m.warm_start(Generator.from_pretrained(zoo_g))
        return m.eval(), "untrained: fmnist-dcgan-s0 warm start, s = 1 ± 0.5"
    return m.eval(), "untrained: random init, s = 1 ± 0.5"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codes", type=int, default=200)
    ap.add_argument("--z", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shipped", type=Path, default=ROOT / "models" / "yu2022" / "fp64")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for demod in (True, False):
        model, source = _model(demod, args.shipped)
        g = torch.Generator().manual_seed(2)
        codes = sample_codes(args.codes, model.code_bits, g)
        z = torch.randn(args.z, model.latent_dim, generator=g)
        model.instance(codes[0])  # warm-up
        times, diffs = [], []
        for c in codes:
            t = time.perf_counter()
            inst = model.instance(c)
            times.append(time.perf_counter() - t)
            with torch.no_grad():
                diffs.append(float((inst(z) - model(z, c.expand(args.z, -1))).abs().max()))
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            inst.save_pretrained(Path(tmp) / "i")
            back = Generator.from_pretrained(Path(tmp) / "i")
            t_io = time.perf_counter() - t
            size = sum(p.stat().st_size for p in (Path(tmp) / "i").iterdir())
            with torch.no_grad():
                io_diff = float((back(z) - inst(z)).abs().max())
        ms = sorted(1e3 * t for t in times)
        row = {"demodulate": demod, "model": source, "codes": args.codes, "latents_per_code": args.z,
               "create_ms": {"median": round(statistics.median(ms), 3), "p95": round(ms[int(0.95 * len(ms)) - 1], 3),
                             "max": round(ms[-1], 3)},
               "max_abs_diff_instance_vs_modulated": max(diffs), "save_load_seconds": round(t_io, 4),
               "save_load_max_abs_diff": io_diff, "instance_bytes": size}
        rows.append(row)
        print(f"demodulate={demod}: instance() median {row['create_ms']['median']} ms, p95 {row['create_ms']['p95']} "
              f"ms, max {row['create_ms']['max']} ms; max |G_inst − G(·,c)| = {max(diffs):.2e} over {args.codes} "
              f"codes × {args.z} z; save+load {t_io * 1e3:.0f} ms ({size / 1024:.0f} KiB)", flush=True)
    result = {"command": "python benchmarks/fingerprint_instance.py " + " ".join(sys.argv[1:]),
              "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": args.threads},
              "targets": {"create_ms": 50, "max_abs_diff": 1e-5}, "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
