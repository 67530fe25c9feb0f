"""Functional core of FLIPAD's final-layer inversion (Laszkiewicz et al. 2024, eq. 5 and appendix C.1).

Kept in one module (over 400 lines): operator kernels, adjoint, power iteration and the FISTA variants (plain,
masked, censored) are one tested functional core.

Pure functions, no state: a generator's final layer as a linear operator A with an explicit adjoint Aᵀ,
the Lipschitz constant by power iteration on AᵀA, and FISTA (Beck & Teboulle 2009) for the batched lasso

    min_w ‖A w − b‖² + λ‖w‖₁                                   (eq. 8, C.1)

which solves eq. 5, min_z ‖A z − o‖² + λ‖z − z̄‖₁ with o = atanh(x) − bias, through z = z̄ + w and
b = o − A z̄. Everything is batched over the first dimension; each sample's iterate, objective and stopping
decision depend only on that sample, so results do not depend on how images are grouped into batches.

Performance notes (measured on the 2-core CPU box, 32-channel 16×16 → 1×32×32 conv-transpose):

* chunks of ~16 samples keep the four latent-sized buffers in L2/L3 cache; the per-sample cost of the
  same convolutions is 3–5× higher at 64–256 samples per call;
* the latent-sized updates (gradient step, soft threshold, momentum) run in place on buffers allocated
  once per chunk. The only latent-sized tensor created per iteration is the adjoint convolution's own
  output (ATen's ``convolution.out`` is a generated allocate-and-copy wrapper, measured 10–25 % slower);
  it has the same size every iteration, so the allocator reuses the block without page faults;
* oneDNN is slow for convolutions with one output channel (DCGAN's 32→1 transposed convolution: 5–10×
  slower than ATen's native kernel) but fast for the adjoint; the operator picks the kernel per direction
  with a fixed rule (no timing-based autotuning, so results are reproducible bit for bit).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genattr.errors import ConfigError

# -- linear operators -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _mkldnn(enabled: bool) -> Iterator[None]:
    # The attribute (not ``mkldnn.flags``, which also resets TF32 settings and warns on every call).
    old = torch.backends.mkldnn.enabled
    if old == enabled:
        yield
        return
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = old


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    t = tuple(int(e) for e in v)
    if len(t) != 2:
        raise ConfigError(f"expected an int or a pair, got {v!r}")
    return t  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class LinearOperator:
    """A linear map A: R^in_shape → R^out_shape with its adjoint, acting on batches (n, *shape).

    ``kind`` is ``"conv"`` (``F.conv2d``), ``"conv_transpose"`` (``F.conv_transpose2d``) or ``"matrix"``
    (``weight`` of shape (out, in): A w = w Wᵀ, as ``nn.Linear`` without bias). For the convolutions the
    adjoint is the other convolution with the same weight; ``output_padding`` of the adjoint of a strided
    ``conv`` is chosen so that Aᵀ maps back onto exactly ``in_shape``.
    """

    kind: str
    weight: torch.Tensor
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    output_padding: tuple[int, int] = (0, 0)
    groups: int = 1
    forward_mkldnn: bool = True
    adjoint_mkldnn: bool = True
    impl: str = "torch"
    _adj_output_padding: tuple[int, int] = field(default=(0, 0), repr=False)
    # "gemm" implementation: the operator as a transposed convolution T = fold ∘ (Mᵀ ·), Aᵀ = M · unfold
    _gemm: tuple[torch.Tensor, tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]] | None = \
        field(default=None, repr=False)

    @property
    def in_numel(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_numel(self) -> int:
        return math.prod(self.out_shape)

    def apply(self, z: torch.Tensor) -> torch.Tensor:
        """A z for z of shape (n, *in_shape) → (n, *out_shape)."""
        w = self.weight.to(z.dtype)
        if self.kind == "matrix":
            return z @ w.T
        if self._gemm is not None:
            m, k, d, p, s = self._gemm
            cols = torch.matmul(m.T.to(z.dtype), z.reshape(z.shape[0], self.in_shape[0], -1))
            return F.fold(cols, tuple(self.out_shape[1:]), k, dilation=d, padding=p, stride=s)
        with _mkldnn(self.forward_mkldnn):
            if self.kind == "conv":
                return F.conv2d(z, w, None, self.stride, self.padding, self.dilation, self.groups)
            return F.conv_transpose2d(z, w, None, self.stride, self.padding, self.output_padding, self.groups,
                                      self.dilation)

    def adjoint(self, y: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Aᵀ y for y of shape (n, *out_shape) → (n, *in_shape); ⟨A z, y⟩ = ⟨z, Aᵀ y⟩.

        ``out`` (contiguous, (n, *in_shape)) is used as the result buffer where the implementation can
        write into one (the "gemm" path); otherwise a new tensor is returned.
        """
        w = self.weight.to(y.dtype)
        if self.kind == "matrix":
            return y @ w
        if self._gemm is not None:
            m, k, d, p, s = self._gemm
            cols = F.unfold(y, k, dilation=d, padding=p, stride=s)
            if out is not None:
                torch.matmul(m.to(y.dtype), cols, out=out.view(y.shape[0], self.in_shape[0], -1))
                return out
            return torch.matmul(m.to(y.dtype), cols).view(y.shape[0], *self.in_shape)
        with _mkldnn(self.adjoint_mkldnn):
            if self.kind == "conv":
                return F.conv_transpose2d(y, w, None, self.stride, self.padding, self._adj_output_padding,
                                          self.groups, self.dilation)
            return F.conv2d(y, w, None, self.stride, self.padding, self.dilation, self.groups)

    def gram(self, z: torch.Tensor) -> torch.Tensor:
        return self.adjoint(self.apply(z))

    def to_config(self) -> dict[str, Any]:
        """JSON description (without the weight) for :func:`operator_from_config`."""
        return {"kind": self.kind, "in_shape": list(self.in_shape), "out_shape": list(self.out_shape),
                "stride": list(self.stride), "padding": list(self.padding), "dilation": list(self.dilation),
                "output_padding": list(self.output_padding), "groups": self.groups,
                "forward_mkldnn": self.forward_mkldnn, "adjoint_mkldnn": self.adjoint_mkldnn, "impl": self.impl}


