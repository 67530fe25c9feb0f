"""Errors raised by the ledger. All derive from `genattr.errors.GenattrError` so that the CLI prints one line."""

from __future__ import annotations

from genattr.errors import GenattrError


class LedgerError(GenattrError):
    """Base class of every error raised by `genattr.ledger`."""


class ProofError(LedgerError):
    """A Merkle inclusion or consistency proof does not verify (RFC 9162 §2.1.3.2 / §2.1.4.2)."""


class FormatError(LedgerError, ValueError):
    """Malformed input: a note, checkpoint, key, entry, proof bundle, policy or witness request."""


class SignatureError(LedgerError):
    """A signature is missing, from an untrusted key, or does not verify."""


class QuorumError(SignatureError):
    """A checkpoint is validly signed by the log but not cosigned by enough witnesses (tlog-policy)."""


class StorageError(LedgerError):
    """The database could not be opened, read or written (locked, unreadable, not a log)."""


class CorruptionError(StorageError):
    """The stored log is inconsistent with itself or with a checkpoint it signed: tampering or corruption."""


class WitnessError(LedgerError):
    """A witness refused a checkpoint, answered nonsense, or could not be reached."""


class ConflictError(WitnessError):
    """A witness (or a log) saw a different history: rollback or split view (a fork)."""
