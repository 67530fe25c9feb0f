"""Tamper-evident generation log (Zhang et al. 2020, §VII), built like a Certificate-Transparency-style log.

* `merkle`       RFC 6962/9162 hashing, proofs and proof verification (pure functions)
* `entry`        the fixed binary leaf: model id, pixel hash, salted seed commitment, time, owner signature
* `note`, `checkpoint`  C2SP signed notes, Ed25519 keys (vkey/skey), tlog-checkpoint, cosignature/v1
* `storage`, `log`      the `LogStorage` interface, SQLite storage, `TransparencyLog` (+ `record`, `presign`,
                        `fsck`, `group_commit`: rollback record, checks before signing, fsck, group commit)
* `pg_storage`, `pg_schema`  the same interface on PostgreSQL (appends sequenced under a row lock), by URL
* `witness`      C2SP tlog-witness logic and client; `witness_server.create_witness_app` is the FastAPI app
* `policy`, `bundle`    C2SP tlog-policy (k-of-n witnesses) and c2sp.org/tlog-proof bundles
* `hook`, `audit`       log-before-release generator wrapper; "is this image in the log?" audits
* `keyfile`      ``load_signer(path)``: an .skey file, with the CLI's permission checks

Only stdlib, `cryptography` and sqlite3 are imported here (Pillow lazily, httpx lazily, psycopg lazily by
`pg_storage.PostgresStorage`, FastAPI only by `witness_server`); never torch.
"""

from genattr.ledger.audit import ABSENCE_CAVEAT, AuditResult, audit_bundle, audit_log
from genattr.ledger.bundle import BundleVerification, TlogProof, verify_bundle
from genattr.ledger.checkpoint import Checkpoint, Cosignature, SignedCheckpoint, open_checkpoint, sign_checkpoint
from genattr.ledger.entry import (
    ENTRY_SIZE,
    Entry,
    commit_seed,
    model_id_from_file,
    owner_key_id,
    pixel_hash,
    pixel_hash_file,
    seed_material,
    verify_seed,
)
from genattr.ledger.errors import (
    ConflictError,
    CorruptionError,
    FormatError,
    LedgerError,
    ProofError,
    QuorumError,
    SignatureError,
    StorageError,
    WitnessError,
)
from genattr.ledger.hook import Generated, LoggedGenerator, Receipt
from genattr.ledger.keyfile import load_signer
from genattr.ledger.log import FsckReport, GroupCommitter, TransparencyLog
from genattr.ledger.merkle import leaf_hash, node_hash, verify_consistency, verify_inclusion
from genattr.ledger.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    CosignatureSigner,
    CosignatureVerifier,
    Ed25519Signer,
    Ed25519Verifier,
    generate_signer,
    open_note,
    parse_note,
    signer_from_skey,
    verifier_from_vkey,
)
from genattr.ledger.pg_storage import PostgresStorage, PostgresUnavailableError
from genattr.ledger.policy import Policy
from genattr.ledger.storage import LogStorage, SQLiteStorage
from genattr.ledger.witness import Witness, WitnessClient, collect_cosignatures

__all__ = [
    "ABSENCE_CAVEAT",
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "ENTRY_SIZE",
    "AuditResult",
    "BundleVerification",
    "Checkpoint",
    "ConflictError",
    "CorruptionError",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Ed25519Signer",
    "Ed25519Verifier",
    "Entry",
    "FormatError",
    "FsckReport",
    "Generated",
    "GroupCommitter",
    "LedgerError",
    "LogStorage",
    "LoggedGenerator",
    "Policy",
    "PostgresStorage",
    "PostgresUnavailableError",
    "ProofError",
    "QuorumError",
    "Receipt",
    "SQLiteStorage",
    "SignatureError",
    "SignedCheckpoint",
    "StorageError",
    "TlogProof",
    "TransparencyLog",
    "Witness",
    "WitnessClient",
    "WitnessError",
    "audit_bundle",
    "audit_log",
    "collect_cosignatures",
    "commit_seed",
    "generate_signer",
    "leaf_hash",
    "load_signer",
    "model_id_from_file",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "owner_key_id",
    "parse_note",
    "pixel_hash",
    "pixel_hash_file",
    "seed_material",
    "sign_checkpoint",
    "signer_from_skey",
    "verifier_from_vkey",
    "verify_bundle",
    "verify_consistency",
    "verify_inclusion",
    "verify_seed",
]
