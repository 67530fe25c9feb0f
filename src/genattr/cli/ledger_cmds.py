"""``genattr log ...`` and ``genattr witness ...``: the tamper-evident generation log from the shell.

Kept in one module (over 400 lines): both command groups share key loading, error handling and output helpers;
each command is a thin call into genattr.ledger.

Register with ``app.add_typer(log_app, name="log")`` and ``app.add_typer(witness_app, name="witness")``.
Every library error becomes one line on stderr and exit code 1 (``GENATTR_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from genattr.cli.common import clean_errors

__all__ = ["log_app", "witness_app"]

log_app = typer.Typer(help="Tamper-evident generation log (RFC 6962 Merkle log, C2SP checkpoints).",
                      no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
witness_app = typer.Typer(help="Run a C2SP tlog-witness that cosigns the log's checkpoints.",
                          no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

F = TypeVar("F", bound=Callable[..., Any])


# -- helpers ---------------------------------------------------------------------------------------------------


def _key_text(value: str) -> str:
    """A key given literally or as a path to a file holding it. A value that is not a key (vkeys contain
    '+') and names no file is a missing key file, said as such."""
    from genattr.ledger import FormatError

    p = Path(value)
    if len(value) < 4096 and p.is_file():
        return _read_key_file(p, "vkey")
    if "+" not in value:
        raise FormatError(f"{value}: no such key file (and not a vkey)")
    return value.strip()


def _read_key_file(path: Path, kind: str) -> str:
    from genattr.ledger import FormatError

    data = path.read_bytes()
    if len(data) > 4096:
        raise FormatError(f"{path}: too large for a {kind} file")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise FormatError(f"{path}: not a {kind} file (not UTF-8 text)") from None


def _check_private_key_file(path: Path, insecure: bool) -> None:
    """Refuse a private key others can read or write (as ssh does), unless --insecure-key."""
    import stat

    from genattr.ledger import FormatError

    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise FormatError(f"{path}: not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077 and not insecure:
        raise FormatError(f"{path}: permissions {mode:04o} are too open (others may read or write this private "
                          f"key); run `chmod 600 {path}`, or pass --insecure-key to use it anyway")


def _signer(path: Path, alg: int, *, insecure: bool = False) -> Any:
    from genattr.ledger.note import signer_from_skey

    _check_private_key_file(path, insecure)
    return signer_from_skey(_read_key_file(path, "skey"), alg=alg)


def _policy(policy: Path | None, log_key: str | None) -> Any:
    from genattr.ledger import FormatError, Policy

    if policy is not None and log_key is not None:
        raise FormatError("give --policy or --log-key, not both (a policy lists its trusted logs)")
    if policy is not None:
        return Policy.parse(policy.read_bytes())
    if log_key is None:
        raise FormatError("give --policy (a c2sp tlog-policy file) or --log-key (the log's vkey)")
    return Policy.k_of_n([_key_text(log_key)], [], 0)


def _vkey(value: str) -> Any:
    from genattr.ledger.note import ALG_ED25519, verifier_from_vkey

    return verifier_from_vkey(_key_text(value), alg=ALG_ED25519)


def _write_new(path: Path, text: str, mode: int) -> None:
    """Create ``path`` with exactly ``mode`` (whatever the umask), never overwriting and never following a
    symlink (O_EXCL refuses an existing name, dangling links included)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits (fine) — or be 000 (then 0o644 stays 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
    finally:
        if fd != -1:
            os.close(fd)


def _open_receipts(path: Path) -> Any:
    """The receipts file, opened for appending (created 0600: receipts open seed commitments)."""
    from genattr.ledger import FormatError

    if path.is_dir():
        raise FormatError(f"--receipts {path} is a directory; give a file path")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o600)
    return os.fdopen(fd, "a", encoding="utf-8")


# -- genattr log -----------------------------------------------------------------------------------------------


