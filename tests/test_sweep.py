"""Sweeps: grid x seeds on the local process pool and on Ray, aggregated into one table and figure."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from recsim.cli import main
from recsim.errors import ConfigError
from recsim.pipeline.sweep import SweepConfig, parse_grid, plan_tasks, run_sweep

TINY = Path(__file__).resolve().parents[1] / "pipelines" / "tiny.yaml"


@pytest.fixture
def spec_path(tmp_path):
    """The tiny spec without the user model (kNN and random only): seconds per run."""
    data = yaml.safe_load(TINY.read_text())
    data["methods"] = [m for m in data["methods"] if m["name"] in ("random", "greedy-knn")]
    data["evaluation"].update(modes=["NX_0"], episodes=20, ope=["ips", "snips"], n_bootstrap=20)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_parse_grid():
    assert parse_grid(["a.b=0,1,5", "c=x"]) == [("a.b", ["0", "1", "5"]), ("c", ["x"])]
    with pytest.raises(ConfigError):
        parse_grid(["a.b="])
    with pytest.raises(ConfigError):
        parse_grid(["a=1", "a=2"])


def test_every_point_is_validated_before_running(spec_path, tmp_path):
    config = SweepConfig(str(spec_path), str(tmp_path / "out"), ["knn.k=5,oops"], [0])
    with pytest.raises(ConfigError, match="knn.k"):
        plan_tasks(config)
    assert not (tmp_path / "out").exists()
    tasks = plan_tasks(SweepConfig(str(spec_path), str(tmp_path / "out"), ["knn.k=5,10", "evaluation.episodes=7"],
                                   [0, 1, 2]))
    assert len(tasks) == 2 * 3
    assert len({t.run_dir for t in tasks}) == 6


def test_local_sweep_aggregates_points_and_seeds(spec_path, tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["sweep", str(spec_path), "--out", str(out), "--grid", "knn.k=3,20", "--seeds", "0-1",
                 "--backend", "local", "--workers", "2"])
    assert code == 0
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 2 * 2 * 2  # points x seeds x methods (one mode)
    assert set(results["knn.k"]) == {3, 20} and set(results["seed"]) == {0, 1}
    assert (out / "sweep.png").read_bytes().startswith(b"\x89PNG")
    summary = (out / "summary.md").read_text()
    assert summary.count("| 3 |") == 2 and summary.count("| 20 |") == 2
    # the random policy does not read the kNN table: identical across points
    random_rows = results[results["method"] == "random"].sort_values(["seed", "knn.k"])
    assert random_rows.groupby("seed")["R_tra"].nunique().eq(1).all()
    # a sweep run equals the plain run of the same point and seed
    single = tmp_path / "single"
    assert main(["run", str(spec_path), "--out", str(single), "--set", "knn.k=20", "--seeds", "1", "--quiet"]) == 0
    plain = pd.read_csv(single / "report" / "results.csv")
    swept = pd.read_csv(out / "knn.k=20" / "s1" / "report" / "results.csv")
    pd.testing.assert_frame_equal(plain, swept)


def test_ray_backend_without_ray_is_a_config_error(spec_path, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    config = SweepConfig(str(spec_path), str(tmp_path / "out"), ["knn.k=3"], [0], backend="ray")
    with pytest.raises(ConfigError, match="recsim-offline\\[ray\\]"):
        run_sweep(config)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="ray is not installed (optional extra: pip install 'recsim-offline[ray]')")
def test_ray_backend_on_a_local_instance(spec_path, tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out = tmp_path / "ray"
    summary = run_sweep(SweepConfig(str(spec_path), str(out), ["knn.k=3,20"], [0], backend="ray"))
    local = run_sweep(SweepConfig(str(spec_path), str(tmp_path / "local"), ["knn.k=3,20"], [0], workers=1))
    assert len(summary.results) == 2 * 2
    pd.testing.assert_frame_equal(summary.results.sort_values(["point", "method"], ignore_index=True),
                                  local.results.sort_values(["point", "method"], ignore_index=True))
