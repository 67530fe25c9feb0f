"""C2SP tlog-policy: which logs are trusted, which witnesses, and the cosigning quorum ("k of n").

A policy is what an offline verifier needs besides a proof: it replaces "trust the log" by "trust the log
*and* at least k independent witnesses who each checked it only ever grew" (tlog-witness), which is what
turns a signed log into one that cannot show different histories to different people without being caught.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from genattr.ledger.checkpoint import SignedCheckpoint, open_checkpoint
from genattr.ledger.errors import FormatError, QuorumError
from genattr.ledger.note import ALG_COSIGNATURE_V1, ALG_ED25519, Note, Verifier, bounded_text, verifier_from_vkey

__all__ = ["Policy", "PolicyWitness"]

NONE = "none"
MAX_POLICY_BYTES = 1 << 16


@dataclass(frozen=True)
class PolicyWitness:
    name: str
    key: Verifier
    url: str | None = None


@dataclass
class Policy:
    logs: list[Verifier] = field(default_factory=list)
    log_urls: dict[str, str] = field(default_factory=dict)
    witnesses: dict[str, PolicyWitness] = field(default_factory=dict)
    groups: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    quorum: str = NONE

    # -- construction ----------------------------------------------------------------------------------------

    @classmethod
    def k_of_n(
        cls,
        logs: Iterable[str | Verifier],
        witnesses: Sequence[str | Verifier | tuple[str | Verifier, str]],
        k: int,
    ) -> Policy:
        """The common case: any of `logs`, and at least `k` of `witnesses` (vkeys, optionally with URLs)."""
        p = cls()
        for log in logs:
            p._add_log(log if isinstance(log, Verifier) else verifier_from_vkey(log, alg=ALG_ED25519), None)
        names = []
        for i, w in enumerate(witnesses):
            key, url = (w if isinstance(w, tuple) else (w, None))
            v = key if isinstance(key, Verifier) else verifier_from_vkey(key, alg=ALG_COSIGNATURE_V1)
            name = f"w{i + 1}"
            p._add_witness(PolicyWitness(name, v, url))
            names.append(name)
        if k == 0:
            p.quorum = NONE
        else:
            if not 1 <= k <= len(names):
                raise FormatError(f"quorum k={k} must be between 1 and the number of witnesses ({len(names)})")
            p.groups["quorum"] = (k, names)
            p.quorum = "quorum"
        return p

    def _defined(self, name: str) -> bool:
        return name in self.witnesses or name in self.groups or name == NONE

    def _add_log(self, key: Verifier, url: str | None) -> None:
        if key.alg != ALG_ED25519:
            raise FormatError(f"log key {key.name} must be an Ed25519 note key (type 0x01)")
        if any(k.public_key == key.public_key for k in self.logs):
            raise FormatError(f"duplicate log key {key.name}")
        self.logs.append(key)
        if url:
            self.log_urls[key.name] = url

    def _add_witness(self, w: PolicyWitness) -> None:
        if self._defined(w.name):
            raise FormatError(f"policy name {w.name!r} is defined twice")
        if w.key.alg != ALG_COSIGNATURE_V1:
            raise FormatError(f"witness key {w.key.name} must be a cosignature/v1 key (type 0x04)")
        if any(x.key.public_key == w.key.public_key for x in self.witnesses.values()):
            raise FormatError(f"duplicate witness key for {w.name}")
        self.witnesses[w.name] = w

    @classmethod
    def parse(cls, text: str | bytes) -> Policy:
        """Parse a tlog-policy file (§"Policy file syntax and structure")."""
        text = bounded_text(text, MAX_POLICY_BYTES, "policy file")
        for ch in text:
            if ch not in "\t\n" and (ord(ch) < 0x20 or ord(ch) == 0x7F):
                raise FormatError(f"policy contains control character U+{ord(ch):04X}")
        p = cls()
        quorum: str | None = None
        for lineno, raw in enumerate(text.split("\n"), 1):
            words = raw.replace("\t", " ").split(" ")
            words = [w for w in words if w]
            if not words or words[0].startswith("#"):
                continue
            where = f"policy line {lineno}"
            kind, args = words[0], words[1:]
            if kind == "log":
                if len(args) not in (1, 2):
                    raise FormatError(f"{where}: expected 'log <vkey> [<url>]'")
                p._add_log(verifier_from_vkey(args[0], alg=ALG_ED25519), args[1] if len(args) == 2 else None)
            elif kind == "witness":
                if len(args) not in (2, 3):
                    raise FormatError(f"{where}: expected 'witness <name> <vkey> [<url>]'")
                key = verifier_from_vkey(args[1], alg=ALG_COSIGNATURE_V1)
                p._add_witness(PolicyWitness(args[0], key, args[2] if len(args) == 3 else None))
            elif kind == "group":
                if len(args) < 3:
                    raise FormatError(f"{where}: expected 'group <name> all|any|<k> <member>...'")
                name, threshold, members = args[0], args[1], args[2:]
                if p._defined(name):
                    raise FormatError(f"{where}: name {name!r} is defined twice")
                if len(set(members)) != len(members):
                    raise FormatError(f"{where}: a member is listed twice")
                for m in members:
                    if m == NONE or not p._defined(m):
                        raise FormatError(f"{where}: unknown group member {m!r} (define it on an earlier line)")
                if threshold == "all":
                    k = len(members)
                elif threshold == "any":
                    k = 1
                elif threshold.isdigit() and threshold.isascii() and not threshold.startswith("0"):
                    k = int(threshold)
                    if not 1 <= k <= len(members):
                        raise FormatError(f"{where}: threshold {k} must be between 1 and {len(members)}")
                else:
                    raise FormatError(f"{where}: threshold must be all, any or a positive number")
                p.groups[name] = (k, members)
            elif kind == "quorum":
                if len(args) != 1:
                    raise FormatError(f"{where}: expected 'quorum <name>'")
                if quorum is not None:
                    raise FormatError(f"{where}: a policy has exactly one quorum line")
                if not p._defined(args[0]):
                    raise FormatError(f"{where}: quorum refers to undefined name {args[0]!r}")
                quorum = args[0]
            else:
                raise FormatError(f"{where}: unknown keyword {kind!r}")
        if quorum is None:
            raise FormatError("policy has no quorum line")
        p.quorum = quorum
        return p

    def encode(self) -> str:
        lines = [f"log {k.vkey}" + (f" {self.log_urls[k.name]}" if k.name in self.log_urls else "") for k in self.logs]
        for w in self.witnesses.values():
            lines.append(f"witness {w.name} {w.key.vkey}" + (f" {w.url}" if w.url else ""))
        for name, (k, members) in self.groups.items():
            lines.append(f"group {name} {k} {' '.join(members)}")
        lines.append(f"quorum {self.quorum}")
        return "\n".join(lines) + "\n"

    # -- evaluation ------------------------------------------------------------------------------------------

    def satisfied_by(self, cosigners: Iterable[str]) -> bool:
        """Whether the set of policy witness *names* that cosigned meets the quorum."""
        have = set(cosigners)

        def witnessed(name: str) -> bool:
            if name == NONE:
                return True
            if name in self.witnesses:
                return name in have
            k, members = self.groups[name]
            return sum(witnessed(m) for m in members) >= k

        return witnessed(self.quorum)

    def verify(self, note: str | bytes | Note, *, origin: str | None = None) -> SignedCheckpoint:
        """Verify a checkpoint: signed by a policy log, cosigned by a quorum of policy witnesses."""
        if not self.logs:
            raise QuorumError("the policy lists no log keys")
        keys = {(w.key.name, w.key.key_id): w.name for w in self.witnesses.values()}
        signed = open_checkpoint(note, self.logs, [w.key for w in self.witnesses.values()], origin=origin)
        names = {keys[(c.name, c.key_id)] for c in signed.cosignatures if (c.name, c.key_id) in keys}
        if not self.satisfied_by(names):
            got = ", ".join(sorted(names)) or "none"
            raise QuorumError(f"checkpoint is not cosigned by the policy's quorum {self.quorum!r} (cosigned by: {got})")
        return signed

    def witness_names(self, signed: SignedCheckpoint) -> list[str]:
        keys = {(w.key.name, w.key.key_id): w.name for w in self.witnesses.values()}
        return [keys[(c.name, c.key_id)] for c in signed.cosignatures if (c.name, c.key_id) in keys]
