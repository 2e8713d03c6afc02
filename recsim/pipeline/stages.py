"""The stages of a pipeline run, with content-hash caching and resumption.

A run of a spec is a list of stages (`plan`), each writing one folder `DIR/<stage>/`:

    data                      the dataset (synthetic world or a real dataset's raw files)
    user_model-s<seed>        the DeepFM ensemble, its reward tables, embeddings and metrics
    user_model_ips-s<seed>    the same trained with IPS weights (the "ips" method), when used
    knn[-s<seed>]             ROLeR's kNN reward table (per seed only if it reads the user model)
    policy-<method>-s<seed>   one trained method
    eval-<method>-s<seed>     its rollouts (episodes_<mode>.npz) and metrics (metrics.json)
    report                    results.csv, results.md, figures, report.html

Caching. A stage's *key* is the SHA-256 of its resolved config, a code version, and the
*content hashes* of its input stages. A stage runs in a temporary folder beside its target,
which replaces the target atomically when the stage succeeds (`recsim.io.atomic_dir`); then a
completion marker `.complete.json` holding the key and the content hash of the folder (SHA-256
of every file's relative path and bytes) is written, atomically and last. A later run reuses a
stage whose marker holds the same key and whose files still hash to the recorded content; every
other stage runs again. A run killed at any point therefore never leaves a stage that looks
complete but is not, and running it again resumes at the first incomplete stage. Since every
stage is deterministic given its config and inputs (seeded), the resumed run's results equal
an uninterrupted run's. `Runner.execute(stages, jobs)` with `jobs` > 1 runs independent stages in
worker processes by the same protocol (`recsim.pipeline.jobs`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from recsim.errors import ConfigError, RecsimError
from recsim.io import atomic_dir, read_json, write_json
from recsim.pipeline.methods import MethodNeeds, method_inputs, method_needs
from recsim.pipeline.spec import MethodSpec, Spec

MARKER = ".complete.json"
CODE_VERSION = 2
"""Bump when every stage's outputs change for the same config (invalidates every cached stage;
2: one training path, saved policies as JSON + weights)."""
EVAL_VERSION = 4
"""Version of the evaluation stages' code (2: the policy's sampling seed follows the run seed; 3: one
online evaluator, R_tra_std, the user model's Recall@k relevance, MCD missing without categories;
4: `ope_step_*` columns with flags and reasons, covered contexts, named ranking references)."""
STAGE_THREADS = 1
"""torch intra-op threads of every stage, in the parent (`--jobs 1`) and in the workers alike: the
float32 sums of the user model's training then run in one order whatever `--jobs` is, so a run
writes the same bits at any N (with torch's default of 2 threads in the parent against a worker's
1, the tiny spec's reward table differed in its last bits and the report's OPE bounds in the 6th
digit). Policy training already runs on one thread (`MethodConfig.torch_threads`)."""


@dataclasses.dataclass
class Stage:
    """One step of a run.

    Attributes:
        name: folder name under the run directory.
        config: the resolved, JSON-able config (written to `config.json`; part of the key).
        inputs: names of the stages whose outputs this stage reads.
        run: `run(out_dir, runner)` writes the outputs into `out_dir` (a temporary folder).
        version: the stage code's version (part of the key: a new version recomputes the stage).
    """

    name: str
    config: dict[str, Any]
    inputs: tuple[str, ...]
    run: Callable[[Path, Runner], None]
    version: int = 1


@dataclasses.dataclass
class StageResult:
    name: str
    reused: bool
    seconds: float
    content: str


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default, sort_keys=True))


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, os.PathLike)):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def content_hash(directory: Path) -> str:
    """SHA-256 over the relative path and bytes of every file under `directory` (marker excluded)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MARKER):
        digest.update(str(path.relative_to(directory)).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def stage_key(stage: Stage, input_contents: dict[str, str]) -> str:
    payload = {"stage": stage.name, "version": [CODE_VERSION, stage.version], "config": _jsonable(stage.config),
               "inputs": {name: input_contents[name] for name in stage.inputs}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def completed_content(directory: Path, key: str) -> str | None:
    """The recorded content hash when `directory` holds a complete stage with this key, else None."""
    marker = directory / MARKER
    if not marker.is_file():
        return None
    try:
        info = read_json(marker)
    except (OSError, ValueError, RecsimError):
        return None
    if not isinstance(info, dict) or info.get("key") != key:
        return None
    if content_hash(directory) != info.get("content"):
        return None
    return str(info["content"])


class Runner:
    """Runs the stages of one spec into `run_dir`, reusing complete ones.

    Loaded inputs (the dataset, reward tables) are cached in memory for the run.
    """

    def __init__(self, spec: Spec, run_dir: str | os.PathLike, stream: TextIO | None = None) -> None:
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.stream = stream if stream is not None else sys.stderr
        self._cache: dict[str, Any] = {}

    # -- loaded inputs, shared by the stages
    def path(self, stage: str) -> Path:
        return self.run_dir / stage

    def dataset(self):
        if "dataset" not in self._cache:
            from recsim.data.schema import Dataset

            self._cache["dataset"] = Dataset.load(self.path("data") / "dataset")
        return self._cache["dataset"]

    def table(self, stage: str):
        key = f"table:{stage}"
        if key not in self._cache:
            from recsim.reward.table import RewardTable

            self._cache[key] = RewardTable.load(self.path(stage))
        return self._cache[key]

    def forget(self, key: str) -> None:
        """Drop a loaded input from the in-memory cache (its stage is being rewritten)."""
        self._cache.pop(key, None)

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def _remove_leftovers(self, name: str) -> None:
        """Temporary folders of an earlier, killed attempt at stage `name` (one run per folder)."""
        for leftover in [*self.run_dir.glob(f".{name}.*.tmp"), self.run_dir / f".{name}.old"]:
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)

    def run_stage(self, stage: Stage, key: str) -> tuple[str, float]:
        """Run `stage` with key `key` into its folder: a temporary folder that replaces the target
        when `stage.run` succeeds, then the marker, written last. Returns (content hash, seconds).

        The one implementation of the completion protocol, in the parent process (`--jobs 1`)
        and in the worker processes (`recsim.pipeline.jobs`)."""
        from recsim.policy.runtime import torch_threads

        start = time.perf_counter()
        target = self.path(stage.name)
        (target / MARKER).unlink(missing_ok=True)
        self._remove_leftovers(stage.name)
        with atomic_dir(target, "stage") as tmp, torch_threads(STAGE_THREADS):
            write_json(tmp / "config.json", stage.config)
            stage.run(tmp, self)
        content = content_hash(target)
        write_json(target / MARKER, {"key": key, "content": content, "stage": stage.name,
                                     "seconds": round(time.perf_counter() - start, 3)})
        return content, time.perf_counter() - start

    def execute(self, stages: list[Stage], jobs: int = 1) -> list[StageResult]:
        """Run (or reuse) every stage; return what happened to each, in plan order.

        `jobs` 1 runs the stages one after another in this process. `jobs` > 1 runs independent
        stages in that many worker processes (`recsim.pipeline.jobs.execute_parallel`; needs
        `self.spec`, which the workers re-plan): the same stages, keys and outputs.
        """
        if jobs < 1:
            raise ConfigError(f"jobs: must be >= 1, got {jobs}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if jobs > 1:
            from recsim.pipeline.jobs import execute_parallel

            return execute_parallel(self, stages, jobs)
        contents: dict[str, str] = {}
        results = []
        n = len(stages)
        for i, stage in enumerate(stages, 1):
            key = stage_key(stage, contents)
            content = completed_content(self.path(stage.name), key)
            if content is not None:
                self.say(f"[stage {i} of {n}] {stage.name}: reused")
                contents[stage.name] = content
                results.append(StageResult(stage.name, True, 0.0, content))
                continue
            self.say(f"[stage {i} of {n}] {stage.name}: running")
            content, seconds = self.run_stage(stage, key)
            self.say(f"[stage {i} of {n}] {stage.name}: done in {seconds:.1f} s")
            contents[stage.name] = content
            results.append(StageResult(stage.name, False, seconds, content))
        return results


# ----------------------------------------------------------------------------- stage builders


def _data_stage(spec: Spec) -> Stage:
    data = spec.data
    config: dict[str, Any] = {"name": data.name}
    if data.name == "synthetic":
        from recsim.data.synthetic import resolve_config

        world = resolve_config(data.preset, **data.world)
        config.update(preset=data.preset, world_seed=data.world_seed, world=dataclasses.asdict(world))
    else:
        from recsim.data.loaders import DATASETS
        from recsim.data.store import fingerprint

        raw = data.resolved_raw_dir()
        config["raw_dir"] = str(raw)
        missing = [f for f in DATASETS[data.name].files if not (raw / f).is_file()]
        config["fingerprint"] = None if missing else fingerprint(data.name, raw)
    completion = data.completion_config()
    if completion is not None:
        config["completion"] = dataclasses.asdict(completion)
    if data.holdout is not None:
        config["holdout"] = dataclasses.asdict(data.holdout)

    def run(out: Path, runner: Runner) -> None:
        if data.name == "synthetic":
            from recsim.data.synthetic import generate_world

            dataset = generate_world(data.preset, data.world_seed, **data.world)
        else:
            from recsim.data.store import load_dataset

            dataset = load_dataset(data.name, data.resolved_raw_dir(), cache_dir=data.cache_dir)
        if data.holdout is not None:
            from recsim.data.split import with_holdout

            dataset = with_holdout(dataset, data.holdout)
        if completion is not None and dataset.truth is None:
            from recsim.data.completion import with_completed_truth

            dataset = with_completed_truth(dataset, completion)
        dataset.save(out / "dataset")
        runner.forget("dataset")

    return Stage("data", config, (), run)


def _train_config(spec: Spec, seed: int, dataset_name: str, ips: bool):
    """The spec's `user_model` section: its `preset` (default "default") with the other keys over it."""
    from recsim.user_model.train import preset_config

    overrides = dict(spec.user_model)
    preset = overrides.pop("preset", "default")
    overrides.update(seed=seed, ips=ips or bool(overrides.get("ips", False)))
    return preset_config(preset, **overrides).resolved(dataset_name)


def model_seed(spec: Spec, seed: int) -> int:
    """The user model's seed for run seed `seed`: the run seed, unless the spec fixes
    `user_model.seed` (then every run seed shares one user model, trained once)."""
    return int(spec.user_model.get("seed", seed))


def model_stage_name(seed: int, ips: bool = False) -> str:
    return f"user_model{'_ips' if ips else ''}-s{seed}"


def _user_model_stage(spec: Spec, seed: int, ips: bool = False, disagreement: bool = False) -> Stage:
    """The DeepFM ensemble: members, `reward_table.npz` (max-variance uncertainty, or the spec's
    choice), embeddings, metrics and, when a method needs it, `disagreement/reward_table.npz`
    (the std of the member means as the uncertainty)."""
    config = dict(_jsonable(_train_config(spec, seed, spec.data.name, ips)), disagreement_table=disagreement)
    progress = spec.progress

    def run(out: Path, runner: Runner) -> None:
        from recsim.user_model.train import table_ids, train_ensemble, write_outputs

        dataset = runner.dataset()
        train_config = _train_config(spec, seed, dataset.name, ips)
        ensemble = train_ensemble(dataset, train_config, out, progress=progress)
        write_outputs(ensemble, dataset, out, train_config.uncertainty, tuple(spec.evaluation.ndcg_k))
        if disagreement:
            users, items = table_ids(dataset)
            ensemble.reward_table(users, items, "disagreement").save(out / "disagreement")
        # Per-epoch checkpoints only serve a resumed training; the stage keeps the final members.
        shutil.rmtree(out / "checkpoints", ignore_errors=True)

    return Stage(model_stage_name(seed, ips), config, ("data",), run)


def _knn_config(spec: Spec):
    from recsim.reward.knn import default_config

    return default_config(spec.data.name, **spec.knn)


def _knn_reads_user_model(spec: Spec) -> bool:
    config = _knn_config(spec)
    return config.indicator in ("predicted", "embedding") or (config.observed_only and config.prior in
                                                             ("auto", "user_model"))


def _knn_stage(spec: Spec, seed: int) -> Stage:
    config = _knn_config(spec)
    uses_model = _knn_reads_user_model(spec)
    name = f"knn-s{seed}" if uses_model else "knn"
    inputs = ("data", f"user_model-s{seed}") if uses_model else ("data",)
    resolved = dict(_jsonable(config), progress=False)

    def run(out: Path, runner: Runner) -> None:
        from recsim.reward.knn import build_knn_reward_table

        knn_config = dataclasses.replace(config, progress=spec.progress)
        model_dir = runner.path(f"user_model-s{seed}") if uses_model else None
        build_knn_reward_table(runner.dataset(), knn_config, user_model_dir=model_dir).save(out)

    return Stage(name, resolved, inputs, run)


@dataclasses.dataclass(frozen=True)
class MethodPlan:
    """Which stages one method of one seed reads."""

    needs: MethodNeeds
    table_stage: str | None
    model_stage: str | None
    inputs: tuple[str, ...]


def _method_plan(spec: Spec, method: MethodSpec, seed: int, knn_name: str) -> MethodPlan:
    needs = method_needs(method)
    ms = model_seed(spec, seed)
    table_stage = None
    if needs.table is not None:
        table_stage = {"user_model": model_stage_name(ms), "user_model_ips": model_stage_name(ms, True),
                       "knn": knn_name}[needs.table]
    model_stage = model_stage_name(ms) if needs.user_model else None
    inputs = ["data"] + [s for s in (table_stage, model_stage) if s is not None]
    return MethodPlan(needs, table_stage, model_stage, tuple(dict.fromkeys(inputs)))


def _method_stages(spec: Spec, method: MethodSpec, seed: int, knn_name: str) -> tuple[Stage, Stage]:
    mplan = _method_plan(spec, method, seed, knn_name)
    policy_name = f"policy-{method.name}-s{seed}"
    config = spec.method_config(method, seed)
    policy_config = {"method": _jsonable(dataclasses.replace(config, progress=False)), "reward": mplan.needs.table}

    def inputs(runner: Runner):
        table = runner.table(mplan.table_stage) if mplan.table_stage else None
        disagreement = runner.table(f"{mplan.model_stage}/disagreement") if mplan.needs.disagreement else None
        model_dir = runner.path(mplan.model_stage) if mplan.model_stage else None
        return method_inputs(runner.dataset(), mplan.needs, table, model_dir, disagreement)

    def train(out: Path, runner: Runner) -> None:
        from recsim.policy.train import train_method

        run = train_method(config, inputs(runner), out)
        for warning in run.warnings:
            runner.say(f"warning: {policy_name}: {warning}")
        curve = [(h["epoch"], h["R_tra"]) for h in run.history if "R_tra" in h]
        write_json(out / "training_curve.json", {"x": [c[0] for c in curve], "y": [c[1] for c in curve],
                                                 "x_label": "epoch",
                                                 "y_label": f"R_tra (ground truth, {config.evaluation.mode})"})
        for folder in ("checkpoints", "tensorboard"):  # serve a resumed training only: not results
            shutil.rmtree(out / folder, ignore_errors=True)

    evaluation = spec.evaluation
    ope_model = model_stage_name(model_seed(spec, seed)) if evaluation.needs_user_model else None
    eval_inputs = tuple(dict.fromkeys([policy_name, *mplan.inputs, *([ope_model] if ope_model else [])]))
    eval_config = {"method": method.name, "seed": seed, "evaluation": dataclasses.asdict(evaluation),
                   "env": dataclasses.asdict(spec.env), "quit": dataclasses.asdict(spec.quit)}

    def evaluate(out: Path, runner: Runner) -> None:
        from recsim.pipeline.evaluation import evaluate_method
        from recsim.policy.storage import load_policy

        policy = load_policy(runner.path(policy_name), inputs(runner))
        model_table = runner.table(ope_model) if ope_model else None
        rows, logs = evaluate_method(policy, runner.dataset(), config, evaluation, model_table, spec.progress)
        for mode, log in logs.items():
            log.save(out / f"episodes_{mode}.npz")
        training = runner.path(policy_name) / "training_curve.json"
        trained = read_json(runner.path(policy_name) / "results.json")
        write_json(out / "metrics.json", {"method": method.name, "family": config.family,
                                          "reference": config.spec.reference, "seed": seed,
                                          "warnings": trained.get("warnings", []),
                                          "rows": rows,
                                          "training_curve": read_json(training) if training.is_file() else None})

    return (Stage(policy_name, policy_config, mplan.inputs, train),
            Stage(f"eval-{method.name}-s{seed}", eval_config, eval_inputs, evaluate, EVAL_VERSION))


def _report_stage(spec: Spec, eval_names: list[str]) -> Stage:
    config = {"name": spec.name, "report": dataclasses.asdict(spec.report), "evaluations": eval_names}

    def run(out: Path, runner: Runner) -> None:
        from recsim.evaluation.report import build_report

        build_report(runner.run_dir, out, eval_names, title=spec.report.title or spec.name,
                     figures=spec.report.figures)

    return Stage("report", config, tuple(["data"] + eval_names), run)


def plan(spec: Spec) -> list[Stage]:
    """The stages of `spec`, in an order that respects their inputs."""
    if not spec.methods:
        raise ConfigError("methods: the spec trains no method; add at least one")
    stages = [_data_stage(spec)]
    uses_knn = any(method_needs(m).table == "knn" for m in spec.methods)
    disagreement = any(method_needs(m).disagreement for m in spec.methods)
    method_stages, eval_names = [], []
    needed: set[str] = set()
    for seed in spec.seeds:
        knn_name = _knn_stage(spec, model_seed(spec, seed)).name
        for method in spec.methods:
            policy, evaluation = _method_stages(spec, method, seed, knn_name)
            method_stages += [policy, evaluation]
            eval_names.append(evaluation.name)
            needed.update(policy.inputs, evaluation.inputs)
    if uses_knn and _knn_reads_user_model(spec):
        needed.update(model_stage_name(model_seed(spec, seed)) for seed in spec.seeds)
    for seed in dict.fromkeys(model_seed(spec, seed) for seed in spec.seeds):
        for ips in (False, True):
            if model_stage_name(seed, ips) in needed:
                stages.append(_user_model_stage(spec, seed, ips, disagreement and not ips))
        if uses_knn:
            knn = _knn_stage(spec, seed)
            if knn.name not in {s.name for s in stages}:
                stages.append(knn)
    stages += method_stages
    stages.append(_report_stage(spec, eval_names))
    return stages


def run_spec(spec: Spec, run_dir: str | os.PathLike, stream: TextIO | None = None,
             jobs: int = 1) -> list[StageResult]:
    """Run every stage of `spec` into `run_dir` (reusing complete stages) with `jobs` processes
    (`Runner.execute`); write `spec.json`."""
    run_dir = Path(run_dir)
    stages = plan(spec)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "spec.json", spec.to_dict())
    return Runner(spec, run_dir, stream).execute(stages, jobs)
