"""`yu2022-fingerprint` on the attribution contract, plus behaviour (instances, unknowns, large registries)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genattr import UNKNOWN
from genattr.attribution import InvalidInputError, create_attributor
from genattr.attribution.fingerprint_bits import FingerprintBits, SparseAttributionResult, expected_false_matches
from genattr.errors import ConfigError, GenattrError
from genattr.watermark.fingerprint_index import FingerprintIndex
from tests.attribution_contract import AttributorContract, FitData
from tests.test_watermark_fingerprint import HAMMING_CODES, tiny_decoding_model

USERS = {f"user{i}": HAMMING_CODES[i] for i in (0, 5, 10, 15)}


def _samples(n: int, seed: int) -> dict[str, torch.Tensor]:
    model = tiny_decoding_model()
    out = {}
    for j, (name, code) in enumerate(USERS.items()):
        with torch.no_grad():
            out[name] = model.instance(code).sample(n, torch.Generator().manual_seed(seed * 100 + j))
    return out


class TestFingerprintContract(AttributorContract):
    def make_attributor(self) -> FingerprintBits:
        return FingerprintBits(min_matched=7)

    def make_fit_data(self) -> FitData:
        return FitData({k: torch.from_numpy(v) for k, v in USERS.items()}, {"decoder": tiny_decoding_model()})

    def make_inputs(self) -> torch.Tensor:
        return torch.cat([x[:2] for x in _samples(2, 1).values()])

    def make_calibration_data(self) -> dict[str, torch.Tensor]:
        return _samples(8, 2)


def test_instances_are_attributed_and_noise_is_unknown() -> None:
    att = create_attributor("yu2022-fingerprint", min_matched=7).fit(USERS, decoder=tiny_decoding_model())
    correct = total = 0
    for name, x in _samples(16, 3).items():
        labels = att.predict(x)
        correct += sum(lab == name for lab in labels)
        total += len(labels)
        assert all(lab in (name, UNKNOWN) for lab in labels)  # never another user
    assert correct / total > 0.8
    res = att.attribute(torch.zeros(3, 1, 32, 32) - 1)  # flat black images carry no fingerprint
    assert res.extras["bits"].shape == (3, 8) and res.extras["p_value"].shape == (3,)
    assert res.extras["threshold_bits"] == 7
    json.dumps(res.to_dict())


def test_threshold_rules() -> None:
    dec = tiny_decoding_model()
    fixed = FingerprintBits(rule="fixed").fit(USERS, decoder=dec)
    assert fixed.threshold_bits() == 8  # ⌈121/128 · 8⌉
    reg = FingerprintBits().fit(USERS, decoder=dec)
    assert reg.threshold_bits() == 9  # 8 bits cannot reach N · P ≤ 0.01 for N = 4: never attribute
    assert expected_false_matches(10**6, 64, 54) < 0.01
    with pytest.raises(ConfigError):
        FingerprintBits(rule="nope").fit(USERS, decoder=dec)


def test_large_registry_uses_top_k_and_agrees_with_dense() -> None:
    dec = tiny_decoding_model()
    idx = FingerprintIndex(8)
    idx.add_many(list(USERS), np.stack(list(USERS.values())))
    dense = FingerprintBits(min_matched=7).fit(idx.as_mapping(), decoder=dec)
    large = FingerprintBits(min_matched=7, dense_limit=2, top_k=2).fit(idx.as_mapping(), decoder=dec)
    x = torch.cat(list(_samples(4, 4).values()))
    r_dense, r_large = dense.attribute(x), large.attribute(x)
    assert isinstance(r_large, SparseAttributionResult) and r_large.scores.is_sparse
    assert r_large.labels == r_dense.labels
    top = r_large.scores.to_dense()
    best = r_dense.scores.max(1).values
    assert torch.equal(top.max(1).values, best)
    assert torch.equal(r_large.extras["matched_bits"], r_dense.extras["matched_bits"])
    with pytest.raises(GenattrError, match="dense_limit"):
        large.decision_function(x)
    json.dumps(r_large.to_dict())


def test_bad_input() -> None:
    dec = tiny_decoding_model()
    att = FingerprintBits(min_matched=7).fit(USERS, decoder=dec)
    with pytest.raises(InvalidInputError):
        att.predict(torch.zeros(2, 1, 16, 16))
    with pytest.raises(InvalidInputError):
        att.predict(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ConfigError):
        FingerprintBits().fit(USERS)  # no decoder
    with pytest.raises(ConfigError):
        FingerprintBits().fit({"a": [0, 1, 0]}, decoder=dec)  # wrong length
    with pytest.raises(ConfigError):
        FingerprintBits().fit({"a": HAMMING_CODES[1], "b": HAMMING_CODES[1]}, decoder=dec)  # same code


def test_load_rejects_an_oversized_decoder_config(tmp_path) -> None:
    from genattr.attribution import Attributor
    from genattr.errors import DataError

    FingerprintBits(min_matched=7).fit(USERS, decoder=tiny_decoding_model()).save(tmp_path / "a")
    state = json.loads((tmp_path / "a" / "state.json").read_text())
    state["json"]["decoder_config_"]["ndf"] = 10**9
    (tmp_path / "a" / "state.json").write_text(json.dumps(state))
    with pytest.raises(DataError):
        Attributor.load(tmp_path / "a")
