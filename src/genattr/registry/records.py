"""What the registry hands out (frozen records), the kinds it knows, and the checks on names and digests.

No SQLAlchemy here: these are the values callers (the unified pipeline, the service, the CLI) see.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genattr.errors import ConfigError, DataError, IntegrityError

MODEL_KINDS = ("zoo", "keyed-user", "fingerprint-instance", "external")
COMPONENT_KINDS = ("classifier", "flipad-detector", "kim-keys", "yu2022-decoder", "yu2022-index", "log-origin")

# The real-data class of closed-set classifiers (same string as genattr.REAL; not imported from the package
# root, whose lazy exports reach torch). It is a candidate label, never a row in `models`.
REAL = "real"
# Verdict answers other than a model name: a model may not be called one of these.
RESERVED_NAMES = frozenset({REAL, "unknown", "ambiguous"})

# URL-, path- and shell-safe names: they appear in `GET /v1/models/{id}` and as CLI arguments.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")

# The file whose sha256 identifies each component kind's directory (None: nothing to hash).
COMPONENT_WEIGHTS: dict[str, str | None] = {
    "classifier": "state.safetensors",
    "flipad-detector": "state.safetensors",
    "kim-keys": "keys.safetensors",
    "yu2022-decoder": "model.safetensors",
    "yu2022-index": "manifest.json",
    "log-origin": None,
}
MODEL_WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class ModelRecord:
    """A registered generator; ``id`` is the sha256 (hex) of its weights file."""

    id: str
    name: str
    kind: str
    architecture: str
    owner: str | None
    created: datetime
    path: str | None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "architecture": self.architecture,
                "owner": self.owner, "created": self.created.isoformat(), "path": self.path, "meta": self.meta}


@dataclass(frozen=True)
class ComponentRecord:
    """An attribution component. ``models``: the model names it covers, in order (a classifier's candidates,
    where ``"real"`` is the real-data class; a detector's one model; a key set's users in key order; the
    instances an index's codes belong to)."""

    id: int
    kind: str
    name: str
    path: str
    sha256: str | None
    models: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "name": self.name, "path": self.path, "sha256": self.sha256,
                "models": list(self.models), "meta": self.meta}


@dataclass(frozen=True)
class CodeRecord:
    """One code registered in a Yu 2022 index: the user, the packed code bits, the instance model if known."""

    user: str
    code: bytes
    model: str | None

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "code": self.code.hex(), "model": self.model}


@dataclass(frozen=True)
class TokenRecord:
    """An API token as stored: its label and times, never the token itself."""

    label: str
    created: datetime
    revoked: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "created": self.created.isoformat(),
                "revoked": self.revoked.isoformat() if self.revoked else None}


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(t: datetime) -> datetime:
    """SQLite hands back naive datetimes (we only ever store UTC); PostgreSQL aware ones in the session zone."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def check_name(name: Any, what: str = "name") -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{what} {name!r} is not valid: 1-128 characters from A-Z a-z 0-9 . _ -, "
                          "starting with a letter or digit")
    return name


def check_kind(kind: str, kinds: tuple[str, ...], what: str) -> str:
    if kind not in kinds:
        raise ConfigError(f"unknown {what} kind {kind!r}; known: {', '.join(kinds)}")
    return kind


def check_sha256(digest: Any) -> str:
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise ConfigError(f"sha256 must be 64 lowercase hex digits, got {str(digest)[:80]!r}")
    return digest


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 hex of a file (hashlib; the zoo's helper lives in a module that can reach torch)."""
    h = hashlib.sha256()
    try:
        with Path(path).open("rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def weights_digest(path: str | Path, weights: str, sha256: str | None, what: str) -> str:
    """The sha256 to record for ``path`` (a directory holding ``weights``, or the file itself): computed when
    not given; when given and the file exists, checked (a mismatch is a tampered or wrong file)."""
    p = Path(path)
    f = p / weights if p.is_dir() else p
    if sha256 is not None:
        check_sha256(sha256)
        if f.is_file() and (got := sha256_file(f)) != sha256:
            raise IntegrityError(f"{what}: {f} has sha256 {got[:16]}…, expected {sha256[:16]}… (corrupt, modified or "
                                 "the wrong file)")
        return sha256
    if not f.is_file():
        raise DataError(f"{what}: {f} not found (pass the sha256, or a path holding {weights})")
    return sha256_file(f)


__all__ = ["COMPONENT_KINDS", "COMPONENT_WEIGHTS", "MODEL_KINDS", "MODEL_WEIGHTS", "REAL", "RESERVED_NAMES",
           "CodeRecord", "ComponentRecord", "ModelRecord", "TokenRecord", "as_utc", "check_kind", "check_name",
           "check_sha256", "sha256_file", "sha256_text", "utcnow", "weights_digest"]
