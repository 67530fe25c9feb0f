"""Issue 13 regressions for the log: atomic init (3), no signing of trees fsck rejects (5), the signed-checkpoint
record against rollback (6), receipts never failing a committed append (7), fsck schema/owner checks (8),
witness server hardening (10) and key-file handling (11). Each test reproduces the reported failure first.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.ledger.conftest import ORIGIN
from typer.testing import CliRunner

from genattr.cli.ledger_cmds import log_app, witness_app
from genattr.ledger import CorruptionError, FormatError, StorageError, TransparencyLog, generate_signer, merkle
from genattr.ledger.log import RECORD_SUFFIX

runner = CliRunner()


def cli(*args: object, code: int = 0, app=log_app):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == code, (r.output, r.exception)
    return r


def _image(path: Path, seed: int) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    k = tmp_path / "keys"
    k.mkdir()
    cli("keygen", ORIGIN, "--out", k / "log")
    cli("keygen", "owner.example/alice", "--out", k / "owner", "--kind", "owner")
    return k


# -- item 3: init is atomic --------------------------------------------------------------------------------------


def test_init_with_a_mistyped_owner_key_leaves_nothing(tmp_path: Path, keys: Path) -> None:
    db = tmp_path / "log.db"
    r = cli("init", db, "--origin", ORIGIN, "--log-key", keys / "log.vkey", "--owner", "typo.vkey", code=1)
    assert "typo.vkey: no such key file" in r.output
    assert not db.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["keys"]  # no log, no temp files
    # the rerun with the right key works (it used to say "already exists" and keep the owner-less log)
    cli("init", db, "--origin", ORIGIN, "--log-key", keys / "log.vkey", "--owner", keys / "owner.vkey")
    with TransparencyLog.open(db) as log:
        assert len(log.owners) == 1


def test_create_failing_midway_leaves_no_file(tmp_path: Path, log_key, owner_key, monkeypatch) -> None:
    from genattr.ledger import storage

    def boom(self, key_id, vkey):
        raise OSError("disk full")

    monkeypatch.setattr(storage.SQLiteStorage, "add_owner", boom)
    with pytest.raises(OSError, match="disk full"):
        TransparencyLog.create(tmp_path / "log.db", ORIGIN, log_key.vkey, owners=[owner_key.vkey])
    assert list(tmp_path.iterdir()) == []


# -- item 5: never sign a tree fsck rejects ------------------------------------------------------------------------


def _sql(db: Path, *statements: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(db)
    for s in statements:
        conn.execute(s, params if "?" in s else ())
    conn.commit()
    conn.close()


def _rebuild_tree(db: Path) -> None:
    """What a careful attacker does after editing leaves: recompute every hash so the tree is self-consistent."""
    conn = sqlite3.connect(db)
    for t in ("leaves_no_update", "nodes_no_delete"):
        conn.execute(f"DROP TRIGGER IF EXISTS {t}")
    rows = conn.execute("SELECT idx, data FROM leaves ORDER BY idx").fetchall()
    tree = merkle.MemoryTree([merkle.leaf_hash(bytes(d)) for _, d in rows])
    for i, _ in rows:
        conn.execute("UPDATE leaves SET hash = ? WHERE idx = ?", (tree.levels[0][i], i))
    conn.execute("DELETE FROM nodes")
    for level in range(1, len(tree.levels)):
        for i, h in enumerate(tree.levels[level]):
            conn.execute("INSERT INTO nodes(id, hash) VALUES (?, ?)", ((level << 56) | i, h))
    conn.commit()
    conn.close()


def _tamper(db: Path, case: str, make_entry) -> None:
    if case == "delete-new-leaf":
        _sql(db, "DROP TRIGGER leaves_no_delete", "DELETE FROM leaves WHERE idx = 7")
    elif case == "delete-old-leaf":
        _sql(db, "DROP TRIGGER leaves_no_delete", "DELETE FROM leaves WHERE idx = 2")
    elif case == "edit-new-leaf":
        _sql(db, "DROP TRIGGER leaves_no_update",
             "UPDATE leaves SET data = substr(data, 1, 60) || x'00' || substr(data, 62) WHERE idx = 9")
    elif case == "edit-new-node":
        _sql(db, "DROP TRIGGER nodes_no_update", "UPDATE nodes SET hash = zeroblob(32) WHERE id = (1 << 56) | 4")
    elif case == "unregistered-signer-rehashed":
        evil = generate_signer("mallory.example/owner")
        data = make_entry(999, owner=evil).encode()
        _sql(db, "DROP TRIGGER leaves_no_update", "UPDATE leaves SET data = ? WHERE idx = 10", params=(data,))
        _rebuild_tree(db)
    elif case == "drop-trigger":
        _sql(db, "DROP TRIGGER checkpoints_no_delete")
    elif case == "foreign-trigger":
        _sql(db, "CREATE TRIGGER sneaky AFTER INSERT ON leaves BEGIN SELECT 1; END")
    elif case == "owners-emptied":
        _sql(db, "DROP TRIGGER owners_no_delete", "DELETE FROM owners")
    elif case == "stray-node":
        _sql(db, "INSERT INTO nodes(id, hash) VALUES ((40 << 56), zeroblob(32))")
    elif case == "lookup-key":
        _sql(db, "DROP TRIGGER leaves_no_update", "UPDATE leaves SET lookup = zeroblob(32) WHERE idx = 11")
    else:  # pragma: no cover
        raise AssertionError(case)


CASES = ["delete-new-leaf", "delete-old-leaf", "edit-new-leaf", "edit-new-node", "unregistered-signer-rehashed",
         "drop-trigger", "foreign-trigger", "owners-emptied", "stray-node", "lookup-key"]


@pytest.mark.parametrize("case", CASES)
def test_checkpoint_refuses_what_fsck_rejects(tmp_path: Path, new_log, make_entry, log_key, case: str) -> None:
    log = new_log()
    log.append([make_entry(i) for i in range(6)])
    log.sign_checkpoint(log_key)
    log.append([make_entry(i) for i in range(6, 12)])
    log.close()
    db = tmp_path / "log.db"
    _tamper(db, case, make_entry)
    with TransparencyLog.open(db, check=False) as log:
        with pytest.raises(CorruptionError):
            log.fsck()
        with pytest.raises(CorruptionError, match=r"refusing to sign|tampered|removed"):
            log.sign_checkpoint(log_key)
        assert log.storage.latest_checkpoint()[0] == 6  # nothing new was signed


def test_cli_checkpoint_refuses_after_a_deleted_leaf(tmp_path: Path, keys: Path) -> None:
    db = tmp_path / "log.db"
    cli("init", db, "--origin", ORIGIN, "--log-key", keys / "log.vkey", "--owner", keys / "owner.vkey")
    imgs = [_image(tmp_path / f"{i}.png", i) for i in range(9)]
    cli("append", db, *imgs, "--owner-key", keys / "owner.skey", "--model-id", "ab" * 32)
    _sql(db, "DROP TRIGGER leaves_no_delete", "DELETE FROM leaves WHERE idx = 7")
    r = cli("checkpoint", db, "--key", keys / "log.skey", code=1)
    assert "refusing to sign" in r.output and "Traceback" not in r.output


# -- item 6: the signed-checkpoint record catches a rollback (lost WAL, restored backup) ----------------------------


def test_lost_wal_is_a_rollback_not_an_empty_log(tmp_path: Path, new_log, make_entry, log_key) -> None:
    log = new_log()
    log.append([make_entry(i) for i in range(30)])
    note = log.sign_checkpoint(log_key)
    record = tmp_path / f"log.db{RECORD_SUFFIX}"
    assert record.read_text() == note
    # While the connection is open the 30 entries live only in log.db-wal: copy the database without it.
    lost = tmp_path / "lost"
    lost.mkdir()
    shutil.copy(tmp_path / "log.db", lost / "log.db")
    shutil.copy(record, lost / f"log.db{RECORD_SUFFIX}")
    log.close()
    with pytest.raises(CorruptionError, match="rolled back: it signed a checkpoint of size 30"):
        TransparencyLog.open(lost / "log.db")
    with TransparencyLog.open(lost / "log.db", check=False) as rolled:
        assert rolled.size == 0  # what used to pass fsck as "OK: 0 entries"
        with pytest.raises(CorruptionError, match="rolled back"):
            rolled.fsck()
        with pytest.raises(CorruptionError, match="rolled back"):
            rolled.sign_checkpoint(log_key)  # used to sign size 0


def test_record_never_goes_back_and_a_fork_is_refused(tmp_path: Path, new_log, make_entry, log_key) -> None:
    log = new_log()
    log.append([make_entry(i) for i in range(5)])
    log.sign_checkpoint(log_key)
    log.append([make_entry(i) for i in range(5, 9)])
    top = log.sign_checkpoint(log_key)
    log.sign_checkpoint(log_key, size=3)  # an older size is a prefix: allowed, the record stays at 9
    record = tmp_path / f"log.db{RECORD_SUFFIX}"
    assert record.read_text() == top
    log.close()
    # A different history under the same name and key (a restored, re-grown backup): a split view.
    os.remove(tmp_path / "log.db")
    db = _fresh(tmp_path, log_key, make_entry, 12)
    with pytest.raises(CorruptionError, match="split view"):
        TransparencyLog.open(db)
    fork = TransparencyLog.open(db, check=False)
    with pytest.raises(CorruptionError, match="split view"):
        fork.sign_checkpoint(log_key)
    assert fork.storage.latest_checkpoint() is None
    fork.close()
    os.remove(db)
    with pytest.raises(StorageError, match="would look like a rollback"):  # init refuses to reuse the record
        TransparencyLog.create(tmp_path / "log.db", ORIGIN, log_key.vkey)


def _fresh(tmp_path: Path, log_key, make_entry, n: int) -> Path:
    other = tmp_path / "other"
    other.mkdir()
    with TransparencyLog.create(other / "log.db", ORIGIN, log_key.vkey) as f:
        f.append([make_entry(100 + i) for i in range(n)])
    shutil.copy(other / "log.db", tmp_path / "log.db")
    return tmp_path / "log.db"


def test_an_unreadable_record_is_corruption(tmp_path: Path, new_log, make_entry, log_key) -> None:
    log = new_log()
    log.append([make_entry(0)])
    log.sign_checkpoint(log_key)
    (tmp_path / f"log.db{RECORD_SUFFIX}").write_bytes(b"\xff garbage")
    with pytest.raises(CorruptionError, match="record is unreadable"):
        log.sign_checkpoint(log_key)


# -- item 7: receipts never turn a committed append into a failure -------------------------------------------------


@pytest.fixture
def logdb(tmp_path: Path, keys: Path) -> Path:
    db = tmp_path / "log.db"
    cli("init", db, "--origin", ORIGIN, "--log-key", keys / "log.vkey", "--owner", keys / "owner.vkey")
    return db


def test_receipts_path_is_checked_before_the_commit(tmp_path: Path, keys: Path, logdb: Path) -> None:
    img = _image(tmp_path / "a.png", 0)
    (tmp_path / "dir").mkdir()
    r = cli("append", logdb, img, "--owner-key", keys / "owner.skey", "--model-id", "ab" * 32,
            "--receipts", tmp_path / "dir", code=1)
    assert "is a directory" in r.output
    with TransparencyLog.open(logdb) as log:
        assert log.size == 0  # nothing committed, so the retry is safe


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_receipt_write_failure_after_commit_is_not_a_failure(tmp_path: Path, keys: Path, logdb: Path) -> None:
    img = _image(tmp_path / "a.png", 0)
    r = runner.invoke(log_app, [str(a) for a in ("append", logdb, img, "--owner-key", keys / "owner.skey",
                                                 "--model-id", "ab" * 32, "--seed", "7", "--receipts", "/dev/full")])
    assert r.exit_code == 0, r.output
    assert "ARE committed" in r.stderr and "do NOT re-run" in " ".join(r.stderr.split())
    rec = json.loads(next(ln for ln in r.stderr.splitlines() if ln.startswith("{")))
    assert rec["index"] == 0 and rec["seed"] == {"type": "int", "value": "7"}  # the openings are not lost
    with TransparencyLog.open(logdb) as log:
        assert log.size == 1


def test_receipts_file_is_private(tmp_path: Path, keys: Path, logdb: Path) -> None:
    img = _image(tmp_path / "a.png", 0)
    cli("append", logdb, img, "--owner-key", keys / "owner.skey", "--model-id", "ab" * 32,
        "--receipts", tmp_path / "r.jsonl")
    assert (tmp_path / "r.jsonl").stat().st_mode & 0o077 == 0


# -- item 8: fsck checks the schema and the owners ------------------------------------------------------------------


def test_fsck_catches_emptied_owners_and_an_unregistered_signer(tmp_path: Path, new_log, make_entry,
                                                                log_key) -> None:
    log = new_log()
    log.append([make_entry(i) for i in range(3)])
    log.close()
    db = tmp_path / "log.db"
    _sql(db, "DROP TRIGGER owners_no_delete", "DELETE FROM owners")
    with TransparencyLog.open(db) as log, pytest.raises(CorruptionError, match="no registered owner keys"):
        log.append([make_entry(3, owner=generate_signer("mallory.example/x"))])  # used to be accepted
    evil = make_entry(4, owner=generate_signer("mallory.example/x")).encode()
    _sql(db, "INSERT INTO leaves(idx, data, hash, lookup) VALUES (3, ?, zeroblob(32), NULL)", params=(evil,))
    _rebuild_tree(db)
    _sql(db, *[f"CREATE TRIGGER {t}_no_{op} BEFORE {op.upper()} ON {t} BEGIN SELECT RAISE(ABORT, "
               f"'{t} is append-only'); END" for t, op in (("owners", "delete"), ("leaves", "update"),
                                                            ("nodes", "delete"))])
    with TransparencyLog.open(db) as log:
        report = log.fsck(raise_on_error=False)
    assert any("owners table is empty" in e for e in report.errors), report.errors


@pytest.mark.parametrize("sql, what", [
    ("DROP TRIGGER leaves_no_update", "trigger leaves_no_update is missing"),
    ("CREATE TRIGGER t AFTER INSERT ON meta BEGIN SELECT 1; END", "foreign trigger t"),
    ("CREATE INDEX i ON leaves(lookup)", "foreign index i"),
])
def test_fsck_checks_the_schema(tmp_path: Path, new_log, make_entry, sql: str, what: str) -> None:
    new_log().close()
    db = tmp_path / "log.db"
    _sql(db, sql)
    with TransparencyLog.open(db) as log, pytest.raises(CorruptionError, match="schema"):
        log.fsck()
    r = cli("fsck", db, code=1)
    with TransparencyLog.open(db) as log:
        assert any(what in e for e in log.fsck(raise_on_error=False).errors)
    assert "Traceback" not in r.output


# -- item 10: witness server --------------------------------------------------------------------------------------


@pytest.fixture
def live_witness(tmp_path: Path, log_key, witness_keys):
    from genattr.ledger import Witness
    from genattr.ledger.witness_server import bind_socket, build_witness_server, create_witness_app

    w = Witness(tmp_path / "w.db", witness_keys[0], [log_key.vkey])
    sock = bind_socket("127.0.0.1", 0)
    server = build_witness_server(create_witness_app(w), request_timeout=0.5, limit_concurrency=20)
    t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = True
    t.join(5)
    sock.close()
    w.close()


def _closed_within(conn: socket.socket, seconds: float) -> bool:
    conn.settimeout(seconds)
    try:
        while conn.recv(4096):
            pass
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_slow_clients_are_disconnected(live_witness: int) -> None:
    held = [socket.create_connection(("127.0.0.1", live_witness)) for _ in range(5)]
    for c in held:
        c.sendall(b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    slow_body = socket.create_connection(("127.0.0.1", live_witness))
    slow_body.sendall(b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nold 0\n")
    t0 = time.monotonic()
    assert all(_closed_within(c, 3) for c in [*held, slow_body])  # used to be held indefinitely
    assert time.monotonic() - t0 < 3
    for c in [*held, slow_body]:
        c.close()


def test_client_disconnect_mid_body_logs_no_traceback(live_witness: int, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        c = socket.create_connection(("127.0.0.1", live_witness))
        c.sendall(b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nold 0\n")
        time.sleep(0.1)
        c.close()
        time.sleep(0.3)
        # the server still answers
        ok = socket.create_connection(("127.0.0.1", live_witness))
        ok.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        ok.settimeout(3)
        assert ok.recv(4096).startswith(b"HTTP/1.1 200")
        ok.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text


def test_serve_rejects_a_bad_port_before_creating_state(tmp_path: Path, keys: Path) -> None:
    cli("keygen", "witness.example", "--out", keys / "w", "--kind", "witness")
    base = ["serve", "--db", tmp_path / "w.db", "--key", keys / "w.skey", "--log", keys / "log.vkey"]
    r = cli(*base, "--port", "99999", code=2, app=witness_app)
    assert "Traceback" not in r.output and not (tmp_path / "w.db").exists()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        r = cli(*base, "--port", busy.getsockname()[1], code=1, app=witness_app)
    finally:
        busy.close()
    assert "error:" in r.output and "Traceback" not in r.output and not (tmp_path / "w.db").exists()


# -- item 11: key files -------------------------------------------------------------------------------------------


def test_world_accessible_private_key_is_refused(tmp_path: Path, keys: Path, logdb: Path) -> None:
    img = _image(tmp_path / "a.png", 0)
    skey = keys / "owner.skey"
    for mode in (0o644, 0o602, 0o640):
        skey.chmod(mode)
        r = cli("append", logdb, img, "--owner-key", skey, "--model-id", "ab" * 32, code=1)
        assert "too open" in r.output and f"{mode:04o}" in r.output
    with TransparencyLog.open(logdb) as log:
        assert log.size == 0
    cli("append", logdb, img, "--owner-key", skey, "--model-id", "ab" * 32, "--insecure-key")
    skey.chmod(0o644)
    r = cli("checkpoint", logdb, "--key", keys / "log.skey")  # 0600 from keygen: fine
    assert r.output.startswith(ORIGIN)


def test_non_utf8_key_file_is_one_error(tmp_path: Path, keys: Path, logdb: Path) -> None:
    bad = tmp_path / "bad.skey"
    bad.write_bytes(b"PRIVATE+KEY+\xff\xfe")
    bad.chmod(0o600)
    r = cli("checkpoint", logdb, "--key", bad, code=1)
    assert "not UTF-8" in r.output and "Traceback" not in r.output
    r = cli("init", tmp_path / "x.db", "--origin", ORIGIN, "--log-key", bad, code=1)
    assert "not UTF-8" in r.output


def test_keygen_modes_ignore_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        cli("keygen", "a.example/k", "--out", tmp_path / "k")
    finally:
        os.umask(old)
    assert (tmp_path / "k.skey").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "k.vkey").stat().st_mode & 0o777 == 0o644  # was 0666 under umask 000


def test_keygen_does_not_follow_a_dangling_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "planted"
    target.parent.mkdir()
    (tmp_path / "k.vkey").symlink_to(target)
    r = cli("keygen", "a.example/k", "--out", tmp_path / "k", code=1)
    assert "already exists" in r.output
    assert not target.exists() and not (tmp_path / "k.skey").exists()


def test_library_key_errors_are_format_errors() -> None:
    from genattr.cli.ledger_cmds import _key_text

    with pytest.raises(FormatError, match="no such key file"):
        _key_text("keys/missing.vkey")
