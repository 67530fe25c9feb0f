"""The combining policy on fixed seeds with hand-built tiny components: each obvious case gets the obvious answer
(key fires → that user; two keys → ambiguous; a classifier's pick that its detector rejects → unknown; real →
real; a fingerprint → its user; an unregistered source → unknown), and every verdict lists every method."""

from __future__ import annotations

import json

import pytest
import torch

from genattr.attribution.baselines import NearestMean
from genattr.errors import ConfigError
from genattr.unified import METHODS, Calibration, Pipeline, Policy, Verdict
from genattr.unified.conformal import PValue
from genattr.unified.findings import Finding
from genattr.unified.policy import Decision, break_tie, decide
from genattr.unified.verdict import Evidence
from genattr.watermark.keys import KeySet
from tests.unified.helpers import RowDecoder, classifier, detector, fingerprint_index, keyset, make_images, validation

POLICY = Policy(alpha=0.02, alpha_detect=0.05)


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    p = Pipeline.from_parts(classifiers={"clf": classifier()}, detectors={"det-a": detector()},
                            keys={"keys": keyset()}, fingerprints={"fp": (RowDecoder(), fingerprint_index())},
                            policy=POLICY)
    p.calibrate(validation())
    return p


def answers(pipe: Pipeline, kind: str, n: int = 6, seed: int = 500) -> list[Verdict]:
    return pipe.attribute(make_images(kind, n, seed))


def test_obvious_sources(pipe: Pipeline) -> None:
    for kind, want in (("real", "real"), ("gen-a", "gen-a"), ("gen-b", "gen-b")):
        vs = answers(pipe, kind)
        assert [v.answer for v in vs] == [want] * 6, (kind, [v.answer for v in vs])
        # every alternative was rejected at alpha, so the confidence is at least 1 - alpha
        assert all(v.confidence >= 1 - POLICY.alpha for v in vs)
        assert all(v.decided_by == "classifier" for v in vs)


def test_key_fires_then_that_user(pipe: Pipeline) -> None:
    for v in answers(pipe, "alice") + answers(pipe, "bob", seed=501):
        assert v.answer in ("alice", "bob") and v.decided_by == "kim-keys"
        (ev,) = v.evidence_of("kim-keys")
        assert ev.details["n_fired"] == 1 and ev.details["fired"][0]["user"] == v.answer
        # N keys × 1/(m + 1): above every one of the m = 150 calibration real images
        assert ev.p_value == pytest.approx(2 / 151) and v.confidence == pytest.approx(1 - 2 / 151)
        # later methods were skipped, and say why
        (clf,) = v.evidence_of("classifier")
        assert clf.verdict is None and clf.details["skipped"] == "not needed: kim-keys answered"
    assert {v.answer for v in answers(pipe, "alice")} == {"alice"}
    # without calibration images, the key file's compliance record (100 held-out real images) gives the p-value
    bare = Pipeline.from_parts(keys={"keys": keyset()}, policy=POLICY)
    (ev,) = bare.attribute(make_images("alice", 1, 5))[0].evidence_of("kim-keys")
    assert ev.verdict == "alice" and ev.p_value == pytest.approx(2 / 101)


def test_two_keys_fire_then_ambiguous(pipe: Pipeline) -> None:
    for v in answers(pipe, "alice+bob"):
        assert v.answer == "ambiguous" and v.decided_by == "kim-keys"
        assert sorted(f["user"] for f in v.evidence_of("kim-keys")[0].details["fired"]) == ["alice", "bob"]


