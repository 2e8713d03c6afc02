"""Evaluating a user model on held-out data.

- Pointwise, on the test log's (user, item, label) rows: RMSE, MAE and, when every label is 0 or 1,
  ROC AUC of the ensemble mean.
- Pointwise against the ground truth (when the dataset has one): RMSE and MAE over known entries.
- Ranking, NDCG@k and Recall@k (`recsim.evaluation.ranking`: gain 2^rel - 1, sorted ideal
  ranking, relevant = relevance > 0): on a ground-truth matrix every known item of every truth
  user is a candidate (relevance = truth); against the test log each test user's candidates are
  the items in their test rows (relevance = the label, averaged over repeated rows, clipped at 0).
  Watch ratios and ratings are positive almost everywhere, so "relevance > 0" would make every
  candidate relevant and Recall@k trivial; for Recall@k a candidate counts as relevant when its
  relevance is at least `RELEVANT_QUANTILE` (80th percentile) of all candidate relevances (the top
  fifth of feedback; reported as `recall_threshold`).

Everything is computed in chunks of users so the KuaiRand scale fits in memory.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from recsim.evaluation.ranking import ndcg_per_user, recall_per_user
from recsim.user_model.predict import Ensemble

DEFAULT_KS = (10,)
CHUNK_CELLS = 2**23
RELEVANT_QUANTILE = 0.8
QUANTILE_SAMPLE = 2**20


def relevant_threshold(values: np.ndarray) -> float:
    """`RELEVANT_QUANTILE` of the finite `values` (a strided subsample of at most ~1 M of them)."""
    flat = np.asarray(values).ravel()
    flat = flat[:: max(1, len(flat) // QUANTILE_SAMPLE)]
    flat = flat[np.isfinite(flat)]
    return float(np.quantile(flat, RELEVANT_QUANTILE)) if flat.size else float("nan")


def rmse(pred: np.ndarray, label: np.ndarray) -> float:
    """Root mean squared error of float arrays of equal shape (NaN when empty)."""
    diff = np.asarray(pred, np.float64) - np.asarray(label, np.float64)
    return float(np.sqrt(np.mean(diff * diff))) if diff.size else float("nan")


def mae(pred: np.ndarray, label: np.ndarray) -> float:
    """Mean absolute error (NaN when empty)."""
    diff = np.asarray(pred, np.float64) - np.asarray(label, np.float64)
    return float(np.mean(np.abs(diff))) if diff.size else float("nan")


def is_binary(labels: np.ndarray) -> bool:
    labels = np.asarray(labels)
    return bool(labels.size) and bool(np.isin(labels, (0, 1)).all())


def auc(pred: np.ndarray, label: np.ndarray) -> float:
    """ROC AUC of scores `pred` for 0/1 labels (NaN when only one class is present)."""
    label = np.asarray(label)
    if len(np.unique(label)) < 2:
        return float("nan")
    return float(roc_auc_score(label, pred))


def pointwise_metrics(ensemble: Ensemble, log: pd.DataFrame) -> dict[str, float]:
    """RMSE, MAE (and AUC for 0/1 labels) of the ensemble mean on the rows of `log`."""
    mean, _ = ensemble.predict_pairs(log["user"].to_numpy(), log["item"].to_numpy())
    label = log["label"].to_numpy(np.float64)
    out = {"rmse": rmse(mean, label), "mae": mae(mean, label), "n_rows": int(len(label))}
    if is_binary(label):
        out["auc"] = auc(mean, label)
    return out


def _grouped_dcg(users: np.ndarray, scores: np.ndarray, gains: np.ndarray, k: int) -> np.ndarray:
    """float64 (n_groups,): DCG@k of each user's rows ranked by decreasing `scores` (ties: earlier row)."""
    order = np.lexsort((np.arange(len(users)), -scores, users))
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(sorted_users[1:] != sorted_users[:-1]) + 1]
    rank = np.arange(len(users)) - np.repeat(starts, np.diff(np.r_[starts, len(users)]))
    discount = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)
    return np.add.reduceat(gains[order] * discount, starts)


