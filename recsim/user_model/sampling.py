"""Negative sampling for the user model, vectorised (no Python loop over log rows).

The published DORL code pairs every logged interaction with randomly drawn (user, item) pairs
whose target is 0 (3 rounds on KuaiRec, 5 elsewhere; docs/methods.md). The rule "a pair whose
logged label is lower" is realised here as follows, for a logged row (u, i, y):

1. draw an item j from all items (the user stays u): uniformly (the published scheme), or with
   probability proportional to given item weights (`item_probs`; the "exposure" scheme of
   `recsim.user_model.train` passes each item's share of the logged rows, so an item appears as a
   negative about as often as it appears in the log, and item popularity alone no longer
   separates logged rows from negatives);
2. accept (u, j) if u never saw j in the log, or if the largest label u gave j is strictly
   below y (so a negative never claims that an item the user liked more is worth 0);
3. rejected draws are redrawn, all at once, up to `max_tries` times; slots still rejected after
   that are dropped (they occur only for users who saw almost every item).

Rows with y <= 0 get no negatives: no pair can have a lower label than 0 (for click logs this
means negatives come from clicked rows only). Membership is tested with a sorted array of
`user * n_items + item` keys and `np.searchsorted`, O((n_log + n_neg) log n_log).
"""
from __future__ import annotations

import numpy as np


def pair_keys(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """int64 key `user * n_items + item` of each (user, item) pair."""
    return users.astype(np.int64) * n_items + items.astype(np.int64)


class LoggedLabels:
    """The largest logged label of each observed (user, item) pair, for fast vectorised lookup."""

    def __init__(self, users: np.ndarray, items: np.ndarray, labels: np.ndarray, n_items: int) -> None:
        keys = pair_keys(users, items, n_items)
        order = np.lexsort((labels, keys))
        keys, labels = keys[order], labels[order]
        last = np.r_[keys[1:] != keys[:-1], True] if len(keys) else np.zeros(0, dtype=bool)
        self.keys = keys[last]
        self.max_label = labels[last].astype(np.float32)
        self.n_items = n_items

    def lookup(self, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(observed bool (n,), max logged label float32 (n,), NaN where unobserved)."""
        keys = pair_keys(users, items, self.n_items)
        pos = np.searchsorted(self.keys, keys)
        pos_c = np.minimum(pos, max(len(self.keys) - 1, 0))
        observed = (pos < len(self.keys)) & (self.keys[pos_c] == keys) if len(self.keys) else np.zeros(len(keys), bool)
        label = np.where(observed, self.max_label[pos_c] if len(self.keys) else np.nan, np.nan).astype(np.float32)
        return observed, label


def sample_negatives(users: np.ndarray, labels: np.ndarray, logged: LoggedLabels, rounds: int,
                     rng: np.random.Generator, max_tries: int = 10,
                     item_probs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw `rounds` negatives per logged row with label > 0 (see the module docstring).

    Args:
        users: int (n,), the user of each logged row.
        labels: float (n,), the logged label of each row.
        logged: the whole log's labels (train and validation rows), for the "lower label" test.
        rounds: negatives drawn per row.
        rng: the only source of randomness.
        max_tries: redraws of rejected slots before they are dropped.
        item_probs: float (n_items,) summing to 1, the draw distribution of items; None: uniform.

    Returns:
        (neg_users int32 (m,), neg_items int32 (m,), source_rows int64 (m,)), m <= rounds * n:
        the accepted negative pairs and the logged row each was drawn for, in (round, row) order.
    """
    source = np.flatnonzero(labels > 0)
    source = np.tile(source, rounds)
    neg_users = users[source].astype(np.int64)
    def draw(n: int) -> np.ndarray:
        if item_probs is None:
            return rng.integers(0, logged.n_items, size=n)
        return rng.choice(logged.n_items, size=n, p=item_probs)

    neg_items = draw(len(source))
    pending = np.arange(len(source))
    for _ in range(max_tries + 1):
        observed, label = logged.lookup(neg_users[pending], neg_items[pending])
        rejected = observed & ~(label < labels[source[pending]])
        pending = pending[rejected]
        if len(pending) == 0:
            break
        neg_items[pending] = draw(len(pending))
    else:
        observed, label = logged.lookup(neg_users[pending], neg_items[pending])
        pending = pending[observed & ~(label < labels[source[pending]])]
    keep = np.ones(len(source), dtype=bool)
    keep[pending] = False
    return neg_users[keep].astype(np.int32), neg_items[keep].astype(np.int32), source[keep].astype(np.int64)
