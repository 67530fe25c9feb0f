"""Registry keys of Kim, Ren & Yang (ICLR 2021): generation (Eq. 8), compliance checks and key-set files.

Sign convention (the paper's): a key φ is *data-compliant* when φᵀx < 0 for authentic images x, and a
user model keyed with φ produces φᵀx > 0. Keys are unit-norm float32 tensors of the image shape (C, H, W).

**Key generation (Eq. 8).** φ_i = argmin E_{x∼P_D ∪ P_G0} max{1 + φᵀx, 0} + Σ_{j<i} max{φ_jᵀφ, 0}, then
normalised. Our choices (docs/kim2021.md):

* Orthogonality is *exact*: each new key is optimised inside the orthogonal complement of the keys already
  issued (and of the other keys of its block, by a differentiable Gram–Schmidt), instead of the paper's
  penalty (max{·, 0}) or the official code's Σ|φ_jᵀφ|. o_n is then 0 up to float round-off.
* The hinge is written for the unit key with a margin m: max{m + φ̂ᵀx, 0}/m. The paper's unnormalised key,
  initialised with randn(d) (norm ≈ √d) and hinge margin 1, corresponds to m = 1/√d ≈ 0.03; we default to
  m = 0.5, which generalises far better to the held-out check (Fashion-MNIST, 32 candidates after 63 keys:
  13 fail at m = 0.125, 1 at m = 0.5) at a slightly *smaller* d_max, and raised the number of orthogonal keys
  we could issue from ≈ 80 (m = 2/√d) to 122.
* Keys are optimised in blocks (one matrix product per step for the whole block) on a pool of real and G0
  images, with hard-example mining: every few steps the full training sets are scored and the worst
  violators join the pool.
* Before a key is issued it is checked on *held-out* real images (the test split) and *fresh* G0 samples:
  Theorem 1 needs every authentic image on the negative side. A key that fails is never issued: it is
  replaced by a new candidate, and if ``max_attempts`` candidates fail, :class:`NonCompliantKeyError`.
* The 45° baseline (official code: penalty 20·|0.7 − cos|) is built exactly: from n + 1 orthonormal compliant
  keys u_0 … u_n, φ_i = √c·u_0 + √(1 − c)·u_i has φ_iᵀφ_j = c = cos(angle) for all i ≠ j, and is compliant
  wherever the u's are (a sum of two negative numbers).

Files (:func:`save_keys` / :func:`load_keys`): ``keys.safetensors`` (tensor ``keys`` (N, C, H, W)) and
``keys.json`` (``users`` in key order, ``angle_deg``, per-key compliance margins, settings), written to a
temporary directory and renamed into place.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genattr.errors import ConfigError, DataError
from genattr.watermark.key_spaces import border_mask, lowpass_basis
from genattr.watermark.matmul import fast_matmul_ok, fp32_math_on_bf16_units

KEYS_FILE = "keys.safetensors"
META_FILE = "keys.json"
FORMAT = "genattr-kim2021-keys/1"
NORM_TOL = 1e-4
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class NonCompliantKeyError(DataError):
    """A key is not data-compliant: some authentic (or root-model) image has φᵀx ≥ −margin."""


# --------------------------------------------------------------------------------------------------------
# Key sets
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeySet:
    """N unit-norm keys (N, C, H, W) with the users they were issued to (in key order) and metadata."""

    keys: torch.Tensor
    users: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", check_keys(self.keys))
        users = tuple(self.users)
        check_user_names(users)
        if len(users) != self.keys.shape[0]:
            raise DataError(f"{len(users)} user names for {self.keys.shape[0]} keys")
        object.__setattr__(self, "users", users)

    def __len__(self) -> int:
        return len(self.users)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.keys.shape[1:])  # type: ignore[return-value]

    @property
    def matrix(self) -> torch.Tensor:
        """(N, d) float32."""
        return self.keys.reshape(len(self), -1)

    def key(self, user: str) -> torch.Tensor:
        try:
            return self.keys[self.users.index(user)]
        except ValueError:
            raise ConfigError(f"no key for user {user!r}; users: {', '.join(self.users[:10])}"
                              + (" …" if len(self.users) > 10 else "")) from None

    def as_candidates(self) -> dict[str, torch.Tensor]:
        """{user: key (C, H, W)}: what the ``kim2021-keys`` attributor's ``fit`` takes."""
        return {u: self.keys[i] for i, u in enumerate(self.users)}


