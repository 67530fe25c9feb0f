"""Hypothesis stateful test: the SQLite-backed log against an in-memory reference tree."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from genattr.ledger import (
    Entry,
    TransparencyLog,
    commit_seed,
    generate_signer,
    leaf_hash,
    open_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from genattr.ledger.merkle import MemoryTree

LOG_KEY = generate_signer("example.com/stateful")
OWNER = generate_signer("owner.example/stateful")


def _entry(i: int) -> bytes:
    return Entry.create(
        model_id=b"\x09" * 32,
        output_hash=hashlib.sha256(i.to_bytes(8, "big")).digest(),
        seed_commitment=commit_seed(b"seed", b"\x00" * 32),
        owner=OWNER,  # type: ignore[arg-type]
        timestamp_ms=i,
    ).encode()


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-stateful-"))
        self.path = self.dir / "log.db"
        self.ref = MemoryTree()
        self.counter = 0
        self.checkpoints: list[str] = []

    @initialize()
    def create(self) -> None:
        self.log = TransparencyLog.create(self.path, LOG_KEY.name, LOG_KEY.vkey, owners=[OWNER.vkey])

    @rule(n=st.integers(1, 40))
    def append(self, n: int) -> None:
        datas = [_entry(self.counter + j) for j in range(n)]
        self.counter += n
        indices = self.log.append(datas)
        assert indices == [self.ref.append(leaf_hash(d)) for d in datas]

    @precondition(lambda self: self.ref.size > 0)
    @rule(data=st.data())
    def inclusion(self, data: st.DataObject) -> None:
        size = data.draw(st.integers(1, self.ref.size))
        index = data.draw(st.integers(0, size - 1))
        proof = self.log.inclusion_proof(index, size)
        assert proof == self.ref.inclusion_proof(index, size)
        verify_inclusion(leaf_hash(self.log.leaf(index)), index, size, proof, self.ref.root(size))

    @precondition(lambda self: self.ref.size > 0)
    @rule(data=st.data())
    def consistency(self, data: st.DataObject) -> None:
        size2 = data.draw(st.integers(1, self.ref.size))
        size1 = data.draw(st.integers(1, size2))
        proof = self.log.consistency_proof(size1, size2)
        assert proof == self.ref.consistency_proof(size1, size2)
        verify_consistency(size1, size2, proof, self.ref.root(size1), self.ref.root(size2))

    @rule()
    def checkpoint(self) -> None:
        note = self.log.sign_checkpoint(LOG_KEY)  # type: ignore[arg-type]
        cp = open_checkpoint(note, [LOG_KEY.verifier]).checkpoint
        assert (cp.size, cp.root) == (self.ref.size, self.ref.root())
        self.checkpoints.append(note)

    @rule()
    def reopen(self) -> None:
        self.log.close()
        del self.log  # so that teardown does not touch a closed log if open() fails
        self.log = TransparencyLog.open(self.path, log_key=LOG_KEY.vkey)

    @invariant()
    def same_size_and_root(self) -> None:
        if hasattr(self, "log"):
            assert self.log.size == self.ref.size
            assert self.log.root() == self.ref.root()

    def teardown(self) -> None:
        try:
            if hasattr(self, "log"):
                report = self.log.fsck()
                assert report.size == self.ref.size and report.checkpoints_checked == len(
                    {open_checkpoint(n, [LOG_KEY.verifier]).checkpoint.size for n in self.checkpoints})
                self.log.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


LogMachine.TestCase.settings = settings(
    max_examples=15, stateful_step_count=12, deadline=None, suppress_health_check=list(HealthCheck)
)
TestLogMachine = LogMachine.TestCase
