"""Tests of the user model's presets, negatives, loss, early stopping, uncertainty kinds and diagnostics (issue 14)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from recsim.cli import main as cli_main
from recsim.errors import ConfigError
from recsim.reward.table import RewardTable
from recsim.user_model.diagnostics import (
    calibration,
    known_pairs,
    top_k_exposure,
    ucb_differs,
)
from recsim.user_model.metrics import grouped_ndcg
from recsim.user_model.model import FeatureSpec
from recsim.user_model.predict import Ensemble
from recsim.user_model.sampling import LoggedLabels, sample_negatives
from recsim.user_model.train import (
    TrainConfig,
    auto_batch_size,
    bootstrap_rows,
    build_examples,
    example_loss,
    exposure_probs,
    preset_config,
    train_ensemble,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def trained(tiny_world, tmp_path_factory):
    return train_ensemble(tiny_world, TrainConfig(members=3, epochs=3), tmp_path_factory.mktemp("um"), progress=False)


class FixedOutputs(torch.nn.Module):
    """A stand-in member whose (mean, logvar) are given: the loss is then checked by hand."""

    def __init__(self, mean: list[float], logvar: list[float]) -> None:
        super().__init__()
        self.mean = torch.nn.Parameter(torch.tensor(mean))
        self.logvar = torch.tensor(logvar)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean, self.logvar


# --- presets ----------------------------------------------------------------------------------------

def test_published_preset_is_reference_1_1():
    config = preset_config("published")
    assert (config.negatives, config.nll_beta, config.uncertainty) == ("uniform", 0.0, "max_variance")
    assert (config.epochs, config.batch_size, config.lr, config.members) == (5, 4096, 1e-3, 5)
    assert (config.model.embedding_dim, config.model.dnn_hidden_units, config.model.l2_reg_dnn) == (8, (128, 128), 0.1)
    assert (config.model.min_logvar, config.model.max_logvar) == (-10.0, 0.5)
    assert config.resolved("kuairec").negative_rounds == 3 and config.resolved("coat").negative_rounds == 5


def test_preset_overrides_merge_model_fields():
    config = preset_config("published", epochs=2, model={"task": "binary"})
    assert config.epochs == 2 and config.model.task == "binary" and config.model.embedding_dim == 8
    assert preset_config("default") == TrainConfig()
    with pytest.raises(ConfigError, match="preset"):
        preset_config("ours")


@pytest.mark.parametrize("field,value", [("negatives", "random"), ("early_stopping", "auc"), ("batch_size", 0)])
def test_new_options_reject(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})


def test_published_loss_by_hand():
    """sum (yhat+ - y)^2 exp(-s+) + (yhat-)^2 exp(-s-) + s+ + s- (the published loss, docs/methods.md),
    target 0 for negatives."""
    model = FixedOutputs([2.0, 0.5], [0.0, -1.0])
    target = torch.tensor([3.0, 0.0])  # a logged row, then a negative
    loss = example_loss(model, torch.zeros(2, 1), target, torch.ones(2), "regression").sum()
    assert float(loss.detach()) == pytest.approx((2 - 3) ** 2 * 1 + 0.5 ** 2 * np.e + 0.0 - 1.0, rel=1e-6)


def test_beta_nll_mean_gradient_is_squared_error():
    model = FixedOutputs([2.0, 0.5], [1.0, -1.0])
    target = torch.tensor([3.0, 1.0])
    example_loss(model, torch.zeros(2, 1), target, torch.ones(2), "regression", beta=1.0).sum().backward()
    np.testing.assert_allclose(model.mean.grad.numpy(), [2 * (2 - 3), 2 * (0.5 - 1)], rtol=1e-6)
    plain = FixedOutputs([2.0, 0.5], [1.0, -1.0])
    example_loss(plain, torch.zeros(2, 1), target, torch.ones(2), "regression").sum().backward()
    np.testing.assert_allclose(plain.mean.grad.numpy(), [2 * (2 - 3) / np.e, 2 * (0.5 - 1) * np.e], rtol=1e-6)


def test_published_examples_have_target_zero_negatives(tiny_world):
    spec = FeatureSpec.from_dataset(tiny_world)
    users, items = tiny_world.train["user"].to_numpy(), tiny_world.train["item"].to_numpy()
    labels = tiny_world.train["label"].to_numpy(np.float32)
    logged = LoggedLabels(users, items, labels, tiny_world.n_items)
    examples = build_examples(spec, users, items, labels, np.ones(len(users), np.float32), logged, 5,
                              np.random.default_rng(0), 10, "cpu")
    assert len(examples.users) == len(users) and len(examples) > 4 * len(users)
    assert (examples.target[len(users):] == 0).all()
    none = build_examples(spec, users, items, labels, np.ones(len(users), np.float32), logged, 0,
                          np.random.default_rng(0), 10, "cpu")
    assert len(none) == len(users)
    assert TrainConfig(negatives="none", negative_rounds=5).resolved("kuairec").negative_rounds == 0


# --- negatives, bootstrap, batch size ---------------------------------------------------------------

def test_exposure_negatives_follow_item_probs():
    users = np.zeros(4000, np.int64)
    labels = np.ones(4000, np.float32)
    logged = LoggedLabels(np.array([0]), np.array([0]), np.array([5.0], np.float32), 4)  # (0, 0) is never a negative
    probs = np.array([0.5, 0.3, 0.2, 0.0])
    _, items, _ = sample_negatives(users, labels, logged, 1, np.random.default_rng(0), item_probs=probs)
    share = np.bincount(items, minlength=4) / len(items)
    assert share[0] == 0 and share[3] == 0
    assert share[1] == pytest.approx(0.6, abs=0.03) and share[2] == pytest.approx(0.4, abs=0.03)
    np.testing.assert_allclose(exposure_probs(np.array([0, 0, 1, 3]), 4), [0.5, 0.25, 0.0, 0.25])


def test_bootstrap_rows_resample_with_replacement():
    rows = np.arange(10, 1010)
    a = bootstrap_rows(rows, np.random.default_rng(0))
    assert len(a) == len(rows) and np.isin(a, rows).all() and len(np.unique(a)) < len(rows)
    assert len(np.unique(a)) / len(rows) == pytest.approx(1 - np.exp(-1), abs=0.04)  # ~63.2 % distinct
    np.testing.assert_array_equal(a, bootstrap_rows(rows, np.random.default_rng(0)))


def test_bootstrap_members_see_different_rows(tiny_world, tmp_path):
    config = TrainConfig(members=2, epochs=1, bootstrap=True)
    ensemble = train_ensemble(tiny_world, config, tmp_path, progress=False)
    assert not torch.equal(ensemble.members[0].embedding_dict["item"].weight,
                           ensemble.members[1].embedding_dict["item"].weight)


@pytest.mark.parametrize("n_rows,expected", [(320_000, 4096), (100_000, 2048), (6960, 256), (100, 32)])
def test_auto_batch_size(n_rows, expected):
    assert auto_batch_size(n_rows) == expected


# --- early stopping on NDCG -------------------------------------------------------------------------

def _naive_grouped_ndcg(users, scores, labels, k):
    values = []
    for u in np.unique(users):
        idx = np.flatnonzero(users == u)
        order = idx[np.argsort(-scores[idx], kind="stable")][:k]
        dcg = sum((2 ** labels[j] - 1) / np.log2(r + 2) for r, j in enumerate(order))
        ideal = sorted(labels[idx], reverse=True)[:k]
        idcg = sum((2 ** g - 1) / np.log2(r + 2) for r, g in enumerate(ideal))
        if idcg > 0:
            values.append(dcg / idcg)
    return np.mean(values)


def test_grouped_ndcg_matches_naive():
    rng = np.random.default_rng(0)
    users, scores = rng.integers(0, 7, 90), rng.random(90)
    labels = rng.integers(0, 4, 90).astype(float)
    assert grouped_ndcg(users, scores, labels, 3) == pytest.approx(_naive_grouped_ndcg(users, scores, labels, 3))
    assert grouped_ndcg(users, labels, labels, 3) == pytest.approx(1.0)


@pytest.mark.parametrize("negatives", ["none", "uniform"])
def test_ndcg_stopping_records_validation_ndcg(tiny_world, tmp_path, negatives):
    """Validation NDCG ranks the held-out logged rows only, also when negatives follow them."""
    config = TrainConfig(members=1, epochs=2, early_stopping="ndcg", negatives=negatives, batch_size=256)
    train_ensemble(tiny_world, config, tmp_path, progress=False)
    history = json.loads((tmp_path / "training.json").read_text())["members"][0]["history"]
    assert len(history) == 2 and all(0 < h["val_ndcg"] <= 1 for h in history)


# --- uncertainty kinds ------------------------------------------------------------------------------

def _member_outputs(ensemble: Ensemble, users, items):
    means, variances = [], []
    for member in ensemble.members:
        single = Ensemble(ensemble.spec, ensemble.model_config, [member])
        table = single.reward_table(users, items, "max_variance")
        means.append(table.mean)
        variances.append(table.uncertainty)
    return np.stack(means), np.stack(variances)


def test_uncertainty_kinds_match_their_formulas(tiny_world, trained):
    users, items = np.array([3, 0, 41]), np.arange(0, tiny_world.n_items, 7)
    means, variances = _member_outputs(trained, users, items)
    tables = trained.reward_tables(users, items)
    n_u = np.bincount(tiny_world.train["user"], minlength=tiny_world.n_users)[users]
    n_i = np.bincount(tiny_world.train["item"], minlength=tiny_world.n_items)[items]
    expected = {
        "max_variance": variances.max(0),
        "disagreement": means.std(0),
        "relative_disagreement": means.std(0) / np.maximum(np.abs(means.mean(0)), 1e-3),
        "count": variances.mean(0) * (1 / (1 + n_u)[:, None] + 1 / (1 + n_i)[None, :]),
    }
    for kind, value in expected.items():
        np.testing.assert_allclose(tables[kind].uncertainty, value, rtol=2e-4, atol=1e-6, err_msg=kind)
        np.testing.assert_allclose(tables[kind].mean, means.mean(0), rtol=1e-5, atol=1e-6)
        assert tables[kind].kind == f"deepfm-ensemble/{kind}"


def test_count_uncertainty_is_high_where_the_log_is_thin(tiny_world, trained):
    table = trained.reward_table(uncertainty="count")
    counts = np.bincount(tiny_world.train["item"], minlength=tiny_world.n_items)
    assert spearmanr(table.uncertainty.mean(axis=0), counts).statistic < -0.5


def test_count_needs_saved_counts(trained):
    bare = Ensemble(trained.spec, trained.model_config, trained.members)
    with pytest.raises(ConfigError, match="log counts"):
        bare.reward_table(uncertainty="count")


# --- diagnostics ------------------------------------------------------------------------------------

def test_top_k_exposure_by_hand():
    scores = np.array([[3.0, 2.0, 1.0, 0.0], [3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    got = top_k_exposure(scores, 2)
    assert got["distinct_items@2"] == 4
    # exposure counts (2, 2, 1, 1) sorted (1, 1, 2, 2): G = (-3 - 1 + 2 + 6) / (4 * 6)
    assert got["gini_top@2"] == pytest.approx(4 / 24)


def _table(mean, unc):
    mean = np.asarray(mean, np.float32)
    return RewardTable(mean, np.asarray(unc, np.float32), np.arange(mean.shape[0]), np.arange(mean.shape[1]))


def test_ucb_differs_by_hand():
    table = _table([[1.0, 0.9, 0.0], [1.0, 0.0, -0.1]], [[0.0, 0.04, 0.0], [0.0, 0.0, 0.04]])  # bonus sqrt(0.04) = 0.2
    assert ucb_differs(table, 1) == 0.5  # user 0: item 1 overtakes item 0
    assert ucb_differs(table, 3) == 1.0  # user 1: item 2 overtakes item 1 in the list


def test_calibration_direction():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 100, 50)
    truth = rng.random((30, 50))
    noise = rng.normal(size=(30, 50)) / np.sqrt(1 + counts)[None, :]  # the error shrinks with the log count
    table = _table(truth + noise, np.broadcast_to(1 / (1 + counts), (30, 50)))
    rows, cols = np.nonzero(np.ones((30, 50), bool))
    got = calibration(table, rows, cols, truth[rows, cols], counts)
    assert got["spearman_abs_error"] > 0.3 and got["spearman_item_log_count"] == pytest.approx(-1.0)
    flipped = calibration(_table(truth + noise, np.broadcast_to(counts, (30, 50)) + 0.0), rows, cols,
                          truth[rows, cols], counts)
    assert flipped["spearman_abs_error"] < -0.3


def test_known_pairs_from_test_log(tiny_world):
    test = pd.DataFrame({"user": [1, 1, 2], "item": [4, 4, 0], "label": [1.0, 3.0, 2.0]})
    fields = {"truth": None, "test": test, "n_users": tiny_world.n_users, "n_items": tiny_world.n_items}
    log_only = type("D", (), fields)()
    rows, cols, value = known_pairs(log_only, np.array([2, 1]), np.array([0, 4]))
    assert rows.tolist() == [1, 0] and cols.tolist() == [1, 0] and value.tolist() == [2.0, 2.0]


# --- command line -----------------------------------------------------------------------------------

def test_cli_presets_and_diagnostics(tiny_world, tmp_path, capsys):
    data = tiny_world.save(tmp_path / "data")
    for preset, kind in (("published", "max_variance"), ("default", "count")):
        out = tmp_path / preset
        assert cli_main(["user-model", "train", "--data", str(data), "--out", str(out), "--preset", preset,
                         "--members", "2", "--epochs", "1", "--quiet"]) == 0
        assert RewardTable.load(out).kind == f"deepfm-ensemble/{kind}"
        saved = json.loads((out / "config.json").read_text())["train"]
        assert saved["negatives"] == ("uniform" if preset == "published" else "none")
    capsys.readouterr()
    assert cli_main(["user-model", "eval", "--model", str(tmp_path / "default"), "--data", str(data)]) == 0
    diagnostics = json.loads(capsys.readouterr().out)["diagnostics"]
    assert {"distinct_items@10", "gini_top@10", "rmse", "rmse_train_mean"} <= set(diagnostics)
    assert set(diagnostics["uncertainty"]["count"]) == {"spearman_abs_error", "spearman_item_log_count",
                                                        "ucb_top1_differs", "ucb_top10_differs"}


# --- pipeline specs -----------------------------------------------------------------------------------

def _planned_model_config(sets: list[str]) -> dict:
    from pathlib import Path

    from recsim.pipeline.spec import load_spec
    from recsim.pipeline.stages import plan

    spec = load_spec(Path(__file__).resolve().parents[1] / "pipelines" / "tiny.yaml", sets)
    return next(stage.config for stage in plan(spec) if stage.name == "user_model-s0")


def test_pipeline_spec_selects_the_preset():
    default = _planned_model_config([])
    published = _planned_model_config(["user_model.preset=published"])
    assert (default["negatives"], default["uncertainty"], default["lr"]) == ("none", "count", 1e-2)
    assert (published["negatives"], published["uncertainty"], published["lr"]) == ("uniform", "max_variance", 1e-3)
    assert published["model"]["embedding_dim"] == 8 and published["nll_beta"] == 0.0
    for config in (default, published):  # the spec's own keys apply over either preset
        assert (config["members"], config["epochs"], config["batch_size"]) == (2, 1, 1024)
    assert (published["negative_rounds"], default["negative_rounds"]) == (1, 0)  # no negatives by default
    assert _planned_model_config(["user_model.preset=default"]) == default
    assert _planned_model_config(["user_model.preset=published", "user_model.lr=0.02"])["lr"] == 0.02
    with pytest.raises(ConfigError, match="preset"):
        _planned_model_config(["user_model.preset=newest"])


# --- report --------------------------------------------------------------------------------------------

def test_report_shows_the_user_model_diagnostics(tiny_world, trained, tmp_path):
    from recsim.evaluation.report import build_report
    from recsim.io import read_json, write_json
    from recsim.user_model.train import write_outputs

    row = {"mode": "FB", "R_tra": 1.0, "length": 2.0, "R_each": 0.5, "MCD": 0.5, "gini": 0.4, "coverage": 0.1}
    write_json(tmp_path / "eval-a-s0" / "metrics.json", {"method": "a", "family": "x", "seed": 0, "rows": [row]})
    plain = build_report(tmp_path, tmp_path / "plain", ["eval-a-s0"], figures=False)
    assert "User models" not in plain.read_text() + (tmp_path / "plain" / "results.md").read_text()
    model_dir = tmp_path / "user_model-s0"
    write_outputs(trained, tiny_world, model_dir, "count")
    write_json(model_dir / "config.json", {"train": {"uncertainty": "count"}})
    page = build_report(tmp_path, tmp_path / "report", ["eval-a-s0"], figures=False)
    found = read_json(model_dir / "metrics.json")["diagnostics"]
    count = found["uncertainty"]["count"]
    expected = (f"| user_model-s0 | count | {found['distinct_items@10']} | {found['gini_top@10']:.3f} | "
                f"{found['rmse']:.3f} ({found['rmse_train_mean']:.3f}) | {count['spearman_abs_error']:.3f} | "
                f"{count['spearman_item_log_count']:.3f} | {count['ucb_top1_differs']:.3f} | "
                f"{count['ucb_top10_differs']:.3f} |")
    markdown = (tmp_path / "report" / "results.md").read_text()
    assert "## User models" in markdown and expected in markdown
    html = page.read_text()
    assert "<h2>User models</h2>" in html and html.rstrip().endswith("</body></html>")
    assert f"<td>{count['spearman_abs_error']:.3f}</td>" in html
