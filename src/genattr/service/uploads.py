"""Reading a multipart upload into memory, never onto disk, with the body and file-count caps enforced while the
bytes stream in.

Starlette's own form parser spools every file over 1 MiB to a temporary file; uploads here are images a user
asked about, which must not land on the server's disk. So the body is fed to python-multipart's push parser chunk
by chunk: a ``Content-Length`` over the cap is refused before anything is read, a chunked body as soon as the
running count passes it, and the request is refused at the first part past ``max_files``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from genattr.service.errors import ApiError
from genattr.service.settings import MIB

FIELD = "files"


@dataclass
class Upload:
    """One uploaded file: its position in the request, the name the client gave it, and its bytes."""

    index: int
    filename: str
    content_type: str | None
    data: bytes = b""

    def ref(self) -> dict[str, object]:
        return {"index": self.index, "filename": self.filename}


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    upload: Upload | None = None


def _human(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n} bytes"


def body_too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"request body exceeds the limit of {_human(limit)}; send fewer or "
                                           "smaller images per request")


class _Collector:
    """python-multipart callbacks that keep the parts named ``files`` in memory, in order."""

    def __init__(self, max_files: int) -> None:
        self.max_files = max_files
        self.uploads: list[Upload] = []
        self.part: _Part | None = None
        self.open_parts = 0
        self._name = b""
        self._value = b""

    def on_part_begin(self) -> None:
        self.part = _Part()
        self.open_parts += 1

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        assert self.part is not None
        self.part.headers[self._name.strip().lower()] = self._value.strip()
        self._name = self._value = b""

    def on_headers_finished(self) -> None:
        assert self.part is not None
        _, opts = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        name = opts.get(b"name")
        if name is None:
            raise ApiError(400, "bad_multipart", "a multipart part has no Content-Disposition name; send images "
                                                 f"in the form field {FIELD!r}")
        name_s = name.decode("utf-8", "replace")
        if name_s != FIELD:
            raise ApiError(400, "unexpected_field", f"unexpected form field {name_s[:64]!r}; send images in the "
                                                    f"form field {FIELD!r} (repeat it for several images)")
        if len(self.uploads) >= self.max_files:
            raise ApiError(413, "too_many_files", f"more than {self.max_files} images in one request; split them "
                                                  "over several requests")
        filename = opts.get(b"filename", b"").decode("utf-8", "replace") or f"file-{len(self.uploads)}"
        ctype = self.part.headers.get(b"content-type")
        self.part.upload = Upload(len(self.uploads), filename[:255], ctype.decode("latin-1") if ctype else None)
        self.uploads.append(self.part.upload)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        assert self.part is not None
        self.part.chunks.append(bytes(data[start:end]))

    def on_part_end(self) -> None:
        assert self.part is not None and self.part.upload is not None
        self.part.upload.data = b"".join(self.part.chunks)
        self.part = None
        self.open_parts -= 1


async def read_uploads(request: Request, *, max_body_bytes: int, max_files: int) -> list[Upload]:
    """The images of a ``multipart/form-data`` request (field ``files``, in upload order), held in memory."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the images as multipart/form-data in the field "
                                                      f"{FIELD!r} (e.g. curl -F {FIELD}=@image.png …)")
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "bad_multipart", "multipart/form-data without a boundary parameter")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_body_bytes:
        raise body_too_large(max_body_bytes)  # before reading a single byte
    collector = _Collector(max_files)
    callbacks = {name: getattr(collector, name) for name in (
        "on_part_begin", "on_header_field", "on_header_value", "on_header_end", "on_headers_finished",
        "on_part_data", "on_part_end")}
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_body_bytes:
                raise body_too_large(max_body_bytes)
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise ApiError(400, "bad_multipart", f"malformed multipart body ({exc})") from None
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client closed the connection during the upload") from None
    if collector.open_parts:
        raise ApiError(400, "bad_multipart", "the multipart body ends inside a part (truncated upload?)")
    if not collector.uploads:
        raise ApiError(400, "no_files", f"no images in the request; send one or more in the form field {FIELD!r}")
    return collector.uploads


__all__ = ["FIELD", "Upload", "body_too_large", "read_uploads"]
