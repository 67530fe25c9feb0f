"""Benchmark of the fingerprint registry (genattr.watermark.fingerprint_index) against a NumPy scan.

For N registered random codes (10⁶ and 10⁷ by default, 64 and 128 bits) and a batch of queries (half noisy
copies of registered codes — decoded fingerprints — half random codes — real images), measures per query:

* NumPy XOR + popcount scan over all N codes (the baseline; ``np.bitwise_count`` on uint64 words);
* faiss ``IndexBinaryFlat`` exact nearest neighbour (what ``identify`` and the attributor use);
* faiss ``IndexBinaryFlat`` range search and ``IndexBinaryMultiHash`` radius search at the fixed rule's
  radius (d_c − ⌈121/128 · d_c⌉: 3 at 64 bits, 7 at 128 bits), the radius search ``best_within`` uses;

checks that every method returns the same answers as the scan (nearest distance; the exact set within the
radius) and reports bytes per registered code. One thread everywhere (faiss' OpenMP included).

    nice -n 5 python benchmarks/fingerprint_index.py                 # writes docs/results/yu2022/index_benchmark.json
    python benchmarks/fingerprint_index.py --sizes 100000 --bits 64  # quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import faiss
import numpy as np

from genattr.watermark.fingerprint_index import (
    FingerprintIndex,
    fixed_threshold,
    multihash_params,
    pack_bits,
    registry_threshold,
)

OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "yu2022" / "index_benchmark.json"


def numpy_scan(cols: list[np.ndarray], q64: np.ndarray) -> np.ndarray:
    """Hamming distances of one query (words,) to all N codes, stored as contiguous uint64 word columns — the
    baseline (column-wise XOR + popcount; faster than a row-wise (N, words) sum)."""
    d = np.bitwise_count(cols[0] ^ q64[0])
    for w in range(1, len(cols)):
        d += np.bitwise_count(cols[w] ^ q64[w])
    return d


def rss_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def bench(n: int, bits: int, n_queries: int, n_numpy: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    nbytes = bits // 8
    t = time.perf_counter()
    packed = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    idx = FingerprintIndex(bits)
    idx.add_many([f"user-{i:08d}" for i in range(n)], packed, check_codes=False)
    idx._consolidate()
    t_build = time.perf_counter() - t
    mem = idx.memory_bytes()
    radius = bits - fixed_threshold(bits)

    # queries: noisy copies of registered codes (≤ radius flips, as decoded fingerprints) and random codes
    half = n_queries // 2
    src = rng.integers(0, n, half)
    q_bits = np.unpackbits(packed[src], axis=1)
    for row in q_bits:
        row[rng.choice(bits, rng.integers(0, radius + 1), replace=False)] ^= 1
    q_bits = np.concatenate([q_bits, rng.integers(0, 2, (n_queries - half, bits), dtype=np.uint8)])
    q = pack_bits(q_bits)
    words = nbytes // 8
    db64, q64 = packed.view(np.uint64).reshape(n, words), q.view(np.uint64).reshape(-1, words)
    cols = [np.ascontiguousarray(db64[:, w]) for w in range(words)]

    # NumPy baseline on a subset of queries (both kinds)
    sub = np.r_[0:n_numpy // 2, half:half + n_numpy - n_numpy // 2]
    ref_min, ref_within = {}, {}
    t = time.perf_counter()
    for i in sub:
        d = numpy_scan(cols, q64[i])
        ref_min[i] = int(d.min())
        ref_within[i] = set(np.nonzero(d <= radius)[0].tolist())
    t_numpy = (time.perf_counter() - t) / len(sub)

    t = time.perf_counter()
    _, matched = idx.nearest(q_bits, 1)
    t_knn = (time.perf_counter() - t) / n_queries
    t = time.perf_counter()
    flat_r = idx.radius_search(q_bits, radius, method="flat")
    t_flat_range = (time.perf_counter() - t) / n_queries
    rss0, t = rss_bytes(), time.perf_counter()
    idx._hash_index(radius)
    t_hash_build, hash_bytes = time.perf_counter() - t, rss_bytes() - rss0
    t = time.perf_counter()
    hash_r = idx.radius_search(q_bits, radius, method="hash")
    t_hash = (time.perf_counter() - t) / n_queries

    idx.identify(q_bits[:1], min_matched=fixed_threshold(bits), fast=True)  # builds the hash index
    t = time.perf_counter()
    two_stage = idx.identify(q_bits[:half], min_matched=fixed_threshold(bits), fast=True)
    t_identify = (time.perf_counter() - t) / half
    same_identify = all(bits - m.matched == ref_min[i] for i, m in enumerate(two_stage) if i in ref_min)
    same_knn = all(bits - int(matched[i, 0]) == ref_min[i] for i in sub)
    same_flat = all(set(flat_r[i][0].tolist()) == ref_within[i] for i in sub)
    same_hash = all(set(hash_r[i][0].tolist()) == ref_within[i] for i in sub)
    # beyond the NumPy subset: the hash index agrees with faiss' exhaustive range search on every query
    hash_vs_flat = all(set(a[0].tolist()) == set(b[0].tolist()) for a, b in zip(hash_r, flat_r, strict=True))
    found = sum(bool(ref_within[i]) for i in sub[: n_numpy // 2])

    # the registry-aware rule's (much larger) radius: flat range search always; multi-hash if it stays small
    r_reg = bits - registry_threshold(bits, n)
    ref_reg = {i: set(np.nonzero(numpy_scan(cols, q64[i]) <= r_reg)[0].tolist()) for i in sub}
    del cols
    t = time.perf_counter()
    flat_reg = idx.radius_search(q_bits, r_reg, method="flat")
    t_flat_reg = (time.perf_counter() - t) / n_queries
    mr, br, fr = multihash_params(bits, r_reg, n)
    probes = mr * sum(math.comb(br, j) for j in range(fr + 1))
    registry = {"radius": r_reg, "multihash_params": {"nhash": mr, "bits_per_hash": br, "nflip": fr,
                                                      "probes_per_query": probes},
                "ms_per_query": {"numpy_scan": round(1e3 * t_numpy, 4), "faiss_flat_range": round(1e3 * t_flat_reg, 4)},
                "same_answers": {"flat_range_set": all(set(flat_reg[i][0].tolist()) == ref_reg[i] for i in sub)}}
    candidates = probes * n / 2.0 ** br
    registry["multihash_candidates_per_query"] = round(candidates)
    if candidates <= n / 20:  # otherwise it cannot beat the scan by much: not built (a hash table per substring)
        idx._multihash.clear()
        t = time.perf_counter()
        idx._hash_index(r_reg)
        registry["multihash_build_seconds"] = round(time.perf_counter() - t, 2)
        nq = min(n_queries, 200)
        t = time.perf_counter()
        hash_reg = idx.radius_search(q_bits[:nq], r_reg, method="hash")
        t_hash_reg = (time.perf_counter() - t) / nq
        registry["ms_per_query"]["faiss_multihash_range"] = round(1e3 * t_hash_reg, 4)
        registry["same_answers"]["multihash_range_set"] = all(
            set(hash_reg[i][0].tolist()) == ref_reg[i] for i in sub if i < nq)
    registry["speedup_vs_numpy"] = {k: round(t_numpy / (v / 1e3), 1) for k, v in registry["ms_per_query"].items()
                                    if k != "numpy_scan"}
    idx._multihash.clear()
    m, b, f = multihash_params(bits, radius, n)
    return {
        "n_codes": n, "bits": bits, "queries": n_queries, "numpy_queries": len(sub), "radius": radius,
        "fixed_rule_k": fixed_threshold(bits), "registry_rule_k": registry_threshold(bits, n),
        "build_seconds": round(t_build, 2), "multihash_build_seconds": round(t_hash_build, 2),
        "multihash_params": {"nhash": m, "bits_per_hash": b, "nflip": f},
        "multihash_bytes_per_code_rss": round(hash_bytes / n, 1),
        "bytes_per_code": {k: round(v / n, 2) for k, v in mem.items()} | {"total": round(sum(mem.values()) / n, 2)},
        "ms_per_query": {"numpy_scan": round(1e3 * t_numpy, 4), "faiss_flat_knn": round(1e3 * t_knn, 4),
                         "faiss_flat_range": round(1e3 * t_flat_range, 4),
                         "faiss_multihash_range": round(1e3 * t_hash, 4),
                         "identify_two_stage_decoded": round(1e3 * t_identify, 4)},
        "speedup_vs_numpy": {"faiss_flat_knn": round(t_numpy / t_knn, 1),
                             "identify_two_stage_decoded": round(t_numpy / t_identify, 1),
                             "faiss_flat_range": round(t_numpy / t_flat_range, 1),
                             "faiss_multihash_range": round(t_numpy / t_hash, 1)},
        "same_answers": {"flat_knn_distance": same_knn, "flat_range_set": same_flat, "multihash_range_set": same_hash,
                         "identify_two_stage_nearest": same_identify,
                         "multihash_vs_flat_all_queries": hash_vs_flat},
        "noisy_queries_found_within_radius": f"{found}/{n_numpy // 2}",
        "registry_rule_radius": registry,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10**6, 10**7])
    ap.add_argument("--bits", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--numpy-queries", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    rows = []
    for bits in args.bits:
        for n in args.sizes:
            r = bench(n, bits, args.queries, args.numpy_queries, args.seed)
            rows.append(r)
            ms, sp = r["ms_per_query"], r["speedup_vs_numpy"]
            print(f"N={n:>9,} d={bits:3d} r={r['radius']}: numpy {ms['numpy_scan']:.3f} ms/q | faiss knn "
                  f"{ms['faiss_flat_knn']:.4f} ms ({sp['faiss_flat_knn']}×) | flat range {ms['faiss_flat_range']:.4f}"
                  f" ms ({sp['faiss_flat_range']}×) | multihash {ms['faiss_multihash_range']:.4f} ms "
                  f"({sp['faiss_multihash_range']}×) | identify(decoded) {ms['identify_two_stage_decoded']:.4f} ms "
                  f"({sp['identify_two_stage_decoded']}×) | same answers {all(r['same_answers'].values())} | "
                  f"{r['bytes_per_code']['total']} B/code (codes {r['bytes_per_code']['codes']})", flush=True)
            rr = r["registry_rule_radius"]
            print(f"    registry rule r={rr['radius']}: {rr['ms_per_query']} ms/q, speed-up {rr['speedup_vs_numpy']}, "
                  f"same answers {all(rr['same_answers'].values())}", flush=True)
    result = {"command": "nice -n 5 python benchmarks/fingerprint_index.py " + " ".join(sys.argv[1:]),
              "machine": {"platform": platform.platform(), "python": platform.python_version(),
                          "numpy": np.__version__, "faiss": faiss.__version__, "threads": 1,
                          "load_average": os.getloadavg()},
              "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
