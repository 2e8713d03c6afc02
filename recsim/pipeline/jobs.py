"""Independent stages of a run in parallel worker processes (`recsim run --jobs N`).

The parent process schedules: a stage is *ready* when every stage in its `inputs` is complete
(reused or done); its key (`stage_key`, which needs the inputs' content hashes) is computed then.
A ready stage that is complete on disk (`completed_content`) is reused in the parent; the others
start, in plan order, in at most `jobs` spawned workers. `Stage.run` is a closure and cannot be
pickled, so each worker receives the `Spec` and the run folder once, re-plans (`plan` is
deterministic) and runs a stage by name with its own `Runner` (own in-memory cache) through
`Runner.run_stage`, the same atomic-folder + marker protocol as a `--jobs 1` run, with the same
torch threads (`recsim.pipeline.stages.STAGE_THREADS`). Workers run with `progress = False` (no
stage key reads it).

A stage that fails stops the scheduling of new stages; the stages already running finish (and are
complete for a rerun), then the first error is raised in the parent as it was raised in the worker
(`RecsimError`s pickle whole). An interrupt terminates the workers; their temporary folders
never look complete and the next run removes them.
"""
from __future__ import annotations

import dataclasses
import io
import multiprocessing
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from recsim.pipeline.spec import Spec
from recsim.pipeline.stages import Runner, Stage, StageResult, completed_content, plan, stage_key

_WORKER: dict[str, object] = {}
"""The worker process's `Runner` and stages by name, set once by `_start_worker`."""


def _start_worker(spec: Spec, run_dir: str) -> None:
    import threading

    from tqdm import tqdm

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it ends the workers
    _die_with_parent()
    # tqdm's default lock is a multiprocessing semaphore, which a terminated worker leaks (a
    # warning at exit); the workers' bars are disabled, a thread lock serves.
    tqdm.set_lock(threading.RLock())
    _WORKER["runner"] = Runner(spec, run_dir)
    _WORKER["stages"] = {stage.name: stage for stage in plan(spec)}


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this worker when the parent dies (`kill -9` of the run): an
    orphan would go on writing a stage that the next run is writing too."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _run_in_worker(name: str, inputs: dict[str, str], key: str) -> tuple[str, float, list[str]]:
    """Run stage `name` whose inputs have these content hashes; (content, seconds, messages).

    The stage's `runner.say` messages come back with the result (the parent prints them, so that
    two stages' lines never interleave); a failing stage's messages go to stderr before the error.
    """
    runner = _WORKER["runner"]
    stages = _WORKER["stages"]
    assert isinstance(runner, Runner) and isinstance(stages, dict)
    stage: Stage = stages[name]
    if stage_key(stage, inputs) != key:
        raise RuntimeError(f"{name}: the worker's stage has another key than the parent's "
                           "(a stage config reads a setting the workers change)")
    runner.stream = log = io.StringIO()
    try:
        content, seconds = runner.run_stage(stage, key)
    except BaseException:
        sys.stderr.write(log.getvalue())
        raise
    return content, seconds, log.getvalue().splitlines()


def execute_parallel(runner: Runner, stages: list[Stage], jobs: int) -> list[StageResult]:
    """Run (or reuse) `stages` of `runner.spec` into `runner.run_dir` with `jobs` worker processes;
    the `StageResult`s in plan order (see the module docstring). Prints the lines of
    `Runner.execute`: "[stage i of n] NAME: running / reused / done in X s"."""
    if runner.spec is None:
        raise ValueError("parallel stages need the runner's spec (the workers re-plan it)")
    worker_spec = dataclasses.replace(runner.spec, progress=False)
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                               initargs=(worker_spec, str(runner.run_dir)))
    scheduler = _Scheduler(runner, stages, pool, jobs)
    try:
        scheduler.run()
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)
    if scheduler.failure is not None:
        raise scheduler.failure
    return [scheduler.results[stage.name] for stage in stages]


class _Scheduler:
    """The parent's bookkeeping of one parallel run: what is complete, waiting and running."""

    def __init__(self, runner: Runner, stages: list[Stage], pool: ProcessPoolExecutor, jobs: int) -> None:
        self.runner, self.pool, self.jobs = runner, pool, jobs
        self.index = {stage.name: i for i, stage in enumerate(stages, 1)}
        self.waiting = list(stages)
        self.running: dict[Future, Stage] = {}
        self.contents: dict[str, str] = {}
        self.keys: dict[str, str] = {}
        self.results: dict[str, StageResult] = {}
        self.failure: Exception | None = None

    def say(self, stage: Stage, what: str) -> None:
        self.runner.say(f"[stage {self.index[stage.name]} of {len(self.index)}] {stage.name}: {what}")

    def run(self) -> None:
        """Until every stage is complete, or a stage failed and the running ones have finished."""
        while True:
            if self.failure is None:
                self.dispatch()
            if not self.running:
                if self.waiting and self.failure is None:
                    raise RuntimeError(f"stages whose inputs never complete: {[s.name for s in self.waiting]}")
                return
            done, _ = wait(self.running, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: self.index[self.running[f].name]):
                self.finish(self.running.pop(future), future)

    def dispatch(self) -> None:
        """Reuse the ready stages complete on disk and start ready others while a worker is free, in
        plan order (a reuse can make later stages ready: scan again until nothing changes)."""
        changed = True
        while changed:
            changed = False
            for stage in list(self.waiting):
                if not all(name in self.contents for name in stage.inputs):
                    continue
                if stage.name not in self.keys:
                    self.keys[stage.name] = key = stage_key(stage, self.contents)
                    content = completed_content(self.runner.path(stage.name), key)
                    if content is not None:
                        self.say(stage, "reused")
                        self.complete(stage, StageResult(stage.name, True, 0.0, content))
                        changed = True
                        continue
                if len(self.running) < self.jobs:
                    self.say(stage, "running")
                    inputs = {name: self.contents[name] for name in stage.inputs}
                    self.running[self.pool.submit(_run_in_worker, stage.name, inputs, self.keys[stage.name])] = stage
                    self.waiting.remove(stage)

    def finish(self, stage: Stage, future: Future) -> None:
        try:
            content, seconds, messages = future.result()
        except Exception as error:  # the first failure is raised once the running stages finish
            self.failure = self.failure or error
            return
        for message in messages:
            self.runner.say(message)
        self.say(stage, f"done in {seconds:.1f} s")
        self.complete(stage, StageResult(stage.name, False, seconds, content))

    def complete(self, stage: Stage, result: StageResult) -> None:
        self.contents[stage.name] = result.content
        self.results[stage.name] = result
        if stage in self.waiting:
            self.waiting.remove(stage)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued stages and end the workers now (an interrupt, or an error in the parent)."""
    for process in list((pool._processes or {}).values()):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)  # the pool sees its workers gone and cleans up
