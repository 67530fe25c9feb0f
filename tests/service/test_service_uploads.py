"""The upload reader: caps enforced while the body streams in (not after), and images kept in memory only."""

from __future__ import annotations

import asyncio
import tempfile

import numpy as np
import pytest

from genattr.service.errors import ApiError
from genattr.service.uploads import read_uploads
from tests.service.conftest import ScriptedPipeline, png

BOUNDARY = "b0undary"


def _request(chunks: list[bytes], *, content_length: int | None = None):
    """A starlette Request whose body arrives in ``chunks``; ``consumed`` counts the chunks the app pulled."""
    from starlette.requests import Request

    headers = [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    consumed = []

    async def receive():
        i = len(consumed)
        consumed.append(i)
        if i >= len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[i], "more_body": i + 1 < len(chunks)}

    scope = {"type": "http", "method": "POST", "path": "/v1/attribute", "headers": headers, "query_string": b""}
    return Request(scope, receive), consumed


def _body(n_files: int, payload: bytes) -> bytes:
    part = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + payload + b"\r\n"
    return part * n_files + f"--{BOUNDARY}--\r\n".encode()


def _split(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_reads_parts_in_order_in_memory() -> None:
    payloads = [bytes([i]) * (100 + i) for i in range(3)]
    body = b"".join(_body(1, p)[: -len(f"--{BOUNDARY}--\r\n")] for p in payloads) + f"--{BOUNDARY}--\r\n".encode()
    req, _ = _request(_split(body, 7))  # parts straddle chunk boundaries
    ups = asyncio.run(read_uploads(req, max_body_bytes=10_000, max_files=5))
    assert [u.data for u in ups] == payloads and [u.index for u in ups] == [0, 1, 2]


def test_declared_oversize_is_refused_before_reading() -> None:
    req, consumed = _request([b"x" * 10], content_length=10**9)
    with pytest.raises(ApiError) as e:
        asyncio.run(read_uploads(req, max_body_bytes=1000, max_files=5))
    assert e.value.status == 413 and e.value.code == "body_too_large"
    assert consumed == []  # not one chunk read


def test_chunked_oversize_stops_at_the_limit() -> None:
    chunks = _split(_body(1, b"\0" * 100_000), 1000)  # ~100 chunks, no Content-Length
    req, consumed = _request(chunks)
    with pytest.raises(ApiError) as e:
        asyncio.run(read_uploads(req, max_body_bytes=5000, max_files=5))
    assert e.value.code == "body_too_large"
    assert len(consumed) == 6  # the sixth chunk crosses 5000 bytes; the remaining ~95 are never pulled


def test_file_count_stops_reading() -> None:
    chunks = _split(_body(50, b"x" * 10), 64)
    req, consumed = _request(chunks)
    with pytest.raises(ApiError) as e:
        asyncio.run(read_uploads(req, max_body_bytes=10**6, max_files=3))
    assert e.value.code == "too_many_files" and len(consumed) < len(chunks) // 5


def test_uploads_never_touch_the_disk(registry, monkeypatch) -> None:
    """A 2.5 MB upload (Starlette's own form parser would spool anything over 1 MiB to a temporary file)."""
    from fastapi.testclient import TestClient

    from genattr.service import ServiceSettings, create_app

    noise = np.random.default_rng(0).integers(0, 256, (1600, 1600), dtype=np.uint8)
    data = png(noise)
    assert len(data) > 2 * 1024 * 1024
    pipe = ScriptedPipeline((1, 1600, 1600))
    app = create_app(ServiceSettings(max_body_bytes=8 * 1024 * 1024, max_pixels=1600 * 1600), pipeline=pipe,
                     registry=registry)
    with TestClient(app) as c:
        def refuse(*a, **k):
            raise AssertionError("an upload was about to be written to a temporary file")
        for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp"):
            monkeypatch.setattr(tempfile, name, refuse)
        r = c.post("/v1/attribute", files=[("files", ("big.png", data, "image/png"))])
    assert r.status_code == 200, r.text
    assert pipe.calls[0]["shape"] == (1, 1, 1600, 1600)
