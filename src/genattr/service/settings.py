"""The service's knobs: where the registry lives and the limits that keep one request from taking the server down.

Every limit is checked before the expensive step it protects: the body size while the upload streams in (and from
``Content-Length`` before reading anything), the file count as multipart parts begin, the pixel count from the image
header before any pixel is decoded, the image size against the models' before decoding too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from genattr.errors import ConfigError

MIB = 1024 * 1024
#: the image formats the service decodes (Pillow format names); anything else is refused from its header
DEFAULT_FORMATS = ("PNG", "JPEG", "WEBP")


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of :func:`genattr.service.create_app`.

    ``database_url``: the registry (None: ``GENATTR_DATABASE_URL``, else the SQLite file under ``GENATTR_HOME``).
    ``max_body_bytes``: request body cap (413 beyond it). ``max_files``: images per request (413 beyond).
    ``max_pixels``: width × height per image, read from the header before decoding (a decompression bomb is a
    small file that declares a huge image; 413). ``formats``: accepted image formats (415 otherwise).
    ``max_deep_files``: images per request with ``deep=true`` (seed reconstruction costs seconds per image, so a
    large deep batch would occupy the server for minutes). ``workers``: attributions running at the same time
    (each one already uses the machine's cores through torch; more mostly adds contention).
    ``load_on_startup``: build the pipeline when the server starts rather than on the first request.
    """

    database_url: str | None = None
    max_body_bytes: int = 32 * MIB
    max_files: int = 256
    max_pixels: int = 4096 * 4096
    formats: tuple[str, ...] = field(default=DEFAULT_FORMATS)
    max_deep_files: int = 8
    workers: int = 1
    load_on_startup: bool = True

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_files", "max_pixels", "max_deep_files", "workers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"ServiceSettings.{name} must be a positive integer, got {value!r}")
        formats = tuple(f.upper() for f in self.formats)
        unknown = sorted(set(formats) - set(DEFAULT_FORMATS))
        if not formats or unknown:
            raise ConfigError(f"ServiceSettings.formats must be a non-empty subset of {', '.join(DEFAULT_FORMATS)}; "
                              f"got {', '.join(self.formats) or 'nothing'}")
        object.__setattr__(self, "formats", formats)

    @classmethod
    def from_env(cls, **overrides: object) -> ServiceSettings:
        """Defaults, then ``GENATTR_SERVICE_MAX_BODY_BYTES`` / ``…_MAX_FILES`` / ``…_MAX_PIXELS`` /
        ``…_MAX_DEEP_FILES`` / ``…_WORKERS`` and ``GENATTR_DATABASE_URL``, then ``overrides`` (None = unset)."""
        values: dict[str, object] = {}
        for name in ("max_body_bytes", "max_files", "max_pixels", "max_deep_files", "workers"):
            raw = os.environ.get(f"GENATTR_SERVICE_{name.upper()}")
            if raw is not None:
                try:
                    values[name] = int(raw)
                except ValueError:
                    raise ConfigError(f"GENATTR_SERVICE_{name.upper()}={raw!r} is not an integer") from None
        if os.environ.get("GENATTR_DATABASE_URL"):
            values["database_url"] = os.environ["GENATTR_DATABASE_URL"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


__all__ = ["DEFAULT_FORMATS", "MIB", "ServiceSettings"]