def grouped_ndcg(users: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k over users of their own rows (a user's rows are that user's candidates).

    Args:
        users: int (n,), the user of each row.
        scores: float (n,), the predicted score of each row.
        labels: float (n,), the held-out relevance of each row (clipped at 0; gain 2^rel - 1).

    Users whose rows all have relevance 0 are left out; NaN when no user is left.
    """
    users = np.asarray(users, np.int64)
    if len(users) == 0:
        return float("nan")
    gains = np.exp2(np.maximum(np.asarray(labels, np.float64), 0.0)) - 1.0
    dcg = _grouped_dcg(users, np.asarray(scores, np.float64), gains, k)
    ideal = _grouped_dcg(users, gains, gains, k)
    ok = ideal > 0
    return float((dcg[ok] / ideal[ok]).mean()) if ok.any() else float("nan")


def _chunk(n_items: int) -> int:
    return max(1, CHUNK_CELLS // max(n_items, 1))


def _ranking_from_blocks(blocks, ks: tuple[int, ...], threshold: float) -> dict[str, float]:
    """Mean NDCG@k / Recall@k over users from (scores, relevance, mask) user blocks."""
    per_user: dict[str, list[np.ndarray]] = {f"{name}@{k}": [] for k in ks for name in ("ndcg", "recall")}
    n_users = 0
    for scores, relevance, mask in blocks:
        n_users += len(scores)
        for k in ks:
            per_user[f"ndcg@{k}"].append(ndcg_per_user(scores, relevance, k, mask))
            relevant = (relevance >= threshold).astype(np.float64)
            per_user[f"recall@{k}"].append(recall_per_user(scores, relevant, k, mask))
    out: dict[str, float] = {}
    for name, parts in per_user.items():
        values = np.concatenate(parts) if parts else np.zeros(0)
        ok = ~np.isnan(values)
        out[name] = float(values[ok].mean()) if ok.any() else float("nan")
    out["n_users"] = int(n_users)
    out["recall_threshold"] = threshold
    return out


def truth_metrics(ensemble: Ensemble, dataset: Any, ks: tuple[int, ...] = DEFAULT_KS) -> dict[str, float]:
    """Ranking (all known items of each truth user) and RMSE / MAE against `dataset.truth`."""
    users, items, truth = dataset.truth_users, dataset.truth_items, dataset.truth
    step = _chunk(len(items))
    sq, ab, count = 0.0, 0.0, 0

    def blocks():
        nonlocal sq, ab, count
        for start in range(0, len(users), step):
            scores = ensemble.reward_table(users[start:start + step], items).mean
            block = truth[start:start + step]
            mask = ~np.isnan(block)
            diff = (scores.astype(np.float64) - block)[mask]
            sq, ab, count = sq + float((diff * diff).sum()), ab + float(np.abs(diff).sum()), count + int(mask.sum())
            yield scores, np.where(mask, np.maximum(block, 0.0), 0.0), mask

    out = _ranking_from_blocks(blocks(), ks, relevant_threshold(truth))
    out["rmse"] = float(np.sqrt(sq / count)) if count else float("nan")
    out["mae"] = ab / count if count else float("nan")
    return out


def test_log_ranking(ensemble: Ensemble, log: pd.DataFrame, ks: tuple[int, ...] = DEFAULT_KS) -> dict[str, float]:
    """NDCG@k / Recall@k ranking each test user's test items by the ensemble mean."""
    pairs = log.groupby(["user", "item"], sort=True)["label"].mean().reset_index()
    users = pairs["user"].unique()
    n_items = ensemble.spec.n_items
    row_of = np.searchsorted(users, pairs["user"].to_numpy())
    step = _chunk(n_items)

    def blocks():
        for start in range(0, len(users), step):
            chunk_users = users[start:start + step]
            scores = ensemble.reward_table(chunk_users).mean
            sel = (row_of >= start) & (row_of < start + len(chunk_users))
            rows, cols = row_of[sel] - start, pairs["item"].to_numpy()[sel]
            relevance = np.zeros((len(chunk_users), n_items))
            mask = np.zeros((len(chunk_users), n_items), dtype=bool)
            relevance[rows, cols] = np.maximum(pairs["label"].to_numpy()[sel], 0.0)
            mask[rows, cols] = True
            yield scores, relevance, mask

    return _ranking_from_blocks(blocks(), ks, relevant_threshold(np.maximum(pairs["label"].to_numpy(), 0.0)))


def evaluate(ensemble: Ensemble, dataset: Any, ks: tuple[int, ...] = DEFAULT_KS,
             diagnostics: bool = False) -> dict[str, Any]:
    """All metrics the dataset supports: {"test": pointwise + ranking, "truth": ...}; with
    `diagnostics`, also "diagnostics" (`recsim.user_model.diagnostics.diagnose_model`)."""
    out: dict[str, Any] = {}
    if dataset.test is not None and len(dataset.test):
        ranking = test_log_ranking(ensemble, dataset.test, ks)
        ranking["n_ranked_users"] = ranking.pop("n_users")
        out["test"] = {**pointwise_metrics(ensemble, dataset.test), **ranking}
    if dataset.truth is not None:
        out["truth"] = truth_metrics(ensemble, dataset, ks)
    if diagnostics:
        from recsim.user_model.diagnostics import diagnose_model

        out["diagnostics"] = diagnose_model(ensemble, dataset, ks[0])
    return out
