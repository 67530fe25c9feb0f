"""``genattr log ...``: the tamper-evident generation log from the shell (``genattr witness`` lives in
:mod:`genattr.cli.witness_cmds`, the helpers both share in :mod:`genattr.cli.ledger_helpers`; ``witness_app``
is re-exported here). Each command is a thin call into genattr.ledger.

Register with ``app.add_typer(log_app, name="log")`` and ``app.add_typer(witness_app, name="witness")``.
Every library error becomes one line on stderr and exit code 1 (``GENATTR_DEBUG=1`` shows the traceback);
``log audit`` exits 3 for NOT FOUND. The log database is ``--db DB`` in every command (the old positional
form still works, with a deprecation note).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from genattr.cli.common import clean_errors
from genattr.cli.ledger_helpers import (
    DB_OPTION,
    DB_POSITIONAL,
    EXIT_NOT_FOUND,
    JSON_OPTION,
    _db,
    _key_text,
    _open_receipts,
    _policy,
    _seeds_for,
    _signer,
    _vkey,
    _write_new,
)
from genattr.cli.witness_cmds import witness_app

__all__ = ["log_app", "witness_app"]

log_app = typer.Typer(help="Tamper-evident generation log (RFC 6962 Merkle log, C2SP checkpoints).",
                      no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

F = TypeVar("F", bound=Callable[..., Any])


# -- genattr log -----------------------------------------------------------------------------------------------


@log_app.command("keygen")
@clean_errors
def keygen(
    name: Annotated[str, typer.Argument(help="Key name: the log origin (e.g. example.com/genlog), a witness or "
                                             "owner name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Writes OUT.skey (private, 0600) and OUT.vkey.")],
    kind: Annotated[str, typer.Option(help="log | owner (Ed25519 note keys) or witness (cosignature/v1).")] = "log",
    as_json: Annotated[bool, JSON_OPTION] = False,
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
    if as_json:
        typer.echo(json.dumps({"name": name, "kind": kind, "vkey": signer.vkey, "skey_file": str(skey),
                               "vkey_file": str(vkey)}, indent=2))
        return
    typer.echo(signer.vkey)


@log_app.command("init")
@clean_errors
def init(
    db_pos: Annotated[str | None, DB_POSITIONAL] = None,
    db: Annotated[str | None, typer.Option("--db", help="The log database to create: a SQLite file, or a "
                                                     "postgresql:// URL (an empty schema).")] = None,
    origin: Annotated[str | None, typer.Option(help="Log origin, e.g. example.com/genlog (= the log key's name).")
                      ] = None,
    log_key: Annotated[str | None, typer.Option("--log-key", help="The log's vkey, or a .vkey file.")] = None,
    owner: Annotated[list[str] | None, typer.Option("--owner", help="Owner vkey (or file) whose signatures "
                                                                    "entries must carry; repeatable.")] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Create an empty log."""
    from genattr.ledger import FormatError, TransparencyLog
    from genattr.ledger.pg_schema import redact_url

    path = _db(db, db_pos, "init")
    if origin is None or log_key is None:
        raise FormatError("give --origin and --log-key")
    owners = [_key_text(o) for o in owner or []]
    with TransparencyLog.create(path, origin, _key_text(log_key), owners=owners) as log:
        if as_json:
            typer.echo(json.dumps({"origin": log.origin, "db": redact_url(str(path)), "owners": len(owners)},
                                  indent=2))
        else:
            typer.echo(f"created log {log.origin} at {redact_url(str(path))} ({len(owners)} owner key(s) registered)")


