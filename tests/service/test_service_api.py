"""Every endpoint through FastAPI's TestClient: attribution (order, batching, the deep flag), the registry reads,
token-protected writes, the schema, health, the page; the scripted pipeline shows what the service passes on."""

from __future__ import annotations

import hashlib

import pytest

from genattr.unified import SCHEMA_VERSION
from tests.service.conftest import png, sha

SHA = hashlib.sha256(b"some weights").hexdigest()


def _files(*blobs: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (f"img{i}.png", b, "image/png")) for i, b in enumerate(blobs)]


def test_attribute_one_image(client, scripted) -> None:
    data = png(200)
    r = client.post("/v1/attribute", files=_files(data))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["schema"] == SCHEMA_VERSION
    [res] = body["results"]
    assert res["answer"] == "level-200" and res["filename"] == "img0.png" and res["image_sha256"] == sha(data)
    assert res["schema"] == SCHEMA_VERSION and res["evidence"][0]["method"] == "classifier"
    [call] = scripted.calls
    # the model tensor convention: float32 (n, C, H, W) in [-1, 1], the original bytes alongside
    assert call["shape"] == (1, 1, 8, 8) and call["dtype"] == "torch.float32" and call["n_bytes"] == 1
    assert call["deep"] is False and -1 <= call["range"][0] <= call["range"][1] <= 1


def test_upload_order_is_kept_in_one_batch(client, scripted) -> None:
    blobs = [png(v) for v in (10, 250, 0, 128)]
    r = client.post("/v1/attribute", files=_files(*blobs))
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["answer"] for x in res] == ["level-10", "level-250", "level-0", "level-128"]
    assert [x["image_sha256"] for x in res] == [sha(b) for b in blobs]
    assert [x["filename"] for x in res] == [f"img{i}.png" for i in range(4)]
    assert [c["shape"][0] for c in scripted.calls] == [4]


def test_jpeg_webp_and_grey_rgb_are_accepted(client) -> None:
    blobs = [png(60, fmt="JPEG"), png(90, fmt="WEBP"), png(120, mode="RGB")]  # RGB with equal channels is grey
    r = client.post("/v1/attribute", files=_files(*blobs))
    assert r.status_code == 200, r.text
    levels = [int(x["answer"].split("-")[1]) for x in r.json()["results"]]
    assert abs(levels[0] - 60) <= 2 and abs(levels[1] - 90) <= 2 and levels[2] == 120


@pytest.mark.parametrize(("query", "expected"), [("?deep=true", True), ("?deep=false", False), ("", False)])
def test_deep_flag_reaches_the_pipeline(client, scripted, query, expected) -> None:
    r = client.post(f"/v1/attribute{query}", files=_files(png(1)))
    assert r.status_code == 200, r.text
    assert scripted.calls[-1]["deep"] is expected


def test_deep_flag_must_be_a_boolean(client) -> None:
    r = client.post("/v1/attribute?deep=maybe", files=_files(png(1)))
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


def test_models_read_without_a_token(client, registry) -> None:
    rec = registry.add_model(name="g-one", kind="external", architecture="dcgan", sha256=SHA, owner="lab")
    r = client.get("/v1/models")
    assert r.status_code == 200
    assert [m["name"] for m in r.json()["models"]] == ["g-one"]
    assert client.get("/v1/models?kind=zoo").json()["models"] == []
    for key in (rec.id, "g-one", rec.id[:12]):
        got = client.get(f"/v1/models/{key}")
        assert got.status_code == 200, got.text
        assert got.json()["id"] == SHA and got.json()["owner"] == "lab"


def test_unknown_model_is_404(client) -> None:
    for key in ("nope", "0" * 64, "bad name with spaces"):
        r = client.get(f"/v1/models/{key}")
        assert r.status_code == 404, (key, r.text)
        assert r.json()["error"]["code"] == "unknown_model"


