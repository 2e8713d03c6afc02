"""Output folders and files of the command line: what `--out` may be, and one writer at a time.

- `claim_dir(out, kind, inputs)`: `out` may be absent, an empty folder or recsim's own folder of
  the same kind (a marker `.recsim.json`, see `recsim.io`); never a file, and never equal to,
  inside or around an input. Re-running a command into its own output (resume) works.
- `claim_file(out, kind, inputs)`: a JSON result file may replace only recsim's JSON file of the
  same kind (its `"recsim"` key).
- `exclusive(out)`: a lock file beside `out` (`.NAME.lock`, holding the writer's pid) taken with
  `fcntl.flock`; a second writer fails at once with one line naming the holder. The kernel drops
  the lock when its holder dies, so a lock left by a killed run is stale and simply taken over.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from recsim.errors import OutputError
from recsim.io import MARKER, check_replaceable, mark

LOCK_SUFFIX = ".lock"


def _overlap(out: Path, inputs: Iterable[str | os.PathLike | None]) -> None:
    """`OutputError` when `out` is an input, lies inside one, or holds one, or when the nearest
    existing folder above it is a file."""
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(str(out), f"{parent} is a file, not a folder")
            break
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if out == source:
            raise OutputError(str(out), f"is also an input ({given}); write the output elsewhere")
        if source in out.parents:
            raise OutputError(str(out), f"lies inside the input {given}; write the output elsewhere")
        if out in source.parents:
            raise OutputError(str(out), f"holds the input {given}; write the output elsewhere")


def claim_dir(out: str | os.PathLike, kind: str, inputs: Iterable[str | os.PathLike | None] = (),
              create: bool = True) -> Path:
    """Check that `out` may receive a recsim `kind` folder; with `create`, make and mark it.

    Returns the resolved path. Raises `OutputError` (one line naming `out`) otherwise.
    """
    path = Path(out).resolve()
    _overlap(path, inputs)
    check_replaceable(path, kind)
    if create:
        path.mkdir(parents=True, exist_ok=True)
        mark(path, kind)
    return path


def claim_file(out: str | os.PathLike, kind: str, inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Check that the JSON result file `out` may be written: absent, or recsim's `kind` result."""
    path = Path(out).resolve()
    _overlap(path, inputs)
    if path.is_dir():
        raise OutputError(str(out), "is a folder; name a file for the JSON result")
    if path.exists():
        try:
            found = json.loads(path.read_text()).get("recsim")
        except (ValueError, AttributeError):
            found = None
        if found != kind:
            raise OutputError(str(out), f"exists and is not a recsim {kind!r} result; choose a new file name")
    return path


def lock_path(out: str | os.PathLike) -> Path:
    """The lock file of the output `out`: `.NAME.lock` beside it."""
    path = Path(out).resolve()
    if not path.name:
        raise OutputError(str(out), "is the root folder; name a folder for the output")
    return path.with_name(f".{path.name}{LOCK_SUFFIX}")


def _holder(lock: Path) -> str:
    try:
        pid = lock.read_text().strip()
    except OSError:
        return "another process"
    return f"process {pid}" if pid.isdigit() else "another process"


@contextlib.contextmanager
def exclusive(out: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of `out` for the block; `OutputError` at once when another process holds it."""
    lock = lock_path(out)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise OutputError(str(out), f"is being written by {_holder(lock)} (lock {lock.name}); "
                                        "wait for it or choose another --out") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file between our open and our lock
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        os.close(fd)


@contextlib.contextmanager
def output_dir(out: str | os.PathLike, kind: str, inputs: Iterable[str | os.PathLike | None] = (),
               create: bool = True) -> Iterator[Path]:
    """`exclusive(out)` around `claim_dir(out, kind, inputs, create)`: the usual `--out` folder.

    A folder this call created is removed again when the block fails before writing into it
    (a user error leaves no empty output behind).
    """
    inputs = list(inputs)
    _overlap(Path(out).resolve(), inputs)  # before the lock: an input may be locked by this process
    with exclusive(out):
        existed = Path(out).exists()
        path = claim_dir(out, kind, inputs, create)
        try:
            yield path
        except BaseException:
            if not existed:
                _remove_if_only_marker(path)
            raise


def _remove_if_only_marker(path: Path) -> None:
    """Remove the folder `path` when it holds nothing but recsim's marker."""
    if path.is_dir() and [p.name for p in path.iterdir()] == [MARKER]:
        (path / MARKER).unlink()
        path.rmdir()


@contextlib.contextmanager
def output_file(out: str | os.PathLike, kind: str, inputs: Iterable[str | os.PathLike | None] = ()) -> Iterator[Path]:
    """`exclusive(out)` around `claim_file(out, kind, inputs)`: a `--out` JSON result file."""
    inputs = list(inputs)
    _overlap(Path(out).resolve(), inputs)
    with exclusive(out):
        yield claim_file(out, kind, inputs)