def test_two_keys_fire_then_the_several_keys_rule() -> None:
    """Policy.several_keys: "unknown" (Kim et al.'s Eq. 2) decides unknown; "defer" leaves the image to the
    passive methods, which then answer (here the classifier: the images are real ones with two keys added)."""
    parts = {"classifiers": {"clf": classifier()}, "keys": {"keys": keyset()}}
    for rule in ("unknown", "defer"):
        p = Pipeline.from_parts(**parts, policy=Policy(alpha=0.02, alpha_detect=0.05, several_keys=rule))
        p.calibrate(validation())
        for v in p.attribute(make_images("alice+bob", 4, 503)):
            (ev,) = v.evidence_of("kim-keys")
            assert ev.details["n_fired"] == 2 and ev.verdict == "ambiguous"  # the key set's own view
            (clf,) = v.evidence_of("classifier")
            if rule == "unknown":
                assert v.answer == "unknown" and v.decided_by == "kim-keys" and clf.verdict is None
                assert "2 keys fired" in v.notes[0]
            else:
                assert v.decided_by == "classifier" and clf.verdict is not None and v.answer == clf.verdict
    # one key in each of two key sets is "several keys" too (Eq. 2 counts over all registered keys)
    ks = keyset()
    alice, bob = (KeySet(ks.keys[j:j + 1], (u,), {"compliance": {u: ks.meta["compliance"][u]}})
                  for j, u in enumerate(ks.users))
    for rule, want in (("ambiguous", "ambiguous"), ("unknown", "unknown")):
        p = Pipeline.from_parts(keys={"set-a": alice, "set-b": bob}, policy=Policy(several_keys=rule))
        for v in p.attribute(make_images("alice+bob", 3, 504)):
            assert [e.details["n_fired"] for e in v.evidence_of("kim-keys")] == [1, 1]
            assert v.answer == want and v.decided_by == "kim-keys", (rule, v.answer)
    # choosing the rule from one "defer" pass of findings is exact (benchmarks/attribute_accuracy.py does so)
    x = torch.cat([make_images(k, 3, 505) for k in ("alice+bob", "alice", "real", "gen-a")])
    p = Pipeline.from_parts(**parts, policy=Policy(alpha=0.02, alpha_detect=0.05, several_keys="defer"))
    p.calibrate(validation())
    found = p.findings(x)
    for rule in ("ambiguous", "unknown", "defer"):
        p.policy = Policy(alpha=0.02, alpha_detect=0.05, several_keys=rule)
        assert [decide(f, p.policy, p.registered, p.architectures.get).answer for f in found] == \
            [v.answer for v in p.attribute(x)], rule
    with pytest.raises(ConfigError, match="several_keys"):
        Policy(several_keys="first")


def test_detector_rejects_the_classifiers_pick_then_unknown(pipe: Pipeline) -> None:
    for v in answers(pipe, "clone-a"):
        (clf,) = v.evidence_of("classifier")
        assert clf.verdict == "gen-a"  # the classifier alone would say gen-a
        (det,) = v.evidence_of("flipad")
        assert det.verdict == "unknown" and det.details["accepted"] is False and det.p_value < POLICY.alpha
        assert v.answer == "unknown" and v.confidence >= 1 - POLICY.alpha


def test_detector_runs_only_where_its_model_survived(pipe: Pipeline) -> None:
    (det,) = answers(pipe, "gen-b", 1)[0].evidence_of("flipad")
    assert det.verdict is None and "rejected gen-a" in det.details["skipped"]
    (det,) = answers(pipe, "gen-a", 1)[0].evidence_of("flipad")
    assert det.verdict == "gen-a" and det.details["accepted"] is True


def test_unrelated_source_is_unknown(pipe: Pipeline) -> None:
    assert {v.answer for v in answers(pipe, "stranger")} == {"unknown"}


def test_fingerprint_match_names_the_user(pipe: Pipeline) -> None:
    for v in answers(pipe, "carol", 3):
        assert v.answer == "carol" and v.decided_by == "yu2022"
        (ev,) = v.evidence_of("yu2022")
        assert ev.details["matched_bits"] == 32 and ev.p_value == pytest.approx(31 * 0.5 ** 32)
    (ev,) = answers(pipe, "real", 1)[0].evidence_of("yu2022")  # real images match nobody
    assert ev.verdict == "unknown" and ev.p_value > POLICY.alpha_detect


def test_every_method_is_reported_in_order(pipe: Pipeline) -> None:
    v = answers(pipe, "real", 1)[0]
    methods = [e.method for e in v.evidence]
    assert set(methods) == set(METHODS) and methods == sorted(methods, key=METHODS.index)
    (log,) = v.evidence_of("log")
    assert log.verdict is None and "no log-origin component" in log.details["skipped"]
    (deep,) = v.evidence_of("seed-reconstruction")
    assert "deep=False" in deep.details["skipped"]


