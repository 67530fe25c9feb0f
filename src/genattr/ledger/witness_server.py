"""HTTP front end of a tlog-witness (FastAPI). Imported only by whoever serves a witness.

Hardening for an Internet-facing witness (`serve_witness`): every connection has a *request deadline* —
a client must deliver a complete request within ``request_timeout`` seconds of connecting (or of its
previous response), else the connection is closed; slow-loris clients cannot hold connections. The body is
read with a bound on size and time; a client that disconnects mid-body is dropped quietly (no traceback in
the log). ``limit_concurrency`` caps simultaneous connections (the rest get 503).
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from genattr.ledger.errors import FormatError
from genattr.ledger.note import CosignatureSigner, Verifier
from genattr.ledger.witness import MAX_REQUEST_BYTES, Witness

__all__ = ["BODY_TIMEOUT", "bind_socket", "build_witness_server", "create_witness_app", "serve_witness"]

#: seconds the add-checkpoint handler waits for the rest of a body (the connection deadline is separate)
BODY_TIMEOUT = 10.0

_ORIGIN_HASH = re.compile(r"[0-9a-f]{64}")


def create_witness_app(
    witness: Witness | None = None,
    *,
    db_path: str | Path | None = None,
    key: CosignatureSigner | None = None,
    logs: Iterable[str | Verifier] = (),
) -> FastAPI:
    """Build the witness app from a `Witness`, or from (state db path, cosigner key, trusted log vkeys).

    Routes (submission and monitoring prefix = the app root):
      POST /add-checkpoint                 tlog-witness add-checkpoint
      GET  /{sha256(origin) hex}/checkpoint  latest cosigned checkpoint for that log
    """
    if witness is None:
        if db_path is None or key is None:
            raise TypeError("create_witness_app needs a Witness or db_path and key")
        witness = Witness(db_path, key, logs)
    app = FastAPI(title="genattr tlog witness", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.witness = witness

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        body = b""
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                async for chunk in request.stream():  # bounded read: never buffer an arbitrarily large body
                    body += chunk
                    if len(body) > MAX_REQUEST_BYTES:
                        return Response("request body is too large\n", status_code=400, media_type="text/plain")
        except ClientDisconnect:  # the client went away mid-body: nobody to answer, nothing to log
            return Response(status_code=400)
        except TimeoutError:
            return Response("request body too slow\n", status_code=408, media_type="text/plain")
        result = await run_in_threadpool(witness.add_checkpoint, body)  # sqlite + Ed25519 are blocking
        # Exact Content-Type (a 409 must be "text/x.tlog.size", without a charset parameter added for us).
        return Response(result.body, status_code=result.status, headers={"content-type": result.content_type})

    @app.get("/{origin_hash}/checkpoint")
    async def get_checkpoint(origin_hash: str) -> Response:
        if not _ORIGIN_HASH.fullmatch(origin_hash):
            return Response("not found\n", status_code=404, media_type="text/plain")
        result = await run_in_threadpool(witness.get_checkpoint, origin_hash)
        return Response(result.body, status_code=result.status, headers={"content-type": result.content_type})

    @app.get("/")
    async def info() -> Response:
        return Response(f"genattr tlog witness\n{witness.vkey}\n", media_type="text/plain")

    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket for ``host:port``; FormatError/OSError (one clean line) on a bad address."""
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise FormatError(f"port must be between 0 and 65535, got {port!r}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise FormatError(f"cannot resolve host {host!r}: {e}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def _deadline_protocol(request_timeout: float) -> type:
    """uvicorn's h11 protocol with a per-request deadline (uvicorn has none before a request completes)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class DeadlineH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(request_timeout, self._expire)

        def _expire(self) -> None:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # the next request on a kept-alive connection gets a fresh deadline

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            super().connection_lost(exc)

    return DeadlineH11Protocol


def build_witness_server(app: FastAPI, *, request_timeout: float = 10.0, limit_concurrency: int | None = 100,
                         log_level: str = "warning") -> Any:
    """A ``uvicorn.Server`` for ``app`` with the hardening described in the module docstring."""
    import uvicorn

    config = uvicorn.Config(app, http=_deadline_protocol(request_timeout), log_level=log_level,
                            limit_concurrency=limit_concurrency, timeout_keep_alive=5,
                            h11_max_incomplete_event_size=16 * 1024)
    return uvicorn.Server(config)


def serve_witness(app: FastAPI, sock: socket.socket, *, request_timeout: float = 10.0,
                  limit_concurrency: int | None = 100, log_level: str = "warning") -> None:
    """Serve ``app`` on an already bound socket until interrupted (see the module docstring)."""
    build_witness_server(app, request_timeout=request_timeout, limit_concurrency=limit_concurrency,
                         log_level=log_level).run(sockets=[sock])
