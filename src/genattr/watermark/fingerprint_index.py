"""A registry of issued fingerprints (Yu et al. 2022): who got which d_c-bit code, and who made this image.

Kept in one module (over 400 lines): the index and its crash-safe persistence (generations, manifest, lock)
are one data structure. The pure code-level helpers — bit validation and packing, random codes, p-values,
the §4.6 decision rules and the multi-hash parameters — live in :mod:`genattr.watermark.fingerprint_codes`
and are re-exported here, so ``from genattr.watermark.fingerprint_index import threshold`` keeps working.

Codes are stored packed (d_c / 8 bytes per user: 16 B at 128 bits) in a **faiss** binary index:

* ``nearest(bits, k)``: exact k nearest registered codes by Hamming distance (``IndexBinaryFlat``, an
  exhaustive SIMD popcount scan) → user ids and matched bits.
* ``match(bits, min_matched)``: the best registered code with at least ``min_matched`` equal bits, or none.
  This is a radius search with radius r = d_c − min_matched, answered by an ``IndexBinaryMultiHash``: the
  code is cut into m disjoint b-bit substrings and each substring is looked up with up to f = ⌊r / m⌋ flipped
  bits. A code within Hamming distance r of the query differs in at most ⌊r / m⌋ bits on *some* substring
  (pigeonhole), so the search is exact; the candidates are then re-scored exactly.

Decision rules (§4.6; defined in :mod:`~genattr.watermark.fingerprint_codes`): the paper's fixed rule
(k ≥ ⌈121/128 · d_c⌉) or the registry-aware k_N (N · P(Bin(d_c, ½) ≥ k) ≤ α), chosen by
:meth:`FingerprintIndex.identify`'s ``rule``.

Persistence (a directory): ``manifest.json`` names one generation of data files (``codes-<g>.npy``,
``names-<g>.bin``, ``offsets-<g>.npy``, ``hashes-<g>.npy``) with their sha256 and the user count. A save
writes the new generation's files first and then replaces the manifest with one atomic rename, so a crash
leaves the previous, complete registry in place; registering under :func:`locked` serialises concurrent
writers so that no registered user is ever lost. Duplicate user names and duplicate codes are refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genattr.errors import ConfigError, DataError, IntegrityError
from genattr.watermark.fingerprint_codes import (
    DEFAULT_ALPHA,
    FIXED_RULE,
    as_bits,
    fixed_threshold,
    hamming_numpy,
    multihash_params,
    p_value,
    pack_bits,
    random_codes,
    registry_threshold,
    threshold,
    unpack_bits,
)

MANIFEST = "manifest.json"
FORMAT = "genattr-fingerprint-index"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------------------
# the index
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    """The registry's answer for one decoded code."""

    name: str | None  # None: no registered code reaches the threshold (unknown)
    user_id: int  # −1 when unknown
    matched: int  # matched bits with the nearest registered code (or the accepted one)
    p_value: float  # P(Bin(d_c, ½) ≥ matched)
    nearest: str | None  # the nearest registered user, accepted or not
    threshold: int

    def to_dict(self) -> dict[str, Any]:
        return {"user": self.name, "user_id": self.user_id, "matched_bits": self.matched,
                "p_value": self.p_value, "nearest": self.nearest, "threshold": self.threshold}


