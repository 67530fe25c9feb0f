"""Load test of the HTTP service: `genattr serve` in its own process, 16 concurrent clients on loopback.

Each client loops for ``--seconds``: POST /v1/attribute with ``--images`` PNGs drawn round-robin from a fixed mix
(samples of every zoo generator, plus Fashion-MNIST test images when installed), waiting for each answer before
sending the next request (closed loop). Reports errors (any non-200 answer or transport failure, by kind), latency
percentiles, and throughput; writes docs/results/service/load.json (``--out``) and prints a summary.

    python benchmarks/service_load.py                     # 60 s, 16 clients, registry from the shipped models
    python benchmarks/service_load.py --seconds 5         # smoke run
    python benchmarks/service_load.py --db postgresql+psycopg://…  --images 8

Without ``--db`` a temporary SQLite registry is filled by ``Registry.import_shipped()`` (the zoo and every shipped
model of this checkout), so the server runs the real pipeline on the real components.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of values."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))] if s else float("nan")


def image_mix(n_per_source: int, seed: int) -> tuple[list[bytes], list[str]]:
    """PNG files (32×32 grey, the zoo's convention) of every zoo model, plus real test images when installed."""
    import torch
    from PIL import Image

    from genattr import zoo
    from genattr.data import to_uint8

    blobs, sources = [], []
    batches = {name: zoo.load(name).sample(n_per_source, torch.Generator().manual_seed(seed)) for name in zoo.names()}
    try:
        from genattr.data import load_fashion_mnist

        batches["real"] = load_fashion_mnist("test").to_model(32)[:n_per_source]
    except Exception as exc:  # the data set is optional here
        print(f"(no real images in the mix: {exc})")
    for name, x in batches.items():
        for a in to_uint8(x).numpy():
            buf = io.BytesIO()
            Image.fromarray(a[0], mode="L").save(buf, format="PNG")
            blobs.append(buf.getvalue())
            sources.append(name)
    # interleave sources so every request mixes them
    order = sorted(range(len(blobs)), key=lambda i: (i % n_per_source, sources[i]))
    return [blobs[i] for i in order], [sources[i] for i in order]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: str, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "genattr", "serve", "--port", str(port), "--db", db, "--workers", str(workers),
           "--log-level", "warning"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


async def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 120) -> dict:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as c:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited:\n{proc.stdout.read() if proc.stdout else ''}")
            try:
                r = await c.get(f"{base}/healthz", timeout=2)
                if r.status_code == 200 and r.json().get("pipeline") == "loaded":
                    return r.json()
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the server was not ready within {timeout:.0f} s")
            await asyncio.sleep(0.25)


async def run_load(base: str, blobs: list[bytes], sources: list[str], *, clients: int, seconds: float,
                   per_request: int) -> dict:
    import httpx

    latencies: list[float] = []
    errors: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    images = matched = 0
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(k: int, c: httpx.AsyncClient) -> None:
        nonlocal images, matched
        i = k * per_request
        while time.monotonic() < stop:
            idx = [(i + j) % len(blobs) for j in range(per_request)]
            files = [("files", (f"img{j}.png", blobs[n], "image/png")) for j, n in enumerate(idx)]
            i += clients * per_request
            t0 = time.perf_counter()
            try:
                r = await c.post(f"{base}/v1/attribute", files=files, timeout=120)
            except httpx.HTTPError as exc:
                errors[f"transport:{type(exc).__name__}"] += 1
                continue
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                errors[f"http:{r.status_code}:{r.json().get('error', {}).get('code', '?')}"] += 1
                continue
            latencies.append(dt)
            res = r.json()["results"]
            if len(res) != per_request:
                errors["wrong_result_count"] += 1
            images += len(res)
            answers.update(x["answer"] for x in res)
            matched += sum(x["answer"] == sources[n] for x, n in zip(res, idx, strict=False))

    t0 = time.perf_counter()
    async with httpx.AsyncClient(limits=limits) as c:
        await asyncio.gather(*(client(k, c) for k in range(clients)))
    wall = time.perf_counter() - t0
    ok = len(latencies)
    ms = [x * 1000 for x in latencies]
    return {"wall_s": round(wall, 2), "requests_ok": ok, "errors": sum(errors.values()), "error_kinds": dict(errors),
            "images": images, "throughput_rps": round(ok / wall, 2), "images_per_s": round(images / wall, 2),
            "latency_ms": {"p50": round(pct(ms, 0.5), 1), "p90": round(pct(ms, 0.9), 1),
                           "p99": round(pct(ms, 0.99), 1), "max": round(max(ms), 1) if ms else None,
                           "mean": round(statistics.fmean(ms), 1) if ms else None},
            "answers": dict(answers.most_common()),
            "answer_is_the_source": round(matched / images, 4) if images else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="measured duration [60]")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients [16]")
    ap.add_argument("--images", type=int, default=1, help="images per request [1]")
    ap.add_argument("--workers", type=int, default=1, help="server: attributions at the same time [1]")
    ap.add_argument("--db", help="registry URL (default: a temporary SQLite registry from import-shipped)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring [3]")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "service" / "load.json")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="genattr-load-")
    db = args.db
    if db is None:
        from genattr.registry import Registry

        db = f"sqlite:///{Path(tmp.name) / 'registry.db'}"
        with Registry.open(db) as reg:
            counts = reg.import_shipped()
        print(f"registry: temporary SQLite, import-shipped → {counts}")
    blobs, sources = image_mix(16, seed=1234)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(db, port, args.workers)
    try:
        health = asyncio.run(wait_ready(base, proc))
        if args.warmup > 0:
            asyncio.run(run_load(base, blobs, sources, clients=args.clients, seconds=args.warmup,
                                 per_request=args.images))
        res = asyncio.run(run_load(base, blobs, sources, clients=args.clients, seconds=args.seconds,
                                   per_request=args.images))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        tmp.cleanup()
    report = {"benchmark": "service_load", "seconds": args.seconds, "clients": args.clients,
              "images_per_request": args.images, "server_workers": args.workers, "image_mix": len(blobs),
              "registry": "import-shipped (temporary SQLite)" if args.db is None else "given --db",
              "image_shape": health.get("image_shape"), "version": health.get("version"), **res,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                          "load_avg_1min_before": load_before},
              "command": "python benchmarks/service_load.py " + " ".join(sys.argv[1:])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    lat = res["latency_ms"]
    print(f"{args.clients} clients × {args.seconds:g} s, {args.images} image(s)/request: {res['requests_ok']} ok, "
          f"{res['errors']} errors {res['error_kinds'] or ''}")
    print(f"latency ms: p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  max {lat['max']}")
    print(f"throughput: {res['throughput_rps']} requests/s, {res['images_per_s']} images/s; answer = source for "
          f"{res['answer_is_the_source']:.1%} of the images (machine load before: {load_before}) → {args.out}")
    if res["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
