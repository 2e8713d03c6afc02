"""Wall time and peak memory of every stage of the quickstart pipeline; prints one JSON object.

Runs `pipelines/quickstart.yaml` (or `pipelines/tiny.yaml` with `--quick`) into a fresh
temporary folder, sampling the process's resident memory (VmRSS, every 20 ms) during each stage,
then runs it again to time a fully cached re-run. Compared against the quickstart's budget
(15 minutes on 2 CPU cores, issue 8): `ratio` = measured wall time / budget.

Usage: .venv/bin/python benchmarks/quickstart.py [--quick] [--keep DIR]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recsim.pipeline.spec import load_spec  # noqa: E402
from recsim.pipeline.stages import Runner, plan  # noqa: E402

BUDGET_S = 15 * 60


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class PeakSampler:
    """Highest RSS seen since the last `reset`, sampled by a daemon thread."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(self.interval)

    def reset(self) -> None:
        self.peak = rss_mb()

    def stop(self) -> None:
        self._stop.set()


def run(spec_path: Path, out: Path, sampler: PeakSampler, records: list[dict]) -> float:
    spec = load_spec(spec_path)
    spec.progress = False
    stages = plan(spec)
    for stage in stages:
        inner = stage.run

        def timed(out_dir, runner, inner=inner, name=stage.name):
            sampler.reset()
            start = time.perf_counter()
            inner(out_dir, runner)
            records.append({"stage": name, "wall_s": round(time.perf_counter() - start, 3),
                            "peak_rss_mb": round(sampler.peak, 1)})

        stage.run = timed
    start = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        Runner(spec, out, quiet).execute(stages)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny spec instead of the quickstart")
    parser.add_argument("--keep", type=Path, default=None, help="run folder to keep (default: a temporary one)")
    args = parser.parse_args()
    spec_path = REPO / "pipelines" / ("tiny.yaml" if args.quick else "quickstart.yaml")
    sampler = PeakSampler()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "run"
        records: list[dict] = []
        wall = run(spec_path, out, sampler, records)
        rerun_records: list[dict] = []
        rerun = run(spec_path, out, sampler, rerun_records)
    sampler.stop()
    by_family: dict[str, float] = {}
    for record in records:
        family = record["stage"].split("-")[0]
        by_family[family] = round(by_family.get(family, 0.0) + record["wall_s"], 3)
    print(json.dumps({
        "benchmark": "quickstart",
        "spec": str(spec_path.relative_to(REPO)),
        "cpu_count": os.cpu_count(),
        "wall_s": round(wall, 2),
        "baseline": {"name": "issue 8 budget: 15 minutes on 2 CPU cores", "wall_s": BUDGET_S},
        "ratio": round(wall / BUDGET_S, 4),
        "rerun_all_cached_wall_s": round(rerun, 2),
        "rerun_stages_recomputed": len(rerun_records),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "wall_s_by_stage_family": by_family,
        "stages": records,
    }, default=lambda o: dataclasses.asdict(o)))


if __name__ == "__main__":
    main()
