"""Does a user model personalise, and does its uncertainty point where it is wrong?

Computed on a dense reward table (table users x table items) against the dataset's held-out
truth: the ground-truth matrix where the dataset has one (the synthetic world), else the test
log's (user, item) pairs with their mean label (Coat's, Yahoo's, KuaiRand's random-exposure
ratings: missing at random, so an unbiased sample of the truth).

- `top_k_exposure`: distinct items among all users' top-k lists (over all table items) and the
  Gini coefficient of how often each item appears in them (`recsim.evaluation.exposure.gini`).
  A model that ranks by popularity gives every user the same k items.
- `calibration`: Spearman rank correlation between the uncertainty of a known (user, item) pair
  and its absolute error |mean - truth| (positive: uncertain where wrong), and between an item's
  uncertainty averaged over the table users and its number of logged training rows (negative:
  uncertain where the log is thin). At most `SPEARMAN_SAMPLE` pairs (a seeded subsample).
  `diagnose_model` scores at most `MAX_USERS` users (a seeded sample) on large datasets.
- `ucb_differs`: share of users whose top item (`ucb_top1_differs`) or ordered top-k list
  (`ucb_top10_differs`) under rhat + c sqrt(U) (the UCB baseline, `recsim.policy.static.UCBRecommender`,
  c = 1) differs from the greedy one under rhat.
- `pointwise`: RMSE of the mean on the known pairs beside that of the constant training-log mean.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import spearmanr

from recsim.evaluation.exposure import gini
from recsim.evaluation.ranking import top_k_items
from recsim.reward.table import RewardTable
from recsim.user_model.options import UNCERTAINTY_KINDS

SPEARMAN_SAMPLE = 500_000
MAX_USERS = 5_000
UCB_C = 1.0


def table_ids(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Default reward-table rows and columns: the truth block when the dataset has one, else all x all."""
    if dataset.truth is not None:
        return np.asarray(dataset.truth_users, np.int64), np.asarray(dataset.truth_items, np.int64)
    return np.arange(dataset.n_users, dtype=np.int64), np.arange(dataset.n_items, dtype=np.int64)


def available_kinds(ensemble: Any, first: str) -> tuple[str, ...]:
    """The uncertainty kinds `ensemble` can compute (`count` needs its log counts), `first` first."""
    kinds = [k for k in UNCERTAINTY_KINDS if k != "count" or ensemble.item_log_count is not None]
    return (first, *[k for k in kinds if k != first])


def diagnose_model(ensemble: Any, dataset: Any, k: int = 10, max_users: int = MAX_USERS,
                   seed: int = 0) -> dict[str, Any]:
    """`diagnose` of the ensemble's tables over `table_ids(dataset)`, every available kind.

    At most `max_users` table users (a seeded sample, sorted) so that one table per kind fits in
    memory at KuaiRand's scale; `n_diagnosed_users` says how many were used.
    """
    users, items = table_ids(dataset)
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    tables = ensemble.reward_tables(users, items, available_kinds(ensemble, "max_variance"))
    return {**diagnose(tables, dataset, k), "n_diagnosed_users": len(users)}


