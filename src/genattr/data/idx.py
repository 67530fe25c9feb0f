"""Reader for the IDX format used by (Fashion-)MNIST, strict about truncation and magic numbers.

Format (http://yann.lecun.com/exdb/mnist/): 2 zero bytes, a type byte (0x08 = uint8), a dimension count,
then one big-endian uint32 per dimension, then the data. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from genattr.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# Largest payload we accept (Fashion-MNIST train images are 47 MB). Guards against gzip bombs.
MAX_IDX_BYTES = 512 * 1024 * 1024


def _read_bytes(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=fh) as gz:
                    data = gz.read(MAX_IDX_BYTES + 1)
            else:
                data = fh.read(MAX_IDX_BYTES + 1)
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot decompress/read IDX file ({exc}); the file is corrupt or truncated, "
                        "re-download or reinstall the dataset") from exc
    if len(data) > MAX_IDX_BYTES:
        raise DataError(f"{path}: decompresses to more than {MAX_IDX_BYTES} bytes; refusing (possible gzip bomb)")
    return data


def parse_idx(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse an in-memory IDX blob into an array, validating header and length."""
    if len(data) < 4:
        raise DataError(f"{source}: too short to be an IDX file ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataError(f"{source}: wrong magic number {data[:4].hex()} (expected 0000 + type + ndim); "
                        "this is not an IDX file")
    dtype = np.dtype(_DTYPES[data[2]])
    ndim = data[3]
    if ndim == 0 or ndim > 4:
        raise DataError(f"{source}: implausible dimension count {ndim} in IDX header")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        raise DataError(f"{source}: IDX payload is {got} bytes but header {shape} needs {expected}; "
                        "the file is truncated or corrupt")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read a (possibly gzipped) IDX file. Raises FileNotFoundError or DataError."""
    path = Path(path)
    return parse_idx(_read_bytes(path), source=str(path))
