"""The pipeline end to end: the log step (exact hash, inclusion proof), the JSON schema of every verdict, pickling
(what the Ray engine ships), seed reconstruction on request, loading from the registry, and genattr.attribute."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from genattr.unified import (
    SCHEMA_VERSION,
    Pipeline,
    Policy,
    Verdict,
    results_json,
    results_json_schema,
    verdict_json_schema,
)
from tests.unified.helpers import (
    RowDecoder,
    build_registry,
    check_verdict_json,
    classifier,
    detector,
    fingerprint_index,
    keyset,
    make_images,
    validation,
)

POLICY = Policy(alpha=0.02, alpha_detect=0.05)
IDS = {"gen-a": "a" * 64, "gen-b": "b" * 64, "alice": "c" * 64, "bob": "d" * 64, "carol": "e" * 64}


def _png(x: torch.Tensor) -> bytes:
    from PIL import Image

    arr = ((x[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A log holding one real-looking image, logged by gen-a's weights, with a signed checkpoint."""
    from genattr.ledger import Entry, TransparencyLog, commit_seed, generate_signer, pixel_hash, seed_material

    d = tmp_path_factory.mktemp("log")
    log_key, owner = generate_signer("example.com/unified-test"), generate_signer("owner.example/a")
    img = make_images("real", 1, 42)
    u8 = ((img[0, 0] + 1) * 127.5).round().to(torch.uint8).numpy()
    with TransparencyLog.create(d / "log.db", "example.com/unified-test", log_key.vkey, owners=[owner.vkey]) as log:
        for i, mid in enumerate((IDS["gen-a"], "f" * 64)):
            e = Entry.create(model_id=bytes.fromhex(mid), output_hash=pixel_hash(u8 if i == 0 else u8[::-1].copy()),
                             seed_commitment=commit_seed(seed_material(i), b"\x01" * 32), owner=owner,
                             timestamp_ms=1_700_000_000_000)
            log.append([e])
        log.sign_checkpoint(log_key)
    return {"path": d / "log.db", "vkey": log_key.vkey, "image": img, "flipped": img.flip(2)}


@pytest.fixture(scope="module")
def pipe(logged) -> Pipeline:
    p = Pipeline.from_parts(classifiers={"clf": classifier()}, detectors={"det-a": detector()},
                            keys={"keys": keyset()}, fingerprints={"fp": (RowDecoder(), fingerprint_index())},
                            logs={"log": (logged["path"], logged["vkey"])}, policy=POLICY, models=IDS)
    p.calibrate(validation())
    return p


def test_log_hit_is_decisive_with_a_verified_proof(pipe: Pipeline, logged) -> None:
    from genattr.ledger import merkle
    from genattr.ledger.bundle import TlogProof

    v = pipe.attribute(logged["image"])[0]
    assert (v.answer, v.decided_by, v.confidence, v.model_id) == ("gen-a", "log", 1.0, IDS["gen-a"])
    (ev,) = v.evidence_of("log")
    assert ev.details["found"] and ev.details["index"] == 0 and ev.p_value == 0.0
    proof = TlogProof.parse(ev.details["proof_bundle"])
    cp_root = __import__("base64").b64decode(ev.details["root"])
    merkle.verify_inclusion(merkle.leaf_hash(proof.extra or pipe.logs[0]._log().leaf(0)), proof.index,
                            ev.details["tree_size"], list(proof.proof), cp_root)
    assert v.evidence_of("classifier")[0].details["skipped"] == "not needed: log answered"
    # the same through the file's bytes: the decoded pixels are what was logged; the file's sha256 is reported
    data = _png(logged["image"][0])
    v2 = pipe.attribute(logged["image"], image_bytes=[data])[0]
    assert v2.answer == "gen-a" and v2.image_sha256 == __import__("hashlib").sha256(data).hexdigest()


def test_log_miss_and_unregistered_logger_fall_through(pipe: Pipeline, logged) -> None:
    v = pipe.attribute(make_images("real", 1, 43))[0]  # not logged
    assert v.answer == "real" and v.evidence_of("log")[0].details["found"] is False
    v = pipe.attribute(logged["flipped"])[0]  # logged, but by weights nobody registered
    (ev,) = v.evidence_of("log")
    assert ev.details["found"] is True and ev.details["registered"] is False and ev.verdict == "unknown"
    assert v.decided_by == "classifier" and v.answer == "real"