def check_user_names(users: Sequence[str]) -> None:
    bad = [u for u in users if not isinstance(u, str) or not _NAME_RE.match(u)]
    if bad:
        raise ConfigError(f"invalid user name(s) {bad[:3]}: use letters, digits, '.', '_' or '-' (≤ 64 chars, "
                          "not starting with '.' or '-')")
    if len(set(users)) != len(users):
        raise ConfigError("user names must be unique")


def default_users(n: int, start: int = 0, prefix: str = "user") -> list[str]:
    width = max(3, len(str(start + n - 1)))
    return [f"{prefix}-{i:0{width}d}" for i in range(start, start + n)]


def check_keys(keys: Any, *, image_shape: Sequence[int] | None = None, what: str = "keys",
               tol: float = NORM_TOL) -> torch.Tensor:
    """Validate a key batch (N, C, H, W) (a single key (C, H, W) is promoted): float, finite, unit-norm and,
    if given, of ``image_shape``. Returns a contiguous float32 CPU tensor."""
    if not isinstance(keys, torch.Tensor) or not keys.is_floating_point():
        raise DataError(f"{what} must be a float tensor (N, C, H, W), got "
                        f"{keys.dtype if isinstance(keys, torch.Tensor) else type(keys).__name__}")
    if keys.ndim == 3:
        keys = keys[None]
    if keys.ndim != 4 or keys.shape[0] == 0:
        raise DataError(f"{what} must have shape (N, C, H, W) with N ≥ 1, got {tuple(keys.shape)}")
    if image_shape is not None and list(keys.shape[1:]) != [int(s) for s in image_shape]:
        raise DataError(f"{what} have shape {tuple(keys.shape[1:])} per key; the images are "
                        f"{tuple(int(s) for s in image_shape)}")
    keys = keys.detach().to("cpu", torch.float32).contiguous()
    if not bool(torch.isfinite(keys).all()):
        raise DataError(f"{what} contain NaN or infinite values")
    norms = keys.flatten(1).double().norm(dim=1)
    off = (norms - 1).abs() > tol
    if bool(off.any()):
        i = int(off.nonzero()[0])
        raise DataError(f"{what}[{i}] has norm {float(norms[i]):.6g}; keys must be unit-norm (±{tol:g})")
    return keys


def orthogonality(keys: torch.Tensor) -> torch.Tensor:
    """o_n = Σ_{j<n} |φ_jᵀφ_n| / (n − 1) for n = 1 … N (o_1 = 0), the paper's Fig. 2c measure (float64)."""
    k = keys.reshape(keys.shape[0], -1).double()
    g = (k @ k.T).abs().tril(-1).sum(1)
    n = torch.arange(k.shape[0], dtype=torch.float64)
    return torch.where(n > 0, g / n.clamp_min(1), torch.zeros_like(g))


def max_abs_cosine(keys: torch.Tensor) -> float:
    k = keys.reshape(keys.shape[0], -1).double()
    k = k / k.norm(dim=1, keepdim=True)
    g = k @ k.T
    g.fill_diagonal_(0)
    return float(g.abs().max()) if k.shape[0] > 1 else 0.0


