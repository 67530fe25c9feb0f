"""The registry and the pipeline one app serves, opened and built lazily so that the server starts (and answers
``/healthz`` with 503) when the database is down, and recovers by itself once it is back.

Tests and embedders may hand in their own pipeline and/or registry; a pipeline handed in is never rebuilt. One
built from the registry is rebuilt on the next attribution after a registry write through the API.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from genattr.errors import GenattrError, StorageUnavailableError
from genattr.service.errors import ApiError, log
from genattr.service.settings import ServiceSettings

if TYPE_CHECKING:
    from genattr.registry import Registry
    from genattr.unified import Pipeline


class ServiceState:
    def __init__(self, settings: ServiceSettings, *, pipeline: Any = None, registry: Any = None) -> None:
        self.settings = settings
        self._registry: Registry | None = registry
        self._owns_registry = registry is None
        self._pipeline: Pipeline | None = pipeline
        self._fixed_pipeline = pipeline is not None
        self._stale = False
        self._lock = threading.RLock()

    def registry(self) -> Registry:
        """The registry, opened on first use (StorageUnavailableError → 503 through the error handlers)."""
        with self._lock:
            if self._registry is None:
                from genattr.registry import Registry

                self._registry = Registry.open(self.settings.database_url)
                log.info("registry opened: %s", getattr(self._registry, "url", "?"))
            return self._registry

    def pipeline(self) -> Pipeline:
        """The attribution pipeline, built from the registry on first use and after registry writes."""
        with self._lock:
            if self._pipeline is not None and not self._stale:
                return self._pipeline
            from genattr.unified import Pipeline

            try:
                pipeline = Pipeline.from_registry(self.registry())
            except StorageUnavailableError:
                raise
            except GenattrError as exc:  # a tampered or missing component file, a bad registration: fix, then retry
                raise ApiError(503, "pipeline_unavailable", f"cannot build the attribution pipeline: {exc}"
                               ) from exc
            self._pipeline, self._stale = pipeline, False
            log.info("attribution pipeline built: %s", _summary(pipeline))
            return pipeline

    @property
    def pipeline_loaded(self) -> bool:
        return self._pipeline is not None

    def image_shape(self) -> list[int] | None:
        p = self._pipeline
        return None if p is None else [int(s) for s in p.image_shape]

    def registry_changed(self) -> None:
        if not self._fixed_pipeline:
            self._stale = True

    def close(self) -> None:
        with self._lock:
            if self._owns_registry and self._registry is not None:
                self._registry.close()
                self._registry = None


def _summary(pipeline: Any) -> str:
    try:
        d = pipeline.describe()
    except Exception:  # describe is informational only
        return "?"
    return ", ".join(f"{k}={v}" for k, v in d.items() if isinstance(v, int | str | float))[:300] or "built"


__all__ = ["ServiceState"]
