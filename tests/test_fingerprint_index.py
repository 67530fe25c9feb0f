"""FingerprintIndex: faiss search vs brute force, p-values vs SciPy, decision rules, atomic persistence."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from scipy.stats import binom

from genattr.errors import ConfigError, DataError, IntegrityError
from genattr.watermark import fingerprint_index as fi
from genattr.watermark.fingerprint_index import (
    FingerprintIndex,
    as_bits,
    fixed_threshold,
    hamming_numpy,
    p_value,
    pack_bits,
    random_codes,
    register,
    registry_threshold,
    unpack_bits,
)


def _index(n: int = 3000, bits: int = 64, seed: int = 0) -> tuple[FingerprintIndex, np.ndarray]:
    codes = random_codes(n, bits, seed)
    idx = FingerprintIndex(bits)
    idx.add_many([f"user-{i}" for i in range(n)], codes)
    return idx, codes


def _noisy(codes: np.ndarray, rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return codes ^ (rng.random(codes.shape) < rate).astype(np.uint8)


@pytest.mark.parametrize("bits", [64, 128])
def test_search_matches_brute_force(bits: int) -> None:
    idx, codes = _index(bits=bits)
    q = np.concatenate([_noisy(codes[:60], 0.05, 1), random_codes(20, bits, 9)])
    ref = hamming_numpy(pack_bits(codes), pack_bits(q))
    _ids, matched = idx.nearest(q, 3)
    np.testing.assert_array_equal(matched[:, 0], bits - ref.min(1))
    np.testing.assert_array_equal(np.sort(bits - matched, 1), np.sort(ref, 1)[:, :3])
    for radius in (0, 2, 5, 9):
        for method in ("hash", "flat"):
            for i, (cand, dist) in enumerate(idx.radius_search(q, radius, method=method)):
                assert set(cand.tolist()) == set(np.nonzero(ref[i] <= radius)[0].tolist())
                np.testing.assert_array_equal(dist, ref[i][cand])
        best, k = idx.best_within(q, bits - radius)
        for i in range(q.shape[0]):
            within = np.nonzero(ref[i] <= radius)[0]
            if within.size:
                assert best[i] == within[np.argmin(ref[i][within])] and k[i] == bits - ref[i].min()
            else:
                assert best[i] == -1


def test_bit_packing_round_trip() -> None:
    codes = random_codes(7, 24, 3)
    np.testing.assert_array_equal(unpack_bits(pack_bits(codes), 24), codes)


def test_p_value_matches_scipy() -> None:
    for d in (8, 64, 128):
        k = np.arange(d + 1)
        np.testing.assert_allclose(p_value(k, d), binom.sf(k - 1, d, 0.5), rtol=1e-12)
    assert p_value(121, 128) == pytest.approx(binom.sf(120, 128, 0.5), rel=1e-12)
    assert p_value(0, 64) == 1.0
    with pytest.raises(ConfigError):
        p_value(65, 64)


def test_decision_rules() -> None:
    assert fixed_threshold(128) == 121 and fixed_threshold(64) == 61
    # notes: k = 78 / 89 / 96 / 102 for N = 1 / 10³ / 10⁶ / 10⁹ at 128 bits
    assert [registry_threshold(128, n) for n in (1, 10**3, 10**6, 10**9)] == [78, 89, 96, 102]
    for n in (1, 1000, 10**6):
        k = registry_threshold(64, n)
        assert n * binom.sf(k - 1, 64, 0.5) <= 0.01 < n * binom.sf(k - 2, 64, 0.5)
    assert registry_threshold(8, 10**6) == 9  # no k qualifies: never attribute


@pytest.mark.parametrize("fast", [True, False])
def test_identify_names_users_and_rejects_random_codes(fast: bool) -> None:
    idx, codes = _index(500)
    q = _noisy(codes[:20], 0.03, 2)
    found = idx.identify(q, fast=fast)
    ref = hamming_numpy(pack_bits(codes), pack_bits(q))
    assert [m.matched for m in found] == (64 - ref.min(1)).tolist()
    assert [m.name for m in found] == [f"user-{i}" for i in range(20)]
    assert all(m.p_value < 1e-8 and m.matched >= idx.threshold() for m in found)
    unknown = idx.identify(random_codes(30, 64, 77), fast=fast)
    assert all(m.name is None and m.user_id == -1 and m.nearest is not None for m in unknown)
    json.dumps([m.to_dict() for m in found + unknown])


def test_distinct_codes_identify_themselves() -> None:
    idx, codes = _index(2000)
    ids, matched = idx.nearest(codes, 2)
    np.testing.assert_array_equal(ids[:, 0], np.arange(2000))
    assert (matched[:, 0] == 64).all() and (matched[:, 1] < 64).all()


def test_bad_input_and_duplicates() -> None:
    idx, codes = _index(10)
    with pytest.raises(ConfigError, match="already registered"):
        idx.add("user-3", random_codes(1, 64, 5)[0])
    with pytest.raises(ConfigError, match="already registered"):
        idx.add("someone-new", codes[4])
    with pytest.raises(ConfigError, match="duplicate"):
        idx.add_many(["a", "a"], random_codes(2, 64, 6))
    with pytest.raises(ConfigError):
        idx.add("short", [0, 1, 1])
    with pytest.raises(ConfigError):
        idx.add("notbits", [2] * 64)
    with pytest.raises(ConfigError):
        idx.add("", random_codes(1, 64, 8)[0])
    with pytest.raises(ConfigError):
        FingerprintIndex(12)
    assert len(idx) == 10  # failed adds change nothing
    assert "user-3" in idx and "nobody" not in idx
    np.testing.assert_array_equal(idx.code("user-7"), codes[7])
    with pytest.raises(ConfigError):
        as_bits(np.zeros((2, 2, 2)))


def test_fresh_code_never_repeats_a_registered_one() -> None:
    idx = FingerprintIndex(8)
    all_codes = unpack_bits(np.arange(256, dtype=np.uint8)[:, None], 8)
    idx.add_many([f"u{i}" for i in range(250)], all_codes[:250])
    rng = np.random.default_rng(0)
    free = {pack_bits(c[None])[0].tobytes() for c in all_codes[250:]}
    for _ in range(20):  # 250 of 256 taken: a plain draw would collide 98 % of the time
        assert pack_bits(idx.fresh_code(rng)[None])[0].tobytes() in free
    idx.add_many([f"v{i}" for i in range(6)], all_codes[250:])
    with pytest.raises(ConfigError, match="use more bits"):
        idx.fresh_code(rng, max_tries=50)


def test_save_load_round_trip_and_generations(tmp_path) -> None:
    idx, _codes = _index(300)
    idx.save(tmp_path / "reg")
    idx.add("late-user", random_codes(1, 64, 99)[0])
    idx.save(tmp_path / "reg")
    files = sorted(p.name for p in (tmp_path / "reg").iterdir() if not p.name.startswith("."))
    assert files == ["codes-2.npy", "hashes-2.npy", "manifest.json", "names-2.bin", "offsets-2.npy"]
    back = FingerprintIndex.load(tmp_path / "reg")
    assert len(back) == 301 and back.name(300) == "late-user" and back.user_id("user-42") == 42
    np.testing.assert_array_equal(back.packed_codes(), idx.packed_codes())
    assert back.memory_bytes()["codes"] == 301 * 8


def test_corrupted_registry_is_a_clear_error(tmp_path) -> None:
    idx, _ = _index(50)
    idx.save(tmp_path / "reg")
    man = json.loads((tmp_path / "reg" / "manifest.json").read_text())
    codes_file = tmp_path / "reg" / man["files"]["codes"]
    data = bytearray(codes_file.read_bytes())
    data[-1] ^= 0xFF
    codes_file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        FingerprintIndex.load(tmp_path / "reg")
    (tmp_path / "reg" / "manifest.json").write_text("{oops")
    with pytest.raises(DataError):
        FingerprintIndex.load(tmp_path / "reg")
    with pytest.raises(DataError):
        FingerprintIndex.load(tmp_path / "empty")


def test_interrupted_save_keeps_every_registered_user(tmp_path, monkeypatch) -> None:
    idx, _ = _index(40)
    idx.save(tmp_path / "reg")
    idx.add("new-user", random_codes(1, 64, 123)[0])
    real_save = np.save
    calls = {"n": 0}

    def flaky(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real_save(*a, **kw)

    monkeypatch.setattr(fi.np, "save", flaky)
    with pytest.raises(OSError):
        idx.save(tmp_path / "reg")
    monkeypatch.setattr(fi.np, "save", real_save)
    back = FingerprintIndex.load(tmp_path / "reg")  # the previous generation, complete
    assert len(back) == 40 and "user-39" in back


def test_concurrent_registration_loses_nobody(tmp_path) -> None:
    codes = random_codes(12, 64, 4)
    errors = []

    def worker(i: int) -> None:
        try:
            register(tmp_path / "reg", f"u{i}", codes[i])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    back = FingerprintIndex.load(tmp_path / "reg")
    assert sorted(back.names(range(12))) == sorted(f"u{i}" for i in range(12))
    with pytest.raises(ConfigError):
        register(tmp_path / "reg", "u3", random_codes(1, 64, 50)[0])