# --------------------------------------------------------------------------------------------------------
# Compliance
# --------------------------------------------------------------------------------------------------------
def key_scores(keys: torch.Tensor, x: torch.Tensor, *, chunk: int = 8192) -> torch.Tensor:
    """φ_iᵀx for every image and key: (n, N) float32, one matrix product per chunk of images (float32 accuracy;
    on the bf16 units when :func:`fast_matmul_ok`)."""
    k = keys.reshape(keys.shape[0], -1).to(torch.float32)
    flat = x.reshape(x.shape[0], -1)
    if flat.shape[1] != k.shape[1]:
        raise DataError(f"images have {flat.shape[1]} values each, keys {k.shape[1]}")
    kt = k.T.contiguous()
    ctx = fp32_math_on_bf16_units() if flat.shape[0] * k.shape[0] >= 1 << 16 and fast_matmul_ok() else nullcontext()
    out = torch.empty(flat.shape[0], k.shape[0], dtype=torch.float32)
    with ctx:
        for i in range(0, flat.shape[0], chunk):  # rows of `out` are contiguous: no concatenation copy
            torch.mm(flat[i:i + chunk].to(torch.float32), kt, out=out[i:i + chunk])
    return out


def data_distances(keys: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per key over images x: ``max`` = max φᵀx (compliant iff < 0), ``d_max`` = max |φᵀx| and ``d_min`` =
    min |φᵀx| (Theorems 1–2), all (N,) float64."""
    s = key_scores(keys, x).double()
    a = s.abs()
    return {"max": s.max(0).values, "d_max": a.max(0).values, "d_min": a.min(0).values}


def compliance_report(keys: torch.Tensor, real: torch.Tensor, root: torch.Tensor | None = None
                      ) -> list[dict[str, float]]:
    """Per key: the largest φᵀx over the real and the root-model images (compliant iff both < 0), and the
    real images' d_max / d_min."""
    dr = data_distances(keys, real)
    dg = data_distances(keys, root) if root is not None else None
    out = []
    for i in range(keys.shape[0]):
        row = {"max_real": float(dr["max"][i]), "d_max_real": float(dr["d_max"][i]),
               "d_min_real": float(dr["d_min"][i]), "n_real": int(real.shape[0])}
        if dg is not None:
            row.update({"max_root": float(dg["max"][i]), "n_root": int(root.shape[0])})  # type: ignore[union-attr]
        out.append(row)
    return out


def compliant_mask(keys: torch.Tensor, *sets: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """(N,) bool: φᵀx < −margin for every image of every set."""
    ok = torch.ones(keys.shape[0], dtype=torch.bool)
    for x in sets:
        ok &= key_scores(keys, x).max(0).values < -margin
    return ok


def check_compliance(keys: torch.Tensor, real: torch.Tensor, root: torch.Tensor | None = None, *,
                     margin: float = 0.0, names: Sequence[str] | None = None) -> None:
    """Raise :class:`NonCompliantKeyError` naming the first key with φᵀx ≥ −margin on some image."""
    for what, x in (("real", real), ("root-model", root)):
        if x is None:
            continue
        s = key_scores(keys, x)
        worst, idx = s.max(0)
        bad = (worst >= -margin).nonzero().flatten()
        if bad.numel():
            i = int(bad[0])
            who = names[i] if names is not None else f"key {i}"
            raise NonCompliantKeyError(
                f"{who} is not data-compliant: {int((s[:, i] >= -margin).sum())} of {x.shape[0]} {what} images "
                f"have φᵀx ≥ {-margin:g} (worst {float(worst[i]):.4g} at image {int(idx[i])}); "
                f"{bad.numel()} of {keys.shape[0]} keys fail")


# --------------------------------------------------------------------------------------------------------
# Generation (Eq. 8)
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyGenConfig:
    """Settings of :func:`generate_keys` (see the module docstring)."""

    margin: float | None = 0.5  # unit-key hinge margin; None = 1/√d (the paper's implicit margin)
    block: int = 64  # keys optimised together
    steps: int = 300  # Adam steps per block
    lr: float = 0.05
    pool: int = 4096  # real + root images in the optimisation pool (half each)
    mine_every: int = 50  # steps between hard-example mining on the full training sets
    mine_k: int = 512  # violators added per mining round (per set)
    max_attempts: int = 6  # consecutive candidate blocks issuing nothing before giving up
    compliance_margin: float = 0.0  # issue only if max φᵀx < −compliance_margin on the held-out sets
    # Our extension (not the paper's): > 0 keeps keys in the span of the 2-D DCT basis functions with
    # u + v < lowpass on the 28×28 content area (:func:`lowpass_basis`), i.e. smooth and zero on the border.
    # The compliant keys of Eq. 8 are high-frequency (blur σ 3 keeps 17 % of their norm), so keying them
    # paints a visible texture and blur erases it (docs/kim2021.md).
    lowpass: int = 0
    content: int = 28  # side of the centred content area the low-pass space lives on


def _gram_schmidt(u: torch.Tensor, basis: torch.Tensor | None) -> torch.Tensor:
    """Orthonormalise the rows of u (B, d) against ``basis`` (n, d, orthonormal rows) and each other,
    in order (differentiable, float64 inside)."""
    v = u.double()
    if basis is not None and basis.shape[0]:
        b = basis.double()
        v = v - (v @ b.T) @ b
        v = v - (v @ b.T) @ b  # twice is enough (Kahan–Parlett)
    q, r = torch.linalg.qr(v.T, mode="reduced")
    q = q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, torch.ones(()).double())[None]
    return q.T.to(u.dtype)


def _optimise_block(u0: torch.Tensor, basis: torch.Tensor | None, real: torch.Tensor, root: torch.Tensor,
                    mask: torch.Tensor | None, cfg: KeyGenConfig, margin: float, g: torch.Generator,
                    subspace: torch.Tensor | None = None) -> torch.Tensor:
    """Minimise the mean hinge over real and root images for a block of keys kept orthonormal (inside the
    span of ``subspace``'s orthonormal rows when given)."""
    n_half = max(1, cfg.pool // 2)
    pools = [x[torch.randperm(x.shape[0], generator=g)[:n_half]] for x in (real, root)]
    u = u0.clone().requires_grad_(True)
    opt = torch.optim.Adam([u], lr=cfg.lr)

    def keys_of(v: torch.Tensor) -> torch.Tensor:
        if subspace is not None:
            v = (v @ subspace.T) @ subspace
        return _gram_schmidt(v * mask if mask is not None else v, basis)

    for step in range(cfg.steps):
        if cfg.mine_every and step and step % cfg.mine_every == 0:
            with torch.no_grad():
                k = keys_of(u)
                for j, x in enumerate((real, root)):
                    s = (x @ k.T).max(1).values  # worst key per image
                    top = torch.topk(s, min(cfg.mine_k, s.numel())).indices
                    top = top[s[top] > -margin]
                    if top.numel():
                        pools[j] = torch.cat([pools[j], x[top]])
        k = keys_of(u)
        loss = sum(torch.relu(margin + p @ k.T).mean() for p in pools) / margin
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        opt.step()
        if float(loss.detach()) == 0.0:
            break
    with torch.no_grad():
        return keys_of(u)


def generate_keys(n: int, real: torch.Tensor, root: torch.Tensor, *, real_heldout: torch.Tensor,
                  root_heldout: torch.Tensor, existing: torch.Tensor | None = None, angle_deg: float = 90.0,
                  mask: torch.Tensor | None = None, seed: int = 0, config: KeyGenConfig | None = None,
                  allow_fewer: bool = False, log: Callable[[str], None] | None = None
                  ) -> tuple[torch.Tensor, dict[str, Any]]:
    """n new unit keys (n, C, H, W), data-compliant on the held-out sets, orthogonal to ``existing`` and to
    each other (``angle_deg`` = 90), or at a common angle to each other (``angle_deg`` < 90; the 45°
    baseline). ``real``/``root``: training images (N, C, H, W) of P_D and of G0; ``mask``: (C, H, W), keys
    are zero where it is 0 (the border-masked ablation). Returns (keys, info) with timings and margins.
    When ``max_attempts`` blocks in a row issue no key, :class:`NonCompliantKeyError` — or, with
    ``allow_fewer``, the keys issued so far (``info["issued"]`` < n: the measured capacity).
    """
    cfg = config or KeyGenConfig()
    n_requested = n
    if n < 1:
        raise ConfigError(f"need n ≥ 1 keys, got {n}")
    if not 0 < angle_deg <= 90:
        raise ConfigError(f"angle_deg must be in (0, 90], got {angle_deg}")
    shape = tuple(real.shape[1:])
    for nm, x in (("root", root), ("real_heldout", real_heldout), ("root_heldout", root_heldout)):
        if tuple(x.shape[1:]) != shape:
            raise DataError(f"{nm} images are {tuple(x.shape[1:])}, real images {shape}")
        if not bool(torch.isfinite(x).all()):
            raise DataError(f"{nm} images contain NaN or infinite values")
    d = math.prod(shape)
    flat = [x.reshape(x.shape[0], -1).to(torch.float32) for x in (real, root, real_heldout, root_heldout)]
    m = None
    if mask is not None:
        if tuple(mask.shape) != shape:
            raise DataError(f"mask is {tuple(mask.shape)}, images {shape}")
        m = mask.reshape(1, -1).to(torch.float32)
    sub = lowpass_basis(shape, cfg.lowpass, cfg.content) if cfg.lowpass else None
    if sub is not None and m is not None:
        raise ConfigError("give either a mask or a low-pass key space, not both (low-pass keys are zero on the "
                          "border already)")
    room = d if m is None else int((m > 0).sum())
    room = room if sub is None else sub.shape[0]
    basis = None if existing is None else check_keys(existing, image_shape=shape, what="existing keys").reshape(-1, d)
    n_base = n if angle_deg >= 90 else n + 1
    if (0 if basis is None else basis.shape[0]) + n_base > room:
        raise ConfigError(f"cannot have {n_base} more orthogonal keys in {room} dimensions"
                          + (f" with {0 if basis is None else basis.shape[0]} existing" if basis is not None else ""))
    margin = cfg.margin if cfg.margin is not None else 1.0 / math.sqrt(d)
    g = torch.Generator().manual_seed(seed)
    issued: list[torch.Tensor] = []
    rejected = 0
    t0 = time.perf_counter()
    attempts = idle = 0
    import contextlib

    from genattr.progress import phase

    progress = contextlib.ExitStack()  # closed after the loop (an exception closes it with the frame)
    advance = progress.enter_context(phase("key generation (keys issued)", total=n_base))
    while len(issued) < n_base:
        if idle >= cfg.max_attempts:
            if allow_fewer and len(issued) >= (1 if angle_deg >= 90 else 2):
                break
            raise NonCompliantKeyError(
                f"only {len(issued)} of {n_base} keys are data-compliant on the held-out sets; the last "
                f"{idle} candidate blocks issued none ({rejected} candidates rejected in all): the compliant cone "
                "may be full (capacity, paper Fig. 4); issue fewer keys")
        attempts += 1
        before = len(issued)
        need = n_base - len(issued)
        b = min(cfg.block, 3 * need + 4)  # oversample: some candidates fail the held-out check
        current = torch.cat([t for t in ([] if basis is None else [basis]) + issued]) if (basis is not None or issued) \
            else None
        u0 = torch.randn(b, d, generator=g)
        cand = _optimise_block(u0, current, flat[0], flat[1], m, cfg, margin, g, sub)
        ok = compliant_mask(cand, flat[2], flat[3], margin=cfg.compliance_margin)
        rejected += int((~ok).sum())
        # Issued keys stay exactly orthogonal: re-orthonormalise the accepted ones against what is issued.
        acc = cand[ok]
        if acc.shape[0]:
            acc = _gram_schmidt(acc, current)
            ok2 = compliant_mask(acc, flat[2], flat[3], margin=cfg.compliance_margin)
            rejected += int((~ok2).sum())
            acc = acc[ok2][:need]
            issued.extend(acc[i:i + 1] for i in range(acc.shape[0]))
        idle = 0 if len(issued) > before else idle + 1
        advance(len(issued) - before)
        if log:
            log(f"keys: {len(issued)}/{n_base} issued ({rejected} rejected) in {time.perf_counter() - t0:.1f} s")
    progress.close()
    base = torch.cat(issued)[:n_base]
    n = base.shape[0] if angle_deg >= 90 else base.shape[0] - 1
    keys = (keys_at_angle(base, angle_deg) if angle_deg < 90 else base / base.norm(dim=1, keepdim=True))
    keys = keys.reshape(n, *shape).contiguous()
    check_compliance(keys, real_heldout, root_heldout, margin=cfg.compliance_margin)  # never issue a bad key
    info = {"seconds": time.perf_counter() - t0, "rejected_candidates": rejected, "margin": margin,
            "requested": n_requested, "issued": n, "candidate_blocks": attempts,
            "angle_deg": float(angle_deg), "masked": mask is not None, "lowpass": cfg.lowpass,
            "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}}
    return keys, info


def keys_at_angle(base: torch.Tensor, angle_deg: float) -> torch.Tensor:
    """n unit keys at a common pairwise angle from n + 1 orthonormal keys (rows of ``base``, any trailing
    shape): φ_i = √c·u_0 + √(1 − c)·u_i, so φ_iᵀφ_j = c = cos(angle) for i ≠ j; compliant wherever the u's are."""
    c = math.cos(math.radians(angle_deg))
    if base.shape[0] < 2 or not 0 <= c < 1:
        raise ConfigError("need ≥ 2 base keys and an angle in (0, 90]")
    k = math.sqrt(c) * base[:1] + math.sqrt(1 - c) * base[1:]
    flat = k.reshape(k.shape[0], -1)
    return (flat / flat.norm(dim=1, keepdim=True)).reshape(k.shape)


# --------------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------------
def atomic_dir(final: Path, write: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Run ``write(tmp)`` on a fresh temporary sibling directory, then rename it to ``final``; nothing is left
    behind if ``write`` raises. An existing ``final`` is an error unless ``overwrite``."""
    final = Path(final)
    if final.exists() and not overwrite:
        raise ConfigError(f"{final} already exists; choose another --out or remove it")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        write(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _write_keyset(keyset: KeySet, directory: Path) -> None:
    from safetensors.torch import save_file

    save_file({"keys": keyset.keys.contiguous()}, str(directory / KEYS_FILE), metadata={"format": FORMAT})
    meta = {"format": FORMAT, "users": list(keyset.users), "shape": list(keyset.keys.shape),
            "sign_convention": "real: phi^T x < 0; keyed: phi^T x > 0", **keyset.meta}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, allow_nan=False) + "\n")


def save_keys(keyset: KeySet, directory: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``keys.safetensors`` + ``keys.json`` atomically (temporary directory + rename)."""
    return atomic_dir(Path(directory), lambda tmp: _write_keyset(keyset, tmp), overwrite=overwrite)


def load_keys(directory: str | Path) -> KeySet:
    """Read and validate a key set written by :func:`save_keys` (shape, finiteness, unit norm, users)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    kpath, mpath = directory / KEYS_FILE, directory / META_FILE
    if not kpath.is_file() or not mpath.is_file():
        raise DataError(f"{directory}: not a key set (expected {KEYS_FILE} and {META_FILE})")
    try:
        meta = json.loads(mpath.read_text())
        users = meta.pop("users")
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{mpath}: malformed key-set metadata ({exc})") from exc
    try:
        tensors = load_file(str(kpath))
    except (SafetensorError, OSError) as exc:
        raise DataError(f"{kpath}: unreadable safetensors file ({exc})") from exc
    if set(tensors) != {"keys"}:
        raise DataError(f"{kpath}: expected one tensor 'keys', found {sorted(tensors)}")
    if not isinstance(users, list):
        raise DataError(f"{mpath}: 'users' must be a list of names")
    return KeySet(check_keys(tensors["keys"], what=f"{kpath} keys"), tuple(users), meta)


__all__ = ["KEYS_FILE", "META_FILE", "KeyGenConfig", "KeySet", "NonCompliantKeyError", "atomic_dir",
           "border_mask", "check_compliance", "check_keys", "check_user_names", "compliance_report",
           "compliant_mask", "data_distances", "default_users", "generate_keys", "key_scores", "keys_at_angle",
           "load_keys", "lowpass_basis", "max_abs_cosine", "orthogonality", "save_keys"]
