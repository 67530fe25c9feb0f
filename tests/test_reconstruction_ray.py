"""The Ray engine fans (image chunk × candidate) tasks out and gives the in-process engine's answers."""

from __future__ import annotations

import pytest
import torch

from genattr.attribution.reconstruction_engines import LocalEngine, RayEngine, make_engine
from genattr.attribution.seed_reconstruction import SeedReconstruction
from genattr.errors import ConfigError, GenattrError
from tests.test_seed_reconstruction import NaNLater, PlainGenerator, samples, tiny_generators

ray = pytest.importorskip("ray")


def test_ray_engine_matches_in_process(local_ray: None) -> None:
    gens = tiny_generators(3)
    x = torch.cat([samples(g, 3, 60 + i) for i, g in enumerate(gens.values())])
    att = SeedReconstruction(restarts=2, steps=20, chunk_size=4).fit(gens)  # 3 chunks × 3 candidates
    local = att.reconstruct_all(x, engine=LocalEngine())
    eng = RayEngine()  # joins the running Ray rather than starting one
    remote = att.reconstruct_all(x, engine=eng)
    assert not eng.started and eng.last_tasks == 9
    for name in att.candidates_:
        a, b = local["results"][name], remote["results"][name]
        assert torch.equal(a.restart_distances, b.restart_distances)
        assert torch.equal(a.best_seed, b.best_seed) and torch.equal(a.best_restart, b.best_restart)
    # the same through the attributor's own engine setting
    ray_att = SeedReconstruction(restarts=2, steps=20, chunk_size=4, engine="ray").fit(gens)
    assert torch.equal(ray_att.decision_function(x), att.decision_function(x))
    eng.shutdown()  # did not start Ray: must leave it running
    assert ray.is_initialized()


def test_ray_engine_reports_candidate_errors(local_ray: None) -> None:
    att = SeedReconstruction(restarts=1, steps=60, lr=0.5, engine="ray").fit(
        {"good": PlainGenerator(0), "unstable": NaNLater(1)})
    with pytest.raises(GenattrError, match="'unstable'"):
        att.decision_function(torch.full((1, 1, 8, 8), 0.99))


def test_make_engine() -> None:
    assert isinstance(make_engine("local"), LocalEngine)
    assert isinstance(make_engine("ray", address="auto"), RayEngine)
    with pytest.raises(ConfigError):
        make_engine("local", address="auto")
    with pytest.raises(ConfigError):
        make_engine("dask")
