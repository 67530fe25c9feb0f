"""Named perturbation grids: the robustness settings of the papers, as lists of (family, strength, transform).

All strengths are converted to this package's [-1, 1] tensor units here, in one place; the ``strength``
label keeps the value as the paper prints it so result tables line up with the papers' columns.

* ``flipad-table3`` — Laszkiewicz et al. 2024, Table 3 (and Table 13): blur kernel 1 / 3 (σ = 3, as their
  torchvision ``GaussianBlur(k, sigma=3)``), centre crop 60 / 55 of 64 px then resize back (the same
  fractions at any size: 30 / 28 of 32), noise σ 0.05 / 0.1 on the [0, 1] scale (the caption's "0.01" is a
  typo: the table header and their script use 0.1), JPEG quality 90 / 80.
* ``yu2019-table7`` — Yu et al. 2019 §4.4 / Table 7: noise with variance ~ U[5, 20] on the 8-bit scale,
  blur kernel ∈ {1, 3, 5, 7, 9} (σ from OpenCV's rule), crop with a random 5–20 % offset then resize back,
  JPEG quality ~ U{10, …, 75}, and their combination (each with p = 0.5, in the order crop, blur, JPEG,
  noise). The relighting attack (SfSNet) is omitted: it needs a face-relighting network.
* ``kim2021`` — Kim et al. 2021 §"Robust training": blur with σ ∈ (1/3){1, 3, 5, 7, 9} (kernel size = 3σ),
  crop ratio ~ U[0.8, 1] resized back bilinearly, noise σ ~ U[0, 0.3] (their tensors are in [-1, 1]), JPEG
  (quality unspecified; 50 as in Zhu et al. 2018, whose approximation they train with), and the
  combination (p = 0.5, order blur, crop, noise, JPEG).
* ``kim2021-worst`` — the worst cases Kim et al. 2021 evaluate robust training at (official code): Gaussian
  blur σ = 3 with kornia's kernel 2⌊4σ + ½⌋ + 1 = 25 (σ was set for 64 px images, so also σ = 1.5, kernel 13,
  for our 32 px), **centre** crop keeping 80 % resized back, noise σ = 0.3 (in [-1, 1] units), "JPEG" as
  the differentiable DCT mask of Zhu et al. 2018 (HiDDeN's JPEG-Mask: per 8×8 block keep the lowest 5×5 = 25
  luma coefficients; :class:`DCTMask`) and the combination of all four at those strengths (every member
  applied: the paper's before-training D of 0.50 is that of every image attacked).
* ``photometric`` — the extra, paper-free attacks of this package: mirror, rotation, brightness/contrast.
* ``clean`` — only the unperturbed images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from genattr.errors import ConfigError, UnknownNameError
from genattr.perturbations.transforms import (
    JPEG,
    BrightnessContrast,
    Choice,
    Combination,
    Crop,
    GaussianBlur,
    GaussianNoise,
    Identity,
    Mirror,
    Params,
    Perturbation,
    Rotation,
    Uniform,
    register_perturbation,
)

# A noise σ on the [0, 1] scale is 2σ on the [-1, 1] scale; one 8-bit level is 2/255.
UNIT_TO_TENSOR = 2.0
LEVEL_8BIT = 2.0 / 255.0


@dataclass(frozen=True)
class GridEntry:
    """One column of a robustness table: a perturbation family, its strength label and the transform."""

    family: str
    strength: str
    transform: Perturbation

    @property
    def key(self) -> str:
        return self.family if not self.strength else f"{self.family}/{self.strength}"


CLEAN = GridEntry("none", "", Identity())


def _flipad_table3() -> tuple[GridEntry, ...]:
    return (
        CLEAN,
        GridEntry("blur", "1", GaussianBlur(kernel_size=1, sigma=3.0)),
        GridEntry("blur", "3", GaussianBlur(kernel_size=3, sigma=3.0)),
        GridEntry("crop", "60", Crop(fraction=60 / 64, position="center")),
        GridEntry("crop", "55", Crop(fraction=55 / 64, position="center")),
        GridEntry("noise", "0.05", GaussianNoise(std=0.05 * UNIT_TO_TENSOR)),
        GridEntry("noise", "0.1", GaussianNoise(std=0.1 * UNIT_TO_TENSOR)),
        GridEntry("jpeg", "90", JPEG(quality=90)),
        GridEntry("jpeg", "80", JPEG(quality=80)),
    )


def _yu2019_table7() -> tuple[GridEntry, ...]:
    noise = GaussianNoise(variance=Uniform(5.0 * LEVEL_8BIT**2, 20.0 * LEVEL_8BIT**2))
    blur = GaussianBlur(kernel_size=Choice([1, 3, 5, 7, 9]))
    # "a random offset between 5% and 20% of the image side lengths": the kept window is 80–95 % of the side.
    crop = Crop(fraction=Uniform(0.80, 0.95), position="random")
    jpeg = JPEG(quality=Uniform(10, 75, integer=True))
    return (
        CLEAN,
        GridEntry("noise", "var U[5,20]/255²", noise),
        GridEntry("blur", "k{1,3,5,7,9}", blur),
        GridEntry("crop", "offset U[5%,20%]", crop),
        GridEntry("jpeg", "q U[10,75]", jpeg),
        GridEntry("combination", "p=0.5", Combination(transforms=[crop, blur, jpeg, noise], p=0.5)),
    )


def _kim2021() -> tuple[GridEntry, ...]:
    blur = GaussianBlur(kernel_size=Choice([1, 3, 5, 7, 9]), sigma_scale=1.0 / 3.0)
    crop = Crop(fraction=Uniform(0.8, 1.0), position="random")
    noise = GaussianNoise(std=Uniform(0.0, 0.3))
    jpeg = JPEG(quality=50)
    return (
        CLEAN,
        GridEntry("blur", "sigma (1/3){1,3,5,7,9}", blur),
        GridEntry("crop", "ratio U[0.8,1]", crop),
        GridEntry("noise", "std U[0,0.3]", noise),
        GridEntry("jpeg", "q50", jpeg),
        GridEntry("combination", "p=0.5", Combination(transforms=[blur, crop, noise, jpeg], p=0.5)),
    )


def _dct8(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    k = torch.arange(8, dtype=torch.float64)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m.to(dtype=dtype, device=device)  # orthonormal DCT-II: coefficients = M @ block @ M.T


def dct_mask(x: torch.Tensor, keep: int = 5, keep_chroma: int = 3) -> torch.Tensor:
    """HiDDeN's JPEG-Mask (Zhu et al. 2018), the "JPEG" Kim et al. 2021 train and attack with: per 8×8 block,
    keep the lowest ``keep``×``keep`` DCT coefficients of the luma (and ``keep_chroma``² of Cb/Cr for RGB),
    zero the rest. Linear, hence differentiable; sides that are not multiples of 8 are edge-padded."""
    n, c, h, w = x.shape
    if c not in (1, 3):
        raise ValueError(f"DCT mask needs 1 or 3 channels, got {c}")
    ph, pw = (-h) % 8, (-w) % 8
    u = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
    if c == 3:
        r, g, b = u[:, 0], u[:, 1], u[:, 2]
        y = 0.299 * r + 0.587 * g + 0.114 * b
        planes = torch.stack([y, -0.168736 * r - 0.331264 * g + 0.5 * b, 0.5 * r - 0.418688 * g - 0.081312 * b], 1)
    else:
        planes = u
    hh, ww = planes.shape[-2:]
    m = _dct8(planes.dtype, planes.device)
    blocks = planes.reshape(n, c, hh // 8, 8, ww // 8, 8).transpose(3, 4)  # (n, c, bh, bw, 8, 8)
    coef = m @ blocks @ m.T
    mask = torch.zeros(c, 1, 1, 8, 8, dtype=planes.dtype, device=planes.device)
    mask[0, ..., :keep, :keep] = 1
    if c == 3:
        mask[1:, ..., :keep_chroma, :keep_chroma] = 1
    out = (m.T @ (coef * mask) @ m).transpose(3, 4).reshape(n, c, hh, ww)
    if c == 3:
        yy, cb, cr = out[:, 0], out[:, 1], out[:, 2]
        out = torch.stack([yy + 1.402 * cr, yy - 0.344136 * cb - 0.714136 * cr, yy + 1.772 * cb], 1)
    return out[..., :h, :w].contiguous()


@register_perturbation("dct-mask")
class DCTMask(Perturbation):
    """:func:`dct_mask` as a replayable perturbation (deterministic; no random parameters)."""

    def __init__(self, *, keep: int = 5, keep_chroma: int = 3) -> None:
        if not (1 <= keep <= 8 and 1 <= keep_chroma <= 8):
            raise ConfigError("keep and keep_chroma must be in 1..8")
        self.keep, self.keep_chroma = keep, keep_chroma

    def _kwargs(self) -> dict[str, Any]:
        return {"keep": self.keep, "keep_chroma": self.keep_chroma}

    def sample_params(self, batch: int, generator: torch.Generator | None) -> Params:
        return {}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return dct_mask(x, self.keep, self.keep_chroma)


def kornia_kernel(sigma: float) -> int:
    """Kernel size kornia's Gaussian blur uses for σ (as in Kim et al.'s code): 2⌊4σ + ½⌋ + 1."""
    return 2 * math.floor(4 * sigma + 0.5) + 1


def _kim2021_worst() -> tuple[GridEntry, ...]:
    blur = GaussianBlur(kernel_size=kornia_kernel(3.0), sigma=3.0)
    crop = Crop(fraction=0.8, position="center")
    noise = GaussianNoise(std=0.3)
    jpeg = DCTMask(keep=5)
    return (
        CLEAN,
        GridEntry("blur", "sigma 3", blur),
        GridEntry("blur", "sigma 1.5", GaussianBlur(kernel_size=kornia_kernel(1.5), sigma=1.5)),
        GridEntry("crop", "0.8 centre", crop),
        GridEntry("noise", "std 0.3", noise),
        GridEntry("jpeg", "dct-mask 5x5", jpeg),
        GridEntry("combination", "all worst", Combination(transforms=[blur, crop, noise, jpeg], p=1.0)),
    )


def _photometric() -> tuple[GridEntry, ...]:
    return (
        CLEAN,
        GridEntry("mirror", "", Mirror(p=1.0)),
        GridEntry("rotation", "5", Rotation(degrees=5.0)),
        GridEntry("rotation", "15", Rotation(degrees=15.0)),
        GridEntry("brightness", "0.8", BrightnessContrast(brightness=0.8)),
        GridEntry("brightness", "1.2", BrightnessContrast(brightness=1.2)),
        GridEntry("contrast", "0.8", BrightnessContrast(contrast=0.8)),
        GridEntry("contrast", "1.2", BrightnessContrast(contrast=1.2)),
    )


_GRIDS: dict[str, Callable[[], tuple[GridEntry, ...]]] = {
    "clean": lambda: (CLEAN,),
    "flipad-table3": _flipad_table3,
    "yu2019-table7": _yu2019_table7,
    "kim2021": _kim2021,
    "kim2021-worst": _kim2021_worst,
    "photometric": _photometric,
}


def register_grid(name: str, factory: Callable[[], tuple[GridEntry, ...]]) -> None:
    """Add a named grid (a zero-argument factory); duplicate names raise ConfigError."""
    if name in _GRIDS:
        raise ConfigError(f"perturbation grid {name!r} is already registered")
    _GRIDS[name] = factory


def list_grids() -> list[str]:
    return sorted(_GRIDS)


def get_grid(name: str) -> tuple[GridEntry, ...]:
    """A fresh copy of a named grid (first entry is always the clean ``none`` column)."""
    try:
        return _GRIDS[name]()
    except KeyError:
        raise UnknownNameError(f"unknown perturbation grid {name!r}; known: {', '.join(list_grids())}") from None


def as_grid(grid: str | Mapping[str, Perturbation] | tuple[GridEntry, ...] | list[GridEntry] | None
            ) -> tuple[GridEntry, ...]:
    """Normalise a grid given as a name, a ``{key: transform}`` mapping ("family/strength" keys) or entries."""
    if grid is None:
        return (CLEAN,)
    if isinstance(grid, str):
        return get_grid(grid)
    if isinstance(grid, Mapping):
        entries = []
        for key, t in grid.items():
            family, _, strength = key.partition("/")
            entries.append(GridEntry(family, strength, t))
        grid = entries
    entries = tuple(grid)
    if not all(isinstance(e, GridEntry) for e in entries):
        raise ConfigError("a grid must be a name, a mapping of key → Perturbation, or GridEntry objects")
    keys = [e.key for e in entries]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"duplicate grid keys: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    return entries
