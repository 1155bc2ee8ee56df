"""The neurolp exception hierarchy.

Every error a user can cause derives from :class:`NeurolpError`. A message says what was wrong,
what was expected and what to do next; the CLI prints it on one line and exits with status 2.
"""

from __future__ import annotations

__all__ = [
    "NeurolpError",
    "InputError",
    "ConfigError",
    "DataNotFoundError",
    "DataFormatError",
    "CheckpointError",
    "OfflineError",
]


class NeurolpError(Exception):
    """Base class of all errors neurolp raises on purpose."""


class InputError(NeurolpError, ValueError):
    """An argument or a value passed in is invalid (wrong shape, range, unknown name)."""


class ConfigError(InputError):
    """A configuration (model name, preset, option combination) is invalid."""


class DataNotFoundError(NeurolpError, FileNotFoundError):
    """A dataset, cache or file that neurolp needs is not where it was told to look."""


class DataFormatError(NeurolpError):
    """A file exists but its content is not in the expected format (malformed, truncated, NaN)."""


class CheckpointError(NeurolpError):
    """A checkpoint is missing, corrupted, or does not match the requested model."""


class OfflineError(NeurolpError, ConnectionError):
    """A download was needed but the remote service cannot be reached."""
