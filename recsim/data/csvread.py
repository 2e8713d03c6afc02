"""Reading raw data files with explicit types and one-line errors naming file, field and problem."""
from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from recsim.errors import DataError

_ARROW_COLUMN = re.compile(r"In CSV column #(\d+): (?:Row #(\d+): )?(.*)")
_INVALID_VALUE = re.compile(r"invalid value '(.*)'")


def require_files(directory: str | Path, names: list[str], hint: str) -> dict[str, Path]:
    """Paths of `names` inside `directory`; a `DataError` naming the first missing one and `hint`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(str(directory), None, f"directory not found; {hint}")
    paths = {name: directory / name for name in names}
    for path in paths.values():
        if not path.is_file():
            raise DataError(str(path), None, f"missing file; {hint}")
    return paths


def header_of(path: Path, delimiter: str = ",", encoding: str = "utf-8-sig") -> list[str]:
    """The column names of a delimited file's first line (a UTF-8 byte-order mark is skipped, as
    the CSV reader skips it)."""
    with open(path, encoding=encoding, errors="replace", newline="") as f:
        header = next(csv.reader(f, delimiter=delimiter), None)
    if not header:
        raise DataError(str(path), "header", "file is empty")
    return [c.strip() for c in header]


def _visible(names: list[str]) -> str:
    """Column names for a message, with invisible characters escaped (`ascii`)."""
    return ", ".join(name if name.isprintable() else ascii(name) for name in names)


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
            raise DataError(str(path), column, f"missing column (found: {_visible(names)})")
    read_options = pacsv.ReadOptions(column_names=column_names or None, block_size=1 << 25)
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
            line = _first_unparsable_line(path, column, delimiter, column_names, match.group(3))
            raise DataError(str(path), f"{column} (line {line})", match.group(3)) from None
        raise DataError(str(path), None, message) from None
    if table.num_rows == 0:
        raise DataError(str(path), None, "no data rows" + ("" if column_names else " below the header"))
    for column in columns:
        if column in nullable:
            continue
        chunked = table.column(column)
        if chunked.null_count:
            first = int(np.flatnonzero(chunked.is_null().to_numpy(zero_copy_only=False))[0])
            line = first + (1 if column_names else 2)
            raise DataError(str(path), f"{column} (line {line})", "missing value")
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _first_unparsable_line(path: Path, column: str, delimiter: str, column_names: list[str] | None,
                           problem: str) -> int:
    """The 1-based file line (the header is line 1) of the first value of `column` the reader
    rejected: the value the reader's message quotes (an int32 overflow, a word), else the first
    value that is not a number (error path only)."""
    raw = pd.read_csv(path, sep=delimiter, usecols=[column], dtype=str, names=column_names, keep_default_na=False,
                      skip_blank_lines=False, header=None if column_names else 0, encoding="utf-8-sig")[column]
    quoted = _INVALID_VALUE.search(problem)
    if quoted:
        bad = raw.str.strip() == quoted.group(1).strip()
    else:
        bad = (raw.str.strip() != "") & pd.to_numeric(raw, errors="coerce").isna()
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
    """A whitespace-separated numeric matrix (Coat's .ascii files), checked against `shape`.

    Errors name the 1-based line and column of the first bad value.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": reported below
            matrix = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError:
        raise _matrix_error(path) from None
    if matrix.size == 0:
        raise DataError(str(path), None, "no data rows")
    if shape is not None and matrix.shape != shape:
        raise DataError(str(path), "shape", f"{matrix.shape[0]} x {matrix.shape[1]}, expected {shape[0]} x {shape[1]}")
    if not np.isfinite(matrix).all():
        row, col = np.argwhere(~np.isfinite(matrix))[0]
        raise DataError(str(path), f"line {row + 1}, column {col + 1}", "NaN or infinite value")
    return matrix


def _matrix_error(path: Path) -> DataError:
    """The `DataError` of the first line of a whitespace matrix that does not parse."""
    width = None
    with open(path, errors="replace") as f:
        for number, line in enumerate(f, start=1):
            tokens = line.split()
            if not tokens:
                continue
            for column, token in enumerate(tokens, start=1):
                try:
                    float(token)
                except ValueError:
                    return DataError(str(path), f"line {number}, column {column}", f"{token!r} is not a number")
            if width is not None and len(tokens) != width:
                return DataError(str(path), f"line {number}", f"{len(tokens)} values, the lines above hold {width}")
            width = len(tokens)
    return DataError(str(path), None, "not a whitespace-separated numeric matrix")
