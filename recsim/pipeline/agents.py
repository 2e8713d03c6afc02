"""Adapters from `recsim.policy` (trained agents and static baselines) to pipeline algorithms.

- Model-based ("a2c", "ppo"): a policy trained in the penalised simulator over the method's
  reward table (`recsim.policy.model_based.train_model_based`). The method's penalty is its
  preset's (`preset`, default the method's name: mbpo, ips, mopo, dorl, roler, ours) with the
  spec's `penalty` overrides, so a sweep can vary lambda_U / lambda_E.
- Offline ("bcq", "cql", "crr", "sqn"): tianshou's discrete offline algorithms (SQN built on its
  public classes) on the training log replayed into a buffer (`recsim.policy.offline`); the
  method's reward table (the user model's) only fixes the action columns and the tracker's
  initial item embeddings.
- Static ("egreedy", "ucb", "greedy", "quit_aware", "popular", "random"): `recsim.policy.static`;
  greedy reads the method's reward table (the user model's or the kNN table).

Trained agents evaluate in the ground-truth environment during training (NX_0, the training
curve of the report). The trained policy is stored whole (`recsim.policy.storage`, `policy.pt`)
and loaded by the evaluation stage. Every policy is wrapped in `PipelinePolicy`, which adds the
`action_probs(observations, mask)` the off-policy estimators and NDCG need.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from recsim.io import read_json, write_json
from recsim.pipeline.methods import Algorithm, MethodContext

BUDGET_FIELDS = ("budget", "epochs", "epoch_num_steps", "num_envs", "episodes_per_collect", "batch_size",
                 "eval_every", "eval_episodes")
COMMON_FIELDS = (*BUDGET_FIELDS, "train_mode", "tracker", "device")
MODEL_BASED_AGENT = ("hidden_sizes", "lr", "gamma", "gae_lambda", "vf_coef", "ent_coef", "max_grad_norm", "repeat",
                     "eps_clip", "deterministic_eval")
OFFLINE_AGENT = ("hidden_sizes", "lr", "gamma", "target_update_freq", "unlikely_action_threshold",
                 "imitation_logits_penalty", "num_quantiles", "min_q_weight", "crr_mode")


class PipelinePolicy:
    """A `recsim.policy` recommender with `action_probs` (the target policy's distribution).

    `action_probs(observations, mask)` -> float32 (B, n_items): for a tianshou policy with an
    action distribution, its probabilities (masked items 0), else probability 1 on the item
    `act` picks; epsilon-greedy mixes its greedy item with the uniform distribution over the
    allowed items; a random policy is uniform over them.
    """

    def __init__(self, recommender: Any) -> None:
        self.recommender = recommender
        self.name = getattr(recommender, "name", "policy")

    def reseed(self, seed: int) -> None:
        reseed = getattr(self.recommender, "reseed", None)
        if callable(reseed):
            reseed(seed)

    def act(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        return self.recommender.act(observations, mask)

    def ranking_scores(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray | None:
        """float (B, n_items) item scores to rank by (NDCG): a scorer's scores, a tianshou policy's
        logits or Q-values (quantiles averaged); None for a random policy."""
        from recsim.policy.static import ScoreRecommender

        rec = self.recommender
        if isinstance(rec, ScoreRecommender):
            return np.asarray(rec.user_scores(observations["user"]), dtype=np.float64)
        result = _tianshou_forward(rec, observations, mask)
        logits = getattr(result, "logits", None) if result is not None else None
        if logits is None:
            return None
        scores = logits.detach().cpu().numpy() if hasattr(logits, "detach") else np.asarray(logits)
        return (scores.mean(axis=2) if scores.ndim == 3 else scores).astype(np.float64)

    def action_probs(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        from recsim.policy.static import EpsilonGreedyRecommender, RandomRecommender, ScoreRecommender

        mask = np.asarray(mask, dtype=bool)
        rec = self.recommender
        if isinstance(rec, (RandomRecommender, EpsilonGreedyRecommender)):
            uniform = mask / np.maximum(mask.sum(axis=1, keepdims=True), 1).astype(np.float32)
        if isinstance(rec, RandomRecommender):
            return uniform
        if isinstance(rec, ScoreRecommender):
            scores = np.where(mask, rec.user_scores(observations["user"]), -np.inf)
            greedy = np.zeros(mask.shape, dtype=np.float32)
            greedy[np.arange(len(mask)), scores.argmax(axis=1)] = 1.0
            if isinstance(rec, EpsilonGreedyRecommender):
                return (1.0 - rec.epsilon) * greedy + rec.epsilon * uniform
            return greedy
        probs = _tianshou_probs(rec, observations, mask)
        if probs is not None:
            return probs
        onehot = np.zeros(mask.shape, dtype=np.float32)
        onehot[np.arange(len(mask)), self.act(observations, mask)] = 1.0
        return onehot


def _tianshou_forward(rec: Any, observations: dict[str, np.ndarray], mask: np.ndarray) -> Any:
    """The tianshou policy's output batch in eval mode (None if `rec` is not a tianshou policy)."""
    import torch

    from recsim.policy.base import TianshouRecommender, observation_batch

    if not isinstance(rec, TianshouRecommender):
        return None
    obs = rec.feedback_scale.observations(observations) if rec.feedback_scale is not None else observations
    was_training = rec.policy.training
    rec.policy.eval()
    try:
        with torch.no_grad():
            return rec.policy(observation_batch(obs, mask))
    finally:
        rec.policy.train(was_training)


def _tianshou_probs(rec: Any, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray | None:
    """The action distribution of a stochastic tianshou actor policy, or None for other policies.

    Reads the actor's masked logits and applies the softmax (no action is sampled).
    """
    import torch

    from recsim.policy.base import TianshouRecommender, observation_batch

    if not isinstance(rec, TianshouRecommender) or getattr(rec.policy, "deterministic_eval", True):
        return None
    actor = getattr(rec.policy, "actor", None)
    if actor is None:
        return None
    obs = rec.feedback_scale.observations(observations) if rec.feedback_scale is not None else observations
    was_training = rec.policy.training
    rec.policy.eval()
    try:
        with torch.no_grad():
            logits, _ = actor(observation_batch(obs, mask).obs)
            probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    finally:
        rec.policy.train(was_training)
    probs[~np.asarray(mask, dtype=bool)] = 0.0
    return probs / np.maximum(probs.sum(axis=1, keepdims=True), np.float32(1e-30))


# ----------------------------------------------------------------------------- settings


def _split(params: dict[str, Any], agent_fields: tuple[str, ...]) -> tuple[dict, dict, dict]:
    budget = {k: params[k] for k in BUDGET_FIELDS if k in params and k != "budget"}
    agent = {k: params[k] for k in agent_fields if k in params}
    common = {k: params[k] for k in ("train_mode", "tracker", "device") if k in params}
    return budget, agent, common


def _eval_config(context: MethodContext, episodes: int):
    from recsim.env.quit_rules import QuitRuleConfig
    from recsim.policy.evaluator import EvalConfig

    env = context.env
    return EvalConfig(mode="NX_0", episodes=episodes, max_turn=env.get("max_turn", 30),
                      history_window=env.get("history_window", 10), quit=QuitRuleConfig(**context.quit),
                      seed=context.seed)


def _tracker(common: dict[str, Any]):
    from recsim.policy.trackers import TrackerConfig

    return TrackerConfig(**common.get("tracker", {}))


def _item_embeddings(context: MethodContext, columns: np.ndarray) -> np.ndarray | None:
    if context.user_model_dir is None:
        return None
    with np.load(Path(context.user_model_dir) / "embeddings.npz") as z:
        return z["item"][np.asarray(columns, dtype=np.int64)].astype(np.float32)


def _save(result: Any, out: Path, history: list[dict[str, Any]], resolved: dict[str, Any]) -> dict[str, Any]:
    from recsim.policy.storage import save_recommender

    save_recommender(result.recommender, out)
    curve = [(h["epoch"], h["R_tra"]) for h in history if "R_tra" in h]
    write_json(out / "training_curve.json", {"x": [c[0] for c in curve], "y": [c[1] for c in curve],
                                             "x_label": "epoch", "y_label": "R_tra (ground truth, NX_0)"})
    write_json(out / "history.json", history)
    shutil.rmtree(out / "agent", ignore_errors=True)  # checkpoints and tensorboard logs: not results
    return resolved


def _load_trained(context: MethodContext, directory: Path) -> PipelinePolicy:
    from recsim.policy.storage import load_recommender

    return PipelinePolicy(load_recommender(directory))


# ----------------------------------------------------------------------------- model-based


def _penalty(context: MethodContext):
    from recsim.policy.presets import method as preset_of
    from recsim.policy.presets import method_penalty

    base = method_penalty(preset_of(context.method.preset or context.method.name), context.dataset.name)
    return dataclasses.replace(base, **context.method.penalty)


def _train_model_based(algorithm: str):
    def train(context: MethodContext, out: Path) -> dict[str, Any]:
        from recsim.pipeline.evaluate import quit_rule_for
        from recsim.policy.evaluator import GroundTruthEvaluator
        from recsim.policy.model_based import AgentConfig, ModelBasedConfig, train_model_based
        from recsim.policy.presets import budget
        from recsim.policy.train import entropy_table

        params = dict(context.method.params)
        budget_overrides, agent, common = _split(params, MODEL_BASED_AGENT)
        penalty = _penalty(context)
        evaluation = _eval_config(context, budget_overrides.get("eval_episodes", 100))
        run_budget = budget(params.get("budget", "cpu"), "model_based", **budget_overrides)
        config = ModelBasedConfig(method=context.method.name, penalty=penalty, budget=run_budget,
                                  agent=AgentConfig(algorithm=algorithm, tracker=_tracker(common), **agent),
                                  train_mode=common.get("train_mode", "NX_0"), evaluation=evaluation,
                                  seed=context.seed, device=common.get("device", "cpu"), progress=context.progress)
        table = context.table
        entropy = entropy_table(context.dataset, table, penalty.entropy_orders) if penalty.uses_entropy else None
        evaluator = GroundTruthEvaluator(context.dataset, evaluation) if context.dataset.truth is not None else None
        quit_rule = quit_rule_for(context.dataset, context.quit, table.mean)
        result = train_model_based(config, table, quit_rule, out / "agent",
                                   entropy=entropy, evaluator=evaluator,
                                   item_embeddings=_item_embeddings(context, table.items))
        return _save(result, out, result.history, {"model_based": read_json(out / "agent" / "config.json")})

    return train


# ----------------------------------------------------------------------------- offline


def _train_offline(algorithm: str):
    def train(context: MethodContext, out: Path) -> dict[str, Any]:
        from recsim.pipeline.evaluate import quit_rule_for
        from recsim.policy.evaluator import GroundTruthEvaluator
        from recsim.policy.offline import OfflineAgentConfig, OfflineConfig, log_transitions, train_offline
        from recsim.policy.presets import budget
        from recsim.policy.presets import method as preset_of

        params = dict(context.method.params)
        budget_overrides, agent, common = _split(params, OFFLINE_AGENT)
        preset_params = dict(preset_of(algorithm).params)
        preset_params.update(agent)
        evaluation = _eval_config(context, budget_overrides.get("eval_episodes", 100))
        run_budget = budget(params.get("budget", "cpu"), "offline", **budget_overrides)
        table = context.table  # the user model's: its columns are the actions
        train_mode = common.get("train_mode", "NX_0")
        transitions = log_transitions(context.dataset, table, quit_rule_for(context.dataset, context.quit, table.mean),
                                      evaluation.env_config(train_mode))
        config = OfflineConfig(method=context.method.name, budget=run_budget,
                               agent=OfflineAgentConfig(algorithm=algorithm, tracker=_tracker(common), **preset_params),
                               evaluation=evaluation, seed=context.seed, device=common.get("device", "cpu"),
                               progress=context.progress)
        evaluator = GroundTruthEvaluator(context.dataset, evaluation) if context.dataset.truth is not None else None
        result = train_offline(config, transitions, table.shape[1], out / "agent", evaluator=evaluator,
                               item_embeddings=_item_embeddings(context, table.items))
        return _save(result, out, result.history, {"offline": read_json(out / "agent" / "config.json")})

    return train


# ----------------------------------------------------------------------------- static


def _static(kind: str):
    def train(context: MethodContext, out: Path) -> dict[str, Any]:
        config = {"algorithm": kind, "params": dict(context.method.params), "seed": context.seed}
        write_json(out / "policy.json", config)
        return config

    def load(context: MethodContext, directory: Path) -> PipelinePolicy:
        from recsim.policy import static

        params = context.method.params
        if kind == "random":
            return PipelinePolicy(static.RandomRecommender(context.seed))
        if kind == "greedy":
            return PipelinePolicy(static.GreedyRecommender(context.table))
        if kind == "egreedy":
            return PipelinePolicy(static.EpsilonGreedyRecommender(context.table, float(params.get("epsilon", 0.3)),
                                                                  context.seed))
        if kind == "ucb":
            return PipelinePolicy(static.UCBRecommender(context.table, float(params.get("c", 1.0))))
        if kind == "quit_aware":
            from recsim.pipeline.evaluate import quit_rule_for

            rule = quit_rule_for(context.dataset, context.quit, context.table.mean)
            return PipelinePolicy(static.QuitAwareGreedyRecommender(context.table, rule))
        dataset = context.dataset
        columns = np.arange(dataset.n_items)
        if dataset.truth is not None:
            columns = np.full(dataset.n_items, -1, dtype=np.int64)
            columns[dataset.truth_items] = np.arange(len(dataset.truth_items))
        n_columns = len(dataset.truth_items) if dataset.truth is not None else dataset.n_items
        return PipelinePolicy(static.PopularRecommender(columns[dataset.train["item"].to_numpy(np.int64)],
                                                        dataset.train["label"].to_numpy(), n_columns,
                                                        float(params.get("threshold", 0.0))))

    return train, load


def _check_model_based(params: dict[str, Any]) -> None:
    from recsim.env.config import EnvConfig
    from recsim.policy.model_based import AgentConfig
    from recsim.policy.presets import budget

    budget_overrides, agent, common = _split(params, MODEL_BASED_AGENT)
    budget(params.get("budget", "cpu"), "model_based", **budget_overrides)
    AgentConfig(tracker=_tracker(common), **agent)
    EnvConfig(mode=common.get("train_mode", "NX_0"))


def _check_offline(algorithm: str):
    def check(params: dict[str, Any]) -> None:
        from recsim.env.config import EnvConfig
        from recsim.policy.offline import OfflineAgentConfig
        from recsim.policy.presets import budget

        budget_overrides, agent, common = _split(params, OFFLINE_AGENT)
        budget(params.get("budget", "cpu"), "offline", **budget_overrides)
        OfflineAgentConfig(algorithm=algorithm, tracker=_tracker(common), **agent)
        EnvConfig(mode=common.get("train_mode", "NX_0"))

    return check


def _check_available() -> bool:
    try:
        import recsim.policy.train  # noqa: F401
    except ImportError:
        return False
    return True


def _agents() -> dict[str, Algorithm]:
    if not _check_available():
        return {}
    agents: dict[str, Algorithm] = {}
    for name in ("a2c", "ppo"):
        agents[name] = Algorithm(_train_model_based(name), _load_trained, needs_table=True, needs_user_model=True,
                                 uses_penalty=True, params=(*COMMON_FIELDS, *MODEL_BASED_AGENT),
                                 check=_check_model_based)
    for name in ("bcq", "cql", "crr", "sqn"):
        agents[name] = Algorithm(_train_offline(name), _load_trained, needs_table=True, needs_user_model=True,
                                 params=(*COMMON_FIELDS, *OFFLINE_AGENT), check=_check_offline(name))
    train, load = _static("egreedy")
    agents["egreedy"] = Algorithm(train, load, needs_table=True, params=("epsilon",))
    train, load = _static("ucb")
    agents["ucb"] = Algorithm(train, load, needs_table=True, params=("c",))
    train, load = _static("greedy")
    agents["greedy"] = Algorithm(train, load, needs_table=True)
    train, load = _static("quit_aware")
    agents["quit_aware"] = Algorithm(train, load, needs_table=True)
    train, load = _static("popular")
    agents["popular"] = Algorithm(train, load, params=("threshold",))
    train, load = _static("random")
    agents["random"] = Algorithm(train, load)
    return agents


AGENT_ALGORITHMS: dict[str, Algorithm] = _agents()
"""Algorithm name -> how the pipeline trains and loads it (empty when `recsim.policy` is absent)."""