def _name_hash(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def _sha256(path: Path) -> str:
    from genattr.zoo import sha256_file

    return sha256_file(path)


class FingerprintIndex:
    """Registered users and their d_c-bit codes; exact nearest / radius search on faiss binary indexes."""

    def __init__(self, code_bits: int) -> None:
        import faiss

        if not isinstance(code_bits, int) or code_bits < 8 or code_bits % 8:
            raise ConfigError(f"code_bits must be a positive multiple of 8, got {code_bits!r}")
        self.code_bits = code_bits
        self.code_bytes = code_bits // 8
        self._flat = faiss.IndexBinaryFlat(code_bits)
        self._name_chunks: list[bytes] = []
        self._blob = np.zeros(0, dtype=np.uint8)
        self._offsets = np.zeros(1, dtype=np.int64)
        self._pending_lengths: list[int] = []
        self._hashes = np.zeros(0, dtype=np.uint64)
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # (sorted hashes, order)
        self._multihash: dict[int, Any] = {}  # radius → IndexBinaryMultiHash over the same codes
        self._code_hash: set[bytes] | None = None

    # -- size and names ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._flat.ntotal)

    def _consolidate(self) -> None:
        if self._name_chunks:
            add = np.frombuffer(b"".join(self._name_chunks), dtype=np.uint8)
            lengths = np.asarray(self._pending_lengths, dtype=np.int64)
            self._offsets = np.concatenate([self._offsets, self._offsets[-1] + np.cumsum(lengths)])
            self._blob = np.concatenate([self._blob, add])
            self._name_chunks, self._pending_lengths = [], []

    def name(self, user_id: int) -> str:
        self._consolidate()
        if not 0 <= user_id < len(self):
            raise ConfigError(f"no user id {user_id} (registry has {len(self)})")
        return bytes(self._blob[self._offsets[user_id]:self._offsets[user_id + 1]]).decode()

    def names(self, ids: Sequence[int] | np.ndarray) -> list[str | None]:
        return [self.name(int(i)) if i >= 0 else None for i in np.asarray(ids).ravel()]

    def _lookup_hash(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is None:
            order = np.argsort(self._hashes, kind="stable")
            self._sorted = (self._hashes[order], order)
        return self._sorted

    def user_id(self, name: str) -> int:
        """Id of a registered user name, or −1."""
        hs, order = self._lookup_hash()
        h = np.uint64(_name_hash(name))
        lo, hi = np.searchsorted(hs, h, "left"), np.searchsorted(hs, h, "right")
        for j in order[lo:hi]:
            if self.name(int(j)) == name:
                return int(j)
        return -1

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.user_id(name) >= 0

    def code(self, name_or_id: str | int) -> np.ndarray:
        """The registered bits (d,) of a user."""
        uid = self.user_id(name_or_id) if isinstance(name_or_id, str) else int(name_or_id)
        if not 0 <= uid < len(self):
            raise ConfigError(f"unknown user {name_or_id!r}")
        return unpack_bits(self._flat.reconstruct(uid)[None], self.code_bits)[0]

    def packed_codes(self) -> np.ndarray:
        """All registered codes, packed (N, d/8) uint8 (a copy)."""
        import faiss

        if len(self) == 0:
            return np.zeros((0, self.code_bytes), dtype=np.uint8)
        return faiss.vector_to_array(self._flat.xb).reshape(len(self), self.code_bytes).copy()

    # -- registration --------------------------------------------------------------------------------------
    def fresh_code(self, rng: np.random.Generator, *, max_tries: int = 1000) -> np.ndarray:
        """Draw uniform random bits (d,) not yet registered; short codes collide often (8 bits: 1 in 256)."""
        known = self._codes_set()
        for _ in range(max_tries):
            code = rng.integers(0, 2, self.code_bits, dtype=np.uint8)
            if pack_bits(code[None])[0].tobytes() not in known:
                return code
        raise ConfigError(f"no unregistered {self.code_bits}-bit code found in {max_tries} draws "
                          f"({len(self)} of {2 ** self.code_bits} codes taken); use more bits")

    def add(self, name: str, code: Any) -> int:
        """Register one user; returns its id. Duplicate names or codes raise ConfigError."""
        return int(self.add_many([name], as_bits(code, self.code_bits)[None])[0])

    def add_many(self, names: Sequence[str], codes: Any, *, check_codes: bool = True) -> np.ndarray:
        """Register users in bulk (codes as (n, d) bits or (n, d/8) packed uint8); all or nothing."""
        codes_arr = np.asarray(codes)
        if codes_arr.ndim == 2 and codes_arr.dtype == np.uint8 and codes_arr.shape[1] == self.code_bytes \
                and self.code_bytes != self.code_bits:
            packed = np.ascontiguousarray(codes_arr)
        else:
            packed = pack_bits(as_bits(codes_arr, self.code_bits, what="codes"))
        names = list(names)
        if len(names) != packed.shape[0]:
            raise ConfigError(f"{len(names)} names for {packed.shape[0]} codes")
        for nm in names:
            if not isinstance(nm, str) or not nm or len(nm.encode()) > 256 or any(c in nm for c in "\n\r\0"):
                raise ConfigError(f"user names must be non-empty single-line strings ≤ 256 bytes, got {nm!r}")
        new_h = np.fromiter((_name_hash(n) for n in names), dtype=np.uint64, count=len(names))
        # duplicates within the batch, then against the registry (hash hits are confirmed by name)
        if len(set(names)) != len(names):
            seen: set[str] = set()
            dup = next(n for n in names if n in seen or seen.add(n))  # type: ignore[func-returns-value]
            raise ConfigError(f"duplicate user name {dup!r} in this batch")
        if len(self):
            hs, _ = self._lookup_hash()
            pos = np.searchsorted(hs, new_h)
            hit = np.nonzero((pos < hs.size) & (hs[np.minimum(pos, hs.size - 1)] == new_h))[0]
            for i in hit:
                if self.user_id(names[i]) >= 0:
                    raise ConfigError(f"user {names[i]!r} is already registered; user names must be unique")
        if check_codes:
            known = self._codes_set()
            batch: set[bytes] = set()
            for i, row in enumerate(packed):
                b = row.tobytes()
                if b in known or b in batch:
                    raise ConfigError(f"the code for {names[i]!r} is already registered (draw a fresh one)")
                batch.add(b)
            known |= batch
        else:
            self._code_hash = None
        start = len(self)
        self._flat.add(packed)
        for mh in self._multihash.values():
            mh.add(packed)
        encoded = [n.encode() for n in names]
        self._name_chunks.extend(encoded)
        self._pending_lengths.extend(len(e) for e in encoded)
        self._hashes = np.concatenate([self._hashes, new_h])
        self._sorted = None
        return np.arange(start, start + len(names))

    def _codes_set(self) -> set[bytes]:
        if self._code_hash is None:
            p = self.packed_codes()
            self._code_hash = {r.tobytes() for r in p}
        return self._code_hash

    # -- search ----------------------------------------------------------------------------------------------
    def _queries(self, bits: Any) -> np.ndarray:
        arr = as_bits(bits, self.code_bits, what="decoded bits")
        return pack_bits(arr if arr.ndim == 2 else arr[None])

    def nearest(self, bits: Any, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest registered codes: (ids (n, k) int64, matched bits (n, k) int64); ids −1 past N."""
        q = self._queries(bits)
        k = max(1, min(int(k), max(len(self), 1)))
        if len(self) == 0:
            return np.full((q.shape[0], k), -1, np.int64), np.zeros((q.shape[0], k), np.int64)
        dist, ids = self._flat.search(q, k)
        matched = np.where(ids >= 0, self.code_bits - dist.astype(np.int64), 0)
        return ids.astype(np.int64), matched

    def _hash_index(self, radius: int) -> Any:
        import faiss

        if radius not in self._multihash:
            m, b, f = multihash_params(self.code_bits, radius, len(self))
            mh = faiss.IndexBinaryMultiHash(self.code_bits, m, b)
            mh.nflip = f
            if len(self):
                mh.add(self.packed_codes())
            self._multihash[radius] = mh
        return self._multihash[radius]

    def radius_search(self, bits: Any, radius: int, *, method: str = "hash") -> list[tuple[np.ndarray, np.ndarray]]:
        """All registered codes within Hamming distance ``radius`` of each query: [(ids, distances)], exact.

        ``method='hash'`` uses the multi-hash index (pigeonhole-exact), ``'flat'`` faiss' exhaustive scan."""
        q = self._queries(bits)
        if len(self) == 0:
            return [(np.zeros(0, np.int64), np.zeros(0, np.int64)) for _ in range(q.shape[0])]
        index = self._hash_index(int(radius)) if method == "hash" else self._flat
        if method not in ("hash", "flat"):
            raise ConfigError(f"unknown radius-search method {method!r}")
        # faiss' range search keeps distances < radius (strict), hence radius + 1
        lims, dist, ids = index.range_search(q, int(radius) + 1)
        return [(ids[lims[i]:lims[i + 1]].astype(np.int64), dist[lims[i]:lims[i + 1]].astype(np.int64))
                for i in range(q.shape[0])]

    def best_within(self, bits: Any, min_matched: int, *, method: str = "hash") -> tuple[np.ndarray, np.ndarray]:
        """The best registered code with ≥ ``min_matched`` equal bits: (ids (n,), matched (n,)); id −1 if none.
        Ties go to the smaller user id."""
        radius = self.code_bits - int(min_matched)
        results = self.radius_search(bits, max(radius, 0), method=method)
        n = len(results)
        ids, matched = np.full(n, -1, np.int64), np.zeros(n, np.int64)
        if radius < 0:
            return ids, matched
        for i, (cand, dist) in enumerate(results):
            if cand.size:
                order = np.lexsort((cand, dist))
                ids[i], matched[i] = cand[order[0]], self.code_bits - dist[order[0]]
        return ids, matched

    def threshold(self, rule: str = "registry", alpha: float = DEFAULT_ALPHA) -> int:
        return threshold(rule, self.code_bits, len(self), alpha)

    def identify(self, bits: Any, *, rule: str = "registry", alpha: float = DEFAULT_ALPHA,
                 min_matched: int | None = None, fast: bool | None = None) -> list[Match]:
        """Per decoded code: the registered user at or over the threshold (else unknown), with the nearest
        user's matched bits and p-value either way.

        Exact in two stages when ``fast`` (default: registries over 50 000 codes): a multi-hash radius search
        at the fixed rule's small radius answers well-decoded codes (the best code within that radius is the
        global nearest); only the misses fall back to faiss' exhaustive nearest-neighbour scan."""
        t = int(min_matched) if min_matched is not None else self.threshold(rule, alpha)
        arr = as_bits(bits, self.code_bits, what="decoded bits")
        arr = arr if arr.ndim == 2 else arr[None]
        n = arr.shape[0]
        ids, matched = np.full(n, -1, np.int64), np.zeros(n, np.int64)
        todo = np.arange(n)
        r_fast = min(self.code_bits - fixed_threshold(self.code_bits), self.code_bits - t)
        if (len(self) > 50_000 if fast is None else fast) and r_fast >= 0 and n:
            f_ids, f_k = self.best_within(arr, self.code_bits - r_fast)
            hit = f_ids >= 0
            ids[hit], matched[hit] = f_ids[hit], f_k[hit]
            todo = np.nonzero(~hit)[0]
        if todo.size:
            n_ids, n_k = self.nearest(arr[todo], 1)
            ids[todo], matched[todo] = n_ids[:, 0], n_k[:, 0]
        pv = np.atleast_1d(p_value(matched, self.code_bits)) if n else np.zeros(0)
        out = []
        for uid, k, p in zip(ids, matched, pv, strict=True):
            accepted = uid >= 0 and k >= t
            nm = self.name(int(uid)) if uid >= 0 else None
            out.append(Match(name=nm if accepted else None, user_id=int(uid) if accepted else -1, matched=int(k),
                             p_value=float(p), nearest=nm, threshold=t))
        return out

    def as_mapping(self) -> RegistryView:
        return RegistryView(self)

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held per part (codes in faiss, names, offsets, name hashes)."""
        self._consolidate()
        return {"codes": len(self) * self.code_bytes, "names": int(self._blob.nbytes),
                "offsets": int(self._offsets.nbytes), "name_hashes": int(self._hashes.nbytes)}

    # -- persistence -----------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the registry atomically (new generation files, then one manifest rename); returns the dir."""
        self._consolidate()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        old = _read_manifest(d) if (d / MANIFEST).is_file() else None
        gen = (int(old["generation"]) + 1) if old else 1
        files = {"codes": f"codes-{gen}.npy", "names": f"names-{gen}.bin", "offsets": f"offsets-{gen}.npy",
                 "hashes": f"hashes-{gen}.npy"}
        arrays = {"codes": self.packed_codes(), "names": self._blob, "offsets": self._offsets,
                  "hashes": self._hashes}
        sums = {}
        for key, fname in files.items():
            tmp = d / (fname + ".tmp")
            with tmp.open("wb") as fh:
                if key == "names":
                    fh.write(arrays[key].tobytes())
                else:
                    np.save(fh, arrays[key], allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(d / fname)
            sums[fname] = _sha256(d / fname)
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "code_bits": self.code_bits,
                    "count": len(self), "generation": gen, "files": files, "sha256": sums,
                    "bytes_per_code": self.code_bytes}
        tmp = d / (MANIFEST + ".tmp")
        with tmp.open("w") as fh:
            fh.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(d / MANIFEST)
        if old:  # the previous generation is unreferenced now
            for fname in old.get("files", {}).values():
                if fname not in files.values():
                    (d / fname).unlink(missing_ok=True)
        return d

    @classmethod
    def load(cls, directory: str | Path, *, verify: bool = True) -> FingerprintIndex:
        """Read a registry written by :meth:`save`; sha256 and shapes are checked (IntegrityError/DataError)."""
        d = Path(directory)
        man = _read_manifest(d)
        files = man["files"]
        for fname in files.values():
            p = d / fname
            if not p.is_file():
                raise DataError(f"{d}: registry file {fname} is missing")
            if verify and _sha256(p) != man["sha256"].get(fname):
                raise IntegrityError(f"{p}: sha256 does not match the registry manifest (corrupted or modified)")
        try:
            codes = np.load(d / files["codes"], allow_pickle=False)
            offsets = np.load(d / files["offsets"], allow_pickle=False)
            hashes = np.load(d / files["hashes"], allow_pickle=False)
            blob = np.fromfile(d / files["names"], dtype=np.uint8)
        except (ValueError, OSError) as exc:
            raise DataError(f"{d}: unreadable registry file ({exc})") from exc
        n, bits = int(man["count"]), int(man["code_bits"])
        if codes.dtype != np.uint8 or codes.shape != (n, bits // 8) or offsets.shape != (n + 1,) \
                or hashes.shape != (n,) or offsets.dtype != np.int64 or hashes.dtype != np.uint64 \
                or int(offsets[-1]) != blob.size or int(offsets[0]) != 0 or np.any(np.diff(offsets) <= 0):
            raise DataError(f"{d}: registry files disagree with the manifest ({n} users of {bits} bits)")
        idx = cls(bits)
        idx._flat.add(np.ascontiguousarray(codes))
        idx._blob, idx._offsets, idx._hashes = blob, offsets, hashes
        return idx


class RegistryView(Mapping[str, np.ndarray]):
    """A read-only ``{user name: bits}`` view of an index, for ``attributor.fit(index.as_mapping(), ...)``
    without building a million-entry dict; the attributor takes the packed codes straight from the index."""

    def __init__(self, index: FingerprintIndex) -> None:
        self.index = index

    def __getitem__(self, name: str) -> np.ndarray:
        uid = self.index.user_id(name)
        if uid < 0:
            raise KeyError(name)
        return self.index.code(uid)

    def __iter__(self) -> Iterator[str]:
        self.index._consolidate()
        for i in range(len(self.index)):
            yield self.index.name(i)

    def __len__(self) -> int:
        return len(self.index)


def _read_manifest(d: Path) -> dict[str, Any]:
    path = d / MANIFEST
    if not path.is_file():
        raise DataError(f"{d}: no fingerprint registry here ({MANIFEST} missing)")
    try:
        man = json.loads(path.read_text())
        if man.get("format") != FORMAT:
            raise ValueError(f"format is {man.get('format')!r}")
        if int(man.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError("written by a newer genattr")
        missing = [k for k in ("code_bits", "count", "generation", "files", "sha256") if k not in man]
        if missing:
            raise ValueError(f"missing {missing}")
        if set(man["files"]) != {"codes", "names", "offsets", "hashes"}:
            raise ValueError("unexpected file list")
    except (json.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: malformed fingerprint-registry manifest ({exc})") from exc
    return man


@contextlib.contextmanager
def locked(directory: str | Path) -> Iterator[None]:
    """Exclusive lock on a registry directory for a load → add → save cycle (POSIX ``flock``)."""
    import fcntl

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    with (d / ".lock").open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def register(directory: str | Path, name: str, code: Any, *, code_bits: int | None = None) -> int:
    """Add one user to the registry at ``directory`` (created if absent) under a lock; returns the id."""
    d = Path(directory)
    with locked(d):
        if (d / MANIFEST).is_file():
            idx = FingerprintIndex.load(d)
        else:
            bits = as_bits(code)
            idx = FingerprintIndex(code_bits or int(bits.shape[-1]))
        uid = idx.add(name, code)
        idx.save(d)
    return uid


__all__ = ["DEFAULT_ALPHA", "FIXED_RULE", "FingerprintIndex", "Match", "RegistryView", "as_bits",
           "fixed_threshold", "hamming_numpy", "locked", "multihash_params", "p_value", "pack_bits",
           "random_codes", "register", "registry_threshold", "threshold", "unpack_bits"]
