"""Where a stream of image chunks is attributed: in this process, or as Ray tasks (``--engine ray``).

Both run the same :meth:`Pipeline.attribute` on the same chunks with the same number of torch threads, so the
answers are identical; Ray only changes where the chunks run. The pipeline is put into Ray's object store once
(workers rebuild what does not pickle: open log handles, faiss indexes). At most ``max_in_flight`` chunks are
submitted ahead of the one being collected, so a folder of any size streams in bounded memory, and results come
back in input order.

Ray is optional (``genattr[ray]``) and imported only by the Ray engine. ``address=None`` starts (or joins, when
this process already called ``ray.init``) a local Ray; any other value goes to ``ray.init(address=...)``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from genattr.attribution.reconstruction_engines import RayTasks, torch_threads
from genattr.errors import ConfigError

ENGINES = ("local", "ray")
Chunk = tuple[torch.Tensor, Sequence[bytes | None] | None]


def _attribute_chunk(pipeline: Any, x: torch.Tensor, image_bytes: Sequence[bytes | None] | None, deep: bool,
                     threads: int | None = None) -> list[Any]:
    with torch_threads(threads):  # in-process callers keep their thread count
        return pipeline.attribute(x, deep=deep, image_bytes=image_bytes)


class LocalChunks:
    name = "local"

    def run(self, pipeline: Any, chunks: Iterable[Chunk], *, deep: bool = False) -> Iterator[list[Any]]:
        for x, data in chunks:
            yield _attribute_chunk(pipeline, x, data, deep)

    def shutdown(self) -> None:
        pass


class RayChunks(RayTasks):
    """Chunks as Ray tasks (one CPU each), ``max_in_flight`` ahead (default: twice the cluster's CPUs).

    Starting or joining Ray, task errors and shutdown come from
    :class:`~genattr.attribution.reconstruction_engines.RayTasks`."""

    task = staticmethod(_attribute_chunk)

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None, max_in_flight: int | None = None,
                 threads: int | None = None) -> None:
        super().__init__(address, num_cpus=num_cpus, threads=threads)
        self.max_in_flight = max_in_flight

    def run(self, pipeline: Any, chunks: Iterable[Chunk], *, deep: bool = False) -> Iterator[list[Any]]:
        ray = self._ray()
        threads = self._task_threads()
        limit = self.max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        ref = ray.put(pipeline)
        pending: deque[Any] = deque()
        for x, data in chunks:
            pending.append(self._remote.remote(ref, x.clone(), list(data) if data is not None else None, deep,
                                               threads))
            if len(pending) >= limit:
                yield self._get(ray, pending.popleft())
        while pending:
            yield self._get(ray, pending.popleft())


def make_engine(name: str, *, address: str | None = None, num_cpus: int | None = None) -> LocalChunks | RayChunks:
    if name == "local":
        if address is not None:
            raise ConfigError("--ray-address only applies to --engine ray")
        return LocalChunks()
    if name == "ray":
        return RayChunks(address, num_cpus=num_cpus)
    raise ConfigError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")


__all__ = ["ENGINES", "LocalChunks", "RayChunks", "make_engine"]
