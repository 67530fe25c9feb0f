"""genattr: attribute generated content to the generative model that made it."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("genattr")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

UNKNOWN = "UNKNOWN"  # the label of content no candidate accepts
REAL = "real"  # the candidate name of real (not generated) images in closed-set classifiers

__all__ = ["REAL", "UNKNOWN", "__version__"]
