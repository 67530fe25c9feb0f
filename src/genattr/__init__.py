"""genattr: attribute generated content to the generative model that made it."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("genattr")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

UNKNOWN = "UNKNOWN"

__all__ = ["UNKNOWN", "__version__"]
