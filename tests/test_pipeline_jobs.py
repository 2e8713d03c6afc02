"""`recsim run --jobs N`: independent stages in worker processes give the results of `--jobs 1`;
a stage failing in a worker fails the run like a stage failing in the parent, and a rerun resumes."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import yaml

from recsim.cli import main
from recsim.errors import ConfigError, DataError, OutputError
from recsim.io import read_json
from recsim.pipeline.stages import MARKER

TINY = Path(__file__).resolve().parents[1] / "pipelines" / "tiny.yaml"
TINY_A2C = {"epochs": 1, "epoch_num_steps": 300, "num_envs": 10, "episodes_per_collect": 10, "eval_episodes": 10}
BAD_TRACKER = ["--set", "methods.dorl.params.tracker.window=50"]
"""A tracker window longer than the observation's history: valid at load, an error when the
policy is built (in the worker), after the user model and the static methods' stages."""


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    """The tiny world, one user model, two static methods and a model-based one on a tiny budget."""
    data = yaml.safe_load(TINY.read_text())
    data["methods"] = [{"name": "random"}, {"name": "greedy-knn", "method": "greedy", "reward": "knn"},
                       {"name": "dorl", "params": TINY_A2C}]
    data["evaluation"].update(modes=["FB", "NX_0"], episodes=30, ope=["snips"])
    path = tmp_path_factory.mktemp("spec") / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(spec: Path, out: Path, *args: str) -> int:
    return main(["run", str(spec), "--out", str(out), "--quiet", *args])


def stage_lines(err: str, what: str) -> set[str]:
    return {line.split("] ")[1].split(":")[0] for line in err.splitlines() if line.endswith(what)}


def contents(out: Path) -> dict[str, str]:
    """Content hash of every stage whose outputs hold no wall-clock time (policy and user-model
    folders record their training's seconds, so their bytes differ from run to run at any N)."""
    return {p.parent.name: read_json(p)["content"] for p in out.glob(f"*/{MARKER}")
            if not p.parent.name.startswith(("policy-", "user_model"))}


@pytest.fixture(scope="module")
def sequential(spec, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("jobs1") / "run"
    assert run(spec, out) == 0
    return out


def test_two_jobs_give_the_results_of_one(spec, sequential, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(spec, out, "--jobs", "2") == 0
    err = capsys.readouterr().err
    assert (out / "report" / "results.csv").read_bytes() == (sequential / "report" / "results.csv").read_bytes()
    assert contents(out) == contents(sequential) and len(contents(out)) == 2 + 3 + 1  # data, knn, evals, report
    n = len(list(sequential.glob(f"*/{MARKER}")))
    assert len(stage_lines(err, "running")) == n and len(stage_lines(err, " s")) == n
    assert "[stage 1 of 10] data: running" in err and "[stage 10 of 10] report: done in" in err


def test_failing_stage_in_a_worker_fails_the_run_like_in_the_parent_and_a_rerun_resumes(
        spec, sequential, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(sequential, out)
    for stage in ("eval-random-s0", "policy-greedy-knn-s0", "eval-greedy-knn-s0"):  # to run beside dorl
        shutil.rmtree(out / stage)
    assert run(spec, out, "--jobs", "2", *BAD_TRACKER) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("recsim: error:")]
    assert len(errors) == 1 and "TrackerConfig.window: 50" in errors[0], err
    assert "policy-dorl-s0: running" in err and "eval-random-s0: running" in err
    assert not (out / "policy-dorl-s0" / MARKER).exists() and not [p for p in out.iterdir() if ".tmp" in p.name]
    completed = {p.parent.name for p in out.glob(f"*/{MARKER}")}
    assert {"data", "user_model-s0", "knn", "policy-random-s0", "eval-random-s0"} <= completed
    # the same failure in the parent process: the same line, after reusing what the workers completed
    assert run(spec, out, *BAD_TRACKER) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("recsim: error:")] == errors
    assert stage_lines(err, "reused") == completed - {"policy-dorl-s0", "eval-dorl-s0", "report"}
    # the cause removed, the run resumes and ends where an uninterrupted run ends; the stages left
    # depend on how far the workers got beside dorl and the parent before it (machine load)
    done = {p.parent.name for p in out.glob(f"*/{MARKER}")}
    assert run(spec, out) == 0
    err = capsys.readouterr().err
    left = {p.parent.name for p in sequential.glob(f"*/{MARKER}")} - done
    # eval-dorl's copied marker is stale once its policy retrains
    assert stage_lines(err, "running") == {"policy-dorl-s0", "eval-dorl-s0"} | left
    assert "report" in stage_lines(err, "reused")  # the evaluations' contents equal the copied run's
    assert (out / "report" / "results.csv").read_bytes() == (sequential / "report" / "results.csv").read_bytes()


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bad_jobs_is_one_line_and_touches_nothing(spec, tmp_path, capsys, value):
    out = tmp_path / "run"
    assert run(spec, out, "--jobs", value) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--jobs" in err and value in err
    assert not out.exists()


@pytest.mark.parametrize("error", [DataError("a.csv", "user_id", "not an integer"), DataError("a.csv", None, "empty"),
                                   OutputError("runs/x", "is a file"), ConfigError("jobs: bad")])
def test_user_errors_cross_processes_whole(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and vars(copy) == vars(error)
