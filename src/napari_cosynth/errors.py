"""Exceptions that carry a message a user can act on.

Every error raised on bad input names the file, value or layer at fault and says what to do, so the
CLI and the napari widget can show ``str(error)`` as it is.
"""


class CosynthError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""


class DatasetError(CosynthError):
    """A dataset file is missing, corrupt, truncated or inconsistent."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(CosynthError):
    """A configuration file or value is invalid."""


class CheckpointError(CosynthError):
    """A model checkpoint cannot be loaded safely."""
