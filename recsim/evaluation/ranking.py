"""Ranking metrics of a policy's item scores against held-out feedback: NDCG@k, Recall@k, IPS-NDCG@k.

All functions take dense arrays of shape (n_users, n_items):

- `scores`: the policy's score of every item for every user (higher = ranked earlier);
- `relevance`: the held-out graded relevance (>= 0; 0 = not relevant or not observed);
- `mask` (optional, bool): the candidate items of each user (for example the random test items of
  Coat, or `~np.isnan(truth)`). Items outside the mask are never ranked and their relevance is
  ignored (it may be NaN). `None` = every item is a candidate.

Ranking: items are ordered by decreasing score; ties are broken deterministically by the lower
item index first. The top k is found with `np.argpartition` (O(n_items) per user) and only those
k items are sorted.

Users without any positive relevance among their candidates are left out of the means (their
NDCG is undefined); the `*_per_user` functions return NaN for them.

Correction of the published code (DORL / ROLeR evaluation): their NDCG uses the gain
`1 << (rel - 1)` and an ideal ranking that is not sorted. Here the gain is the standard
`2^rel - 1` (Jarvelin & Kekalainen, 2002; Burges et al., 2005) and the ideal DCG sorts the same
candidate items by relevance.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "ips_ndcg_at_k",
    "ips_ndcg_per_user",
    "ndcg_at_k",
    "ndcg_per_user",
    "recall_at_k",
    "recall_per_user",
    "top_k_items",
]


def _check_inputs(
    scores: np.ndarray, relevance: np.ndarray, k: int, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    relevance = np.asarray(relevance, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores: expected a 2-D (n_users, n_items) array, got shape {scores.shape}")
    if relevance.shape != scores.shape:
        raise ValueError(f"relevance: shape {relevance.shape} does not match scores {scores.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: must be a positive integer, got {k!r}")
    mask_given = mask is not None
    if mask is None:
        mask = np.ones(scores.shape, dtype=bool)
    else:
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise ValueError(f"mask: must be a bool array, got dtype {mask.dtype}")
        if mask.shape != scores.shape:
            raise ValueError(f"mask: shape {mask.shape} does not match scores {scores.shape}")
    candidate = mask if mask_given else True  # broadcasting True checks every entry
    if (np.isnan(scores) & candidate).any():
        raise ValueError("scores: NaN among the candidate items")
    if (~((relevance >= 0) & np.isfinite(relevance)) & candidate).any():
        raise ValueError("relevance: must be finite and >= 0 on the candidate items")
    if not mask_given:
        return scores, relevance, int(min(k, scores.shape[1])), mask
    return scores, np.where(mask, relevance, 0.0), int(min(k, scores.shape[1])), mask


def top_k_items(scores: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Indices of each user's k best candidate items, best first; shape (n_users, min(k, n_items)).

    Ties are broken by the lower item index. When a user has fewer than k candidates the
    remaining slots hold non-candidate items (callers give them zero gain).
    """
    scores, _, k, mask = _check_inputs(scores, np.zeros_like(scores, dtype=np.float64), k, mask)
    return _top_k(scores, mask, k)


