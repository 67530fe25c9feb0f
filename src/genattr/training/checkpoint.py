"""Optimizer state as safetensors + JSON (never pickle): the resumable checkpoints of every training loop."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn


def flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], Any]:
    """(tensors keyed ``prefix.<param id>.<name>``, JSON metadata) of an optimizer's state."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{prefix}.{pid}.{k}"] = v.detach().clone().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                       meta: Any) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for pid, sc in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(sc)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def write_checkpoint(path: Path, *, modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
                     rngs: Mapping[str, torch.Tensor], meta: dict[str, Any], state_copy: Path | None = None) -> None:
    """One safetensors file: module weights under ``<prefix>.``, optimizer state, RNG states under ``rng.``,
    and ``meta`` (plus the optimizers' JSON parts) in its metadata. Written then renamed: an interrupted save
    never leaves a checkpoint whose tensors and bookkeeping disagree. ``state_copy``: a readable JSON copy."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in modules.items():
        tensors |= {f"{prefix}.{k}": v.detach().clone().contiguous() for k, v in module.state_dict().items()}
    meta = dict(meta)
    for prefix, opt in optimizers.items():
        t, m = flatten_optimizer(prefix, opt)
        tensors |= t
        meta[prefix] = m
    tensors |= {f"rng.{k}": v for k, v in rngs.items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"train_state": json.dumps(meta)})
    tmp.replace(path)
    if state_copy is not None:
        state_copy.write_text(json.dumps(meta, indent=1))


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, meta) of a checkpoint written by :func:`write_checkpoint`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as fh:
        meta = json.loads(fh.metadata()["train_state"])
    return load_file(str(path)), meta


def restore_checkpoint(tensors: dict[str, torch.Tensor], meta: dict[str, Any], *, modules: Mapping[str, nn.Module],
                       optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
    """Load module weights and optimizer states saved by :func:`write_checkpoint` (RNGs are the caller's)."""
    for prefix, module in modules.items():
        n = len(prefix) + 1
        module.load_state_dict({k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")})
    for prefix, opt in optimizers.items():
        restore_optimizer(prefix, opt, tensors, meta[prefix])


__all__ = ["flatten_optimizer", "read_checkpoint", "restore_checkpoint", "restore_optimizer", "write_checkpoint"]
