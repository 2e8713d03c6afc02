"""The evaluation stage of one method: the online evaluation in every mode, then the log's.

Rollouts use the one online evaluator (`recsim.evaluation.online.OnlineEvaluator`) with the
spec's `EvalConfig` in each of its `modes`; the first-step ranking metrics and the off-policy
estimates come from `recsim.evaluation.logged` and are shared by every mode's row.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from recsim.evaluation.episode_ope import episode_estimates
from recsim.evaluation.logged import logged_contexts, off_policy_estimates, ranking_metrics
from recsim.evaluation.online import OnlineEvaluator
from recsim.evaluation.rollout import EpisodeLog
from recsim.pipeline.spec import EvaluationSpec
from recsim.reward.table import RewardTable


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
        user_model_table: the user model's table, for DM / DR (None: those estimates are NaN).
    """
    window = config.env.history_window
    shared: dict[str, Any] = ranking_metrics(policy, dataset, evaluation.ndcg_k, window)
    if evaluation.ope:
        contexts = logged_contexts(dataset, window, evaluation.ope_max_users, evaluation.seed)
        shared.update(off_policy_estimates(policy, dataset, contexts, evaluation.ope, evaluation.ope_cap,
                                           evaluation.n_bootstrap, evaluation.seed, user_model_table))
        shared["ope_pscore_source"] = contexts.pscore_source
    if dataset.truth is None:
        return [{"mode": "offline", **shared, **episode_values(policy, dataset, config, evaluation,
                                                             user_model_table, evaluation.modes[0])}], {}
    evaluator = OnlineEvaluator(dataset, evaluation.online(evaluation.modes[0]), config.env, config.quit)
    rows, logs = [], {}
    for mode in evaluation.modes:
        in_mode = evaluator.in_mode(mode)
        log = in_mode.rollout(policy, config.seed, config.device, progress)
        rows.append({"mode": mode, **in_mode.metrics(log), **shared,
                     **episode_values(policy, dataset, config, evaluation, user_model_table, mode)})
        logs[mode] = log
    return rows, logs


# -- episode-value estimates (recsim.evaluation.episode_ope): R_tra from the log, one set per mode
def episode_values(policy: Any, dataset: Any, config: Any, evaluation: EvaluationSpec,
                   user_model_table: RewardTable | None, mode: str) -> dict[str, float]:
    """`ope_rtra_*` of the policy in `mode` when the spec asks for off-policy estimates."""
    if not evaluation.ope:
        return {}
    return episode_estimates(policy, dataset, dataclasses.replace(config.env, mode=mode), config.quit,
                             user_model_table, cap=evaluation.ope_cap, n_bootstrap=evaluation.n_bootstrap,
                             seed=evaluation.seed, max_users=evaluation.ope_max_users, run_seed=config.seed)
