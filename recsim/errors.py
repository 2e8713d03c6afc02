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

    def __reduce__(self) -> tuple[type, tuple[str, str | None, str]]:
        # Exceptions pickle as `cls(*args)` by default, which misses the three arguments: a
        # DataError raised in a worker process (`recsim run --jobs N`) must arrive whole.
        return type(self), (self.file, self.field, self.problem)


class ConfigError(RecsimError):
    """A configuration value (CLI flag, YAML key, dataclass field) is unknown or invalid."""


class OutputError(RecsimError):
    """An output path (`--out`) that recsim must not write: a user's file or folder, an input,
    or a folder another recsim process is writing."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return type(self), (self.path, self.problem)

