"""``import_shipped``: register the zoo and the shipped models of a genattr checkout, in the caller's one
transaction (any error — a sha256 that does not match its manifest, a missing file, a candidate that is not a
registered model — rolls the whole import back).

What is shipped is what the manifests list; every listed file's sha256 is checked before anything from it is
recorded, and a directory no manifest lists is skipped (counted under ``skipped``):

* ``zoo/manifest.json`` → one ``zoo`` model per generator (the quality classifier is not a generator);
* ``models/kim2021/manifest.json`` → per set: the users' keyed models (``kim2021-<set>-<user>``, kind
  ``keyed-user``) and the key set (``kim2021-<set>``, its keys in key order);
* ``models/yu2022/manifest.json`` → one decoder per variant (``yu2022-<variant>``) and the code index
  (``yu2022-index``) with every registered code;
* ``models/yu2019/manifest.json`` → the closed-set classifiers (``yu2019-<name>``) with their candidates in
  order (``real`` is the real-data class; every other candidate must be a registered model);
* ``models/flipad/manifest.json`` → the FLIPAD detectors (``flipad-<name>``), each covering its one model.

Re-importing is a no-op for what is registered unchanged; a shipped file that changed on disk (a rebuilt
model) is an error naming what to remove first — the index is the exception: codes registered since the last
import are added.
"""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from genattr.errors import ConfigError, DataError, IntegrityError
from genattr.registry import components as comps
from genattr.registry.records import REAL, sha256_file
from genattr.registry.schema import Yu2022Index

if TYPE_CHECKING:
    from genattr.registry.core import Registry

COUNT_KEYS = ("zoo", "keyed-user", "kim-keys", "yu2022-decoder", "yu2022-index", "yu2022-codes", "classifier",
              "flipad-detector", "unchanged", "skipped")


def import_shipped(reg: Registry, s: Session, root: Path | None) -> dict[str, int]:
    from genattr import paths

    zoo_root, models_root = (Path(root) / "zoo", Path(root) / "models") if root is not None \
        else (paths.zoo_dir(), paths.models_dir())
    if not (zoo_root / "manifest.json").is_file() and not models_root.is_dir():
        raise DataError(f"nothing shipped to import: neither {zoo_root / 'manifest.json'} nor {models_root} exists; "
                        f"{paths.HINT}")
    n: Counter[str] = Counter()
    if (zoo_root / "manifest.json").is_file():
        _zoo(reg, s, zoo_root, n)
    # keyed users and instances first: the classifiers and detectors below may list them as candidates
    _kim2021(reg, s, models_root / "kim2021", n)
    _yu2022(s, models_root / "yu2022", n)
    for family, kind in (("yu2019", "classifier"), ("flipad", "flipad-detector")):
        _attributors(s, models_root / family, family, kind, n)
    return {k: n[k] for k in COUNT_KEYS}


# --- helpers ---------------------------------------------------------------------------------------------------------
def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DataError(f"{path}: missing") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def _verify(path: Path, want: Any, manifest: Path) -> str:
    """sha256 of ``path``, which must equal the manifest's ``want``."""
    if not isinstance(want, str) or len(want) != 64:
        raise IntegrityError(f"{manifest}: no valid sha256 for {path.name}")
    if not path.is_file():
        raise DataError(f"{path}: listed in {manifest} but missing")
    got = sha256_file(path)
    if got != want:
        raise IntegrityError(f"{path}: sha256 {got[:16]}… does not match {manifest} ({want[:16]}…): the file is "
                             "corrupt or was modified; nothing was imported")
    return got


def _skip_unlisted(base: Path, listed: set[str], n: Counter[str]) -> None:
    if base.is_dir():
        n["skipped"] += sum(1 for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")
                            and d.name not in listed)


