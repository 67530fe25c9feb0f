"""Image files → the pipeline's tensors, refusing what would give a silently wrong answer.

No cropping, padding or resizing: a file whose size is not the models' is an error naming both sizes (the
models were fitted on exactly that size; a resized image is another image). A colour image for grey models is an
error too, unless its three channels are equal (grey saved as RGB). Alpha is coverage over the black background
(:mod:`genattr.data.decode`); animated images, unsupported formats and decompression bombs are refused before
the pixels are decoded.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import torch

from genattr.attribution.inputs import InvalidInputError
from genattr.errors import ImageDecodeError

FORMATS = ("PNG", "JPEG", "WEBP")
SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_PIXELS = 64 * 1024 * 1024  # per image, checked on the header before decoding


def decode_image(data: bytes, shape: Sequence[int], *, where: str = "image", max_pixels: int = MAX_PIXELS
                 ) -> torch.Tensor:
    """One PNG/JPEG/WebP file's bytes → (C, H, W) float32 in [-1, 1] of ``shape``; ImageDecodeError for files
    that are not such images, InvalidInputError for images of the wrong size or colour."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from genattr.data.convention import to_model
    from genattr.data.decode import decode_pil

    c, h, w = (int(s) for s in shape)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.format not in FORMATS:
                    raise ImageDecodeError(f"{where}: unsupported image format {im.format}; use PNG, JPEG or WebP")
                iw, ih = im.size
                if iw * ih > max_pixels:
                    raise ImageDecodeError(f"{where}: {iw}×{ih} pixels exceeds the limit of {max_pixels}; refusing "
                                           "(possible decompression bomb)")
                if (ih, iw) != (h, w):
                    raise InvalidInputError(f"{where}: {iw}×{ih} image; the registered models read {w}×{h} images "
                                            "(nothing is cropped, padded or resized: resize it yourself if that is "
                                            "what you mean)")
                im.load()
                if c == 1:
                    rgb = decode_pil(im, "RGB", where=where)
                    if not (np.array_equal(rgb[0], rgb[1]) and np.array_equal(rgb[0], rgb[2])):
                        raise InvalidInputError(f"{where}: colour image; the registered models read greyscale "
                                                "images (convert it yourself if that is what you mean)")
                    u8 = rgb[:1]
                else:
                    u8 = decode_pil(im, "RGB", where=where)
    except (ImageDecodeError, InvalidInputError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"{where}: refusing a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(f"{where}: not a PNG/JPEG/WebP image (unrecognised contents)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"{where}: not a readable PNG/JPEG/WebP image ({exc})") from None
    return to_model(u8[None])[0]


__all__ = ["FORMATS", "MAX_PIXELS", "SUFFIXES", "decode_image"]
