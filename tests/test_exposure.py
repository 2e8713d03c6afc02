"""Exposure, Matthew-effect and diversity metrics against hand-computed cases."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from recsim.evaluation.exposure import (
    category_entropy,
    coverage,
    dominating_categories,
    exposure_counts,
    flatten_items,
    gini,
    intra_list_diversity,
    long_tail_share,
    lorenz_curve,
    mcd,
    novelty,
    popularity_lift,
)

# 5 items, 3 categories.
CATS = np.array(
    [
        [True, False, False],
        [True, True, False],
        [False, True, False],
        [False, False, True],
        [False, False, False],
    ]
)


def test_flatten_items_accepts_padded_and_ragged():
    np.testing.assert_array_equal(flatten_items(np.array([[1, 2, -1], [3, -1, -1]])), [1, 2, 3])
    np.testing.assert_array_equal(flatten_items([np.array([4]), np.array([0, 0])]), [4, 0, 0])
    with pytest.raises(ValueError, match="^items"):
        flatten_items(np.array([0.5, 1.0]))


def test_dominating_categories_hand_computed():
    # Positives (label > 0): items 0, 0, 1, 2, 3 -> category counts: c0 = 3, c1 = 2, c2 = 1 (of 6).
    items = np.array([0, 0, 1, 2, 3, 4, 3])
    labels = np.array([1.0, 2.0, 1.0, 1.0, 1.0, 5.0, 0.0])
    # Cumulative shares 0.5, 0.833, 1.0.
    np.testing.assert_array_equal(dominating_categories(items, labels, CATS, share=0.8), [0])
    np.testing.assert_array_equal(dominating_categories(items, labels, CATS, share=5 / 6), [0, 1])
    np.testing.assert_array_equal(dominating_categories(items, labels, CATS, share=1.0), [0, 1, 2])
    assert dominating_categories(items, labels, CATS, share=0.4).size == 0
    # A threshold changes the positives: label > 1 keeps items 0 (label 2) and 4 (no category).
    np.testing.assert_array_equal(dominating_categories(items, labels, CATS, share=1.0, threshold=1.0), [0])


def test_mcd_hand_computed():
    rec = np.array([[0, 2, 3, -1], [4, 1, -1, -1]])  # items 0, 2, 3, 4, 1
    assert mcd(rec, CATS, np.array([0])) == pytest.approx(2 / 5)  # items 0 and 1
    assert mcd(rec, CATS, np.array([1, 2])) == pytest.approx(3 / 5)  # items 1, 2, 3
    assert mcd(rec, CATS, np.array([], dtype=int)) == 0.0
    assert math.isnan(mcd(np.array([-1]), CATS, np.array([0])))


def test_gini_and_lorenz():
    assert gini(np.array([3, 3, 3])) == pytest.approx(0.0)
    # One item has everything among n = 4: G = (n - 1) / n.
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(3 / 4)
    # x = (1, 2, 3): sum (2i - 4) x_i = -2 + 0 + 6 = 4; / (3 * 6).
    assert gini(np.array([3, 1, 2])) == pytest.approx(4 / 18)
    assert math.isnan(gini(np.zeros(3)))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 20, 50)
    items, share = lorenz_curve(x)
    assert items[0] == 0 and share[0] == 0 and items[-1] == 1 and share[-1] == pytest.approx(1)
    assert np.all(np.diff(share) >= 0)
    area = float(np.sum((share[1:] + share[:-1]) / 2 * np.diff(items)))
    assert gini(x) == pytest.approx(1 - 2 * area)
    with pytest.raises(ValueError, match="^exposure_counts"):
        gini(np.array([-1, 2]))


def test_exposure_counts_and_coverage():
    rec = [np.array([0, 0, 3]), np.array([3])]
    np.testing.assert_array_equal(exposure_counts(rec, 5), [2, 0, 0, 2, 0])
    assert coverage(rec, 5) == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="^items"):
        coverage(np.array([7]), 5)


def test_category_entropy():
    # Items 0, 1, 2 -> counts c0 = 2, c1 = 2, c2 = 0 -> 1 bit.
    assert category_entropy(np.array([0, 1, 2]), CATS) == pytest.approx(1.0)
    assert category_entropy(np.array([0, 1, 2]), CATS, normalise=True) == pytest.approx(1 / math.log2(3))
    assert category_entropy(np.array([0, 0]), CATS) == pytest.approx(0.0)
    # c0 = 1, c1 = 1, c2 = 2 -> 1.5 bits.
    assert category_entropy(np.array([1, 3, 3]), CATS) == pytest.approx(1.5)
    assert math.isnan(category_entropy(np.array([4]), CATS))


def _naive_ild(episodes, vectors, metric):
    values = []
    for ep in episodes:
        ep = [i for i in ep if i >= 0]
        if len(ep) < 2:
            continue
        dists = []
        for a, b in itertools.combinations(ep, 2):
            va, vb = vectors[a], vectors[b]
            if a == b:
                dists.append(0.0)
            elif metric == "jaccard":
                union = np.logical_or(va, vb).sum()
                dists.append(1 - np.logical_and(va, vb).sum() / union if union else 0.0)
            else:
                na, nb = np.linalg.norm(va), np.linalg.norm(vb)
                cos = va @ vb / (na * nb) if na > 0 and nb > 0 else 0.0
                dists.append(1 - cos)
        values.append(np.mean(dists))
    return np.mean(values)


def test_intra_list_diversity_hand_computed():
    # Episode (0, 1): jaccard 1 - 1/2 = 0.5. Episode (2, 3, 2): pairs (2,3)=1, (2,2)=0, (3,2)=1 -> 2/3.
    episodes = [np.array([0, 1]), np.array([2, 3, 2]), np.array([4])]
    assert intra_list_diversity(episodes, CATS) == pytest.approx((0.5 + 2 / 3) / 2)
    padded = np.array([[0, 1, -1], [2, 3, 2], [4, -1, -1]])
    assert intra_list_diversity(padded, CATS, chunk_size=1) == pytest.approx((0.5 + 2 / 3) / 2)
    emb = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0], [-1.0, 0.0]])
    # (0, 1) orthogonal -> 1; (0, 4) opposite -> 2.
    assert intra_list_diversity([np.array([0, 1]), np.array([0, 4])], emb, "cosine") == pytest.approx(1.5)


@pytest.mark.parametrize("metric", ["jaccard", "cosine"])
def test_intra_list_diversity_matches_naive_loop(metric):
    rng = np.random.default_rng(1)
    vectors = rng.random((12, 4)) < 0.4 if metric == "jaccard" else rng.normal(size=(12, 4))
    episodes = [rng.integers(0, 12, rng.integers(0, 7)) for _ in range(20)]
    expected = _naive_ild(episodes, vectors, metric)
    assert intra_list_diversity(episodes, vectors, metric, chunk_size=6) == pytest.approx(expected)


def test_novelty():
    popularity = np.array([4.0, 2.0, 1.0, 1.0, 0.0])  # shares 1/2, 1/4, 1/8, 1/8, 0
    assert novelty(np.array([0, 1, 2]), popularity, smoothing=0) == pytest.approx((1 + 2 + 3) / 3)
    assert novelty(np.array([4]), popularity, smoothing=0) == math.inf
    # Smoothing +1: shares (5, 3, 2, 2, 1) / 13.
    assert novelty(np.array([4]), popularity) == pytest.approx(math.log2(13))


def test_popularity_lift():
    logged = np.array([0, 0, 0, 1])  # pop = (3, 1); mean pop over the log = (3*3 + 1) / 4 = 2.5
    assert popularity_lift(np.array([1, 1]), logged) == pytest.approx(1 / 2.5)
    assert popularity_lift(np.array([0]), logged) == pytest.approx(3 / 2.5)
    assert popularity_lift(logged, logged) == pytest.approx(1.0)
    assert popularity_lift(np.array([2]), logged) == 0.0


def test_long_tail_share():
    popularity = np.array([10.0, 0.0, 5.0, 5.0, 1.0])
    # head_share 0.2 of 5 items -> head = {0}; 0.4 -> {0, 2} (tie 2/3 broken by lower index).
    assert long_tail_share(np.array([0, 1, 2, 3]), popularity) == pytest.approx(3 / 4)
    assert long_tail_share(np.array([0, 1, 2, 3]), popularity, head_share=0.4) == pytest.approx(2 / 4)
    assert long_tail_share(np.array([0, 1, 2, 3]), popularity, head_share=0.0) == 1.0


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: dominating_categories(np.array([0]), np.array([1.0, 2.0]), CATS), "train_labels"),
        (lambda: dominating_categories(np.array([0]), np.array([1.0]), CATS, share=0.0), "share"),
        (lambda: dominating_categories(np.array([9]), np.array([1.0]), CATS), "train_items"),
        (lambda: mcd(np.array([0]), CATS.astype(int), np.array([0])), "item_categories"),
        (lambda: intra_list_diversity([np.array([0, 1])], CATS, metric="hamming"), "metric"),
        (lambda: intra_list_diversity(np.array([0, 1]), CATS), "episodes"),
        (lambda: novelty(np.array([0]), np.array([1.0]), smoothing=-1), "smoothing"),
        (lambda: long_tail_share(np.array([0]), np.array([1.0]), head_share=2.0), "head_share"),
        (lambda: popularity_lift(np.array([0]), np.array([], dtype=int)), "logged_items"),
        (lambda: coverage(np.array([0]), 0), "n_items"),
    ],
)
def test_invalid_inputs_name_the_argument(call, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        call()
