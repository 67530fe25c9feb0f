"""``yu2022-fingerprint``: attribution by decoding a scalable bit fingerprint (Yu et al., ICLR 2022).

Each candidate is a user holding a fingerprinted generator instance; fitting needs the owner's decoder F
and every user's registered d_c-bit code::

    att = create_attributor("yu2022-fingerprint").fit({"alice": code_a, "bob": code_b}, decoder=model)
    att.predict(x)                       # ["alice", "UNKNOWN", ...]
    att.attribute(x).extras["p_value"]   # P(Bin(d_c, ½) ≥ k) of the best match

Scores are matched bits k (0 … d_c) between the decoded code and each candidate's code, so higher = more
likely. Thresholds come from a rule, not from data: ``rule="registry"`` (default) is k_N, the smallest k
with N · P(Bin ≥ k) ≤ ``alpha`` for N candidates; ``rule="fixed"`` is the paper's 121/128 scaled to d_c;
``min_matched`` sets k directly. :meth:`calibrate` still works and overrides them.

Large registries: above ``dense_limit`` candidates no (n × N) score matrix is built. ``decision_function``
refuses (it would materialise one); :meth:`attribute` / :meth:`predict` search a faiss binary index for the
``top_k`` nearest codes and return their scores as a sparse (n × N) tensor.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from genattr import UNKNOWN
from genattr.attribution.base import (
    AttributionResult,
    Attributor,
    Capabilities,
    assign_labels,
    check_images,
)
from genattr.attribution.registry import register_attributor
from genattr.errors import ConfigError, DataError, GenattrError
from genattr.watermark.fingerprint import FingerprintDecoder, FingerprintModel, check_decoder_input
from genattr.watermark.fingerprint_index import (
    FingerprintIndex,
    RegistryView,
    as_bits,
    p_value,
    pack_bits,
    threshold,
    unpack_bits,
)


@dataclass(frozen=True)
class SparseAttributionResult(AttributionResult):
    """An :class:`AttributionResult` whose ``scores`` is a sparse (n × N) tensor holding each image's
    ``top_k`` matched-bit scores (large registries); ``to_dict`` lists those entries instead."""

    def to_dict(self) -> dict[str, Any]:
        s = self.scores.coalesce()
        rows, cols = s.indices().tolist()
        top: list[list[dict[str, Any]]] = [[] for _ in range(len(self.labels))]
        for r, c, v in zip(rows, cols, s.values().tolist(), strict=True):
            top[r].append({"candidate": self.candidates[c], "score": v})
        for entries in top:
            entries.sort(key=lambda e: -e["score"])
        extras = {k: (v.tolist() if isinstance(v, torch.Tensor | np.ndarray) else v) for k, v in self.extras.items()}
        return {"candidates_count": len(self.candidates), "top_scores": top, "labels": list(self.labels),
                "thresholds": "per candidate (see the attributor)", "extras": extras}


@register_attributor("yu2022-fingerprint")
class FingerprintBits(Attributor):
    """Decode the d_c-bit fingerprint and match it against every registered user's code (Yu et al. 2022)."""

    capabilities = Capabilities(needs_training_images=False, needs_generator_weights=False,
                                modifies_generators=True, supports_open_set=True)

    def __init__(self, *, rule: str = "registry", alpha: float = 0.01, min_matched: int | None = None,
                 top_k: int = 5, dense_limit: int = 4096, batch_size: int = 512) -> None:
        self.rule = rule
        self.alpha = alpha
        self.min_matched = min_matched
        self.top_k = top_k
        self.dense_limit = dense_limit
        self.batch_size = batch_size

    # -- fitting ------------------------------------------------------------------------------------------------
    def _fit(self, candidates: Mapping[str, Any], *, decoder: nn.Module | None = None, **unused: Any) -> None:
        if unused:
            raise ConfigError(f"unexpected fit arguments {sorted(unused)}; fit(codes, decoder=...)")
        if isinstance(decoder, FingerprintModel):
            decoder = decoder.decoder
        if not isinstance(decoder, FingerprintDecoder):
            raise ConfigError("fit needs decoder=<FingerprintModel or FingerprintDecoder> (the owner's F)")
        if self.rule not in ("registry", "fixed"):
            raise ConfigError(f"rule must be 'registry' or 'fixed', got {self.rule!r}")
        if self.top_k < 1 or self.dense_limit < 1:
            raise ConfigError("top_k and dense_limit must be ≥ 1")
        bits = decoder.code_bits
        if isinstance(candidates, RegistryView):
            if candidates.index.code_bits != bits:
                raise ConfigError(f"registry codes have {candidates.index.code_bits} bits, the decoder reads {bits}")
            packed = candidates.index.packed_codes()
        else:
            rows = [as_bits(code, bits, what=f"code of {name!r}") for name, code in candidates.items()]
            if any(r.ndim != 1 for r in rows):
                raise ConfigError("each candidate maps to one code (a 1-D bit vector)")
            packed = pack_bits(np.stack(rows))
        if len(np.unique(packed, axis=0)) != packed.shape[0]:
            raise ConfigError("two candidates share a code; codes must be distinct")
        self._index = None
        self.decoder_config_ = dict(decoder.config)
        self.decoder_ = copy.deepcopy(decoder).eval()
        for p in self.decoder_.parameters():
            p.requires_grad_(False)
        self.code_bits_ = int(bits)
        self.codes_ = torch.from_numpy(packed)
        self.input_shape_ = (int(decoder.channels), 32, 32)
        t = self.threshold_bits()
        self.thresholds_ = torch.full((packed.shape[0],), float(t), dtype=torch.float64)

    def threshold_bits(self) -> int:
        """The matched-bit threshold of the configured rule for this registry size."""
        if self.min_matched is not None:
            return int(self.min_matched)
        return threshold(self.rule, self.code_bits_, int(self.codes_.shape[0]), self.alpha)

    def _build_module(self, name: str) -> nn.Module:
        if name == "decoder_":
            cfg = self.decoder_config_
            limits = {"channels": 64, "ndf": 1024, "latent_dim": 4096, "code_bits": 4096}
            if not isinstance(cfg, dict) or set(cfg) != set(limits) or any(
                    not isinstance(cfg[k], int) or isinstance(cfg[k], bool) or not 1 <= cfg[k] <= hi
                    for k, hi in limits.items()) or cfg["code_bits"] % 8:
                raise DataError(f"saved decoder_config_ is malformed or out of bounds: {str(cfg)[:200]}")
            return FingerprintDecoder(**cfg)
        return super()._build_module(name)

    def __deepcopy__(self, memo: dict[int, Any]) -> FingerprintBits:
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for k, v in vars(self).items():
            setattr(new, k, None if k == "_index" else copy.deepcopy(v, memo))
        return new

    # -- decoding and matching ----------------------------------------------------------------------------------
    @property
    def is_large(self) -> bool:
        return len(self.candidates_) > self.dense_limit

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Decoded bits (n, d_c) uint8."""
        self._check_fitted()
        x = check_decoder_input(x, self.input_shape_[0])
        out = [(self.decoder_(x[i:i + self.batch_size].float())[1] > 0) for i in range(0, x.shape[0], self.batch_size)]
        return torch.cat(out).to(torch.uint8) if out else torch.zeros(0, self.code_bits_, dtype=torch.uint8)

    def _matched_dense(self, bits: torch.Tensor) -> torch.Tensor:
        q = pack_bits(bits.numpy())
        db = self.codes_.numpy()
        out = np.empty((q.shape[0], db.shape[0]), dtype=np.float32)
        step = max(1, (1 << 24) // max(db.size, 1))  # ≤ 16 MB of XOR bytes at a time
        for i in range(0, q.shape[0], step):
            xor = np.bitwise_xor(q[i:i + step, None, :], db[None, :, :])
            out[i:i + step] = self.code_bits_ - np.bitwise_count(xor).sum(axis=2, dtype=np.int64)
        return torch.from_numpy(out)

    def index(self) -> FingerprintIndex:
        """A faiss index over the registered codes (built on first use; not saved)."""
        if getattr(self, "_index", None) is None:
            idx = FingerprintIndex(self.code_bits_)
            idx._flat.add(np.ascontiguousarray(self.codes_.numpy()))
            self._index = idx
        return self._index  # type: ignore[return-value]

    def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_large:
            raise GenattrError(f"{len(self.candidates_)} candidates exceed dense_limit={self.dense_limit}: a dense "
                               "(n × N) score matrix is not built; use attribute()/predict() (top-k search)")
        return self._matched_dense(self.decode(x))

    def attribute(self, x: torch.Tensor) -> AttributionResult:
        """Labels by the threshold rule; extras: ``bits`` (n, d_c), ``matched_bits`` and ``p_value`` of the
        best-matching candidate, ``nearest`` (its index) and ``threshold_bits``."""
        self._check_fitted()
        x = check_images(x)
        n = x.shape[0]
        cands = tuple(self.candidates_)
        if not self.is_large:
            scores = self.decision_function(x)
            labels = assign_labels(scores, self.thresholds_, self.candidates_)
            bits = self.decode(x) if n else torch.zeros(0, self.code_bits_, dtype=torch.uint8)
            best_k, best_i = (scores.max(1) if n else (torch.zeros(0), torch.zeros(0, dtype=torch.long)))
            return AttributionResult(candidates=cands, scores=scores, labels=tuple(labels),
                                     thresholds=self.thresholds_.clone(),
                                     extras=self._extra_dict(bits, best_k.long(), best_i) if n else {})
        bits = self.decode(x)
        k = min(self.top_k, len(cands))
        ids, matched = self.index().nearest(unpack_bits(pack_bits(bits.numpy()), self.code_bits_), k) if n else \
            (np.zeros((0, k), np.int64), np.zeros((0, k), np.int64))
        labels = []
        thr = self.thresholds_.numpy()
        for row_ids, row_k in zip(ids, matched, strict=True):
            ok = [(kk, -i) for i, kk in zip(row_ids, row_k, strict=True) if i >= 0 and kk >= thr[i]]
            labels.append(cands[-max(ok)[1]] if ok else UNKNOWN)
        rows = torch.arange(n).repeat_interleave(k)
        valid = torch.from_numpy(ids.reshape(-1) >= 0)
        scores = torch.sparse_coo_tensor(torch.stack([rows[valid], torch.from_numpy(ids.reshape(-1))[valid]]),
                                         torch.from_numpy(matched.reshape(-1))[valid].float(), (n, len(cands)),
                                         check_invariants=True)
        extras = self._extra_dict(bits, torch.from_numpy(matched[:, 0]), torch.from_numpy(ids[:, 0])) if n else {}
        if n:
            extras |= {"top_k_candidates": torch.from_numpy(ids), "top_k_matched_bits": torch.from_numpy(matched)}
        return SparseAttributionResult(candidates=cands, scores=scores.coalesce(), labels=tuple(labels),
                                       thresholds=self.thresholds_.clone(), extras=extras)

    def _extra_dict(self, bits: torch.Tensor, best_k: torch.Tensor, best_i: torch.Tensor) -> dict[str, Any]:
        pv = np.atleast_1d(p_value(best_k.numpy(), self.code_bits_))
        return {"bits": bits, "matched_bits": best_k.long(), "p_value": torch.from_numpy(pv.astype(np.float64)),
                "nearest": best_i.long(), "threshold_bits": self.threshold_bits()}

    def _extras(self, x: torch.Tensor, scores: torch.Tensor) -> dict[str, Any]:  # attribute() is overridden
        best_k, best_i = scores.max(1)
        return self._extra_dict(self.decode(x), best_k.long(), best_i)


def expected_false_matches(n_codes: int, code_bits: int, min_matched: int) -> float:
    """Expected number of registered codes an unrelated (uniformly random) decoded code matches:
    N · P(Bin(d_c, ½) ≥ k) — the analytic false-attribution rate used to extrapolate to 10⁹ users."""
    return float(n_codes * p_value(min_matched, code_bits)) if min_matched <= code_bits else 0.0


__all__ = ["FingerprintBits", "SparseAttributionResult", "expected_false_matches"]
