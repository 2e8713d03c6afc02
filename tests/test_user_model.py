"""Tests of recsim.user_model: sampling, the member model, the ensemble, resume, metrics, CLI."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from recsim.cli import main as cli_main
from recsim.data.synthetic import generate_world
from recsim.errors import ConfigError
from recsim.evaluation.ranking import ndcg_at_k
from recsim.reward.table import RewardTable
from recsim.user_model import metrics as metrics_module
from recsim.user_model.metrics import evaluate, mae, rmse
from recsim.user_model.model import DeepFMConfig, FeatureSpec, build_member, soft_clamp
from recsim.user_model.options import UNCERTAINTY_KINDS
from recsim.user_model.predict import load_ensemble
from recsim.user_model.sampling import LoggedLabels, sample_negatives
from recsim.user_model.train import TrainConfig, ips_weights, train_ensemble, write_outputs

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(members=2, epochs=2, batch_size=512, val_fraction=0.1)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def world():
    return generate_world("tiny", 0)


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("um")
    ensemble = train_ensemble(world, TrainConfig(**SMALL), out, progress=False)
    return ensemble, out


# --- import hygiene -------------------------------------------------------------------------------

_HARNESS = textwrap.dedent("""
    import socket, sys, threading, time
    def refuse(*args, **kwargs):
        raise AssertionError("network call")
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.getaddrinfo = refuse
    import importlib
    importlib.import_module(sys.argv[1])
    time.sleep(0.3)
    sys.stderr.write(f"threads={threading.active_count()} requests={'requests' in sys.modules}")
