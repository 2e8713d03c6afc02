"""Evaluation from logs alone: a MovieLens-format log with no test set gets a held-out split,
NDCG@10 on it and off-policy estimates for every method (issue 16)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from recsim.cli import main
from recsim.data.loaders.movielens import GENRES
from recsim.pipeline.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "pipelines" / "movielens-100k.yaml"


def write_movielens(directory: Path, n_users: int = 40, n_items: int = 60, seed: int = 0) -> Path:
    """u.data (tab-separated user, item, rating, timestamp) and u.item (`|`-separated, 24 fields)
    in MovieLens-100k's exact format, with ratings from a low-rank taste model."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    taste, quality = rng.normal(size=(n_users, 3)), rng.normal(size=(n_items, 3))
    lines = []
    for user in range(n_users):
        items = rng.choice(n_items, rng.integers(12, 25), replace=False)
        times = np.sort(rng.integers(874_724_710, 893_286_638, len(items)))
        for item, time in zip(items, times):
            rating = int(np.clip(np.round(3 + taste[user] @ quality[item] + rng.normal(0, 0.5)), 1, 5))
            lines.append(f"{user + 1}\t{item + 1}\t{rating}\t{time}")
    (directory / "u.data").write_text("\n".join(lines) + "\n")
    genres = rng.random((n_items, len(GENRES))) < 0.2
    (directory / "u.item").write_text("".join(
        f"{i + 1}|Movie {i + 1} (1995)|01-Jan-1995||http://example.org/{i + 1}|"
        + "|".join(str(int(g)) for g in genres[i]) + "\n" for i in range(n_items)), encoding="latin-1")
    return directory


def test_the_shipped_movielens_spec_loads_with_a_held_out_split():
    spec = load_spec(SPEC)
    assert spec.data.holdout is not None and 0 < spec.data.holdout.fraction < 1
    assert spec.evaluation.ope and len(spec.methods) >= 12


@pytest.mark.usefixtures("torch_one_thread")
def test_log_only_dataset_reports_ndcg_and_off_policy_estimates_for_every_method(tmp_path):
    raw = write_movielens(tmp_path / "raw")
    data = yaml.safe_load(SPEC.read_text())
    data.update(seeds=[0], progress=False)
    data["user_model"].update(members=1, epochs=1)
    data["methods"] = [{"name": "greedy"}, {"name": "egreedy", "params": {"epsilon": 0.3}}, {"name": "popular"},
                       {"name": "random"}]
    data["evaluation"].update(n_bootstrap=20)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(out), "--raw", str(raw), "--quiet"]) == 0
    results = pd.read_csv(out / "report" / "results.csv")
    assert len(results) == 4 and set(results["mode"]) == {"offline"}
    assert results["ndcg@10_heldout_log"].between(0, 1).all()
    for estimator in ("ips", "snips", "ncis", "dr"):
        column = f"ope_step_{estimator}"
        defined = results[column].notna()
        assert (defined | results[f"{column}_unreliable"]).all()
        assert results.loc[~defined, f"{column}_reason"].fillna("").astype(str).str.len().gt(0).all()
    assert results["ope_rtra_model"].notna().all()  # the episode value, from the simulator
    for estimator in ("pdis", "ncis", "dr", "wdr"):  # too few rows per user for a 30-step window
        assert (results[f"ope_rtra_{estimator}"].notna() | results[f"ope_rtra_{estimator}_unreliable"]).all()
    assert results["ope_pscore_source"].str.startswith("user-model x popularity softmax").all()
    assert (results["ope_n_users"] == 40).all() and (results["ope_n_contexts"] > 0).all()
    table = (out / "report" / "results.md").read_text().split("## User models")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "method" not in line]
    assert len(rows) == 4 and not any("n/a" in line for line in rows)
    assert not re.search(r"\bnan\b", table.lower())
    assert "held-out part of the training log" in table
    from recsim.data.schema import Dataset

    dataset = Dataset.load(out / "data" / "dataset")
    assert dataset.test is not None and dataset.meta["test_log"]["kind"] == "heldout"
    assert len(dataset.train) + len(dataset.test) == len((raw / "u.data").read_text().splitlines())
