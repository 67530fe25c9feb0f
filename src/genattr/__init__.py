"""genattr: attribute generated content to the generative model that made it."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("genattr")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

UNKNOWN = "UNKNOWN"  # the label of content no candidate accepts
REAL = "real"  # the candidate name of real (not generated) images in closed-set classifiers

__all__ = ["REAL", "UNKNOWN", "__version__", "attribute"]


def __getattr__(name: str) -> object:
    # `genattr.attribute` (the one-call pipeline) loads torch and the models: only on first use, so that
    # `import genattr` stays light for the torch-free parts (ledger, registry). Through importlib, not an import
    # statement: every layer imports this package for REAL/UNKNOWN, and the layer contracts (import-linter) must
    # not see each of them "importing" the pipeline at the top of the stack.
    if name == "attribute":
        import importlib

        return importlib.import_module("genattr.unified").attribute
    raise AttributeError(f"module 'genattr' has no attribute {name!r}")

