"""API tokens: created once, verified, revoked, stored only as sha256 — on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from genattr.errors import ConfigError, UnknownNameError
from genattr.registry import TOKEN_PREFIX, Registry


def _everything_stored(reg: Registry) -> str:
    """Every value of every row of every table in the registry's schema, as text."""
    from genattr.registry.schema import Base

    parts = []
    with reg._db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


def test_create_verify_revoke(reg: Registry) -> None:
    t1, t2 = reg.create_token("ci"), reg.create_token("web")
    assert t1 != t2 and t1.startswith(TOKEN_PREFIX) and len(t1) >= 40
    assert reg.verify_token(t1) and reg.verify_token(t2)
    for bad in ("", "gat_", t1 + "x", t1[:-1], "Bearer " + t1, TOKEN_PREFIX + "a" * 500, None, 42):
        assert not reg.verify_token(bad)  # type: ignore[arg-type]
    reg.revoke_token("ci")
    assert not reg.verify_token(t1) and reg.verify_token(t2)
    reg.revoke_token("ci")  # revoking twice is harmless
    tokens = {t.label: t for t in reg.list_tokens()}
    assert set(tokens) == {"ci", "web"} and tokens["ci"].revoked is not None and tokens["web"].revoked is None
    with pytest.raises(ConfigError, match="exists"):
        reg.create_token("ci")  # labels are never reused, even after revocation
    with pytest.raises(UnknownNameError):
        reg.revoke_token("nobody")
    with pytest.raises(ConfigError, match="not valid"):
        reg.create_token("has space")


def test_tokens_are_hashed_at_rest(reg: Registry, url: str) -> None:
    token = reg.create_token("ci")
    stored = _everything_stored(reg)
    assert hashlib.sha256(token.encode()).hexdigest() in stored  # the hash is there …
    assert token not in stored and token[len(TOKEN_PREFIX):] not in stored  # … the token is not
    if url.startswith("sqlite"):  # nor anywhere in the database files (main file, WAL)
        db = Path(url.removeprefix("sqlite:///"))
        for f in db.parent.glob(db.name + "*"):
            assert token[len(TOKEN_PREFIX):].encode() not in f.read_bytes()
