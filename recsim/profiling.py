"""Measurements for benchmarks: the peak resident memory of the current process image."""
from __future__ import annotations

import re
import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident memory (MiB) of this process since it started or last exec'd.

    Reads VmHWM from /proc/self/status where it exists: unlike getrusage's ru_maxrss, it is not
    inherited from the parent that forked this process, so a benchmark's subprocess reports its
    own peak even when its parent held more memory. Falls back to ru_maxrss elsewhere.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        match = re.search(r"VmHWM:\s+(\d+)\s+kB", status.read_text())
        if match:
            return int(match.group(1)) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
