"""Attribution components: one round trip per kind (ordered candidates, keys, codes, log origins), removal
rules and invalid input — on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from genattr.errors import ConfigError, IntegrityError, UnknownNameError
from genattr.ledger.note import Ed25519Signer
from genattr.registry import Registry
from tests.registry.helpers import fake_weights, row_counts


@pytest.fixture
def three(reg: Registry, weights) -> list[str]:
    names = ["g-c", "g-a", "g-b"]  # registered in non-alphabetical order on purpose
    for n in names:
        d, _ = weights(n)
        reg.add_model(name=n, kind="zoo", architecture="dcgan", path=str(d))
    return names


def test_classifier_keeps_candidate_order_and_real(reg: Registry, three, tmp_path) -> None:
    d = tmp_path / "clf"
    sha = fake_weights(d, "state.safetensors")
    order = ["g-b", "real", "g-c", "g-a"]
    rec = reg.add_component(kind="classifier", name="clf", path=str(d), models=order,
                            meta={"attributor": "gan-fingerprint-classifier", "test_accuracy": 0.99})
    assert rec.models == tuple(order) and rec.sha256 == sha and rec.kind == "classifier"
    assert rec.path == str(d.resolve())
    assert rec.meta == {"attributor": "gan-fingerprint-classifier", "test_accuracy": 0.99}
    assert reg.get_component("clf") == rec
    assert reg.list_components() == [rec] and reg.list_components("classifier") == [rec]
    assert reg.list_components("flipad-detector") == []
    # candidates are stored by position, "real" without a model row
    assert row_counts(reg)["classifier_candidates"] == 4
    # a candidate id works as well as its name; the record gives names
    rec2 = reg.add_component(kind="classifier", name="clf2", path=str(d), models=[reg.get_model("g-a").id, "real"])
    assert rec2.models == ("g-a", "real")


def test_model_covered_by_a_component_cannot_be_removed(reg: Registry, three, tmp_path) -> None:
    d = tmp_path / "det"
    fake_weights(d, "state.safetensors")
    reg.add_component(kind="flipad-detector", name="det", path=str(d), models=["g-a"])
    with pytest.raises(ConfigError, match="covered by det"):
        reg.remove_model("g-a")
    assert reg.model_components("g-a") == ["det"]
    reg.remove_component("det")
    assert row_counts(reg)["flipad_detectors"] == 0 and row_counts(reg)["components"] == 0
    reg.remove_model("g-a")
    assert [m.name for m in reg.list_models()] == ["g-b", "g-c"]


def test_removing_a_component_removes_its_rows(reg: Registry, three, tmp_path) -> None:
    d = tmp_path / "clf"
    fake_weights(d, "state.safetensors")
    reg.add_component(kind="classifier", name="clf", path=str(d), models=["real", *three])
    reg.remove_component("clf")
    counts = row_counts(reg)
    assert counts["components"] == counts["classifiers"] == counts["classifier_candidates"] == 0
    assert counts["models"] == 3


def test_flipad_detector_and_kim_keys(reg: Registry, three, tmp_path) -> None:
    d = tmp_path / "det"
    fake_weights(d, "state.safetensors")
    det = reg.add_component(kind="flipad-detector", name="det", path=str(d), models=["g-b"], meta={"fnr": 0.005})
    assert det.models == ("g-b",) and det.meta == {"fnr": 0.005}
    with pytest.raises(ConfigError, match="exactly one model"):
        reg.add_component(kind="flipad-detector", name="det2", path=str(d), models=["g-a", "g-b"])
    k = tmp_path / "keys"
    sha = fake_weights(k, "keys.safetensors")
    ks = reg.add_component(kind="kim-keys", name="keys", path=str(k), models=["g-c", "g-a"], meta={"angle_deg": 90.0})
    assert ks.models == ("g-c", "g-a") and ks.sha256 == sha and ks.meta == {"angle_deg": 90.0}
    assert reg.get_component("keys") == ks


def test_yu2022_decoder_index_and_codes(reg: Registry, weights, tmp_path) -> None:
    d = tmp_path / "fp"
    fake_weights(d)
    dec = reg.add_component(kind="yu2022-decoder", name="fp16", path=str(d), meta={"code_bits": 16})
    assert dec.meta == {"code_bits": 16} and dec.models == ()
    inst_dir, _ = weights("inst")
    reg.add_model(name="inst", kind="fingerprint-instance", architecture="dcgan", path=str(inst_dir), owner="carol",
                  meta={"code": "00ff"})
    i = tmp_path / "index"
    fake_weights(i, "manifest.json", b"{}")
    idx = reg.add_component(kind="yu2022-index", name="idx", path=str(i), models=["inst"], meta={"code_bits": 16})
    assert idx.models == ("inst",)
    assert reg.add_codes("idx", [("alice", b"\x01\x02", None), ("bob", b"\x03\x04", None)]) == 2
    assert reg.add_codes("idx", [("alice", b"\x01\x02", None)]) == 0  # idempotent
    codes = {c.user: (c.code, c.model) for c in reg.list_codes("idx")}
    assert codes == {"alice": (b"\x01\x02", None), "bob": (b"\x03\x04", None), "carol": (b"\x00\xff", "inst")}
    with pytest.raises(IntegrityError, match="different code"):
        reg.add_codes("idx", [("alice", b"\x09\x09", None)])
    with pytest.raises(ConfigError, match="already registered to another user"):
        reg.add_codes("idx", [("dave", b"\x01\x02", None)])
    with pytest.raises(ConfigError, match="has 24 bits"):
        reg.add_codes("idx", [("erin", b"\x01\x02\x03", None)])
    with pytest.raises(UnknownNameError):
        reg.add_codes("fp16", [("x", b"\x00\x00", None)])  # not an index
    assert len(reg.list_codes("idx")) == 3  # failed writes rolled back
    plain_dir, _ = weights("plain")
    reg.add_model(name="plain", kind="zoo", architecture="dcgan", path=str(plain_dir))
    with pytest.raises(ConfigError, match="fingerprint-instance"):
        reg.add_component(kind="yu2022-index", name="idx2", path=str(i), models=["plain"])


def test_log_origin(reg: Registry, tmp_path) -> None:
    vkey = Ed25519Signer("example.com/log", bytes(range(32))).vkey
    rec = reg.add_component(kind="log-origin", name="mainlog", path="postgresql://logs/db",
                            meta={"origin": "example.com/log", "verifier_key": vkey, "note": "prod"})
    assert rec.sha256 is None and rec.models == ()
    assert rec.meta == {"origin": "example.com/log", "verifier_key": vkey, "note": "prod"}
    assert reg.get_component("mainlog") == rec
    with pytest.raises(ConfigError, match="verifier key"):
        reg.add_component(kind="log-origin", name="bad", path="x.db", meta={"origin": "o2", "verifier_key": "nope"})
    with pytest.raises(ConfigError, match="verifier_key"):
        reg.add_component(kind="log-origin", name="bad", path="x.db", meta={"origin": "o2"})
    with pytest.raises(ConfigError, match="conflicts"):  # origin is unique (database constraint)
        reg.add_component(kind="log-origin", name="other", path="y.db",
                          meta={"origin": "example.com/log", "verifier_key": vkey})
    assert [c.name for c in reg.list_components()] == ["mainlog"]


def test_invalid_components(reg: Registry, three, tmp_path) -> None:
    d = tmp_path / "clf"
    fake_weights(d, "state.safetensors")
    with pytest.raises(UnknownNameError, match="ghost"):
        reg.add_component(kind="classifier", name="c", path=str(d), models=["real", "ghost"])
    with pytest.raises(ConfigError, match="twice"):
        reg.add_component(kind="classifier", name="c", path=str(d), models=["g-a", "g-a"])
    with pytest.raises(ConfigError, match="needs its candidates"):
        reg.add_component(kind="classifier", name="c", path=str(d))
    with pytest.raises(ConfigError, match="unknown component kind"):
        reg.add_component(kind="detector", name="c", path=str(d))
    with pytest.raises(ConfigError, match="model's name"):
        reg.add_component(kind="classifier", name="g-a", path=str(d), models=["g-a"])
    with pytest.raises(ConfigError, match="covers no models"):
        reg.add_component(kind="yu2022-decoder", name="dec", path=str(d), sha256="a" * 64, models=["g-a"])
    with pytest.raises(IntegrityError):
        reg.add_component(kind="classifier", name="c", path=str(d), sha256="0" * 64, models=["g-a"])
    assert reg.list_components() == [] and row_counts(reg)["classifier_candidates"] == 0
    reg.add_component(kind="classifier", name="c", path=str(d), models=["g-a"])
    with pytest.raises(ConfigError, match="already registered"):
        reg.add_component(kind="classifier", name="c", path=str(d), models=["g-b"])
    with pytest.raises(ConfigError, match="component's name"):
        reg.add_model(name="c", kind="external", architecture="x", sha256="b" * 64)
