"""Adversarial manipulations against seed-reconstruction attribution (Zhang et al. 2020, §VI-C) and SSIM.

All images are float NCHW in [-1, 1] and every ε / ‖δ‖₂ here is in those units (the paper's [0, 1] images:
ε_paper = ε / 2). ``feature`` is the attribution's distance space (``SeedReconstruction.feature_net_``, or
``None`` for pixels); the attacks *maximise* the distance d(f(x′), f(x)) between the attacked and the
original deepfake (the paper changes the attack objective from cross-entropy to this distance).

* :func:`fgsm_seed` — FGSM in seed space: the adversary perturbs the seed s of G (ℓ∞ ε on s) so that
  G(s′) has features far from G(s); the published image is G(s′).
* :func:`fgsm_image` — FGSM in image space, ℓ∞ ε, from a random start (the gradient of d(x, x + δ) is
  zero at δ = 0, see the notes' pitfalls).
* :func:`fgm_l2_image` — the ℓ2 fast gradient method (one step of ℓ2 length ε along the gradient).
* :func:`cw_image` — the Carlini–Wagner variant of Eq. 6: argmin_δ ‖δ‖₂ − c · d(x, x + δ), by Adam.
* :func:`pgd_image` — projected gradient ascent, ℓ∞ ε (**our extension**; not in the paper).
* :func:`fgsm_logits`, :func:`pgd_logits`, :func:`cw_logits` — attacks on a substitute classifier's logits
  (cross-entropy / CW margin), whose examples are then transferred to the attribution (§VI-C3, Fig. 9).
* :func:`ssim` — structural similarity (Gaussian window), reported for attacked images.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from genattr.errors import ConfigError

Feature = Callable[[torch.Tensor], torch.Tensor] | None


def _f(feature: Feature, x: torch.Tensor) -> torch.Tensor:
    return (x if feature is None else feature(x)).flatten(1)


def feature_distance(feature: Feature, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n,) RMS distance between a and b in the feature space (the attribution's distance)."""
    with torch.no_grad():
        return (_f(feature, a) - _f(feature, b)).pow(2).mean(1).sqrt()


def _gen(generator: torch.Generator | None, seed: int) -> torch.Generator:
    return generator if generator is not None else torch.Generator().manual_seed(seed)


def _grad_distance(feature: Feature, x_start: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """∇ of Σᵢ ‖f(x_startᵢ) − f(refᵢ)‖² with respect to x_start."""
    with torch.no_grad():
        target = _f(feature, ref)
    xs = x_start.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = (_f(feature, xs) - target).pow(2).sum()
        (g,) = torch.autograd.grad(loss, xs)
    return g


def _check_eps(eps: float) -> None:
    if eps < 0:
        raise ConfigError(f"the perturbation size must be non-negative, got {eps}")


def fgsm_image(x: torch.Tensor, eps: float, *, feature: Feature = None, start: float | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """x + ε·sign(∇ d) with the gradient taken at a random start x + U(−start, start) (default ε / 2)."""
    _check_eps(eps)
    if eps == 0:
        return x.clone()
    a = eps / 2 if start is None else start
    g = _gen(generator, 0)
    x0 = (x + a * (2 * torch.rand(x.shape, generator=g) - 1)).clamp(-1, 1)
    grad = _grad_distance(feature, x0, x)
    return (x + eps * grad.sign()).clamp(-1, 1).detach()


def fgm_l2_image(x: torch.Tensor, eps: float, *, feature: Feature = None, start: float | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """x + ε·∇d/‖∇d‖₂ per image (gradient at a random start of ℓ2 length ``start``, default ε / 2)."""
    _check_eps(eps)
    if eps == 0:
        return x.clone()
    g = _gen(generator, 0)
    noise = torch.randn(x.shape, generator=g)
    noise = noise / noise.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.ndim - 1))
    x0 = (x + (eps / 2 if start is None else start) * noise).clamp(-1, 1)
    grad = _grad_distance(feature, x0, x)
    unit = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.ndim - 1))
    return (x + eps * unit).clamp(-1, 1).detach()


