"""Image files → pipeline tensors: nothing cropped, resized or silently turned grey; bad files are clear errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from genattr.attribution.inputs import InvalidInputError
from genattr.errors import ImageDecodeError
from genattr.unified.images import decode_image

GREY = (1, 32, 32)


def _bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_grey_png_decodes_exactly() -> None:
    a = np.arange(32 * 32, dtype=np.uint8).reshape(32, 32)
    x = decode_image(_bytes(Image.fromarray(a)), GREY)
    assert x.shape == GREY and np.array_equal(((x[0] + 1) * 127.5).round().numpy().astype(np.uint8), a)


def test_grey_saved_as_rgb_or_webp_is_accepted() -> None:
    a = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    rgb = Image.fromarray(np.stack([a] * 3, axis=-1), mode="RGB")
    assert np.array_equal(decode_image(_bytes(rgb), GREY).numpy(), decode_image(_bytes(Image.fromarray(a)),
                                                                                GREY).numpy())
    assert decode_image(_bytes(Image.fromarray(a), "WEBP", lossless=True), GREY).shape == GREY


def test_wrong_size_and_colour_are_refused_not_adapted() -> None:
    with pytest.raises(InvalidInputError, match="64×64 image; the registered models read 32×32"):
        decode_image(_bytes(Image.new("L", (64, 64))), GREY)
    colour = np.zeros((32, 32, 3), np.uint8)
    colour[..., 0] = 200
    with pytest.raises(InvalidInputError, match="colour image"):
        decode_image(_bytes(Image.fromarray(colour, mode="RGB")), GREY)
    assert decode_image(_bytes(Image.fromarray(colour, mode="RGB")), (3, 32, 32)).shape == (3, 32, 32)


def test_bad_files_are_decode_errors() -> None:
    with pytest.raises(ImageDecodeError, match="not a PNG/JPEG/WebP"):
        decode_image(b"hello", GREY)
    with pytest.raises(ImageDecodeError, match="unsupported image format GIF"):
        decode_image(_bytes(Image.new("L", (32, 32)), "GIF"), GREY)
    png = _bytes(Image.new("L", (32, 32)))
    with pytest.raises(ImageDecodeError):
        decode_image(png[: len(png) // 2], GREY)
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        decode_image(_bytes(Image.new("L", (32, 32))), GREY, max_pixels=100)
