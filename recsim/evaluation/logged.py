"""Evaluation on the logs: a policy's first-step ranking and off-policy estimates.

- Ranking: the policy's first-step ranking (empty history, `Recommender.ranking_scores`),
  NDCG@k and Recall@k against every reference the dataset has, each its own column:
  `ndcg@k_truth` (the ground-truth matrix, every truth user), `ndcg@k_random_log` (the items of
  a random-exposure test log, Coat / Yahoo / KuaiRand) and `ndcg@k_heldout_log` (the items of
  the held-out part of the training log, `recsim.data.split`). With a test log the candidates of
  each user are the user's test items. The relevant items of Recall@k are the user model's
  definition (`recsim.user_model.metrics.relevant_threshold`: the top fifth of the feedback), so
  a policy's and a user model's `recall@k` are the same measurement.
- Off-policy estimates (`recsim.evaluation.ope`) of the one-step value of the policy, the
  expected immediate reward of its next item on the logged contexts, as columns
  `ope_step_<estimator>` with `_low`, `_high`, `_ess`, `_unreliable` and `_reason`: each
  logged row becomes the observation the policy would have seen (the user's earlier logged
  items and their labels, the last W of them), and the target probability of the logged item
  is the policy's own `action_probs`. Behaviour propensities come from
  `recsim.evaluation.propensity` (the spec's `evaluation.ope_propensity`), named in
  `ope_pscore_source`. The contexts are the logged rows of the users that every model in use
  covers (the ground truth's users, the user model's table where DM / DR / SNDR or a
  user-model propensity need it, the behaviour model's users); `ope_n_contexts` and
  `ope_n_users` count them. With a full ground truth the exact one-step value on the same
  contexts, sum_a pi(a|x) truth(u, a), is `ope_step_truth`. Coat's shipped propensity is the
  probability that a rating is observed, not a distribution over items: there only the
  self-normalised estimators (SNIPS, NCIS) are on the reward's scale.
- The value measured on a random-exposure test log, `ope_step_random_log`: SNIPS over the
  random test rows of the covered users with the policy's first-step probabilities and the
  uniform exposure propensity, sum pi(a|u) r / sum pi(a|u) (the exposure's constant
  propensity cancels); unbiased up to the self-normalisation, with the same interval, ESS and
  flag columns as the estimates.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from recsim.data.split import HELDOUT, kind_of_test_log
from recsim.evaluation import ranking
from recsim.evaluation.ope import ESTIMATORS, SNIPS, estimate_columns
from recsim.evaluation.propensity import BehaviourModel
from recsim.reward.table import RewardTable
from recsim.user_model.metrics import relevant_threshold

STEP = "ope_step"
"""Prefix of the one-step value estimates (the episode estimators' columns are `ope_rtra_*`)."""
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


@dataclasses.dataclass(frozen=True)
class RankingReference:
    """Relevance to rank against: `users` (n,), `relevance` float (n, n_columns) >= 0 and
    `mask` bool (n, n_columns) candidates, over the policy's columns; `suffix` names it."""

    suffix: str
    users: np.ndarray
    relevance: np.ndarray
    mask: np.ndarray


def ranking_references(dataset: Any) -> list[RankingReference]:
    """The ground truth ("truth") and the test log ("random_log" / "heldout_log") where present."""
    refs = []
    if dataset.truth is not None:
        refs.append(RankingReference("truth", np.asarray(dataset.truth_users, np.int64),
                                     np.nan_to_num(dataset.truth.astype(np.float64), nan=0.0),
                                     np.isfinite(dataset.truth)))
    if dataset.test is not None:
        columns = item_columns(dataset)
        test = dataset.test
        users, items = test["user"].to_numpy(np.int64), columns[test["item"].to_numpy()]
        keep = items >= 0
        if dataset.truth is not None:
            keep &= np.isin(users, dataset.truth_users)
        users, items, labels = users[keep], items[keep], test["label"].to_numpy(np.float64)[keep]
        unique = np.unique(users)
        row = np.searchsorted(unique, users)
        n_columns = len(dataset.truth_items) if dataset.truth is not None else dataset.n_items
        relevance = np.zeros((len(unique), n_columns))
        mask = np.zeros((len(unique), n_columns), dtype=bool)
        relevance[row, items] = np.maximum(labels, 0)
        mask[row, items] = True
        kind = "heldout_log" if kind_of_test_log(dataset) == HELDOUT else "random_log"
        refs.append(RankingReference(kind, unique, relevance, mask))
    return refs


def ranking_metrics(policy: Any, dataset: Any, ks: list[int], window: int) -> dict[str, float | None]:
    """`ndcg@k_<reference>` and `recall@k_<reference>` of the first-step ranking, for every
    reference of `ranking_references` (None where the policy cannot rank)."""
    out: dict[str, float | None] = {}
    n_columns = len(dataset.truth_items) if dataset.truth is not None else dataset.n_items
    for ref in ranking_references(dataset):
        scores = policy_scores(policy, ref.users, n_columns, window)
        threshold = relevant_threshold(ref.relevance[ref.mask])
        binary = ((ref.relevance >= threshold) & ref.mask).astype(np.float64)
        for k in ks:
            ndcg = recall = None
            if scores is not None:
                ndcg = _finite(ranking.ndcg_at_k(scores, ref.relevance, k, ref.mask))
                recall = _finite(ranking.recall_at_k(scores, binary, k, ref.mask))
            out[f"ndcg@{k}_{ref.suffix}"], out[f"recall@{k}_{ref.suffix}"] = ndcg, recall
    return out


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclasses.dataclass
class LoggedContexts:
    """Logged rows as the observations a policy would have seen (see the module docstring).

    Fields: users, items (reward-table columns), reward, pscore (the behaviour model's
    propensity of the logged item), turn: (n,); history, feedback: (n, W); pscore_source.
    """

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


def covered_users(dataset: Any, table: RewardTable | None, behaviour: BehaviourModel | None) -> np.ndarray:
    """int64 sorted ids of the users every model in use is defined for: the truth block's users
    (where there is a ground truth), the rows of `table` (when given), the behaviour model's."""
    users = np.arange(dataset.n_users, dtype=np.int64)
    if dataset.truth is not None:
        users = np.intersect1d(users, dataset.truth_users)
    if table is not None:
        users = np.intersect1d(users, table.users)
    if behaviour is not None and behaviour.covered_users is not None:
        users = np.intersect1d(users, behaviour.covered_users)
    return users


def logged_contexts(dataset: Any, window: int, max_users: int, seed: int, behaviour: BehaviourModel,
                    users: np.ndarray | None = None) -> LoggedContexts:
    """The training log's rows of at most `max_users` of `users` (default: every user; a
    seeded choice), with histories and the `behaviour` model's propensities.

    Items are reward-table columns (`item_columns`); rows of items outside the truth block are
    dropped after the histories are built (an earlier such item appears as -1 in a history).
    """
    log = dataset.train
    frame = pd.DataFrame({"user": log["user"].to_numpy(np.int64), "item": log["item"].to_numpy(np.int64),
                          "label": log["label"].to_numpy(np.float64),
                          "logged": log["propensity"].to_numpy(np.float64) if "propensity" in log.columns
                          else np.ones(len(log)),
                          "t": log["timestamp"].to_numpy() if "timestamp" in log.columns else np.zeros(len(log))})
    pool = np.unique(frame["user"].to_numpy())
    if users is not None:
        pool = np.intersect1d(pool, users)
    if len(pool) > max_users:
        pool = np.sort(np.random.default_rng(seed).choice(pool, max_users, replace=False))
    frame = frame[np.isin(frame["user"].to_numpy(), pool)].sort_values(["user", "t"], kind="stable")
    users_ = frame["user"].to_numpy()
    items = item_columns(dataset)[frame["item"].to_numpy()]
    labels = frame["label"].to_numpy()
    n = len(frame)
    first = np.r_[True, users_[1:] != users_[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    turn = np.arange(n) - start
    history = np.full((n, window), -1, dtype=np.int64)
    feedback = np.zeros((n, window), dtype=np.float32)
    for lag in range(1, window + 1):
        idx = np.nonzero(turn >= lag)[0]
        history[idx, window - lag] = items[idx - lag]
        feedback[idx, window - lag] = labels[idx - lag]
    keep = items >= 0
    pscore = behaviour.pscore(users_[keep], frame["item"].to_numpy()[keep], frame["logged"].to_numpy()[keep])
    return LoggedContexts(users_[keep], items[keep], labels[keep], pscore, history[keep], feedback[keep],
                          turn[keep], behaviour.source)


def _no_estimate(reason: str) -> dict[str, Any]:
    return estimate_columns("", math.nan, math.nan, math.nan, math.nan, True, reason)


def _prefixed(prefix: str, columns: dict[str, Any]) -> dict[str, Any]:
    return {prefix + key: value for key, value in columns.items()}


def off_policy_estimates(policy: Any, dataset: Any, contexts: LoggedContexts, estimators: list[str], cap: float,
                         n_bootstrap: int, seed: int, user_model_table: RewardTable | None) -> dict[str, Any]:
    """`ope_step_<name>` columns of every estimator (`Estimate.columns`), `ope_step_truth` where
    the ground truth is known, `ope_n_contexts` / `ope_n_users`, and with a reward model
    `ope_model_residual`, the mean of reward - prediction on the logged rows (DM / DR / SNDR are
    flagged unreliable when it exceeds `MAX_MODEL_RESIDUAL` standard deviations of the reward).

    Every context user must be a row of `user_model_table` when an estimator needs it, and of the
    ground truth when it exists (`covered_users`); DM / DR / SNDR without a table are reported
    unreliable with that reason.
    """
    if not estimators:
        return {}
    n = len(contexts.users)
    out: dict[str, Any] = {"ope_n_contexts": n, "ope_n_users": int(len(np.unique(contexts.users)))}
    if n == 0:
        for name in estimators:
            out.update(_prefixed(f"{STEP}_{name}", _no_estimate("no logged context of the covered users")))
        return out
    action_prob, v_target, v_truth, q_logged = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    n_columns = len(dataset.truth_items) if dataset.truth is not None else dataset.n_items
    truth = None
    if dataset.truth is not None and np.isfinite(dataset.truth).all():
        truth = np.zeros((dataset.n_users, n_columns), dtype=np.float32)
        truth[dataset.truth_users] = dataset.truth
    table_rows = None
    if user_model_table is not None and user_model_table.shape[1] == n_columns:
        table_rows = np.full(dataset.n_users, -1, dtype=np.int64)
        table_rows[user_model_table.users] = np.arange(len(user_model_table.users))
        if (table_rows[contexts.users] < 0).any():
            table_rows = None
    for start in range(0, n, OPE_CHUNK):
        sl = slice(start, min(start + OPE_CHUNK, n))
        mask = np.ones((sl.stop - sl.start, n_columns), dtype=bool)
        obs = {"user": contexts.users[sl], "history": contexts.history[sl], "feedback": contexts.feedback[sl],
               "mask": mask, "turn": contexts.turn[sl]}
        probs = np.asarray(policy.action_probs(obs, mask), dtype=np.float32)
        action_prob[sl] = probs[np.arange(len(probs)), contexts.items[sl]]
        if truth is not None:
            v_truth[sl] = np.einsum("ij,ij->i", probs, truth[contexts.users[sl]], dtype=np.float64)
        if table_rows is not None and user_model_table is not None:
            q = user_model_table.mean[table_rows[contexts.users[sl]]]
            v_target[sl] = np.einsum("ij,ij->i", probs, q, dtype=np.float64)
            q_logged[sl] = q[np.arange(len(probs)), contexts.items[sl]]
    for name in estimators:
        cls = ESTIMATORS[name]
        kwargs: dict[str, Any] = {"n_bootstrap": n_bootstrap, "seed": seed}
        if "cap" in {f.name for f in dataclasses.fields(cls)}:
            kwargs["cap"] = cap
        if "q_logged" in cls.needs and table_rows is None:
            out.update(_prefixed(f"{STEP}_{name}", _no_estimate("no reward model covers these contexts")))
            continue
        estimate = cls(**kwargs).estimate(contexts.reward, contexts.pscore, action_prob, group=contexts.users,
                                          context=contexts.users, q_logged=q_logged, v_target=v_target,
                                          pscore_source=contexts.pscore_source)
        if cls.needs and not estimate.unreliable:
            estimate = _checked_model(estimate, contexts.reward, q_logged)
        out.update(estimate.columns(f"{STEP}_{name}"))
    if table_rows is not None:
        out["ope_model_residual"] = float(np.mean(contexts.reward - q_logged))
    if truth is not None:
        out[f"{STEP}_truth"] = float(v_truth.mean())
    return out


MAX_MODEL_RESIDUAL = 0.5
"""DM / DR / SNDR are flagged when the reward model's mean residual on the logged rows exceeds this
many standard deviations of the logged reward: the model is then on another scale than the
reward (a user model trained with target-0 negatives predicts E[label] over unseen items too)."""


def _checked_model(estimate: Any, reward: np.ndarray, q_logged: np.ndarray) -> Any:
    """`estimate` flagged unreliable when the reward model is off the logged rewards' scale
    (`MAX_MODEL_RESIDUAL`)."""
    residual, spread = float(np.mean(reward - q_logged)), float(np.std(reward))
    if abs(residual) <= MAX_MODEL_RESIDUAL * spread:
        return estimate
    reason = (f"reward model off the reward's scale (mean residual {residual:.3g} > {MAX_MODEL_RESIDUAL} x "
              f"reward std {spread:.3g})")
    return dataclasses.replace(estimate, unreliable=True, reason=reason)


def random_log_value(policy: Any, dataset: Any, users: np.ndarray, window: int, n_bootstrap: int,
                     seed: int) -> dict[str, Any]:
    """`ope_step_random_log` columns: the policy's first-step value on the random-exposure test
    log of `users` (see the module docstring); {} without a random-exposure test log."""
    if dataset.test is None or kind_of_test_log(dataset) == HELDOUT:
        return {}
    columns = item_columns(dataset)
    test = dataset.test
    rows = np.flatnonzero(np.isin(test["user"].to_numpy(), users) & (columns[test["item"].to_numpy()] >= 0))
    prefix = f"{STEP}_random_log"
    if len(rows) == 0:
        return _prefixed(prefix, _no_estimate("no random test row of the covered users"))
    test_users = test["user"].to_numpy(np.int64)[rows]
    test_items = columns[test["item"].to_numpy()[rows]]
    unique, inverse = np.unique(test_users, return_inverse=True)
    n_columns = len(dataset.truth_items) if dataset.truth is not None else dataset.n_items
    action_prob = np.zeros(len(rows))
    for start in range(0, len(unique), OPE_CHUNK):
        obs, mask = first_step_observations(unique[start:start + OPE_CHUNK], n_columns, window)
        probs = np.asarray(policy.action_probs(obs, mask), dtype=np.float64)
        at = np.flatnonzero((inverse >= start) & (inverse < start + len(probs)))
        action_prob[at] = probs[inverse[at] - start, test_items[at]]
    estimate = SNIPS(n_bootstrap=n_bootstrap, seed=seed).estimate(
        test["label"].to_numpy(np.float64)[rows], np.full(len(rows), 1.0 / n_columns), action_prob,
        group=test_users, pscore_source="uniform (random exposure)")
    return estimate.columns(prefix)