@log_app.command("append")
@clean_errors
def append(
    images: Annotated[list[Path], typer.Argument(help="Generated image files to log.")],
    owner_key: Annotated[Path, typer.Option("--owner-key", help="The owner's .skey file (signs each entry).")],
    db: Annotated[str | None, DB_OPTION] = None,
    model_id: Annotated[str | None, typer.Option("--model-id", help="Hex SHA-256 of the weights file.")] = None,
    weights: Annotated[Path | None, typer.Option(help="The weights file (its SHA-256 is the model id).")] = None,
    seed: Annotated[list[str] | None, typer.Option(help="The seed of each image, in image order (repeat once per "
                                                        "image; committed, never stored). Default: a fresh "
                                                        "random seed per image.")] = None,
    seeds_from: Annotated[Path | None, typer.Option("--seeds-from", help="Take each image's seed from this index "
                                                    "(samples.json, written by `genattr zoo sample --out-dir`).")
                          ] = None,
    batch_seed: Annotated[str | None, typer.Option("--batch-seed", help="The images are ONE batch sampled from "
                                                   "this seed: each entry commits to it and the image's position."
                                                   )] = None,
    receipts: Annotated[Path | None, typer.Option(help="Append JSON receipts (seed openings) to this file. "
                                                       "Keep it private.")] = None,
    insecure_key: Annotated[bool, typer.Option("--insecure-key", help="Use a private key file others can read "
                                                                     "or write (refused by default).")] = False,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Log already-generated images (one batch, one durable commit), one seed commitment per image.

    The old form `genattr log append DB IMAGE…` (database first) still works but is deprecated."""
    from genattr.ledger import Entry, FormatError, TransparencyLog, commit_seed, pixel_hash_file, seed_material
    from genattr.ledger.entry import model_id_from_file, new_salt
    from genattr.ledger.hook import Receipt
    from genattr.ledger.note import ALG_ED25519
    from genattr.ledger.pg_schema import redact_url

    if db is None and len(images) > 1 and images[0].suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        db, images = _db(None, images[0], "append"), images[1:]
    db = _db(db, None, "append")
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
    seeds, positions = _seeds_for(images, seed, seeds_from, batch_seed)
    now = int(time.time() * 1000)
    salts, entries = [], []
    for image, seed_value, pos in zip(images, seeds, positions, strict=True):
        salt = new_salt()
        salts.append(salt)
        entries.append(Entry.create(model_id=mid, output_hash=pixel_hash_file(image),
                                    seed_commitment=commit_seed(seed_material(seed_value, pos), salt),
                                    owner=owner, timestamp_ms=now))
    # Open the receipts file *before* the commit: a bad path fails here, with nothing committed.
    rf = _open_receipts(receipts) if receipts is not None else None
    try:
        with TransparencyLog.open(db) as log:
            indices = log.append(entries)
        # Committed. From here on nothing may report failure (a retry would log the images twice).
        if rf is not None:
            lines = [json.dumps(Receipt(idx, e.encode(), seeds[i], salt, positions[i]).to_dict()
                                | {"image": str(images[i])})
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
    if as_json:
        typer.echo(json.dumps({"db": redact_url(str(db)), "entries": [{"index": idx, "image": str(image)}
                                                          for idx, image in zip(indices, images, strict=True)]},
                              indent=2))
        return
    for idx, image in zip(indices, images, strict=True):
        typer.echo(f"{idx}\t{image}")


@log_app.command("checkpoint")
@clean_errors
def checkpoint(
    key: Annotated[Path, typer.Option("--key", help="The log's .skey file.")],
    db_pos: Annotated[str | None, DB_POSITIONAL] = None,
    db: Annotated[str | None, DB_OPTION] = None,
    policy: Annotated[Path | None, typer.Option(help="tlog-policy file whose witnesses (with URLs) must cosign "
                                                     "to its quorum.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the (cosigned) checkpoint here.")
                   ] = None,
    insecure_key: Annotated[bool, typer.Option("--insecure-key", help="Use a private key file others can read "
                                                                     "or write (refused by default).")] = False,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Sign a checkpoint of everything durably committed; optionally collect witness cosignatures."""
    from genattr.ledger import Policy, TransparencyLog, collect_cosignatures
    from genattr.ledger.note import ALG_ED25519
    from genattr.ledger.pg_schema import redact_url
    from genattr.ledger.witness import witness_clients_from_policy

    path = _db(db, db_pos, "checkpoint")
    signer = _signer(key, ALG_ED25519, insecure=insecure_key)
    with TransparencyLog.open(path, log_key=signer.verifier) as log:
        note = log.sign_checkpoint(signer)
        if policy is not None:
            pol = Policy.parse(policy.read_bytes())
            note = collect_cosignatures(log, note, witness_clients_from_policy(pol), pol)
    if out is not None:
        out.write_text(note, encoding="utf-8")
    if as_json:
        typer.echo(json.dumps({"db": redact_url(str(path)), "checkpoint": note,
                               "out": None if out is None else str(out)}, indent=2))
        return
    typer.echo(note, nl=False)


@log_app.command("prove")
@clean_errors
def prove(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the .tlog-proof bundle.")],
    db_pos: Annotated[str | None, DB_POSITIONAL] = None,
    db: Annotated[str | None, DB_OPTION] = None,
    index: Annotated[int | None, typer.Option(help="Entry index.")] = None,
    image: Annotated[Path | None, typer.Option(help="Find the entry for this image file instead.")] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Export a c2sp.org/tlog-proof bundle for one entry against the latest checkpoint."""
    from genattr.ledger import FormatError, LedgerError, TlogProof, TransparencyLog, merkle, pixel_hash_file

    path = _db(db, db_pos, "prove")
    if (index is None) == (image is None):
        raise FormatError("give exactly one of --index and --image")
    with TransparencyLog.open(path) as log:
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
    if as_json:
        typer.echo(json.dumps({"index": index, "tree_size": size, "out": str(out)}, indent=2))
        return
    typer.echo(f"wrote proof for index {index} (tree size {size}) to {out}")


@log_app.command("verify")
@clean_errors
def verify(
    bundle: Annotated[Path, typer.Argument(help="A .tlog-proof file.")],
    policy: Annotated[Path | None, typer.Option(help="tlog-policy file: trusted log(s), witnesses, quorum.")] = None,
    log_key: Annotated[str | None, typer.Option("--log-key", help="Trusted log vkey (if no policy).")] = None,
    image: Annotated[Path | None, typer.Option(help="Also check the entry describes this image.")] = None,
    owner: Annotated[list[str] | None, typer.Option("--owner", help="Trusted owner vkey(s).")] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Verify a proof bundle offline."""
    from genattr.ledger import pixel_hash_file, verify_bundle

    pol = _policy(policy, log_key)
    owners = [_vkey(o) for o in owner] if owner else None
    h = pixel_hash_file(image) if image is not None else None
    v = verify_bundle(bundle.read_bytes(), pol, output_hash=h, owners=owners)
    cp = v.signed.checkpoint
    who = ", ".join(v.witnesses) or "no witnesses"
    if as_json:
        typer.echo(json.dumps({"ok": True, "index": v.index, "origin": cp.origin, "tree_size": cp.size,
                               "witnesses": list(v.witnesses), "entry": v.entry.describe()}, indent=2))
        return
    typer.echo(f"OK: entry {v.index} is in {cp.origin} at tree size {cp.size}, cosigned by {who}")
    typer.echo(json.dumps(v.entry.describe(), indent=2))


@log_app.command("audit")
@clean_errors
def audit(
    image: Annotated[Path, typer.Argument(help="The disputed image file.")],
    db: Annotated[str | None, typer.Option("--db", help="Audit against this log database (file or "
                                                     "postgresql:// URL).")] = None,
    bundle: Annotated[Path | None, typer.Option(help="Or against this .tlog-proof bundle (offline).")] = None,
    policy: Annotated[Path | None, typer.Option(help="tlog-policy file.")] = None,
    log_key: Annotated[str | None, typer.Option("--log-key", help="Trusted log vkey (if no policy).")] = None,
    proof_out: Annotated[Path | None, typer.Option(help="If found, write the proof bundle here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Is this image in the log? Prints "logged at index i" or "not in the log up to checkpoint N".

    Exit status: 0 FOUND, 3 NOT FOUND, 1 error (bad input, a log or proof that does not verify)."""
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
    if not result.found:
        raise typer.Exit(EXIT_NOT_FOUND)


@log_app.command("fsck")
@clean_errors
def fsck(
    db_pos: Annotated[str | None, DB_POSITIONAL] = None,
    db: Annotated[str | None, DB_OPTION] = None,
    log_key: Annotated[str | None, typer.Option("--log-key", help="Pin the trusted log vkey.")] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Recompute every hash and checkpoint root from the leaf data; fail loudly on any mismatch."""
    from genattr.ledger import TransparencyLog

    path = _db(db, db_pos, "fsck")
    with TransparencyLog.open(path, log_key=_vkey(log_key) if log_key else None) as log:
        report = log.fsck()
    if as_json:
        typer.echo(json.dumps({"ok": True, "entries": report.size, "hashes": report.nodes_checked,
                               "checkpoints": report.checkpoints_checked}, indent=2))
        return
    typer.echo(f"OK: {report.size} entries, {report.nodes_checked} hashes and "
               f"{report.checkpoints_checked} checkpoint(s) verified")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(log_app())
