"""Atomic file output that never destroys what recsim did not write.

Every writer writes to a temporary sibling and renames it into place (`os.replace` is atomic on
POSIX within one file system), so nothing is left half-written when a run is killed. A folder
that recsim writes as a whole carries a marker file, `.recsim.json` (`{"recsim": KIND}`); a
folder is only ever replaced when it is empty or carries the marker of the same kind, and a file
is never turned into a folder. Files and folders get the modes the user's umask allows (the
temporary files of `tempfile` would otherwise stay 0600 and 0700).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from recsim.errors import DataError, OutputError

MARKER = ".recsim.json"
"""The file that marks a folder as recsim's output of one kind."""


def current_umask() -> int:
    """The process's umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_kind(directory: str | os.PathLike) -> str | None:
    """The kind recorded in `directory`'s marker, or None (no marker, unreadable, not recsim's)."""
    try:
        info = json.loads((Path(directory) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    kind = info.get("recsim") if isinstance(info, dict) else None
    return kind if isinstance(kind, str) else None


def check_replaceable(path: str | os.PathLike, kind: str) -> None:
    """`OutputError` unless `path` is absent, an empty folder or a recsim `kind` folder."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise OutputError(str(path), "exists and is not a folder; recsim never replaces a file with a folder")
    if output_kind(path) == kind:
        return
    if any(path.iterdir()):
        found = output_kind(path)
        what = (f"is a recsim {found!r} folder, not a {kind!r} one" if found
                else f"holds files recsim did not write (no {MARKER})")
        raise OutputError(str(path), f"exists and {what}; choose a new folder or empty this one yourself")


def mark(directory: str | os.PathLike, kind: str) -> None:
    """Write `directory`'s marker of `kind` (deterministic content: it is hashed with the folder)."""
    write_json(Path(directory) / MARKER, {"recsim": kind})


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Give an OSError raised without a file name (a full disk inside a writer) the name `path`."""
    try:
        yield
    except OSError as error:
        if error.filename is not None:
            raise
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~current_umask())
        with _naming(path):
            yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, kind: str) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; marked as `kind`, it replaces `path` if the block
    succeeds. `path` must be absent, empty or a recsim folder of the same `kind` (`OutputError`)."""
    path = Path(path)
    check_replaceable(path, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())
        with _naming(path):
            yield tmp
        mark(tmp, kind)
        check_replaceable(path, kind)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old.tmp", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _to_jsonable(value: Any) -> Any:
    """Plain JSON values of `value`; NaN and infinities become None (JSON has no NaN)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return _to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(obj: Any, indent: int | None = None) -> str:
    """Strict JSON text of `obj` (dicts, lists, dataclasses, numpy values); NaN and inf as null."""
    return json.dumps(_to_jsonable(obj), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented strict JSON (see `to_json`), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(to_json(obj, indent=2) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value of the file `path`; `DataError` naming the file when it is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except ValueError as error:
        raise DataError(str(path), None, f"not valid JSON ({str(error).splitlines()[0]})") from None


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """`numpy.savez` (uncompressed: reward tables reload fast), atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, allow_pickle=False, **arrays)


def load_npz(path: str | os.PathLike, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Every array of the `.npz` file `path` (never unpickled); `DataError` naming the file when it
    is missing, is not an npz archive, holds object arrays or lacks one of `required`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), None, "missing file")
    with open(path, "rb") as f:
        if f.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise DataError(str(path), None, "not an .npz archive (a zip of .npy arrays)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except ValueError as error:
        reason = str(error).splitlines()[0]
        raise DataError(str(path), None, f"unreadable array ({reason}); recsim never unpickles") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise DataError(str(path), None, f"corrupt .npz archive ({type(error).__name__}: {error})") from None
    missing = [name for name in required if name not in arrays]
    if missing:
        raise DataError(str(path), ",".join(missing), "missing array")
    return arrays


def check_finite(path: str | os.PathLike, name: str, values: np.ndarray) -> None:
    """`DataError` naming the file, the array and the first entry that is NaN or infinite."""
    if values.dtype.kind in "fc" and not np.isfinite(values).all():
        where = np.argwhere(~np.isfinite(values))[0].tolist()
        raise DataError(str(path), name, f"NaN or infinite value at index {where}; recsim refuses to use it")