def _top_k(scores: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    n_users, n_items = scores.shape
    # Candidates rank strictly above non-candidates: non-candidates get -inf and a candidate's
    # own -inf becomes the lowest finite float.
    key = np.maximum(scores, -np.finfo(np.float64).max)
    key[~mask] = -np.inf
    if k < n_items:
        kth = np.partition(key, n_items - k, axis=1)[:, n_items - k][:, None]
        above = key > kth
        tied = key == kth
        need = k - above.sum(axis=1)
        chosen = above | tied
        # Where more items tie at the cut than fit, keep the lowest-index ones.
        over = np.flatnonzero(tied.sum(axis=1) > need)
        if over.size:
            tied_over = tied[over]
            keep = tied_over & (np.cumsum(tied_over, axis=1) <= need[over, None])
            chosen[over] = above[over] | keep
        cols = np.nonzero(chosen)[1].reshape(n_users, k)
    else:
        cols = np.broadcast_to(np.arange(n_items), (n_users, n_items)).copy()
    top_key = np.take_along_axis(key, cols, axis=1)
    # Sort the k chosen items by score descending, then item index ascending.
    order = np.lexsort((cols, -top_key), axis=-1)
    return np.take_along_axis(cols, order, axis=1)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _dcg_per_user(
    gain: np.ndarray, mask: np.ndarray, scores: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """DCG of the score ranking and of the ideal ranking of `gain` (zero outside the mask)."""
    cols = _top_k(scores, mask, k)
    disc = _discounts(cols.shape[1])
    dcg = (np.take_along_axis(gain, cols, axis=1) * disc).sum(axis=1)
    n_items = gain.shape[1]
    if k < n_items:
        best = -np.partition(-gain, k - 1, axis=1)[:, :k]
    else:
        best = gain
    ideal = -np.sort(-best, axis=1)[:, : cols.shape[1]]
    idcg = (ideal * disc).sum(axis=1)
    return dcg, idcg


def ndcg_per_user(
    scores: np.ndarray, relevance: np.ndarray, k: int, mask: np.ndarray | None = None
) -> np.ndarray:
    """NDCG@k of every user, shape (n_users,); NaN for users without a positive relevance.

    NDCG@k = DCG@k / IDCG@k with DCG@k = sum_{r=1..k} (2^rel_r - 1) / log2(r + 1), where rel_r is
    the relevance of the item ranked r-th by `scores` among the candidates, and IDCG@k is the
    DCG of the candidates sorted by relevance.
    """
    scores, relevance, k, mask = _check_inputs(scores, relevance, k, mask)
    gain = np.exp2(relevance) - 1.0
    dcg, idcg = _dcg_per_user(gain, mask, scores, k)
    out = np.full(scores.shape[0], np.nan)
    ok = idcg > 0
    out[ok] = dcg[ok] / idcg[ok]
    return out


def ndcg_at_k(
    scores: np.ndarray, relevance: np.ndarray, k: int, mask: np.ndarray | None = None
) -> float:
    """Mean NDCG@k over users with at least one positive relevance (NaN if there are none).

    Args:
        scores: (n_users, n_items) item scores; higher is ranked first, ties by lower item index.
        relevance: (n_users, n_items) graded relevance >= 0 (gain 2^rel - 1).
        k: cut-off (clipped to n_items).
        mask: optional (n_users, n_items) bool candidate set; None = all items.
    """
    return _nanmean(ndcg_per_user(scores, relevance, k, mask))


def recall_per_user(
    scores: np.ndarray, relevance: np.ndarray, k: int, mask: np.ndarray | None = None
) -> np.ndarray:
    """Recall@k of every user, shape (n_users,); NaN for users without a relevant candidate.

    Relevant = relevance > 0. Recall@k = |relevant in top k| / min(k, |relevant|): the
    denominator is capped at k so that a perfect ranking scores 1 even when a user has more
    than k relevant items (the "R-capped" recall used by e.g. Liang et al., 2018, VAE-CF).
    """
    scores, relevance, k, mask = _check_inputs(scores, relevance, k, mask)
    relevant = relevance > 0
    cols = _top_k(scores, mask, k)
    hits = np.take_along_axis(relevant, cols, axis=1).sum(axis=1)
    n_rel = relevant.sum(axis=1)
    out = np.full(scores.shape[0], np.nan)
    ok = n_rel > 0
    out[ok] = hits[ok] / np.minimum(k, n_rel[ok])
    return out


def recall_at_k(
    scores: np.ndarray, relevance: np.ndarray, k: int, mask: np.ndarray | None = None
) -> float:
    """Mean Recall@k over users with a relevant candidate (see `recall_per_user`)."""
    return _nanmean(recall_per_user(scores, relevance, k, mask))


def ips_ndcg_per_user(
    scores: np.ndarray,
    relevance: np.ndarray,
    propensity: np.ndarray,
    k: int,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Inverse-propensity-weighted NDCG@k of every user for missing-not-at-random feedback.

    `relevance` holds the feedback observed in a MNAR log (0 where unobserved) and
    `propensity` (n_users, n_items) the probability that each (user, item) pair is observed
    (for example Coat's `propensities.ascii`). Each observed gain is weighted by 1 / propensity,
    which makes the DCG of a fixed ranking an unbiased estimate of its full-information DCG
    (Schnabel et al., ICML 2016, "Recommendations as Treatments"; Yang et al., RecSys 2018).
    The ideal DCG sorts the same weighted gains, so the per-user value stays in [0, 1]; as a
    ratio of two IPS estimates it is consistent, not unbiased. With propensity == 1 it equals
    `ndcg_per_user`; it is invariant to scaling a user's propensities by a constant.
    Propensities only matter where relevance > 0 and must be > 0 there.
    """
    scores, relevance, k, mask = _check_inputs(scores, relevance, k, mask)
    propensity = np.asarray(propensity, dtype=np.float64)
    if propensity.shape != scores.shape:
        raise ValueError(f"propensity: shape {propensity.shape} does not match scores {scores.shape}")
    observed = relevance > 0
    p_obs = propensity[observed]
    if not np.isfinite(p_obs).all() or (p_obs <= 0).any():
        raise ValueError("propensity: must be finite and > 0 wherever relevance > 0")
    gain = np.zeros_like(relevance)
    gain[observed] = (np.exp2(relevance[observed]) - 1.0) / p_obs
    dcg, idcg = _dcg_per_user(gain, mask, scores, k)
    out = np.full(scores.shape[0], np.nan)
    ok = idcg > 0
    out[ok] = dcg[ok] / idcg[ok]
    return out


def ips_ndcg_at_k(
    scores: np.ndarray,
    relevance: np.ndarray,
    propensity: np.ndarray,
    k: int,
    mask: np.ndarray | None = None,
) -> float:
    """Mean IPS-NDCG@k over users with an observed positive relevance (see `ips_ndcg_per_user`)."""
    return _nanmean(ips_ndcg_per_user(scores, relevance, propensity, k, mask))


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")
