"""The evaluation stage of one method: the online evaluation in every mode, then the log's.

Rollouts use the one online evaluator (`recsim.evaluation.online.OnlineEvaluator`) with the
spec's `EvalConfig` in each of its `modes`; the first-step ranking metrics, the one-step
off-policy estimates and the value on a random-exposure test log come from
`recsim.evaluation.logged` and are shared by every mode's row.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from recsim.evaluation.episode_ope import episode_estimates
from recsim.evaluation.logged import (
    covered_users,
    logged_contexts,
    off_policy_estimates,
    random_log_value,
    ranking_metrics,
)
from recsim.evaluation.online import OnlineEvaluator
from recsim.evaluation.propensity import BehaviourModel, fit_behaviour
from recsim.evaluation.rollout import EpisodeLog
from recsim.pipeline.spec import EvaluationSpec
from recsim.reward.table import RewardTable


def logged_metrics(policy: Any, dataset: Any, window: int, evaluation: EvaluationSpec,
                   table: RewardTable | None, behaviour: BehaviourModel | None) -> dict[str, Any]:
    """Ranking metrics, one-step off-policy estimates over the covered contexts and the value
    on the random test log (`recsim.evaluation.logged`), with `ope_pscore_source`; `table` is
    the user model's (None where the estimates do not read it), `behaviour` the fitted
    propensity model (None without off-policy estimates)."""
    shared: dict[str, Any] = ranking_metrics(policy, dataset, evaluation.ndcg_k, window)
    if not evaluation.ope or behaviour is None:
        return shared
    users = covered_users(dataset, table, behaviour)
    contexts = logged_contexts(dataset, window, evaluation.ope_max_users, evaluation.seed, behaviour, users)
    shared.update(off_policy_estimates(policy, dataset, contexts, evaluation.ope, evaluation.ope_cap,
                                       evaluation.n_bootstrap, evaluation.seed, table))
    shared["ope_pscore_source"] = contexts.pscore_source
    shared.update(random_log_value(policy, dataset, users, window, evaluation.n_bootstrap, evaluation.seed))
    return shared


def evaluate_method(policy: Any, dataset: Any, config: Any, evaluation: EvaluationSpec,
                    user_model_table: RewardTable | None, progress: bool = False
                    ) -> tuple[list[dict[str, Any]], dict[str, EpisodeLog]]:
    """Rows of metrics (one per mode) and the episode logs of one trained method.

    Without a ground truth there is nothing to roll out in: one row of mode "offline" holds the
    ranking metrics (against the test log) and the off-policy estimates.

    Args:
        policy: the method's `Recommender`.
        dataset: the `Dataset`.
        config: its `MethodConfig` (episode settings, quit rule, run seed).
        evaluation: the spec's evaluation section.
        user_model_table: the user model's table, for DM / DR and user-model propensities (None:
            those estimates are reported unreliable, "no reward model").
    """
    table = user_model_table if evaluation.needs_user_model else None
    behaviour = (fit_behaviour(evaluation.ope_propensity, dataset, table, seed=evaluation.seed)
                 if evaluation.ope or evaluation.ope_episode else None)
    pscore = training_pscore(behaviour, dataset) if behaviour is not None and evaluation.ope_episode else None
    shared = logged_metrics(policy, dataset, config.env.history_window, evaluation, table, behaviour)

    def episode_values(mode: str) -> dict[str, Any]:
        """`ope_rtra_*` of the policy in `mode` (`recsim.evaluation.episode_ope`), with the fitted
        behaviour model and as many model-rollout episodes as the online evaluation runs."""
        if pscore is None or behaviour is None:
            return {}
        return {**episode_estimates(policy, dataset, dataclasses.replace(config.env, mode=mode), config.quit,
                                    table, evaluation.ope_episode, cap=evaluation.ope_cap,
                                    n_bootstrap=evaluation.n_bootstrap, seed=evaluation.seed,
                                    max_users=evaluation.ope_episode_users, stride=evaluation.ope_episode_stride,
                                    model_episodes=evaluation.episodes, run_seed=config.seed, pscore=pscore),
                "ope_pscore_source": behaviour.source}

    if dataset.truth is None:
        return [{"mode": "offline", **shared, **episode_values(evaluation.modes[0])}], {}
    evaluator = OnlineEvaluator(dataset, evaluation.online(evaluation.modes[0]), config.env, config.quit)
    rows, logs = [], {}
    for mode in evaluation.modes:
        in_mode = evaluator.in_mode(mode)
        log = in_mode.rollout(policy, config.seed, config.device, progress)
        rows.append({"mode": mode, **in_mode.metrics(log), **shared, **episode_values(mode)})
        logs[mode] = log
    return rows, logs


def training_pscore(behaviour: BehaviourModel, dataset: Any) -> np.ndarray:
    """float64 (n_train,) pi_b of every training row under `behaviour`. A user-model softmax is
    defined only for the table's users; the rows of other users (never drawn into an episode,
    whose users are the table's) keep the item-popularity share."""
    log = dataset.train
    users, items = log["user"].to_numpy(np.int64), log["item"].to_numpy(np.int64)
    logged = log["propensity"].to_numpy(np.float64) if "propensity" in log.columns else None
    covered = behaviour.covered_users
    if covered is None:
        return behaviour.pscore(users, items, logged)
    out = behaviour.item_share[items].astype(np.float64)
    inside = np.isin(users, covered)
    out[inside] = behaviour.pscore(users[inside], items[inside])
    return out
