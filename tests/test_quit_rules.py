"""Quit rules on hand-written cases, and against a naive per-row reference."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from recsim.env.quit_rules import (
    CategoryOverlapQuit,
    ItemDistanceQuit,
    NoQuit,
    QuitRuleConfig,
    item_distance_matrix,
    make_quit_rule,
)
from recsim.errors import ConfigError

# items: 0 {a}, 1 {b}, 2 {a, b}, 3 {c}, 4 {}
CATS = np.array([
    [1, 0, 0],
    [0, 1, 0],
    [1, 1, 0],
    [0, 0, 1],
    [0, 0, 0],
], dtype=bool)


def test_category_threshold_zero_hand_cases():
    rule = CategoryOverlapQuit(CATS, leave_threshold=0, window=2)
    recent = np.array([
        [-1, -1],  # first step: never quits
        [-1, 0],   # 0 {a} vs 1 {b}: no overlap
        [0, 3],    # 2 {a,b} shares a with 0
        [1, 3],    # 3 {c} shares c with 3
        [3, 1],    # 4 {} shares nothing
        [-1, 4],   # 4 after 4: no categories, no overlap
    ])
    actions = np.array([0, 1, 2, 3, 4, 4])
    np.testing.assert_array_equal(rule.should_quit(recent, actions), [False, False, True, True, False, False])


def test_category_window_only_sees_given_items():
    rule = CategoryOverlapQuit(CATS, leave_threshold=0, window=1)
    # item 0 two steps back is outside a window of 1: the env passes only the last item
    assert not rule.should_quit(np.array([[3]]), np.array([0]))[0]


def test_category_threshold_counts_per_category():
    """Published rule: a category of the item must appear in more than T window items."""
    rule = CategoryOverlapQuit(CATS, leave_threshold=1, window=4)
    recent = np.array([
        [-1, -1, 0, 1],  # action 2 {a,b}: a once, b once -> stay
        [-1, 0, 2, 1],   # action 2: a twice (0, 2) -> leave
        [3, 3, 0, 1],    # action 0 {a}: a once -> stay (c twice does not matter)
        [3, 3, 0, 1],    # action 3 {c}: c twice -> leave
    ])
    actions = np.array([2, 2, 0, 3])
    np.testing.assert_array_equal(rule.should_quit(recent, actions), [False, True, False, True])


def _naive_category(cats, recent, action, threshold):
    counts = Counter(c for item in recent if item >= 0 for c in np.flatnonzero(cats[item]))
    return any(counts[c] > threshold for c in np.flatnonzero(cats[action]))


@pytest.mark.parametrize("n_categories", [7, 70])  # one and two uint64 words
@pytest.mark.parametrize("threshold", [0, 1, 2])
def test_category_matches_naive(n_categories, threshold):
    rng = np.random.default_rng(n_categories + threshold)
    cats = rng.random((40, n_categories)) < 0.08
    rule = CategoryOverlapQuit(cats, leave_threshold=threshold, window=4)
    recent = rng.integers(-1, 40, (500, 4))
    actions = rng.integers(0, 40, 500)
    expected = [_naive_category(cats, r, a, threshold) for r, a in zip(recent, actions)]
    np.testing.assert_array_equal(rule.should_quit(recent, actions), expected)


def test_distance_rule_hand_cases():
    dist = np.array([
        [0.0, 0.5, 3.0],
        [0.5, 0.0, 2.0],
        [3.0, 2.0, 0.0],
    ])
    rule = ItemDistanceQuit(dist, threshold=1.0, window=2)
    recent = np.array([[-1, -1], [-1, 0], [-1, 2], [0, 2], [-1, 1]])
    actions = np.array([0, 1, 1, 2, 1])
    # close pairs (< 1): (0,1), and every item with itself
    np.testing.assert_array_equal(rule.should_quit(recent, actions), [False, True, False, True, True])


def test_item_distance_matrix():
    truth = np.array([[1.0, 1.0, 0.0], [0.0, 3.0, np.nan]])
    dist = item_distance_matrix(truth)
    assert dist.dtype == np.float32 and dist.shape == (3, 3)
    np.testing.assert_allclose(dist[0, 1], np.sqrt(0 + 9), rtol=1e-6)
    np.testing.assert_allclose(dist[0, 2], 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.diag(dist), 0.0)
    cos = item_distance_matrix(truth, "cosine")
    np.testing.assert_allclose(cos[0, 1], 1 - 1 / np.sqrt(10), rtol=1e-5)


def test_no_quit_and_factory():
    assert not NoQuit().should_quit(np.zeros((3, 0), int), np.zeros(3, int)).any()
    rule = make_quit_rule(QuitRuleConfig("category", window=4), item_categories=CATS)
    assert isinstance(rule, CategoryOverlapQuit) and rule.window == 4
    truth = np.random.default_rng(0).random((10, 6))
    rule = make_quit_rule(QuitRuleConfig("distance", window=3, distance_quantile=0.2), truth=truth)
    assert isinstance(rule, ItemDistanceQuit) and rule.threshold > 0
    assert isinstance(make_quit_rule(QuitRuleConfig("none")), NoQuit)


@pytest.mark.parametrize("kwargs", [
    dict(kind="sometimes"),
    dict(kind="category", window=0),
    dict(kind="distance", leave_threshold=-1.0),
    dict(kind="distance", distance_quantile=1.5),
])
def test_invalid_configs(kwargs):
    with pytest.raises(ConfigError):
        QuitRuleConfig(**kwargs)


def test_factory_needs_inputs():
    with pytest.raises(ConfigError):
        make_quit_rule(QuitRuleConfig("category"))
    with pytest.raises(ConfigError):
        make_quit_rule(QuitRuleConfig("distance"))