def test_unregistered_candidate_is_never_the_answer() -> None:
    p = Pipeline.from_parts(classifiers={"clf": classifier()}, policy=POLICY, models={"gen-a": "a" * 64})
    p.calibrate(validation())
    vs = p.attribute(make_images("gen-b", 3, 9))
    assert {v.answer for v in vs} == {"unknown"}
    assert all("not registered: gen-b" in " ".join(v.notes) for v in vs)
    v = p.attribute(make_images("gen-a", 1, 9))[0]
    assert v.answer == "gen-a" and v.model_id == "a" * 64


def test_threshold_only_components_decide_alike_with_bounds() -> None:
    """Shipped components have only thresholds: the answers stay, p-values become bounds at their FNR level."""
    clf, det = classifier(), detector()
    val = validation()
    clf.calibrate(val, target_fnr=0.02)
    det.calibrate({"gen-a": val["gen-a"]}, target_fnr=0.02)
    p = Pipeline.from_parts(classifiers={"clf": clf}, detectors={"det": det}, policy=POLICY)
    for kind, want in (("real", "real"), ("gen-a", "gen-a"), ("gen-b", "gen-b"), ("clone-a", "unknown"),
                       ("stranger", "unknown")):
        vs = p.attribute(make_images(kind, 4, 700))
        assert [v.answer for v in vs] == [want] * 4, kind
        top = vs[0].evidence_of("classifier")[0].details["top"]
        assert {t["p_bound"] for t in top} <= {"lower", "upper"} and vs[0].confidence == pytest.approx(0.98)


def test_closed_set_classifier_has_no_confidence() -> None:
    p = Pipeline.from_parts(classifiers={"clf": classifier()}, policy=POLICY)  # no calibration, no thresholds
    v = p.attribute(make_images("gen-b", 1, 3))[0]
    assert v.answer == "gen-b" and v.confidence == 0.0
    assert v.evidence_of("classifier")[0].details["p_values"] == "closed-set"


def test_deterministic_and_batch_invariant(pipe: Pipeline) -> None:
    x = torch.cat([make_images(k, 2, 900) for k in ("real", "gen-a", "clone-a", "alice", "carol", "stranger")])
    batch = [v.to_json() for v in pipe.attribute(x)]
    assert json.dumps(batch) == json.dumps([v.to_json() for v in pipe.attribute(x)])
    # one image at a time: the same answers and p-values (scores may differ in the last float bits: BLAS sums a
    # batch and a single row in different orders)
    single = [pipe.attribute(x[i:i + 1])[0] for i in range(x.shape[0])]
    assert [(v["answer"], v["confidence"], v["decided_by"]) for v in batch] == \
        [(v.answer, v.confidence, v.decided_by) for v in single]
    assert [[e["p_value"] for e in v["evidence"]] for v in batch] == \
        [[e.p_value for e in v.evidence] for v in single]


def test_calibration_round_trip(pipe: Pipeline, tmp_path) -> None:
    from genattr.errors import DataError

    assert pipe.calibration is not None
    path = pipe.calibration.save(tmp_path / "cal.json")
    cal = Calibration.load(path)
    p2 = Pipeline.from_parts(classifiers={"clf": classifier()}, detectors={"det-a": detector()},
                             keys={"keys": keyset()}, fingerprints={"fp": (RowDecoder(), fingerprint_index())},
                             policy=POLICY, calibration=cal)
    x = make_images("gen-a", 3, 11)
    assert [v.to_json() for v in p2.attribute(x)] == [v.to_json() for v in pipe.attribute(x)]
    (tmp_path / "bad.json").write_text('{"format": "genattr-unified-calibration/1", "components": {"c": '
                                       '{"scores": {"a": ["x"]}}}}')
    with pytest.raises(DataError):
        Calibration.load(tmp_path / "bad.json")
    assert cal.for_component("clf", "0" * 64) is not None  # no sha256 recorded: any file goes
    cal.sha256["clf"] = "1" * 64
    assert cal.for_component("clf", "0" * 64) is None  # computed for another file: not used


# -- the rules themselves, on hand-made findings ------------------------------------------------------------------
def _f(method: str, answer: str | None, *, strong: bool = False, p: PValue | None = None,
       cands: dict[str, PValue] | None = None) -> Finding:
    return Finding(Evidence(method, answer, p.value if p else None, {}), answer, strong=strong, p=p,
                   candidates=cands or {})


