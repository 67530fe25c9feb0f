"""``genattr witness serve``: a C2SP tlog-witness that cosigns the log's checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genattr.cli.common import clean_errors
from genattr.cli.ledger_helpers import _key_text, _signer

__all__ = ["witness_app"]

witness_app = typer.Typer(help="Run a C2SP tlog-witness that cosigns the log's checkpoints.",
                          no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@witness_app.callback()
def _witness_group() -> None:
    """Run a C2SP tlog-witness that cosigns the log's checkpoints."""
    # (A callback keeps `serve` a subcommand even when witness_app is invoked on its own.)


@witness_app.command("serve")
@clean_errors
def serve(
    db: Annotated[Path, typer.Option(help="Witness state database (SQLite; created if missing).")],
    key: Annotated[Path, typer.Option(help="The witness .skey (cosignature/v1, `log keygen --kind witness`).")],
    log: Annotated[list[str], typer.Option("--log", help="Trusted log vkey (or file); repeatable.")],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 7380,
    request_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds a client gets to send a whole request "
                                                                 "(slow clients are disconnected).")] = 10.0,
    max_connections: Annotated[int, typer.Option(min=1, help="Concurrent connections; more get 503.")] = 100,
    insecure_key: Annotated[bool, typer.Option("--insecure-key", help="Use a private key file others can read "
                                                                     "or write (refused by default).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Announce the witness as one JSON line on stdout once "
                                          "it listens.")] = False,
) -> None:
    """Serve the tlog-witness add-checkpoint API (POST /add-checkpoint)."""
    from genattr.ledger.note import ALG_COSIGNATURE_V1
    from genattr.ledger.witness import Witness
    from genattr.ledger.witness_server import bind_socket, create_witness_app, serve_witness

    signer = _signer(key, ALG_COSIGNATURE_V1, insecure=insecure_key)
    logs = [_key_text(v) for v in log]
    # Bind before creating any state: a bad host or a busy port is one error line, with nothing written.
    sock = bind_socket(host, port)
    try:
        witness = Witness(db, signer, logs)
    except BaseException:
        sock.close()
        raise
    typer.echo(f"witness {signer.vkey} listening on http://{host}:{port}", err=True)
    if as_json:
        import json

        typer.echo(json.dumps({"vkey": signer.vkey, "url": f"http://{host}:{port}"}))
    try:
        serve_witness(create_witness_app(witness), sock, request_timeout=request_timeout,
                      limit_concurrency=max_connections)
    finally:
        witness.close()
        sock.close()