def pgd_image(x: torch.Tensor, eps: float, *, feature: Feature = None, steps: int = 10, alpha: float | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """ℓ∞ PGD maximising d(f(x′), f(x)) (our extension): random start in the ε-ball, ``steps`` signed steps of
    ``alpha`` (default 2.5 ε / steps), projected back onto the ball and [-1, 1]."""
    _check_eps(eps)
    if eps == 0 or steps < 1:
        return x.clone()
    a = 2.5 * eps / steps if alpha is None else alpha
    g = _gen(generator, 0)
    xa = (x + eps * (2 * torch.rand(x.shape, generator=g) - 1)).clamp(-1, 1)
    for _ in range(steps):
        grad = _grad_distance(feature, xa, x)
        xa = torch.max(torch.min(xa + a * grad.sign(), x + eps), x - eps).clamp(-1, 1)
    return xa.detach()


def cw_image(x: torch.Tensor, c: float, *, feature: Feature = None, steps: int = 100, lr: float = 0.01,
             start: float = 1e-3, generator: torch.Generator | None = None) -> torch.Tensor:
    """Eq. 6: argmin_δ ‖δ‖₂ − c·d(f(x + δ), f(x)) per image, by Adam on δ (x + δ clipped to [-1, 1]).

    ``d`` is the RMS feature distance, so ``c`` trades pixel ℓ2 against it; larger c, larger ‖δ‖₂.
    """
    if c < 0:
        raise ConfigError(f"c must be non-negative, got {c}")
    g = _gen(generator, 0)
    with torch.no_grad():
        target = _f(feature, x)
    delta = (start * torch.randn(x.shape, generator=g)).requires_grad_(True)
    opt = torch.optim.Adam([delta], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            xa = (x + delta).clamp(-1, 1)
            d = (_f(feature, xa) - target).pow(2).mean(1).add(1e-12).sqrt()
            loss = (delta.flatten(1).norm(dim=1) - c * d).sum()
            loss.backward()
            opt.step()
    return (x + delta.detach()).clamp(-1, 1)


def fgsm_seed(generator: torch.nn.Module, s: torch.Tensor, eps: float, *, feature: Feature = None,
              start: float | None = None, rng: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """FGSM on the seed: s′ = s + ε·sign(∇_s d(f(G(s₀)), f(G(s)))), s₀ a random start; returns (G(s′), s′)."""
    _check_eps(eps)
    generator.eval()
    with torch.no_grad():
        x = generator(s)
    if eps == 0:
        return x.detach().clone(), s.clone()
    g = _gen(rng, 0)
    a = eps / 2 if start is None else start
    s0 = (s + a * (2 * torch.rand(s.shape, generator=g) - 1)).detach().requires_grad_(True)
    with torch.enable_grad():
        loss = (_f(feature, generator(s0)) - _f(feature, x)).pow(2).sum()
        (grad,) = torch.autograd.grad(loss, s0)
    s_adv = (s + eps * grad.sign()).detach()
    with torch.no_grad():
        return generator(s_adv).detach(), s_adv


# -- attacks on a substitute classifier (transfer, Fig. 9) -------------------------------------------------------


def fgsm_logits(logits: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, eps: float
                ) -> torch.Tensor:
    """Untargeted FGSM on cross-entropy (ℓ∞ ε)."""
    _check_eps(eps)
    xs = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(F.cross_entropy(logits(xs), y, reduction="sum"), xs)
    return (x + eps * g.sign()).clamp(-1, 1).detach()


def pgd_logits(logits: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, eps: float, *,
               steps: int = 10, alpha: float | None = None, norm: str = "linf") -> torch.Tensor:
    """Untargeted PGD on cross-entropy; ``norm`` "linf" (ε per pixel) or "l2" (ε per image)."""
    _check_eps(eps)
    if norm not in ("linf", "l2"):
        raise ConfigError(f"norm must be linf or l2, got {norm!r}")
    a = 2.5 * eps / max(steps, 1) if alpha is None else alpha
    shape = (-1, *[1] * (x.ndim - 1))
    xa = x.detach().clone()
    for _ in range(steps):
        xs = xa.clone().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(F.cross_entropy(logits(xs), y, reduction="sum"), xs)
        if norm == "linf":
            xa = torch.max(torch.min(xa + a * g.sign(), x + eps), x - eps)
        else:
            xa = xa + a * g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
            d = xa - x
            n = d.flatten(1).norm(dim=1).clamp_min(1e-12)
            xa = x + d * (eps / n).clamp(max=1.0).view(shape)
        xa = xa.clamp(-1, 1).detach()
    return xa


def cw_logits(logits: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, c: float, *,
              steps: int = 100, lr: float = 0.01, kappa: float = 0.0) -> torch.Tensor:
    """Carlini–Wagner ℓ2 (untargeted): argmin ‖δ‖₂² + c·max(z_y − max_{j≠y} z_j, −κ), by Adam."""
    delta = torch.zeros_like(x, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            z = logits((x + delta).clamp(-1, 1))
            true = z.gather(1, y[:, None]).squeeze(1)
            other = z.masked_fill(F.one_hot(y, z.shape[1]).bool(), -torch.inf).amax(1)
            loss = (delta.flatten(1).pow(2).sum(1) + c * (true - other).clamp(min=-kappa)).sum()
            loss.backward()
            opt.step()
    return (x + delta.detach()).clamp(-1, 1)


# -- SSIM -------------------------------------------------------------------------------------------------------


def ssim(a: torch.Tensor, b: torch.Tensor, *, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """(n,) mean SSIM of [-1, 1] images (computed on [0, 1], Gaussian window, valid region; per channel)."""
    if a.shape != b.shape or a.ndim != 4:
        raise ConfigError(f"ssim needs two NCHW batches of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    w = min(window, a.shape[-1], a.shape[-2])
    coords = torch.arange(w, dtype=torch.float32) - (w - 1) / 2
    k1 = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    k1 = k1 / k1.sum()
    c = a.shape[1]
    kernel = (k1[:, None] * k1[None, :]).expand(c, 1, w, w).contiguous()
    x, y = (a.float() + 1) / 2, (b.float() + 1) / 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=c)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


__all__ = ["cw_image", "cw_logits", "feature_distance", "fgm_l2_image", "fgsm_image", "fgsm_logits", "fgsm_seed",
           "pgd_image", "pgd_logits", "ssim"]
