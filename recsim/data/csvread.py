"""Reading raw data files with explicit types and one-line errors naming file, field and problem."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from recsim.errors import DataError

_ARROW_COLUMN = re.compile(r"In CSV column #(\d+): (?:Row #(\d+): )?(.*)")


def require_files(directory: str | Path, names: list[str], hint: str) -> dict[str, Path]:
    """Paths of `names` inside `directory`; a `DataError` naming the first missing one and `hint`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(str(directory), None, f"directory not found; {hint}")
    paths = {name: directory / name for name in names}
    for name, path in paths.items():
        if not path.is_file():
            raise DataError(str(path), None, f"missing file; {hint}")
    return paths


def header_of(path: Path, delimiter: str = ",", encoding: str = "utf-8") -> list[str]:
    with open(path, encoding=encoding, errors="replace", newline="") as f:
        header = next(csv.reader(f, delimiter=delimiter), None)
    if not header:
        raise DataError(str(path), "header", "file is empty")
    return [c.strip() for c in header]


def read_csv_columns(path: Path, columns: dict[str, pa.DataType], *, delimiter: str = ",",
                     column_names: list[str] | None = None, nullable: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read only `columns` (name -> arrow type) of a delimited file.

    With `column_names` the file has no header and these name its columns in order. Missing
    columns, unparsable values and missing values (outside `nullable`) raise `DataError` naming
    the file, the column, the line and the problem.
    """
    names = column_names or header_of(path, delimiter)
    for column in columns:
        if column not in names:
            raise DataError(str(path), column, f"missing column (found: {', '.join(names)})")
    read_options = pacsv.ReadOptions(column_names=column_names, block_size=1 << 25) if column_names else pacsv.ReadOptions(block_size=1 << 25)
    try:
        table = pacsv.read_csv(
            path,
            read_options=read_options,
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(column_types=columns, include_columns=list(columns)),
        )
    except pa.ArrowInvalid as error:
        message = str(error).splitlines()[0]
        match = _ARROW_COLUMN.search(message)
        if match and int(match.group(1)) < len(names):
            column = names[int(match.group(1))]
            line = _first_unparsable_line(path, column, delimiter, column_names)
            raise DataError(str(path), f"{column} (line {line})", match.group(3)) from None
        raise DataError(str(path), None, message) from None
    for column in columns:
        if column in nullable:
            continue
        chunked = table.column(column)
        if chunked.null_count:
            first = int(np.flatnonzero(chunked.is_null().to_numpy(zero_copy_only=False))[0])
            line = first + (1 if column_names else 2)
            raise DataError(str(path), f"{column} (line {line})", "missing value")
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _first_unparsable_line(path: Path, column: str, delimiter: str, column_names: list[str] | None) -> int:
    """The file line of the first value of `column` that is not a number (error path only)."""
    raw = pd.read_csv(path, sep=delimiter, usecols=[column], dtype=str, names=column_names,
                      header=None if column_names else 0)[column]
    bad = raw.notna() & pd.to_numeric(raw, errors="coerce").isna()
    row = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
    return row + (1 if column_names else 2)


def check_range(path: Path, frame: pd.DataFrame, column: str, low: float, high: float, first_line: int = 2) -> None:
    """`DataError` at the first value of `column` outside [low, high] or NaN.

    `first_line` is the file line of the frame's first row (2 below a header line).
    """
    values = frame[column].to_numpy()
    bad = ~(np.isfinite(values) & (values >= low) & (values <= high))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(str(path), f"{column} (line {row + first_line})",
                        f"value {float(values[row])!r} outside [{low}, {high}]")


def check_unique_pairs(path: Path, users: np.ndarray, items: np.ndarray, names: tuple[str, str],
                       first_line: int = 2) -> None:
    """`DataError` naming the first duplicated (user, item) pair and its file line."""
    key = users.astype(np.int64) * (int(items.max(initial=0)) + 1) + items.astype(np.int64)
    order = np.argsort(key, kind="stable")
    repeated = np.flatnonzero(key[order][1:] == key[order][:-1])
    if len(repeated):
        row = int(order[repeated[0] + 1])
        raise DataError(str(path), f"{names[0]},{names[1]} (line {row + first_line})",
                        f"duplicate pair ({users[row]}, {items[row]}); this file has one row per pair")


def read_matrix(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A whitespace-separated numeric matrix (Coat's .ascii files), checked against `shape`."""
    try:
        matrix = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise DataError(str(path), None, f"not a numeric matrix: {error}") from None
    if shape is not None and matrix.shape != shape:
        raise DataError(str(path), "shape", f"{matrix.shape[0]} x {matrix.shape[1]}, expected {shape[0]} x {shape[1]}")
    if not np.isfinite(matrix).all():
        row, col = np.argwhere(~np.isfinite(matrix))[0]
        raise DataError(str(path), f"line {row + 1}, column {col + 1}", "NaN or infinite value")
    return matrix
