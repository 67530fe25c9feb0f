"""``genattr log ...`` and ``genattr witness ...``: the tamper-evident generation log from the shell.

Register with ``app.add_typer(log_app, name="log")`` and ``app.add_typer(witness_app, name="witness")``.
Every library error becomes one line on stderr and exit code 1 (``GENATTR_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

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
    """A key given literally or as a path to a file holding it."""
    p = Path(value)
    if len(value) < 4096 and p.is_file():
        return p.read_text(encoding="utf-8").strip()
    return value.strip()


def _signer(path: Path, alg: int) -> Any:
    from genattr.ledger.note import signer_from_skey

    return signer_from_skey(path.read_text(encoding="utf-8").strip(), alg=alg)


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


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never overwrite, never world-readable
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")


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
    if vkey.exists():
        raise FormatError(f"{vkey} already exists; refusing to overwrite a key")
    skey.parent.mkdir(parents=True, exist_ok=True)
    _write_private(skey, signer.skey)
    vkey.write_text(signer.vkey + "\n", encoding="utf-8")
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
    owner = _signer(owner_key, ALG_ED25519)
    seed_value: int | str = secrets.randbits(63) if seed is None else (int(seed) if seed.isdigit() else seed)
    now = int(time.time() * 1000)
    salts, entries = [], []
    for i, image in enumerate(images):
        salt = new_salt()
        salts.append(salt)
        entries.append(Entry.create(model_id=mid, output_hash=pixel_hash_file(image),
                                    seed_commitment=commit_seed(seed_material(seed_value, i), salt),
                                    owner=owner, timestamp_ms=now))
    with TransparencyLog.open(db) as log:
        indices = log.append(entries)
    if receipts is not None:
        with open(receipts, "a", encoding="utf-8") as f:
            for i, (idx, e, salt) in enumerate(zip(indices, entries, salts, strict=True)):
                rec = Receipt(idx, e.encode(), seed_value, salt, i).to_dict() | {"image": str(images[i])}
                f.write(json.dumps(rec) + "\n")
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
) -> None:
    """Sign a checkpoint of everything durably committed; optionally collect witness cosignatures."""
    from genattr.ledger import Policy, TransparencyLog, collect_cosignatures
    from genattr.ledger.note import ALG_ED25519
    from genattr.ledger.witness import witness_clients_from_policy

    signer = _signer(key, ALG_ED25519)
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
    port: Annotated[int, typer.Option(help="Port.")] = 7380,
) -> None:
    """Serve the tlog-witness add-checkpoint API (POST /add-checkpoint)."""
    from genattr.ledger.note import ALG_COSIGNATURE_V1
    from genattr.ledger.witness import Witness
    from genattr.ledger.witness_server import create_witness_app

    signer = _signer(key, ALG_COSIGNATURE_V1)
    witness = Witness(db, signer, [_key_text(v) for v in log])
    app = create_witness_app(witness)
    import uvicorn

    typer.echo(f"witness {signer.vkey} listening on http://{host}:{port}", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(log_app())
