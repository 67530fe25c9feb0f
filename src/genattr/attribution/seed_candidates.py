"""Seed reconstruction, candidate side: checking a candidate generator, private frozen copies, restart seeds."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from genattr.errors import ConfigError
from genattr.sampling import derive_seed

__all__ = ["RANGE_TOL", "CandidateError", "candidate_latent_dim", "frozen_copy", "probe_candidate", "restart_pool",
           "spec_of"]

RANGE_TOL = 1e-3  # slack on [-1, 1] for float round-off


class CandidateError(ConfigError):
    """A candidate generator cannot be used for seed reconstruction (the message names it)."""


def candidate_latent_dim(name: str, g: Any) -> int:
    if not isinstance(g, nn.Module):
        raise CandidateError(f"candidate {name!r}: expected a torch.nn.Module generator, got {type(g).__name__}")
    d = getattr(g, "latent_dim", None)
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise CandidateError(f"candidate {name!r} ({type(g).__name__}) has no integer latent_dim attribute "
                             f"(got {d!r}); seed reconstruction needs the size of the latent vector")
    return d


@torch.no_grad()
def probe_candidate(name: str, g: nn.Module, latent_dim: int, *, n: int = 2, seed: int = 0) -> tuple[int, int, int]:
    """Run g on n standard-normal latents; returns its image shape (C, H, W) or raises CandidateError."""
    z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    try:
        out = g(z)
    except Exception as exc:  # any failure of a user's module is reported with its name
        raise CandidateError(f"candidate {name!r} failed on latents of shape ({n}, {latent_dim}): "
                             f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[0] != n or not out.is_floating_point():
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CandidateError(f"candidate {name!r} returned {got} for {n} latents; expected float images "
                             f"({n}, C, H, W)")
    if not bool(torch.isfinite(out).all()):
        raise CandidateError(f"candidate {name!r} produced NaN or infinite outputs")
    lo, hi = float(out.min()), float(out.max())
    if lo < -1 - RANGE_TOL or hi > 1 + RANGE_TOL:
        raise CandidateError(f"candidate {name!r} produced values in [{lo:.3g}, {hi:.3g}], outside [-1, 1]")
    return int(out.shape[1]), int(out.shape[2]), int(out.shape[3])


def frozen_copy(module: nn.Module) -> nn.Module:
    """A private deep copy in eval mode with gradients off for its weights (the original is untouched)."""
    m = copy.deepcopy(module).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def restart_pool(latent_dim: int, n: int, seed: int) -> torch.Tensor:
    """(n, latent_dim) N(0, I) restart seeds; row i depends only on (seed, latent_dim, i), so pools nest."""
    rows = [torch.randn(latent_dim, generator=torch.Generator().manual_seed(derive_seed(seed, "restart",
                                                                                        latent_dim, i)))
            for i in range(n)]
    return torch.stack(rows) if rows else torch.empty(0, latent_dim)


def spec_of(g: nn.Module) -> dict[str, Any]:
    from genattr.generators import Generator

    if isinstance(g, Generator) and g.arch:
        return {"kind": "genattr", "arch": g.arch, "config": g.config}
    return {"kind": "module", "class": type(g).__qualname__}
