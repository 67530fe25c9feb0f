"""Uploaded bytes → the model tensor convention, refusing (with a reason a person can act on) anything that is not
an accepted image of the size the registered models work on.

Order of the checks, cheapest first and before any pixel is decoded: the format from the file's header (Pillow
restricted to the accepted formats, so no other plugin parses untrusted bytes), the pixel count the header
declares (decompression bombs), the size against the models'; then the pixels are decoded with the project's
decoding conventions (:mod:`genattr.data.decode`: 16-bit scaled, alpha composited over black, animations
refused).

Size policy: an image whose size differs from the models' is refused, not resized. Fingerprints, keys and the
classifier's cues live in the exact pixels; resampling changes them, and an answer computed on a resampled image
would carry a confidence it has not earned (the out-of-distribution failure the issue describes). Colour policy:
a colour image sent to grey-scale models is refused unless its channels agree (a grey image stored as RGB), for the
same reason.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from genattr.errors import ImageDecodeError
from genattr.service.errors import ApiError
from genattr.service.uploads import Upload

# Magic numbers of formats people commonly send, to say "unsupported format" rather than "not an image".
_MAGIC = ((b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
          (b"\x00\x00\x01\x00", "ICO"), (b"8BPS", "PSD"), (b"%PDF", "PDF"), (b"\x89PNG\r\n\x1a\n", "PNG"),
          (b"\xff\xd8\xff", "JPEG"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"qoif", "QOI"))
# A grey image saved as RGB (or as a JPEG, whose chroma rounding moves channels by a step or two) still counts as
# grey; a real colour image differs by far more than this somewhere.
GREY_TOLERANCE = 8
# warnings.catch_warnings swaps process-wide state: one thread at a time (only around the header parse).
_WARN_LOCK = threading.Lock()


def sniff(data: bytes) -> str | None:
    """The format a file's first bytes announce, if one we know (WebP: RIFF container with a WEBP tag)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return None


def _open(up: Upload, formats: Sequence[str]) -> Image.Image:
    try:
        with _WARN_LOCK, warnings.catch_warnings():
            # Pillow only *warns* between its pixel limit and twice it: make that a refusal too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(up.data), formats=list(formats))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ApiError(413, "image_too_large", f"{up.filename}: refusing a possible decompression bomb ({exc})",
                       file=up.ref()) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        kind = sniff(up.data)
        if kind is None:
            raise ApiError(422, "not_an_image", f"{up.filename}: not an image (accepted: {', '.join(formats)})",
                           file=up.ref()) from None
        if kind not in formats:
            raise ApiError(415, "unsupported_format", f"{up.filename}: {kind} images are not accepted; send "
                                                      f"{', '.join(formats)}", file=up.ref()) from None
        raise ApiError(422, "corrupt_image", f"{up.filename}: looks like {kind} but cannot be read (truncated or "
                                             f"corrupt: {exc})", file=up.ref()) from None


def decode_upload(up: Upload, shape: tuple[int, int, int], *, max_pixels: int, formats: Sequence[str]) -> np.ndarray:
    """One upload → uint8 (C, H, W) with ``(C, H, W) == shape``, or an :class:`ApiError` naming the problem."""
    from genattr.data.decode import decode_pil

    if not up.data:
        raise ApiError(422, "empty_file", f"{up.filename}: the file is empty", file=up.ref())
    channels, height, width = shape
    im = _open(up, formats)
    try:
        w, h = im.size
        if w * h > max_pixels:
            raise ApiError(413, "image_too_large", f"{up.filename}: the header declares {w}×{h} = {w * h} pixels, "
                                                   f"over the limit of {max_pixels} (possible decompression bomb)",
                           file=up.ref())
        if (w, h) != (width, height):
            raise ApiError(422, "wrong_size", f"{up.filename}: the image is {w}×{h} pixels; the registered models "
                                              f"work on {width}×{height} images and this service does not resize "
                                              "(resampling changes the traces attribution relies on). Send the "
                                              "image at its original generated size.", file=up.ref())
        try:
            im.load()
            if channels == 1:
                rgb = decode_pil(im, "RGB", where=up.filename).astype(np.int16)
                spread = int(np.abs(np.diff(rgb, axis=0)).max()) if rgb.size else 0
                if spread > GREY_TOLERANCE:
                    raise ApiError(422, "wrong_colour", f"{up.filename}: a colour image (channels differ by up to "
                                                        f"{spread} levels); the registered models are grey-scale "
                                                        "and this service does not convert colour to grey",
                                   file=up.ref())
                return decode_pil(im, "L", where=up.filename)
            return decode_pil(im, "RGB", where=up.filename)
        except ImageDecodeError as exc:
            raise ApiError(422, "undecodable_image", str(exc), file=up.ref()) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ApiError(413, "image_too_large", f"{up.filename}: refusing a possible decompression bomb ({exc})",
                           file=up.ref()) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ApiError(422, "corrupt_image", f"{up.filename}: cannot decode the {im.format} data (truncated or "
                                                 f"corrupt: {exc})", file=up.ref()) from None
    finally:
        im.close()


def decode_batch(uploads: Sequence[Upload], shape: tuple[int, int, int], *, max_pixels: int,
                 formats: Sequence[str]) -> np.ndarray:
    """All uploads → uint8 (N, C, H, W) in upload order; the first bad one refuses the request."""
    return np.stack([decode_upload(u, shape, max_pixels=max_pixels, formats=formats) for u in uploads])


__all__ = ["GREY_TOLERANCE", "decode_batch", "decode_upload", "sniff"]
