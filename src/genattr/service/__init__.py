"""The HTTP service: ``create_app(settings)`` → a FastAPI app answering "who made this image?" for uploads, with
the model registry behind it and a web page at ``/``. Run it with ``genattr serve``; see docs/service.md."""

from genattr.service.app import create_app
from genattr.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
