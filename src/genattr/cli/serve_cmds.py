"""`genattr serve`: the HTTP service and its web page (FastAPI under uvicorn).

    genattr serve                                  # http://127.0.0.1:8000 — the page at /, the API docs at /docs
    genattr serve --host 0.0.0.0 --port 9000 --db postgresql+psycopg://user:pw@db/genattr

The registry is ``--db``, else ``GENATTR_DATABASE_URL``, else the SQLite file under ``GENATTR_HOME``. Reads need
no token; registry writes need ``Authorization: Bearer <token>`` (``genattr registry token create LABEL``).
Limits come from the options below or ``GENATTR_SERVICE_*`` variables (docs/service.md).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from genattr.cli.common import clean_errors, console, fail, warn

serve_app = typer.Typer(help="The HTTP service and web page.")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@serve_app.command("serve")
@clean_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    db: Annotated[str | None, typer.Option("--db", help="Registry database URL (default: GENATTR_DATABASE_URL, "
                                                        "else the SQLite file under GENATTR_HOME).")] = None,
    max_body_mb: Annotated[float | None, typer.Option(min=0.001, help="Request body limit in MiB [32].")] = None,
    max_files: Annotated[int | None, typer.Option(min=1, help="Images per request [256].")] = None,
    max_pixels: Annotated[int | None, typer.Option(min=1, help="Pixels per image, from its header [4096²].")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="Attributions at the same time [1].")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level (debug, info, warning, error).")] = "info",
) -> None:
    """Serve attribution over HTTP with a web page: POST images, get one verdict per image."""
    import logging

    if log_level.lower() not in LOG_LEVELS:
        raise fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}", 2)

    import uvicorn

    from genattr.errors import StorageUnavailableError
    from genattr.service import ServiceSettings, create_app

    settings = ServiceSettings.from_env(
        database_url=db, max_body_bytes=None if max_body_mb is None else int(max_body_mb * 1024 * 1024),
        max_files=max_files, max_pixels=max_pixels, workers=workers)
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from genattr.registry import Registry

        with Registry.open(settings.database_url) as reg:
            where, n_models, n_comps = reg.display_url, len(reg.list_models()), len(reg.list_components())
        console.print(f"registry: {where} — {n_models} models, {n_comps} attribution components")
        if n_comps == 0:
            warn("no attribution components registered: every answer will be 'unknown'. Register the shipped "
                 "models first: genattr registry import-shipped")
    except StorageUnavailableError as exc:
        warn(f"the registry is unavailable ({exc}); serving anyway: requests answer 503 until it is back")
    if not _loopback(host):
        warn(f"listening on {host}: reachable from other machines. Reads and attribution are open to them; "
             "registry writes need a bearer token.")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    console.print(f"genattr service on http://{shown}:{port}/ (web page) — API docs at /docs — Ctrl-C stops")
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level.lower())


__all__ = ["serve", "serve_app"]
