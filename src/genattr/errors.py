"""Exception hierarchy. Every error a user can trigger derives from GenattrError so the CLI can turn it
into one clear line instead of a traceback."""


class GenattrError(Exception):
    """Base class for errors caused by bad input or configuration (not by bugs)."""


class DataError(GenattrError):
    """A data file or directory is missing, corrupt, truncated or of the wrong kind."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """The dataset is not installed where we looked."""


class ImageDecodeError(DataError):
    """A file is not a decodable image (or is a decompression bomb)."""


class UnknownNameError(GenattrError, KeyError):
    """A name was looked up in a registry (generators, attributors, zoo) and is not there."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class IntegrityError(GenattrError):
    """A file's checksum does not match its manifest."""


class ConfigError(GenattrError, ValueError):
    """Invalid hyperparameters or configuration."""


class StorageUnavailableError(GenattrError):
    """A database could not be reached or is locked by another writer (retry later, or check the URL)."""
