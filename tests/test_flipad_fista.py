"""FLIPAD's functional core: operator adjoints, power iteration, FISTA vs scikit-learn's Lasso, eq. 5 / C.1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from genattr.attribution.flipad.fista import (
    censor_residual_,
    fista_lasso,
    invert_final_layer,
    lasso_objective,
    lipschitz_constant,
    make_operator,
    operator_from_config,
    operator_from_module,
    power_iteration,
)
from genattr.errors import ConfigError
from genattr.generators import create_generator

LAYERS = [
    nn.ConvTranspose2d(4, 1, 4, 2, 1, bias=False),  # DCGAN's final layer
    nn.Conv2d(4, 1, 3, 1, 1),  # LSGAN's final layer (with bias)
    nn.Conv2d(3, 2, 3, 2, 1),  # strided conv: the adjoint needs an output padding
    nn.Conv2d(4, 2, 4, 3, 2, dilation=2, groups=2),
    nn.ConvTranspose2d(4, 6, 3, 2, 1, output_padding=1, groups=2),
    nn.Linear(7, 5),
]


def _in_shape(layer: nn.Module) -> tuple[int, ...]:
    if isinstance(layer, nn.Linear):
        return (layer.in_features,)
    return (layer.in_channels, 9, 9)


@pytest.mark.parametrize("layer", LAYERS, ids=lambda m: type(m).__name__ + str(getattr(m, "stride", "")))
def test_operator_matches_layer_and_adjoint_identity(layer: nn.Module) -> None:
    torch.manual_seed(0)
    layer = layer.double()
    op, bias = operator_from_module(layer, _in_shape(layer))
    g = torch.Generator().manual_seed(1)
    z = torch.randn(3, *op.in_shape, generator=g, dtype=torch.float64)
    y = torch.randn(3, *op.out_shape, generator=g, dtype=torch.float64)
    with torch.no_grad():
        ref = layer(z)
    expected = ref - (0 if bias is None else bias)
    torch.testing.assert_close(op.apply(z), expected)
    # ⟨A z, y⟩ = ⟨z, Aᵀ y⟩ per sample
    lhs = (op.apply(z) * y).flatten(1).sum(1)
    rhs = (z * op.adjoint(y)).flatten(1).sum(1)
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-10)
    # JSON round trip of the geometry
    op2 = operator_from_config(op.to_config(), op.weight)
    torch.testing.assert_close(op2.apply(z), op.apply(z))


def _dense(op) -> torch.Tensor:
    eye = torch.eye(op.in_numel, dtype=torch.float64).reshape(op.in_numel, *op.in_shape)
    return op.apply(eye).reshape(op.in_numel, -1).T  # (out, in)


def test_power_iteration_matches_largest_singular_value() -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        layer = nn.ConvTranspose2d(3, 1, 4, 2, 1, bias=False).double()
    op, _ = operator_from_module(layer, (3, 5, 5))
    sigma = torch.linalg.matrix_norm(_dense(op), ord=2).item()
    est = power_iteration(op, n_iter=3000, tol=0.0, generator=torch.Generator().manual_seed(0))
    assert est == pytest.approx(sigma**2, rel=1e-6)
    assert est <= sigma**2 * (1 + 1e-12)  # a Rayleigh quotient never overestimates: hence lipschitz_constant's margin
    assert lipschitz_constant(op, margin=1.0, n_iter=3000, tol=0.0) == pytest.approx(2 * sigma**2, rel=1e-6)


@pytest.mark.parametrize(("n_out", "n_in", "lam"), [(20, 50, 0.5), (40, 15, 2.0), (30, 30, 0.05)])
def test_fista_equals_sklearn_lasso(n_out: int, n_in: int, lam: float) -> None:
    from sklearn.linear_model import Lasso

    rng = np.random.default_rng(n_out + n_in)
    a = rng.standard_normal((n_out, n_in))
    truth = np.where(rng.random(n_in) < 0.2, rng.standard_normal(n_in) * 3, 0.0)
    b = np.stack([a @ truth + 0.1 * rng.standard_normal(n_out), rng.standard_normal(n_out)])
    op = make_operator("matrix", torch.from_numpy(a), (n_in,))
    # tol=0: run the full budget (the flat directions of an underdetermined lasso converge last)
    res = fista_lasso(op, torch.from_numpy(b), lam, max_iter=20_000, tol=0.0, check_every=500, chunk_size=1)
    for i in range(b.shape[0]):
        # sklearn minimises (1/(2n))‖y − Xw‖² + α‖w‖₁; ours ‖Aw − b‖² + λ‖w‖₁ = 2n × that with α = λ/(2n).
        sk = Lasso(alpha=lam / (2 * n_out), fit_intercept=False, tol=1e-14, max_iter=1_000_000).fit(a, b[i])
        np.testing.assert_allclose(res.w[i].numpy(), sk.coef_, atol=1e-5)
        sk_obj = float(np.sum((a @ sk.coef_ - b[i]) ** 2) + lam * np.abs(sk.coef_).sum())
        assert res.objective[i].item() == pytest.approx(sk_obj, rel=1e-8)


def test_fista_is_batch_and_chunk_invariant() -> None:
    torch.manual_seed(0)
    op, _ = operator_from_module(nn.ConvTranspose2d(4, 1, 4, 2, 1, bias=False), (4, 8, 8))
    b = torch.randn(7, 1, 16, 16)
    L = lipschitz_constant(op)
    whole = fista_lasso(op, b, 0.05, lipschitz=L, chunk_size=16, tol=1e-6, max_iter=300)
    for chunk in (1, 3):
        part = fista_lasso(op, b, 0.05, lipschitz=L, chunk_size=chunk, tol=1e-6, max_iter=300)
        torch.testing.assert_close(part.w, whole.w, atol=1e-6, rtol=1e-5)
        assert torch.equal(part.n_iter, whole.n_iter)
    single = fista_lasso(op, b[4:5], 0.05, lipschitz=L, tol=1e-6, max_iter=300)
    torch.testing.assert_close(single.w[0], whole.w[4], atol=1e-6, rtol=1e-5)
    # the objective decreases from the start point and iterations stop at check boundaries
    assert (whole.objective < lasso_objective(op, torch.zeros_like(whole.w), b, 0.05)).all()
    assert ((whole.n_iter % 10 == 0) | (whole.n_iter == 300)).all()


def test_invert_final_layer_solves_eq5_via_c1() -> None:
    """eq. 5 in z equals the lasso (eq. 8) in w = z − z̄ with b = o − bias − A z̄ (appendix C.1)."""
    torch.manual_seed(0)
    layer = nn.Conv2d(3, 1, 3, 1, 1)
    op, bias = operator_from_module(layer, (3, 6, 6))
    z_true = torch.rand(2, 3, 6, 6)
    with torch.no_grad():
        x = torch.tanh(layer(z_true))
    z_bar = z_true.mean(0)
    res = invert_final_layer(op, x, z_bar, 1e-3, bias=bias, tol=1e-10, max_iter=20_000)
    o = torch.atanh(x.clamp(-1 + 1e-3, 1 - 1e-3)) - bias
    obj = ((op.apply(res.w) - o) ** 2).flatten(1).sum(1) + 1e-3 * (res.w - z_bar).abs().flatten(1).sum(1)
    torch.testing.assert_close(obj.double(), res.objective, rtol=1e-4, atol=1e-6)
    # the reconstruction reproduces the pre-activation almost exactly (the system is underdetermined)
    assert ((op.apply(res.w) + bias - o - bias).abs().max()) < 1e-2
    # at least as good as z̄ and as the true activation
    def f(z: torch.Tensor) -> torch.Tensor:
        return ((op.apply(z) - o) ** 2).flatten(1).sum(1) + 1e-3 * (z - z_bar).abs().flatten(1).sum(1)

    assert (obj <= f(z_bar.expand_as(z_true)) + 1e-6).all() and (obj <= f(z_true) + 1e-6).all()


def test_censor_residual_is_one_sided_and_in_place() -> None:
    r = torch.tensor([[-2.0, -1.0, 1.0, 2.0, 3.0]])
    low = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0]])
    high = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]])
    out = censor_residual_(r, low, high)
    assert out is r and r.tolist() == [[0.0, -1.0, 1.0, 0.0, 3.0]]
    assert censor_residual_(torch.tensor([1.0, -1.0]), None, None).tolist() == [1.0, -1.0]


def test_censored_fista_matches_a_bound_constrained_reference() -> None:
    """The censored lasso (one-sided squared hinges) against scipy's L-BFGS-B on the split w = p − q, p, q ≥ 0."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(3)
    a = rng.standard_normal((25, 40))
    b = rng.standard_normal((2, 25))
    low = (rng.random((2, 25)) < 0.3).astype(float)
    high = ((rng.random((2, 25)) < 0.3) & (low == 0)).astype(float)
    lam = 0.3
    op = make_operator("matrix", torch.from_numpy(a), (40,))
    res = fista_lasso(op, torch.from_numpy(b), lam, max_iter=20_000, tol=0.0, check_every=500,
                      low=torch.from_numpy(low), high=torch.from_numpy(high))
    for i in range(2):
        def f(pq: np.ndarray, i: int = i) -> tuple[float, np.ndarray]:
            w = pq[:40] - pq[40:]
            r = a @ w - b[i]
            r = np.where(low[i] > 0, np.maximum(r, 0), r)
            r = np.where(high[i] > 0, np.minimum(r, 0), r)
            g = 2 * a.T @ r
            return float(r @ r + lam * pq.sum()), np.r_[g + lam, -g + lam]

        ref = minimize(f, np.zeros(80), jac=True, method="L-BFGS-B", bounds=[(0, None)] * 80,
                       options={"maxiter": 50_000, "ftol": 1e-15, "gtol": 1e-12})
        assert res.objective[i].item() == pytest.approx(ref.fun, rel=1e-6)
    # the censored objective is never above the plain one (a hinge is at most the square)
    plain = lasso_objective(op, res.w, torch.from_numpy(b), lam)
    assert (res.objective <= plain + 1e-12).all()
    with pytest.raises(ConfigError, match="mask"):
        fista_lasso(op, torch.from_numpy(b), lam, low=torch.zeros(2, 3))


