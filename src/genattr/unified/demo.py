"""The last step of ``genattr demo``: the one-call answer (``Pipeline.from_registry``) for a handful of images from
every kind of source — real test images, each zoo model, a shipped keyed user (Kim et al. 2021), the demo's
fingerprint instance (Yu et al. 2022) and a generator nobody registered — from a throwaway SQLite registry under
the demo's output folder (never the user's own registry), filled by ``import_shipped``.

A source whose model is not there is skipped with a note. A handful of images illustrates the answers; it does
not measure accuracy (``benchmarks/attribute_accuracy.py`` does, docs/attribute.md).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from genattr.errors import GenattrError
from genattr.sampling import derive_seed
from genattr.unified.verdict import REAL, UNKNOWN

REGISTRY_FILE = "registry.db"
UNREGISTERED = "unregistered-dcgan"
KIM_REBUILD = "genattr reproduce kim2021 --paper-size --write-docs --ship"


def unified_demo(out: str | Path, *, per_source: int = 4, seed: int = 0, fingerprint: Mapping[str, Any] | None = None,
                 root: str | Path | None = None) -> dict[str, Any]:
    """Build ``out/registry.db`` (replacing an earlier run's), register what is shipped (``root``: a checkout;
    default :mod:`genattr.paths`) and ``fingerprint`` (the fingerprint step's result: its instance as a
    ``fingerprint-instance`` model, its index copy in place of the shipped index), then attribute ``per_source``
    8-bit images of every source. Returns the rows, the notes on skipped sources and the registry URL."""
    from genattr.registry import Registry
    from genattr.unified.pipeline import Pipeline

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    db = (out / REGISTRY_FILE).resolve()
    for suffix in ("", "-wal", "-shm", "-journal"):  # a throwaway registry: every run starts empty
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    t0 = time.perf_counter()
    with Registry.open(url) as reg:
        imported = reg.import_shipped(Path(root) if root is not None else None)
        if fingerprint is not None:
            register_fingerprint(reg, fingerprint)
        pipe = Pipeline.from_registry(reg)
        sources, notes = demo_sources(reg, per_source=per_source, seed=seed, fingerprint=fingerprint)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    verdicts = pipe.attribute(torch.cat([s["images"] for s in sources]))
    t_attr = time.perf_counter() - t0
    rows, i = [], 0
    for s in sources:
        vs, i = verdicts[i:i + s["images"].shape[0]], i + s["images"].shape[0]
        rows.append({"source": s["name"], "kind": s["kind"], "expected": s["expected"], "n": len(vs),
                     "correct": sum(v.answer == s["expected"] for v in vs),
                     "answers": dict(Counter(v.answer for v in vs).most_common()),
                     "decided_by": dict(Counter(v.decided_by or "nothing" for v in vs).most_common()),
                     "verdicts": [{"answer": v.answer, "confidence": v.confidence, "decided_by": v.decided_by}
                                  for v in vs]})
    unreg = [r for r in rows if r["expected"] == UNKNOWN]
    return {"registry": str(db), "url": url, "imported": imported, "per_source": per_source,
            "components": [c.name for c in pipe.components], "calibrated": pipe.calibration is not None,
            "rows": rows, "notes": notes, "correct": sum(r["correct"] for r in rows), "total": len(verdicts),
            "unregistered_unknown": [sum(r["correct"] for r in unreg), sum(r["n"] for r in unreg)],
            "seconds": {"registry": t_load, "attribute": t_attr}}


def register_fingerprint(reg: Any, fp: Mapping[str, Any]) -> str:
    """Record the demo's instance as a ``fingerprint-instance`` model and point ``yu2022-index`` at the demo's
    copy of the index (the shipped one does not hold the demo user); returns the model's name."""
    import json

    from genattr.watermark.fingerprint_index import FingerprintIndex

    user, inst = str(fp["user"]), Path(fp["instance"])
    arch = json.loads((inst / "config.json").read_text()).get("arch", "yu2022-instance")
    name = f"yu2022-{user}"
    reg.add_model(name=name, kind="fingerprint-instance", architecture=arch, path=str(inst), owner=user,
                  meta={"code": fp["code"], "source": "genattr demo", "variant": fp.get("variant")})
    index = FingerprintIndex.load(fp["index"])
    if not reg.list_components("yu2022-decoder"):  # the step's model came from elsewhere than the registry's root
        reg.add_component(kind="yu2022-decoder", name="yu2022-demo-decoder", path=str(fp["model"]),
                          meta={"code_bits": index.code_bits, "source": "genattr demo"})
    for c in reg.list_components("yu2022-index"):
        reg.remove_component(c.name)
    reg.add_component(kind="yu2022-index", name="yu2022-index", path=str(Path(fp["index"]).resolve()),
                      models=[name], meta={"code_bits": index.code_bits,
                                           "source": "genattr demo: a copy of the shipped index + the demo user"})
    packed, ids = index.packed_codes(), list(range(len(index)))
    reg.add_codes("yu2022-index", [(u, packed[i].tobytes(), None)  # the other users: bare codes, as imported
                                   for i, u in zip(ids, index.names(ids), strict=True) if u != user])
    return name


