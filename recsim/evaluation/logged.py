"""Evaluation on the logs: a policy's first-step ranking and off-policy estimates.

- Ranking: the policy's first-step ranking (empty history, `Recommender.ranking_scores`) of every
  truth user, NDCG@k and Recall@k against the ground truth (or, without one, against the held-out
  test log's items); the relevant items of Recall@k are the user model's definition
  (`recsim.user_model.metrics.relevant_threshold`: the top fifth of the feedback), so a policy's
  and a user model's `recall@k` are the same measurement.
- Off-policy estimates (`recsim.evaluation.ope`) of the per-step value of the policy on the
  logged contexts: each logged row becomes the observation the policy would have seen (the
  user's earlier logged items and their labels, the last W of them), and the target probability
  of the logged item is the policy's own `action_probs`. Behaviour propensities: the log's own
  `propensity` column ("logged") when present, else the item popularity of the training log
  ("item popularity"), always named in the output. Coat's shipped propensity is the probability
  that a rating is observed, not a distribution over items: there only the self-normalised
  estimators (SNIPS, NCIS) are on the reward's scale. With a full ground truth the exact per-step
  value on the same contexts, sum_a pi(a|x) truth(u, a), is reported as `ope_truth`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from recsim.evaluation import ranking
from recsim.evaluation.ope import ESTIMATORS
from recsim.reward.table import RewardTable
from recsim.user_model.metrics import relevant_threshold

OPE_CHUNK = 4096


def first_step_observations(users: np.ndarray, n_items: int, window: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    n = len(users)
    mask = np.ones((n, n_items), dtype=bool)
    obs: dict[str, np.ndarray] = {"user": np.asarray(users, np.int64), "history": np.full((n, window), -1, np.int64),
           "feedback": np.zeros((n, window), np.float32), "mask": mask, "turn": np.zeros(n, np.int64)}
    return obs, mask


def policy_scores(policy: Any, users: np.ndarray, n_items: int, window: int) -> np.ndarray | None:
    """float (n_users, n_items) first-step `ranking_scores` of `policy`, or None if it ranks nothing."""
    parts = []
    for start in range(0, len(users), OPE_CHUNK):
        obs, mask = first_step_observations(users[start:start + OPE_CHUNK], n_items, window)
        part = policy.ranking_scores(obs, mask)
        if part is None:
            return None
        parts.append(np.asarray(part, dtype=np.float64))
    return np.concatenate(parts) if parts else None


def ranking_metrics(policy: Any, dataset: Any, ks: list[int], window: int) -> dict[str, float]:
    """NDCG@k and Recall@k of the first-step ranking (NaN where the policy cannot rank)."""
    out: dict[str, float] = {}
    if dataset.truth is not None:
        users = np.asarray(dataset.truth_users, np.int64)
        relevance = np.nan_to_num(dataset.truth.astype(np.float64), nan=0.0)
        mask = np.isfinite(dataset.truth)
        n_items = len(dataset.truth_items)
    elif dataset.test is not None:
        test = dataset.test
        users = np.unique(test["user"].to_numpy(np.int64))
        row = np.searchsorted(users, test["user"].to_numpy(np.int64))
        relevance = np.zeros((len(users), dataset.n_items))
        mask = np.zeros((len(users), dataset.n_items), dtype=bool)
        relevance[row, test["item"].to_numpy()] = np.maximum(test["label"].to_numpy(np.float64), 0)
        mask[row, test["item"].to_numpy()] = True
        n_items = dataset.n_items
    else:
        return {f"ndcg@{k}": math.nan for k in ks} | {f"recall@{k}": math.nan for k in ks}
    scores = policy_scores(policy, users, n_items, window)
    threshold = relevant_threshold(relevance[mask])
    for k in ks:
        if scores is None:
            out[f"ndcg@{k}"] = out[f"recall@{k}"] = math.nan
            continue
        out[f"ndcg@{k}"] = ranking.ndcg_at_k(scores, relevance, k, mask)
        binary = (relevance >= threshold) & mask
        out[f"recall@{k}"] = ranking.recall_at_k(scores, binary.astype(np.float64), k, mask)
    return out


@dataclasses.dataclass
class LoggedContexts:
    """Logged rows as the observations a policy would have seen (see the module docstring)."""

    users: np.ndarray
    items: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    history: np.ndarray
    feedback: np.ndarray
    turn: np.ndarray
    pscore_source: str


def item_columns(dataset: Any) -> np.ndarray:
    """int64 (n_items,): the reward-table column of each dataset item (-1 outside the truth block)."""
    if dataset.truth is None:
        return np.arange(dataset.n_items, dtype=np.int64)
    columns = np.full(dataset.n_items, -1, dtype=np.int64)
    columns[dataset.truth_items] = np.arange(len(dataset.truth_items))
    return columns


def logged_contexts(dataset: Any, window: int, max_users: int, seed: int) -> LoggedContexts:
    """The training log's rows of at most `max_users` users (seeded choice), with histories.

    Items are reward-table columns (`item_columns`); rows of items outside the truth block are
    dropped after the histories are built (an earlier such item appears as -1 in a history).
    """
    log = dataset.train
    if "propensity" in log.columns and np.all(log["propensity"].to_numpy() > 0):
        pscore_all = log["propensity"].to_numpy(np.float64)
        source = "logged"
    else:
        counts = np.bincount(log["item"].to_numpy(), minlength=dataset.n_items).astype(np.float64)
        pscore_all = counts[log["item"].to_numpy()] / counts.sum()
        source = "item popularity"
    frame = pd.DataFrame({"user": log["user"].to_numpy(np.int64), "item": log["item"].to_numpy(np.int64),
                          "label": log["label"].to_numpy(np.float64), "pscore": pscore_all,
                          "t": log["timestamp"].to_numpy() if "timestamp" in log.columns else np.zeros(len(log))})
    all_users = np.unique(frame["user"].to_numpy())
    if len(all_users) > max_users:
        chosen = np.sort(np.random.default_rng(seed).choice(all_users, max_users, replace=False))
        frame = frame[np.isin(frame["user"].to_numpy(), chosen)]
    frame = frame.sort_values(["user", "t"], kind="stable")
    users = frame["user"].to_numpy()
    items = item_columns(dataset)[frame["item"].to_numpy()]
    labels = frame["label"].to_numpy()
    n = len(frame)
    first = np.r_[True, users[1:] != users[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    turn = np.arange(n) - start
    history = np.full((n, window), -1, dtype=np.int64)
    feedback = np.zeros((n, window), dtype=np.float32)
    for lag in range(1, window + 1):
        ok = turn >= lag
        idx = np.nonzero(ok)[0]
        history[idx, window - lag] = items[idx - lag]
        feedback[idx, window - lag] = labels[idx - lag]
    keep = items >= 0
    return LoggedContexts(users[keep], items[keep], labels[keep], frame["pscore"].to_numpy()[keep], history[keep],
                          feedback[keep], turn[keep], source)


def off_policy_estimates(policy: Any, dataset: Any, contexts: LoggedContexts, estimators: list[str], cap: float,
                         n_bootstrap: int, seed: int, user_model_table: RewardTable | None) -> dict[str, float]:
    """One value per estimator (`ope_<name>`, `ope_<name>_low/_high`), plus `ope_truth` where known."""
    if not estimators:
        return {}
    n = len(contexts.users)
    action_prob = np.zeros(n)
    v_target = np.zeros(n)
    v_truth = np.zeros(n)
    q_logged = np.zeros(n)
    truth = None
    has_truth = dataset.truth is not None and np.isfinite(dataset.truth).all()
    n_columns = len(dataset.truth_items) if dataset.truth is not None else dataset.n_items
    if has_truth:
        truth = np.zeros((dataset.n_users, n_columns), dtype=np.float32)
        truth[dataset.truth_users] = dataset.truth
        has_truth = set(np.unique(contexts.users).tolist()) <= set(dataset.truth_users.tolist())
    table_rows = None
    context_users = set(np.unique(contexts.users).tolist())
    if (user_model_table is not None and context_users <= set(user_model_table.users.tolist())
            and user_model_table.shape[1] == n_columns):
        row_of = np.full(dataset.n_users, -1, dtype=np.int64)
        row_of[user_model_table.users] = np.arange(len(user_model_table.users))
        table_rows = row_of
    for start in range(0, n, OPE_CHUNK):
        sl = slice(start, min(start + OPE_CHUNK, n))
        mask = np.ones((sl.stop - sl.start, n_columns), dtype=bool)
        obs = {"user": contexts.users[sl], "history": contexts.history[sl], "feedback": contexts.feedback[sl],
               "mask": mask, "turn": contexts.turn[sl]}
        probs = np.asarray(policy.action_probs(obs, mask), dtype=np.float32)
        action_prob[sl] = probs[np.arange(len(probs)), contexts.items[sl]]
        if has_truth and truth is not None:
            v_truth[sl] = np.einsum("ij,ij->i", probs, truth[contexts.users[sl]], dtype=np.float64)
        if table_rows is not None and user_model_table is not None:
            q = user_model_table.mean[table_rows[contexts.users[sl]]]
            v_target[sl] = np.einsum("ij,ij->i", probs, q, dtype=np.float64)
            q_logged[sl] = q[np.arange(len(probs)), contexts.items[sl]]
    out: dict[str, float] = {}
    for name in estimators:
        cls = ESTIMATORS[name]
        kwargs: dict[str, Any] = {"n_bootstrap": n_bootstrap, "seed": seed}
        if "cap" in {f.name for f in dataclasses.fields(cls)}:
            kwargs["cap"] = cap
        estimator = cls(**kwargs)
        if "q_logged" in cls.needs and table_rows is None:
            out[f"ope_{name}"] = out[f"ope_{name}_low"] = out[f"ope_{name}_high"] = math.nan
            continue
        estimate = estimator.estimate(contexts.reward, contexts.pscore, action_prob, group=contexts.users,
                                      context=contexts.users, q_logged=q_logged, v_target=v_target,
                                      pscore_source=contexts.pscore_source)
        out[f"ope_{name}"] = estimate.value
        out[f"ope_{name}_low"] = estimate.ci_low
        out[f"ope_{name}_high"] = estimate.ci_high
        out[f"ope_{name}_ess"] = estimate.ess_share
    if has_truth:
        out["ope_truth"] = float(v_truth.mean())
    return out
