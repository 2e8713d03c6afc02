"""The evaluation stage of one trained method: rollouts in the ground truth, NDCG and OPE.

- Rollouts: `recsim.evaluation.rollout` in every configured mode over the ground-truth table
  (the dataset's truth block), with the dataset's quit rule.
- Ranking: the policy's first-step ranking (empty history) of every truth user, NDCG@k and
  Recall@k against the ground truth (or, without one, against the held-out test log's items).
  A policy ranks by `scores(users)` when it has one, else by `action_probs(observations, mask)`.
- Off-policy estimates (`recsim.evaluation.ope`) of the per-step value of the policy on the
  logged contexts: each logged row becomes the observation the policy would have seen (the
  user's earlier logged items and their labels, the last W of them), and the target probability
  of the logged item is read from `action_probs`. Behaviour propensities: the log's own
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

from recsim.env.config import EnvConfig
from recsim.env.quit_rules import QuitRuleConfig, make_quit_rule
from recsim.evaluation import ranking
from recsim.evaluation.ope import ESTIMATORS
from recsim.evaluation.rollout import EpisodeLog, dominating_from_dataset, rollout, summarise
from recsim.reward.table import RewardTable
from recsim.seeding import child_seeds

OPE_CHUNK = 4096


def truth_table(dataset: Any) -> RewardTable:
    """The ground-truth reward table (NaN cells count as reward 0)."""
    if dataset.truth is None:
        from recsim.errors import DataError

        raise DataError(dataset.name, "truth", "online evaluation needs a ground-truth matrix")
    return RewardTable.from_truth(dataset.truth, dataset.truth_users, dataset.truth_items)


def quit_rule_for(dataset: Any, quit: dict[str, Any], fallback: np.ndarray | None = None):
    """The quit rule `quit` over the reward-table columns; the distance rule reads the ground
    truth, or `fallback` (a users x items matrix, e.g. the simulator's reward mean) without one."""
    config = QuitRuleConfig(**quit)
    truth = (dataset.truth if dataset.truth is not None else fallback) if config.kind == "distance" else None
    categories = dataset.item_categories[dataset.truth_items] if dataset.truth is not None else dataset.item_categories
    return make_quit_rule(config, item_categories=categories, truth=truth)


def first_step_observations(users: np.ndarray, n_items: int, window: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    n = len(users)
    mask = np.ones((n, n_items), dtype=bool)
    obs = {"user": np.asarray(users, np.int64), "history": np.full((n, window), -1, np.int64),
           "feedback": np.zeros((n, window), np.float32), "mask": mask, "turn": np.zeros(n, np.int64)}
    return obs, mask


def policy_scores(policy: Any, users: np.ndarray, n_items: int, window: int) -> np.ndarray | None:
    """float (n_users, n_items) first-step scores of `policy`, or None if it exposes none.

    In order of preference: `ranking_scores(observations, mask)`, `scores(users)`, then
    `action_probs(observations, mask)`.
    """
    if hasattr(policy, "ranking_scores"):
        parts = []
        for start in range(0, len(users), OPE_CHUNK):
            obs, mask = first_step_observations(users[start:start + OPE_CHUNK], n_items, window)
            part = policy.ranking_scores(obs, mask)
            if part is None:
                break
            parts.append(np.asarray(part, dtype=np.float64))
        else:
            return np.concatenate(parts) if parts else None
    if hasattr(policy, "scores"):
        scores = np.asarray(policy.scores(users))
        if scores.shape == (len(users), n_items):
            return scores
    if hasattr(policy, "action_probs"):
        parts = []
        for start in range(0, len(users), OPE_CHUNK):
            obs, mask = first_step_observations(users[start:start + OPE_CHUNK], n_items, window)
            parts.append(np.asarray(policy.action_probs(obs, mask), dtype=np.float64))
        return np.concatenate(parts)
    return None


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
    for k in ks:
        if scores is None:
            out[f"ndcg@{k}"] = out[f"recall@{k}"] = math.nan
            continue
        out[f"ndcg@{k}"] = ranking.ndcg_at_k(scores, relevance, k, mask)
        # Recall needs binary relevance: items above the user's mean relevance count as relevant.
        binary = (relevance > np.nanmean(np.where(mask, relevance, np.nan), axis=1, keepdims=True)) & mask
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
    if not estimators or not hasattr(policy, "action_probs"):
        return {f"ope_{name}": math.nan for name in estimators}
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
        if has_truth:
            v_truth[sl] = np.einsum("ij,ij->i", probs, truth[contexts.users[sl]], dtype=np.float64)
        if table_rows is not None:
            q = user_model_table.mean[table_rows[contexts.users[sl]]]
            v_target[sl] = np.einsum("ij,ij->i", probs, q, dtype=np.float64)
            q_logged[sl] = q[np.arange(len(probs)), contexts.items[sl]]
    out: dict[str, float] = {}
    for name in estimators:
        cls = ESTIMATORS[name]
        kwargs = {"n_bootstrap": n_bootstrap, "seed": seed}
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


def evaluate_policy(policy: Any, dataset: Any, spec: Any, env: dict[str, Any], quit: dict[str, Any],
                    user_model_table: RewardTable | None, run_seed: int = 0, progress: bool = False
                    ) -> tuple[list[dict[str, Any]], dict[str, EpisodeLog]]:
    """Rows of metrics (one per mode) and the episode logs of one policy.

    Without a ground truth there is nothing to roll out in: one row of mode "offline" holds the
    ranking metrics (against the test log) and the off-policy estimates.

    Args:
        policy: the trained policy (`act`, optionally `scores` / `action_probs`).
        dataset: the `Dataset` (with a ground truth for the rollouts).
        spec: the `EvaluationSpec`.
        env, quit: `EnvConfig` / `QuitRuleConfig` overrides.
        user_model_table: the user model's table, for DM / DR (None: those estimates are NaN).
        run_seed: seeds a stochastic policy's sampling (with `spec.user_seed`), so run seeds
            differ in the policy's draws while every run meets the same users.
    """
    env_config = EnvConfig(**env)
    shared = ranking_metrics(policy, dataset, spec.ndcg_k, env_config.history_window)
    if spec.ope:
        contexts = logged_contexts(dataset, env_config.history_window, spec.ope_max_users, spec.user_seed)
        shared.update(off_policy_estimates(policy, dataset, contexts, spec.ope, spec.ope_cap, spec.n_bootstrap,
                                           spec.user_seed, user_model_table))
        shared["ope_pscore_source"] = contexts.pscore_source
    if dataset.truth is None:
        return [{"mode": "offline", **shared}], {}
    table = truth_table(dataset)
    quit_rule = quit_rule_for(dataset, quit)
    categories = dataset.item_categories[dataset.truth_items]
    dominating = dominating_from_dataset(dataset, spec.mcd_share)
    rows, logs = [], {}
    for mode in spec.modes:
        log = rollout(policy, table, mode, quit_rule, spec.n_episodes, spec.user_seed, env_config,
                      spec.batch_size, progress, policy_seed=child_seeds(spec.user_seed, run_seed + 1)[run_seed])
        metrics = summarise(log, categories, dominating, spec.n_bootstrap, spec.user_seed)
        rows.append({"mode": mode, **{k: float(v) for k, v in metrics.items()}, **shared})
        logs[mode] = log
    return rows, logs
