"""Models: add / get / list / remove, duplicates, unknown and invalid names, sha256 ids — on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from genattr.errors import ConfigError, DataError, IntegrityError, UnknownNameError
from genattr.registry import Registry


def test_add_get_list_remove(reg: Registry, weights) -> None:
    d1, h1 = weights("g1")
    d2, h2 = weights("g2")
    before = datetime.now(UTC)
    m1 = reg.add_model(name="g1", kind="zoo", architecture="dcgan", path=str(d1), meta={"seed": 1, "fd": 1.5})
    m2 = reg.add_model(name="g2", kind="keyed-user", architecture="lsgan", path=str(d2), owner="alice")
    assert m1.id == h1 and m2.id == h2 and m1.path == str(d1.resolve())
    assert m1.meta == {"seed": 1, "fd": 1.5} and m2.owner == "alice" and m1.owner is None
    assert m1.created.tzinfo is not None and before - timedelta(seconds=1) <= m1.created <= datetime.now(UTC)
    assert reg.get_model("g1") == m1  # by name (round trip: every field, tz-aware UTC created)
    assert reg.get_model(h1) == m1  # by id
    assert reg.get_model(h1[:10]) == m1  # by unambiguous id prefix
    assert [m.name for m in reg.list_models()] == ["g1", "g2"]
    assert [m.name for m in reg.list_models("keyed-user")] == ["g2"]
    assert reg.list_models("external") == []
    reg.remove_model("g1")
    assert [m.name for m in reg.list_models()] == ["g2"]
    with pytest.raises(UnknownNameError, match="g1"):
        reg.get_model("g1")
    reg.remove_model(h2[:12])
    assert reg.list_models() == []


def test_sha256_given_without_weights_and_checked_with_them(reg: Registry, weights) -> None:
    digest = hashlib.sha256(b"remote weights").hexdigest()
    ext = reg.add_model(name="ext", kind="external", architecture="sd-1.5", sha256=digest)
    assert ext.id == digest and ext.path is None
    d, h = weights("g")
    with pytest.raises(IntegrityError, match="sha256"):
        reg.add_model(name="g", kind="zoo", architecture="dcgan", path=str(d), sha256="0" * 64)
    assert reg.add_model(name="g", kind="zoo", architecture="dcgan", path=str(d), sha256=h).id == h
    # a path to the weights file itself works too
    d2, h2 = weights("g2")
    assert reg.add_model(name="g2", kind="zoo", architecture="dcgan", path=str(d2 / "model.safetensors")).id == h2


def test_duplicates_are_refused(reg: Registry, weights) -> None:
    d1, _ = weights("g1")
    d2, _ = weights("g2")
    reg.add_model(name="g1", kind="zoo", architecture="dcgan", path=str(d1))
    with pytest.raises(ConfigError, match="already registered"):
        reg.add_model(name="g1", kind="zoo", architecture="dcgan", path=str(d2))  # same name
    with pytest.raises(ConfigError, match="already registered as 'g1'"):
        reg.add_model(name="copy", kind="zoo", architecture="dcgan", path=str(d1))  # same weights
    assert [m.name for m in reg.list_models()] == ["g1"]


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"name": "bad name"}, ConfigError, "not valid"),
    ({"name": "../etc"}, ConfigError, "not valid"),
    ({"name": "x" * 129}, ConfigError, "not valid"),
    ({"name": "real"}, ConfigError, "reserved"),
    ({"name": "unknown"}, ConfigError, "reserved"),
    ({"kind": "gan"}, ConfigError, "unknown model kind"),
    ({"architecture": ""}, ConfigError, "architecture"),
    ({"sha256": "ABC"}, ConfigError, "64 lowercase hex"),
    ({"path": "/nonexistent/dir"}, DataError, "not found"),
])
def test_invalid_models(reg: Registry, kwargs, error, match) -> None:
    args = {"name": "ok", "kind": "external", "architecture": "dcgan", "sha256": "a" * 64} | kwargs
    if "path" in kwargs:
        args.pop("sha256")
    with pytest.raises(error, match=match):
        reg.add_model(**args)
    with pytest.raises(ConfigError, match="path of its weights or their sha256"):
        reg.add_model(name="ok", kind="external", architecture="dcgan")
    assert reg.list_models() == []


def test_unknown_names(reg: Registry) -> None:
    for call in (reg.get_model, reg.remove_model, reg.get_component, reg.remove_component, reg.list_codes):
        with pytest.raises(UnknownNameError, match="nope"):
            call("nope")
    with pytest.raises(ConfigError, match="unknown model kind"):
        reg.list_models("gan")
    with pytest.raises(ConfigError, match="unknown component kind"):
        reg.list_components("gan")


def test_ambiguous_id_prefix(reg: Registry) -> None:
    reg.add_model(name="a", kind="external", architecture="x", sha256="abcdef01" + "0" * 56)
    reg.add_model(name="b", kind="external", architecture="x", sha256="abcdef01" + "1" * 56)
    with pytest.raises(ConfigError, match="ambiguous"):
        reg.get_model("abcdef01")
    assert reg.get_model("abcdef011").name == "b"


def test_reopen_keeps_the_data(url: str, weights) -> None:
    d, h = weights("g1")
    with Registry.open(url) as r:
        r.add_model(name="g1", kind="zoo", architecture="dcgan", path=str(d))
    with Registry.open(url, create=False) as r:
        assert r.get_model("g1").id == h