def test_every_verdict_matches_the_schema(pipe: Pipeline, logged) -> None:
    x = torch.cat([logged["image"], *(make_images(k, 1, 60) for k in ("real", "gen-a", "clone-a", "alice",
                                                                       "alice+bob", "carol", "stranger"))])
    verdicts = pipe.attribute(x)
    assert [v.answer for v in verdicts] == ["gen-a", "real", "gen-a", "unknown", "alice", "ambiguous", "carol",
                                            "unknown"]
    for v in verdicts:
        data = json.loads(json.dumps(v.to_json(), allow_nan=False))
        check_verdict_json(data)
        assert data["schema"] == SCHEMA_VERSION and Verdict.from_json(data).to_json() == data
    envelope = results_json([*verdicts, {"path": "broken.png", "error": "not an image"}])
    envelope["results"][0]["path"] = "a.png"
    check_verdict_json(envelope, envelope=True)
    with pytest.raises(AssertionError):  # an item that is neither a verdict nor an error
        check_verdict_json(results_json([{"path": "x.png"}]), envelope=True)
    with pytest.raises(AssertionError):
        check_verdict_json(dict(verdicts[0].to_json(), confidence=1.5))


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    for schema in (verdict_json_schema(), results_json_schema()):
        jsonschema.Draft202012Validator.check_schema(schema)


def test_pickled_pipeline_answers_alike(pipe: Pipeline, logged) -> None:
    """What the Ray engine ships to its workers: open log handles and faiss indexes are rebuilt there."""
    x = torch.cat([logged["image"], make_images("carol", 2, 61), make_images("gen-b", 2, 62)])
    want = [v.to_json() for v in pipe.attribute(x)]
    clone = pickle.loads(pickle.dumps(pipe))
    assert [v.to_json() for v in clone.attribute(x)] == want


def test_describe_lists_what_was_loaded(pipe: Pipeline) -> None:
    d = pipe.describe()
    assert d["image_shape"] == [1, 32, 32] and d["methods"] == {"log": 1, "kim-keys": 1, "yu2022": 1,
                                                                "classifier": 1, "flipad": 1}
    assert {c["name"] for c in d["components"]} == {"log", "keys", "fp", "clf", "det-a"}
    json.dumps(d, allow_nan=False)


def test_bad_input_is_a_clear_error(pipe: Pipeline) -> None:
    from genattr.attribution.inputs import InvalidInputError
    from genattr.errors import ConfigError

    with pytest.raises(InvalidInputError, match="expected images of shape"):
        pipe.attribute(torch.zeros(1, 1, 64, 64))
    with pytest.raises(InvalidInputError, match="outside"):
        pipe.attribute(torch.full((1, 1, 32, 32), 200.0))
    with pytest.raises(ConfigError):
        pipe.attribute(torch.zeros(2, 1, 32, 32), image_bytes=[b""])
    assert pipe.attribute(torch.zeros(0, 1, 32, 32)) == []


