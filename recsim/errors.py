"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""
from __future__ import annotations


class RecsimError(Exception):
    """Base class of errors caused by the user's input (files, configs, arguments)."""


class DataError(RecsimError):
    """A data file is missing or malformed.

    The message always names the file, the field (column, line or array) and the problem, so the
    user can fix the input without reading a traceback.
    """

    def __init__(self, file: str, field: str | None, problem: str) -> None:
        self.file = str(file)
        self.field = field
        self.problem = problem
        where = f"{self.file}: {field}: " if field else f"{self.file}: "
        super().__init__(where + problem)


class ConfigError(RecsimError):
    """A configuration value (CLI flag, YAML key, dataclass field) is unknown or invalid."""


class OutputError(RecsimError):
    """An output path (`--out`) that recsim must not write: a user's file or folder, an input,
    or a folder another recsim process is writing."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {problem}")

