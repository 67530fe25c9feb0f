"""Property (issue 13): random byte flips and truncations of any file of every shipped model directory and
manifest (models/yu2019, models/flipad, zoo/) either still load — only when the change cannot matter — or
raise one of our clean errors (a GenattrError subclass), never anything else.

Runs on one copy in a temporary directory; each example mutates one file in place and restores it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genattr import zoo
from genattr.attribution.shipping import load_attributor_dir, load_shipped
from genattr.errors import GenattrError, IntegrityError

ROOT = Path(__file__).resolve().parents[1]
TREES = {"yu2019": ROOT / "models" / "yu2019", "flipad": ROOT / "models" / "flipad", "zoo": ROOT / "zoo"}
FILES = sorted((tree, p.relative_to(src)) for tree, src in TREES.items() for p in src.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shipped")
    for tree, src in TREES.items():
        shutil.copytree(src, root / tree)
    return root


def _load(root: Path, tree: str, rel: Path) -> None:
    """Load what the mutated file belongs to (everything in its tree if it is the manifest)."""
    if tree == "yu2019":
        names = ["architectures", "seeds"] if len(rel.parts) == 1 else [rel.parts[0]]
        for name in names:
            load_shipped(name, root / tree)
    elif tree == "flipad":
        load_attributor_dir(root / tree / "fmnist-dcgan-s0")
    else:
        names = [*zoo.names(root / tree), zoo.CLASSIFIER] if len(rel.parts) == 1 else [rel.parts[0]]
        zoo._load_cached.cache_clear()  # the zoo caches loaded generators per (name, root)
        for name in names:
            if name == zoo.CLASSIFIER:
                zoo.load_classifier(root / tree)
            else:
                zoo.load(name, root / tree)


mutation = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                                        min_size=1, max_size=3)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
)


def _check(copies: Path, target: tuple[str, Path], change) -> None:
    tree, rel = target
    path = copies / tree / rel
    original = path.read_bytes()
    kind, arg = change
    if kind == "flip":
        data = bytearray(original)
        for frac, mask in arg:
            data[int(frac * len(data))] ^= mask
        mutated = bytes(data)
    else:
        mutated = original[: int(arg * len(original))]
    path.write_bytes(mutated)
    try:
        _load(copies, tree, rel)
    except GenattrError as exc:
        err: GenattrError | None = exc
    else:
        err = None
    finally:
        path.write_bytes(original)
    # Loading either verified or raised our clean error (anything else propagated above and fails the test).
    # A model file whose sha256 a manifest lists must never load once changed.
    if mutated != original and ((tree != "zoo" and len(rel.parts) == 2) or rel.name == "model.safetensors"):
        assert err is not None, f"{tree}/{rel} loaded although it was changed"
        if tree != "zoo":
            assert isinstance(err, IntegrityError), (tree, rel, err)


SETTINGS = settings(max_examples=50, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SETTINGS
@given(target=st.sampled_from([f for f in FILES if f[0] != "zoo"]), change=mutation)
def test_mutated_shipped_attributors_verify_or_fail_cleanly(copies: Path, target: tuple[str, Path], change) -> None:
    _check(copies, target, change)


@SETTINGS
@given(target=st.sampled_from([f for f in FILES if f[0] == "zoo"]), change=mutation)
def test_mutated_zoo_verifies_or_fails_cleanly(copies: Path, target: tuple[str, Path], change) -> None:
    _check(copies, target, change)


def test_every_shipped_tree_is_covered() -> None:
    trees = {t for t, _ in FILES}
    assert trees == set(TREES) and any(r.name == "manifest.json" for _, r in FILES)
