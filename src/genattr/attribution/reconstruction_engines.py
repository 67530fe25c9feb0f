"""Where seed reconstruction runs: in-process (default) or fanned out over a Ray cluster.

Both engines cut each candidate's images into the same chunks of ``chunk_size`` images and run the same
pure function (:func:`genattr.attribution.seed_reconstruction.reconstruct`) on every (image chunk ×
candidate) task, with the same number of torch threads, so they give identical answers; Ray only changes
where the tasks run. Restarts are independent, so chunking does not change any trajectory.

    from genattr.attribution.reconstruction_engines import RayEngine
    eng = RayEngine()                    # ray.init() locally, or RayEngine(address="ray://head:10001")
    out = att.reconstruct_all(x, engine=eng)       # or create_attributor(..., engine="ray")
    eng.shutdown()                       # only shuts Ray down if this engine started it

Ray is an optional dependency (``genattr[ray]``), imported only when a Ray engine is used. On a real cluster
the workers need genattr installed (or a ``runtime_env`` passed through ``init_kwargs``).

:class:`RayTasks` (starting or joining Ray, one remote task function, errors re-raised as the task's own,
shutting down only a Ray started here) and :func:`torch_threads` are shared with the attribute pipeline's chunk
engine (:mod:`genattr.unified.engines`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from genattr.errors import ConfigError


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (None: as they are); the caller's count is restored after."""
    before = torch.get_num_threads()
    if threads is not None and before != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:  # in-process callers keep their thread count
        torch.set_num_threads(before)


def _run_chunk(generator: Any, feature: Any, x: torch.Tensor, z0: torch.Tensor, settings: Any, name: str,
               threads: int | None = None) -> Any:
    from genattr.attribution.seed_reconstruction import reconstruct

    with torch_threads(threads):
        return reconstruct(generator, x, z0, feature=feature, steps=settings.steps, lr=settings.lr,
                           betas=settings.betas, name=name, device=getattr(settings, "device", None),
                           lr_schedule=getattr(settings, "lr_schedule", "constant"))


def _assemble(problems: Sequence[Any], parts: Mapping[str, list[Any]]) -> dict[str, Any]:
    from genattr.attribution.seed_reconstruction import Reconstruction

    return {p.name: Reconstruction.concat(parts[p.name], p.z0.shape[0], p.z0.shape[1]) for p in problems}


class LocalEngine:
    """Runs every task in this process, one after another."""

    name = "local"

    def __init__(self) -> None:
        self.last_seconds = 0.0
        self.last_tasks = 0

    def run(self, problems: Sequence[Any], settings: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        parts: dict[str, list[Any]] = {p.name: [] for p in problems}
        tasks = 0
        from genattr.progress import phase

        with phase("reconstruction (image chunks × candidates)",
                   total=sum(len(_chunks(p.x.shape[0], settings.chunk_size)) for p in problems)) as advance:
            for p in problems:
                for s, e in _chunks(p.x.shape[0], settings.chunk_size):
                    parts[p.name].append(_run_chunk(p.generator, p.feature, p.x[s:e], p.z0, settings, p.name))
                    tasks += 1
                    advance(1)
        self.last_seconds, self.last_tasks = time.perf_counter() - t0, tasks
        return _assemble(problems, parts)

    def shutdown(self) -> None:
        pass


class RayTasks:
    """The Ray side of an engine: tasks of one module-level function (:attr:`task`, one CPU each).

    ``address=None`` starts (or joins, if this process already called ``ray.init``) a local Ray; any other
    value is passed to ``ray.init(address=...)`` (e.g. ``"auto"`` or ``"ray://head:10001"``). ``num_cpus``
    applies to a Ray started here. ``threads``: torch threads per task (default: this process's count, which
    is what makes the answers identical to the in-process engine's). Subclasses set :attr:`task`, submit with
    ``self._ray()`` → ``self._remote.remote(...)`` and collect with :meth:`_get`.
    """

    name = "ray"
    task: Callable[..., Any]  # the function each task runs; a staticmethod on the subclass

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None, threads: int | None = None,
                 init_kwargs: Mapping[str, Any] | None = None) -> None:
        self.address, self.num_cpus, self.threads = address, num_cpus, threads
        self.init_kwargs = dict(init_kwargs or {})
        self.started = False
        self._remote: Any = None

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is in the test install
            raise ConfigError("the Ray engine needs ray: pip install 'genattr[ray]'") from exc
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False} | self.init_kwargs
            if self.address is not None:
                kw["address"] = self.address
            if self.num_cpus is not None and self.address is None:
                kw["num_cpus"] = self.num_cpus
            try:
                ray.init(**kw)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"could not start or reach Ray at {self.address or 'local'}: {exc}") from exc
            self.started = True
        if self._remote is None:
            self._remote = ray.remote(num_cpus=1)(self.task)
        return ray

    def _task_threads(self) -> int:
        return self.threads if self.threads is not None else torch.get_num_threads()

    @staticmethod
    def _get(ray: Any, ref: Any) -> Any:
        """``ray.get(ref)`` (one ref or a list), re-raising a failed task's own error (bad input, NaN outputs,
        a tampered model…) instead of Ray's wrapper."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.as_instanceof_cause() if hasattr(exc, "as_instanceof_cause") else exc
            raise cause from None

    def shutdown(self) -> None:
        """Shut Ray down if this engine started it."""
        if self.started:
            import ray

            ray.shutdown()
            self.started = False
            self._remote = None


class RayEngine(RayTasks):
    """Fans (image chunk × candidate) tasks out with Ray (see :class:`RayTasks` for the arguments)."""

    task = staticmethod(_run_chunk)

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None, threads: int | None = None,
                 init_kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__(address, num_cpus=num_cpus, threads=threads, init_kwargs=init_kwargs)
        self.last_seconds = 0.0
        self.last_tasks = 0

    def run(self, problems: Sequence[Any], settings: Any) -> dict[str, Any]:
        ray = self._ray()
        t0 = time.perf_counter()
        threads = self._task_threads()
        refs: dict[str, list[Any]] = {p.name: [] for p in problems}
        tasks = 0
        for p in problems:
            if p.x.shape[0] == 0:
                continue
            g_ref, f_ref, z_ref = ray.put(p.generator), ray.put(p.feature), ray.put(p.z0)
            for s, e in _chunks(p.x.shape[0], settings.chunk_size):
                refs[p.name].append(self._remote.remote(g_ref, f_ref, p.x[s:e].clone(), z_ref, settings, p.name,
                                                        threads))
                tasks += 1
        parts = {name: self._get(ray, r) for name, r in refs.items()}
        self.last_seconds, self.last_tasks = time.perf_counter() - t0, tasks
        return _assemble(problems, parts)


def make_engine(name: str, *, address: str | None = None, num_cpus: int | None = None) -> LocalEngine | RayEngine:
    if name == "local":
        if address is not None:
            raise ConfigError("an address only applies to the Ray engine (engine='ray')")
        return LocalEngine()
    if name == "ray":
        return RayEngine(address, num_cpus=num_cpus)
    raise ConfigError(f"unknown reconstruction engine {name!r}; known: local, ray")


__all__ = ["LocalEngine", "RayEngine", "RayTasks", "make_engine", "torch_threads"]