def _ensure_model(reg: Registry, s: Session, n: Counter[str], *, name: str, kind: str, arch: str, path: Path,
                  sha256: str, owner: str | None, meta: dict[str, Any]) -> None:
    existing = comps.find_model(s, name)
    if existing is not None and existing.name == name:
        if existing.id != sha256:
            raise ConfigError(f"model {name} is registered with other weights (sha256 {existing.id[:12]}…, shipped "
                              f"now {sha256[:12]}…); it was rebuilt: `genattr registry remove {name}` (and the "
                              "components covering it) first")
        n["unchanged"] += 1
        return
    reg._add_model(s, name=name, kind=kind, architecture=arch, path=str(path), sha256=sha256, owner=owner, meta=meta)
    n[kind] += 1


def _ensure_component(s: Session, n: Counter[str], *, kind: str, name: str, path: Path, sha256: str | None,
                      models: list[str], meta: dict[str, Any]) -> None:
    existing = comps.find_component(s, name)
    if existing is not None:
        if existing.kind != kind or existing.sha256 != sha256 or comps.model_names(existing) != tuple(models):
            raise ConfigError(f"{kind} {name} is registered but changed on disk; `genattr registry remove {name}` "
                              "first to re-register it")
        n["unchanged"] += 1
        return
    comps.add_component(s, kind=kind, name=name, path=str(path.resolve()), sha256=sha256, models=models, meta=meta)
    n[kind] += 1


# --- families -------------------------------------------------------------------------------------------------------
def _zoo(reg: Registry, s: Session, root: Path, n: Counter[str]) -> None:
    man_path = root / "manifest.json"
    models = _json(man_path).get("models")
    if not isinstance(models, dict):
        raise DataError(f"{man_path}: no 'models' mapping")
    for name in sorted(models):
        e = models[name]
        if not isinstance(e, dict) or not isinstance(e.get("arch"), str):
            raise DataError(f"{man_path}: entry {name!r} has no 'arch'")
        digest = _verify(root / name / "model.safetensors", e.get("file_sha256"), man_path)
        meta = {"source": "zoo", **{k: e[k] for k in ("seed", "epochs", "config", "quality", "data") if k in e}}
        _ensure_model(reg, s, n, name=name, kind="zoo", arch=e["arch"], path=root / name, sha256=digest, owner=None,
                      meta=meta)


def _kim2021(reg: Registry, s: Session, base: Path, n: Counter[str]) -> None:
    man_path = base / "manifest.json"
    if not man_path.is_file():
        _skip_unlisted(base, set(), n)
        return
    sets = _json(man_path).get("sets")
    if not isinstance(sets, dict):
        raise DataError(f"{man_path}: no 'sets' mapping")
    _skip_unlisted(base, set(sets), n)
    for set_name in sorted(sets):
        files = sets[set_name]
        if not isinstance(files, dict):
            raise DataError(f"{man_path}: set {set_name!r} lists no files")
        d = base / set_name
        for rel, want in files.items():  # every listed file, before anything of this set is recorded
            _verify(base / rel, want, man_path)
        keys_meta = _json(d / "keys.json")
        users = keys_meta.get("users")
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise DataError(f"{d / 'keys.json'}: 'users' must be a list of names")
        if f"{set_name}/keys.safetensors" not in files:
            raise IntegrityError(f"{man_path}: set {set_name} does not list keys.safetensors")
        members: list[str] = []
        for u in users:
            weights = f"{set_name}/{u}/model.safetensors"
            if weights not in files:  # a key issued to a user who has no shipped model
                members.append(u)
                continue
            cfg = _json(d / u / "config.json")
            model = f"kim2021-{set_name}-{u}"
            _ensure_model(reg, s, n, name=model, kind="keyed-user", arch=str(cfg.get("arch", "unknown")),
                          path=d / u, sha256=files[weights], owner=u,
                          meta={"source": "kim2021", "key_set": f"kim2021-{set_name}", "user": u})
            members.append(model)
        _ensure_keyset(s, n, name=f"kim2021-{set_name}", path=d, sha256=files[f"{set_name}/keys.safetensors"],
                       users=users, members=members, angle=keys_meta.get("angle_deg"))


