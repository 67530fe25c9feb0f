"""The fingerprint (Yu et al. 2022) and unified (``genattr.attribute``) steps of ``genattr demo``, on a tiny zoo and a
tiny shipped fingerprint model: the skip paths (one yellow line, None) and the working paths.

An untrained fingerprint model cannot decode its own instances, so the working paths swap in an ideal pair: an
"instance" that paints its code into the first pixels of the top row and a decoder that reads them back (Fashion-MNIST's
padded top row is background, all −1, so real images decode to the all-zero code). Everything else — the shipped
model's verification, the index copy, registration, 8-bit sampling, the registry lookup, the throwaway registry and
the one-call pipeline — is the real code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from genattr.generators import Generator
from tests.conftest import needs_fmnist
from tests.fingerprint_helpers import BITS

N = 4


@pytest.fixture
def shipped(tiny_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny 16-bit fingerprint model shipped to models/yu2022 (5 example users); GENATTR_MODELS_DIR points there
    and GENATTR_HOME at an empty folder (whose registry the demo must never touch)."""
    from genattr.watermark.fingerprint import FingerprintModel
    from genattr.watermark.fingerprint_shipping import ship

    torch.manual_seed(0)
    FingerprintModel(code_bits=BITS, latent_dim=6, ngf=4, ndf=4, embed_dim=8, embed_layers=1).save(tmp_path / "run")
    models = tmp_path / "models"
    ship(tmp_path / "run", models / "yu2022", variant="fp64", n_examples=5)
    monkeypatch.setenv("GENATTR_MODELS_DIR", str(models))
    monkeypatch.setenv("GENATTR_HOME", str(tmp_path / "home"))
    return models / "yu2022"


