"""Building a pipeline from the registry database: one loaded component per registered record.

Every file is verified before it is used: shipped attributors through their manifest (``attribution.shipping``),
everything else against the sha256 the registry recorded for it (a mismatch is an
:class:`~genattr.errors.IntegrityError` naming the component: a tampered model is never loaded). A component that
cannot be loaded stops the load with that error; nothing is half-built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genattr.errors import ConfigError, DataError, GenattrError, IntegrityError
from genattr.unified.active import FingerprintComponent, KeysComponent, LogComponent
from genattr.unified.conformal import Calibration
from genattr.unified.passive import ClassifierComponent, DetectorComponent
from genattr.unified.policy import Policy

#: the file whose sha256 the registry records per component kind (genattr.registry.records.COMPONENT_WEIGHTS)
WEIGHTS = {"classifier": "state.safetensors", "flipad-detector": "state.safetensors", "kim-keys": "keys.safetensors",
           "yu2022-decoder": "model.safetensors", "yu2022-index": "manifest.json"}
CALIBRATION_FILE = "calibration.json"


def default_calibration_path() -> Path:
    """``models/unified/calibration.json`` under the assets home (:mod:`genattr.paths`)."""
    from genattr.paths import models_dir

    return models_dir("unified") / CALIBRATION_FILE


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _check_digest(rec: Any) -> Path:
    """The component's directory, after its recorded sha256 matched the file on disk."""
    d = Path(rec.path)
    weights = WEIGHTS.get(rec.kind)
    if weights is None:
        return d
    f = d / weights if d.is_dir() else d
    if not f.is_file():
        raise DataError(f"{rec.kind} {rec.name}: {f} is missing (moved or deleted since it was registered)")
    if rec.sha256 is not None and _sha256(f) != rec.sha256:
        raise IntegrityError(f"{rec.kind} {rec.name}: {f} does not match the sha256 recorded in the registry "
                             "(corrupt or modified); refusing to load it")
    return d


def _attributor(rec: Any) -> Any:
    from genattr.attribution.shipping import load_attributor_dir

    d = _check_digest(rec)
    # a model the registry lists was verified at registration; a user's own (no manifest) loads by its sha256
    att, _verified = load_attributor_dir(d, trust_unverified=rec.sha256 is not None)
    return att


class GeneratorLoader:
    """Loads a registered generator on first use (seed reconstruction); picklable (Ray)."""

    def __init__(self, name: str, kind: str, path: str, sha256: str) -> None:
        self.name, self.kind, self.path, self.sha256 = name, kind, path, sha256

    def __call__(self) -> Any:
        from genattr.generators import Generator

        d = Path(self.path)
        f = d / "model.safetensors"
        if not f.is_file() or _sha256(f) != self.sha256:
            raise IntegrityError(f"model {self.name}: {f} is missing or does not match its registered sha256")
        return Generator.from_pretrained(d)


def load_components(registry: Any) -> tuple[list[Any], dict[str, str], dict[str, Any]]:
    """(components, {model name: id}, {model name: generator loader}) from every registered record."""
    models = {m.name: m.id for m in registry.list_models()}
    generators = {m.name: GeneratorLoader(m.name, m.kind, m.path, m.id) for m in registry.list_models()
                  if m.path and Path(m.path, "model.safetensors").is_file()}
    records = registry.list_components()
    by_kind: dict[str, list[Any]] = {}
    for rec in records:
        by_kind.setdefault(rec.kind, []).append(rec)
    comps: list[Any] = []
    decoders: dict[str, Any] = {}
    current: Any = None
    try:
        for current in by_kind.get("log-origin", []):
            log = LogComponent(current.name, current.path, log_key=current.meta.get("verifier_key"),
                               models_by_id={v: k for k, v in models.items()})
            comps.append(log)
            log._log()  # open it now: a missing log or one signed by another key fails the load, not a request
        for current in by_kind.get("kim-keys", []):
            from genattr.watermark.keys import load_keys

            ks = load_keys(_check_digest(current))
            names = list(current.models) if len(current.models) == len(ks.users) else None
            comps.append(KeysComponent(current.name, ks, models=names, sha256=current.sha256))
        for current in by_kind.get("yu2022-decoder", []):
            from genattr.watermark.fingerprint import FingerprintModel

            decoders[current.name] = FingerprintModel.load(_check_digest(current))
        for current in by_kind.get("yu2022-index", []):
            comps.append(_fingerprint(registry, current, decoders))
        for current in by_kind.get("classifier", []):
            comps.append(ClassifierComponent(current.name, _attributor(current), models=list(current.models) or None,
                                             sha256=current.sha256))
        for current in by_kind.get("flipad-detector", []):
            comps.append(DetectorComponent(current.name, _attributor(current),
                                           model=current.models[0] if current.models else None,
                                           sha256=current.sha256))
    except GenattrError as exc:
        for c in comps:
            if isinstance(c, LogComponent):
                c.close()
        where = f"loading the registered components failed ({current.kind} {current.name}): {exc}"
        try:
            err = type(exc)(where)
        except TypeError:  # an error class with another constructor: keep it as it is
            raise exc from None
        raise err from exc
    return comps, models, generators


def _fingerprint(registry: Any, rec: Any, decoders: Mapping[str, Any]) -> FingerprintComponent:
    from genattr.watermark.fingerprint_index import FingerprintIndex

    idx = FingerprintIndex.load(_check_digest(rec))
    want = rec.meta.get("decoder")
    pick = [m for n, m in decoders.items() if (want is None or n == want) and m.code_bits == idx.code_bits]
    if not pick:
        raise ConfigError(f"yu2022-index {rec.name}: no registered yu2022-decoder reads {idx.code_bits}-bit codes")
    user_models = {c.user: c.model for c in registry.list_codes(rec.name) if c.model is not None} \
        if hasattr(registry, "list_codes") else {}
    return FingerprintComponent(rec.name, pick[0], idx, models=user_models, sha256=rec.sha256)


def _calibration(value: Any) -> Calibration | None:
    if isinstance(value, Calibration) or (value is None and not default_calibration_path().is_file()):
        return value
    return Calibration.load(value if value is not None else default_calibration_path())


def pipeline_from_registry(cls: Any, registry: Any = None, *, calibration: Any = None,
                           policy: Policy | None = None) -> Any:
    from genattr.registry import Registry

    cal = _calibration(calibration)
    if policy is None and cal is not None and isinstance(cal.meta.get("policy"), dict):
        policy = Policy.from_json(cal.meta["policy"])  # the settings chosen with this calibration
    own = registry is None or isinstance(registry, str)
    reg = Registry.open(registry) if own else registry
    try:
        comps, models, generators = load_components(reg)
        architectures = {m.name: m.architecture for m in reg.list_models()}
    finally:
        if own:
            reg.close()
    return cls(comps, policy=policy, models=models, generators=generators, calibration=cal,
               architectures=architectures)


__all__ = ["CALIBRATION_FILE", "GeneratorLoader", "default_calibration_path", "load_components",
           "pipeline_from_registry"]