def test_invert_final_layer_censors_saturated_pixels() -> None:
    torch.manual_seed(1)
    layer = nn.ConvTranspose2d(4, 1, 4, 2, 1, bias=False)
    op, _ = operator_from_module(layer, (4, 4, 4))
    with torch.no_grad():
        x = torch.tanh(3 * layer(torch.randn(3, 4, 4, 4)))
    x = torch.round((x + 1) * 127.5) / 127.5 - 1  # 8-bit, with saturated pixels
    assert bool((x <= -1 + 0.02).any())
    z_bar = torch.zeros(4, 4, 4)
    plain = invert_final_layer(op, x, z_bar, 1e-3, clip_eps=0.02, max_iter=400)
    cens = invert_final_layer(op, x, z_bar, 1e-3, clip_eps=0.02, max_iter=400, censor=True)
    pre = op.apply(cens.w)
    sat = x <= -1 + 0.02
    o_clip = torch.atanh(torch.tensor(-1 + 0.02))
    # the bound holds (up to solver precision) at dark pixels, and their values are not pulled to the clip
    assert (pre[sat] <= o_clip + 0.05).all()
    assert not torch.allclose(plain.w, cens.w)


def test_generator_final_layer_operator_reproduces_forward() -> None:
    for arch in ("dcgan", "lsgan"):
        g = create_generator(arch, latent_dim=8, ngf=4).eval()
        z = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            h = g.penultimate(z)
            op, bias = operator_from_module(g.final_layer, tuple(h.shape[1:]))
            out = op.apply(h) + (0 if bias is None else bias)
            torch.testing.assert_close(torch.tanh(out), g(z), atol=1e-6, rtol=1e-5)


