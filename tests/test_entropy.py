"""DORL's k-order entropy table: hand-computed tiny log, naive reference, lookup, save/load."""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import pytest

from recsim.errors import ConfigError, DataError
from recsim.reward.entropy import EntropyConfig, EntropyTable

H_2_1 = -(2 / 3 * np.log2(2 / 3) + 1 / 3 * np.log2(1 / 3))  # counts {2: 2, 1: 1} over 2 distinct


def _tiny_log() -> pd.DataFrame:
    # user 0 in time order: 1, 2, 1, 3; user 1: 2, 1, 2; user 2: 4, 4, 5. Rows shuffled.
    rows = [
        (0, 1, 10), (0, 2, 20), (0, 1, 30), (0, 3, 40),
        (1, 2, 5), (1, 1, 6), (1, 2, 7),
        (2, 4, 1), (2, 4, 2), (2, 5, 3),
    ]
    order = [7, 3, 0, 9, 5, 1, 8, 4, 2, 6]
    df = pd.DataFrame([rows[i] for i in order], columns=["user", "item", "timestamp"])
    return df


def test_hand_computed_values():
    table = EntropyTable.from_log(_tiny_log(), n_items=6)
    h1 = table.lookup(1, np.array([[1], [2], [3], [4]]))
    # key 1 -> successors {2: 2, 3: 1}; key 2 -> {1: 2} (single successor: 0, the fixed flaw);
    # key 3 never followed by anything (unseen: 1); key 4 -> {4: 1, 5: 1}: 1
    np.testing.assert_allclose(h1, [H_2_1, 0.0, 1.0, 1.0], rtol=1e-6)
    h2 = table.lookup(2, np.array([[1, 2], [2, 1], [4, 4], [1, 3]]))
    # (1,2) -> {1, 3, 2} once each: 1; (4,4) -> {5}: 0; (1,3) unseen: 1
    np.testing.assert_allclose(h2, [1.0, 1.0, 0.0, 1.0], rtol=1e-6)
    assert table.min_sum() == 0.0


def test_published_flaw_option():
    table = EntropyTable.from_log(_tiny_log(), 6, EntropyConfig(single_successor_entropy=1.0))
    np.testing.assert_allclose(table.lookup(1, np.array([[2]])), [1.0])
    np.testing.assert_allclose(table.lookup(2, np.array([[4, 4]])), [1.0])


def test_entropy_of_last_k_items_including_action():
    table = EntropyTable.from_log(_tiny_log(), n_items=6)
    history = np.array([[-1, -1], [0, 2], [5, 1], [3, 4], [-1, 3]])
    actions = np.array([1, 1, 2, 4, 3])
    expected = [
        H_2_1 + 1.0,   # first step: order 2 has no earlier item -> 1 (published)
        H_2_1 + 1.0,   # H1(1) + H2(1,2)
        0.0 + 1.0,     # H1(2) + H2(1,2): order-insensitive key
        1.0 + 0.0,     # H1(4) + H2(4,4)
        1.0 + 1.0,     # unseen keys
    ]
    np.testing.assert_allclose(table.entropy(history, actions), expected, rtol=1e-6)
    per = table.per_order(history, actions)
    assert per.shape == (5, 2) and per.dtype == np.float32
    np.testing.assert_allclose(table.entropy(history, actions, orders=(1,)), per[:, 0])


def _naive(log: pd.DataFrame, k: int) -> dict[tuple, float]:
    counts: dict[tuple, Counter] = defaultdict(Counter)
    log = log.sort_values(["user", "timestamp"], kind="stable")
    for _, group in log.groupby("user", sort=False):
        items = group["item"].tolist()
        for t in range(k, len(items)):
            counts[tuple(sorted(items[t - k:t]))][items[t]] += 1
    out = {}
    for key, counter in counts.items():
        n = sum(counter.values())
        p = np.array(list(counter.values())) / n
        out[key] = 0.0 if len(counter) == 1 else float(-(p * np.log2(p)).sum() / np.log2(len(counter)))
    return out


@pytest.mark.parametrize("k", [1, 2, 3])
def test_matches_naive_reference(k):
    rng = np.random.default_rng(k)
    log = pd.DataFrame({"user": rng.integers(0, 15, 600), "item": rng.integers(0, 12, 600),
                        "timestamp": rng.integers(0, 50, 600)})
    table = EntropyTable.from_log(log, 12, EntropyConfig(orders=(k,)))
    naive = _naive(log, k)
    keys = np.array(sorted(naive))
    np.testing.assert_allclose(table.lookup(k, keys), [naive[tuple(key)] for key in keys], rtol=1e-5, atol=1e-6)
    assert len(table.keys[0]) == len(naive)


def test_no_timestamp_uses_log_order():
    log = _tiny_log().sort_values(["user", "timestamp"]).drop(columns="timestamp")
    with_ts = EntropyTable.from_log(_tiny_log(), 6)
    without = EntropyTable.from_log(log, 6)
    for a, b in zip(with_ts.values, without.values):
        np.testing.assert_array_equal(a, b)


def test_save_load_roundtrip(tmp_path):
    table = EntropyTable.from_log(_tiny_log(), 6)
    path = table.save(tmp_path)
    assert path.name == "entropy.npz"
    loaded = EntropyTable.load(tmp_path)
    assert loaded.orders == table.orders and loaded.n_items == 6
    history, actions = np.array([[0, 2], [4, 4]]), np.array([1, 4])
    np.testing.assert_array_equal(loaded.entropy(history, actions), table.entropy(history, actions))
    with pytest.raises(DataError):
        EntropyTable.load(tmp_path / "missing")


@pytest.mark.parametrize("kwargs", [dict(orders=()), dict(orders=(0,)), dict(orders=(1, 1)),
                                    dict(single_successor_entropy=2.0)])
def test_invalid_config(kwargs):
    with pytest.raises(ConfigError):
        EntropyConfig(**kwargs)


def test_bad_log():
    with pytest.raises(DataError):
        EntropyTable.from_log(pd.DataFrame({"user": [0]}), 3)
    with pytest.raises(DataError):
        EntropyTable.from_log(pd.DataFrame({"user": [0, 0], "item": [1, 7]}), 3)
