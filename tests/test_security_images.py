"""Image decoding of every Pillow mode against hand-made arrays (issue 13 items 2 and 12).

Each case states the expected uint8 values by hand; the old decoder (``Image.convert("L")``) clipped 16-bit
and I/F values, dropped alpha and silently used the first frame of an animation.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genattr.data import read_image
from genattr.data.decode import decode_pil
from genattr.errors import ImageDecodeError


def _png(im: Image.Image, path: Path, **kw) -> Path:
    im.save(path, format="PNG", **kw)
    return path


def test_16bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    v16 = np.array([[0, 257, 32768, 65535], [1000, 20000, 40000, 60000]], dtype=np.uint16)
    p = _png(Image.fromarray(v16), tmp_path / "g16.png")
    with Image.open(p) as im:
        assert im.mode.startswith("I")  # Pillow hands it over as I;16 (or I)
    want = np.rint(v16 * (255 / 65535)).astype(np.uint8)
    assert want.tolist() == [[0, 1, 128, 255], [4, 78, 156, 233]]
    np.testing.assert_array_equal(read_image(p)[0], want)  # the old decoder gave 255 for every v > 255
    np.testing.assert_array_equal(read_image(p, mode="RGB"), np.stack([want] * 3))


def test_a_zoo_like_sample_saved_as_16bit_decodes_to_the_same_pixels(tmp_path: Path) -> None:
    # issue 13 item 2: the same 8-bit sample re-saved with 16 bits per pixel must reach the model unchanged
    x8 = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    p8 = _png(Image.fromarray(x8), tmp_path / "s8.png")
    p16 = _png(Image.fromarray(x8.astype(np.uint16) * 257), tmp_path / "s16.png")
    np.testing.assert_array_equal(read_image(p16), read_image(p8))


def test_mode_I_is_read_as_16bit_and_out_of_range_refused() -> None:
    arr = np.array([[0, 65535, 257, 514]], dtype=np.int32)
    np.testing.assert_array_equal(decode_pil(Image.fromarray(arr, mode="I"))[0], [[0, 255, 1, 2]])
    with pytest.raises(ImageDecodeError, match=r"0\.\.65535"):
        decode_pil(Image.fromarray(np.array([[-1, 70000]], dtype=np.int32), mode="I"))


def test_mode_F_is_intensity_in_unit_interval() -> None:
    arr = np.array([[0.0, 0.5, 1.0, 0.25]], dtype=np.float32)
    np.testing.assert_array_equal(decode_pil(Image.fromarray(arr, mode="F"))[0], [[0, 128, 255, 64]])
    for bad in (np.nan, 2.0, -0.5):
        with pytest.raises(ImageDecodeError, match=r"\[0, 1\]"):
            decode_pil(Image.fromarray(np.array([[0.1, bad]], dtype=np.float32), mode="F"))


def test_palette_with_transparency_composites_over_black(tmp_path: Path) -> None:
    im = Image.new("P", (3, 1))
    im.putpalette([255, 0, 0, 0, 255, 0, 10, 20, 30] + [0] * (256 * 3 - 9))
    im.putdata([0, 1, 2])
    im.info["transparency"] = 0  # palette entry 0 (red) is fully transparent
    p = _png(im, tmp_path / "p.png", transparency=0)
    with Image.open(p) as back:
        assert back.mode == "P" and "transparency" in back.info
    np.testing.assert_array_equal(read_image(p, mode="RGB")[:, 0, :], [[0, 0, 10], [0, 255, 20], [0, 0, 30]])
    # grey: ITU-R 601-2 luma of (0,255,0) = 149.685 → 150; of (10,20,30) = 18.15 → 18; transparent → 0
    np.testing.assert_array_equal(read_image(p)[0, 0], [0, 150, 18])


def test_palette_without_transparency_is_looked_up() -> None:
    im = Image.new("P", (2, 1))
    im.putpalette([0, 0, 0, 200, 100, 50] + [0] * (254 * 3))
    im.putdata([1, 0])
    np.testing.assert_array_equal(decode_pil(im, "RGB")[:, 0, 0], [200, 100, 50])


def test_LA_alpha_is_coverage_over_black(tmp_path: Path) -> None:
    arr = np.array([[[200, 255], [200, 128], [200, 0]]], dtype=np.uint8)  # (1, 3, 2): L, A
    p = _png(Image.fromarray(arr, mode="LA"), tmp_path / "la.png")
    # 200·1 = 200; 200·128/255 = 100.39 → 100; fully transparent → background 0 (the old decoder gave 200)
    np.testing.assert_array_equal(read_image(p)[0, 0], [200, 100, 0])


def test_RGBA_alpha_is_coverage_over_black(tmp_path: Path) -> None:
    arr = np.array([[[100, 150, 200, 255], [100, 150, 200, 51], [255, 255, 255, 0]]], dtype=np.uint8)
    p = _png(Image.fromarray(arr, mode="RGBA"), tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(p, mode="RGB")[:, 0, :], [[100, 20, 0], [150, 30, 0], [200, 40, 0]])
    # grey of (100,150,200) = 29.9 + 88.05 + 22.8 = 140.75 → 141; at alpha 0.2 → 28.15 → 28
    np.testing.assert_array_equal(read_image(p)[0, 0], [141, 28, 0])


def test_CMYK_uses_the_standard_conversion() -> None:
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 255], [100, 50, 0, 55]]], dtype=np.uint8)
    out = decode_pil(Image.fromarray(cmyk, mode="CMYK"), "RGB")[:, 0, :].T
    # R = 255·(1 − C/255)·(1 − K/255) etc.: white, cyan, black, and 155·200/255 = 121.6 → 122,
    # 205·200/255 = 160.8 → 161, 255·200/255 = 200
    np.testing.assert_array_equal(out, [[255, 255, 255], [0, 255, 255], [0, 0, 0], [122, 161, 200]])


def test_bilevel_and_plain_modes_are_unchanged(tmp_path: Path) -> None:
    np.testing.assert_array_equal(decode_pil(Image.fromarray(np.array([[True, False]])))[0], [[255, 0]])
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    p = _png(Image.fromarray(rgb), tmp_path / "rgb.png")
    # plain 8-bit files decode bit-identically to Pillow's own conversion (no drift for existing data)
    np.testing.assert_array_equal(read_image(p)[0], np.asarray(Image.fromarray(rgb).convert("L")))
    np.testing.assert_array_equal(read_image(p, mode="RGB"), rgb.transpose(2, 0, 1))


def test_animated_png_is_refused_not_first_frame(tmp_path: Path) -> None:
    frames = [Image.fromarray(np.full((4, 4), v, np.uint8)) for v in (10, 200)]
    p = tmp_path / "anim.png"
    frames[0].save(p, format="PNG", save_all=True, append_images=frames[1:])
    with Image.open(p) as im:
        assert getattr(im, "is_animated", False)
    with pytest.raises(ImageDecodeError, match="animated image with 2 frames"):
        read_image(p)


def test_decompression_bomb_is_one_error_without_a_printed_warning(tmp_path: Path, monkeypatch,
                                                                   capfd: pytest.CaptureFixture) -> None:
    p = _png(Image.fromarray(np.zeros((12, 12), np.uint8)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 144 px: between the limit and twice it → a warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageDecodeError, match="decompression bomb"):
            read_image(p)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert "DecompressionBomb" not in capfd.readouterr().err
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # beyond twice the limit → Pillow's error, same message
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        read_image(p)
