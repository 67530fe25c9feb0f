"""Shared fixtures for the ledger tests (keys, entries, logs, in-process witnesses)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from genattr.ledger import (
    ALG_COSIGNATURE_V1,
    Entry,
    Policy,
    TransparencyLog,
    Witness,
    WitnessClient,
    commit_seed,
    generate_signer,
    seed_material,
)
from genattr.ledger.note import CosignatureSigner, Ed25519Signer

ORIGIN = "example.com/genattr-test-log"
DATA = Path(__file__).parent / "data"
needs_fork = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs fork()")


def fork_child(target, *args) -> int:
    """Run ``target(*args)`` in a forked child (exit status 1 if it raised) and return its pid. The child must
    never touch a connection the parent opened: close logs before forking."""
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            target(*args)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


@pytest.fixture(scope="session")
def log_key() -> Ed25519Signer:
    key = generate_signer(ORIGIN)
    assert isinstance(key, Ed25519Signer)
    return key


@pytest.fixture(scope="session")
def owner_key() -> Ed25519Signer:
    key = generate_signer("owner.example/alice")
    assert isinstance(key, Ed25519Signer)
    return key


@pytest.fixture(scope="session")
def witness_keys() -> list[CosignatureSigner]:
    keys = [generate_signer(f"witness{i}.example", ALG_COSIGNATURE_V1) for i in range(3)]
    assert all(isinstance(k, CosignatureSigner) for k in keys)
    return keys  # type: ignore[return-value]


@pytest.fixture(scope="session")
def make_entry(owner_key: Ed25519Signer) -> Callable[..., Entry]:
    """make_entry(i) -> a validly signed entry whose output hash is derived from i."""

    def make(i: int, *, owner: Ed25519Signer | None = None, model: bytes = b"\x42" * 32) -> Entry:
        out = hashlib.sha256(f"output-{i}".encode()).digest()
        return Entry.create(
            model_id=model,
            output_hash=out,
            seed_commitment=commit_seed(seed_material(i), b"\x01" * 32),
            owner=owner or owner_key,
            timestamp_ms=1_700_000_000_000 + i,
        )

    return make


@pytest.fixture
def new_log(tmp_path: Path, log_key: Ed25519Signer, owner_key: Ed25519Signer) -> Iterator[
    Callable[..., TransparencyLog]
]:
    opened: list[TransparencyLog] = []

    def make(name: str = "log.db", *, owners: bool = True) -> TransparencyLog:
        log = TransparencyLog.create(tmp_path / name, ORIGIN, log_key.vkey, owners=[owner_key.vkey] if owners else [])
        opened.append(log)
        return log

    yield make
    for log in opened:
        with contextlib.suppress(Exception):
            log.close()


class LogBackend:
    """One log under test on SQLite (a file) or PostgreSQL (a fresh schema), and raw SQL access to it.

    Statements use ``?`` placeholders on both (translated to ``%s`` for psycopg). `tamper` runs statements the
    way an attacker with write access would: drop the append-only triggers, edit, put the triggers back (so
    detection must come from the data, not from the missing triggers)."""

    def __init__(self, kind: str, target: Path | str, log_key: Ed25519Signer, owner_key: Ed25519Signer) -> None:
        self.kind = kind
        self.target = target  # what TransparencyLog.create/open take: a path or a postgresql+psycopg:// URL
        self._log_key, self._owner_key = log_key, owner_key
        self.opened: list[TransparencyLog] = []
        if kind == "postgres":
            import psycopg

            self.integrity_error: type[Exception] = psycopg.errors.IntegrityError
        else:
            self.integrity_error = sqlite3.IntegrityError

    def create(self, *, owners: bool = True) -> TransparencyLog:
        log = TransparencyLog.create(self.target, ORIGIN, self._log_key.vkey,
                                     owners=[self._owner_key.vkey] if owners else [])
        self.opened.append(log)
        return log

    def open(self, **kw) -> TransparencyLog:
        log = TransparencyLog.open(self.target, **kw)
        self.opened.append(log)
        return log

    def connect(self):
        """A raw DB-API connection (autocommit on PostgreSQL: each statement is its own transaction)."""
        if self.kind == "postgres":
            import psycopg

            from genattr.ledger.pg_schema import to_conninfo

            return psycopg.connect(to_conninfo(str(self.target)), autocommit=True)
        return sqlite3.connect(self.target)

    def _q(self, stmt: str) -> str:
        return stmt.replace("?", "%s") if self.kind == "postgres" else stmt

    def sql(self, *statements: str, params: tuple = ()) -> None:
        conn = self.connect()
        try:
            for stmt in statements:
                conn.execute(self._q(stmt), params if "?" in stmt else ())
            conn.commit()
        finally:
            conn.close()

    def query(self, stmt: str, params: tuple = ()) -> list[tuple]:
        conn = self.connect()
        try:
            return [tuple(r) for r in conn.execute(self._q(stmt), params).fetchall()]
        finally:
            conn.close()

    def drop_triggers(self, conn) -> None:
        if self.kind == "postgres":
            rows = conn.execute("SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON t.tgrelid = c.oid "
                                "JOIN pg_namespace n ON c.relnamespace = n.oid "
                                "WHERE n.nspname = current_schema() AND NOT t.tgisinternal").fetchall()
            for name, table in rows:
                conn.execute(f"DROP TRIGGER {name} ON {table}")
        else:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
                conn.execute(f"DROP TRIGGER {name}")

    def restore_triggers(self, conn) -> None:
        if self.kind == "postgres":
            from genattr.ledger.pg_schema import ddl

            stmts = [s for s in ddl() if s.startswith("CREATE TRIGGER")]
        else:
            from genattr.ledger.storage import _triggers

            stmts = _triggers()
        for stmt in stmts:
            conn.execute(stmt)

    def tamper(self, *statements: str, params: tuple = ()) -> None:
        conn = self.connect()
        try:
            self.drop_triggers(conn)
            for stmt in statements:
                conn.execute(self._q(stmt), params if "?" in stmt else ())
            self.restore_triggers(conn)
            conn.commit()
        finally:
            conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def storage_factory(request, tmp_path: Path, log_key: Ed25519Signer, owner_key: Ed25519Signer,
                    monkeypatch) -> Iterator[LogBackend]:
    """The same test on a SQLite file and on a fresh PostgreSQL schema (skipped when no server is reachable,
    outside CI). The PostgreSQL log's signed-checkpoint record goes to tmp_path/state."""
    if request.param == "postgres":
        target: Path | str = request.getfixturevalue("pg_schema")
        monkeypatch.setenv("GENATTR_LOG_STATE_DIR", str(tmp_path / "state"))
    else:
        target = tmp_path / "log.db"
    backend = LogBackend(request.param, target, log_key, owner_key)
    yield backend
    for log in backend.opened:
        with contextlib.suppress(Exception):
            log.close()


@pytest.fixture
def witnesses(tmp_path: Path, log_key: Ed25519Signer, witness_keys: list[CosignatureSigner]) -> Iterator[
    tuple[list[Witness], list[WitnessClient], list]
]:
    """Three in-process witnesses behind FastAPI TestClients (no sockets)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette: "use httpx2" (not a DeprecationWarning subclass)
        from fastapi.testclient import TestClient

        from genattr.ledger.witness_server import create_witness_app

    ws = [Witness(tmp_path / f"witness{i}.db", k, [log_key.vkey]) for i, k in enumerate(witness_keys)]
    apps = [TestClient(create_witness_app(w)) for w in ws]
    clients = [WitnessClient("http://testserver", k.vkey, http=a) for k, a in zip(witness_keys, apps, strict=True)]
    yield ws, clients, apps
    for a in apps:
        a.close()
    for w in ws:
        w.close()


@pytest.fixture
def policy_2of3(log_key: Ed25519Signer, witness_keys: list[CosignatureSigner]) -> Policy:
    return Policy.k_of_n([log_key.vkey], [k.vkey for k in witness_keys], 2)