def _digests(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


# -- the fingerprint step ------------------------------------------------------------------------------------------
def test_fingerprint_step_skips_with_one_line_when_nothing_is_shipped(tmp_path: Path) -> None:
    from genattr.demo import fingerprint_report, fingerprint_step

    console = Console(record=True, width=200)
    assert fingerprint_step(tmp_path / "out", seed=0, console=console, models_dir=tmp_path / "none") is None
    text = console.export_text()
    assert text.count("fingerprint step skipped") == 1 and len(text.strip().splitlines()) == 1
    assert "genattr fingerprint ship" in text  # says how to get the model
    assert not (tmp_path / "out" / "fingerprint").exists() and fingerprint_report(None) == []


@needs_fmnist
def test_fingerprint_step_attributes_the_demo_user_and_leaves_the_shipped_index_alone(
        shipped: Path, tmp_path: Path, ideal_decoder: None) -> None:
    from genattr.demo import fingerprint_report, fingerprint_step
    from genattr.watermark.fingerprint_index import FingerprintIndex

    before = _digests(shipped / "index")
    console = Console(record=True, width=200)
    res = fingerprint_step(tmp_path / "out", seed=0, console=console, n=N)
    assert res is not None and res["bits"] == BITS and res["registered"] == 6
    inst, real = res["summary"]
    assert inst["source"] == "demo-user" and inst["attributed"] == N and inst["matched_min"] == BITS
    assert real["source"] == "real" and real["unknown"] == N and real["attributed"] == 0
    assert all(r["p_value"] < 1e-4 for r in res["images"] if r["source"] == "demo-user")
    # the code went into the demo's copy only
    assert _digests(shipped / "index") == before
    assert "demo-user" not in FingerprintIndex.load(shipped / "index")
    copy = FingerprintIndex.load(res["index"])
    assert len(copy) == 6 and copy.packed_codes()[copy.user_id("demo-user")].tobytes().hex() == res["code"]
    assert Path(res["index"]).parent == tmp_path / "out" / "fingerprint"
    text = console.export_text()
    assert "attributed to demo-user" in text and "skipped" not in text
    assert "## Fingerprinted instances" in "\n".join(fingerprint_report(res))
    # a rerun into the same folder starts afresh (the user is not "already registered")
    assert fingerprint_step(tmp_path / "out", seed=0, console=console, n=N)["registered"] == 6


def test_fingerprint_step_writes_a_real_instance(shipped: Path, tmp_path: Path) -> None:
    """Unpatched: the instance is the model's own FingerprintInstance, saved and reloadable; the test images are
    skipped with a note when Fashion-MNIST is missing rather than failing the step."""
    from genattr.evaluation.yu2022.demo import fingerprint_demo
    from genattr.watermark.fingerprint import INSTANCE_ARCH, FingerprintModel

    res = fingerprint_demo(tmp_path / "fp", n=2, n_real=2, log=lambda m: None)
    g = Generator.from_pretrained(res["instance"])
    assert g.arch == INSTANCE_ARCH
    model = FingerprintModel.load(shipped / "fp64")
    code = np.unpackbits(np.frombuffer(bytes.fromhex(res["code"]), np.uint8)).tolist()
    z = torch.randn(2, model.latent_dim, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(g(z), model(z, torch.tensor([code] * 2, dtype=torch.float32)), atol=1e-5)
    assert res["summary"][0]["n"] == 2 and len(res["images"]) in (2, 4)


def test_fingerprint_step_refuses_a_modified_shipped_model(shipped: Path, tmp_path: Path) -> None:
    from genattr.demo import fingerprint_step

    with (shipped / "fp64" / "model.safetensors").open("ab") as f:
        f.write(b"x")
    console = Console(record=True, width=200)
    assert fingerprint_step(tmp_path / "out", seed=0, console=console) is None
    text = console.export_text()
    assert "fingerprint step skipped" in text and "sha256 does not match" in text


# -- the unified step ----------------------------------------------------------------------------------------------
def test_unified_step_skips_with_one_line_when_nothing_is_shipped(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from genattr.demo import serve_command, unified_report, unified_step

    monkeypatch.setenv("GENATTR_ZOO_DIR", str(tmp_path / "no-zoo"))
    monkeypatch.setenv("GENATTR_MODELS_DIR", str(tmp_path / "no-models"))
    console = Console(record=True, width=200)
    assert unified_step(tmp_path / "out", seed=0, console=console) is None
    text = console.export_text()
    assert text.count("unified step skipped") == 1 and len(text.strip().splitlines()) == 1
    assert unified_report(None) == [] and serve_command(None) == "genattr registry import-shipped && genattr serve"


@needs_fmnist
def test_unified_step_answers_every_source_from_a_throwaway_registry(shipped: Path, tmp_path: Path,
                                                                     ideal_decoder: None) -> None:
    from genattr.demo import fingerprint_step, serve_command, unified_report, unified_step
    from genattr.registry import Registry

    console = Console(record=True, width=200)
    fp = fingerprint_step(tmp_path / "out", seed=0, console=console, n=N)
    res = unified_step(tmp_path / "out", seed=0, console=console, fingerprint=fp, per_source=N)
    assert res is not None
    rows = {r["source"]: r for r in res["rows"]}
    assert list(rows) == ["real", "tiny-dcgan", "tiny-lsgan", "yu2022-demo-user", "unregistered-dcgan"]
    assert all(r["n"] == N for r in rows.values()) and res["total"] == 5 * N
    inst = rows["yu2022-demo-user"]
    assert inst["kind"] == "fingerprint-instance" and inst["correct"] == N and inst["decided_by"] == {"yu2022": N}
    assert inst["verdicts"][0]["confidence"] > 0.99
    assert rows["unregistered-dcgan"]["expected"] == "unknown" and res["unregistered_unknown"] == [N, N]
    assert any(n.startswith("keyed user:") for n in res["notes"])  # no kim2021 shipped: skipped with a note
    # the registry is a throwaway file under the demo's folder; the user's own (GENATTR_HOME) is never created
    db = tmp_path / "out" / "unified" / "registry.db"
    assert Path(res["registry"]) == db.resolve() and not (tmp_path / "home").exists()
    with Registry.open(res["url"]) as reg:
        m = reg.get_model("yu2022-demo-user")
        assert m.kind == "fingerprint-instance" and m.owner == "demo-user" and m.meta["code"] == fp["code"]
        idx = reg.get_component("yu2022-index")
        assert Path(idx.path) == Path(fp["index"]).resolve() and idx.models == ("yu2022-demo-user",)
        assert len(reg.list_codes("yu2022-index")) == 6
    text = console.export_text()
    assert "genattr.attribute: one answer per image" in text and "unknown 4/4" in text
    assert "skipping keyed user" in text
    report = "\n".join(unified_report(res))
    assert "| yu2022-demo-user | fingerprint-instance | yu2022-demo-user | yu2022-demo-user ×4 |" in report
    assert serve_command(res) == f"genattr serve --db sqlite:///{db.resolve()}"
    # a second run replaces the throwaway registry instead of failing on what is already registered
    assert unified_step(tmp_path / "out", seed=0, console=console, fingerprint=fp, per_source=N) is not None


def test_unified_step_without_the_fingerprint_step_notes_the_missing_instance(shipped: Path, tmp_path: Path) -> None:
    from genattr.unified.demo import unified_demo

    res = unified_demo(tmp_path / "u", per_source=2)
    assert [r["source"] for r in res["rows"] if r["kind"] != "real"] == ["tiny-dcgan", "tiny-lsgan",
                                                                          "unregistered-dcgan"]
    assert any("fingerprint instance" in n and "skipped" in n for n in res["notes"])
    assert res["components"] == ["yu2022-index"]  # the shipped index (with its decoder), as imported


@needs_fmnist
def test_run_demo_ends_with_both_sections_and_the_serve_command(shipped: Path, tmp_path: Path,
                                                                ideal_decoder: None) -> None:
    from genattr.demo import run_demo

    console = Console(record=True, width=300)
    report = run_demo(tmp_path / "demo", n=4, console=console)
    md = report.read_text()
    assert "## Fingerprinted instances (Yu et al. 2022)" in md and "## One question, one answer" in md
    data = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert data["fingerprint"]["summary"][0]["attributed"] == 16 and data["unified"]["total"] > 0
    last = console.export_text().strip().splitlines()[-1]
    assert last.startswith("start the service: genattr serve --db sqlite:///")
