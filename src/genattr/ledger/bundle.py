"""c2sp.org/tlog-proof@v1: a self-contained, offline-verifiable proof that an entry is in the log.

We put the 204-byte entry itself in the ``extra`` line. The spec says extra data is unauthenticated, and
it is - until step 1 of verification recomputes the leaf hash from it and step 4 binds that hash to a signed,
cosigned root. After that, every field of the entry (model id, output hash, seed commitment, claimed time,
owner) is covered by the log's signature and the witnesses' cosignatures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genattr.ledger import merkle
from genattr.ledger.checkpoint import SignedCheckpoint, parse_decimal
from genattr.ledger.entry import Entry, pixel_hash
from genattr.ledger.errors import FormatError, ProofError, SignatureError
from genattr.ledger.note import Verifier, b64decode, b64encode, bounded_text, parse_note
from genattr.ledger.policy import Policy

__all__ = ["HEADER", "BundleVerification", "TlogProof", "verify_bundle"]

HEADER = "c2sp.org/tlog-proof@v1"
MAX_BUNDLE_BYTES = 1 << 20


@dataclass(frozen=True)
class TlogProof:
    index: int
    proof: tuple[bytes, ...]
    checkpoint: str  # the signed checkpoint note, verbatim
    extra: bytes | None = None

    def encode(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(b64encode(h) for h in self.proof)
        return "\n".join(lines) + "\n\n" + self.checkpoint

    @classmethod
    def parse(cls, text: str | bytes) -> TlogProof:
        text = bounded_text(text, MAX_BUNDLE_BYTES, "proof bundle")
        head, sep, checkpoint = text.partition("\n\n")
        if not sep:
            raise FormatError("proof bundle has no empty line before the checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise FormatError(f"not a tlog proof: first line must be {HEADER!r}")
        pos = 1
        extra = None
        if pos < len(lines) and lines[pos].startswith("extra "):
            extra = b64decode(lines[pos][len("extra ") :], "proof bundle extra data")
            pos += 1
        if pos >= len(lines) or not lines[pos].startswith("index "):
            raise FormatError("proof bundle is missing its 'index N' line")
        index = parse_decimal(lines[pos][len("index ") :], "proof bundle index")
        pos += 1
        hashes = lines[pos:]
        if len(hashes) > merkle.MAX_PROOF_LENGTH:
            raise FormatError("proof bundle has too many inclusion proof lines")
        proof = []
        for i, line in enumerate(hashes):
            h = b64decode(line, f"inclusion proof line {i + 1}")
            if len(h) != merkle.HASH_SIZE:
                raise FormatError(f"inclusion proof line {i + 1} is not a {merkle.HASH_SIZE}-byte hash")
            proof.append(h)
        parse_note(checkpoint)  # syntax only; verification needs a policy
        return cls(index, tuple(proof), checkpoint, extra)


@dataclass(frozen=True)
class BundleVerification:
    index: int
    entry: Entry
    signed: SignedCheckpoint
    witnesses: list[str]

    @property
    def tree_size(self) -> int:
        return self.signed.checkpoint.size


def verify_bundle(
    bundle: TlogProof | str | bytes,
    policy: Policy,
    *,
    image: Any = None,
    output_hash: bytes | None = None,
    owners: list[Verifier] | None = None,
) -> BundleVerification:
    """Verify a proof bundle offline (tlog-proof §"Verifying a tlog proof").

    1. leaf hash from the entry in ``extra``; 2-3. log signature and witness quorum via `policy`;
    4. inclusion of the leaf hash under the checkpoint root. Optionally also check that the entry describes
    `image` (or `output_hash`) and is signed by one of `owners`.
    """
    proof = bundle if isinstance(bundle, TlogProof) else TlogProof.parse(bundle)
    if proof.extra is None:
        raise FormatError("this proof bundle carries no entry (no 'extra' line); cannot recompute the leaf")
    entry = Entry.parse(proof.extra)
    leaf = merkle.leaf_hash(proof.extra)
    signed = policy.verify(proof.checkpoint)
    cp = signed.checkpoint
    merkle.verify_inclusion(leaf, proof.index, cp.size, list(proof.proof), cp.root)
    if image is not None:
        output_hash = pixel_hash(image)
    if output_hash is not None and output_hash != entry.output_hash:
        raise ProofError("the proof is valid but for a different output (pixel hashes differ)")
    if owners is not None:
        errors = []
        for owner in owners:
            try:
                entry.verify(owner)
                break
            except SignatureError as e:
                errors.append(str(e))
        else:
            raise SignatureError("entry is not signed by a trusted owner key")
    return BundleVerification(proof.index, entry, signed, policy.witness_names(signed))
