"""Float32 matrix products on the CPU's bf16 dot-product units, where that keeps float32 accuracy (the Kim et
al. 2021 verifier scores 10⁴ keys × 10⁴ images as one product: :func:`genattr.watermark.keys.key_scores`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

# oneDNN's "bf16" fp32-math mode runs float32 products on the bf16 dot-product units (avx512_bf16): 1.9× faster
# here (10⁴ × 10⁴ keys, 2 cores: 0.69 s vs 1.29 s) at float32 accuracy on this CPU (measured: max error within
# 2× of plain float32). Other CPUs may round to a single bf16 (error 2⁻⁸: enough to flip a verifier's sign), so the mode
# is used only after a probe product matches float64 to float32 accuracy; otherwise plain float32. The knob is
# process-wide: a float32 product in another thread during a scoring call runs in the same (probed) mode.
_FAST_MATMUL: bool | None = None
_FAST_MATMUL_REL_TOL = 1e-6  # max |error| / (|x|ᵀ|φ|) accepted (float32 alone: ~1e-7)


@contextmanager
def fp32_math_on_bf16_units() -> Iterator[None]:
    knob = torch.backends.mkldnn.matmul
    old = knob.fp32_precision
    knob.fp32_precision = "bf16"
    try:
        yield
    finally:
        knob.fp32_precision = old


def fast_matmul_ok() -> bool:
    """Whether the bf16 fp32-math mode keeps float32 accuracy on this machine (probed once per process)."""
    global _FAST_MATMUL
    if _FAST_MATMUL is None:
        g = torch.Generator().manual_seed(0)
        a, b = torch.rand(256, 1024, generator=g) * 2 - 1, torch.randn(1024, 256, generator=g)
        ref = a.double() @ b.double()
        try:
            with fp32_math_on_bf16_units():
                got = a @ b
        except (AttributeError, RuntimeError):
            _FAST_MATMUL = False
        else:
            err = ((got.double() - ref).abs() / (a.abs().double() @ b.abs().double())).max()
            _FAST_MATMUL = bool(err <= _FAST_MATMUL_REL_TOL)
    return _FAST_MATMUL


__all__ = ["fast_matmul_ok", "fp32_math_on_bf16_units"]
