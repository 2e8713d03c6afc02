"""The held-out part of the training log (`recsim.data.split`): no leak, reproducible, per user."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsim.data.split import HELDOUT, HoldoutConfig, heldout_mask, kind_of_test_log, with_holdout
from recsim.errors import ConfigError, DataError


def _log(n_users: int = 30, timestamps: bool = True, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 12, n_users)
    users = np.repeat(np.arange(n_users), counts)
    frame = pd.DataFrame({"user": users.astype(np.int32), "item": rng.integers(0, 50, len(users)).astype(np.int32),
                          "label": rng.integers(1, 6, len(users)).astype(np.float32)})
    if timestamps:
        frame["timestamp"] = rng.integers(0, 10**9, len(users)).astype(np.int64)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # rows in no particular order


def _dataset(log: pd.DataFrame):
    from recsim.data.schema import Dataset

    return Dataset(name="toy", train=log, user_ids=np.arange(30), item_ids=np.arange(50),
                   user_features=pd.DataFrame(index=pd.RangeIndex(30)),
                   item_features=pd.DataFrame(index=pd.RangeIndex(50)),
                   item_categories=np.zeros((50, 0), bool), category_names=[])


def test_the_held_out_rows_are_each_users_last_by_time_and_never_in_training():
    log = _log()
    split = with_holdout(_dataset(log), HoldoutConfig(fraction=0.3, seed=0))
    train, test = split.train, split.test
    assert test is not None and len(train) + len(test) == len(log)
    key = ["user", "item", "label", "timestamp"]
    merged = train[key].merge(test[key], how="inner")
    assert merged.empty  # no held-out row (all four fields) is a training row
    for user, rows in log.groupby("user"):
        n = len(rows)
        held = test[test["user"] == user]
        assert len(held) == min(int(np.floor(0.3 * n + 0.5)), n - 1)  # every user keeps a training row
        if len(held):
            assert held["timestamp"].min() >= train[train["user"] == user]["timestamp"].max()
    assert kind_of_test_log(split) == HELDOUT and split.meta["test_log"]["by"] == "timestamp"
    assert "not random" in split.meta["test_log"]["description"]


def test_without_timestamps_the_choice_is_seeded_and_reproducible():
    log = _log(timestamps=False)
    first = heldout_mask(log, HoldoutConfig(0.25, seed=1))
    assert (first == heldout_mask(log, HoldoutConfig(0.25, seed=1))).all()
    assert (first != heldout_mask(log, HoldoutConfig(0.25, seed=2))).any()
    split = with_holdout(_dataset(log), HoldoutConfig(0.25, seed=1))
    assert split.meta["test_log"]["by"] == "random" and len(split.test) == first.sum()


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_invalid_fraction_is_a_config_error(fraction):
    with pytest.raises(ConfigError, match="data.holdout.fraction"):
        HoldoutConfig(fraction=fraction)


def test_a_dataset_with_its_own_test_log_is_not_split(tiny_world):
    with pytest.raises(DataError, match="has its own test log"):
        with_holdout(tiny_world, HoldoutConfig())
