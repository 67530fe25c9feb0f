"""Per-kind component rows behind the uniform ``add_component`` / ``list_components`` API.

Each function takes an open :class:`~sqlalchemy.orm.Session` and runs inside the caller's transaction, so
``import_shipped`` can write many of them atomically.

``models`` (in and out) per kind:

* ``classifier``: its candidates in the classifier's output order; ``"real"`` is the real-data class and has
  no row in ``models`` (stored as a candidate with a NULL ``model_id``); every other candidate is a model.
* ``flipad-detector``: exactly one model, the one it accepts.
* ``kim-keys``: one entry per key, in key order: the user's keyed model (its name when read back); a key whose
  user has no registered model yet (possible through ``import_shipped`` only) reads back as the user name.
* ``yu2022-index``: the registered ``fingerprint-instance`` models whose codes it holds (each with
  ``meta["code"]``, the packed code as hex); codes without an instance model go in with :func:`add_codes`.
* ``yu2022-decoder``, ``log-origin``: none.

Kind-specific columns travel in ``meta`` and are split off into their columns on the way in, merged back on the
way out: ``attributor`` (classifier), ``angle_deg`` (kim-keys), ``code_bits`` (decoder, index), ``origin`` and
``verifier_key`` (log-origin, both required).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from genattr.errors import ConfigError, IntegrityError, UnknownNameError
from genattr.registry.records import (
    COMPONENT_KINDS,
    COMPONENT_WEIGHTS,
    REAL,
    CodeRecord,
    ComponentRecord,
    check_kind,
    check_name,
    utcnow,
    weights_digest,
)
from genattr.registry.schema import (
    COMPONENT_CLASSES,
    Classifier,
    ClassifierCandidate,
    Component,
    FlipadDetector,
    KimKey,
    KimKeyset,
    Model,
    Yu2022Code,
    Yu2022Index,
)

# meta keys that live in a kind's own columns: {kind: {meta key: (column attribute, required)}}
_COLUMNS: dict[str, dict[str, tuple[str, bool]]] = {
    "classifier": {"attributor": ("attributor", False)},
    "kim-keys": {"angle_deg": ("angle_deg", False)},
    "yu2022-decoder": {"code_bits": ("code_bits", False)},
    "yu2022-index": {"code_bits": ("code_bits", False)},
    "log-origin": {"origin": ("origin", True), "verifier_key": ("verifier_key", True)},
}


# --- lookups -------------------------------------------------------------------------------------------------------
def find_model(s: Session, id_or_name: str) -> Model | None:
    """By exact name, exact id, or an unambiguous id prefix of at least 8 hex digits (ids are long)."""
    m = s.scalar(select(Model).where(or_(Model.name == id_or_name, Model.id == id_or_name)))
    if m is not None or len(id_or_name) < 8 or len(id_or_name) >= 64 \
            or any(c not in "0123456789abcdef" for c in id_or_name):
        return m
    hits = s.scalars(select(Model).where(Model.id.startswith(id_or_name, autoescape=True)).limit(2)).all()
    if len(hits) > 1:
        raise ConfigError(f"model id prefix {id_or_name!r} is ambiguous; give more digits")
    return hits[0] if hits else None


def get_model(s: Session, id_or_name: str) -> Model:
    m = find_model(s, id_or_name)
    if m is None:
        raise UnknownNameError(f"no registered model {id_or_name!r} (see `genattr registry list`)")
    return m


def find_component(s: Session, name: str) -> Component | None:
    return s.scalar(select(Component).where(Component.name == name))


def get_component(s: Session, name: str, kind: str | None = None) -> Component:
    c = find_component(s, name)
    if c is None or (kind is not None and c.kind != kind):
        what = f"{kind} component" if kind else "component"
        raise UnknownNameError(f"no registered {what} {name!r} (see `genattr registry list`)")
    return c


def component_users_of(s: Session, model_id: str) -> list[str]:
    """Names of the components that cover a model (they keep it from being removed)."""
    names: set[str] = set()
    for table, owner in ((ClassifierCandidate, ClassifierCandidate.classifier_id), (KimKey, KimKey.keyset_id),
                         (Yu2022Code, Yu2022Code.index_id), (FlipadDetector, FlipadDetector.id)):
        ids = select(owner).where(table.model_id == model_id)
        names.update(s.scalars(select(Component.name).where(Component.id.in_(ids))))
    return sorted(names)


# --- writes -----------------------------------------------------------------------------------------------------------
def add_component(s: Session, *, kind: str, name: str, path: str, sha256: str | None = None,
                  models: Sequence[str] = (), meta: dict[str, Any] | None = None) -> Component:
    """Create one component from the uniform arguments (see the module docstring for ``models`` per kind)."""
    check_kind(kind, COMPONENT_KINDS, "component")
    check_name(name, "component name")
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{kind} {name}: a path is required")
    meta = dict(meta or {})
    if find_component(s, name) is not None:
        raise ConfigError(f"a component named {name!r} is already registered")
    if find_model(s, name) is not None:
        raise ConfigError(f"{name!r} is already a model's name; components and models need distinct names")
    weights = COMPONENT_WEIGHTS[kind]
    if weights is not None:  # a directory (or file) on this machine: recorded absolute, like model paths
        sha256 = weights_digest(path, weights, sha256, f"{kind} {name}")
        path = str(Path(path).resolve())
    columns = _split_columns(kind, name, meta)
    cls = COMPONENT_CLASSES[kind]
    comp = cls(name=name, path=path, sha256=sha256, created=utcnow(), meta=meta, **columns)
    _link_models(s, comp, list(models))
    s.add(comp)
    s.flush()
    return comp


def _split_columns(kind: str, name: str, meta: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, (attr, required) in _COLUMNS.get(kind, {}).items():
        if key in meta:
            out[attr] = meta.pop(key)
        elif required:
            raise ConfigError(f"{kind} {name}: meta[{key!r}] is required")
    if kind == "log-origin":
        _check_log_origin(name, out)
    for key in ("code_bits",):
        if key in out and out[key] is not None and (not isinstance(out[key], int) or out[key] <= 0):
            raise ConfigError(f"{kind} {name}: {key} must be a positive integer")
    return out


def _check_log_origin(name: str, cols: dict[str, Any]) -> None:
    from genattr.ledger.errors import FormatError
    from genattr.ledger.note import verifier_from_vkey

    origin = cols["origin"]
    if not isinstance(origin, str) or not origin.strip() or len(origin) > 256 or "\n" in origin:
        raise ConfigError(f"log-origin {name}: origin must be one line of 1-256 characters")
    try:
        verifier_from_vkey(cols["verifier_key"])
    except FormatError as exc:
        raise ConfigError(f"log-origin {name}: not a note verifier key ({exc})") from exc


def _link_models(s: Session, comp: Component, names: list[str]) -> None:
    kind = comp.kind
    if kind in ("yu2022-decoder", "log-origin"):
        if names:
            raise ConfigError(f"{kind} {comp.name}: covers no models (got {names})")
        return
    if len(set(names)) != len(names):
        raise ConfigError(f"{kind} {comp.name}: models listed twice in {names}")
    if isinstance(comp, Classifier):
        if not names:
            raise ConfigError(f"classifier {comp.name}: needs its candidates, in the classifier's order")
        for i, n in enumerate(names):
            m = None if n == REAL else get_model(s, n)  # "real" is the real-data class, not a model
            comp.candidates.append(ClassifierCandidate(position=i, label=m.name if m else REAL, model=m))
    elif isinstance(comp, FlipadDetector):
        if len(names) != 1:
            raise ConfigError(f"flipad-detector {comp.name}: covers exactly one model, got {len(names)}")
        comp.model = get_model(s, names[0])
    elif isinstance(comp, KimKeyset):
        models = [get_model(s, n) for n in names]
        comp.keys = [KimKey(key_index=i, user_name=m.owner or m.name, model=m) for i, m in enumerate(models)]
    elif isinstance(comp, Yu2022Index):
        for n in names:
            m = get_model(s, n)
            code = (m.meta or {}).get("code")
            if m.kind != "fingerprint-instance" or not isinstance(code, str):
                raise ConfigError(f"yu2022-index {comp.name}: {m.name} is not a fingerprint-instance model with "
                                  "meta['code'] (hex); register bare codes with add_codes")
            comp.codes.append(Yu2022Code(user_name=m.owner or m.name, code=_hex(code, m.name), model=m))


def _hex(code: str, what: str) -> bytes:
    try:
        return bytes.fromhex(code)
    except ValueError as exc:
        raise ConfigError(f"{what}: code must be hex ({exc})") from exc


def add_codes(s: Session, index: Yu2022Index, codes: Iterable[tuple[str, bytes, str | None]]) -> int:
    """Record (user, packed code, instance model name or None) rows in an index; returns how many were new.
    A user already recorded with the same code is skipped; with a different code it is an error.

    Registries hold up to millions of codes, so the existing rows are read as plain (user, code) columns and the
    new ones go in as one multi-row INSERT (no ORM object per code); the caller's transaction still makes the
    whole call all-or-nothing."""
    s.flush()  # the index row (and any pending code) must exist before the plain reads and the INSERT
    have: dict[str, bytes] = {u: bytes(c) for u, c in s.execute(
        select(Yu2022Code.user_name, Yu2022Code.code).where(Yu2022Code.index_id == index.id))}
    known = set(have.values())
    rows: list[dict[str, Any]] = []
    for user, code, model in codes:
        check_name(user, "user name")
        if not isinstance(code, bytes | bytearray) or not code:
            raise ConfigError(f"{index.name}: the code of {user} must be non-empty bytes")
        code = bytes(code)
        if index.code_bits is not None and len(code) * 8 != index.code_bits:
            raise ConfigError(f"{index.name}: the code of {user} has {len(code) * 8} bits, the index {index.code_bits}")
        if user in have:
            if have[user] != code:
                raise IntegrityError(f"{index.name}: {user} is recorded with a different code than the index holds")
            continue
        if code in known:
            raise ConfigError(f"{index.name}: the code of {user} is already registered to another user")
        rows.append({"index_id": index.id, "user_name": user, "code": code,
                     "model_id": get_model(s, model).id if model else None})
        have[user] = code
        known.add(code)
    for i in range(0, len(rows), 10_000):  # bounded statement size (SQLite's variable limit, memory)
        s.execute(insert(Yu2022Code), rows[i:i + 10_000])
    if rows:
        s.expire(index, ["codes"])  # the ORM collection reloads with the new rows
    return len(rows)


def remove(s: Session, comp: Component) -> None:
    s.delete(comp)  # child rows go with it (ORM cascade here, ON DELETE CASCADE in the database)
    s.flush()


# --- reads ------------------------------------------------------------------------------------------------------------
def model_names(comp: Component) -> tuple[str, ...]:
    if isinstance(comp, Classifier):
        return tuple(c.model.name if c.model is not None else c.label for c in comp.candidates)
    if isinstance(comp, FlipadDetector):
        return (comp.model.name,)
    if isinstance(comp, KimKeyset):
        return tuple(k.model.name if k.model is not None else k.user_name for k in comp.keys)
    if isinstance(comp, Yu2022Index):
        return tuple(c.model.name for c in comp.codes if c.model is not None)
    return ()


def to_record(comp: Component) -> ComponentRecord:
    meta = dict(comp.meta or {})
    for key, (attr, _required) in _COLUMNS.get(comp.kind, {}).items():
        value = getattr(comp, attr)
        if value is not None:
            meta[key] = value
    return ComponentRecord(id=comp.id, kind=comp.kind, name=comp.name, path=comp.path, sha256=comp.sha256,
                           models=model_names(comp), meta=meta)


def codes_of(index: Yu2022Index) -> list[CodeRecord]:
    return [CodeRecord(c.user_name, bytes(c.code), c.model.name if c.model is not None else None)
            for c in index.codes]


__all__ = ["add_codes", "add_component", "codes_of", "component_users_of", "find_component", "find_model",
           "get_component", "get_model", "model_names", "remove", "to_record"]
