"""The database layer: migrations equal the ORM schema, PostgreSQL schemas are respected, defaults, SQLite
pragmas, and a locked or unreachable database as StorageUnavailableError."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from genattr.errors import ConfigError, StorageUnavailableError
from genattr.registry import Registry
from genattr.registry.db import head_revision
from genattr.registry.schema import VERSION_TABLE, Base


def test_migrations_build_exactly_the_orm_schema(reg: Registry) -> None:
    with reg._db.engine.connect() as conn:
        mc = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE, "compare_type": True,
                                                    "compare_server_default": True})
        assert compare_metadata(mc, Base.metadata) == []
        assert mc.get_current_revision() == head_revision() == "0001"


def test_reopening_does_not_migrate_again(url: str) -> None:
    Registry.open(url).close()
    with Registry.open(url) as r, r._db.engine.connect() as conn:
        versions = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    assert versions == [head_revision()]


def test_postgres_tables_land_in_the_test_schema(pg_schema: str) -> None:
    schema = pg_schema.rsplit("search_path%3D", 1)[1]
    with Registry.open(pg_schema) as r, r._db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT table_schema, table_name FROM information_schema.tables "
                                    "WHERE table_name = ANY(:names)"),
                            {"names": [*Base.metadata.tables, VERSION_TABLE]}).all()
    assert {t for s, t in rows if s == schema} == {*Base.metadata.tables, VERSION_TABLE}
    assert all(s == schema for s, _ in rows)  # nothing leaked into public or another schema


def test_sqlite_default_location_and_pragmas(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "new-home"
    monkeypatch.setenv("GENATTR_HOME", str(home))
    monkeypatch.delenv("GENATTR_DATABASE_URL", raising=False)
    with Registry.open() as r:  # creates the folder and the file on first use
        assert r.url == f"sqlite:///{home / 'registry.db'}" and r.backend == "sqlite"
        with r._db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert (home / "registry.db").is_file()


def test_database_url_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("GENATTR_DATABASE_URL", url)
    with Registry.open() as r:
        assert r.url == url
    assert (tmp_path / "env.db").is_file()


def test_create_false_needs_an_initialised_database(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(ConfigError, match="registry init"):
        Registry.open(f"sqlite:///{missing}", create=False)
    assert not missing.exists()  # and did not create an empty one
    sqlite3.connect(tmp_path / "empty.db").close()
    with pytest.raises(ConfigError, match="not initialised"):
        Registry.open(f"sqlite:///{tmp_path / 'empty.db'}", create=False)


def test_bad_urls() -> None:
    with pytest.raises(ConfigError, match="not a database URL"):
        Registry.open("not a url")


def test_sqlite_locked_by_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    url = f"sqlite:///{path}"
    Registry.open(url).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    other.execute("INSERT INTO api_tokens (label, token_sha256, created) VALUES ('x', 'y', '2026-01-01')")
    try:
        with Registry.open(url, timeout=0.2) as r:
            assert r.list_models() == []  # WAL: reading does not wait for the writer
            with pytest.raises(StorageUnavailableError, match="locked by another writer") as err:
                r.add_model(name="g", kind="external", architecture="x", sha256="a" * 64)
            assert str(path) in str(err.value)
            with pytest.raises(StorageUnavailableError):
                r.create_token("ci")
    finally:
        other.execute("ROLLBACK")
        other.close()
    with Registry.open(url) as r:  # nothing half-written, and usable again
        assert r.list_models() == [] and r.list_tokens() == []
        r.add_model(name="g", kind="external", architecture="x", sha256="a" * 64)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_postgres_down() -> None:
    url = f"postgresql+psycopg://u:secret-pw@127.0.0.1:{_closed_port()}/db"
    with pytest.raises(StorageUnavailableError, match="cannot be reached") as err:
        Registry.open(url, timeout=1)
    assert "secret-pw" not in str(err.value) and "127.0.0.1" in str(err.value)


def test_postgres_table_locked(pg_schema: str) -> None:
    with Registry.open(pg_schema, timeout=0.3) as r:
        with r._db.engine.connect() as holder:
            holder.execute(sa.text("LOCK TABLE models IN ACCESS EXCLUSIVE MODE"))
            with pytest.raises(StorageUnavailableError, match="locked"):
                r.add_model(name="g", kind="external", architecture="x", sha256="a" * 64)
            holder.rollback()
        assert r.list_models() == []
        r.add_model(name="g", kind="external", architecture="x", sha256="a" * 64)
        assert [m.name for m in r.list_models()] == ["g"]


def test_concurrent_first_opens_migrate_once(url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def open_and_write(i: int) -> str:
        with Registry.open(url, timeout=10) as r:
            r.create_token(f"t{i}")
            return r.url

    with ThreadPoolExecutor(4) as pool:
        assert len(list(pool.map(open_and_write, range(4)))) == 4
    with Registry.open(url) as r, r._db.engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {VERSION_TABLE}")).scalar_one() == 1
        assert sorted(t.label for t in r.list_tokens()) == ["t0", "t1", "t2", "t3"]
