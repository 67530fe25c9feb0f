"""The :class:`Registry`: models, attribution components and API tokens in one SQL database.

Every public write is one transaction (all or nothing); reads see a consistent snapshot. Records come back
as frozen dataclasses, never live ORM objects, so callers cannot write by accident or touch a closed session.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from genattr.errors import ConfigError, UnknownNameError
from genattr.registry import components as comps
from genattr.registry.db import Database, check_current, default_url, display, upgrade
from genattr.registry.records import (
    COMPONENT_KINDS,
    MODEL_KINDS,
    MODEL_WEIGHTS,
    RESERVED_NAMES,
    CodeRecord,
    ComponentRecord,
    ModelRecord,
    TokenRecord,
    as_utc,
    check_kind,
    check_name,
    check_sha256,
    sha256_text,
    utcnow,
    weights_digest,
)
from genattr.registry.schema import ApiToken, Component, Model, Yu2022Index

TOKEN_PREFIX = "gat_"  # recognisable in logs and secret scanners; the rest is 256 random bits


def _model_record(m: Model) -> ModelRecord:
    return ModelRecord(id=m.id, name=m.name, kind=m.kind, architecture=m.architecture, owner=m.owner,
                       created=as_utc(m.created), path=m.path, meta=dict(m.meta or {}))


class Registry:
    """The model registry database. ``Registry.open()`` uses ``$GENATTR_DATABASE_URL`` or the SQLite file
    ``$GENATTR_HOME/registry.db``, creating and migrating it on first use."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.url = db.url

    @classmethod
    def open(cls, url: str | None = None, *, create: bool = True, timeout: float = 5.0) -> Registry:
        """Open (``create``: and create or upgrade to the newest schema) the registry at ``url``.

        ``timeout``: seconds to wait for a lock (SQLite busy timeout, PostgreSQL lock and connect timeout)
        before :class:`~genattr.errors.StorageUnavailableError`."""
        db = Database(url or default_url(), timeout=timeout, create=create)
        try:
            upgrade(db) if create else check_current(db)
        except BaseException:
            db.dispose()
            raise
        return cls(db)

    @property
    def display_url(self) -> str:
        """The URL with the password hidden."""
        return display(self.url)

    @property
    def backend(self) -> str:
        return self._db.backend

    def close(self) -> None:
        self._db.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _session(self, *, write: bool = False) -> Any:
        return self._db.session(write=write)

    # --- models ------------------------------------------------------------------------------------------------------
    def add_model(self, *, name: str, kind: str, architecture: str, path: str | None = None,
                  sha256: str | None = None, owner: str | None = None, meta: dict | None = None) -> ModelRecord:
        """Register a generator. Its id is the sha256 of ``path/model.safetensors`` (or of ``path`` when it is
        the file), computed unless ``sha256`` is given — and checked against the file when both are."""
        with self._session(write=True) as s:
            return _model_record(self._add_model(s, name=name, kind=kind, architecture=architecture, path=path,
                                                 sha256=sha256, owner=owner, meta=meta))

    def _add_model(self, s: Session, *, name: str, kind: str, architecture: str, path: str | None,
                   sha256: str | None, owner: str | None, meta: dict | None) -> Model:
        check_name(name, "model name")
        if name in RESERVED_NAMES:
            raise ConfigError(f"{name!r} is a reserved answer (real, unknown, ambiguous); pick another model name")
        check_kind(kind, MODEL_KINDS, "model")
        if not isinstance(architecture, str) or not 0 < len(architecture) <= 64:
            raise ConfigError(f"model {name}: architecture must be 1-64 characters")
        if owner is not None and (not isinstance(owner, str) or len(owner) > 256):
            raise ConfigError(f"model {name}: owner must be text of at most 256 characters")
        if path is None and sha256 is None:
            raise ConfigError(f"model {name}: give the path of its weights or their sha256")
        digest = weights_digest(path, MODEL_WEIGHTS, sha256, f"model {name}") if path is not None \
            else check_sha256(sha256)
        if (dup := s.scalar(select(Model).where(Model.name == name))) is not None:
            raise ConfigError(f"a model named {name!r} is already registered (id {dup.id[:12]})")
        if (dup := s.get(Model, digest)) is not None:
            raise ConfigError(f"these weights (sha256 {digest[:12]}…) are already registered as {dup.name!r}")
        if comps.find_component(s, name) is not None:
            raise ConfigError(f"{name!r} is already a component's name; components and models need distinct names")
        m = Model(id=digest, name=name, kind=kind, architecture=architecture, owner=owner, created=utcnow(),
                  path=str(Path(path).resolve()) if path is not None else None, meta=dict(meta or {}))
        s.add(m)
        s.flush()
        return m

    def get_model(self, id_or_name: str) -> ModelRecord:
        """By name, id (sha256 hex) or an unambiguous id prefix of ≥ 8 digits; unknown → UnknownNameError."""
        with self._session() as s:
            return _model_record(comps.get_model(s, id_or_name))

    def list_models(self, kind: str | None = None) -> list[ModelRecord]:
        if kind is not None:
            check_kind(kind, MODEL_KINDS, "model")
        with self._session() as s:
            q = select(Model).order_by(Model.name)
            if kind is not None:
                q = q.where(Model.kind == kind)
            return [_model_record(m) for m in s.scalars(q)]

    def remove_model(self, id_or_name: str) -> None:
        """Remove a model no component covers (remove those components first)."""
        with self._session(write=True) as s:
            m = comps.get_model(s, id_or_name)
            users = comps.component_users_of(s, m.id)
            if users:
                raise ConfigError(f"model {m.name} is covered by {', '.join(users)}; remove "
                                  f"{'that component' if len(users) == 1 else 'those components'} first")
            s.delete(m)

    def model_components(self, id_or_name: str) -> list[str]:
        """Names of the components that cover a model."""
        with self._session() as s:
            return comps.component_users_of(s, comps.get_model(s, id_or_name).id)

    # --- components --------------------------------------------------------------------------------------------------
    def add_component(self, *, kind: str, name: str, path: str, sha256: str | None = None,
                      models: Sequence[str] = (), meta: dict | None = None) -> ComponentRecord:
        """Register an attribution component (see :mod:`genattr.registry.components` for ``models`` and the
        kind-specific ``meta`` keys). ``sha256`` is computed from the kind's file under ``path`` when omitted."""
        with self._session(write=True) as s:
            return comps.to_record(comps.add_component(s, kind=kind, name=name, path=path, sha256=sha256,
                                                       models=models, meta=meta))

    def get_component(self, name: str) -> ComponentRecord:
        with self._session() as s:
            return comps.to_record(comps.get_component(s, name))

    def list_components(self, kind: str | None = None) -> list[ComponentRecord]:
        if kind is not None:
            check_kind(kind, COMPONENT_KINDS, "component")
        with self._session() as s:
            q = select(Component).order_by(Component.kind, Component.name)
            if kind is not None:
                q = q.where(Component.kind == kind)
            return [comps.to_record(c) for c in s.scalars(q)]

    def remove_component(self, name: str) -> None:
        with self._session(write=True) as s:
            comps.remove(s, comps.get_component(s, name))

    def add_codes(self, index: str, codes: Iterable[tuple[str, bytes, str | None]]) -> int:
        """Record ``(user, packed code, instance model or None)`` in a yu2022-index; returns how many were new."""
        with self._session(write=True) as s:
            idx = comps.get_component(s, index, "yu2022-index")
            assert isinstance(idx, Yu2022Index)
            return comps.add_codes(s, idx, codes)

    def list_codes(self, index: str) -> list[CodeRecord]:
        with self._session() as s:
            idx = comps.get_component(s, index, "yu2022-index")
            assert isinstance(idx, Yu2022Index)
            return comps.codes_of(idx)

    # --- shipped assets ----------------------------------------------------------------------------------------------
    def import_shipped(self, root: Path | None = None) -> dict[str, int]:
        """Register the zoo and every shipped model, key set, fingerprint decoder/index and detector under
        ``root`` (a genattr checkout; default: :mod:`genattr.paths`) in ONE transaction. Idempotent. Returns
        counts of what was added per kind plus ``unchanged``."""
        from genattr.registry.shipped import import_shipped

        with self._session(write=True) as s:
            return import_shipped(self, s, root)

    # --- API tokens ---------------------------------------------------------------------------------------------------
    def create_token(self, label: str) -> str:
        """A new bearer token under a unique label; the plaintext is returned once and only its sha256 stored."""
        check_name(label, "token label")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._session(write=True) as s:
            if s.scalar(select(ApiToken).where(ApiToken.label == label)) is not None:
                raise ConfigError(f"a token labelled {label!r} exists (labels are never reused); pick another label")
            s.add(ApiToken(label=label, token_sha256=sha256_text(token), created=utcnow(), revoked=None))
        return token

    def verify_token(self, token: str) -> bool:
        """True for a token created here and not revoked."""
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 256:
            return False
        digest = sha256_text(token)
        with self._session() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_sha256 == digest))
            # the lookup is by hash of a 256-bit secret; compare_digest keeps the final check constant-time anyway
            return row is not None and row.revoked is None and hmac.compare_digest(row.token_sha256, digest)

    def revoke_token(self, label: str) -> None:
        with self._session(write=True) as s:
            row = s.scalar(select(ApiToken).where(ApiToken.label == label))
            if row is None:
                raise UnknownNameError(f"no token labelled {label!r}")
            if row.revoked is None:
                row.revoked = utcnow()

    def list_tokens(self) -> list[TokenRecord]:
        with self._session() as s:
            return [TokenRecord(t.label, as_utc(t.created), as_utc(t.revoked) if t.revoked else None)
                    for t in s.scalars(select(ApiToken).order_by(ApiToken.label))]


__all__ = ["TOKEN_PREFIX", "Registry"]
