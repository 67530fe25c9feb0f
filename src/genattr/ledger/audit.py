"""Audit: is this image in the log? Answers "logged at index i, here is the proof" or "not in the log up to
checkpoint N cosigned by ...", always with the limits of what an exact-hash check can say."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genattr.ledger import merkle
from genattr.ledger.bundle import TlogProof, verify_bundle
from genattr.ledger.checkpoint import SignedCheckpoint
from genattr.ledger.entry import Entry, pixel_hash, pixel_hash_file
from genattr.ledger.errors import CorruptionError, FormatError, LedgerError
from genattr.ledger.log import TransparencyLog
from genattr.ledger.note import b64encode
from genattr.ledger.policy import Policy

__all__ = ["ABSENCE_CAVEAT", "AuditResult", "audit_bundle", "audit_log", "output_hash_of"]

ABSENCE_CAVEAT = (
    "Absence of an exact match is weak evidence: the output hash covers exact decoded pixels, so any "
    "re-encoding (JPEG), resize, crop, screenshot or filter of a logged image changes it. To judge whether the "
    "image is a modified output of this model, use the attribution methods (genattr.attribution) as well."
)


def output_hash_of(image: Any) -> bytes:
    """Pixel hash of an image object, an image file path, or a 32-byte hash passed through."""
    if isinstance(image, bytes) and len(image) == merkle.HASH_SIZE:
        return image
    if isinstance(image, str | Path):
        return pixel_hash_file(image)
    return pixel_hash(image)


@dataclass
class AuditResult:
    found: bool
    output_hash: bytes
    message: str
    index: int | None = None
    tree_size: int | None = None
    root: bytes | None = None
    witnesses: list[str] = field(default_factory=list)
    entry: Entry | None = None
    bundle: TlogProof | None = None
    later_indices: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "output_hash": self.output_hash.hex(),
            "index": self.index,
            "tree_size": self.tree_size,
            "root": None if self.root is None else b64encode(self.root),
            "witnesses": self.witnesses,
            "entry": None if self.entry is None else self.entry.describe(),
            "later_indices": self.later_indices,
            "message": self.message,
        }


def _cosigned_by(names: list[str]) -> str:
    return "cosigned by " + ", ".join(names) if names else "with no witness cosignatures (log signature only)"


def _verify_checkpoint(log: TransparencyLog, note: str, policy: Policy | None) -> tuple[SignedCheckpoint, list[str]]:
    if policy is None:
        signed = log.open_checkpoint(note)
        return signed, signed.cosigners
    signed = policy.verify(note, origin=log.origin)
    return signed, policy.witness_names(signed)


def audit_log(
    image: Any, log: TransparencyLog, *, policy: Policy | None = None, full_scan: bool = True
) -> AuditResult:
    """Search the log for an image's exact pixel hash, up to the latest (cosigned) checkpoint.

    With ``full_scan`` (the default) absence is established properly: every leaf up to the checkpoint is
    re-read, its hash recomputed, and the recomputed root must equal the signed root, so "not found" means
    "not among exactly the entries this signed, witnessed checkpoint commits to". Without it the answer
    relies on the log's local lookup index (fine for finding, not for proving absence).
    """
    h = output_hash_of(image)
    note = log.latest_checkpoint()
    if note is None:
        raise LedgerError("the log has no checkpoint yet: sign one (genattr log checkpoint) before auditing")
    signed, witnesses = _verify_checkpoint(log, note, policy)
    cp = signed.checkpoint
    hits: list[int] = []
    if full_scan:
        acc = merkle.RootAccumulator()
        for idx, data, _ in log.storage.iter_leaves(0, cp.size):
            if idx != acc.size:
                raise CorruptionError(f"leaf {acc.size} is missing from the log")
            acc.push(merkle.leaf_hash(data))
            try:
                if Entry.parse(data).output_hash == h:
                    hits.append(idx)
            except FormatError as e:
                raise CorruptionError(f"leaf {idx} is malformed: {e}") from e
        if acc.size != cp.size or not hmac.compare_digest(acc.root(), cp.root):
            raise CorruptionError(f"the log's leaves do not reproduce the signed root of checkpoint {cp.size}")
    else:
        hits = [i for i in log.find(h) if i < cp.size]
    later = [i for i in log.find(h) if i >= cp.size]
    where = f"checkpoint {cp.size} of {cp.origin} (root {b64encode(cp.root)}), {_cosigned_by(witnesses)}"
    if not hits:
        msg = f"not in the log up to {where}."
        if later:
            msg += f" It was logged later, at index {later[0]}: sign a new checkpoint to get a proof."
        return AuditResult(False, h, f"{msg} {ABSENCE_CAVEAT}", None, cp.size, cp.root, witnesses,
                           later_indices=later)
    index = hits[0]
    data = log.leaf(index)
    bundle = TlogProof(index, tuple(log.inclusion_proof(index, cp.size)), note, data)
    try:  # never hand out a proof we have not verified ourselves
        merkle.verify_inclusion(merkle.leaf_hash(data), index, cp.size, list(bundle.proof), cp.root)
    except LedgerError as e:
        raise CorruptionError(f"the stored tree produced an invalid proof for leaf {index}: {e}") from e
    entry = Entry.parse(data)
    msg = f"logged at index {index} in {where}; the inclusion proof is attached."
    if len(hits) > 1:
        msg += f" (also at indices {', '.join(map(str, hits[1:6]))})"
    return AuditResult(True, h, msg, index, cp.size, cp.root, witnesses, entry, bundle, later)


def audit_bundle(image: Any, bundle: TlogProof | str | bytes, policy: Policy) -> AuditResult:
    """Check an image against a proof bundle, offline. A bundle for another output proves nothing either way."""
    h = output_hash_of(image)
    proof = bundle if isinstance(bundle, TlogProof) else TlogProof.parse(bundle)
    v = verify_bundle(proof, policy)
    cp = v.signed.checkpoint
    where = f"checkpoint {cp.size} of {cp.origin}, {_cosigned_by(v.witnesses)}"
    if v.entry.output_hash == h:
        return AuditResult(True, h, f"logged at index {v.index} in {where}; the inclusion proof verifies.",
                           v.index, cp.size, cp.root, v.witnesses, v.entry, proof)
    msg = (f"the proof bundle is valid but for a different output (index {v.index}); it says nothing about "
           f"whether this image is elsewhere in the log. {ABSENCE_CAVEAT}")
    return AuditResult(False, h, msg, None, cp.size, cp.root, v.witnesses)