def make_operator(kind: str, weight: torch.Tensor, in_shape: tuple[int, ...] | list[int], *,
                  stride: Any = 1, padding: Any = 0, dilation: Any = 1, output_padding: Any = 0, groups: int = 1,
                  forward_mkldnn: bool | None = None, adjoint_mkldnn: bool | None = None,
                  impl: str | None = None) -> LinearOperator:
    """Build a :class:`LinearOperator`, working out the output shape and the adjoint's output padding.

    ``impl``: ``"torch"`` (``F.conv2d`` / ``F.conv_transpose2d``) or ``"gemm"`` (stride-1 convolutions
    only: A as the transposed convolution with the flipped kernel, computed as one batched matrix product
    followed by ``F.fold``; the adjoint as ``F.unfold`` and one matrix product written into a preallocated
    buffer). Default: "gemm" where it applies. Measured at 16 samples, LSGAN's 3×3 32→1 conv at 32×32:
    gemm 0.9–1.4 ms (A) and 1.0–1.1 ms (Aᵀ) against oneDNN's 3.8–4.4 and 6.4–7.9 ms; for DCGAN's strided
    transposed convolution the torch kernels were faster (0.31 / 0.29 ms against 0.41 / 0.43 ms).
    """
    in_shape = tuple(int(s) for s in in_shape)
    weight = weight.detach()
    if kind == "matrix":
        if weight.ndim != 2 or len(in_shape) != 1 or weight.shape[1] != in_shape[0]:
            raise ConfigError(f"matrix operator: weight {tuple(weight.shape)} does not act on {in_shape}")
        return LinearOperator("matrix", weight, in_shape, (int(weight.shape[0]),))
    if kind not in ("conv", "conv_transpose"):
        raise ConfigError(f"unknown operator kind {kind!r}")
    if len(in_shape) != 3 or weight.ndim != 4:
        raise ConfigError(f"{kind} operator needs in_shape (C, H, W) and a 4-d weight")
    s, p, d, op = _pair(stride), _pair(padding), _pair(dilation), _pair(output_padding)
    k = tuple(int(e) for e in weight.shape[2:])
    c_in, h, w = in_shape
    if kind == "conv":
        if weight.shape[1] * groups != c_in:
            raise ConfigError(f"conv weight {tuple(weight.shape)} expects {weight.shape[1] * groups} input channels")
        hw_out = [(n + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i, n in enumerate((h, w))]
        out_shape = (int(weight.shape[0]), *hw_out)
        # conv_transpose2d of the output must land on exactly (h, w): the rows the stride skipped.
        adj_op = tuple((n - ((hw_out[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + 1)) for i, n in enumerate((h, w)))
        if any(not 0 <= a < max(s[i], d[i]) for i, a in enumerate(adj_op)):
            raise ConfigError(f"conv geometry {in_shape} → {out_shape} has no exact adjoint ({adj_op})")
        fwd_mk = True if forward_mkldnn is None else forward_mkldnn
        adj_mk = True if adjoint_mkldnn is None else adjoint_mkldnn
        gemm_ok = s == (1, 1) and groups == 1 and all(d[i] * (k[i] - 1) >= p[i] for i in range(2))
        if impl is None:
            impl = "gemm" if gemm_ok else "torch"
        if impl == "gemm" and not gemm_ok:
            raise ConfigError("the gemm implementation needs a stride-1, ungrouped conv with padding ≤ d(k−1)")
    else:
        if weight.shape[0] != c_in:
            raise ConfigError(f"conv-transpose weight {tuple(weight.shape)} expects {weight.shape[0]} input channels")
        hw_out = [(n - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i, n in enumerate((h, w))]
        out_shape = (int(weight.shape[1]) * groups, *hw_out)
        adj_op = (0, 0)
        # oneDNN's transposed convolution is slow when it reduces many channels to few (32→1 in DCGAN).
        fwd_mk = (out_shape[0] >= c_in) if forward_mkldnn is None else forward_mkldnn
        adj_mk = True if adjoint_mkldnn is None else adjoint_mkldnn
        if impl not in (None, "torch"):
            raise ConfigError("conv-transpose operators use impl='torch'")
        impl = "torch"
    if min(hw_out) < 1:
        raise ConfigError(f"{kind} operator maps {in_shape} to an empty output")
    if impl not in ("torch", "gemm"):
        raise ConfigError(f"unknown operator implementation {impl!r}")
    gemm = None
    if impl == "gemm":
        # conv2d(z, W, padding p) == conv_transpose2d(z, W', padding d(k−1) − p) with W' the kernel flipped
        # and its channel axes swapped; as a matrix M (C_in, C_out·kh·kw) acting on unfolded columns.
        w_t = weight.flip(-1, -2).transpose(0, 1).contiguous()
        m = w_t.reshape(c_in, -1).contiguous()
        gemm = (m, k, d, tuple(d[i] * (k[i] - 1) - p[i] for i in range(2)), (1, 1))
    return LinearOperator(kind, weight, in_shape, tuple(int(e) for e in out_shape), s, p, d, op, groups,
                          fwd_mk, adj_mk, impl, adj_op, gemm)  # type: ignore[arg-type]


def operator_from_config(config: dict[str, Any], weight: torch.Tensor) -> LinearOperator:
    cfg = dict(config)
    kind, in_shape = cfg.pop("kind"), cfg.pop("in_shape")
    cfg.pop("out_shape", None)
    return make_operator(kind, weight, in_shape, **cfg)


def operator_from_module(layer: nn.Module, in_shape: tuple[int, ...] | list[int]
                         ) -> tuple[LinearOperator, torch.Tensor | None]:
    """(A, bias) of a generator's ``final_layer``: ``layer(z) == A z + bias`` (bias broadcast per channel).

    Supports ``nn.Conv2d`` and ``nn.ConvTranspose2d`` with zero padding, and ``nn.Linear``.
    """
    if isinstance(layer, nn.Linear):
        op = make_operator("matrix", layer.weight, in_shape)
        return op, None if layer.bias is None else layer.bias.detach().clone()
    if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise ConfigError(f"final layer {layer}: only numeric zero padding has a simple adjoint")
        transposed = isinstance(layer, nn.ConvTranspose2d)
        op = make_operator("conv_transpose" if transposed else "conv", layer.weight, in_shape,
                           stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                           output_padding=layer.output_padding if transposed else 0, groups=layer.groups)
        bias = None if layer.bias is None else layer.bias.detach().clone().reshape(-1, 1, 1)
        return op, bias
    raise ConfigError(f"final-layer inversion supports Conv2d, ConvTranspose2d and Linear, not {type(layer).__name__}")


# -- power iteration -------------------------------------------------------------------------------------------


def power_iteration(op: LinearOperator, *, n_iter: int = 100, tol: float = 1e-7,
                    generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> float:
    """λ_max(AᵀA) = ‖A‖₂² by power iteration on the Gram operator (float64 by default)."""
    v = torch.randn(1, *op.in_shape, generator=generator, dtype=dtype)
    v /= torch.linalg.vector_norm(v)
    lam = 0.0
    for _ in range(n_iter):
        u = op.gram(v)
        new = float(torch.sum(u * v))  # Rayleigh quotient, v has unit norm
        norm = torch.linalg.vector_norm(u)
        if norm == 0:
            return 0.0
        v = u / norm
        if abs(new - lam) <= tol * max(new, 1e-30):
            lam = new
            break
        lam = new
    return lam


def lipschitz_constant(op: LinearOperator, *, margin: float = 1.01, **kw: Any) -> float:
    """L of ∇‖A w − b‖² = 2Aᵀ(A w − b): 2‖A‖₂², with a small safety margin for the power-iteration estimate."""
    return 2.0 * margin * power_iteration(op, **kw)


# -- FISTA -----------------------------------------------------------------------------------------------------


def censor_residual_(r: torch.Tensor, low: torch.Tensor | None, high: torch.Tensor | None) -> torch.Tensor:
    """In place: r ← max(r, 0) where ``low`` is 1 and min(r, 0) where ``high`` is 1 (float 0/1 masks).

    For a pixel saturated at −1 (+1) the image only says that the pre-activation is ≤ (≥) the clipped
    preimage, so only a reconstruction above (below) it is penalised: a one-sided squared hinge, convex with
    the same Lipschitz constant as the plain least-squares term.
    """
    if low is not None:
        r.sub_(r.clamp(max=0).mul_(low))
    if high is not None:
        r.sub_(r.clamp(min=0).mul_(high))
    return r


def lasso_objective(op: LinearOperator, w: torch.Tensor, b: torch.Tensor, lam: float,
                    low: torch.Tensor | None = None, high: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample ‖A w − b‖² + λ‖w‖₁ (eq. 8), shape (n,), float64; with ``low`` / ``high`` masks the
    censored residual of :func:`censor_residual_`."""
    r = censor_residual_(op.apply(w) - b, low, high).flatten(1).double()
    return (r * r).sum(1) + lam * w.flatten(1).double().abs().sum(1)


@dataclass(frozen=True)
class FistaResult:
    w: torch.Tensor  # (n, *in_shape) solution
    objective: torch.Tensor  # (n,) float64 objective at w
    n_iter: torch.Tensor  # (n,) int64 iterations each sample ran


def _fista_chunk(op: LinearOperator, b: torch.Tensor, lam: float, step: float, w0: torch.Tensor | None,
                 max_iter: int, tol: float, check_every: int, low: torch.Tensor | None = None,
                 high: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = b.shape[0]
    shape = (n, *op.in_shape)
    out_w = torch.empty(shape, dtype=b.dtype)
    out_obj = torch.empty(n, dtype=torch.float64)
    out_it = torch.zeros(n, dtype=torch.int64)
    # Latent-sized buffers per chunk, allocated once: iterate w, candidate u, extrapolation v, scratch, gradient.
    w = torch.zeros(shape, dtype=b.dtype) if w0 is None else w0.clone()
    u = torch.empty_like(w)
    v = w.clone()
    tmp = torch.empty_like(w)
    grad = torch.empty_like(w)  # filled in place by operators that can (see LinearOperator.adjoint)
    theta = lam * step  # soft-threshold level of the prox of λ‖·‖₁ with step 1/L
    t_k = 1.0
    idx = torch.arange(n)
    prev = lasso_objective(op, w, b, lam, low, high)
    it = 0
    while True:
        it_before = it
        for _ in range(check_every):
            r = op.apply(v).sub_(b)
            if low is not None or high is not None:
                censor_residual_(r, low, high)
            g = op.adjoint(r, out=grad)  # ∇ = 2 g
            torch.add(v, g, alpha=-2.0 * step, out=u)  # gradient step
            torch.clamp(u, -theta, theta, out=tmp)
            u.sub_(tmp)  # prox of λ‖·‖₁: soft threshold u − clamp(u, −θ, θ)
            t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t_k * t_k))
            beta = (t_k - 1.0) / t_next
            torch.mul(u, 1.0 + beta, out=v)  # extrapolation v = u + β(u − w), in two passes
            v.add_(w, alpha=-beta)
            w, u = u, w
            t_k = t_next
            it += 1
            if it >= max_iter:
                break
        obj = lasso_objective(op, w, b, lam, low, high)
        # Per sample: the relative objective change per iteration, averaged over the iterations since the
        # last check (so `tol` means the same whether one checks every iteration or every k).
        done = (prev - obj).abs() <= tol * (it - it_before) * obj.abs().clamp_min(1e-30)
        if it >= max_iter:
            done[:] = True
        if done.any():
            sel = done.nonzero().flatten()
            out_w[idx[sel]] = w[sel]
            out_obj[idx[sel]] = obj[sel]
            out_it[idx[sel]] = it
            keep = (~done).nonzero().flatten()
            if keep.numel() == 0:
                break
            # Compact the active set (at checks only): converged samples stop costing work.
            idx, b, prev = idx[keep], b[keep], obj[keep]
            low = None if low is None else low[keep]
            high = None if high is None else high[keep]
            w, v = w[keep], v[keep]
            u, tmp, grad = torch.empty_like(w), torch.empty_like(w), torch.empty_like(w)
        else:
            prev = obj
    return out_w, out_obj, out_it


def fista_lasso(op: LinearOperator, b: torch.Tensor, lam: float, *, lipschitz: float | None = None,
                max_iter: int = 500, tol: float = 1e-5, check_every: int = 10, chunk_size: int = 16,
                w0: torch.Tensor | None = None, low: torch.Tensor | None = None,
                high: torch.Tensor | None = None) -> FistaResult:
    """Solve min_w ‖A w − b‖² + λ‖w‖₁ (eq. 8) for every sample of b (n, *out_shape) with FISTA.

    ``low`` / ``high``: optional 0/1 masks shaped like b marking censored entries (only A w − b > 0,
    resp. < 0, is penalised there; see :func:`censor_residual_`).

    Step 1/L with L = 2‖A‖₂² (``lipschitz``; computed by power iteration when None). The objective is
    evaluated every ``check_every`` iterations (each evaluation costs one extra application of A); a sample
    stops when its relative objective change per iteration since the last check, |F_prev − F| / (k |F|),
    is ≤ ``tol`` (or after ``max_iter``). Samples are processed in chunks of ``chunk_size`` so the working
    set stays in cache.
    """
    if lam < 0 or max_iter < 1 or check_every < 1 or chunk_size < 1 or tol < 0:
        raise ConfigError("fista_lasso: need lam >= 0, tol >= 0, max_iter, check_every, chunk_size >= 1")
    if tuple(b.shape[1:]) != op.out_shape:
        raise ConfigError(f"b has shape {tuple(b.shape[1:])}, the operator outputs {op.out_shape}")
    low, high = (None if m is None else _mask(m, b, name) for m, name in ((low, "low"), (high, "high")))
    L = lipschitz_constant(op) if lipschitz is None else float(lipschitz)
    n = b.shape[0]
    if L <= 0 or n == 0:
        w = torch.zeros(n, *op.in_shape, dtype=b.dtype) if w0 is None else w0.clone()
        return FistaResult(w, lasso_objective(op, w, b, lam, low, high) if n else torch.zeros(0, dtype=torch.float64),
                           torch.zeros(n, dtype=torch.int64))
    ws, objs, its = [], [], []
    with torch.no_grad():
        for s in range(0, n, chunk_size):
            part = _fista_chunk(op, b[s:s + chunk_size], lam, 1.0 / L, None if w0 is None else w0[s:s + chunk_size],
                                max_iter, tol, check_every, None if low is None else low[s:s + chunk_size],
                                None if high is None else high[s:s + chunk_size])
            ws.append(part[0])
            objs.append(part[1])
            its.append(part[2])
    return FistaResult(torch.cat(ws), torch.cat(objs), torch.cat(its))


def _mask(m: torch.Tensor, b: torch.Tensor, name: str) -> torch.Tensor:
    if tuple(m.shape) != tuple(b.shape):
        raise ConfigError(f"{name} mask has shape {tuple(m.shape)}, b has {tuple(b.shape)}")
    return m.to(b.dtype)


# -- eq. 5: final-layer inversion --------------------------------------------------------------------------------


def preimage(x: torch.Tensor, *, clip_eps: float = 1e-3) -> torch.Tensor:
    """o = atanh(clip(x)): the pre-activation of a tanh output, with x clipped to [−1 + ε, 1 − ε]."""
    return torch.atanh(x.clamp(-1.0 + clip_eps, 1.0 - clip_eps))


def invert_final_layer(op: LinearOperator, x: torch.Tensor, z_bar: torch.Tensor, lam: float, *,
                       bias: torch.Tensor | None = None, lipschitz: float | None = None, clip_eps: float = 1e-3,
                       output_inverse: Callable[[torch.Tensor], torch.Tensor] | None = None,
                       censor: bool = False, **fista_kw: Any) -> FistaResult:
    """FLIPAD eq. 5: ẑ = argmin_z ‖A z − o‖² + λ‖z − z̄‖₁ with o = atanh(clip(x)) − bias.

    Solved as the lasso of C.1 (eq. 8) in w = z − z̄ with b = o − A z̄; returns ``FistaResult`` whose ``w``
    is ẑ itself (z̄ added back). ``output_inverse`` replaces atanh for other output activations.
    ``censor`` (not in the paper): pixels within ``clip_eps`` of ±1 only bound the pre-activation
    (A z ≤ atanh(−1 + ε) at the dark end, ≥ at the bright end), so they enter as one-sided terms
    (:func:`censor_residual_`) instead of pulling A z onto the clipping value.
    """
    o = (output_inverse(x) if output_inverse is not None else preimage(x, clip_eps=clip_eps)).to(torch.float32)
    if censor:
        fista_kw = {**fista_kw, "low": (x <= -1.0 + clip_eps).to(o.dtype), "high": (x >= 1.0 - clip_eps).to(o.dtype)}
    if bias is not None:
        o = o - bias.to(o.dtype)
    zb = z_bar.to(o.dtype).reshape(1, *op.in_shape)
    b = o - op.apply(zb)
    res = fista_lasso(op, b, lam, lipschitz=lipschitz, **fista_kw)
    return FistaResult(res.w.add_(zb), res.objective, res.n_iter)


__all__ = ["FistaResult", "LinearOperator", "censor_residual_", "fista_lasso", "invert_final_layer", "lasso_objective",
           "lipschitz_constant", "make_operator", "operator_from_config", "operator_from_module",
           "power_iteration", "preimage"]
