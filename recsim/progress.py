"""Progress bars that are live on a terminal and quiet in a log.

On a terminal (stderr is a TTY) `progress_bar` is a `tqdm` bar. Anywhere else (CI, `> log.txt`,
a Ray or multiprocessing worker) a bar writes plain lines instead of carriage-return updates:
nothing while it runs for less than `interval` seconds, then at most one line per `interval`
seconds, and one closing line with the count and the elapsed time when it ran that long. A
stage of many short bars (rollout batches, chunks) therefore writes nothing at all, and a log
stays at a few lines per minute of work.

`RECSIM_PROGRESS=live` forces live bars, `RECSIM_PROGRESS=lines` the plain lines (for tests
and for terminals that are not what they seem).
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

__all__ = ["LineProgress", "is_live", "progress_bar"]

INTERVAL_S = 10.0
"""Seconds between two lines of one bar when stderr is not a terminal."""

MODE_VARIABLE = "RECSIM_PROGRESS"


def is_live(stream: TextIO | None = None) -> bool:
    """Whether bars should be live: `RECSIM_PROGRESS` when set ("live" / "lines"), otherwise
    whether `stream` (default: stderr) is a terminal."""
    mode = os.environ.get(MODE_VARIABLE, "").strip().lower()
    if mode in ("live", "lines"):
        return mode == "live"
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class LineProgress:
    """A bar for logs: iterates `iterable`, writes a line at most every `interval` seconds.

    Args:
        iterable: what to iterate.
        desc: the bar's name, the start of each line.
        total: the number of items (default: `len(iterable)` when it has one).
        initial: items already done before this bar (a resumed run).
        interval: seconds between lines; a bar that ends sooner writes nothing.
        stream: where lines go (default: stderr).
    """

    def __init__(self, iterable: Iterable[Any], desc: str = "", total: int | None = None, initial: int = 0,
                 interval: float = INTERVAL_S, stream: TextIO | None = None) -> None:
        self.iterable = iterable
        self.desc = desc
        self.total = total if total is not None else _length(iterable)
        self.n = initial
        self.interval = interval
        self.stream = stream
        self.postfix = ""
        self.started = time.monotonic()
        self.last_line = self.started
        self.wrote = False
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable:
                yield item
                self.n += 1
                if self.n != self.total and time.monotonic() - self.last_line >= self.interval:
                    self._line()  # the last item's line is the closing one
        finally:
            self.close()

    def __len__(self) -> int:
        return self.total if self.total is not None else 0

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the count on the next line (as `tqdm.set_postfix`)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        """Write the closing line (once) when the bar ran for at least `interval` seconds."""
        if self.closed:
            return
        self.closed = True
        if self.wrote or time.monotonic() - self.started >= self.interval:
            self._line(final=True)

    def _line(self, final: bool = False) -> None:
        elapsed = time.monotonic() - self.started
        count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        details = ", ".join(p for p in (f"{elapsed:.0f}s" + (" done" if final else ""), self.postfix) if p)
        print(f"{self.desc}: {count} [{details}]", file=self.stream if self.stream is not None else sys.stderr,
              flush=True)
        self.last_line = time.monotonic()
        self.wrote = True


def _length(iterable: Iterable[Any]) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


def progress_bar(iterable: Iterable[Any], desc: str = "", *, enabled: bool = True, total: int | None = None,
             initial: int = 0, leave: bool = True) -> Any:
    """A progress bar over `iterable`: live (`tqdm`) on a terminal, `LineProgress` otherwise.

    Args:
        iterable: what to iterate.
        desc: the bar's name.
        enabled: False gives a silent bar (same interface, prints nothing).
        total: the number of items when `iterable` has no length.
        initial: items already done (a resumed run).
        leave: keep the live bar on screen when it ends (terminal only).

    Returns:
        An iterable with `set_postfix(**values)` and `close()`.
    """
    if enabled and not is_live():
        return LineProgress(iterable, desc, total=total, initial=initial)
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, initial=initial, leave=leave, disable=not enabled)
