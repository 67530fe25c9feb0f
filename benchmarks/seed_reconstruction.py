"""Benchmark seed reconstruction: restarts × images batched in one Adam vs the per-attempt loop of Alg. 1.

    PYTHONPATH=src python benchmarks/seed_reconstruction.py --model fmnist-dcgan-s0 --n 16 --restarts 3 --steps 100
    PYTHONPATH=src python benchmarks/seed_reconstruction.py --random dcgan --n 16       # no zoo needed

Both variants start from the same restart seeds (``restart_pool``) on the same images (samples of the model,
drawn with another seed) and run the same number of Adam steps (lr 0.1, betas (0, 0.99)):

(a) loop: one optimiser per (image, restart) attempt, one latent at a time
    (``genattr.attribution.seed_reconstruction.reconstruct_looped``);
(b) batched: all R × N latents as one tensor, one Adam (``reconstruct``, built on
    ``genattr.attribution.flipad.inversion.invert_latents``).

Prints attempts·steps per second, the speed-up of (b) over (a) (target ≥ 9×) and the largest difference of
the final distances (target ≤ 1e-4), and writes them to ``--json`` (default
``docs/results/zhang2020/benchmark.json``). ``--distance feature`` measures the ℓ2-feature variant (zoo
classifier). Timings depend on the machine and its load; the file records both.

``--ray`` instead compares the attributor's two engines on ``--candidates`` zoo models (default
fmnist-dcgan-s0, fmnist-lsgan-s6): in-process vs Ray on ``--ray-cpus`` local CPUs (start-up timed apart),
checks the scores are identical and writes ``docs/results/zhang2020/ray_engine.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from genattr.attribution.seed_reconstruction import (
    FeatureMap,
    frozen_copy,
    reconstruct,
    reconstruct_looped,
    restart_pool,
)


def load_generator(args: argparse.Namespace) -> tuple[torch.nn.Module, str]:
    from genattr.generators import create_generator

    if args.model:
        from genattr import zoo

        return zoo.load(args.model), args.model
    torch.manual_seed(args.seed)
    return create_generator(args.random, latent_dim=args.latent_dim, ngf=args.ngf), f"random {args.random}"


def ray_benchmark(args: argparse.Namespace) -> dict:
    import ray

    from genattr import zoo
    from genattr.attribution.reconstruction_engines import LocalEngine, RayEngine
    from genattr.attribution.seed_reconstruction import SeedReconstruction

    names = args.candidates or ["fmnist-dcgan-s0", "fmnist-lsgan-s6"]
    gens = {n: zoo.load(n) for n in names}
    att = SeedReconstruction(restarts=args.restarts, steps=args.steps, chunk_size=args.chunk_size).fit(gens)
    x = torch.cat([g.sample(args.n, torch.Generator().manual_seed(args.seed + 1)) for g in gens.values()])
    local = LocalEngine()
    t0 = time.perf_counter()
    s_local = att.attribute(x, engine=local).scores
    t_local = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
    t_init = time.perf_counter() - t0
    try:
        eng = RayEngine()
        t0 = time.perf_counter()
        s_ray = att.attribute(x, engine=eng).scores
        t_ray_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        s_ray2 = att.attribute(x, engine=eng).scores
        t_ray = time.perf_counter() - t0
    finally:
        ray.shutdown()
    out = {"candidates": names, "n_images": int(x.shape[0]), "restarts": args.restarts, "steps": args.steps,
           "chunk_size": args.chunk_size, "tasks": eng.last_tasks, "threads_per_task": args.threads,
           "ray_cpus": args.ray_cpus, "local_seconds": round(t_local, 2), "ray_init_seconds": round(t_init, 2),
           "ray_first_call_seconds": round(t_ray_first, 2), "ray_warm_call_seconds": round(t_ray, 2),
           "identical": bool(torch.equal(s_local, s_ray) and torch.equal(s_local, s_ray2)),
           "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    print(f"{x.shape[0]} images × {len(names)} candidates × {args.restarts} restarts × {args.steps} steps, "
          f"{eng.last_tasks} tasks: in-process {t_local:.1f} s; Ray on {args.ray_cpus} CPUs: start {t_init:.1f} s, "
          f"first call {t_ray_first:.1f} s, warm {t_ray:.1f} s; identical: {out['identical']}")
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", help="zoo generator (default fmnist-dcgan-s0 unless --random)")
    src.add_argument("--random", help="an untrained architecture instead of a zoo model, e.g. dcgan")
    p.add_argument("--latent-dim", type=int, default=100)
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--n", type=int, default=16, help="images")
    p.add_argument("--restarts", type=int, default=3)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--distance", choices=("pixel", "feature"), default="pixel")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="default docs/results/zhang2020/benchmark.json "
                   "(ray_engine.json with --ray)")
    p.add_argument("--ray", action="store_true", help="compare the in-process and Ray engines instead")
    p.add_argument("--candidates", nargs="*", default=None)
    p.add_argument("--ray-cpus", type=int, default=2)
    p.add_argument("--chunk-size", type=int, default=4)
    args = p.parse_args(argv)
    if args.json is None:
        args.json = Path("docs/results/zhang2020") / ("ray_engine.json" if args.ray else "benchmark.json")
    if args.ray:
        torch.set_num_threads(args.threads)
        res = ray_benchmark(args)
        res["command"] = "python benchmarks/seed_reconstruction.py " + " ".join(
            argv if argv is not None else __import__("sys").argv[1:])
        _write(args.json, res)
        return res
    if not args.model and not args.random:
        args.model = "fmnist-dcgan-s0"
    torch.set_num_threads(args.threads)

    g, label = load_generator(args)
    g = frozen_copy(g)
    feature = None
    if args.distance == "feature":
        from genattr import zoo

        feature = frozen_copy(FeatureMap(zoo.load_classifier(), 32))
    with torch.no_grad():
        x = g(torch.randn(args.n, g.latent_dim, generator=torch.Generator().manual_seed(args.seed + 1)))
    z0 = restart_pool(g.latent_dim, args.restarts, args.seed)
    kw = {"feature": feature, "steps": args.steps}

    reconstruct(g, x[:1], z0[:1], steps=2, feature=feature)  # warm-up (allocator, kernels)
    t0 = time.perf_counter()
    looped = reconstruct_looped(g, x, z0, **kw)
    t_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched = reconstruct(g, x, z0, **kw)
    t_batch = time.perf_counter() - t0

    diff = (looped.restart_distances - batched.restart_distances).abs()
    work = args.n * args.restarts * args.steps
    out = {
        "generator": label, "distance": args.distance, "n_images": args.n, "restarts": args.restarts,
        "steps": args.steps, "threads": args.threads,
        "loop_seconds": round(t_loop, 3), "batched_seconds": round(t_batch, 3),
        "loop_attempt_steps_per_s": round(work / t_loop, 1), "batched_attempt_steps_per_s": round(work / t_batch, 1),
        "speedup": round(t_loop / t_batch, 2), "target_speedup": 9.0,
        "max_abs_distance_diff": float(diff.max()), "target_distance_diff": 1e-4,
        "same_best_restart": bool(torch.equal(looped.best_restart, batched.best_restart)),
        "mean_final_distance": float(batched.distance.mean()),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "torch": torch.__version__,
                    "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
        "command": "python benchmarks/seed_reconstruction.py " + " ".join(argv if argv is not None else
                                                                          __import__("sys").argv[1:]),
    }
    out["speedup_ok"] = out["speedup"] >= out["target_speedup"]
    out["distance_ok"] = out["max_abs_distance_diff"] <= out["target_distance_diff"]
    print(f"{label}, {args.distance} ℓ2, {args.n} images × {args.restarts} restarts × {args.steps} steps, "
          f"{args.threads} thread(s)")
    print(f"  per-attempt loop: {t_loop:8.2f} s  ({out['loop_attempt_steps_per_s']:.0f} attempt-steps/s)")
    print(f"  batched (ours):   {t_batch:8.2f} s  ({out['batched_attempt_steps_per_s']:.0f} attempt-steps/s)")
    print(f"  speed-up {out['speedup']:.2f}× (target ≥ 9×: {'met' if out['speedup_ok'] else 'NOT met'}); "
          f"max |Δ final distance| {out['max_abs_distance_diff']:.2e} "
          f"(target ≤ 1e-4: {'met' if out['distance_ok'] else 'NOT met'})")
    _write(args.json, out)
    return out


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    print(f"  wrote {path}")


if __name__ == "__main__":
    main()