def test_rules_in_order() -> None:
    pol = Policy(alpha=0.05)
    clf = _f("classifier", "x", cands={"x": PValue(0.5), "y": PValue(0.01), "real": PValue(0.02)})
    d = decide([clf], pol)
    assert (d.answer, d.decided_by) == ("x", "classifier") and d.confidence == pytest.approx(0.98)
    # a decisive finding earlier in the order wins over the classifiers
    key = _f("kim-keys", "u1", strong=True, p=PValue(0.001))
    assert decide([key, clf], pol).answer == "u1"
    # two decisive findings that disagree
    key2 = _f("kim-keys", "u2", strong=True, p=PValue(0.002))
    assert decide([key, key2], pol).answer == "ambiguous"
    # a log hit beats everything, with confidence 1
    log = _f("log", "g", strong=True, p=PValue(0.0))
    assert (decide([clf, key, log], pol).answer, decide([log], pol).confidence) == ("g", 1.0)
    # two candidates survive → ambiguous; none → unknown
    two = _f("classifier", "ambiguous", cands={"x": PValue(0.5), "y": PValue(0.3)})
    assert decide([two], pol).answer == "ambiguous"
    none = _f("classifier", "unknown", cands={"x": PValue(0.01), "y": PValue(0.03)})
    d = decide([none], pol)
    assert d.answer == "unknown" and d.confidence == pytest.approx(0.97)
    # a detector rejects the classifier's survivor
    det = _f("flipad", "unknown", cands={"x": PValue(0.001)})
    assert decide([clf, det], pol).answer == "unknown"
    # nothing passive and nothing decisive
    assert decide([], pol).answer == "unknown"


def test_fingerprint_matches_are_bonferroni_corrected_over_decoders() -> None:
    pol = Policy(alpha_detect=0.01)
    hit = _f("yu2022", "carol", strong=True, p=PValue(0.004))  # matched by its own decoder's k_N rule
    miss = _f("yu2022", "unknown", p=PValue(1.0))
    skipped = _f("yu2022", None)  # a decoder that could not read the image does not count
    d = decide([hit, skipped], pol)
    assert (d.answer, d.decided_by) == ("carol", "yu2022") and d.confidence == pytest.approx(0.996)
    # three decoders read it: 3 · 0.004 > 0.01 → not decisive, later rules decide (here: nothing → unknown)
    d = decide([hit, miss, miss], pol)
    assert d.decided_by != "yu2022" and d.answer == "unknown"
    strong = _f("yu2022", "carol", strong=True, p=PValue(1e-6))
    d = decide([strong, miss, miss], pol)
    assert d.answer == "carol" and d.confidence == pytest.approx(1 - 3e-6)
    assert "Bonferroni over 3" in d.notes[0]
    other = _f("yu2022", "dave", strong=True, p=PValue(1e-7))
    assert decide([strong, other, miss], pol).answer == "ambiguous"
    # a separate, stricter level for fingerprints: the keys keep alpha_detect
    strict = Policy(alpha_detect=0.01, alpha_fingerprint=1e-4)
    assert decide([hit, skipped], strict).answer == "unknown"
    assert decide([strong, miss, miss], strict).answer == "carol"  # 3e-6 ≤ 1e-4
    key = _f("kim-keys", "erin", strong=True, p=PValue(0.004))
    assert decide([key], strict).answer == "erin"
    with pytest.raises(ConfigError):
        Policy(alpha_fingerprint=0.0)
    assert Policy.from_json(strict.to_json()) == strict


def test_reconstruction_breaks_only_ambiguous_ties() -> None:
    amb = Decision("ambiguous", 0.9, "classifier", ("x", "y"))
    deep = _f("seed-reconstruction", "y")
    assert break_tie(amb, deep).answer == "y" and break_tie(amb, deep).decided_by == "seed-reconstruction"
    assert break_tie(amb, _f("seed-reconstruction", "z")).answer == "ambiguous"  # not in the set
    sure = Decision("x", 0.99, "classifier", ("x",))
    assert break_tie(sure, deep).answer == "x"
    keys = Decision("ambiguous", 0.9, "kim-keys", ("x", "y"))
    assert break_tie(keys, deep).answer == "ambiguous"  # never overrides the watermark methods