def test_bad_operators_raise() -> None:
    with pytest.raises(ConfigError):
        operator_from_module(nn.Conv2d(2, 1, 3, padding=1, padding_mode="reflect"), (2, 8, 8))
    with pytest.raises(ConfigError):
        operator_from_module(nn.ReLU(), (2, 8, 8))
    with pytest.raises(ConfigError):
        make_operator("conv", torch.zeros(1, 3, 3, 3), (2, 8, 8))
    op = make_operator("matrix", torch.eye(3), (3,))
    with pytest.raises(ConfigError):
        fista_lasso(op, torch.zeros(2, 4), 0.1)
    with pytest.raises(ConfigError):
        fista_lasso(op, torch.zeros(2, 3), -1.0)


@pytest.mark.parametrize(("c_in", "c_out", "k", "pad", "dil"), [(4, 1, 3, 1, 1), (3, 2, 5, 2, 1), (3, 2, 3, 1, 2),
                                                                (2, 3, 3, 0, 1)])
def test_gemm_implementation_equals_torch_convolutions(c_in: int, c_out: int, k: int, pad: int, dil: int) -> None:
    g = torch.Generator().manual_seed(k + pad)
    w = torch.randn(c_out, c_in, k, k, generator=g, dtype=torch.float64)
    ref = make_operator("conv", w, (c_in, 7, 9), padding=pad, dilation=dil, impl="torch")
    fast = make_operator("conv", w, (c_in, 7, 9), padding=pad, dilation=dil)
    assert fast.impl == "gemm" and fast.out_shape == ref.out_shape
    z = torch.randn(2, *ref.in_shape, generator=g, dtype=torch.float64)
    y = torch.randn(2, *ref.out_shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close(fast.apply(z), ref.apply(z))
    torch.testing.assert_close(fast.adjoint(y), ref.adjoint(y))
    buf = torch.empty(2, *ref.in_shape, dtype=torch.float64)
    assert fast.adjoint(y, out=buf) is buf
    torch.testing.assert_close(buf, ref.adjoint(y))
    with pytest.raises(ConfigError):
        make_operator("conv", w, (c_in, 7, 9), stride=2, padding=pad, impl="gemm")
