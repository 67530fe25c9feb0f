"""Engines, transactions and migrations: SQLite by default, PostgreSQL by URL.

* SQLite (``$GENATTR_HOME/registry.db``): WAL journal (readers never wait for the writer), foreign keys ON,
  a busy timeout, and transactions begun by us (pysqlite's own handling would commit DDL implicitly): plain
  ``BEGIN`` to read, ``BEGIN IMMEDIATE`` to write, so a writer takes the write lock up front and a busy
  database fails after the timeout instead of deadlocking a read-then-write upgrade.
* PostgreSQL (``postgresql+psycopg://…``): a connect timeout and a lock timeout, so a server that is down or
  a table another session holds locked is an error after seconds, not a hang.

Every database error that means "cannot reach or lock the database" becomes
:class:`~genattr.errors.StorageUnavailableError` with the URL (password hidden) and the driver's reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from genattr.errors import ConfigError, StorageUnavailableError

ENV_URL = "GENATTR_DATABASE_URL"
DEFAULT_FILE = "registry.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_WRITE = "genattr_write"  # execution option marking a write transaction (BEGIN IMMEDIATE on SQLite)
_PG_LOCK_KEY = 0x67656E61  # pg_advisory_xact_lock key serialising concurrent first-time migrations ("gena")


def default_url() -> str:
    """``$GENATTR_DATABASE_URL``, else the SQLite file ``registry.db`` in the genattr home folder
    (``$GENATTR_HOME``, or the checkout holding the zoo). An installed package with neither has no home of its
    own (its "checkout" would be site-packages' parent): then ``~/.genattr/registry.db``."""
    env = os.environ.get(ENV_URL)
    if env:
        return env
    from genattr.paths import home

    root = home()
    if not os.environ.get("GENATTR_HOME") and not (root / "zoo" / "manifest.json").is_file():
        root = Path("~/.genattr").expanduser()
    return f"sqlite:///{root / DEFAULT_FILE}"


def parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise ConfigError(f"not a database URL: {url!r} (expected sqlite:///PATH or postgresql+psycopg://…)") from exc


def display(url: str | URL) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return parse_url(str(url)).render_as_string(hide_password=True)
    except ConfigError:
        return "<invalid URL>"


def make_engine(url: str, *, timeout: float = 5.0, create: bool = True) -> Engine:
    u = parse_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(u, timeout, create)
    if backend == "postgresql":
        return _postgres_engine(u, timeout)
    try:
        return create_engine(u, pool_pre_ping=True)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"cannot use database URL {display(u)}: {exc}") from exc


def _sqlite_engine(u: URL, timeout: float, create: bool) -> Engine:
    db = u.database or ""
    if db and db != ":memory:" and not db.startswith("file:"):
        if create:
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        elif not Path(db).expanduser().is_file():  # connecting would create an empty file
            raise ConfigError(f"no registry database at {db}; run `genattr registry init` (or pass --db)")
    engine = create_engine(u, connect_args={"timeout": timeout, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            cur.execute("PRAGMA foreign_keys = ON")
            if db and db != ":memory:":
                cur.execute("PRAGMA journal_mode = WAL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    return engine


def _postgres_engine(u: URL, timeout: float) -> Engine:
    try:
        engine = create_engine(u, pool_pre_ping=True, connect_args={"connect_timeout": max(1, round(timeout))})
    except (sa_exc.NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"PostgreSQL needs the psycopg driver (pip install 'genattr[postgres]'): {exc}") from exc
    lock_ms = int(timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # A session-level setting, outside any transaction (the URL's own options, e.g. search_path, stay).
        was = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET lock_timeout = {lock_ms}")
        dbapi_conn.autocommit = was

    return engine


def unavailable(url: str, exc: BaseException) -> StorageUnavailableError:
    reason = _first_line(getattr(exc, "orig", None) or exc)
    low = reason.lower()
    if "locked" in low or "lock timeout" in low or "could not obtain lock" in low or "busy" in low:
        what = "is locked by another writer; retry later"
    else:
        what = "cannot be reached (is the server running and the URL right?)"
    return StorageUnavailableError(f"registry database {display(url)} {what}: {reason}")


class Database:
    """An engine plus transactions that commit on success and roll back on any error."""

    def __init__(self, url: str, *, timeout: float = 5.0, create: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url, timeout=timeout, create=create)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(**{_WRITE: True}), expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction. Lock/connection failures → StorageUnavailableError; uniqueness races →
        ConfigError; everything else (our own GenattrErrors included) propagates after the rollback."""
        try:
            with (self._write if write else self._read).begin() as s:
                yield s
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            raise unavailable(self.url, exc) from exc
        except sa_exc.IntegrityError as exc:
            raise ConfigError(f"conflicts with a registered record: {_first_line(exc.orig)}") from exc

    @contextmanager
    def connection(self, *, write: bool = True) -> Iterator[Any]:
        """A transaction on a bare connection (migrations)."""
        try:
            with self.engine.execution_options(**{_WRITE: write}).begin() as conn:
                if write and self.backend == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
                yield conn
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            raise unavailable(self.url, exc) from exc

    def dispose(self) -> None:
        self.engine.dispose()


def _first_line(exc: Any) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# --- migrations (Alembic, configured in code: no alembic.ini at run time) ---------------------------------------
def alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # the package ships at least 0001
    return head


def current_revision(conn: Any) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from genattr.registry.schema import VERSION_TABLE

    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision in one transaction (a no-op when it is there already)."""
    from alembic import command

    head = head_revision()
    with db.connection(write=False) as conn:  # the usual case, and it needs no write lock
        if current_revision(conn) == head:
            return
    with db.connection() as conn:  # re-checked under the lock: another process may have just migrated
        if current_revision(conn) != head:
            command.upgrade(alembic_config(conn), "head")


def check_current(db: Database) -> None:
    """For ``create=False``: the schema must exist and be current, else say how to make it so."""
    with db.connection(write=False) as conn:
        rev = current_revision(conn)
    if rev is None:
        raise ConfigError(f"registry database {display(db.url)} is not initialised; run `genattr registry init`")
    if rev != head_revision():
        raise ConfigError(f"registry database {display(db.url)} is at schema revision {rev}, this genattr needs "
                          f"{head_revision()}; run `genattr registry init` to upgrade it")


__all__ = ["DEFAULT_FILE", "ENV_URL", "MIGRATIONS", "Database", "check_current", "current_revision", "default_url",
           "display", "head_revision", "make_engine", "parse_url", "unavailable", "upgrade"]
