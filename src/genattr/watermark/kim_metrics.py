"""Metrics of Kim, Ren & Yang (ICLR 2021) and the checks of Theorems 1–2.

* D(G_φ) (Eq. 1) = ½[P_{x∼G_φ}(φᵀx > 0) + P_{x∼real}(φᵀx < 0)] — on the real **test** split.
* A(𝒢) (Eq. 2) = mean_i P_{x∼G_φi}(φ_iᵀx > 0 and φ_jᵀx < 0 ∀ j ≠ i) — "exactly one positive key", on
  8-bit quantised samples (:func:`quantize_8bit`), as an image file would hold them.
* ‖Δx‖ (Eq. 3) = ‖E_z[G_φ(z) − G0(z)]‖, the norm of the mean perturbation (what we report); the official code
  averages per-sample norms instead (``mean_norm``, also returned).
* FD of G_φ vs G0 on features given by the caller (the zoo classifier's penultimate layer).
* Eq. 6 / Eq. 7 with μ, σ(φ) estimated from ε(z) = G_φ(z) − G0(z) − γφ (Eq. 10); σ²(φ') = φ'ᵀΣφ' is the
  variance of φ'ᵀε, so the d×d covariance is never formed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from genattr.data import quantize_8bit
from genattr.errors import ConfigError, DataError
from genattr.watermark.keys import key_scores


def _scores(key: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return key_scores(key.reshape(1, -1) if key.ndim <= 3 else key, x)


def distinguishability(key: torch.Tensor, keyed: torch.Tensor, real: torch.Tensor) -> float:
    """Eq. 1 for one key: half the keyed samples' rate of φᵀx > 0 plus half the real images' rate of φᵀx < 0."""
    return 0.5 * (float((_scores(key, keyed) > 0).double().mean()) + float((_scores(key, real) < 0).double().mean()))


def attributability_from_scores(scores: Sequence[torch.Tensor]) -> tuple[float, list[float]]:
    """Eq. 2 from per-user score matrices: scores[i] = φᵀx for user i's samples, (n_i, N) over all N keys.
    Returns (A, per-user rates)."""
    n = len(scores)
    if n == 0:
        raise ConfigError("attributability needs at least one user")
    rates = []
    for i, s in enumerate(scores):
        if s.ndim != 2 or s.shape[1] != n:
            raise DataError(f"scores[{i}] must be (n_i, {n}), got {tuple(s.shape)}")
        others = torch.cat([s[:, :i], s[:, i + 1:]], 1)
        ok = (s[:, i] > 0) & (others < 0).all(1)
        rates.append(float(ok.double().mean()) if s.shape[0] else float("nan"))
    return sum(rates) / n, rates


def attributability(keys: torch.Tensor, samples: Sequence[torch.Tensor]) -> tuple[float, list[float]]:
    """Eq. 2: samples[i] are images of user i (keyed with keys[i]). Quantise them first for the paper's setting."""
    if len(samples) != keys.shape[0]:
        raise ConfigError(f"{len(samples)} sample sets for {keys.shape[0]} keys")
    return attributability_from_scores([key_scores(keys, x) for x in samples])


def delta_x(keyed: torch.Tensor, root: torch.Tensor) -> dict[str, float]:
    """Perturbation size from paired samples G_φ(z), G0(z): ``eq3`` = ‖mean(Δx)‖ (the paper's Eq. 3, what we
    report), ``mean_norm`` = mean ‖Δx‖ (the official code), ``rms`` = per-pixel RMS of Δx."""
    if keyed.shape != root.shape:
        raise DataError(f"paired samples needed; got {tuple(keyed.shape)} and {tuple(root.shape)}")
    d = (keyed - root).reshape(keyed.shape[0], -1).double()
    return {"eq3": float(d.mean(0).norm()), "mean_norm": float(d.norm(dim=1).mean()),
            "rms": float(d.pow(2).mean().sqrt())}


