"""Ranking metrics against naive per-user loops and hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from recsim.evaluation.ranking import (
    ips_ndcg_at_k,
    ips_ndcg_per_user,
    ndcg_at_k,
    ndcg_per_user,
    recall_at_k,
    recall_per_user,
    top_k_items,
)


def _naive_ranking(scores_row, mask_row):
    items = [i for i in range(len(scores_row)) if mask_row[i]]
    return sorted(items, key=lambda i: (-scores_row[i], i))


def _naive_ndcg(scores, relevance, k, mask=None, weights=None):
    """Per-user loop: gain (2^rel - 1) [/ propensity], sorted ideal over the same candidates."""
    n_users, n_items = scores.shape
    mask = np.ones_like(scores, dtype=bool) if mask is None else mask
    out = []
    for u in range(n_users):
        ranked = _naive_ranking(scores[u], mask[u])
        gains = {}
        for i in range(n_items):
            if mask[u, i]:
                g = 2.0 ** relevance[u, i] - 1.0
                if weights is not None and relevance[u, i] > 0:
                    g /= weights[u, i]
                gains[i] = g
        dcg = sum(gains[i] / math.log2(r + 2) for r, i in enumerate(ranked[:k]))
        ideal = sorted(gains.values(), reverse=True)[:k]
        idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
        out.append(dcg / idcg if idcg > 0 else np.nan)
    return np.array(out)


def _naive_recall(scores, relevance, k, mask=None):
    n_users, n_items = scores.shape
    mask = np.ones_like(scores, dtype=bool) if mask is None else mask
    out = []
    for u in range(n_users):
        ranked = _naive_ranking(scores[u], mask[u])[:k]
        relevant = {i for i in range(n_items) if mask[u, i] and relevance[u, i] > 0}
        out.append(len(relevant & set(ranked)) / min(k, len(relevant)) if relevant else np.nan)
    return np.array(out)


def _random_case(seed, n_users=13, n_items=17, ties=True):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, (n_users, n_items)).astype(float) if ties else rng.normal(size=(n_users, n_items))
    relevance = rng.integers(0, 4, (n_users, n_items)).astype(float) * (rng.random((n_users, n_items)) < 0.4)
    mask = rng.random((n_users, n_items)) < 0.6
    relevance[~mask & (rng.random((n_users, n_items)) < 0.5)] = np.nan  # ignored outside the mask
    return scores, relevance, mask


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 5, 17, 40])
@pytest.mark.parametrize("use_mask", [False, True])
def test_ndcg_and_recall_match_naive_loop(seed, k, use_mask):
    scores, relevance, mask = _random_case(seed, ties=seed % 2 == 0)
    if not use_mask:
        relevance = np.nan_to_num(relevance)
        mask = None
    naive_ndcg = _naive_ndcg(scores, relevance, k, mask)
    naive_recall = _naive_recall(scores, relevance, k, mask)
    np.testing.assert_allclose(ndcg_per_user(scores, relevance, k, mask), naive_ndcg, equal_nan=True)
    np.testing.assert_allclose(recall_per_user(scores, relevance, k, mask), naive_recall, equal_nan=True)
    assert ndcg_at_k(scores, relevance, k, mask) == pytest.approx(np.nanmean(naive_ndcg))
    assert recall_at_k(scores, relevance, k, mask) == pytest.approx(np.nanmean(naive_recall))


def test_ndcg_hand_computed_graded():
    # Ranking by score: items 2, 0, 1, 3. Relevance 1, 3, 0, 2 -> gains 1, 7, 0, 3.
    scores = np.array([[0.5, 0.1, 0.9, 0.0]])
    relevance = np.array([[1.0, 3.0, 0.0, 2.0]])
    dcg = 0 / math.log2(2) + 1 / math.log2(3) + 7 / math.log2(4)
    idcg = 7 / math.log2(2) + 3 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(scores, relevance, 3) == pytest.approx(dcg / idcg)
    # Recall@3: relevant {0, 1, 3}, top-3 {2, 0, 1} -> 2 hits / min(3, 3).
    assert recall_at_k(scores, relevance, 3) == pytest.approx(2 / 3)
    # Recall@1 caps the denominator at k: the single top item is not relevant.
    assert recall_at_k(scores, relevance, 1) == 0.0


def test_published_flaws_are_fixed():
    # An unsorted ideal would make a perfect ranking score != 1; gain 2^rel - 1 not 1 << (rel - 1).
    relevance = np.array([[1.0, 3.0, 2.0]])
    assert ndcg_at_k(relevance.copy(), relevance, 3) == pytest.approx(1.0)
    scores = np.array([[3.0, 2.0, 1.0]])
    dcg = 1 + 7 / math.log2(3) + 3 / 2
    idcg = 7 + 3 / math.log2(3) + 1 / 2
    assert ndcg_at_k(scores, relevance, 3) == pytest.approx(dcg / idcg)


def test_ties_are_broken_by_lower_index_and_users_without_positives_skipped():
    scores = np.zeros((2, 4))
    relevance = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(top_k_items(scores, 2), [[0, 1], [0, 1]])
    per_user = ndcg_per_user(scores, relevance, 2)
    assert per_user[0] == pytest.approx(1 / math.log2(3))
    assert np.isnan(per_user[1])
    assert ndcg_at_k(scores, relevance, 2) == pytest.approx(1 / math.log2(3))
    assert math.isnan(ndcg_at_k(scores, np.zeros((2, 4)), 2))


def test_mask_excludes_items_even_with_top_scores():
    scores = np.array([[9.0, 1.0, 2.0, -np.inf]])
    relevance = np.array([[5.0, 0.0, 1.0, 2.0]])
    mask = np.array([[False, True, True, True]])
    # Ranking among candidates: 2, 1, 3 (-inf still a candidate, ranked last).
    np.testing.assert_array_equal(top_k_items(scores, 3, mask), [[2, 1, 3]])
    dcg = 1 + 0 + 3 / 2
    idcg = 3 + 1 / math.log2(3)
    assert ndcg_at_k(scores, relevance, 3, mask) == pytest.approx(dcg / idcg)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [2, 5, 17])
def test_ips_ndcg_matches_naive_loop(seed, k):
    scores, relevance, mask = _random_case(seed)
    rng = np.random.default_rng(100 + seed)
    propensity = rng.uniform(0.05, 1.0, scores.shape)
    expected = _naive_ndcg(scores, relevance, k, mask, weights=propensity)
    np.testing.assert_allclose(ips_ndcg_per_user(scores, relevance, propensity, k, mask), expected, equal_nan=True)


def test_ips_ndcg_reduces_to_ndcg_and_is_scale_invariant():
    scores, relevance, mask = _random_case(7)
    ones = np.ones_like(scores)
    assert ips_ndcg_at_k(scores, relevance, ones, 5, mask) == pytest.approx(ndcg_at_k(scores, relevance, 5, mask))
    rng = np.random.default_rng(3)
    propensity = rng.uniform(0.05, 1.0, scores.shape)
    scaled = propensity * rng.uniform(0.1, 10.0, (scores.shape[0], 1))
    expected = ips_ndcg_at_k(scores, relevance, propensity, 5, mask)
    assert ips_ndcg_at_k(scores, relevance, scaled, 5, mask) == pytest.approx(expected)


def test_ips_weighting_favours_rare_observations():
    # Two observed items with equal relevance; the one observed with low propensity counts more.
    scores = np.array([[1.0, 0.0]])
    relevance = np.array([[1.0, 1.0]])
    low_first = ips_ndcg_at_k(scores, relevance, np.array([[0.1, 1.0]]), 1)
    high_first = ips_ndcg_at_k(scores, relevance, np.array([[1.0, 0.1]]), 1)
    assert low_first == pytest.approx(1.0)
    assert high_first == pytest.approx(0.1)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(scores=np.zeros(3)), "scores"),
        (dict(relevance=np.zeros((2, 2))), "relevance"),
        (dict(k=0), "k"),
        (dict(k=2.5), "k"),
        (dict(mask=np.ones((2, 3), dtype=int)), "mask"),
        (dict(mask=np.ones((3, 2), dtype=bool)), "mask"),
        (dict(relevance=-np.ones((2, 3))), "relevance"),
        (dict(scores=np.full((2, 3), np.nan)), "scores"),
    ],
)
def test_invalid_inputs_name_the_argument(kwargs, name):
    args = dict(scores=np.zeros((2, 3)), relevance=np.ones((2, 3)), k=2, mask=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"^{name}"):
        ndcg_at_k(**args)


def test_ips_ndcg_rejects_zero_propensity_on_observed_items():
    with pytest.raises(ValueError, match="^propensity"):
        ips_ndcg_at_k(np.zeros((1, 2)), np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), 1)