@log_app.command("keygen")
@clean_errors
def keygen(
    name: Annotated[str, typer.Argument(help="Key name: the log origin (e.g. example.com/genlog), a witness or "
                                             "owner name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Writes OUT.skey (private, 0600) and OUT.vkey.")],
    kind: Annotated[str, typer.Option(help="log | owner (Ed25519 note keys) or witness (cosignature/v1).")] = "log",
) -> None:
    """Generate a signing key (C2SP signed-note vkey/skey text format)."""
    from genattr.ledger import FormatError
    from genattr.ledger.note import ALG_COSIGNATURE_V1, ALG_ED25519, generate_signer

    algs = {"log": ALG_ED25519, "owner": ALG_ED25519, "witness": ALG_COSIGNATURE_V1}
    if kind not in algs:
        raise FormatError(f"--kind must be one of {', '.join(algs)}")
    signer = generate_signer(name, algs[kind])
    skey, vkey = Path(f"{out}.skey"), Path(f"{out}.vkey")
    for p in (skey, vkey):
        if p.exists() or p.is_symlink():  # is_symlink: a dangling link must not be followed
            raise FormatError(f"{p} already exists; refusing to overwrite a key")
    skey.parent.mkdir(parents=True, exist_ok=True)
    _write_new(skey, signer.skey, 0o600)  # private: owner only
    try:
        _write_new(vkey, signer.vkey, 0o644)  # public: never group/world-writable, even under umask 000
    except BaseException:
        skey.unlink(missing_ok=True)  # no half-made key pair
        raise
    typer.echo(signer.vkey)


@log_app.command("init")
@clean_errors
def init(
    db: Annotated[Path, typer.Argument(help="The log database to create (SQLite).")],
    origin: Annotated[str, typer.Option(help="Log origin, e.g. example.com/genlog (= the log key's name).")],
    log_key: Annotated[str, typer.Option("--log-key", help="The log's vkey, or a .vkey file.")],
    owner: Annotated[list[str] | None, typer.Option("--owner", help="Owner vkey (or file) whose signatures "
                                                                    "entries must carry; repeatable.")] = None,
) -> None:
    """Create an empty log."""
    from genattr.ledger import TransparencyLog

    owners = [_key_text(o) for o in owner or []]
    with TransparencyLog.create(db, origin, _key_text(log_key), owners=owners) as log:
        typer.echo(f"created log {log.origin} at {db} ({len(owners)} owner key(s) registered)")


@log_app.command("append")
@clean_errors
def append(
    db: Annotated[Path, typer.Argument(help="The log database.")],
    images: Annotated[list[Path], typer.Argument(help="Generated image files to log.")],
    owner_key: Annotated[Path, typer.Option("--owner-key", help="The owner's .skey file (signs each entry).")],
    model_id: Annotated[str | None, typer.Option("--model-id", help="Hex SHA-256 of the weights file.")] = None,
    weights: Annotated[Path | None, typer.Option(help="The weights file (its SHA-256 is the model id).")] = None,
    seed: Annotated[str | None, typer.Option(help="Seed used for generation (committed, never stored); "
                                                  "random if omitted.")] = None,
    receipts: Annotated[Path | None, typer.Option(help="Append JSON receipts (seed openings) to this file. "
                                                       "Keep it private.")] = None,
    insecure_key: Annotated[bool, typer.Option("--insecure-key", help="Use a private key file others can read "
                                                                     "or write (refused by default).")] = False,
) -> None:
    """Log already-generated images (one batch, one durable commit)."""
    from genattr.ledger import Entry, FormatError, TransparencyLog, commit_seed, pixel_hash_file, seed_material
    from genattr.ledger.entry import model_id_from_file, new_salt
    from genattr.ledger.hook import Receipt
    from genattr.ledger.note import ALG_ED25519

    if (model_id is None) == (weights is None):
        raise FormatError("give exactly one of --model-id and --weights")
    if model_id is not None:
        try:
            mid = bytes.fromhex(model_id)
        except ValueError:
            mid = b""
        if len(mid) != 32:
            raise FormatError("--model-id must be 64 hex digits (a SHA-256)")
    else:
        assert weights is not None
        mid = model_id_from_file(weights)
    owner = _signer(owner_key, ALG_ED25519, insecure=insecure_key)
    seed_value: int | str = secrets.randbits(63) if seed is None else (int(seed) if seed.isdigit() else seed)
    now = int(time.time() * 1000)
    salts, entries = [], []
    for i, image in enumerate(images):
        salt = new_salt()
        salts.append(salt)
        entries.append(Entry.create(model_id=mid, output_hash=pixel_hash_file(image),
                                    seed_commitment=commit_seed(seed_material(seed_value, i), salt),
                                    owner=owner, timestamp_ms=now))
    # Open the receipts file *before* the commit: a bad path fails here, with nothing committed.
    rf = _open_receipts(receipts) if receipts is not None else None
    try:
        with TransparencyLog.open(db) as log:
            indices = log.append(entries)
        # Committed. From here on nothing may report failure (a retry would log the images twice).
        if rf is not None:
            lines = [json.dumps(Receipt(idx, e.encode(), seed_value, salt, i).to_dict() | {"image": str(images[i])})
                     for i, (idx, e, salt) in enumerate(zip(indices, entries, salts, strict=True))]
            try:
                rf.write("".join(line + "\n" for line in lines))
                rf.flush()
                os.fsync(rf.fileno())
            except OSError as exc:
                from genattr.cli.common import warn

                warn(f"WARNING: the entries ARE committed, but writing {receipts} failed ({exc.strerror or exc}); "
                     "the receipts (seed openings) follow on stderr, keep them private and do NOT re-run append:")
                for line in lines:
                    typer.echo(line, err=True)
    finally:
        if rf is not None:
            with contextlib.suppress(OSError):  # the buffered text of a failed write; reported above
                rf.close()
    for idx, image in zip(indices, images, strict=True):
        typer.echo(f"{idx}\t{image}")