def demo_sources(reg: Any, *, per_source: int, seed: int, fingerprint: Mapping[str, Any] | None = None
                 ) -> tuple[list[dict[str, Any]], list[str]]:
    """``per_source`` 8-bit images of each source with the answer genattr should give, and a note per skipped
    source."""
    from genattr.generators import Generator
    from genattr.sampling import sample_8bit

    sources: list[dict[str, Any]] = []
    notes: list[str] = []

    def add(name: str, kind: str, expected: str, g: Any) -> None:
        sources.append({"name": name, "kind": kind, "expected": expected,
                        "images": sample_8bit(g, per_source, derive_seed(seed, "demo-unified", name))})

    try:
        sources.append({"name": REAL, "kind": "real", "expected": REAL, "images": _real(per_source, seed)})
    except GenattrError as exc:
        notes.append(f"real images: {exc}")
    zoo = reg.list_models("zoo")
    if not zoo:
        notes.append("zoo: no zoo model is registered")
    for m in zoo:
        add(m.name, "zoo", m.name, Generator.from_pretrained(m.path))
    keyed = reg.list_models("keyed-user")
    # an orthogonal user where one is shipped: the 45° set is Kim et al.'s *failure* case (keys fire together)
    keyed = sorted(keyed, key=lambda m: ("orthogonal" not in m.name, m.name))
    if keyed:
        add(keyed[0].name, "keyed-user", keyed[0].name, Generator.from_pretrained(keyed[0].path))
    else:
        notes.append(f"keyed user: no keyed user model is shipped (models/kim2021; {KIM_REBUILD})")
    instances = reg.list_models("fingerprint-instance")
    if instances:
        import genattr.watermark.fingerprint  # noqa: F401  (registers the yu2022-instance architecture)

        for m in instances:
            add(m.name, "fingerprint-instance", m.name, Generator.from_pretrained(m.path))
    else:
        why = "the fingerprint step was skipped" if fingerprint is None else "none registered"
        notes.append(f"fingerprint instance: no instance ({why})")
    add(UNREGISTERED, "unregistered", UNKNOWN, fresh_dcgan(zoo, derive_seed(seed, "demo", UNREGISTERED)))
    return sources, notes


def fresh_dcgan(zoo: list[Any], seed: int) -> Any:
    """A freshly initialised DCGAN with the zoo DCGANs' configuration (when one is registered): the same
    architecture and size, weights no registry knows."""
    from genattr.generators import create_generator

    cfg = next((m.meta["config"] for m in zoo if m.architecture == "dcgan" and isinstance(m.meta.get("config"), dict)),
               {"channels": 1, "image_size": 32, "latent_dim": 100, "ngf": 32})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return create_generator("dcgan", **cfg).eval()


def _real(n: int, seed: int) -> torch.Tensor:
    from genattr.data import load_fashion_mnist

    x = load_fashion_mnist("test").to_model(32)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(derive_seed(seed, "demo-unified")))
    return x[perm[:n]].clone()


__all__ = ["REGISTRY_FILE", "UNREGISTERED", "demo_sources", "fresh_dcgan", "register_fingerprint", "unified_demo"]
