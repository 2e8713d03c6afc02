"""Sweeps: one pipeline run per grid point and seed, in parallel, aggregated into one table and figure.

`recsim sweep SPEC --grid a.b=0,1,5 [--grid c=x,y] --seeds 0-4 --backend local|ray`, e.g.
`recsim sweep pipelines/quickstart.yaml --grid methods.dorl.penalty.lambda_E=0,1,5 --seeds 0-4`.

- Points are the product of the `--grid` values; each (point, seed) is an ordinary run of the
  spec with the point's `--set` overrides and that one seed, into `OUT/<point>/s<seed>/` (so a
  re-run of the sweep reuses every finished stage, like `recsim run`).
- Every point's spec is validated in the calling process before any task starts.
- `local`: a process pool (`concurrent.futures`, spawn start method; each worker limits torch to
  its share of the CPU threads).
- `ray`: the same task function as a Ray remote task on the cluster at `address` (a flag, else
  `$RAY_ADDRESS`, else a local Ray instance). Ray is an optional extra
  (`pip install 'recsim-offline[ray]'`); without it the backend is a `ConfigError`. The run
  folders must be on storage every Ray worker can reach.
- Aggregation: `OUT/results.csv` (every run's results.csv rows plus one column per grid key),
  `OUT/summary.md` (mean +- std across seeds per point, method and mode) and `OUT/sweep.png`
  (R_tra against the first grid key, one line per method, 95 % intervals across seeds).
"""
from __future__ import annotations

import dataclasses
import itertools
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from recsim.errors import ConfigError
from recsim.io import atomic_path

BACKENDS = ("local", "ray")


@dataclasses.dataclass
class SweepConfig:
    """A sweep (see the module docstring).

    Attributes:
        spec: path of the YAML spec.
        out: sweep folder.
        grid: "key=v1,v2,..." entries; their product is the set of points.
        seeds: run seeds (one run per point and seed).
        sets: fixed "key=value" overrides applied to every point.
        backend: "local" (process pool) or "ray".
        workers: local backend: processes (None: the CPU count, at most the number of tasks).
        address: ray backend: cluster address (None: `$RAY_ADDRESS` or a local instance).
    """

    spec: str
    out: str
    grid: list[str]
    seeds: list[int]
    sets: list[str] = dataclasses.field(default_factory=list)
    backend: str = "local"
    workers: int | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"sweep.backend: {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"sweep.workers: must be >= 1, got {self.workers}")
        if not self.seeds:
            raise ConfigError("sweep.seeds: name at least one seed")


@dataclasses.dataclass(frozen=True)
class Task:
    """One run of a sweep: the point's overrides, the seed and the run folder."""

    spec: str
    point: tuple[tuple[str, str], ...]
    seed: int
    sets: tuple[str, ...]
    run_dir: str

    @property
    def overrides(self) -> list[str]:
        return list(self.sets) + [f"{k}={v}" for k, v in self.point]


@dataclasses.dataclass
class SweepSummary:
    table: str
    csv: Path
    figure: Path | None
    results: pd.DataFrame


def parse_grid(entries: list[str]) -> list[tuple[str, list[str]]]:
    """[(key, [values])] from "key=v1,v2" entries."""
    from recsim.pipeline.spec import parse_assignment

    grid: list[tuple[str, list[str]]] = []
    for entry in entries:
        key, values = parse_assignment(entry)
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not items:
            raise ConfigError(f"--grid {entry!r}: no values")
        if key in {k for k, _ in grid}:
            raise ConfigError(f"--grid: key {key!r} given twice")
        grid.append((key, items))
    return grid


def point_name(point: tuple[tuple[str, str], ...]) -> str:
    if not point:
        return "base"
    text = ",".join(f"{k}={v}" for k, v in point)
    return "".join(ch if ch.isalnum() or ch in "._=,-" else "_" for ch in text)


def plan_tasks(config: SweepConfig) -> list[Task]:
    """Every (point, seed) run; each point's spec is loaded (validated) here first."""
    from recsim.pipeline.spec import load_spec

    grid = parse_grid(config.grid)
    keys = [k for k, _ in grid]
    points = [tuple(zip(keys, values, strict=True)) for values in itertools.product(*(v for _, v in grid))]
    tasks = []
    for point in points:
        overrides = list(config.sets) + [f"{k}={v}" for k, v in point]
        load_spec(config.spec, overrides, config.seeds)
        for seed in config.seeds:
            run_dir = Path(config.out) / point_name(point) / f"s{seed}"
            tasks.append(Task(str(config.spec), point, seed, tuple(config.sets), str(run_dir)))
    return tasks