def _ensure_keyset(s: Session, n: Counter[str], *, name: str, path: Path, sha256: str, users: list[str],
                   members: list[str], angle: Any) -> None:
    """Like _ensure_component, but keys whose user has no model yet are recorded by user name only."""
    from genattr.registry.schema import KimKey, KimKeyset

    existing = comps.find_component(s, name)
    if existing is not None:
        if existing.kind != "kim-keys" or existing.sha256 != sha256 or comps.model_names(existing) != tuple(members):
            raise ConfigError(f"kim-keys {name} is registered but changed on disk; `genattr registry remove {name}` "
                              "first to re-register it")
        n["unchanged"] += 1
        return
    ks = comps.add_component(s, kind="kim-keys", name=name, path=str(path.resolve()), sha256=sha256,
                             meta={"source": "kim2021", **({"angle_deg": float(angle)} if angle is not None else {})})
    assert isinstance(ks, KimKeyset)
    for i, (u, member) in enumerate(zip(users, members, strict=True)):
        m = comps.find_model(s, member) if member != u else None
        ks.keys.append(KimKey(key_index=i, user_name=u, model=m))
    s.flush()
    n["kim-keys"] += 1


def _yu2022(s: Session, base: Path, n: Counter[str]) -> None:
    man_path = base / "manifest.json"
    if not man_path.is_file():
        _skip_unlisted(base, set(), n)
        return
    man = _json(man_path)
    variants = man.get("variants")
    if not isinstance(variants, dict):
        raise DataError(f"{man_path}: no 'variants' mapping")
    _skip_unlisted(base, set(variants) | ({"index"} if "index" in man else set()), n)
    readers = []
    for variant in sorted(variants):
        e = variants[variant]
        digest = _verify(base / variant / "model.safetensors", e.get("file_sha256"), man_path)
        if e.get("decoder") is False:  # the unfingerprinted FD baseline: its F reads nothing
            n["skipped"] += 1
            continue
        readers.append(variant)
        bits = e.get("bits")
        _ensure_component(s, n, kind="yu2022-decoder", name=f"yu2022-{variant}", path=base / variant, sha256=digest,
                          models=[], meta={"source": "yu2022", "variant": variant, "rebuild": e.get("rebuild"),
                                           **({"code_bits": int(bits)} if isinstance(bits, int) else {})})
    if isinstance(man.get("index"), dict):
        # the decoder that reads the index's codes: the index's own "variant", else the default fp64, else the
        # only one — never "the first registered", which depends on names and import order
        want = man["index"].get("variant") or ("fp64" if "fp64" in readers else
                                                readers[0] if len(readers) == 1 else None)
        _yu2022_index(s, base / "index", man["index"], man_path, n,
                      decoder=f"yu2022-{want}" if want in readers else None)


