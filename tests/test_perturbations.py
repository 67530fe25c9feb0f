"""Perturbations: pure functions against SciPy / Pillow references, replayable transforms, paper grids."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance

from genattr.errors import ConfigError, UnknownNameError
from genattr.perturbations import (
    JPEG,
    BrightnessContrast,
    Choice,
    Combination,
    Crop,
    GaussianBlur,
    GaussianNoise,
    GridEntry,
    Identity,
    Mirror,
    Rotation,
    Uniform,
    as_grid,
    create_perturbation,
    get_grid,
    list_grids,
    list_perturbations,
    perturbation_from_config,
    register_perturbation,
)
from genattr.perturbations import functional as PF
from genattr.perturbations.transforms import select_params


def smooth(n: int = 3, c: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Smooth random images in [-1, 1] (JPEG-friendly, unlike white noise)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, c, size // 4, size // 4, generator=g) * 1.8 - 0.9
    return F.interpolate(low, size=size, mode="bilinear", align_corners=False)


def to_pil(img: torch.Tensor) -> Image.Image:
    arr = ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)


def from_pil(im: Image.Image) -> torch.Tensor:
    arr = np.asarray(im, dtype=np.float32)
    arr = arr[..., None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1


# ------------------------------------------------------------------------------------------------------
# Pure functions vs references
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("k", "sigma"), [(3, 3.0), (5, 1.1), (9, 3.0), (7, None)])
def test_gaussian_blur_matches_scipy(k: int, sigma: float | None) -> None:
    from scipy.ndimage import gaussian_filter

    x = smooth(2, 3, 16) + 0.1 * torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    s = PF.opencv_sigma(k) if sigma is None else sigma
    ref = gaussian_filter(x.double().numpy(), sigma=s, radius=k // 2, mode="mirror", axes=(2, 3))
    torch.testing.assert_close(PF.gaussian_blur(x, k, sigma), torch.from_numpy(ref).float(), atol=1e-5, rtol=0)


def test_blur_kernel_one_is_identity_and_opencv_sigma() -> None:
    x = smooth()
    assert torch.equal(PF.gaussian_blur(x, 1, 3.0), x)
    assert PF.opencv_sigma(3) == pytest.approx(0.8) and PF.opencv_sigma(9) == pytest.approx(1.7)
    with pytest.raises(ValueError):
        PF.gaussian_blur(x, 4)


def test_crop_sizes_follow_flipad_fractions() -> None:
    assert [PF.crop_size(f, 64) for f in (60 / 64, 55 / 64)] == [60, 55]
    assert [PF.crop_size(f, 32) for f in (60 / 64, 55 / 64)] == [30, 28]


def test_center_crop_matches_pillow_crop_and_resize() -> None:
    x = smooth(2, 3, 32)
    y = PF.center_crop(x, 60 / 64)
    for i in range(2):
        im = to_pil(x[i])
        ref = from_pil(im.crop((1, 1, 31, 31)).resize((32, 32), Image.BILINEAR))
        assert (y[i] - ref).abs().max() < 0.03  # uint8 rounding of the reference
    assert torch.equal(PF.center_crop(x, 1.0), x)


def test_random_crop_replays_positions() -> None:
    x = smooth(4, 1, 16)
    pos = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 0.5], [0.0, 1.0]])
    y = PF.random_crop(x, 0.5, pos)
    manual = F.interpolate(x[1:2, :, 8:16, 8:16], size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(y[1:2], manual)
    torch.testing.assert_close(y[0:1], F.interpolate(x[0:1, :, :8, :8], size=16, mode="bilinear"))


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_matches_a_direct_pillow_round_trip(channels: int) -> None:
    x = smooth(2, channels, 16)
    y = PF.jpeg(x, torch.tensor([90, 30]))
    for i, q in enumerate((90, 30)):
        buf = io.BytesIO()
        to_pil(x[i]).save(buf, format="JPEG", quality=q)
        ref = from_pil(Image.open(io.BytesIO(buf.getvalue())))
        assert torch.equal(y[i], ref)
    assert y.shape == x.shape and y.dtype == x.dtype


def test_jpeg_error_grows_as_quality_drops() -> None:
    x = smooth(4, 3, 32)
    errs = [(PF.jpeg(x, q) - x).abs().mean().item() for q in (100, 90, 50, 10)]
    assert errs == sorted(errs)
    grey = smooth(4, 1, 32)  # no chroma subsampling: quality 100 is nearly lossless
    assert (PF.jpeg(grey, 100) - grey).abs().mean() < 0.01
    y = PF.jpeg(smooth(2, 2, 16), 80)  # other channel counts: one greyscale plane per channel
    assert y.shape == (2, 2, 16, 16)
    with pytest.raises(ValueError):
        PF.jpeg(x, 0)


def test_quantization_tables_follow_ijg_scaling() -> None:
    assert torch.equal(PF.quantization_table(50), PF._LUMA_Q)
    assert torch.equal(PF.quantization_table(100), torch.ones(8, 8, dtype=torch.float64))
    assert PF.quantization_table(10)[0, 0].item() == 80  # floor((16·500 + 50) / 100)


@pytest.mark.parametrize("channels", [1, 3])
def test_differentiable_jpeg_approximates_pillow_and_has_gradients(channels: int) -> None:
    x = smooth(3, channels, 32, seed=2)
    for q in (30, 50):
        real, approx = PF.jpeg(x, q), PF.jpeg_differentiable(x, q)
        # Much closer to the real codec than the codec is to the input.
        assert (approx - real).abs().mean() < 0.4 * (real - x).abs().mean()
    # At high quality the two differ by about one grey level (libjpeg's integer DCT and rounding).
    assert (PF.jpeg_differentiable(x, 90) - PF.jpeg(x, 90)).abs().mean() < 1.5 / 127.5
    xg = x.clone().requires_grad_(True)
    PF.jpeg_differentiable(xg, 75).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0


def test_differentiable_round() -> None:
    v = torch.tensor([0.2, 1.7, -2.4], requires_grad=True)
    r = PF.differentiable_round(v)
    torch.testing.assert_close(r.detach(), torch.round(v.detach()) + (v.detach() - torch.round(v.detach())) ** 3)
    r.sum().backward()
    assert (v.grad > 0).all()


def test_gaussian_noise_is_explicitly_seeded_and_clipped() -> None:
    x = smooth()
    y1 = PF.gaussian_noise(x, 0.2, torch.Generator().manual_seed(5))
    y2 = PF.gaussian_noise(x, 0.2, torch.Generator().manual_seed(5))
    ref = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(5))).clamp(-1, 1)
    assert torch.equal(y1, y2) and torch.equal(y1, ref)
    per_image = PF.gaussian_noise(x, torch.tensor([0.0, 0.1, 0.2]), torch.Generator().manual_seed(0))
    assert torch.equal(per_image[0], x[0])


def test_mirror_matches_numpy() -> None:
    x = smooth()
    assert np.array_equal(PF.mirror(x).numpy(), np.flip(x.numpy(), axis=-1))
    y = PF.mirror(x, torch.tensor([True, False, True]))
    assert torch.equal(y[1], x[1]) and torch.equal(y[0], x[0].flip(-1))


def test_rotation_matches_rot90_and_identity() -> None:
    x = smooth(2, 3, 16)
    torch.testing.assert_close(PF.rotate(x, 90.0), torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(PF.rotate(x, -90.0), torch.rot90(x, -1, dims=(-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(PF.rotate(x, 0.0), x, atol=1e-6, rtol=0)
    corners = PF.rotate(torch.zeros(1, 1, 16, 16), 45.0)
    assert corners[0, 0, 0, 0].item() == pytest.approx(-1.0)  # uncovered corner gets the fill value


@pytest.mark.parametrize("factor", [0.6, 1.4])
def test_brightness_and_contrast_match_pillow(factor: float) -> None:
    x = smooth(2, 3, 16)
    for i in range(2):
        im = to_pil(x[i])
        ref_b = from_pil(ImageEnhance.Brightness(im).enhance(factor))
        ref_c = from_pil(ImageEnhance.Contrast(im).enhance(factor))
        assert (PF.adjust_brightness(x[i:i + 1], factor)[0] - ref_b).abs().max() < 0.02
        # PIL rounds the mean grey level to an integer; allow a couple of levels.
        assert (PF.adjust_contrast(x[i:i + 1], factor)[0] - ref_c).abs().max() < 0.04
    torch.testing.assert_close(PF.brightness_contrast(x, 1.0, 1.0), x, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------------
# Transform objects
# ------------------------------------------------------------------------------------------------------
ALL_TRANSFORMS = [
    Identity(), GaussianBlur(kernel_size=Choice([1, 3, 5])), GaussianBlur(kernel_size=3, sigma_scale=1 / 3),
    Crop(fraction=Uniform(0.7, 1.0), position="random"), Crop(fraction=0.8), JPEG(quality=Uniform(30, 90, True)),
    JPEG(quality=70, mode="differentiable"), JPEG(quality=70, mode="straight-through"),
    GaussianNoise(std=Uniform(0.0, 0.2)), GaussianNoise(variance=0.01), Mirror(p=0.5),
    Rotation(degrees=Uniform(-20, 20)), BrightnessContrast(brightness=Uniform(0.8, 1.2), contrast=0.9),
    Combination(transforms=[GaussianBlur(kernel_size=3), Crop(fraction=0.9), GaussianNoise(std=0.1)], p=0.5),
]


@pytest.mark.parametrize("t", ALL_TRANSFORMS, ids=repr)
def test_transforms_are_replayable_pure_and_shape_preserving(t) -> None:
    x = smooth(6, 3, 16)
    ref = x.clone()
    params = t.sample_params(6, torch.Generator().manual_seed(0))
    y = t.apply(x, params)
    assert torch.equal(x, ref), "inputs must never be modified in place"
    assert y.shape == x.shape and y.dtype == x.dtype and y is not x
    assert torch.equal(t.apply(x, params), y)
    assert torch.equal(t(x, torch.Generator().manual_seed(0)), y)
    # Each image's result depends only on its own params: applying to a subset gives the same rows.
    mask = torch.tensor([True, False, True, True, False, False])
    torch.testing.assert_close(t.apply(x[mask], select_params(params, mask)), y[mask], atol=1e-6, rtol=0)
    assert t.apply(x[:0], t.sample_params(0, torch.Generator())).shape == (0, 3, 16, 16)
    assert perturbation_from_config(t.to_config()) == t


@pytest.mark.parametrize("t", [x for x in ALL_TRANSFORMS if x.differentiable and not isinstance(x, Identity)],
                         ids=repr)
def test_differentiable_transforms_pass_gradients(t) -> None:
    x = smooth(4, 3, 16).requires_grad_(True)
    t(x, torch.Generator().manual_seed(1)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_specs_sample_in_range_and_reproducibly() -> None:
    g = torch.Generator().manual_seed(0)
    u = Uniform(10, 75, integer=True).sample(500, g)
    assert u.min() >= 10 and u.max() <= 75 and torch.equal(u, u.round()) and len(set(u.tolist())) > 40
    c = Choice([1, 3, 5]).sample(100, torch.Generator().manual_seed(1))
    assert set(c.tolist()) == {1.0, 3.0, 5.0}
    assert torch.equal(c, Choice([1, 3, 5]).sample(100, torch.Generator().manual_seed(1)))
    with pytest.raises(ConfigError):
        Uniform(2, 1)
    with pytest.raises(ConfigError):
        Choice([])


def test_combination_fires_members_in_order() -> None:
    x = smooth(4, 3, 16)
    blur, crop = GaussianBlur(kernel_size=3, sigma=1.0), Crop(fraction=0.75)
    g = torch.Generator()
    always = Combination(transforms=[blur, crop], p=1.0)
    assert torch.equal(always(x, g), crop.apply(blur.apply(x, {"kernel_size": torch.full((4,), 3),
                                                              "sigma": torch.ones(4, dtype=torch.float64)}),
                                               crop.sample_params(4, g)))
    assert torch.equal(Combination(transforms=[blur, crop], p=0.0)(x, g), x)
    params = Combination(transforms=[blur, crop], p=0.5).sample_params(1000, torch.Generator().manual_seed(0))
    assert 0.45 < params["apply"].double().mean().item() < 0.55


def test_transform_validation() -> None:
    with pytest.raises(ConfigError):
        Crop(position="corner")
    with pytest.raises(ConfigError):
        JPEG(mode="fast")
    with pytest.raises(ConfigError):
        GaussianNoise(std=0.1, variance=0.01)
    with pytest.raises(ConfigError):
        GaussianBlur(sigma=1.0, sigma_scale=0.3)
    with pytest.raises(ConfigError):
        Combination(p=2.0)


def test_perturbation_registry() -> None:
    assert {"blur", "crop", "jpeg", "noise", "mirror", "rotation", "brightness-contrast", "combination",
            "identity"} <= set(list_perturbations())
    assert create_perturbation("blur", kernel_size={"choice": [1, 3]}) == GaussianBlur(kernel_size=Choice([1, 3]))
    with pytest.raises(UnknownNameError):
        create_perturbation("posterize")
    with pytest.raises(ConfigError):
        create_perturbation("blur", radius=3)
    with pytest.raises(ConfigError, match="already registered"):
        register_perturbation("blur")(Identity)


# ------------------------------------------------------------------------------------------------------
# Paper grids
# ------------------------------------------------------------------------------------------------------
def test_flipad_table3_grid() -> None:
    grid = get_grid("flipad-table3")
    assert [e.key for e in grid] == ["none", "blur/1", "blur/3", "crop/60", "crop/55", "noise/0.05",
                                     "noise/0.1", "jpeg/90", "jpeg/80"]
    by = {e.key: e.transform for e in grid}
    assert by["blur/3"] == GaussianBlur(kernel_size=3, sigma=3.0)
    assert by["crop/55"] == Crop(fraction=55 / 64, position="center")
    # σ on the [0, 1] scale (their uint8 pipeline) is doubled on our [-1, 1] scale.
    assert by["noise/0.05"].std == pytest.approx(0.1) and by["noise/0.1"].std == pytest.approx(0.2)
    assert by["jpeg/80"] == JPEG(quality=80)


def test_yu2019_and_kim2021_grids_sample_within_the_papers_ranges() -> None:
    yu = {e.family: e.transform for e in get_grid("yu2019-table7")}
    assert set(yu) == {"none", "noise", "blur", "crop", "jpeg", "combination"}
    g = torch.Generator().manual_seed(0)
    q = yu["jpeg"].sample_params(400, g)["quality"]
    assert q.min() >= 10 and q.max() <= 75
    assert set(yu["blur"].sample_params(400, g)["kernel_size"].tolist()) == {1, 3, 5, 7, 9}
    var_255 = (yu["noise"].sample_params(400, g)["std"] / (2 / 255)) ** 2
    assert var_255.min() >= 5 - 1e-6 and var_255.max() <= 20 + 1e-6
    frac = yu["crop"].sample_params(400, g)["fraction"]
    assert frac.min() >= 0.8 and frac.max() <= 0.95
    assert [type(t).__name__ for t in yu["combination"].transforms] == ["Crop", "GaussianBlur", "JPEG",
                                                                         "GaussianNoise"]
    kim = {e.family: e.transform for e in get_grid("kim2021")}
    p = kim["blur"].sample_params(400, g)
    torch.testing.assert_close(p["sigma"], p["kernel_size"].double() / 3)
    std = kim["noise"].sample_params(400, g)["std"]
    assert std.min() >= 0 and std.max() <= 0.3
    assert kim["combination"].p == 0.5
    assert [type(t).__name__ for t in kim["combination"].transforms] == ["GaussianBlur", "Crop",
                                                                          "GaussianNoise", "JPEG"]


def test_grid_lookup_and_custom_grids() -> None:
    assert {"clean", "flipad-table3", "yu2019-table7", "kim2021", "photometric"} <= set(list_grids())
    with pytest.raises(UnknownNameError):
        get_grid("nope")
    custom = as_grid({"none": Identity(), "blur/3": GaussianBlur(kernel_size=3)})
    assert [(e.family, e.strength) for e in custom] == [("none", ""), ("blur", "3")]
    with pytest.raises(ConfigError, match="duplicate"):
        as_grid([GridEntry("a", "1", Identity()), GridEntry("a", "1", Identity())])
    for name in list_grids():
        x = smooth(2, 3, 16)
        for e in get_grid(name):
            assert e.transform(x, torch.Generator().manual_seed(0)).shape == x.shape
