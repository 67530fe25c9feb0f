"""Image perturbations (attacks on attribution) and the papers' robustness grids.

Pure functions live in :mod:`genattr.perturbations.functional`; replayable transform objects
(``sample_params(batch, generator)`` / ``apply(x, params)``) in :mod:`~genattr.perturbations.transforms`;
named evaluation grids in :mod:`~genattr.perturbations.grids`.
"""

from genattr.perturbations import functional
from genattr.perturbations.functional import (
    adjust_brightness,
    adjust_contrast,
    brightness_contrast,
    center_crop,
    gaussian_blur,
    gaussian_noise,
    jpeg,
    jpeg_differentiable,
    mirror,
    random_crop,
    resized_crop,
    rotate,
)
from genattr.perturbations.grids import CLEAN, GridEntry, as_grid, get_grid, list_grids, register_grid
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
    create_perturbation,
    list_perturbations,
    perturbation_from_config,
    register_perturbation,
    sample_spec,
)

__all__ = [
    "CLEAN", "JPEG", "BrightnessContrast", "Choice", "Combination", "Crop", "GaussianBlur", "GaussianNoise",
    "GridEntry", "Identity", "Mirror", "Params", "Perturbation", "Rotation", "Uniform", "adjust_brightness",
    "adjust_contrast", "as_grid", "brightness_contrast", "center_crop", "create_perturbation", "functional",
    "gaussian_blur", "gaussian_noise", "get_grid", "jpeg", "jpeg_differentiable", "list_grids",
    "list_perturbations", "mirror", "perturbation_from_config", "random_crop", "register_grid",
    "register_perturbation", "resized_crop", "rotate", "sample_spec",
]
