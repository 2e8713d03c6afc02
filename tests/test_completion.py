"""Matrix completion: low-rank recovery beats the global mean; dataset copy with truth; save/load."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from recsim.data.completion import CompletionConfig, complete_matrix, fit_factor_model, with_completed_truth
from recsim.data.schema import Dataset
from recsim.errors import ConfigError, DataError


def _low_rank(n_users=60, n_items=40, rank=2, seed=0):
    rng = np.random.default_rng(seed)
    truth = 3.0 + rng.normal(size=(n_users, rank)) @ rng.normal(size=(rank, n_items))
    observed = rng.random(truth.shape) < 0.5
    return truth, observed, rng


def _dataset(truth, observed, rng) -> Dataset:
    users, items = np.nonzero(observed)
    labels = truth[users, items] + rng.normal(scale=0.05, size=len(users))
    n_users, n_items = truth.shape
    test = pd.DataFrame({"user": users.astype(np.int32), "item": items.astype(np.int32),
                         "label": labels.astype(np.float32)})
    train = test.sample(frac=0.3, random_state=0).reset_index(drop=True)
    return Dataset(
        name="tiny", train=train, test=test,
        user_ids=np.arange(n_users), item_ids=np.arange(n_items),
        user_features=pd.DataFrame({"f": np.zeros(n_users, np.int32)}),
        item_features=pd.DataFrame({"f": np.zeros(n_items, np.int32)}),
        item_categories=np.ones((n_items, 1), dtype=bool), category_names=["all"],
    )


def test_low_rank_recovery_beats_global_mean():
    truth, observed, rng = _low_rank()
    users, items = np.nonzero(observed)
    labels = truth[users, items] + rng.normal(scale=0.05, size=len(users))
    model = fit_factor_model(users, items, labels, *truth.shape, CompletionConfig(rank=4, l2=0.01, n_iters=20))
    pred = model.predict()
    held = ~observed
    rmse = np.sqrt(np.mean((pred[held] - truth[held]) ** 2))
    rmse_mean = np.sqrt(np.mean((labels.mean() - truth[held]) ** 2))
    assert rmse < 0.5 * rmse_mean, (rmse, rmse_mean)


def test_deterministic_given_seed():
    truth, observed, rng = _low_rank()
    ds = _dataset(truth, observed, rng)
    a = complete_matrix(ds, CompletionConfig(seed=1))[0]
    b = complete_matrix(ds, CompletionConfig(seed=1))[0]
    np.testing.assert_array_equal(a, b)


def test_dataset_copy_with_truth_and_clip(tmp_path):
    truth, observed, rng = _low_rank()
    observed[:, 39] = False  # item 39 never appears in the test log
    ds = _dataset(truth, observed, rng)
    done = with_completed_truth(ds, CompletionConfig(rank=4))
    assert ds.truth is None  # the input is untouched
    assert done.truth.dtype == np.float32 and done.truth.shape == (60, 39)
    np.testing.assert_array_equal(done.truth_items, np.arange(39))
    labels = ds.test["label"].to_numpy()
    assert done.truth.min() >= labels.min() and done.truth.max() <= labels.max()
    assert done.meta["completion"]["fitted_on"] == "test"
    everything = with_completed_truth(ds, CompletionConfig(rank=4, items="all", include_train=True))
    assert everything.truth.shape == (60, 40)
    assert np.isfinite(everything.truth).all()
    done.validate()
    done.save(tmp_path / "ds")
    loaded = Dataset.load(tmp_path / "ds")
    np.testing.assert_array_equal(loaded.truth, done.truth)
    with pytest.raises(DataError):
        with_completed_truth(done)


def test_needs_test_log():
    truth, observed, rng = _low_rank()
    ds = _dataset(truth, observed, rng)
    ds.test = None
    with pytest.raises(DataError):
        complete_matrix(ds)


@pytest.mark.parametrize("kwargs", [dict(rank=0), dict(n_iters=0), dict(l2=-1.0), dict(users="some")])
def test_invalid_config(kwargs):
    with pytest.raises(ConfigError):
        CompletionConfig(**kwargs)


def test_synthetic_world_truth_is_recovered():
    """Completing the synthetic world's random-exposure log correlates with its real truth."""
    from recsim.data.synthetic import generate_world

    world = generate_world("tiny", seed=0)
    real = world.truth_dense()
    blind = dataclasses.replace(world, truth=None, truth_users=None, truth_items=None)
    done = with_completed_truth(blind, CompletionConfig(users="all", items="all"))
    corr = np.corrcoef(done.truth.ravel(), real.ravel())[0, 1]
    assert corr > 0.3, corr
