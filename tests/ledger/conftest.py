"""Shared fixtures for the ledger tests (keys, entries, logs, in-process witnesses)."""

from __future__ import annotations

import contextlib
import hashlib
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
