"""PostgreSQL storage: sequencing under a row lock (dense indices from many processes), crashes inside the append
transaction, opening by URL, a server that is down, the schema check, and the signed-checkpoint record.

The shared storage, tamper and crash tests run on PostgreSQL too (`storage_factory` in conftest.py); these are
the PostgreSQL-specific ones. The URL helpers and the "server down" tests need no server.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from tests.ledger.conftest import ORIGIN, LogBackend, fork_child, needs_fork

from genattr.errors import StorageUnavailableError
from genattr.ledger import CorruptionError, StorageError, TransparencyLog, merkle, open_checkpoint
from genattr.ledger.pg_schema import is_postgres_url, record_file_name, redact_url, to_conninfo
from genattr.ledger.pg_storage import PostgresStorage, PostgresUnavailableError

pg_only = pytest.mark.parametrize("storage_factory", ["postgres"], indirect=True)
DOWN = "postgresql+psycopg://genattr:s3cret-pw@127.0.0.1:1/nowhere?connect_timeout=2"  # nothing listens on 1


# -- URLs (no server needed) ---------------------------------------------------------------------------------------


def test_url_helpers() -> None:
    assert is_postgres_url("postgresql://u@h/db") and is_postgres_url("postgresql+psycopg://u@h/db")
    assert is_postgres_url("postgres://h/db") and not is_postgres_url("log.db")
    assert not is_postgres_url(Path("postgresql://h/db"))  # a Path has lost its '//': never treat it as a URL
    assert to_conninfo("postgresql+psycopg://u:p@h:5/db?options=-csearch_path%3Dx") == \
        "postgresql://u:p@h:5/db?options=-csearch_path%3Dx"
    assert redact_url("postgresql+psycopg://u:secret@h:5/db") == "postgresql+psycopg://u:***@h:5/db"
    assert redact_url("postgresql://h/db") == "postgresql://h/db"
    assert redact_url("/tmp/log.db") == "/tmp/log.db"
    a, b = record_file_name("h", 5432, "db", "s1"), record_file_name("h", 5432, "db", "s2")
    assert a != b and a.endswith(".checkpoint") and "/" not in record_file_name("/run/pg", 5432, "d/b", "s")


def test_a_server_that_is_down_is_one_clear_error(tmp_path: Path) -> None:
    for call in (lambda: TransparencyLog.open(DOWN), lambda: PostgresStorage(DOWN)):
        with pytest.raises(PostgresUnavailableError) as info:
            call()
        msg = str(info.value)
        assert msg.startswith("cannot connect to the PostgreSQL log at postgresql+psycopg://genattr:***@127.0.0.1:1")
        assert "s3cret" not in msg and "\n" not in msg
        assert isinstance(info.value, StorageError) and isinstance(info.value, StorageUnavailableError)
    with pytest.raises(StorageError, match="not a valid PostgreSQL URL"):
        TransparencyLog.open("postgresql://h/db?bogus_option=1")


def test_cli_with_a_server_that_is_down() -> None:
    from typer.testing import CliRunner

    from genattr.cli.ledger_cmds import log_app

    r = CliRunner().invoke(log_app, ["fsck", "--db", DOWN])
    assert r.exit_code == 1, r.output
    assert "cannot connect to the PostgreSQL log" in r.output and "Traceback" not in r.output
    assert "s3cret" not in r.output


# -- sequencing ----------------------------------------------------------------------------------------------------


def _single_appender(url: str, k: int, n: int, make_entry) -> None:
    log = TransparencyLog.open(url)
    for j in range(n):
        log.append_one(make_entry(k * 1000 + j))  # one transaction (and one row-lock wait) per entry
    log.close()


@pg_only
@needs_fork
def test_four_processes_append_200_entries_densely(storage_factory: LogBackend, make_entry, log_key) -> None:
    storage_factory.create().close()
    procs, per = 4, 50
    pids = [fork_child(_single_appender, storage_factory.target, k, per, make_entry) for k in range(procs)]
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    log = storage_factory.open(log_key=log_key.vkey)
    assert log.size == procs * per
    assert storage_factory.query("SELECT size FROM log_head") == [(procs * per,)]
    assert [r[0] for r in storage_factory.query("SELECT idx FROM leaves ORDER BY idx")] == list(range(procs * per))
    leaves = [log.leaf(i) for i in range(log.size)]
    assert sorted(leaves) == sorted(make_entry(k * 1000 + j).encode() for k in range(procs) for j in range(per))
    ref = merkle.MemoryTree([merkle.leaf_hash(d) for d in leaves])
    assert log.root() == ref.root(procs * per)  # the stored tree equals a recomputation from the leaf bytes
    assert log.fsck().size == procs * per
    note = log.sign_checkpoint(log_key)
    assert open_checkpoint(note, [log_key.verifier]).checkpoint.root == ref.root(procs * per)
    # Sequenced by the row lock, never by a SEQUENCE (nextval is not transactional: gaps on rollback).
    assert storage_factory.query("SELECT count(*) FROM pg_class WHERE relkind = 'S' "
                                 "AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
                                 ) == [(0,)]


@pg_only
def test_a_failed_append_leaves_no_gap(storage_factory: LogBackend, make_entry) -> None:
    log = storage_factory.create()
    log.append([make_entry(0), make_entry(1)])

    def broken(size, read_nodes):
        raise RuntimeError("the generation server died mid-append")

    with pytest.raises(RuntimeError):
        log.storage.append(broken)
    assert log.append([make_entry(2)]) == [2]  # the index a rolled-back append held is reused: no hole
    log.fsck()


class _StallBeforeCommit:
    """Wraps the storage's connection: just before the size row is raised (leaves and nodes already inserted,
    nothing committed) it tells the parent and sleeps, to be killed there."""

    def __init__(self, conn, wfd: int) -> None:
        self._conn, self._wfd = conn, wfd

    def execute(self, query, *args, **kw):
        if str(query).startswith("UPDATE log_head"):
            os.write(self._wfd, b"inserted\n")
            time.sleep(60)
        return self._conn.execute(query, *args, **kw)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def _append_then_hang(url: str, wfd: int, make_entry) -> None:
    log = TransparencyLog.open(url)
    log.storage._conn = _StallBeforeCommit(log.storage._conn, wfd)  # type: ignore[attr-defined]
    log.append([make_entry(100 + i) for i in range(7)])


@pg_only
@needs_fork
def test_kill_9_inside_the_append_transaction(storage_factory: LogBackend, make_entry, log_key) -> None:
    log = storage_factory.create()
    log.append([make_entry(i) for i in range(5)])
    note = log.sign_checkpoint(log_key)
    log.close()
    rfd, wfd = os.pipe()
    pid = fork_child(_append_then_hang, storage_factory.target, wfd, make_entry)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as r:
        assert r.readline() == b"inserted\n"  # 7 leaves and their nodes are in, uncommitted, the row lock held
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    t0 = time.monotonic()
    with TransparencyLog.open(storage_factory.target, log_key=log_key.vkey) as log:
        assert log.size == 5  # nothing partial: the server rolled the transaction back
        assert log.append([make_entry(50)]) == [5]  # the lock was released at once, the index is not skipped
        assert time.monotonic() - t0 < 10
        report = log.fsck()
        assert report.size == 6 and report.checkpoints_checked == 1
        assert log.sign_checkpoint(log_key) != note


# -- opening, creating, connection loss ----------------------------------------------------------------------------


@pg_only
def test_create_and_open_validation(storage_factory: LogBackend, log_key, make_entry) -> None:
    url = storage_factory.target
    with pytest.raises(StorageError, match=r"no log at .*run `genattr log init`"):
        TransparencyLog.open(url)
    storage_factory.sql("CREATE TABLE unrelated (x INTEGER)")
    with pytest.raises(StorageError, match="not empty; refusing"):
        storage_factory.create()
    with pytest.raises(CorruptionError, match="not a genattr log"):
        TransparencyLog.open(url)
    storage_factory.sql("DROP TABLE unrelated")
    storage_factory.create().close()
    with pytest.raises(StorageError, match="not empty; refusing"):  # never initialise over an existing log
        storage_factory.create()
    storage_factory.tamper("UPDATE log_head SET schema_version = 99")
    with pytest.raises(StorageError, match="unsupported log schema version 99"):
        TransparencyLog.open(url)
    storage_factory.tamper("UPDATE log_head SET schema_version = 1, application_id = 7")
    with pytest.raises(CorruptionError, match="not a genattr log"):
        TransparencyLog.open(url)


@pg_only
def test_create_failing_midway_leaves_nothing(storage_factory: LogBackend, log_key) -> None:
    bad = [(b"\x01" * 32, "owner.example/a+00000000+AAAA"), (b"\x01" * 32, "duplicate key id")]
    storage = PostgresStorage(storage_factory.target, create=True)
    with pytest.raises(StorageError, match="owners_pkey"):  # the second owner row violates the primary key
        storage.initialize({"origin": ORIGIN}, bad)
    storage.close()
    assert storage_factory.query("SELECT count(*) FROM pg_class WHERE relnamespace = "
                                 "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())") == [(0,)]
    storage_factory.create().close()  # and a real init works afterwards


@pg_only
def test_session_settings_make_commits_durable(storage_factory: LogBackend) -> None:
    log = storage_factory.create()
    conn = log.storage._conn  # type: ignore[attr-defined]
    assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
    assert conn.execute("SHOW lock_timeout").fetchone()[0] == "1min"
    assert log.storage.integrity_check() == [] and log.storage.schema_problems() == []


@pg_only
def test_a_lost_connection_is_a_storage_error(storage_factory: LogBackend, make_entry) -> None:
    log = storage_factory.create()
    log.append([make_entry(0)])
    pid = log.storage._conn.info.backend_pid  # type: ignore[attr-defined]
    storage_factory.sql("SELECT pg_terminate_backend(?)", params=(pid,))
    with pytest.raises(PostgresUnavailableError):
        log.append([make_entry(1)])
    with storage_factory.open() as again:  # reopening reconnects; nothing was half-written
        assert again.size == 1


@pg_only
def test_proofs_are_single_queries(storage_factory: LogBackend, make_entry) -> None:
    log = storage_factory.create()
    log.append([make_entry(i) for i in range(300)])
    seen: list[str] = []
    real = log.storage._conn  # type: ignore[attr-defined]

    class Spy:
        def execute(self, query, *args, **kw):
            seen.append(str(query))
            return real.execute(query, *args, **kw)

        def __getattr__(self, name):
            return getattr(real, name)

    log.storage._conn = Spy()  # type: ignore[attr-defined]
    log.inclusion_proof(123, 300)
    log.storage._conn = real  # type: ignore[attr-defined]
    assert len([q for q in seen if "FROM nodes" in q]) == 1


# -- the signed-checkpoint record ----------------------------------------------------------------------------------


@pg_only
def test_record_catches_a_restored_old_backup(storage_factory: LogBackend, make_entry, log_key, tmp_path) -> None:
    """The PostgreSQL analogue of the lost -wal file: the database goes back to an older state (a restored
    backup, a failover to a lagging replica, deleted rows). fsck of the database alone says OK; the record of
    the newest signed checkpoint, kept outside the database, says "rolled back"."""
    log = storage_factory.create()
    assert log.record_path is not None and log.record_path.parent == tmp_path / "state"
    log.append([make_entry(i) for i in range(30)])
    note = log.sign_checkpoint(log_key)
    assert log.record_path.read_text() == note
    log.close()
    storage_factory.tamper("DELETE FROM cosignatures", "DELETE FROM checkpoints", "DELETE FROM nodes",
                           "DELETE FROM leaves", "UPDATE log_head SET size = 0")  # as it was before the appends
    with pytest.raises(CorruptionError, match="rolled back: it signed a checkpoint of size 30"):
        storage_factory.open()
    with storage_factory.open(check=False) as rolled:
        assert rolled.size == 0
        with pytest.raises(CorruptionError, match="rolled back"):
            rolled.fsck()
        with pytest.raises(CorruptionError, match="rolled back"):
            rolled.sign_checkpoint(log_key)
    # A new log in the same place would look like the same rollback: init refuses while the record lies there.
    storage_factory.sql(*[f"DROP TABLE {t} CASCADE" for t in ("log_head", "meta", "leaves", "lookup",
                                                              "lookup_progress", "nodes", "checkpoints",
                                                              "cosignatures", "owners", "witness_state")])
    with pytest.raises(StorageError, match="would look like a rollback"):
        storage_factory.create()


@pg_only
def test_record_path_can_be_given_explicitly(storage_factory: LogBackend, make_entry, log_key, tmp_path) -> None:
    rec = tmp_path / "elsewhere" / "my-log.checkpoint"
    rec.parent.mkdir()
    log = TransparencyLog.create(storage_factory.target, ORIGIN, log_key.vkey, record_path=rec)
    log.append([make_entry(0)])
    note = log.sign_checkpoint(log_key)
    log.close()
    assert rec.read_text() == note and not list((tmp_path / "state").glob("*.checkpoint"))
    with TransparencyLog.open(storage_factory.target, record_path=rec) as again:
        assert again.record_path == rec and again.signed_record().size == 1  # type: ignore[union-attr]


# -- the CLI with a URL --------------------------------------------------------------------------------------------


@pg_only
def test_cli_walkthrough_on_postgres(storage_factory: LogBackend, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from genattr.cli.ledger_cmds import log_app

    runner = CliRunner()

    def cli(*args, code: int = 0):
        r = runner.invoke(log_app, [str(a) for a in args])
        assert r.exit_code == code, (r.output, r.exception)
        return r

    k = tmp_path / "keys"
    k.mkdir()
    cli("keygen", ORIGIN, "--out", k / "log")
    cli("keygen", "owner.example/alice", "--out", k / "owner", "--kind", "owner")
    url = storage_factory.target
    out = cli("init", "--db", url, "--origin", ORIGIN, "--log-key", k / "log.vkey", "--owner", k / "owner.vkey")
    assert "created log" in out.output and "genattr:***@" in out.output and ":genattr@" not in out.output
    imgs = []
    for i in range(3):
        imgs.append(tmp_path / f"{i}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(imgs[-1])
    out = cli("append", "--db", url, *imgs, "--owner-key", k / "owner.skey", "--model-id", "ab" * 32, "--json")
    assert [e["index"] for e in json.loads(out.output)["entries"]] == [0, 1, 2]
    assert cli("checkpoint", "--db", url, "--key", k / "log.skey").output.startswith(f"{ORIGIN}\n3\n")
    cli("prove", "--db", url, "--image", imgs[1], "--out", tmp_path / "p.proof")
    out = cli("verify", tmp_path / "p.proof", "--log-key", k / "log.vkey", "--image", imgs[1])
    assert out.output.startswith(f"OK: entry 1 is in {ORIGIN} at tree size 3")
    assert cli("audit", imgs[2], "--db", url, "--log-key", k / "log.vkey").output.startswith("FOUND: logged at index 2")
    assert cli("fsck", "--db", url, "--log-key", k / "log.vkey").output.startswith("OK: 3 entries")
    storage_factory.tamper("DELETE FROM leaves WHERE idx = 1")
    r = cli("checkpoint", "--db", url, "--key", k / "log.skey", code=1)
    assert "refusing to sign" in r.output and "Traceback" not in r.output
    r = cli("fsck", "--db", url, code=1)
    assert "fsck failed" in r.output and "Traceback" not in r.output
