"""The decisive (cheap, active) components: a trusted generation log, Kim et al.'s keys, Yu et al.'s fingerprints.

Each wraps an already-loaded object and turns a batch into one :class:`~genattr.unified.findings.Finding` per
image. Model names: a component maps its own user names (key users, fingerprint users) to registered model names
through ``models``; without a mapping the user name is the answer.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genattr.errors import ConfigError
from genattr.unified.conformal import PValue, detection
from genattr.unified.findings import Finding
from genattr.unified.verdict import AMBIGUOUS, UNKNOWN, Evidence

# -------------------------------------------------------------------------------------------------------------
# the log
# -------------------------------------------------------------------------------------------------------------
LOG_NULL = "the image is not an output recorded in this log (a hit is an exact pixel-hash match with a verified " \
           "inclusion proof; p = 0)"


def pixel_hashes(images: torch.Tensor, image_bytes: Sequence[bytes | None] | None) -> list[bytes | None]:
    """The ledger's output hash of every image: of the decoded file when its bytes are known (exactly what a
    logging generator hashed), else of the 8-bit pixels of the tensor (grey (H, W) or RGB (H, W, 3))."""
    from genattr.ledger.entry import pixel_hash

    out: list[bytes | None] = []
    u8 = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    for i in range(images.shape[0]):
        data = image_bytes[i] if image_bytes is not None else None
        if data is not None:
            out.append(_file_pixel_hash(data))
            continue
        a = u8[i]
        out.append(pixel_hash(a[0] if a.shape[0] == 1 else np.ascontiguousarray(a.transpose(1, 2, 0))) if
                   a.shape[0] in (1, 3) else None)
    return out


def _file_pixel_hash(data: bytes) -> bytes | None:
    import io

    from PIL import Image

    from genattr.ledger.entry import pixel_hash

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return pixel_hash(im)
    except Exception:  # an undecodable file has no pixel hash; the caller decoded it already or reports it
        return None


class LogComponent:
    """A trusted generation log (``genattr.ledger``): is this exact output in it? A hit comes with a verified
    inclusion proof up to the latest signed checkpoint (``genattr log audit``, without its full scan: only
    presence is claimed here, never absence)."""

    kind, method = "log-origin", "log"

    def __init__(self, name: str, path: str | Path, *, log_key: str | None = None,
                 models_by_id: Mapping[str, str] | None = None, sha256: str | None = None) -> None:
        self.name, self.path, self.log_key, self.sha256 = name, str(path), log_key, sha256
        self.models_by_id = dict(models_by_id or {})
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:  # open handles stay behind (Ray workers reopen the log)
        return {k: v for k, v in vars(self).items() if k != "_local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._local = threading.local()

    def _log(self) -> Any:
        log = getattr(self._local, "log", None)
        if log is None:
            from genattr.ledger import TransparencyLog

            log = TransparencyLog.open(self.path, log_key=self.log_key)
            self._local.log = log
        return log

    def close(self) -> None:
        log = getattr(self._local, "log", None)
        if log is not None:
            log.close()
            self._local.log = None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "path": self.path, "log_key_pinned": self.log_key is not None}

    def run(self, hashes: Sequence[bytes | None]) -> list[Finding]:
        from genattr.ledger import audit_log

        out = []
        log = self._log()
        for h in hashes:
            if h is None:
                out.append(Finding(Evidence("log", UNKNOWN, 1.0, {"found": False, "component": self.name,
                                                                 "null": LOG_NULL,
                                                                 "note": "no pixel hash (undecodable image)"}),
                                   UNKNOWN, component=self.name))
                continue
            if not log.find(h):
                out.append(Finding(Evidence("log", UNKNOWN, 1.0, {
                    "found": False, "component": self.name, "origin": log.origin, "output_hash": h.hex(),
                    "null": LOG_NULL, "note": "no exact match; an edited, re-encoded or resized output is not found "
                                              "by hash (that is what the other methods are for)"}),
                    UNKNOWN, component=self.name))
                continue
            res = audit_log(h, log, full_scan=False)
            if not res.found or res.entry is None:  # logged after the latest checkpoint: no proof yet
                out.append(Finding(Evidence("log", UNKNOWN, 1.0, {
                    "found": False, "component": self.name, "origin": log.origin, "output_hash": h.hex(),
                    "null": LOG_NULL, "note": res.message}), UNKNOWN, component=self.name))
                continue
            mid = res.entry.model_id.hex()
            model = self.models_by_id.get(mid)
            details = {**res.to_dict(), "component": self.name, "origin": log.origin,
                       "proof_bundle": res.bundle.encode() if res.bundle is not None else None,
                       "registered": model is not None, "null": LOG_NULL}
            answer = model if model is not None else UNKNOWN
            if model is None:
                details["note"] = f"logged by model {mid[:16]}…, which is not registered"
            out.append(Finding(Evidence("log", answer, 0.0, details), answer, strong=model is not None,
                               p=PValue(0.0), component=self.name))
        return out


# -------------------------------------------------------------------------------------------------------------
# Kim et al. 2021 keys
# -------------------------------------------------------------------------------------------------------------
KEYS_NULL = "the image is not made by this key's user (authentic or unrelated images score below the threshold); " \
            "p = N · (1 + #{calibration images scoring ≥ margin}) / (m + 1), Bonferroni over N keys"


class KeysComponent:
    """Kim, Ren & Yang (ICLR 2021) registry keys: key i *fires* when φ_iᵀx ≥ threshold (0, the verifier).

    p-values (H0: "not made by this user"): from authentic images' scores per key — the pipeline's calibration
    (``calibration={user: scores}``), else the key file's compliance record (``max_real`` over ``n_real``
    held-out real images: a score above every one of them has p = 1/(n_real + 1) exactly) — times N keys.
    """

    kind, method = "kim-keys", "kim-keys"

    def __init__(self, name: str, keyset: Any, *, models: Sequence[str] | None = None, threshold: float = 0.0,
                 calibration: Mapping[str, np.ndarray] | None = None, sha256: str | None = None) -> None:
        from genattr.watermark.keys import check_keys

        self.name, self.sha256, self.threshold = name, sha256, float(threshold)
        self.users = tuple(keyset.users)
        self.keys = check_keys(keyset.keys)
        if models is not None and len(models) != len(self.users):
            raise ConfigError(f"{name}: {len(models)} model names for {len(self.users)} keys")
        self.models = tuple(models) if models is not None else self.users
        self.calibration = dict(calibration or {})
        comp = (keyset.meta or {}).get("compliance") if isinstance(getattr(keyset, "meta", None), dict) else None
        self.compliance = comp if isinstance(comp, dict) else {}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.keys.shape[1:])  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "keys": len(self.users), "models": list(self.models),
                "threshold": self.threshold, "calibrated": bool(self.calibration) or bool(self.compliance)}

    def _key_p(self, j: int, s: float) -> PValue | None:
        user = self.users[j]
        if user in self.calibration:
            return PValue(float(detection(self.calibration[user], np.asarray([s]))[0]))
        rec = self.compliance.get(user)
        if isinstance(rec, dict) and isinstance(rec.get("n_real"), int) and rec["n_real"] > 0 \
                and isinstance(rec.get("max_real"), int | float):
            n = int(rec["n_real"])
            # above every held-out real score: exactly 1/(n+1); otherwise at least one of them scored ≥ s
            return PValue(1.0 / (n + 1)) if s > float(rec["max_real"]) else PValue(2.0 / (n + 1), "lower")
        return None

    def run(self, x: torch.Tensor, alpha: float) -> list[Finding]:
        from genattr.watermark.keys import key_scores

        scores = key_scores(self.keys, x).double()
        fired = scores >= self.threshold
        n_keys = len(self.users)
        out = []
        for i in range(x.shape[0]):
            row = scores[i]
            idx = fired[i].nonzero().flatten().tolist()
            best = int(row.argmax())
            details: dict[str, Any] = {
                "component": self.name, "keys": n_keys, "threshold": self.threshold,
                "fired": [{"user": self.users[j], "model": self.models[j], "margin": float(row[j])} for j in idx],
                "n_fired": len(idx), "max_margin": float(row[best]), "nearest": self.models[best], "null": KEYS_NULL}
            if len(idx) > 1:  # Eq. 2 needs exactly one positive key: several users' keys claim the image
                ps = [self._key_p(j, float(row[j])) for j in idx]
                p = None if any(q is None for q in ps) else \
                    PValue(min(1.0, n_keys * max(q.value for q in ps)))  # type: ignore[union-attr]
                details["calibrated"] = p is not None
                out.append(Finding(Evidence("kim-keys", AMBIGUOUS, p.value if p else None, details), AMBIGUOUS,
                                   strong=True, p=p, component=self.name))
                continue
            j = idx[0] if idx else best
            kp = self._key_p(j, float(row[j]))
            p = None if kp is None else PValue(min(1.0, n_keys * kp.value), kp.bound)
            details["calibrated"] = kp is not None
            if not idx:
                out.append(Finding(Evidence("kim-keys", UNKNOWN, p.value if p else None, details), UNKNOWN, p=p,
                                   component=self.name))
                continue
            # one key fired: decisive when significant, or when there is nothing to judge significance by (the
            # verifier's own rule, Kim et al. Eq. 2); a fired key with a large p is reported but not trusted
            strong = p is None or (p.bound != "lower" and p.value <= alpha)
            if not strong:
                details["note"] = f"the key fired but p = {p.value:.3g} > alpha = {alpha:g}: not decisive"
            out.append(Finding(Evidence("kim-keys", self.models[j], p.value if p else None, details), self.models[j],
                               strong=strong, p=p, component=self.name))
        return out


# -------------------------------------------------------------------------------------------------------------
# Yu et al. 2022 fingerprints
# -------------------------------------------------------------------------------------------------------------
FP_NULL = "the decoded code is unrelated to every registered code (uniform bits); p = N · P(Bin(d_c, ½) ≥ k)"


class FingerprintComponent:
    """Yu et al. (ICLR 2022) bit fingerprints: decode d_c bits with the owner's decoder, find the nearest
    registered code (faiss); accept k ≥ k_N, the registry rule (N · P(Bin(d_c, ½) ≥ k) ≤ alpha), or with
    ``rule="fixed"`` the paper's 121-of-128 scaled to d_c."""

    kind, method = "yu2022-index", "yu2022"

    def __init__(self, name: str, model: Any, index: Any, *, models: Mapping[str, str] | None = None,
                 alpha: float = 0.01, rule: str = "registry", sha256: str | None = None) -> None:
        decoder = getattr(model, "decoder", model)
        if not hasattr(decoder, "code_bits"):
            raise ConfigError(f"{name}: expected a FingerprintModel or FingerprintDecoder")
        if int(index.code_bits) != int(decoder.code_bits):
            raise ConfigError(f"{name}: the index holds {index.code_bits}-bit codes, the decoder reads "
                              f"{decoder.code_bits}")
        if rule not in ("registry", "fixed"):
            raise ConfigError(f"{name}: rule must be 'registry' or 'fixed', got {rule!r}")
        self.name, self.sha256, self.alpha, self.rule = name, sha256, float(alpha), rule
        self.decoder = decoder.eval()
        self.index = index
        self.models = dict(models or {})

    def __getstate__(self) -> dict[str, Any]:  # faiss objects do not pickle: ship the codes and names instead
        state = {k: v for k, v in vars(self).items() if k != "index"}
        ids = np.arange(len(self.index))
        state["_index_data"] = (self.index.code_bits, self.index.names(ids), self.index.packed_codes())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from genattr.watermark.fingerprint_index import FingerprintIndex, unpack_bits

        bits, names, packed = state.pop("_index_data")
        vars(self).update(state)
        idx = FingerprintIndex(bits)
        if names:
            idx.add_many(names, unpack_bits(packed, bits), check_codes=False)
        self.index = idx

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (int(self.decoder.channels), 32, 32)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "bits": int(self.decoder.code_bits),
                "registered": len(self.index), "threshold_bits": self.index.threshold(self.rule, self.alpha),
                "rule": self.rule, "alpha": self.alpha}

    @torch.no_grad()
    def run(self, x: torch.Tensor) -> list[Finding]:
        bits = torch.cat([(self.decoder(x[i:i + 512].float())[1] > 0) for i in range(0, x.shape[0], 512)]) \
            .to(torch.uint8).numpy() if x.shape[0] else np.zeros((0, self.decoder.code_bits), np.uint8)
        matches = self.index.identify(bits, rule=self.rule, alpha=self.alpha) if len(bits) else []
        n_codes, d = max(len(self.index), 1), int(self.decoder.code_bits)
        out = []
        for b, m in zip(bits, matches, strict=True):
            p = PValue(min(1.0, n_codes * m.p_value))
            user = m.name
            answer = self.models.get(user, user) if user is not None else UNKNOWN
            details = {"component": self.name, "user": user, "model": answer if user is not None else None,
                       "matched_bits": m.matched, "bits_total": d, "threshold_bits": m.threshold,
                       "nearest": m.nearest, "p_single": m.p_value, "registered_codes": len(self.index),
                       "bits": "".join(map(str, b.tolist())), "rule": self.rule, "null": FP_NULL}
            out.append(Finding(Evidence("yu2022", answer, p.value, details), answer, strong=user is not None, p=p,
                               component=self.name))
        return out


def check_component_shape(component: Any, shape: Sequence[int]) -> str | None:
    """Why ``component`` cannot read images of ``shape`` (C, H, W), or None when it can."""
    want = getattr(component, "image_shape", None)
    if want is None or tuple(int(s) for s in want) == tuple(int(s) for s in shape):
        return None
    return f"{component.name} reads {tuple(want)} images, these are {tuple(shape)}"


__all__ = ["FP_NULL", "KEYS_NULL", "LOG_NULL", "FingerprintComponent", "KeysComponent", "LogComponent",
           "check_component_shape", "pixel_hashes"]
