"""One error shape for every failure: ``{"error": {"code": …, "message": …}}`` (plus ``file`` when one upload is at
fault), a stable ``code`` per kind of problem, and a log line for each.

Library errors map by class: an unknown name is a 404, bad input a 422, an unreachable or locked database a 503;
anything unexpected is a 500 whose message hides internals (the traceback goes to the log).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from genattr.errors import (
    ConfigError,
    DataError,
    GenattrError,
    IntegrityError,
    StorageUnavailableError,
    UnknownNameError,
)

log = logging.getLogger("genattr.service")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class ApiError(Exception):
    """An error answer: HTTP ``status``, a stable machine ``code`` and a sentence for a person."""

    def __init__(self, status: int, code: str, message: str, *, file: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.file, self.headers = status, code, message, file, headers

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.file is not None:
            err["file"] = self.file
        return {"error": err}


class ErrorDetail(BaseModel):
    code: str
    message: str
    file: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: ErrorDetail


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 413: "body_too_large",
               415: "unsupported_media_type", 422: "validation_error", 503: "unavailable"}


def from_library(exc: GenattrError) -> ApiError:
    """The answer for a library error raised while serving a request."""
    if isinstance(exc, StorageUnavailableError):
        return ApiError(503, "storage_unavailable", f"the model registry database is unavailable: {exc}; "
                                                    "retry later or check GENATTR_DATABASE_URL")
    if isinstance(exc, UnknownNameError):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, IntegrityError):
        return ApiError(409, "integrity_error", str(exc))
    if isinstance(exc, ConfigError | DataError | ValueError):  # ValueError: e.g. attribution's InvalidInputError
        return ApiError(422, "invalid_input", str(exc))
    return ApiError(400, "bad_request", str(exc))


def printable(text: str) -> str:
    """Control characters escaped: paths and file names are the client's, and must not forge log lines."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _respond(request: Request, err: ApiError) -> JSONResponse:
    level = logging.ERROR if err.status >= 500 else logging.WARNING
    log.log(level, "%s %s -> %d %s: %s", request.method, printable(request.url.path)[:200], err.status, err.code,
            printable(err.message))
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def install_handlers(app: FastAPI) -> None:
    """Route every exception a request can raise to the one error shape."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return _respond(request, exc)

    @app.exception_handler(GenattrError)
    async def _library(request: Request, exc: GenattrError) -> JSONResponse:
        return _respond(request, from_library(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return _respond(request, ApiError(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), message,
                                          headers=getattr(exc, "headers", None)))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "request"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _respond(request, ApiError(422, "validation_error", "; ".join(parts) or "invalid request"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s -> 500: unexpected %s", request.method, printable(request.url.path)[:200],
                      type(exc).__name__)
        return JSONResponse(ApiError(500, "internal_error", "internal server error (logged on the server)").body(),
                            status_code=500)


#: OpenAPI ``responses=`` entries documenting the error shape
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorResponse, "description": _HTTP_CODES.get(s, "error")} for s in statuses}


__all__ = ["ApiError", "ErrorResponse", "error_responses", "from_library", "install_handlers", "log"]