# -- seed reconstruction ---------------------------------------------------------------------------------------------
class TinyGen(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.latent_dim = 4
            self.net = nn.Sequential(nn.Linear(4, 32 * 32), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 32, 32)


def test_deep_reconstructs_over_the_shortlist() -> None:
    from genattr.attribution.baselines import NearestMean

    gens = {"g0": TinyGen(0).eval(), "g1": TinyGen(1).eval()}
    with torch.no_grad():
        data = {n: g(torch.randn(30, 4, generator=torch.Generator().manual_seed(i))) for i, (n, g) in
                enumerate(gens.items())}
    att = NearestMean().fit(data)  # closed set over g0/g1
    p = Pipeline.from_parts(classifiers={"clf": att}, generators=gens,
                            policy=Policy(deep_steps=40, deep_restarts=2, deep_top=2))
    with torch.no_grad():
        x = gens["g1"](torch.randn(2, 4, generator=torch.Generator().manual_seed(9)))
    fast = p.attribute(x)
    assert "deep=False" in fast[0].evidence_of("seed-reconstruction")[0].details["skipped"]
    deep = p.attribute(x, deep=True)
    for v in deep:
        (ev,) = v.evidence_of("seed-reconstruction")
        assert ev.verdict == "g1" and ev.details["best"] == "g1"
        assert ev.details["distances"][0]["candidate"] == "g1"
        assert ev.details["reconstruction"].startswith("data:image/png;base64,")
        assert v.answer == fast[0].answer  # not ambiguous: reconstruction is evidence, not the decider


# -- the registry --------------------------------------------------------------------------------------------------
@pytest.fixture
def registry(tmp_path):
    from genattr.registry import Registry

    reg = Registry.open(build_registry(tmp_path))
    yield reg
    reg.close()


def test_from_registry_loads_every_component(registry, tmp_path) -> None:
    p = Pipeline.from_registry(registry, calibration=None, policy=POLICY)
    assert p.describe()["methods"] == {"log": 0, "kim-keys": 1, "yu2022": 0, "classifier": 1, "flipad": 1}
    cal = p.calibrate(validation())
    x = torch.cat([make_images(k, 1, 80) for k in ("real", "gen-a", "gen-b", "alice", "bob", "stranger")])
    vs = p.attribute(x)
    assert [v.answer for v in vs] == ["real", "gen-a", "gen-b", "alice", "bob", "unknown"]
    ids = {m.name: m.id for m in registry.list_models()}
    assert vs[1].model_id == ids["gen-a"] and vs[3].model_id == ids["alice"] and vs[0].model_id is None
    # a saved calibration is picked up by path; the policy chosen with it comes along
    cal.meta["policy"] = Policy(alpha=0.03).to_json()
    path = cal.save(tmp_path / "cal.json")
    p2 = Pipeline.from_registry(registry, calibration=path)
    assert p2.policy.alpha == 0.03 and p2.classifiers[0].calibration


def test_a_tampered_component_is_refused(registry, tmp_path) -> None:
    from genattr.errors import IntegrityError

    f = tmp_path / "clf" / "state.safetensors"
    f.write_bytes(f.read_bytes()[:-1] + b"\x00")
    with pytest.raises(IntegrityError, match="clf"):
        Pipeline.from_registry(registry, calibration=None)


def test_genattr_attribute_is_exported_lazily(registry) -> None:
    import subprocess
    import sys

    code = "import sys, genattr; assert 'torch' not in sys.modules and 'genattr.unified' not in sys.modules; " \
           "from genattr import attribute; assert callable(attribute) and 'genattr.unified' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    import genattr

    vs = genattr.attribute(make_images("gen-b", 2, 81), registry)
    assert [v.answer for v in vs] == ["gen-b", "gen-b"]  # closed-set here (no calibration): the arg-max
    assert np.isclose(vs[0].confidence, 0.0)


def test_a_registered_log_origin_is_consulted_first(tmp_path) -> None:
    from genattr.ledger import Entry, TransparencyLog, commit_seed, generate_signer, pixel_hash, seed_material
    from genattr.registry import Registry

    key, owner = generate_signer("example.com/reg-log"), generate_signer("owner.example/b")
    url = build_registry(tmp_path / "reg")
    with Registry.open(url) as reg:
        gen_b = reg.get_model("gen-b").id
    img = make_images("real", 1, 77)  # looks real, but gen-b's owner logged exactly these pixels
    u8 = ((img[0, 0] + 1) * 127.5).round().to(torch.uint8).numpy()
    with TransparencyLog.create(tmp_path / "log.db", "example.com/reg-log", key.vkey, owners=[owner.vkey]) as log:
        log.append([Entry.create(model_id=bytes.fromhex(gen_b), output_hash=pixel_hash(u8), owner=owner,
                                 seed_commitment=commit_seed(seed_material(0), b"\x02" * 32), timestamp_ms=1)])
        log.sign_checkpoint(key)
    with Registry.open(url) as reg:
        reg.add_component(kind="log-origin", name="log", path=str(tmp_path / "log.db"),
                          meta={"origin": "example.com/reg-log", "verifier_key": key.vkey})
        p = Pipeline.from_registry(reg, calibration=None)
    v = p.attribute(img)[0]
    assert (v.answer, v.decided_by, v.model_id) == ("gen-b", "log", gen_b)
    other = generate_signer("example.com/reg-log")  # a log whose key is not the registered verifier key
    with Registry.open(url) as reg:
        reg.remove_component("log")
        reg.add_component(kind="log-origin", name="log", path=str(tmp_path / "log.db"),
                          meta={"origin": "example.com/reg-log", "verifier_key": other.vkey})
        from genattr.errors import GenattrError

        with pytest.raises(GenattrError, match=r"log-origin log.*not the trusted key"):
            Pipeline.from_registry(reg, calibration=None)  # refused at load, not at the first request
