"""import_shipped on a tiny fake checkout: what it registers, idempotence, and all-or-nothing on a tampered file
— on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genattr.errors import ConfigError, DataError, IntegrityError
from genattr.registry import Registry
from tests.registry.helpers import build_fake_repo, row_counts


def test_imports_everything_shipped(reg: Registry, fake_repo: Path) -> None:
    counts = reg.import_shipped(fake_repo)
    assert counts == {"zoo": 2, "keyed-user": 1, "kim-keys": 1, "yu2022-decoder": 1, "yu2022-index": 1,
                      "yu2022-codes": 3, "classifier": 1, "flipad-detector": 1, "unchanged": 0, "skipped": 1}
    man = json.loads((fake_repo / "zoo" / "manifest.json").read_text())
    for name, entry in man["models"].items():
        m = reg.get_model(name)
        assert (m.id, m.kind, m.architecture) == (entry["file_sha256"], "zoo", entry["arch"])
        assert m.meta["seed"] == entry["seed"] and m.path == str((fake_repo / "zoo" / name).resolve())
    alice = reg.get_model("kim2021-orthogonal-alice")
    assert (alice.kind, alice.owner, alice.architecture) == ("keyed-user", "alice", "dcgan")
    comps = {c.name: c for c in reg.list_components()}
    assert set(comps) == {"yu2019-closed", "flipad-tiny-dcgan", "kim2021-orthogonal", "yu2022-fp16", "yu2022-index"}
    clf = comps["yu2019-closed"]
    assert clf.kind == "classifier" and clf.models == ("real", "tiny-dcgan", "tiny-lsgan")
    assert clf.meta["attributor"] == "gan-fingerprint-classifier" and clf.meta["test_accuracy"] == 0.9
    assert clf.meta["image_shape"] == [1, 32, 32]
    assert comps["flipad-tiny-dcgan"].models == ("tiny-dcgan",)
    keys = comps["kim2021-orthogonal"]
    assert keys.models == ("kim2021-orthogonal-alice", "bob")  # bob has a key but no model: his user name
    assert keys.meta["angle_deg"] == 90.0
    assert comps["yu2022-fp16"].meta["code_bits"] == 16
    assert comps["yu2022-index"].meta["decoder"] == "yu2022-fp16"  # the only decoder (the baseline has none)
    codes = {c.user: c.code for c in reg.list_codes("yu2022-index")}
    assert codes == {"example-000": bytes([0b01010101] * 2), "example-001": bytes([0b10101010] * 2),
                     "example-002": bytes([0xFF, 0x00])}
    assert reg.model_components("tiny-dcgan") == ["flipad-tiny-dcgan", "yu2019-closed"]


def test_reimport_is_idempotent_and_picks_up_new_codes(reg: Registry, fake_repo: Path) -> None:
    reg.import_shipped(fake_repo)
    before = row_counts(reg)
    again = reg.import_shipped(fake_repo)
    # the same-recipe baseline variant is skipped every time: its decoder reads nothing
    assert again["unchanged"] == 8 and again["skipped"] == 1
    assert sum(v for k, v in again.items() if k not in ("unchanged", "skipped")) == 0
    assert row_counts(reg) == before
    from genattr.watermark.fingerprint_index import register

    idx_dir = fake_repo / "models" / "yu2022" / "index"
    register(idx_dir, "dave", [0, 0, 1, 1] * 4)  # a user registered after the first import
    man_path = fake_repo / "models" / "yu2022" / "manifest.json"
    man = json.loads(man_path.read_text())
    man["index"].pop("manifest_sha256")  # the index is expected to grow; its manifest hash is not pinned here
    man_path.write_text(json.dumps(man))
    third = reg.import_shipped(fake_repo)
    assert third["yu2022-codes"] == 1 and third["yu2022-index"] == 0
    assert sorted(c.user for c in reg.list_codes("yu2022-index")) == ["dave", "example-000", "example-001",
                                                                       "example-002"]


def test_optional_families_may_be_absent(reg: Registry, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    build_fake_repo(root, kim=False, yu2022=False)
    counts = reg.import_shipped(root)
    assert counts["zoo"] == 2 and counts["classifier"] == 1 and counts["kim-keys"] == counts["yu2022-index"] == 0


@pytest.mark.parametrize("tamper", ["zoo-weights", "classifier-state", "kim-user", "index-codes"])
def test_tampered_file_writes_nothing(reg: Registry, fake_repo: Path, weights, tamper: str) -> None:
    d, _ = weights("pre-existing")
    reg.add_model(name="pre-existing", kind="external", architecture="x", path=str(d))
    before = row_counts(reg)
    target = {"zoo-weights": fake_repo / "zoo" / "tiny-lsgan" / "model.safetensors",
              "classifier-state": fake_repo / "models" / "yu2019" / "closed" / "state.safetensors",
              "kim-user": fake_repo / "models" / "kim2021" / "orthogonal" / "alice" / "model.safetensors",
              "index-codes": next((fake_repo / "models" / "yu2022" / "index").glob("codes-*.npy"))}[tamper]
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01  # one flipped bit
    target.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match"):
        reg.import_shipped(fake_repo)
    assert row_counts(reg) == before  # the models imported before the bad file were rolled back too


def test_unregistered_candidate_writes_nothing(reg: Registry, fake_repo: Path) -> None:
    state = fake_repo / "models" / "flipad" / "tiny-dcgan" / "state.json"
    state.write_text(json.dumps({"json": {"candidates_": ["not-in-the-zoo"]}}))
    man_path = fake_repo / "models" / "flipad" / "manifest.json"
    man = json.loads(man_path.read_text())
    import hashlib

    man["models"]["tiny-dcgan"]["files"]["state.json"] = hashlib.sha256(state.read_bytes()).hexdigest()
    man_path.write_text(json.dumps(man))
    with pytest.raises(ConfigError, match="not-in-the-zoo"):
        reg.import_shipped(fake_repo)
    assert sum(row_counts(reg).values()) == 0


def test_changed_model_is_reported_not_overwritten(reg: Registry, fake_repo: Path) -> None:
    reg.import_shipped(fake_repo)
    before = row_counts(reg)
    weights = fake_repo / "zoo" / "tiny-dcgan" / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + b"\0")
    man_path = fake_repo / "zoo" / "manifest.json"
    man = json.loads(man_path.read_text())
    import hashlib

    man["models"]["tiny-dcgan"]["file_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    man_path.write_text(json.dumps(man))  # a rebuilt zoo model, consistently manifested
    with pytest.raises(ConfigError, match="rebuilt"):
        reg.import_shipped(fake_repo)
    assert row_counts(reg) == before


def test_unlisted_folders_are_skipped_and_nothing_is_an_error(reg: Registry, fake_repo: Path, tmp_path) -> None:
    (fake_repo / "models" / "flipad" / "someone-elses").mkdir()
    assert reg.import_shipped(fake_repo)["skipped"] == 2  # the folder and the yu2022 baseline (no decoder)
    with pytest.raises(DataError, match="nothing shipped"):
        reg.import_shipped(tmp_path / "empty")


def test_default_root_follows_genattr_home(reg: Registry, fake_repo: Path, monkeypatch) -> None:
    for var in ("GENATTR_ZOO_DIR", "GENATTR_MODELS_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GENATTR_HOME", str(fake_repo))
    assert reg.import_shipped()["zoo"] == 2