@log_app.command("checkpoint")
@clean_errors
def checkpoint(
    db: Annotated[Path, typer.Argument(help="The log database.")],
    key: Annotated[Path, typer.Option("--key", help="The log's .skey file.")],
    policy: Annotated[Path | None, typer.Option(help="tlog-policy file whose witnesses (with URLs) must cosign "
                                                     "to its quorum.")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the (cosigned) checkpoint here.")] = None,
    insecure_key: Annotated[bool, typer.Option("--insecure-key", help="Use a private key file others can read "
                                                                     "or write (refused by default).")] = False,
) -> None:
    """Sign a checkpoint of everything durably committed; optionally collect witness cosignatures."""
    from genattr.ledger import Policy, TransparencyLog, collect_cosignatures
    from genattr.ledger.note import ALG_ED25519
    from genattr.ledger.witness import witness_clients_from_policy

    signer = _signer(key, ALG_ED25519, insecure=insecure_key)
    with TransparencyLog.open(db, log_key=signer.verifier) as log:
        note = log.sign_checkpoint(signer)
        if policy is not None:
            pol = Policy.parse(policy.read_bytes())
            note = collect_cosignatures(log, note, witness_clients_from_policy(pol), pol)
    if out is not None:
        out.write_text(note, encoding="utf-8")
    typer.echo(note, nl=False)


@log_app.command("prove")
@clean_errors
def prove(
    db: Annotated[Path, typer.Argument(help="The log database.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the .tlog-proof bundle.")],
    index: Annotated[int | None, typer.Option(help="Entry index.")] = None,
    image: Annotated[Path | None, typer.Option(help="Find the entry for this image file instead.")] = None,
) -> None:
    """Export a c2sp.org/tlog-proof bundle for one entry against the latest checkpoint."""
    from genattr.ledger import FormatError, LedgerError, TlogProof, TransparencyLog, merkle, pixel_hash_file

    if (index is None) == (image is None):
        raise FormatError("give exactly one of --index and --image")
    with TransparencyLog.open(db) as log:
        if image is not None:
            hits = log.find(pixel_hash_file(image))
            if not hits:
                raise LedgerError(f"{image} is not in the log (exact pixel hash); see `genattr log audit`")
            index = hits[0]
        assert index is not None
        note = log.latest_checkpoint()
        if note is None:
            raise LedgerError("the log has no checkpoint yet: run `genattr log checkpoint` first")
        cp = log.open_checkpoint(note).checkpoint
        size = cp.size
        if not 0 <= index < size:
            raise LedgerError(f"index {index} is not covered by the latest checkpoint (size {size})")
        data = log.leaf(index)
        proof = log.inclusion_proof(index, size)
        # Never hand out a proof we have not checked: a tampered node would make it fail here, loudly.
        merkle.verify_inclusion(merkle.leaf_hash(data), index, size, proof, cp.root)
        bundle = TlogProof(index, tuple(proof), note, data)
    out.write_text(bundle.encode(), encoding="utf-8")
    typer.echo(f"wrote proof for index {index} (tree size {size}) to {out}")


@log_app.command("verify")
@clean_errors
def verify(
    bundle: Annotated[Path, typer.Argument(help="A .tlog-proof file.")],
    policy: Annotated[Path | None, typer.Option(help="tlog-policy file: trusted log(s), witnesses, quorum.")] = None,
    log_key: Annotated[str | None, typer.Option("--log-key", help="Trusted log vkey (if no policy).")] = None,
    image: Annotated[Path | None, typer.Option(help="Also check the entry describes this image.")] = None,
    owner: Annotated[list[str] | None, typer.Option("--owner", help="Trusted owner vkey(s).")] = None,
) -> None:
    """Verify a proof bundle offline."""
    from genattr.ledger import pixel_hash_file, verify_bundle

    pol = _policy(policy, log_key)
    owners = [_vkey(o) for o in owner] if owner else None
    h = pixel_hash_file(image) if image is not None else None
    v = verify_bundle(bundle.read_bytes(), pol, output_hash=h, owners=owners)
    cp = v.signed.checkpoint
    who = ", ".join(v.witnesses) or "no witnesses"
    typer.echo(f"OK: entry {v.index} is in {cp.origin} at tree size {cp.size}, cosigned by {who}")
    typer.echo(json.dumps(v.entry.describe(), indent=2))


@log_app.command("audit")
@clean_errors
def audit(
    image: Annotated[Path, typer.Argument(help="The disputed image file.")],
    db: Annotated[Path | None, typer.Option(help="Audit against this log database.")] = None,
    bundle: Annotated[Path | None, typer.Option(help="Or against this .tlog-proof bundle (offline).")] = None,
    policy: Annotated[Path | None, typer.Option(help="tlog-policy file.")] = None,
    log_key: Annotated[str | None, typer.Option("--log-key", help="Trusted log vkey (if no policy).")] = None,
    proof_out: Annotated[Path | None, typer.Option(help="If found, write the proof bundle here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Is this image in the log? Prints "logged at index i" or "not in the log up to checkpoint N"."""
    from genattr.ledger import FormatError, TransparencyLog, audit_bundle, audit_log

    if (db is None) == (bundle is None):
        raise FormatError("give exactly one of --db and --bundle")
    if db is not None:
        pol = _policy(policy, log_key) if (policy or log_key) else None
        with TransparencyLog.open(db, log_key=_vkey(log_key) if log_key else None) as log:
            result = audit_log(image, log, policy=pol)
    else:
        assert bundle is not None
        result = audit_bundle(image, bundle.read_bytes(), _policy(policy, log_key))
    if result.found and proof_out is not None and result.bundle is not None:
        proof_out.write_text(result.bundle.encode(), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        typer.echo(("FOUND: " if result.found else "NOT FOUND: ") + result.message)


@log_app.command("fsck")
@clean_errors
def fsck(
    db: Annotated[Path, typer.Argument(help="The log database.")],
    log_key: Annotated[str | None, typer.Option("--log-key", help="Pin the trusted log vkey.")] = None,
) -> None:
    """Recompute every hash and checkpoint root from the leaf data; fail loudly on any mismatch."""
    from genattr.ledger import TransparencyLog

    with TransparencyLog.open(db, log_key=_vkey(log_key) if log_key else None) as log:
        report = log.fsck()
    typer.echo(f"OK: {report.size} entries, {report.nodes_checked} hashes and "
               f"{report.checkpoints_checked} checkpoint(s) verified")


# -- genattr witness -------------------------------------------------------------------------------------------


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
    try:
        serve_witness(create_witness_app(witness), sock, request_timeout=request_timeout,
                      limit_concurrency=max_connections)
    finally:
        witness.close()
        sock.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(log_app())