""")


def _import_in_subprocess(module: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _HARNESS, module], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def test_import_makes_no_network_call_and_prints_nothing():
    done = _import_in_subprocess("recsim.user_model.train")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == "threads=1 requests=False"


def test_harness_detects_raw_deepctr_import():
    """Control: importing deepctr-torch directly does start the check and print (so the test above can fail)."""
    done = _import_in_subprocess("deepctr_torch")
    assert "latest version" in done.stdout


# --- negative sampling ----------------------------------------------------------------------------

def test_negatives_respect_lower_label_rule():
    rng = np.random.default_rng(0)
    n_users, n_items = 6, 12
    users = rng.integers(0, n_users, 80)
    items = rng.integers(0, n_items, 80)
    labels = rng.choice([0.0, 0.5, 1.0, 2.0, 3.0], 80).astype(np.float32)
    logged = LoggedLabels(users, items, labels, n_items)
    nu, ni, src = sample_negatives(users, labels, logged, 3, np.random.default_rng(1))
    best = {}
    for u, i, y in zip(users, items, labels):  # naive reference: max label per pair
        best[(u, i)] = max(best.get((u, i), -np.inf), y)
    assert len(nu) <= 3 * (labels > 0).sum()
    assert (labels[src] > 0).all() and (nu == users[src]).all()
    for u, i, s in zip(nu, ni, src):
        assert (u, i) not in best or best[(u, i)] < labels[s]
    again = sample_negatives(users, labels, logged, 3, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip((nu, ni, src), again))


def test_logged_labels_lookup_matches_naive():
    users = np.array([0, 0, 1, 1, 0])
    items = np.array([2, 2, 0, 3, 1])
    labels = np.array([1.0, 3.0, 0.5, 2.0, 0.0], np.float32)
    observed, label = LoggedLabels(users, items, labels, 4).lookup(np.array([0, 0, 1, 2, 0]), np.array([2, 1, 3, 0, 3]))
    assert observed.tolist() == [True, True, True, False, False]
    assert label[:3].tolist() == [3.0, 0.0, 2.0] and np.isnan(label[3:]).all()


# --- member model ---------------------------------------------------------------------------------

def test_soft_clamp_bounds_and_monotone():
    raw = torch.linspace(-100, 100, 2001)
    s = soft_clamp(raw, -10.0, 0.5)
    # softplus(x) > x, so the second step may overshoot the upper bound by log(1 + e^-10.5) ~ 3e-5
    assert (s >= -10).all() and (s <= 0.5 + 1e-4).all()
    assert (s[1:] >= s[:-1]).all()
    mid = torch.tensor([-5.0, -4.0])
    assert torch.allclose(soft_clamp(mid, -10.0, 0.5), mid, atol=0.02)


def test_feature_spec_uses_dataset_features(world):
    spec = FeatureSpec.from_dataset(world)
    assert spec.user_columns[0] == "user" and spec.item_columns[0] == "item"
    assert spec.user_columns[1:] == [f"user:{c}" for c in world.user_features.columns]
    assert spec.user_table.shape == (world.n_users, 1 + world.user_features.shape[1])
    np.testing.assert_array_equal(spec.item_table[:, 1:], world.item_features.to_numpy())
    assert {spec.embedding_names[c] for c in spec.item_columns if c.startswith("item:feat")} == {"item:feat"}
    assert spec.vocabulary["item:feat0"] == int(world.item_features.to_numpy().max()) + 1


def test_build_member_leaves_global_rng_alone(world):
    spec = FeatureSpec.from_dataset(world)
    before = torch.get_rng_state()
    a = build_member(spec, DeepFMConfig(), seed=3)
    assert torch.equal(before, torch.get_rng_state())
    b = build_member(spec, DeepFMConfig(), seed=3)
    c = build_member(spec, DeepFMConfig(), seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.embedding_dict["item"].weight, c.embedding_dict["item"].weight)


def test_regularization_loss_equals_deepctrs(world):
    from deepctr_torch.models.basemodel import BaseModel

    model = build_member(FeatureSpec.from_dataset(world), DeepFMConfig(l2_reg_embedding=1e-3), seed=2)
    model.add_regularization_weight(model.logvar_head.weight, l1=0.01)  # an l1 group too
    params = list(model.parameters())
    ours, theirs = model.get_regularization_loss(), BaseModel.get_regularization_loss(model)
    assert ours.shape == theirs.shape == (1,) and torch.allclose(ours, theirs, rtol=1e-5)
    for a, b in zip(torch.autograd.grad(ours.sum(), params, allow_unused=True),
                    torch.autograd.grad(theirs.sum(), params, allow_unused=True)):
        assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, rtol=1e-5, atol=1e-8))


@pytest.mark.parametrize("field,value", [("embedding_dim", 0), ("task", "poisson"), ("min_logvar", 1.0),
                                         ("l2_reg_dnn", -1.0), ("dnn_hidden_units", ())])
def test_model_config_rejects(field, value):
    with pytest.raises(ConfigError, match=field):
        DeepFMConfig(**{field: value})


@pytest.mark.parametrize("field,value", [("members", 0), ("epochs", 0), ("val_fraction", 1.0),
                                         ("uncertainty", "entropy"), ("device", "tpu"), ("lr", 0.0)])
def test_train_config_rejects(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})


def test_ips_weights_inverse_popularity():
    items = np.array([0, 0, 0, 1, 2, 2])
    w = ips_weights(items, items, 4)
    assert w.mean() == pytest.approx(1.0)
    assert w[3] == pytest.approx(3 * w[0]) and w[4] == pytest.approx(1.5 * w[0])


# --- the trained ensemble -------------------------------------------------------------------------

def test_table_shapes_dtypes_and_uncertainty(world, trained):
    ensemble, _ = trained
    for kind in UNCERTAINTY_KINDS:
        table = ensemble.reward_table(world.truth_users, world.truth_items, kind)
        assert table.mean.shape == table.uncertainty.shape == (world.n_users, world.n_items)
        assert table.mean.dtype == table.uncertainty.dtype == np.float32
        assert (table.uncertainty >= 0).all() and np.isfinite(table.mean).all()
    assert (table.uncertainty > 0).any()


def test_chunked_factorised_table_matches_forward(world, trained):
    ensemble, _ = trained
    users, items = np.array([5, 0, 17]), np.array([3, 199, 42, 0])
    for kind in UNCERTAINTY_KINDS:
        table = ensemble.reward_table(users, items, kind, memory_budget_bytes=1)  # one user per chunk
        mean, unc = ensemble.predict_pairs(np.repeat(users, len(items)), np.tile(items, len(users)), kind)
        np.testing.assert_allclose(table.mean.ravel(), mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(table.uncertainty.ravel(), unc, rtol=1e-4, atol=1e-6)


def test_members_differ(trained):
    ensemble, _ = trained
    a, b = ensemble.members
    assert not torch.equal(a.embedding_dict["item"].weight, b.embedding_dict["item"].weight)
    table = ensemble.reward_table(uncertainty="disagreement")
    assert table.uncertainty.mean() > 1e-4


def test_same_seed_same_table(world, trained, tmp_path):
    ensemble, _ = trained
    again = train_ensemble(world, TrainConfig(**SMALL), tmp_path, progress=False)
    np.testing.assert_array_equal(again.reward_table().mean, ensemble.reward_table().mean)
    np.testing.assert_array_equal(again.reward_table().uncertainty, ensemble.reward_table().uncertainty)


def test_resume_equals_uninterrupted(world, trained, tmp_path):
    ensemble, _ = trained

    def interrupt(member, epoch, record):
        if (member, epoch) == (1, 1):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_ensemble(world, TrainConfig(**SMALL), tmp_path, progress=False, on_epoch_end=interrupt)
    assert (tmp_path / "checkpoints" / "member1.pt").is_file() and not (tmp_path / "member1.pt").exists()
    resumed = train_ensemble(world, TrainConfig(**SMALL), tmp_path, resume=True, progress=False)
    np.testing.assert_array_equal(resumed.reward_table().mean, ensemble.reward_table().mean)
    with pytest.raises(ConfigError, match="cannot resume"):
        train_ensemble(world, TrainConfig(**dict(SMALL, lr=0.05)), tmp_path, resume=True, progress=False)


def test_beats_random_ranking(world, trained):
    ensemble, _ = trained
    table = ensemble.reward_table(world.truth_users, world.truth_items)
    model_ndcg = ndcg_at_k(table.mean, world.truth, 10)
    rng = np.random.default_rng(0)
    random_ndcg = np.mean([ndcg_at_k(rng.random(world.truth.shape), world.truth, 10) for _ in range(5)])
    assert model_ndcg > random_ndcg + 0.1


def test_artifacts_reload_from_directory(world, trained):
    ensemble, out = trained
    metrics = write_outputs(ensemble, world, out)
    for name in ("config.json", "features.npz", "member0.pt", "member1.pt", "reward_table.npz",
                 "embeddings.npz", "metrics.json"):
        assert (out / name).is_file(), name
    loaded = load_ensemble(out)
    table = RewardTable.load(out)
    np.testing.assert_array_equal(loaded.reward_table(table.users, table.items).mean, table.mean)
    with np.load(out / "embeddings.npz") as z:
        d = ensemble.model_config.embedding_dim
        assert z["user"].shape == (world.n_users, d) and z["item"].shape == (world.n_items, d)
    assert set(metrics) == {"test", "truth", "diagnostics"} and metrics["test"]["rmse"] > 0


def test_binary_task_with_ips_weights(world, tmp_path):
    train = world.train.assign(label=(world.train["label"] > 1.5).astype(np.float32))
    test = world.test.assign(label=(world.test["label"] > 1.5).astype(np.float32))
    clicks = dataclasses.replace(world, train=train, test=test, truth=None, truth_users=None, truth_items=None)
    config = TrainConfig(model=DeepFMConfig(task="binary"), members=2, epochs=1, batch_size=512, ips=True)
    ensemble = train_ensemble(clicks, config, tmp_path, progress=False)
    table = ensemble.reward_table()
    assert table.shape == (world.n_users, world.n_items)
    assert ((table.mean >= 0) & (table.mean <= 1)).all() and (table.uncertainty <= 0.25).all()
    assert 0 <= evaluate(ensemble, clicks)["test"]["auc"] <= 1


def _naive_ndcg(scores: list[float], relevance: list[float], k: int) -> float:
    order = sorted(range(len(scores)), key=lambda j: (-scores[j], j))[:k]
    dcg = sum((2 ** relevance[j] - 1) / np.log2(r + 2) for r, j in enumerate(order))
    ideal = sorted(relevance, reverse=True)[:k]
    idcg = sum((2 ** g - 1) / np.log2(r + 2) for r, g in enumerate(ideal))
    return dcg / idcg


def test_ranking_metrics_match_naive_reference(world, trained, monkeypatch):
    ensemble, _ = trained
    monkeypatch.setattr(metrics_module, "CHUNK_CELLS", 7 * world.n_items)  # several user chunks
    test = world.test.groupby(["user", "item"], as_index=False)["label"].mean()
    mean, _ = ensemble.predict_pairs(test["user"].to_numpy(), test["item"].to_numpy())
    per_user = [_naive_ndcg(list(mean[g.index]), list(g["label"]), 5) for _, g in test.groupby("user")]
    got = metrics_module.test_log_ranking(ensemble, world.test, (5,))
    assert got["ndcg@5"] == pytest.approx(np.mean(per_user), rel=1e-6)
    table = ensemble.reward_table(world.truth_users, world.truth_items).mean
    truth = metrics_module.truth_metrics(ensemble, world, (10,))
    naive = [_naive_ndcg(list(table[u]), list(world.truth[u]), 10) for u in range(world.n_users)]
    assert truth["ndcg@10"] == pytest.approx(np.mean(naive), rel=1e-6)
    assert truth["rmse"] == pytest.approx(rmse(table, world.truth), rel=1e-5)


def test_real_coat_beats_random_ranking(shared_data, tmp_path):
    """Real data: on Coat's random-exposure test log the ensemble ranks better than chance."""
    from recsim.data.store import load_dataset

    if not (shared_data / "coat").is_dir():
        pytest.skip(f"{shared_data / 'coat'} not found")
    coat = load_dataset("coat", shared_data / "coat", cache_dir=tmp_path / "cache")
    ensemble = train_ensemble(coat, TrainConfig(members=2, epochs=1, batch_size=1024), tmp_path / "m", progress=False)
    got = metrics_module.test_log_ranking(ensemble, coat.test)["ndcg@10"]
    relevance = np.zeros((coat.n_users, coat.n_items))
    mask = np.zeros(relevance.shape, dtype=bool)
    relevance[coat.test["user"], coat.test["item"]] = coat.test["label"]
    mask[coat.test["user"], coat.test["item"]] = True
    rng = np.random.default_rng(0)
    chance = np.mean([ndcg_at_k(rng.random(relevance.shape), relevance, 10, mask) for _ in range(10)])
    assert got > chance + 0.04


def test_pointwise_metrics_match_naive():
    pred, label = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 2.0])
    assert rmse(pred, label) == pytest.approx(np.sqrt((0.25 + 4) / 3))
    assert mae(pred, label) == pytest.approx(2.5 / 3)


# --- command line ---------------------------------------------------------------------------------

def test_cli_train_and_eval(world, tmp_path, capsys):
    data = world.save(tmp_path / "data")
    out = tmp_path / "model"
    code = cli_main(["user-model", "train", "--data", str(data), "--out", str(out), "--members", "2",
                     "--epochs", "1", "--batch-size", "1024", "--quiet", "--uncertainty", "disagreement"])
    assert code == 0 and (out / "reward_table.npz").is_file()
    assert RewardTable.load(out).kind == "deepfm-ensemble/disagreement"
    capsys.readouterr()
    assert cli_main(["user-model", "eval", "--model", str(out), "--data", str(data)]) == 0
    assert '"ndcg@10"' in capsys.readouterr().out
    assert cli_main(["user-model", "eval", "--model", str(tmp_path / "nothing"), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recsim: error:") and err.count("\n") == 1
