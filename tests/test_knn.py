"""kNN reward estimator (ROLeR): faiss search vs brute force, aggregation by hand, CLI end to end."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsim.cli import main
from recsim.data.schema import Dataset
from recsim.data.synthetic import generate_world
from recsim.errors import ConfigError, DataError
from recsim.reward import indicators as ind
from recsim.reward.aggregate import AggregateParams, aggregate_table, neighbour_weights
from recsim.reward.knn import KnnConfig, build_knn_reward_table, default_config, knn_neighbors
from recsim.reward.table import RewardTable


def brute_force(x: np.ndarray, k: int, metric: str, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    """Reference: full similarity matrix in float64, stable sort of every row."""
    x = x.astype(np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.where(norms > 0, x / np.where(norms > 0, norms, 1), 0)
        sims = x @ x.T
    else:
        sims = -np.sqrt(np.clip(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0, None))
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_exact_neighbours_match_brute_force(metric, exclude_self):
    x = np.random.default_rng(1).normal(size=(80, 12)).astype(np.float32)
    k = 7
    idx, sims = knn_neighbors(x, k, metric=metric, exclude_self=exclude_self)
    ref_idx, ref_sims = brute_force(x, k + 1, metric, exclude_self)
    assert idx.shape == sims.shape == (80, k)
    np.testing.assert_allclose(sims, ref_sims[:, :k], atol=1e-4)
    assert (np.diff(sims, axis=1) <= 1e-6).all(), "neighbours must go from most to least similar"
    clear = (ref_sims[:, k - 1] - ref_sims[:, k]) > 1e-4  # no tie at the k-th place
    assert clear.sum() > 60
    for row in np.flatnonzero(clear):
        assert set(idx[row]) == set(ref_idx[row, :k])


def test_self_excluded_even_with_duplicate_rows():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 5)).astype(np.float32)
    x[:8] = x[0]  # eight identical users: self may not be among the k + 1 returned
    idx, sims = knn_neighbors(x, 4, exclude_self=True)
    assert not (idx == np.arange(30)[:, None]).any()
    np.testing.assert_allclose(sims[:8], 1.0, atol=1e-5)
    idx_incl, sims_incl = knn_neighbors(x[8:], 3, exclude_self=False)
    np.testing.assert_array_equal(idx_incl[:, 0], np.arange(22))
    np.testing.assert_allclose(sims_incl[:, 0], 1.0, atol=1e-5)


def test_query_rows_and_zero_rows():
    x = np.random.default_rng(3).normal(size=(40, 6)).astype(np.float32)
    x[5] = 0.0
    idx, sims = knn_neighbors(x, 5, query_rows=np.array([5, 9, 30]))
    assert idx.shape == (3, 5) and np.isfinite(sims).all()
    np.testing.assert_allclose(sims[0], 0.0, atol=1e-6)
    assert 5 not in idx[0] and 9 not in idx[1] and 30 not in idx[2]
    ref_idx, _ = brute_force(x, 5, "cosine", True)
    assert set(idx[1]) == set(ref_idx[9])


def test_sparse_input_equals_dense():
    x = sp.random(50, 30, density=0.2, format="csr", random_state=4, dtype=np.float32)
    a = knn_neighbors(x, 5)
    b = knn_neighbors(x.toarray(), 5)
    np.testing.assert_allclose(a[1], b[1], atol=1e-6)


@pytest.mark.parametrize("index", ["hnsw", "ivf"])
def test_approximate_index_recall(index):
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(20, 32))
    x = (centres[rng.integers(0, 20, 2000)] + 0.7 * rng.normal(size=(2000, 32))).astype(np.float32)
    k = 10
    exact, _ = knn_neighbors(x, k)
    approx, _ = knn_neighbors(x, k, index=index, seed=0)
    recall = np.mean([len(set(a) & set(e)) / k for a, e in zip(approx, exact)])
    assert recall >= 0.95, recall


def test_invalid_search_arguments():
    x = np.ones((5, 3), dtype=np.float32)
    with pytest.raises(ConfigError):
        knn_neighbors(x, 5, exclude_self=True)
    with pytest.raises(ConfigError):
        knn_neighbors(x, 2, metric="dot")
    with pytest.raises(DataError):
        knn_neighbors(np.full((5, 3), np.nan), 2)


def test_weights_sum_to_one_and_hand_values():
    sims = np.array([[0.8, 0.2], [-0.5, -0.9]], dtype=np.float32)
    for scheme in ("mean", "weighted", "softmax"):
        w = neighbour_weights(sims, scheme, temperature=0.5)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)
        assert (w >= 0).all()
    np.testing.assert_allclose(neighbour_weights(sims, "mean"), 0.5)
    np.testing.assert_allclose(neighbour_weights(sims, "weighted")[0], [0.8, 0.2], rtol=1e-6)
    np.testing.assert_allclose(neighbour_weights(sims, "weighted")[1], [0.5, 0.5])  # all clipped: uniform
    e = np.exp([1.6, 0.4])
    np.testing.assert_allclose(neighbour_weights(sims, "softmax", temperature=0.5)[0], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(neighbour_weights(-np.array([[0.0, 1.0]]), "weighted", metric="l2")[0],
                               [2 / 3, 1 / 3], rtol=1e-6)


def _tiny_feedback() -> sp.csr_matrix:
    """Pool of 3 users x 2 items; user 0 did not observe item 1, user 2 not item 0."""
    dense = np.array([[2.0, 0.0], [4.0, 1.0], [0.0, 3.0]], dtype=np.float32)
    observed = np.array([[1, 0], [1, 1], [0, 1]], dtype=bool)
    rows, cols = np.nonzero(observed)
    return sp.csr_matrix((dense[rows, cols], (rows, cols)), shape=(3, 2))


NEIGHBOURS = np.array([[0, 1], [0, 2]])
WEIGHTS = np.array([[0.5, 0.5], [0.75, 0.25]], dtype=np.float32)
DISTANCES = np.array([[0.1, 0.3], [0.2, 0.4]])


def test_plain_aggregation_by_hand():
    mean, var = aggregate_table(NEIGHBOURS, WEIGHTS, DISTANCES, _tiny_feedback(), AggregateParams("variance"))
    np.testing.assert_allclose(mean, [[3.0, 0.5], [1.5, 0.75]], rtol=1e-6)
    # E[f^2] - E[f]^2 with unobserved = 0: user 0: (10 - 9, 0.5 - 0.25); user 1: (3 - 2.25, 2.25 - 0.5625)
    np.testing.assert_allclose(var, [[1.0, 0.25], [0.75, 1.6875]], rtol=1e-6)
    _, dist = aggregate_table(NEIGHBOURS, WEIGHTS, DISTANCES, _tiny_feedback(), AggregateParams("distance"))
    np.testing.assert_allclose(dist, [[0.2, 0.2], [0.3, 0.3]], rtol=1e-6)
    _, count = aggregate_table(NEIGHBOURS, WEIGHTS, DISTANCES, _tiny_feedback(), AggregateParams("count"))
    np.testing.assert_allclose(count, [[1 / 3, 1 / 2], [1 / 2, 1 / 2]], rtol=1e-6)


def test_observed_only_aggregation_by_hand():
    prior = np.array([1.0, 2.0], dtype=np.float32)
    params = AggregateParams("variance", observed_only=True, shrinkage=1.0)
    mean, var = aggregate_table(NEIGHBOURS, WEIGHTS, DISTANCES, _tiny_feedback(), params, prior, prior_variance=0.6)
    # (n_obs * observed mean + alpha * prior) / (n_obs + alpha)
    np.testing.assert_allclose(mean, [[(2 * 3 + 1) / 3, (1 + 2) / 2], [(2 + 1) / 2, (3 + 2) / 2]], rtol=1e-6)
    np.testing.assert_allclose(var, [[(2 * 1 + 0.6) / 3, 0.6 / 2], [0.6 / 2, 0.6 / 2]], rtol=1e-6)
    no_shrink = AggregateParams("count", observed_only=True, shrinkage=0.0)
    mean0, _ = aggregate_table(np.array([[0, 2]]), np.array([[0.5, 0.5]]), DISTANCES[:1], _tiny_feedback(),
                               no_shrink, prior)
    np.testing.assert_allclose(mean0, [[2.0, 3.0]], rtol=1e-6)
    nobody = aggregate_table(np.array([[0, 0]]), np.array([[0.5, 0.5]]), DISTANCES[:1], _tiny_feedback(),
                             no_shrink, prior)[0]
    np.testing.assert_allclose(nobody[0, 1], 2.0)  # nobody observed item 1: the prior


def naive_aggregate(neighbors, weights, dense, observed, observed_only, alpha, prior):
    """Loop reference for the mean, variance and count over (query, item)."""
    n_q, n_items = len(neighbors), dense.shape[1]
    mean, var, count = (np.zeros((n_q, n_items)) for _ in range(3))
    for q in range(n_q):
        for i in range(n_items):
            f, w, o = dense[neighbors[q], i], weights[q].astype(np.float64), observed[neighbors[q], i]
            count[q, i] = 1 / (1 + o.sum())
            if not observed_only:
                mean[q, i] = (w * f).sum()
                var[q, i] = (w * (f - mean[q, i]) ** 2).sum()
            elif o.sum() == 0:
                mean[q, i] = prior[i]
            else:
                m = (w[o] * f[o]).sum() / w[o].sum()
                mean[q, i] = (o.sum() * m + alpha * prior[i]) / (o.sum() + alpha)
    return mean, var, count


@pytest.mark.parametrize("observed_only", [False, True])
def test_aggregation_matches_naive_loops(observed_only):
    rng = np.random.default_rng(6)
    observed = rng.random((25, 9)) < 0.4
    dense = np.where(observed, rng.integers(0, 5, (25, 9)), 0).astype(np.float32)
    rows, cols = np.nonzero(observed)
    feedback = sp.csr_matrix((dense[rows, cols], (rows, cols)), shape=dense.shape)
    neighbors = np.stack([rng.choice(25, 6, replace=False) for _ in range(11)])
    weights = neighbour_weights(rng.random((11, 6)), "weighted")
    prior = rng.random(9).astype(np.float32)
    ref_mean, ref_var, ref_count = naive_aggregate(neighbors, weights, dense, observed, observed_only, 2.0, prior)
    params = AggregateParams("variance", observed_only=observed_only, shrinkage=2.0, chunk_size=4)
    mean, var = aggregate_table(neighbors, weights, np.zeros((11, 6)), feedback, params, prior)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-5, atol=1e-5)
    if not observed_only:
        np.testing.assert_allclose(var, ref_var, rtol=1e-4, atol=1e-4)
    _, count = aggregate_table(neighbors, weights, np.zeros((11, 6)), feedback,
                               AggregateParams("count", observed_only=observed_only, shrinkage=2.0), prior)
    np.testing.assert_allclose(count, ref_count, rtol=1e-6)


def hand_dataset() -> Dataset:
    """6 users x 4 items; user 0 logged item 1 twice (averaged), one watch ratio above the cap."""
    train = pd.DataFrame({
        "user": np.array([0, 0, 0, 1, 1, 2, 2, 3, 4, 4, 5], dtype=np.int32),
        "item": np.array([0, 1, 1, 0, 1, 2, 3, 2, 0, 3, 1], dtype=np.int32),
        "label": np.array([1.0, 2.0, 4.0, 1.5, 9.0, 0.0, 1.0, 0.5, 2.0, 1.0, 3.0], dtype=np.float32),
    })
    return Dataset(
        name="kuairec", train=train, user_ids=np.arange(6), item_ids=np.arange(4),
        user_features=pd.DataFrame({"gender": np.array([1, 2, 1, 0, 2, 1], dtype=np.int32),
                                    "age": np.array([1, 1, 2, 2, 3, 3], dtype=np.int32)}),
        item_features=pd.DataFrame({"c": np.ones(4, dtype=np.int32)}),
        item_categories=np.ones((4, 1), dtype=bool), category_names=["all"],
    ).validate()


def test_feedback_matrix_averages_repeats_and_caps():
    feedback = ind.feedback_matrix(hand_dataset(), cap=5.0)
    dense = feedback.toarray()
    assert dense[0, 1] == pytest.approx(3.0) and dense[1, 1] == pytest.approx(5.0)
    assert feedback.nnz == 10  # the logged zero (user 2, item 2) is an observation
    centred = ind.logged_indicators(feedback, "ignore").matrix.toarray()
    np.testing.assert_allclose(centred[0], [-1.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(centred[5], 0.0)  # a single observation centres to zero


def test_feature_indicators_one_hot():
    matrix = ind.feature_indicators(hand_dataset()).matrix.toarray()
    assert matrix.shape == (6, 5)  # gender codes 1..2, age codes 1..3; code 0 (missing) has no column
    np.testing.assert_array_equal(matrix[3], [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(matrix.sum(axis=1), [2, 2, 2, 1, 2, 2])


def test_table_matches_brute_force_pipeline():
    world = generate_world("tiny", 0)
    config = default_config(world.name, k=10, aggregate="weighted")
    table = build_knn_reward_table(world, config)
    assert table.shape == (len(world.truth_users), len(world.truth_items))
    dense = ind.feedback_matrix(world, cap=5.0).toarray()
    order, sims = brute_force(dense, 10, "cosine", True)
    weights = np.clip(sims, 0, None) / np.clip(sims, 0, None).sum(axis=1, keepdims=True)
    expected = np.einsum("uk,uki->ui", weights, dense[order])[np.ix_(table.users, table.items)]
    np.testing.assert_allclose(table.mean, expected, rtol=1e-4, atol=1e-4)
    assert table.kind == "knn/logged/weighted/variance" and (table.uncertainty >= 0).all()


@pytest.fixture
def user_model_dir(tmp_path):
    """A fake user-model folder: a predicted table over all users x items and user embeddings."""
    world = generate_world("tiny", 0)
    rng = np.random.default_rng(7)
    predicted = np.nan_to_num(world.truth_dense()) + rng.normal(0, 0.1, (world.n_users, world.n_items))
    RewardTable(predicted, np.zeros_like(predicted), np.arange(world.n_users), np.arange(world.n_items)).save(tmp_path)
    np.savez(tmp_path / "embeddings.npz", user=rng.normal(size=(world.n_users, 4)),
             item=rng.normal(size=(world.n_items, 4)))
    return world, tmp_path


def test_user_model_indicators_and_prior(user_model_dir):
    world, directory = user_model_dir
    for indicator in ("predicted", "embedding"):
        table = build_knn_reward_table(world, default_config(world.name, indicator=indicator, k=5),
                                       user_model_dir=directory)
        assert table.shape == world.truth.shape and np.isfinite(table.mean).all()
    prior_table = RewardTable.load(directory)
    strong = build_knn_reward_table(world, default_config(world.name, observed_only=True, shrinkage=1e6, k=5),
                                    user_model_dir=directory)
    np.testing.assert_allclose(strong.mean, prior_table.mean[np.ix_(strong.users, strong.items)], atol=1e-3)
    with pytest.raises(ConfigError):
        build_knn_reward_table(world, default_config(world.name, indicator="predicted"))


@pytest.mark.parametrize("field, value", [
    ("k", 0), ("k", 2.5), ("metric", "dot"), ("index", "lsh"), ("indicator", "clicks"), ("aggregate", "max"),
    ("uncertainty", "std"), ("temperature", 0.0), ("shrinkage", -1.0), ("svd_dim", 0), ("prior", "zero"),
    ("cap", float("nan")), ("unobserved", "mean"),
])
def test_invalid_config(field, value):
    with pytest.raises(ConfigError, match=field):
        KnnConfig(**{field: value})


def test_dataset_defaults():
    assert default_config("KuaiRec").k == 30 and default_config("kuairec").cap == 5.0
    assert default_config("kuairand").k == 150 and default_config("coat").k == 15 and default_config("yahoo").k == 20
    assert default_config("coat", k=3).k == 3
    with pytest.raises(ConfigError):
        default_config("coat", neighbours=3)


def test_cli_end_to_end(tmp_path, capsys):
    world = generate_world("tiny", 0)
    world.save(tmp_path / "data")
    out = tmp_path / "knn"
    code = main(["reward", "knn", "--data", str(tmp_path / "data"), "--out", str(out), "--k", "12",
                 "--aggregate", "softmax", "--temperature", "0.2", "--uncertainty", "count", "--quiet"])
    assert code == 0
    table = RewardTable.load(out)
    assert table.shape == world.truth.shape and table.kind == "knn/logged/softmax/count"
    config = json.loads((out / "config.json").read_text())
    assert config["knn"]["k"] == 12 and config["knn"]["cap"] == 5.0 and config["knn"]["exclude_self"] is True
    assert main(["reward", "knn", "--data", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert main(["reward", "knn", "--data", str(tmp_path / "data"), "--out", str(out), "--indicator", "embedding"]) == 2
    assert main(["reward", "knn", "--data", str(tmp_path / "data"), "--out", str(out), "--k", "1000"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("recsim: error:") for line in errors)


def test_same_config_same_table():
    world = generate_world("tiny", 0)
    config = default_config(world.name, k=8, svd_dim=16, unobserved="ignore", observed_only=True)
    a, b = build_knn_reward_table(world, config), build_knn_reward_table(world, config)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.uncertainty, b.uncertainty)
    assert np.isfinite(a.mean).all() and (a.uncertainty >= 0).all()