def fd_between(features: Callable[[torch.Tensor], torch.Tensor], a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between the feature statistics of image sets a and b."""
    from genattr.metrics import frechet_distance

    return float(frechet_distance(features(a).double().numpy(), features(b).double().numpy()))


# --------------------------------------------------------------------------------------------------------
# Theorems 1–2
# --------------------------------------------------------------------------------------------------------
def error_projections(keys: torch.Tensor, keyed: torch.Tensor, root: torch.Tensor, key: torch.Tensor,
                      gamma: float) -> dict[str, torch.Tensor]:
    """ε = G_φ(z) − G0(z) − γφ (Eq. 10) from paired samples; per key φ' of ``keys``: φ'ᵀμ and σ(φ') (float64)."""
    eps = (keyed - root).reshape(keyed.shape[0], -1).double() - gamma * key.reshape(1, -1).double()
    p = eps @ keys.reshape(keys.shape[0], -1).double().T  # (n, N): φ'ᵀε
    return {"phi_mu": p.mean(0), "sigma": p.std(0, unbiased=True)}


def eq6_rhs(sigma: float, d_max: float, phi_mu: float, delta: float = 1e-2) -> float:
    """Theorem 1: D(G_φ) ≥ 1 − δ/2 if γ ≥ σ(φ)√log(1/δ²) + d_max(φ) − φᵀμ."""
    return sigma * math.sqrt(math.log(1 / delta**2)) + d_max - phi_mu


def eq7_rhs(sigma: float, d_max: float, d_min: float, phi_mu: float, delta: float = 1e-2) -> float:
    """Theorem 2: attributable if φᵀφ' ≤ −1 + (d_max' + d_min' − 2φ'ᵀμ)/(σ'√log(1/δ²) + d_max' − φ'ᵀμ)."""
    return -1 + (d_max + d_min - 2 * phi_mu) / (sigma * math.sqrt(math.log(1 / delta**2)) + d_max - phi_mu)


def theory_checks(keys: torch.Tensor, index: int, keyed: torch.Tensor, root: torch.Tensor, gamma: float,
                  real: torch.Tensor, *, delta: float = 1e-2) -> dict[str, Any]:
    """Eq. 6 for user ``index`` (LHS γ vs RHS) and Eq. 7 for every other key φ' (its RHS vs φᵀφ'), from paired
    samples of G_φ and G0 (5000 in the paper) and the real images that define d_max, d_min."""
    k = keys.reshape(keys.shape[0], -1)
    phi = k[index]
    stats = error_projections(keys, keyed, root, phi, gamma)
    s_real = key_scores(keys, real).double().abs()
    d_max, d_min = s_real.max(0).values, s_real.min(0).values
    rhs6 = eq6_rhs(float(stats["sigma"][index]), float(d_max[index]), float(stats["phi_mu"][index]), delta)
    eq7 = []
    dots = (k.double() @ phi.double())
    for j in range(k.shape[0]):
        if j == index:
            continue
        r = eq7_rhs(float(stats["sigma"][j]), float(d_max[j]), float(d_min[j]), float(stats["phi_mu"][j]), delta)
        eq7.append({"other": j, "rhs": r, "dot": float(dots[j]), "holds": float(dots[j]) <= r})
    return {"gamma": gamma, "eq6_rhs": rhs6, "eq6_holds": gamma >= rhs6, "sigma": float(stats["sigma"][index]),
            "phi_mu": float(stats["phi_mu"][index]), "d_max": float(d_max[index]), "d_min": float(d_min[index]),
            "eq7": eq7}


# --------------------------------------------------------------------------------------------------------
# Scale beyond training: simulation from measured perturbation statistics
# --------------------------------------------------------------------------------------------------------
def simulate_attributability(keys: torch.Tensor, root: torch.Tensor, gamma: float, noise_std: float, *,
                             n_per_user: int = 20, seed: int = 0, quantize: bool = True,
                             chunk: int = 64) -> tuple[float, list[float]]:
    """A SIMULATION (not trained models): user i's images are x = G0(z) + γφ_i + ε, ε ∼ N(0, noise_std² I),
    8-bit quantised, with G0(z) drawn from ``root`` (paired images of the root model). γ and noise_std come
    from measured fine-tuned users (mean shift along the key; per-pixel RMS of ε). Returns Eq. 2's A."""
    g = torch.Generator().manual_seed(seed)
    n_keys = keys.shape[0]
    k = keys.reshape(n_keys, -1).to(torch.float32)
    rates: list[float] = []
    for start in range(0, n_keys, chunk):
        idx = list(range(start, min(n_keys, start + chunk)))
        pick = torch.randint(0, root.shape[0], (len(idx) * n_per_user,), generator=g)
        x = root.reshape(root.shape[0], -1)[pick].to(torch.float32)
        x = x + gamma * k[torch.tensor(idx).repeat_interleave(n_per_user)]
        x = x + noise_std * torch.randn(x.shape, generator=g)
        if quantize:
            x = quantize_8bit(x)
        s = x @ k.T
        for a, i in enumerate(idx):
            si = s[a * n_per_user:(a + 1) * n_per_user]
            pos = si > 0
            ok = pos[:, i] & (pos.sum(1) == 1) & ((si < 0).sum(1) == n_keys - 1)
            rates.append(float(ok.double().mean()))
    return sum(rates) / n_keys, rates


__all__ = ["attributability", "attributability_from_scores", "delta_x", "distinguishability", "eq6_rhs", "eq7_rhs",
           "error_projections", "fd_between", "quantize_8bit", "simulate_attributability", "theory_checks"]
