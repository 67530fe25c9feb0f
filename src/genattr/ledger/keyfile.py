"""Reading key files: ``load_signer("keys/owner.skey")`` for the Python API, the same checks the CLI makes.

A private key that group or others may read or write is refused, as ssh does (``insecure=True`` overrides);
a file that is not small UTF-8 text is one clear error.
"""

from __future__ import annotations

import stat
from pathlib import Path

from genattr.ledger.errors import FormatError
from genattr.ledger.note import ALG_ED25519, signer_from_skey

__all__ = ["check_private_key_file", "load_signer", "read_key_file"]

MAX_KEY_FILE = 4096


def read_key_file(path: str | Path, kind: str = "key") -> str:
    """The stripped text of a small key file (a vkey or skey)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) > MAX_KEY_FILE:
        raise FormatError(f"{path}: too large for a {kind} file")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise FormatError(f"{path}: not a {kind} file (not UTF-8 text)") from None


def check_private_key_file(path: str | Path, *, insecure: bool = False) -> None:
    """Refuse a private key file that is not a regular file, or that others may read or write."""
    path = Path(path)
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise FormatError(f"{path}: not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077 and not insecure:
        raise FormatError(f"{path}: permissions {mode:04o} are too open (others may read or write this private "
                          f"key); run `chmod 600 {path}`, or pass --insecure-key to use it anyway")


def load_signer(path: str | Path, *, alg: int = ALG_ED25519, insecure: bool = False):  # -> Ed25519Signer | ...
    """The signer in an ``.skey`` file written by ``genattr log keygen`` (owner and log keys: Ed25519; pass
    ``alg=ALG_COSIGNATURE_V1`` for a witness key)."""
    check_private_key_file(path, insecure=insecure)
    return signer_from_skey(read_key_file(path, "skey"), alg=alg)