def _yu2022_index(s: Session, d: Path, entry: dict[str, Any], man_path: Path, n: Counter[str], *,
                  decoder: str | None = None) -> None:
    idx_man_path = d / "manifest.json"
    digest = _verify(idx_man_path, entry.get("manifest_sha256"), man_path) if "manifest_sha256" in entry \
        else sha256_file(idx_man_path)
    idx_man = _json(idx_man_path)
    try:
        files, sums, count, bits = idx_man["files"], idx_man["sha256"], int(idx_man["count"]), int(idx_man["code_bits"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{idx_man_path}: malformed fingerprint-index manifest ({exc})") from exc
    for fname in files.values():
        _verify(d / fname, sums.get(fname), idx_man_path)
    codes = _read_index(d, files, count, bits)
    name = "yu2022-index"
    idx = comps.find_component(s, name)
    if idx is None:
        idx = comps.add_component(s, kind="yu2022-index", name=name, path=str(d.resolve()), sha256=digest,
                                  meta={"source": "yu2022", "code_bits": bits,
                                        **({"decoder": decoder} if decoder else {})})
        n["yu2022-index"] += 1
    elif not isinstance(idx, Yu2022Index) or idx.code_bits != bits:
        raise ConfigError(f"{name} is registered with another kind or code length; remove it first")
    elif idx.sha256 == digest:
        n["unchanged"] += 1
    else:  # users were registered since the last import: record the new codes
        idx.sha256 = digest
    assert isinstance(idx, Yu2022Index)
    n["yu2022-codes"] += comps.add_codes(s, idx, ((u, c, None) for u, c in codes))


def _read_index(d: Path, files: dict[str, str], count: int, bits: int) -> list[tuple[str, bytes]]:
    """(user, packed code) pairs from a FingerprintIndex directory, read with NumPy (no pickle, no faiss)."""
    import numpy as np

    try:
        codes = np.load(d / files["codes"], allow_pickle=False)
        offsets = np.load(d / files["offsets"], allow_pickle=False)
        blob = np.fromfile(d / files["names"], dtype=np.uint8).tobytes()
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(f"{d}: unreadable fingerprint-index file ({exc})") from exc
    if codes.dtype != np.uint8 or codes.shape != (count, bits // 8) or offsets.shape != (count + 1,) \
            or int(offsets[-1]) != len(blob):
        raise DataError(f"{d}: index files disagree with its manifest ({count} codes of {bits} bits)")
    try:
        names = [blob[int(a):int(b)].decode() for a, b in pairwise(offsets.tolist())]
    except UnicodeDecodeError as exc:
        raise DataError(f"{d}: user names are not UTF-8 ({exc})") from exc
    return [(u, codes[i].tobytes()) for i, u in enumerate(names)]


def _attributors(s: Session, base: Path, family: str, kind: str, n: Counter[str]) -> None:
    man_path = base / "manifest.json"
    if not man_path.is_file():
        _skip_unlisted(base, set(), n)
        return
    entries = _json(man_path).get("models")
    if not isinstance(entries, dict):
        raise DataError(f"{man_path}: no 'models' mapping")
    dirs = {name: str(e.get("path", name)) if isinstance(e, dict) else name for name, e in entries.items()}
    _skip_unlisted(base, set(dirs.values()), n)
    for name in sorted(entries):
        e, d = entries[name], base / dirs[name]
        files = e.get("files") if isinstance(e, dict) else None
        if not isinstance(files, dict) or "state.safetensors" not in files:
            raise IntegrityError(f"{man_path}: entry {name!r} lists no files with their sha256")
        for fname, want in files.items():
            _verify(d / fname, want, man_path)
        cfg, state = _json(d / "config.json"), _json(d / "state.json").get("json", {})
        candidates = state.get("candidates_") if isinstance(state, dict) else None
        if not isinstance(candidates, list) or not all(isinstance(c, str) for c in candidates):
            raise DataError(f"{d / 'state.json'}: no candidate list (json.candidates_)")
        if kind == "flipad-detector" and REAL in candidates:
            raise DataError(f"{d}: a FLIPAD detector covers one model, not the real class")
        meta = {"source": family, "attributor": cfg.get("name"), "class": cfg.get("class"),
                "image_shape": state.get("image_shape_"), "calibration": state.get("calibration_"),
                **{k: v for k, v in e.items() if k not in ("files", "candidates", "path", "attributor")}}
        unknown = [c for c in candidates if c != REAL and comps.find_model(s, c) is None]
        if unknown:
            raise ConfigError(f"{kind} {family}-{name} ({d}): candidates {', '.join(unknown)} are not registered "
                              "models (not in the zoo or the shipped keyed users)")
        _ensure_component(s, n, kind=kind, name=f"{family}-{name}", path=d, sha256=files["state.safetensors"],
                          models=candidates, meta=meta)


__all__ = ["COUNT_KEYS", "import_shipped"]
