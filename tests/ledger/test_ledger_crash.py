"""Crash safety (kill -9 at random moments) and multi-process appends, on SQLite and PostgreSQL.

Children are forked (no interpreter start-up per trial) and must never touch a connection opened by the
parent: the parent closes its log before every fork. The lost-WAL test is SQLite's alone: a PostgreSQL
server's WAL is not the client's to lose (test_pg_storage.py replays the analogue, a restored old backup).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
from tests.ledger.conftest import fork_child, needs_fork

from genattr.ledger import (
    CorruptionError,
    TransparencyLog,
    leaf_hash,
    open_checkpoint,
    verify_consistency,
    verify_inclusion,
)

pytestmark = needs_fork

TRIALS = 20


def _appender(path: Path | str, wfd: int, make_entry, log_key, seed: int) -> None:
    rng = random.Random(seed)
    log = TransparencyLog.open(path)
    n = seed * 100_000
    while True:
        batch = rng.randint(1, 12)
        log.append([make_entry(n + j) for j in range(batch)])
        n += batch
        if rng.random() < 0.4:
            note = log.sign_checkpoint(log_key)
            # A checkpoint counts as "returned" once this write happens; writes below PIPE_BUF are atomic.
            os.write(wfd, (json.dumps(note) + "\n").encode())


def test_kill_9_at_random_moments(storage_factory, make_entry, log_key) -> None:
    storage_factory.create().close()
    path = storage_factory.target
    rng = random.Random(1234)
    returned: list[str] = []
    sizes = []
    def trial(seed: int, delay: float) -> None:
        rfd, wfd = os.pipe()
        pid = fork_child(_appender, path, wfd, make_entry, log_key, seed)
        os.close(wfd)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), "the appender died on its own: " + str(status)
        with os.fdopen(rfd, "rb") as r:
            returned.extend(json.loads(line) for line in r.read().decode().splitlines())
        # The log reopens (root recomputed against the newest stored checkpoint) and verifies completely.
        with TransparencyLog.open(path, log_key=log_key.vkey) as log:
            log.fsck()
            size, root = log.size, log.root()
            sizes.append(size)
            # Every checkpoint ever handed out is still consistent with the current tree.
            for note in returned:
                cp = open_checkpoint(note, [log_key.verifier]).checkpoint
                assert cp.size <= size
                if cp.size:
                    verify_consistency(cp.size, size, log.consistency_proof(cp.size, size), cp.root, root)
                    i = cp.size - 1
                    verify_inclusion(leaf_hash(log.leaf(i)), i, cp.size, log.inclusion_proof(i, cp.size), cp.root)

    for t in range(TRIALS):
        trial(t + 1, rng.uniform(0.002, 0.12))
    # On a loaded machine a child may be killed before it is scheduled at all; a few longer trials make sure
    # the run also covers kills after committed appends and returned checkpoints.
    for t in range(20):
        if returned and sizes[-1] > 0:
            break
        trial(TRIALS + t + 1, 0.5)
    assert sizes == sorted(sizes) and sizes[-1] > 0  # nothing committed was ever lost
    assert returned, "no trial lived long enough to return a checkpoint; lengthen the delays"


def _worker(path: Path | str, k: int, batches: int, make_entry, log_key) -> None:
    log = TransparencyLog.open(path)
    for b in range(batches):
        log.append([make_entry(k * 1000 + b * 10 + j) for j in range(3)])
        if b % 4 == 3:
            log.sign_checkpoint(log_key)
    log.close()


def test_concurrent_processes_append_densely(storage_factory, make_entry, log_key) -> None:
    storage_factory.create().close()
    path = storage_factory.target
    procs, batches = 4, 12
    pids = [fork_child(_worker, path, k, batches, make_entry, log_key) for k in range(procs)]
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    with TransparencyLog.open(path, log_key=log_key.vkey) as log:
        report = log.fsck()
        assert report.size == procs * batches * 3
        got = sorted(log.leaf(i) for i in range(log.size))
        want = sorted(make_entry(k * 1000 + b * 10 + j).encode()
                      for k in range(procs) for b in range(batches) for j in range(3))
        assert got == want  # nothing lost, nothing duplicated
        assert report.checkpoints_checked >= 1


def _sign_and_hang(path: Path, wfd: int, make_entry, log_key) -> None:
    log = TransparencyLog.open(path)
    log.append([make_entry(i) for i in range(30)])
    note = log.sign_checkpoint(log_key)
    os.write(wfd, (json.dumps(note) + "\n").encode())  # published
    time.sleep(60)  # killed here: the entries are committed, but only in log.db-wal


def test_kill_9_then_lost_wal_is_a_detected_rollback(tmp_path: Path, new_log, make_entry, log_key) -> None:
    """Issue 13 item 6: kill -9, then the -wal file is lost. The 30 committed entries and the published
    checkpoint are gone from the database; the log must say so instead of "OK: 0 entries" and must not sign."""
    new_log().close()
    path = tmp_path / "log.db"
    rfd, wfd = os.pipe()
    pid = fork_child(_sign_and_hang, path, wfd, make_entry, log_key)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as r:
        published = json.loads(r.readline().decode())
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert open_checkpoint(published, [log_key.verifier]).checkpoint.size == 30
    wal = Path(f"{path}-wal")
    assert wal.exists()
    wal.unlink()
    Path(f"{path}-shm").unlink(missing_ok=True)
    with pytest.raises(CorruptionError, match="rolled back: it signed a checkpoint of size 30"):
        TransparencyLog.open(path)
    with TransparencyLog.open(path, check=False) as log:
        assert log.size == 0
        with pytest.raises(CorruptionError, match="rolled back"):
            log.fsck()
        with pytest.raises(CorruptionError, match="rolled back"):
            log.sign_checkpoint(log_key)
        assert log.storage.latest_checkpoint() is None
