"""Fingerprint codes and their decision rules (Yu et al., ICLR 2022, §4.6): pure functions, no index.

* bits: :func:`as_bits` validates a code or a batch (0/1 sequences, arrays, tensors, '0'/'1' strings);
  :func:`pack_bits` / :func:`unpack_bits` convert to and from faiss' packed uint8 layout (d_c / 8 bytes a code);
  :func:`random_codes` draws c ~ Bernoulli(½)^d_c; :func:`hamming_numpy` is the NumPy XOR + popcount baseline.
* statistics: :func:`p_value` is P(Bin(d_c, ½) ≥ k), the chance that an unrelated code matches ≥ k bits.
* decision rules (§4.6 and the notes): the paper's fixed rule accepts k ≥ 121 of 128 bits (scaled to d_c:
  k ≥ ⌈121/128 · d_c⌉, :func:`fixed_threshold`); the registry-aware rule k_N (:func:`registry_threshold`) is the
  smallest k with N · P(Bin(d_c, ½) ≥ k) ≤ α (α = 0.01), which bounds the family-wise chance that an unrelated
  image matches *any* of the N codes; :func:`threshold` picks one by name.
* :func:`multihash_params`: the (m, b, f) of an exact multi-hash radius search (pigeonhole), by a cost model.

:mod:`genattr.watermark.fingerprint_index` builds the registry on these and re-exports them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from genattr.errors import ConfigError

FIXED_RULE = (121, 128)  # Yu et al. 2022 §4.6: attribute iff ≥ 121 of 128 bits match
DEFAULT_ALPHA = 0.01


# --------------------------------------------------------------------------------------------------------
# bits
# --------------------------------------------------------------------------------------------------------
def as_bits(code: Any, code_bits: int | None = None, *, what: str = "code") -> np.ndarray:
    """Validate one code or a batch of codes → uint8 array of 0/1, shape (d,) or (n, d).

    Accepts 0/1 (or bool) sequences, arrays, tensors and strings of '0'/'1' characters.
    """
    if isinstance(code, str):
        s = code.strip()
        if not s or set(s) - {"0", "1"}:
            raise ConfigError(f"{what} must be a string of '0'/'1' characters, got {code[:40]!r}")
        arr = np.frombuffer(s.encode(), dtype=np.uint8) - ord("0")
    else:
        if hasattr(code, "detach"):  # torch tensor, without importing torch here
            code = code.detach().cpu().numpy()
        try:
            raw = np.asarray(code)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{what} must be an array of bits: {exc}") from exc
        if raw.dtype == object or raw.size == 0 or raw.ndim not in (1, 2):
            raise ConfigError(f"{what} must be a non-empty (d,) or (n, d) array of bits, got shape {raw.shape}")
        if raw.dtype == bool:
            arr = raw.astype(np.uint8)
        elif np.issubdtype(raw.dtype, np.number):
            if not np.isin(raw, (0, 1)).all():
                raise ConfigError(f"{what} must contain only bits 0/1")
            arr = raw.astype(np.uint8)
        else:
            raise ConfigError(f"{what} must be bits (0/1), got dtype {raw.dtype}")
    if code_bits is not None and arr.shape[-1] != code_bits:
        raise ConfigError(f"{what} has {arr.shape[-1]} bits; this model/registry uses {code_bits}")
    return arr


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """(n, d) 0/1 → (n, d/8) uint8 (big-endian bit order within each byte, as faiss expects)."""
    bits = np.atleast_2d(np.asarray(bits, dtype=np.uint8))
    if bits.shape[1] % 8:
        raise ConfigError(f"codes must have a multiple of 8 bits, got {bits.shape[1]}")
    return np.ascontiguousarray(np.packbits(bits, axis=1))


def unpack_bits(packed: np.ndarray, code_bits: int) -> np.ndarray:
    return np.unpackbits(np.atleast_2d(packed), axis=1)[:, :code_bits]


def random_codes(n: int, code_bits: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """n codes c ~ Bernoulli(½)^d as (n, d) uint8."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return rng.integers(0, 2, size=(n, code_bits), dtype=np.uint8)