def known_pairs(dataset: Any, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows int64 (n,), columns int64 (n,), truth float64 (n,)): held-out truth inside the table.

    `users` / `items`: the table's dataset ids. From the truth matrix (non-NaN entries) when the
    dataset has one, else from the test log (label averaged over repeated pairs).
    """
    row_of = np.full(dataset.n_users, -1, np.int64)
    col_of = np.full(dataset.n_items, -1, np.int64)
    row_of[np.asarray(users)] = np.arange(len(users))
    col_of[np.asarray(items)] = np.arange(len(items))
    if dataset.truth is not None:
        t_rows, t_cols = np.nonzero(~np.isnan(dataset.truth))
        u = np.asarray(dataset.truth_users, np.int64)[t_rows]
        i = np.asarray(dataset.truth_items, np.int64)[t_cols]
        value = np.asarray(dataset.truth, np.float64)[t_rows, t_cols]
    elif dataset.test is not None and len(dataset.test):
        pairs = dataset.test.groupby(["user", "item"], sort=True)["label"].mean().reset_index()
        u, i = pairs["user"].to_numpy(np.int64), pairs["item"].to_numpy(np.int64)
        value = pairs["label"].to_numpy(np.float64)
    else:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    keep = (row_of[u] >= 0) & (col_of[i] >= 0)
    return row_of[u[keep]], col_of[i[keep]], value[keep]


def top_k_exposure(scores: np.ndarray, k: int = 10) -> dict[str, float]:
    """Distinct items among the top-k lists of `scores` (n_users, n_items) and the Gini of their exposure."""
    top = top_k_items(scores, k)
    counts = np.bincount(top.ravel(), minlength=scores.shape[1])
    return {f"distinct_items@{k}": int((counts > 0).sum()), f"gini_top@{k}": gini(counts)}


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def calibration(table: RewardTable, rows: np.ndarray, cols: np.ndarray, truth: np.ndarray,
                item_log_count: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Spearman of the uncertainty with |mean - truth| over known pairs, and with the item log count.

    Args:
        table: the reward table (its `items` index `item_log_count`).
        rows, cols, truth: known pairs in table coordinates (`known_pairs`).
        item_log_count: float (n_dataset_items,), logged training rows per item.
    """
    if len(rows) > SPEARMAN_SAMPLE:
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), SPEARMAN_SAMPLE, replace=False))
        rows, cols, truth = rows[pick], cols[pick], truth[pick]
    error = np.abs(table.mean[rows, cols].astype(np.float64) - truth)
    return {"spearman_abs_error": _spearman(table.uncertainty[rows, cols], error),
            "spearman_item_log_count": _spearman(table.uncertainty.mean(axis=0),
                                                 np.asarray(item_log_count)[table.items])}


def ucb_differs(table: RewardTable, k: int = 1, c: float = UCB_C) -> float:
    """Share of table users whose ordered top-k under mean + c sqrt(max(U, 0)) differs from that under mean."""
    if not table.mean.size:
        return float("nan")
    bonus = table.mean + c * np.sqrt(np.maximum(table.uncertainty, 0.0))
    return float((top_k_items(bonus, k) != top_k_items(table.mean, k)).any(axis=1).mean())


def pointwise(mean: np.ndarray, rows: np.ndarray, cols: np.ndarray, truth: np.ndarray,
              train_mean: float) -> dict[str, float]:
    """RMSE on the known pairs of the table mean and of the constant `train_mean`."""
    if not len(truth):
        return {"rmse": float("nan"), "rmse_train_mean": float("nan"), "n_known_pairs": 0}
    diff = mean[rows, cols].astype(np.float64) - truth
    return {"rmse": float(np.sqrt(np.mean(diff * diff))),
            "rmse_train_mean": float(np.sqrt(np.mean((truth - train_mean) ** 2))), "n_known_pairs": len(truth)}


def diagnose(tables: dict[str, RewardTable], dataset: Any, k: int = 10) -> dict[str, Any]:
    """All diagnostics of one model's tables (one per uncertainty kind, sharing one mean)."""
    first = next(iter(tables.values()))
    rows, cols, truth = known_pairs(dataset, first.users, first.items)
    item_log_count = np.bincount(dataset.train["item"].to_numpy(np.int64), minlength=dataset.n_items)
    train_mean = float(dataset.train["label"].mean())
    return {
        **top_k_exposure(first.mean, k),
        **pointwise(first.mean, rows, cols, truth, train_mean),
        "uncertainty": {kind: {**calibration(table, rows, cols, truth, item_log_count),
                               "ucb_top1_differs": ucb_differs(table, 1),
                               f"ucb_top{k}_differs": ucb_differs(table, k)}
                        for kind, table in tables.items()},
    }
