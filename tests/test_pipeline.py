"""Pipelines: spec validation and overrides, stage caching, resumption after a kill, determinism."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from recsim.cli import main
from recsim.errors import ConfigError
from recsim.io import MARKER as OUTPUT_MARKER
from recsim.io import read_json
from recsim.pipeline.spec import load_spec, parse_seeds, spec_from_dict
from recsim.pipeline.stages import MARKER, Runner, Stage, content_hash

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "pipelines" / "tiny.yaml"
FAST = ["--set", "evaluation.modes=FB,NX_0", "--set", "evaluation.episodes=30", "--quiet"]


def write_spec(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def tiny_data() -> dict:
    return yaml.safe_load(TINY.read_text())


# ----------------------------------------------------------------------------- spec


@pytest.mark.parametrize("change, key", [
    (lambda d: d.update(bogus=1), "bogus"),
    (lambda d: d["data"].update(prest="tiny"), "data.prest"),
    (lambda d: d["user_model"].update(epochz=2), "user_model.epochz"),
    (lambda d: d["knn"].update(kk=3), "knn.kk"),
    (lambda d: d["evaluation"].update(n_episode=3), "evaluation.n_episode"),
    (lambda d: d["methods"][0].update(algo="random"), "methods[0].algo"),
])
def test_unknown_key_names_the_key_and_the_file(tmp_path, change, key):
    data = tiny_data()
    change(data)
    path = write_spec(tmp_path, data)
    with pytest.raises(ConfigError) as error:
        load_spec(path)
    assert key in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize("change, key", [
    (lambda d: d["user_model"].update(epochs="two"), "user_model.epochs"),
    (lambda d: d["evaluation"].update(episodes=1.5), "evaluation.episodes"),
    (lambda d: d.update(seeds="x"), "seeds"),
    (lambda d: d["data"].update(world_seed=True), "data.world_seed"),
    (lambda d: d["quit"].update(window="4"), "quit.window"),
])
def test_wrong_type_names_the_key_and_the_file(tmp_path, change, key):
    data = tiny_data()
    change(data)
    path = write_spec(tmp_path, data)
    with pytest.raises(ConfigError) as error:
        load_spec(path)
    assert key in str(error.value) and str(path) in str(error.value)


def test_invalid_values_and_unknown_choices_are_config_errors(tmp_path):
    for change in (lambda d: d["evaluation"].update(modes=["XX"]),
                   lambda d: d["methods"][0].update(method="nope"),
                   lambda d: d["data"].update(name="netflix"),
                   lambda d: d["methods"].append(dict(d["methods"][0]))):
        data = tiny_data()
        change(data)
        with pytest.raises(ConfigError):
            load_spec(write_spec(tmp_path, data))


def test_set_overrides_are_coerced_to_field_types():
    spec = load_spec(TINY, ["user_model.epochs=3", "evaluation.modes=FB,NX_0", "evaluation.ope_cap=5",
                            "methods.greedy-model.reward=knn", "data.raw_dir=123", "knn.k=7"], seeds=[3, 4])
    assert spec.user_model["epochs"] == 3
    assert spec.evaluation.modes == ["FB", "NX_0"]
    assert spec.evaluation.ope_cap == 5.0 and isinstance(spec.evaluation.ope_cap, float)
    assert [m.reward for m in spec.methods if m.name == "greedy-model"] == ["knn"]
    assert spec.data.raw_dir == "123"
    assert spec.knn == {"k": 7}
    assert spec.seeds == [3, 4]
    with pytest.raises(ConfigError, match="user_model.epochs"):
        load_spec(TINY, ["user_model.epochs=many"])
    with pytest.raises(ConfigError, match="no method named"):
        load_spec(TINY, ["methods.dorl.penalty.lambda_E=1"])
    with pytest.raises(ConfigError, match="key=value"):
        load_spec(TINY, ["user_model.epochs"])


def test_override_of_aliased_yaml_params_changes_one_method(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text("methods:\n"
                    "  - {name: a, method: random}\n"
                    "  - {name: g1, method: greedy, params: &p {}}\n"
                    "  - {name: g2, method: greedy, params: *p}\n")
    spec = load_spec(path, ["methods.g1.reward=knn"])
    assert [m.reward for m in spec.methods] == ["user_model", "knn", "user_model"]
    assert spec.methods[1].params is not spec.methods[2].params


def test_parse_seeds():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,2,5") == [0, 2, 5]
    assert parse_seeds("0-1,7") == [0, 1, 7]
    for bad in ("", "a", "3-1"):
        with pytest.raises(ConfigError):
            parse_seeds(bad)


def test_spec_from_dict_defaults():
    spec = spec_from_dict({"methods": [{"name": "r", "method": "random"}]})
    assert spec.data.name == "synthetic" and spec.seeds == [0]


def test_plan_shares_what_does_not_depend_on_the_run_seed():
    from recsim.pipeline.stages import plan

    per_seed = plan(load_spec(TINY, seeds=[0, 1]))
    names = [s.name for s in per_seed]
    assert names.count("data") == 1 and names.count("knn") == 1  # the kNN table reads only the log
    assert {"user_model-s0", "user_model-s1", "eval-random-s1", "policy-greedy-knn-s0"} <= set(names)
    assert names[-1] == "report"
    shared_plan = plan(load_spec(TINY, ["user_model.seed=7"], seeds=[0, 1]))
    shared = [s.name for s in shared_plan]
    assert [n for n in shared if n.startswith("user_model")] == ["user_model-s7"]
    for stages in (per_seed, shared_plan):  # every input is planned before the stage that reads it
        order = {stage.name: i for i, stage in enumerate(stages)}
        assert len(order) == len(stages)
        for stage in stages:
            assert all(order[i] < order[stage.name] for i in stage.inputs)


# ----------------------------------------------------------------------------- stage runner


def test_runner_reuses_only_unchanged_stages(tmp_path):
    calls = []

    def writer(text):
        def run(out, runner):
            calls.append(text)
            (out / "value.txt").write_text(text)
        return run

    def stages(first: str, second: str):
        return [Stage("a", {"v": first}, (), writer(first)), Stage("b", {"v": second}, ("a",), writer(second))]

    log = open(os.devnull, "w")
    runner = Runner(spec=None, run_dir=tmp_path, stream=log)  # the stages here read no spec
    assert [r.reused for r in runner.execute(stages("x", "y"))] == [False, False]
    assert [r.reused for r in runner.execute(stages("x", "y"))] == [True, True]
    assert [r.reused for r in runner.execute(stages("z", "y"))] == [False, False]  # b's input changed
    assert calls == ["x", "y", "z", "y"]
    (tmp_path / "b" / "value.txt").write_text("tampered")
    assert [r.reused for r in runner.execute(stages("z", "y"))] == [True, False]
    (tmp_path / "a" / MARKER).unlink()  # as if killed after the outputs, before the marker
    assert [r.reused for r in runner.execute(stages("z", "y"))] == [False, True]
    assert read_json(tmp_path / "a" / "config.json") == {"v": "z"}
    log.close()


def test_failed_stage_leaves_no_complete_looking_folder(tmp_path):
    def broken(out, runner):
        (out / "half.txt").write_text("partial")
        raise RuntimeError("injected failure")

    runner = Runner(spec=None, run_dir=tmp_path, stream=open(os.devnull, "w"))
    with pytest.raises(RuntimeError):
        runner.execute([Stage("a", {}, (), broken)])
    assert not (tmp_path / "a").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".a.")]


def test_content_hash_sees_names_and_bytes(tmp_path):
    (tmp_path / "x").write_text("1")
    first = content_hash(tmp_path)
    (tmp_path / "x").write_text("2")
    second = content_hash(tmp_path)
    (tmp_path / "x").rename(tmp_path / "y")
    assert len({first, second, content_hash(tmp_path)}) == 3


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["run", str(TINY), "--out", str(out), *FAST]) == 0
    return out


def test_tiny_spec_end_to_end(reference_run, capsys):
    report = reference_run / "report"
    header = (report / "results.csv").read_text().splitlines()[0].split(",")
    for column in ("method", "seed", "mode", "R_tra", "length", "R_each", "MCD", "gini", "coverage",
                   "ndcg@10_truth", "ndcg@10_random_log", "ope_step_ips", "ope_step_snips", "ope_step_ncis",
                   "ope_step_dr", "ope_step_dr_unreliable", "ope_step_truth", "ope_step_random_log",
                   "ope_n_contexts", "ope_n_users"):
        assert column in header
    assert len((report / "results.csv").read_text().splitlines()) == 1 + 3 * 2  # 3 methods x 2 modes x 1 seed
    page = (report / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 and "<img" in page and "http" not in page
    assert "+-" in (report / "results.md").read_text()
    for stage in ("data", "user_model-s0", "knn", "policy-random-s0", "eval-greedy-knn-s0", "report"):
        assert (reference_run / stage / MARKER).is_file()
        assert (reference_run / stage / "config.json").is_file()


def test_second_run_reuses_every_stage(reference_run, capsys):
    before = (reference_run / "report" / "results.csv").read_bytes()
    assert main(["run", str(TINY), "--out", str(reference_run), *FAST]) == 0
    captured = capsys.readouterr()
    assert "running" not in captured.err
    assert "stages: 10 (10 reused)" in captured.out
    assert (reference_run / "report" / "results.csv").read_bytes() == before


def test_changed_setting_reruns_only_downstream_stages(reference_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(reference_run, copy)
    args = FAST + ["--set", "methods.greedy-knn.reward=user_model"]
    assert main(["run", str(TINY), "--out", str(copy), *args]) == 0
    err = capsys.readouterr().err
    ran = {line.split("] ")[1].split(":")[0] for line in err.splitlines() if line.endswith("running")}
    assert ran == {"policy-greedy-knn-s0", "eval-greedy-knn-s0", "report"}


def test_killed_run_resumes_to_identical_results(reference_run, tmp_path, capsys):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "recsim", "run", str(TINY), "--out", str(out), *FAST]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        for line in process.stderr:
            if "user_model-s0: running" in line:
                time.sleep(1.0)  # inside the stage: training has started
                break
            assert time.monotonic() < deadline
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert (out / "data" / MARKER).is_file()
    assert not (out / "user_model-s0" / MARKER).exists()
    assert main(["run", str(TINY), "--out", str(out), *FAST]) == 0
    err = capsys.readouterr().err
    assert "data: reused" in err and "user_model-s0: running" in err
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != OUTPUT_MARKER]
    assert not leftovers  # the killed attempt's temp folder
    # same seed, same results: the resumed run equals the uninterrupted reference run
    assert (out / "report" / "results.csv").read_bytes() == (reference_run / "report" / "results.csv").read_bytes()


def test_report_command_rebuilds_from_saved_results(reference_run, tmp_path, capsys):
    out = tmp_path / "rebuilt"
    assert main(["report", str(reference_run), "--out", str(out)]) == 0
    assert (out / "results.csv").read_bytes() == (reference_run / "report" / "results.csv").read_bytes()
    assert (out / "report.html").is_file() and list((out / "figures").glob("*.png"))


def test_missing_raw_files_is_one_line_error(tmp_path, capsys):
    data = tiny_data()
    data["data"] = {"name": "coat", "raw_dir": str(tmp_path / "nowhere")}
    code = main(["run", str(write_spec(tmp_path, data)), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "missing raw files" in err and "nowhere" in err


def test_run_seeds_change_a_stochastic_policy_not_the_users():
    from recsim.data.synthetic import generate_world
    from recsim.pipeline.evaluation import evaluate_method
    from recsim.pipeline.spec import EvaluationSpec
    from recsim.policy.static import RandomRecommender
    from recsim.policy.train import method_config

    world = generate_world("tiny", 0)
    spec = EvaluationSpec(modes=["NX_0"], episodes=20, ope=["snips"], n_bootstrap=10)
    logs = {}
    for run_seed in (0, 1):
        config = method_config("random", "synthetic", seed=run_seed)
        rows, by_mode = evaluate_method(RandomRecommender(123), world, config, spec, None)
        logs[run_seed] = by_mode["NX_0"]
        assert abs(rows[0]["ope_step_snips"] - rows[0]["ope_step_truth"]) < 0.5
    assert (logs[0].users == logs[1].users).all()
    assert not (logs[0].items == logs[1].items).all()
    again, _ = evaluate_method(RandomRecommender(123), world, method_config("random", "synthetic", seed=1), spec, None)
    assert again[0]["R_tra"] == logs[1].returns.mean()


SHARED_DATA = Path(os.environ.get("RECSIM_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.mark.skipif(not (SHARED_DATA / "coat" / "train.ascii").is_file(),
                    reason=f"Coat raw files not found under {SHARED_DATA / 'coat'} (set RECSIM_SHARED_DATA)")
def test_coat_spec_runs_offline_metrics_on_the_real_data(tmp_path, capsys):
    data = yaml.safe_load((REPO / "pipelines" / "coat.yaml").read_text())
    data["seeds"] = [0]
    data["data"].pop("complete")
    data["user_model"].update(members=1, epochs=1)
    data["methods"] = [{"name": "ucb"}, {"name": "random"}]
    data["progress"] = False
    out = tmp_path / "coat"
    spec = write_spec(tmp_path, data)
    assert main(["run", str(spec), "--out", str(out), "--raw", str(SHARED_DATA / "coat"), "--quiet"]) == 0
    results = pd.read_csv(out / "report" / "results.csv")
    assert set(results["mode"]) == {"offline"}  # no ground truth: ranking and OPE only
    assert results["ndcg@10_random_log"].between(0, 1).all() and results["ope_step_snips"].between(1, 5).all()
    assert results["ope_step_random_log"].between(1, 5).all() and (results["ope_n_users"] == 290).all()
    assert (results["ope_pscore_source"] == "logged").all()


@pytest.mark.skipif(not (SHARED_DATA / "coat" / "train.ascii").is_file(),
                    reason=f"Coat raw files not found under {SHARED_DATA / 'coat'} (set RECSIM_SHARED_DATA)")
def test_coat_spec_rolls_out_in_the_completed_matrix(tmp_path):
    data = yaml.safe_load((REPO / "pipelines" / "coat.yaml").read_text())
    assert data["data"]["complete"] == {}
    data["seeds"] = [0]
    data["user_model"].update(members=1, epochs=1)
    data["methods"] = [{"name": "greedy"}, {"name": "random"}, {"name": "quit_aware"}]
    data["evaluation"] = {**data.get("evaluation", {}), "modes": ["NX_0"], "episodes": 20}
    data["progress"] = False
    out = tmp_path / "coat"
    spec = write_spec(tmp_path, data)
    assert main(["run", str(spec), "--out", str(out), "--raw", str(SHARED_DATA / "coat"), "--quiet"]) == 0
    from recsim.data.schema import Dataset

    dataset = Dataset.load(out / "data" / "dataset")
    assert dataset.truth is not None and np.isfinite(dataset.truth).all()
    assert dataset.meta["completion"]["fitted_on"] == "test"
    results = pd.read_csv(out / "report" / "results.csv")
    assert set(results["mode"]) == {"NX_0"}
    assert (results["length"] >= 1).all() and results["R_tra"].between(1, 5 * 30).all()
    # the spec's quit rule leaves room for the released logs' 30-step episodes: the rule-aware
    # baseline lasts them (at the public code's threshold 10 on this matrix it lasted 3.7 steps)
    assert results.loc[results["method"] == "quit_aware", "length"].min() >= 25


def test_unknown_completion_key_is_an_error_naming_it(tmp_path):
    data = yaml.safe_load((REPO / "pipelines" / "coat.yaml").read_text())
    data["data"]["complete"] = {"rnak": 4}
    spec = write_spec(tmp_path, data)
    with pytest.raises(ConfigError, match="data.complete: unknown key"):
        load_spec(spec)
