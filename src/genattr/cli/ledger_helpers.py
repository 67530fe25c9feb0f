"""Helpers shared by ``genattr log`` and ``genattr witness``: key files, the database option, seeds, receipts."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import typer


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
    from genattr.ledger.keyfile import read_key_file

    return read_key_file(path, kind)


def _signer(path: Path, alg: int, *, insecure: bool = False) -> Any:
    from genattr.ledger import load_signer

    return load_signer(path, alg=alg, insecure=insecure)


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


def _db(db: str | Path | None, positional: str | Path | None, command: str) -> str | Path:
    """The log database: ``--db DB`` (the one spelling), or the old positional form, still accepted silently
    (hidden from --help; scripts and receipts in the wild use it, and a note would break "one error line")."""
    from genattr.ledger import FormatError

    if db is not None and positional is not None:
        raise FormatError("give the log database once, with --db")
    if db is None and positional is None:
        raise FormatError(f"give the log database with `genattr log {command} --db DB`")
    return db if db is not None else positional  # type: ignore[return-value]


DB_OPTION = typer.Option("--db", help="The log database (a SQLite file, or a postgresql:// URL).")
DB_POSITIONAL = typer.Argument(hidden=True, show_default=False, help="Deprecated: the log database; use --db.")
JSON_OPTION = typer.Option("--json", help="Machine-readable output on stdout.")

# `log audit` exit status: FOUND and NOT FOUND must differ for scripts (`if genattr log audit …; then`).
EXIT_FOUND, EXIT_NOT_FOUND = 0, 3


def _seeds_for(images: list[Path], seed: list[str] | None, seeds_from: Path | None, batch_seed: str | None
               ) -> tuple[list[int | str], list[int]]:
    """(seed, sample position) per image. One seed per image: ``--seed`` repeated in image order, or
    ``--seeds-from`` the index `genattr zoo sample --out-dir` writes; ``--batch-seed S`` for images that are
    ONE batch sampled from S (each commits to S and its position); else a fresh random seed per image."""
    from genattr.ledger import FormatError

    def parse(v: str) -> int | str:
        return int(v) if v.isdigit() else v

    given = [x for x in (seed, seeds_from, batch_seed) if x]
    if len(given) > 1:
        raise FormatError("give one of --seed (one per image), --seeds-from and --batch-seed")
    if batch_seed is not None:
        return [parse(batch_seed)] * len(images), list(range(len(images)))
    if seeds_from is not None:
        try:
            doc = json.loads(seeds_from.read_text(encoding="utf-8"))
            table = {Path(str(r["file"])).name: r["seed"] for r in doc["images"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise FormatError(f"{seeds_from}: not a samples index (expected {{\"images\": [{{\"file\", "
                              f"\"seed\"}}, …]}}, as `genattr zoo sample --out-dir` writes): {exc}") from None
        missing = [str(p) for p in images if p.name not in table]
        if missing:
            raise FormatError(f"{seeds_from} has no seed for {missing[0]}" + (f" (and {len(missing) - 1} more)"
                                                                              if len(missing) > 1 else ""))
        return [table[p.name] for p in images], [0] * len(images)
    if seed:
        if len(seed) != len(images):
            raise FormatError(f"one --seed per image: got {len(seed)} seed(s) for {len(images)} images. Repeat "
                              "--seed in image order, use --seeds-from samples.json (written by `genattr zoo "
                              "sample --out-dir`), or --batch-seed S if the images are ONE batch sampled from S")
        return [parse(v) for v in seed], [0] * len(images)
    return [secrets.randbits(63) for _ in images], [0] * len(images)
