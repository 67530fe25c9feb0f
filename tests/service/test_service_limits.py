"""Every limit and every class of bad input answers a clear 4xx (or 503) in the one error shape, names the file
at fault, is logged, and never reaches the pipeline."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from genattr.attribution.inputs import InvalidInputError
from genattr.errors import StorageUnavailableError
from tests.service.conftest import ScriptedPipeline, png


def _post(client, *blobs: bytes, names: list[str] | None = None, query: str = ""):
    files = [("files", ((names or [])[i] if names else f"f{i}", b, "application/octet-stream"))
             for i, b in enumerate(blobs)]
    return client.post(f"/v1/attribute{query}", files=files)


def _error(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    assert err["message"]
    return err


def _png_declaring(width: int, height: int) -> bytes:
    """A valid-looking PNG of a few dozen bytes whose header declares width × height pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + \
        chunk(b"IEND", b"")


def _animated(fmt: str) -> bytes:
    frames = [Image.new("L", (8, 8), v) for v in (0, 255)]
    buf = io.BytesIO()
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def test_truncated_png(client, scripted, caplog) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    data = png(noise)
    for cut in (len(data) // 2, 20):
        err = _error(_post(client, png(5), data[:cut], names=["ok.png", "cut.png"]), 422, "corrupt_image")
        assert err["file"] == {"index": 1, "filename": "cut.png"} and "cut.png" in err["message"]
    assert scripted.calls == []
    assert any("corrupt_image" in rec.getMessage() for rec in caplog.records)  # logged


def test_text_file_is_not_an_image(client) -> None:
    err = _error(_post(client, b"hello, I am a text file\n"), 422, "not_an_image")
    assert "PNG" in err["message"]


def test_empty_file(client) -> None:
    _error(_post(client, b""), 422, "empty_file")


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_unsupported_formats(client, fmt) -> None:
    err = _error(_post(client, png(3, fmt=fmt)), 415, "unsupported_format")
    assert fmt in err["message"] and "WEBP" in err["message"]


@pytest.mark.parametrize(("w", "h"), [(200, 200), (60_000, 60_000)])
def test_bomb_declared_in_the_header(client, scripted, w, h) -> None:
    # 200×200 passes Pillow but not our 10 000-pixel limit; 60 000² is past Pillow's own bomb limit as well
    data = _png_declaring(w, h)
    assert len(data) < 100
    err = _error(_post(client, data), 413, "image_too_large")
    assert "decompression bomb" in err["message"]
    assert scripted.calls == []


def test_real_compressed_bomb(client) -> None:
    buf = io.BytesIO()
    Image.new("L", (3000, 3000), 0).save(buf, format="PNG", optimize=True)
    assert len(buf.getvalue()) < 20_000  # 9 Mpx in a few KB
    _error(_post(client, buf.getvalue()), 413, "image_too_large")


def test_too_many_files(client, scripted) -> None:
    err = _error(_post(client, *[png(i) for i in range(5)]), 413, "too_many_files")
    assert "4" in err["message"]
    _error(_post(client, *[png(i) for i in range(3)], query="?deep=true"), 413, "too_many_files")
    assert scripted.calls == []


def test_body_too_large(client) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (8, 8), dtype=np.uint8)
    r = client.post("/v1/attribute", files=[("files", ("big.png", png(noise) + b"\0" * 70_000, "image/png"))])
    _error(r, 413, "body_too_large")


def test_wrong_size_and_colour(client) -> None:
    err = _error(_post(client, png(1, (16, 8)), names=["wide.png"]), 422, "wrong_size")
    assert "16×8" in err["message"] and "8×8" in err["message"]
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200  # red
    _error(_post(client, png(colour)), 422, "wrong_colour")


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animations_are_refused(client, fmt) -> None:
    err = _error(_post(client, _animated(fmt)), 422, "undecodable_image")
    assert "animated" in err["message"]


def test_malformed_requests(client) -> None:
    _error(client.post("/v1/attribute", json={"files": []}), 415, "unsupported_media_type")
    _error(client.post("/v1/attribute", content=b"x", headers={"content-type": "multipart/form-data"}), 400,
           "bad_multipart")
    _error(client.post("/v1/attribute", files=[("file", ("a.png", png(1), "image/png"))]), 400, "unexpected_field")
    _error(client.post("/v1/attribute", data={"other": "1"}, files=[("files", ("a.png", png(1), "image/png"))]),
           400, "unexpected_field")
    b = "XyZ"
    head = (f"--{b}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()
    ctype = {"content-type": f"multipart/form-data; boundary={b}"}
    _error(client.post("/v1/attribute", content=head + png(1), headers=ctype), 400, "bad_multipart")  # no end
    _error(client.post("/v1/attribute", content=f"--{b}--\r\n".encode(), headers=ctype), 400, "no_files")


def test_pipeline_errors(registry) -> None:
    from fastapi.testclient import TestClient

    from genattr.service import ServiceSettings, create_app

    class Failing(ScriptedPipeline):
        def __init__(self, exc: Exception) -> None:
            super().__init__()
            self.exc = exc

        def attribute(self, images, **kw):
            raise self.exc

    for exc, status, code in ((InvalidInputError("values outside [-1, 1]"), 422, "invalid_input"),
                              (RuntimeError("boom"), 500, "internal_error")):
        app = create_app(ServiceSettings(), pipeline=Failing(exc), registry=registry)
        with TestClient(app, raise_server_exceptions=False) as c:
            err = _error(_post(c, png(1)), status, code)
            assert "boom" not in err["message"]  # internals stay in the log


def test_registry_down_is_503(scripted) -> None:
    from fastapi.testclient import TestClient

    from genattr.service import ServiceSettings, create_app

    dead = "postgresql+psycopg://nobody:x@127.0.0.1:1/none"  # nothing listens on port 1
    with TestClient(create_app(ServiceSettings(database_url=dead))) as c:
        for path in ("/healthz", "/v1/models", "/v1/models/x"):
            err = _error(c.get(path), 503, "storage_unavailable")
            assert "unavailable" in err["message"] and "x@" not in err["message"]  # no password in the message
        _error(_post(c, png(1)), 503, "storage_unavailable")
        _error(c.delete("/v1/models/x", headers={"Authorization": "Bearer gat_x"}), 503, "storage_unavailable")


def test_registry_failing_mid_request_is_503(scripted) -> None:
    from fastapi.testclient import TestClient

    from genattr.service import ServiceSettings, create_app

    class Locked:
        def __getattr__(self, name):
            def fail(*a, **k):
                raise StorageUnavailableError("database is locked")
            return fail

    with TestClient(create_app(ServiceSettings(), pipeline=scripted, registry=Locked())) as c:
        _error(c.get("/v1/models"), 503, "storage_unavailable")
        _error(c.post("/v1/models", json={}, headers={"Authorization": "Bearer gat_x"}), 503, "storage_unavailable")
        assert _post(c, png(7)).status_code == 200  # attribution does not need the database once loaded


def test_client_text_cannot_forge_log_lines(client, caplog) -> None:
    # (clients percent-encode CR/LF in file names; other control characters, e.g. terminal escapes, arrive raw)
    r = client.post("/v1/attribute", files=[("files", ("x\x1b[2Jy.png", b"plain text", "text/plain"))])
    assert r.status_code == 422 and "x\x1b[2Jy.png" in r.json()["error"]["message"]  # the answer is JSON: exact
    [line] = [rec.getMessage() for rec in caplog.records if "not_an_image" in rec.getMessage()]
    assert "\x1b" not in line and "x\\x1b[2Jy.png" in line