def test_policy_settings_are_checked() -> None:
    with pytest.raises(ConfigError):
        Policy(alpha=0)
    with pytest.raises(ConfigError):
        Policy.from_json({"alpha": 0.1, "bogus": 1})
    assert Policy.from_json(Policy(alpha=0.1).to_json()) == Policy(alpha=0.1)


class SaturatingClassifier(NearestMean):
    """A classifier whose softmax saturates (probability 1 for the nearest class however far the image is), with
    pixels as its "fingerprints": what the feature-distance test is for."""

    def _decision_function(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(1000 * super()._decision_function(x), dim=1)

    def fingerprints(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def test_feature_distance_rejects_what_a_saturated_softmax_accepts(tmp_path) -> None:
    data = {"real": make_images("real", 40, 1), "gen-a": make_images("gen-a", 40, 2),
            "gen-b": make_images("gen-b", 40, 3)}
    p = Pipeline.from_parts(classifiers={"clf": SaturatingClassifier().fit(data)}, policy=POLICY)
    cal = p.calibrate({k: make_images(k, 240, 200 + i) for i, k in enumerate(data)})
    assert set(cal.centroids["clf"]) == {"real", "gen-a", "gen-b"} and len(cal.scores["clf#features"]["real"]) == 120
    assert p.warnings() == []  # 2 / (120 + 1) < 0.02: the combined test can reject at alpha
    far = make_images("stranger", 4, 9)
    assert {v.answer for v in p.attribute(far)} == {"unknown"}
    top = p.attribute(far)[0].evidence_of("classifier")[0].details["top"][0]
    assert top["p_softmax"] > POLICY.alpha > top["p_feature"]  # the softmax alone would have accepted it
    assert [v.answer for v in p.attribute(make_images("gen-b", 4, 9))] == ["gen-b"] * 4
    # the centroids and feature scores survive the JSON file exactly
    loaded = Calibration.load(cal.save(tmp_path / "cal.json"))
    p2 = Pipeline.from_parts(classifiers={"clf": SaturatingClassifier().fit(data)}, policy=POLICY, calibration=loaded)
    x = torch.cat([far, make_images("gen-a", 3, 8)])
    assert [v.to_json() for v in p2.attribute(x)] == [v.to_json() for v in p.attribute(x)]
    p.classifiers[0].features = None  # softmax test only
    assert "unknown" not in {v.answer for v in p.attribute(far)}
    small = Pipeline.from_parts(classifiers={"clf": SaturatingClassifier().fit(data)}, policy=POLICY)
    small.calibrate({k: make_images(k, 20, 300 + i) for i, k in enumerate(data)})
    assert any("alpha 0.02 cannot reject it" in w for w in small.warnings())


def test_architecture_tiebreak() -> None:
    """An architectures classifier says "not a dcgan"; a seeds classifier that never saw an EBGAN accepts one of its
    DCGAN seeds: the EBGAN stays, the DCGAN seed goes. Without architectures (or with a dcgan accepted) it stays a
    tie."""
    pol = Policy(alpha=0.05)
    arch = {"dcgan-s0": "dcgan", "dcgan-s3": "dcgan", "ebgan": "ebgan"}.get
    by_arch = _f("classifier", "ebgan", cands={"real": PValue(0.01), "dcgan-s0": PValue(0.001), "ebgan": PValue(0.6)})
    by_seed = _f("classifier", "dcgan-s3", cands={"real": PValue(0.01), "dcgan-s0": PValue(0.01),
                                                 "dcgan-s3": PValue(0.3)})
    assert decide([by_arch, by_seed], pol).answer == "ambiguous"
    d = decide([by_arch, by_seed], pol, architecture=arch)
    assert d.answer == "ebgan" and "dcgan-s3 dropped" in d.notes[0]
    assert d.confidence == pytest.approx(0.7)  # the dropped candidate's credibility stays the alternative
    sure_dcgan = _f("classifier", "ambiguous", cands={"dcgan-s0": PValue(0.2), "ebgan": PValue(0.6)})
    assert decide([sure_dcgan, by_seed], pol, architecture=arch).answer == "ambiguous"
