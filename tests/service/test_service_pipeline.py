"""The service in front of the real pipeline, built by the app itself from a tiny registry (SQLite, and
PostgreSQL where a server is reachable): answers equal a direct library call, keep upload order, survive registry
writes, and a tampered component is a 503, not a wrong answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from genattr.data import to_uint8
from genattr.service import ServiceSettings, create_app
from genattr.unified import METHODS, Pipeline
from tests.service.conftest import png, sha
from tests.service.tiny import MODELS, build_tiny_registry, real_images, samples


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("service-world")
    url = f"sqlite:///{root / 'registry.db'}"
    ids = build_tiny_registry(root, url)
    import torch

    x = torch.cat([samples(root, MODELS[0], 2, 100), real_images(1, 101), samples(root, MODELS[1], 1, 102)])
    blobs = [png(a[0]) for a in to_uint8(x).numpy()]
    return {"root": root, "url": url, "ids": ids, "blobs": blobs}


def _client(url: str) -> TestClient:
    return TestClient(create_app(ServiceSettings(database_url=url, max_deep_files=1)))


def _post(c: TestClient, blobs: list[bytes], query: str = ""):
    return c.post(f"/v1/attribute{query}", files=[("files", (f"im{i}.png", b, "image/png"))
                                                   for i, b in enumerate(blobs)])


def test_answers_equal_the_library_and_keep_order(world) -> None:
    from genattr.data import load_images

    with _client(world["url"]) as c:
        assert c.get("/healthz").json()["pipeline"] == "loaded"  # built at startup from the registry
        r = _post(c, world["blobs"])
    assert r.status_code == 200, r.text
    got = r.json()["results"]
    assert [g["image_sha256"] for g in got] == [sha(b) for b in world["blobs"]]
    allowed = {*MODELS, "real", "unknown", "ambiguous"}
    for g in got:
        assert g["answer"] in allowed and 0 <= g["confidence"] <= 1
        assert [e["method"] for e in g["evidence"]] == list(METHODS)
        assert g["model_id"] == world["ids"].get(g["answer"])
        # the registered classifier ran on every image (the policy's answer is the unified tests' business)
        [clf] = [e for e in g["evidence"] if e["method"] == "classifier"]
        assert clf["verdict"] in allowed and clf["details"]["component"] == "tiny-classifier"

    # the same files through the library's own decoding and a pipeline built independently
    paths = []
    for i, b in enumerate(world["blobs"]):
        p = Path(world["root"]) / f"direct-{i}.png"
        p.write_bytes(b)
        paths.append(p)
    x = load_images(paths, size=None)
    direct = Pipeline.from_registry(world["url"]).attribute(x, image_bytes=world["blobs"])
    assert [{**v.to_json(), "filename": f"im{i}.png"} for i, v in enumerate(direct)] == got


def test_deep_shows_the_reconstruction(world) -> None:
    with _client(world["url"]) as c:
        r = _post(c, world["blobs"][:1], "?deep=true")
        assert r.status_code == 200, r.text
        [ev] = [e for e in r.json()["results"][0]["evidence"] if e["method"] == "seed-reconstruction"]
        assert ev["details"]["reconstruction"].startswith("data:image/png;base64,"), ev
        assert ev["details"]["best"] in MODELS
        assert _post(c, world["blobs"][:2], "?deep=true").json()["error"]["code"] == "too_many_files"


def test_registry_writes_rebuild_the_pipeline(world, tmp_path) -> None:
    import shutil

    from genattr.registry import Registry

    db = tmp_path / "copy.db"
    shutil.copy(Path(world["root"]) / "registry.db", db)
    url = f"sqlite:///{db}"
    with Registry.open(url) as reg:
        token = reg.create_token("writer")
    auth = {"Authorization": f"Bearer {token}"}
    with _client(url) as c:
        state = c.app.state.genattr
        before = state.pipeline()
        r = c.post("/v1/models", headers=auth, json={"name": "outside-gan", "kind": "external",
                                                     "architecture": "stylegan2", "sha256": "ab" * 32})
        assert r.status_code == 201, r.text
        assert _post(c, world["blobs"][:1]).status_code == 200
        after = state.pipeline()
        assert after is not before and "outside-gan" in after.models
        busy = c.delete(f"/v1/models/{MODELS[0]}", headers=auth)
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "model_in_use"
        assert c.delete("/v1/models/outside-gan", headers=auth).status_code == 204


def test_wrong_size_names_the_models_size(world) -> None:
    with _client(world["url"]) as c:
        r = _post(c, [png(0, (64, 64))])
    assert r.status_code == 422 and "32×32" in r.json()["error"]["message"]


def test_tampered_component_is_503(world) -> None:
    from genattr.registry import Registry

    with Registry.open(world["url"]) as reg:
        weights = Path(reg.get_component("tiny-classifier").path) / "state.safetensors"
    original = weights.read_bytes()
    try:  # one flipped bit in the registered classifier's weights
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with _client(world["url"]) as c:
            r = _post(c, world["blobs"][:1])
            assert r.status_code == 503, r.text
            err = r.json()["error"]
            assert err["code"] == "pipeline_unavailable" and "sha256" in err["message"]
    finally:
        weights.write_bytes(original)


def test_postgres_registry(tmp_path, pg_schema) -> None:
    ids = build_tiny_registry(tmp_path, pg_schema)
    blob = png(to_uint8(real_images(1, 5)).numpy()[0, 0])
    with _client(pg_schema) as c:
        assert c.get("/healthz").status_code == 200
        assert sorted(m["id"] for m in c.get("/v1/models").json()["models"]) == sorted(ids.values())
        r = _post(c, [blob])
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["image_sha256"] == sha(blob)
    np.testing.assert_equal(len(r.json()["results"]), 1)