def run_task(task: Task) -> list[dict[str, Any]]:
    """Run one (point, seed) pipeline quietly; return its results rows with the point's keys."""
    from recsim.evaluation.report import (
        collect_rows,
        evaluation_folders,
        write_overrides,
    )
    from recsim.pipeline.spec import load_spec
    from recsim.pipeline.stages import run_spec

    spec = load_spec(task.spec, task.overrides, [task.seed])
    spec.progress = False
    run_dir = Path(task.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_overrides(run_dir, task.spec, list(task.overrides), str(task.seed))
    with open(run_dir / "run.log", "a") as log:
        run_spec(spec, run_dir, stream=log)
    frame = collect_rows(run_dir, evaluation_folders(run_dir))
    for key, value in task.point:
        frame.insert(0, key, value)
    frame.insert(0, "point", point_name(task.point))
    return frame.to_dict("records")


def _limit_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_local(tasks: list[Task], workers: int | None) -> list[list[dict[str, Any]]]:
    import multiprocessing

    n_cpu = os.cpu_count() or 1
    workers = min(workers or n_cpu, len(tasks))
    if workers == 1:
        return [run_task(task) for task in tasks]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_limit_threads,
                             initargs=(max(1, n_cpu // workers),)) as pool:
        return list(pool.map(run_task, tasks))


def ray_module():
    """The `ray` module, or a ConfigError saying how to install the optional extra."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray backend needs Ray: pip install 'recsim-offline[ray]' "
                          "(or use --backend local)") from None
    return ray


def _run_ray(tasks: list[Task], address: str | None) -> list[list[dict[str, Any]]]:
    ray = ray_module()
    address = address or os.environ.get("RAY_ADDRESS")
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    try:
        remote = ray.remote(run_task)
        return ray.get([remote.remote(task) for task in tasks])
    finally:
        if started:
            ray.shutdown()


def aggregate(results: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean +- std across seeds per (point, method, mode) of the headline metrics."""
    from recsim.evaluation.report import summary_table

    parts = []
    for _, group in results.groupby("point", sort=False):
        table = summary_table(group.drop(columns=["point", *keys]))
        for key in reversed(keys):
            table.insert(0, key, group[key].iloc[0])
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def sweep_figure(results: pd.DataFrame, keys: list[str], path: Path) -> Path | None:
    """R_tra against the first grid key, one line per method (mode NX_0 when present)."""
    if not keys:
        return None
    import matplotlib

    from recsim.evaluation.figures import png_bytes as _png
    from recsim.evaluation.rollout import across_seeds

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    key = keys[0]
    mode = "NX_0" if "NX_0" in set(results["mode"]) else str(results["mode"].iloc[0])
    part = results[results["mode"] == mode]
    values = list(dict.fromkeys(part[key]))
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, rows in part.groupby("method", sort=False):
        means, low, high = [], [], []
        for value in values:
            stats = across_seeds(rows[rows[key] == value]["R_tra"].to_numpy())
            means.append(stats["mean"])
            low.append(stats["mean"] - stats["low"])
            high.append(stats["high"] - stats["mean"])
        ax.errorbar(range(len(values)), means, yerr=[low, high], marker="o", capsize=3, label=method)
    ax.set_xticks(range(len(values)), [str(v) for v in values])
    ax.set_xlabel(key)
    ax.set_ylabel(f"R_tra ({mode}, 95 % interval across seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        tmp.write_bytes(_png(fig))
    return path


def run_sweep(config: SweepConfig) -> SweepSummary:
    """Run every task of the sweep on the chosen backend and aggregate the results."""
    tasks = plan_tasks(config)
    if config.backend == "ray":
        ray_module()
        outputs = _run_ray(tasks, config.address)
    else:
        outputs = _run_local(tasks, config.workers)
    keys = [k for k, _ in parse_grid(config.grid)]
    results = pd.DataFrame.from_records([row for rows in outputs for row in rows])
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "results.csv"
    with atomic_path(csv) as tmp:
        results.to_csv(tmp, index=False, float_format="%.6g")
    table = aggregate(results, keys)
    from recsim.evaluation.report import markdown_table

    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(f"# sweep of {config.spec}\n\nMean +- std across seeds {config.seeds}.\n\n"
                       + markdown_table(table) + "\n")
    figure = sweep_figure(results, keys, out / "sweep.png")
    shown = [c for c in [*keys, "mode", "method", "seeds", "R_tra", "length", "R_each", "MCD"] if c in table.columns]
    return SweepSummary(table[shown].to_string(index=False), csv, figure, results)