def test_bad_kind_filter_is_422(client) -> None:
    r = client.get("/v1/models?kind=cartoon")
    assert r.status_code == 422 and "kind" in r.json()["error"]["message"]


def test_writes_need_a_valid_token(client, registry, token) -> None:
    body = {"name": "mine", "kind": "external", "architecture": "stylegan2", "sha256": SHA}
    for headers, code in (({}, "missing_token"), ({"Authorization": "Bearer gat_wrong"}, "bad_token"),
                          ({"Authorization": f"Basic {token}"}, "missing_token"),
                          ({"Authorization": "Bearer " + "x" * 5000}, "bad_token")):
        r = client.post("/v1/models", json=body, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == code, r.text
        assert r.headers["www-authenticate"] == "Bearer"
        d = client.delete("/v1/models/whatever", headers=headers)
        assert d.status_code == 401
    assert registry.list_models() == []

    auth = {"Authorization": f"Bearer {token}"}
    r = client.post("/v1/models", json=body, headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["id"] == SHA and r.json()["name"] == "mine"
    assert registry.get_model("mine").architecture == "stylegan2"
    again = client.post("/v1/models", json=body, headers=auth)
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_registered"

    assert client.delete("/v1/models/nope", headers=auth).status_code == 404
    assert client.delete(f"/v1/models/{SHA}", headers=auth).status_code == 204
    assert registry.list_models() == []
    assert client.get(f"/v1/models/{SHA}").status_code == 404


def test_revoked_token_is_refused(client, registry, token) -> None:
    registry.revoke_token("tests")
    r = client.delete("/v1/models/x", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "bad_token"


@pytest.mark.parametrize("change", [{"name": "has space"}, {"kind": "cartoon"}, {"sha256": "abc"},
                                    {"name": "real"}, {"architecture": "a\x00b"}, {"meta": {"x": "\x00"}},
                                    {"path": "/etc/passwd"}, {"architecture": "x" * 65}])
def test_bad_model_bodies_are_422(client, registry, token, change) -> None:
    body = {"name": "mine", "kind": "external", "architecture": "dcgan", "sha256": SHA} | change
    r = client.post("/v1/models", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] in ("validation_error", "invalid_input")
    assert registry.list_models() == []


def test_schema_endpoint_describes_the_answer(client) -> None:
    import jsonschema
    from referencing import Registry, Resource

    schema = client.get("/v1/schema").json()
    r = client.post("/v1/attribute", files=_files(png(3), png(4)))
    refs = Registry().with_resource(schema["$id"], Resource.from_contents(schema))
    envelope = jsonschema.Draft202012Validator({"$ref": schema["$id"] + "#/$defs/results"}, registry=refs)
    envelope.validate(r.json())
    jsonschema.validate(r.json()["results"][0], schema)
    with pytest.raises(jsonschema.ValidationError):  # the check can fail
        envelope.validate({"schema": SCHEMA_VERSION, "results": [{"answer": ""}]})


def test_health_docs_and_page(client) -> None:
    h = client.get("/healthz")
    assert h.status_code == 200 and h.json()["status"] == "ok" and h.json()["image_shape"] == [1, 8, 8]
    api = client.get("/openapi.json").json()
    assert {"/v1/attribute", "/v1/models", "/v1/models/{model_id}", "/v1/schema", "/healthz"} <= set(api["paths"])
    assert "multipart/form-data" in api["paths"]["/v1/attribute"]["post"]["requestBody"]["content"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()  # Swagger UI is served from the wheel: works without internet
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert client.get(asset).status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "Who made this image?" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    # offline: the page references nothing outside this server
    assert "http://" not in page.text.replace("http://www.w3.org", "") and "https://" not in page.text


def test_unknown_route_uses_the_error_shape(client) -> None:
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    m = client.put("/v1/models")
    assert m.status_code == 405 and m.json()["error"]["code"] == "method_not_allowed"
