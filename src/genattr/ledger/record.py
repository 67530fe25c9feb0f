"""The signed-checkpoint record: the newest checkpoint a log signed, kept outside its database.

A lost WAL or a restored backup rolls the database back but not this file, so the rollback is detected.
"""

from __future__ import annotations

import hmac
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from genattr.ledger import merkle
from genattr.ledger.checkpoint import Checkpoint
from genattr.ledger.errors import CorruptionError, FormatError, SignatureError

if TYPE_CHECKING:
    from genattr.ledger.log import TransparencyLog

__all__ = ["RECORD_SUFFIX", "fsync_dir", "fsync_file", "record_problem", "signed_record", "write_record"]

#: the newest checkpoint a log signed is also kept in ``<database><RECORD_SUFFIX>`` (outside the database)
RECORD_SUFFIX = ".checkpoint"


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def signed_record(log: TransparencyLog) -> Checkpoint | None:
    """The newest checkpoint this log signed, from its record file (None if there is none)."""
    if log.record_path is None or not (log.record_path.exists() or log.record_path.is_symlink()):
        return None
    try:
        text = log.record_path.read_bytes().decode("utf-8")
        return log.open_checkpoint(text).checkpoint
    except (OSError, UnicodeDecodeError, FormatError, SignatureError) as e:
        raise CorruptionError(f"{log.record_path}: the signed-checkpoint record is unreadable or not signed by "
                              f"this log ({e})") from e


def record_problem(log: TransparencyLog) -> str | None:
    rec = signed_record(log)
    if rec is None:
        return None
    current = log.size
    if rec.size > current:
        return (f"the log was rolled back: it signed a checkpoint of size {rec.size} (recorded in "
                f"{log.record_path}) but the database holds {current} entries (a lost -wal file, a restored "
                "backup or deleted entries); do not append or sign until the lost entries are restored")
    if rec.size and not hmac.compare_digest(merkle.tree_root(rec.size, log._reader()), rec.root):
        return (f"the database's first {rec.size} entries differ from the checkpoint recorded in "
                f"{log.record_path}: signing now would create a split view")
    return None


def write_record(log: TransparencyLog, note: str, size: int) -> None:
    """Durably remember `note` as the newest signed checkpoint (atomic replace, fsynced), never going back."""
    if log.record_path is None:
        return
    rec = signed_record(log)
    if rec is not None and rec.size >= size:
        return
    fd, tmp = tempfile.mkstemp(dir=log.record_path.parent, prefix=f".{log.record_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(note)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, log.record_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(log.record_path.parent)