def hamming_numpy(packed_db: np.ndarray, packed_q: np.ndarray) -> np.ndarray:
    """Reference Hamming distances (n_q, N) by XOR + popcount in NumPy (the benchmark's baseline)."""
    db, q = np.ascontiguousarray(packed_db), np.ascontiguousarray(packed_q)
    if db.shape[1] % 8 == 0:
        db, q = db.view(np.uint64), q.view(np.uint64)
    out = np.empty((q.shape[0], db.shape[0]), dtype=np.int32)
    for i in range(q.shape[0]):
        out[i] = np.bitwise_count(db ^ q[i]).sum(axis=1)
    return out


# --------------------------------------------------------------------------------------------------------
# statistics and decision rules
# --------------------------------------------------------------------------------------------------------
def p_value(matched: Any, code_bits: int) -> np.ndarray | float:
    """P(X ≥ k) for X ~ Bin(d_c, ½): the chance that a random code matches ≥ k bits."""
    from scipy.stats import binom

    k = np.asarray(matched, dtype=np.int64)
    if np.any(k < 0) or np.any(k > code_bits):
        raise ConfigError(f"matched bits must lie in [0, {code_bits}]")
    out = binom.sf(k - 1, code_bits, 0.5)
    return float(out) if out.ndim == 0 else out


def fixed_threshold(code_bits: int) -> int:
    """The paper's 121-of-128 rule scaled to d_c bits: k ≥ ⌈121/128 · d_c⌉ (61 of 64)."""
    return math.ceil(FIXED_RULE[0] * code_bits / FIXED_RULE[1])


def registry_threshold(code_bits: int, n_codes: int, alpha: float = DEFAULT_ALPHA) -> int:
    """k_N: the smallest k with N · P(Bin(d_c, ½) ≥ k) ≤ α (78 / 89 / 96 / 102 at 128 bits for N = 1 / 10³ /
    10⁶ / 10⁹ and α = 0.01). Returns d_c + 1 (never attribute) when no k qualifies."""
    if n_codes < 1 or not 0 < alpha < 1:
        raise ConfigError("registry_threshold needs n_codes ≥ 1 and 0 < alpha < 1")
    sf = np.asarray(p_value(np.arange(code_bits + 1), code_bits))
    ok = np.nonzero(n_codes * sf <= alpha)[0]
    return int(ok[0]) if ok.size else code_bits + 1


def threshold(rule: str, code_bits: int, n_codes: int, alpha: float = DEFAULT_ALPHA) -> int:
    if rule == "fixed":
        return fixed_threshold(code_bits)
    if rule == "registry":
        return registry_threshold(code_bits, max(n_codes, 1), alpha)
    raise ConfigError(f"unknown threshold rule {rule!r}; use 'fixed' or 'registry'")


def multihash_params(code_bits: int, radius: int, n_codes: int) -> tuple[int, int, int]:
    """(nhash m, bits per hash b, flips f) for an exact radius-r search, chosen by a simple cost model:
    m · Σ_{j≤f} C(b, j) bucket probes, each returning ≈ N / 2^b candidates to re-score."""
    best: tuple[float, tuple[int, int, int]] | None = None
    for m in range(1, min(code_bits, radius + 1) + 1):
        b = min(code_bits // m, 62)  # substrings may leave bits out: the pigeonhole bound still holds
        if b < 1:
            continue
        f = radius // m
        probes = m * sum(math.comb(b, j) for j in range(f + 1))
        cost = probes * (4.0 + max(n_codes, 1) / 2.0 ** b) + 0.05 * m * max(n_codes, 1) / 1e3
        if best is None or cost < best[0]:
            best = (cost, (m, b, f))
    if best is None:
        raise ConfigError(f"no multi-hash parameters for {code_bits} bits at radius {radius}")
    return best[1]


__all__ = ["DEFAULT_ALPHA", "FIXED_RULE", "as_bits", "fixed_threshold", "hamming_numpy", "multihash_params",
           "p_value", "pack_bits", "random_codes", "registry_threshold", "threshold", "unpack_bits"]
