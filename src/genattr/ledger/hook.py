"""Generation hook: wrap any generator so that every sample it releases is logged first.

Framework-agnostic: the wrapped callable may return a PIL image, a uint8 array (H×W×C, or N×H×W×C for a
batch), an object with ``.numpy()`` (a torch tensor, say; it is never imported here), or a list of those.
The samples are returned to the caller only after their entries are durably committed to the log
(fail-closed: if logging fails, nothing is released), together with receipts that let the owner later open
the seed commitment and fetch an inclusion proof.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from genattr.ledger.entry import (
    Entry,
    commit_seed,
    model_id_from_file,
    new_salt,
    pixel_hash,
    seed_material,
    verify_seed,
)
from genattr.ledger.errors import FormatError
from genattr.ledger.note import Ed25519Signer

__all__ = ["Appender", "Generated", "LoggedGenerator", "Receipt", "split_samples"]


class Appender(Protocol):
    """A `TransparencyLog` or a `GroupCommitter`: anything that durably appends a batch and returns indices."""

    def append(self, entries: Sequence[Entry | bytes]) -> list[int]: ...


def _encode_seed(seed: int | bytes | str) -> dict[str, str]:
    if isinstance(seed, int) and not isinstance(seed, bool):
        return {"type": "int", "value": str(seed)}
    if isinstance(seed, bytes):
        return {"type": "bytes", "value": base64.b64encode(seed).decode()}
    if isinstance(seed, str):
        return {"type": "str", "value": seed}
    raise FormatError(f"unsupported seed type {type(seed).__name__}")


def _decode_seed(d: dict[str, str]) -> int | bytes | str:
    kind, value = d.get("type"), d.get("value", "")
    if kind == "int":
        return int(value)
    if kind == "bytes":
        return base64.b64decode(value, validate=True)
    if kind == "str":
        return value
    raise FormatError(f"unknown seed type {kind!r} in receipt")


@dataclass(frozen=True)
class Receipt:
    """What the owner keeps privately for each released sample: the entry, its index and the opening."""

    index: int
    entry: bytes
    seed: int | bytes | str
    salt: bytes
    sample: int = 0

    @property
    def parsed(self) -> Entry:
        return Entry.parse(self.entry)

    def opens(self) -> bool:
        """Whether seed and salt open the entry's seed commitment."""
        return verify_seed(self.parsed, self.seed, self.salt, self.sample)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "entry": base64.b64encode(self.entry).decode(),
            "seed": _encode_seed(self.seed),
            "salt": self.salt.hex(),
            "sample": self.sample,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Receipt:
        try:
            return cls(
                int(d["index"]), base64.b64decode(d["entry"], validate=True), _decode_seed(d["seed"]),
                bytes.fromhex(d["salt"]), int(d.get("sample", 0)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"malformed receipt: {e}") from e


@dataclass(frozen=True)
class Generated:
    images: list[Any]
    receipts: list[Receipt]

    def __len__(self) -> int:
        return len(self.images)


def split_samples(output: Any) -> list[Any]:
    """Turn a generator's return value into a list of individual samples."""
    if hasattr(output, "mode") and hasattr(output, "size") and hasattr(output, "tobytes"):
        return [output]  # one PIL image
    if isinstance(output, list | tuple):
        out: list[Any] = []
        for item in output:
            out.extend(split_samples(item))
        return out
    shape = getattr(output, "shape", None)
    if shape is not None:
        if len(shape) == 4:  # N×H×W×C batch (arrays and tensors both index along the first axis)
            return [output[i] for i in range(int(shape[0]))]
        if len(shape) in (2, 3):
            return [output]
    raise FormatError(
        f"generator returned {type(output).__name__}; expected PIL images or uint8 arrays (H×W×C or N×H×W×C)"
    )


class LoggedGenerator:
    """``LoggedGenerator(generate, log, owner=key, model_id=...)(*args, **kwargs) -> Generated``.

    `seed_arg` names the keyword through which the generator receives its seed: if the caller does not pass
    one, a random 63-bit seed is drawn and passed, so every sample's randomness is known and committed. With
    ``seed_arg=None`` the generator is called untouched and the wrapper's own ``log_seed=`` keyword (not
    forwarded) supplies the seed to commit to.

    ``per_sample_seeds=True``: one seed per image. The generator receives a *list* of seeds through
    ``seed_arg`` (default name ``seeds``) and must return exactly one sample per seed; call the wrapper with
    ``seeds=[...]`` or with ``n=8`` (the wrapper's own keyword, not forwarded: 8 fresh random 63-bit seeds).
    Each entry commits to its own seed (sample position 0), so any one image regenerates from its seed alone.
    ``genattr.attribution.deniability.image_sampler(G)`` is such a generator for torch models.
    """

    def __init__(
        self,
        generate: Callable[..., Any],
        log: Appender,
        *,
        owner: Ed25519Signer,
        model_id: bytes | str | Path,
        seed_arg: str | None = "seed",
        clock: Callable[[], float] = time.time,
        per_sample_seeds: bool = False,
    ) -> None:
        if not callable(generate):
            raise FormatError("generate must be callable")
        self.generate = generate
        self.log = log
        self.owner = owner
        if isinstance(model_id, bytes):
            if len(model_id) != 32:
                raise FormatError("model_id must be a 32-byte SHA-256 digest (or a path to the weights)")
            self.model_id = model_id
        else:
            self.model_id = model_id_from_file(model_id)
        if per_sample_seeds and seed_arg is None:
            raise FormatError("per_sample_seeds needs seed_arg (the keyword that receives the list of seeds)")
        self.seed_arg = "seeds" if per_sample_seeds and seed_arg == "seed" else seed_arg
        self.clock = clock
        self.per_sample_seeds = per_sample_seeds

    def __call__(self, *args: Any, **kwargs: Any) -> Generated:
        if self.per_sample_seeds:
            return self._call_per_sample(args, kwargs)
        seed = kwargs.pop("log_seed", None) if self.seed_arg is None else kwargs.get(self.seed_arg)
        if seed is None:
            seed = secrets.randbits(63)
            if self.seed_arg is not None:
                kwargs[self.seed_arg] = seed
        samples = split_samples(self.generate(*args, **kwargs))
        hashes = [pixel_hash(s) for s in samples]  # validates every sample before anything is logged
        now_ms = int(self.clock() * 1000)
        salts = [new_salt() for _ in samples]
        entries = [
            Entry.create(
                model_id=self.model_id,
                output_hash=h,
                seed_commitment=commit_seed(seed_material(seed, i), salt),
                owner=self.owner,
                timestamp_ms=now_ms,
            )
            for i, (h, salt) in enumerate(zip(hashes, salts, strict=True))
        ]
        indices = self.log.append(entries)  # durable before anything is released
        receipts = [
            Receipt(idx, e.encode(), seed, salt, i)
            for i, (idx, e, salt) in enumerate(zip(indices, entries, salts, strict=True))
        ]
        return Generated(samples, receipts)

    def _call_per_sample(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Generated:
        assert self.seed_arg is not None
        n = kwargs.pop("n", None)
        seeds = kwargs.get(self.seed_arg)
        if seeds is None:
            if n is None or isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise FormatError(f"give {self.seed_arg}=[...] (one seed per image) or n=<number of images>")
            seeds = [secrets.randbits(63) for _ in range(n)]
        elif n is not None and n != len(seeds):
            raise FormatError(f"n={n} but {len(seeds)} seeds were given")
        seeds = list(seeds)
        if not seeds:
            raise FormatError("no seeds: nothing to generate")
        for s in seeds:
            _encode_seed(s)  # type check before anything runs
        kwargs[self.seed_arg] = seeds
        samples = split_samples(self.generate(*args, **kwargs))
        if len(samples) != len(seeds):
            raise FormatError(f"the generator returned {len(samples)} samples for {len(seeds)} seeds; with "
                              "per_sample_seeds it must return exactly one sample per seed")
        hashes = [pixel_hash(s) for s in samples]
        now_ms = int(self.clock() * 1000)
        salts = [new_salt() for _ in samples]
        entries = [
            Entry.create(model_id=self.model_id, output_hash=h, seed_commitment=commit_seed(seed_material(s, 0), salt),
                         owner=self.owner, timestamp_ms=now_ms)
            for h, s, salt in zip(hashes, seeds, salts, strict=True)
        ]
        indices = self.log.append(entries)  # durable before anything is released
        receipts = [Receipt(idx, e.encode(), s, salt, 0)
                    for idx, e, s, salt in zip(indices, entries, seeds, salts, strict=True)]
        return Generated(samples, receipts)
