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
* ``photometric`` — the extra, paper-free attacks of this package: mirror, rotation, brightness/contrast.
* ``clean`` — only the unperturbed images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

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
    Perturbation,
    Rotation,
    Uniform,
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
