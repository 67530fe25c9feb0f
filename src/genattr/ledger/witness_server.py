"""HTTP front end of a tlog-witness (FastAPI). Imported only by whoever serves a witness."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from genattr.ledger.note import CosignatureSigner, Verifier
from genattr.ledger.witness import MAX_REQUEST_BYTES, Witness

__all__ = ["create_witness_app"]

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
        async for chunk in request.stream():  # bounded read: never buffer an arbitrarily large body
            body += chunk
            if len(body) > MAX_REQUEST_BYTES:
                return Response("request body is too large\n", status_code=400, media_type="text/plain")
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
