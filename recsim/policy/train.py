"""One entry point for every method: `run_policy(config, inputs, out_dir) -> PolicyRun`.

The method's preset (`recsim.policy.presets`) decides what runs:

- model-based (mbpo, ips, mopo, dorl, roler, ours): A2C in the penalised simulator over
  `inputs.reward` (with `inputs.uncertainty`'s uncertainty for "ours"), the DORL entropy table
  built from the training log, the dataset's quit rule (`recsim.policy.model_based`);
- offline (bcq, cql, crr, sqn): the log replayed into a buffer (`recsim.policy.offline`);
- static (random, popular, greedy, egreedy, ucb, quit_aware): scores, no training
  (`recsim.policy.static`).

Every run evaluates in the dataset's ground-truth environment when it has one, and writes into
`out_dir`: `config.json` (resolved), `results.json` (final metrics and wall time), `policy.pt`
(the policy, `recsim.policy.storage`) and, for trained methods, `history.json`,
`checkpoints/last.pt` and `tensorboard/`.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from recsim.env import EnvConfig, QuitRule, make_quit_rule
from recsim.errors import ConfigError
from recsim.io import write_json
from recsim.policy.base import Recommender
from recsim.policy.evaluator import EvalConfig, GroundTruthEvaluator, table_item_categories
from recsim.policy.model_based import AgentConfig, ModelBasedConfig, train_model_based
from recsim.policy.offline import OfflineAgentConfig, OfflineConfig, log_transitions, train_offline
from recsim.policy.presets import MethodPreset, budget, method, method_penalty
from recsim.policy.runtime import torch_device
from recsim.policy.static import (EpsilonGreedyRecommender, GreedyRecommender, PopularRecommender,
                                  QuitAwareGreedyRecommender, RandomRecommender, UCBRecommender)
from recsim.policy.storage import save_recommender
from recsim.policy.trackers import TrackerConfig
from recsim.reward.entropy import EntropyConfig, EntropyTable
from recsim.reward.table import RewardTable


@dataclasses.dataclass(frozen=True)
class PolicyRunConfig:
    """A policy run: the method, its budget and the shared settings.

    Attributes:
        preset: the method (`recsim.policy.presets.METHODS`).
        dataset: the dataset name for per-dataset penalty weights (default: the dataset's own).
        budget: "cpu" (minutes) or "paper" (published epochs and steps).
        epochs / epoch_num_steps / num_envs / batch_size / eval_every: budget overrides.
        algorithm: "a2c" or "ppo" (model-based methods).
        tracker: the state tracker of trained methods.
        train_mode: the simulator's mode for model-based methods.
        evaluation: the ground-truth evaluation.
        seed: the run's seed.
        device: "cpu" or "cuda[:n]".
        progress: progress bars (`recsim.progress`).
        torch_threads: torch intra-op threads during training (None: torch's default).
    """

    preset: str
    dataset: str | None = None
    budget: str = "cpu"
    epochs: int | None = None
    epoch_num_steps: int | None = None
    num_envs: int | None = None
    batch_size: int | None = None
    eval_every: int | None = None
    algorithm: str = "a2c"
    tracker: TrackerConfig = dataclasses.field(default_factory=TrackerConfig)
    train_mode: str = "NX_0"
    evaluation: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    torch_threads: int | None = 1

    def __post_init__(self) -> None:
        if isinstance(self.tracker, dict):
            object.__setattr__(self, "tracker", TrackerConfig(**self.tracker))
        if isinstance(self.evaluation, dict):
            object.__setattr__(self, "evaluation", EvalConfig(**self.evaluation))
        method(self.preset)
        if self.budget not in ("cpu", "paper"):
            raise ConfigError(f"PolicyRunConfig.budget: {self.budget!r} is not cpu or paper")
        EnvConfig(mode=self.train_mode)
        torch_device(self.device)

    @property
    def method(self) -> MethodPreset:
        return method(self.preset)


@dataclasses.dataclass
class PolicyInputs:
    """What a run reads.

    Attributes:
        dataset: the `Dataset` (training log, categories, ground truth for evaluation).
        reward: the reward table the method reads (user model, IPS user model or kNN; see the
            preset's `reward`); None for methods without one.
        uncertainty: for "ours", a table whose `uncertainty` (the ensemble's disagreement) replaces
            `reward.uncertainty`.
        item_embeddings: float32 (dataset n_items, d) item embeddings of the user model (indexed
            by dataset item id) to initialise the tracker; None = learned from scratch.
    """

    dataset: Any
    reward: RewardTable | None = None
    uncertainty: RewardTable | None = None
    item_embeddings: np.ndarray | None = None


@dataclasses.dataclass
class PolicyRun:
    """The outcome of `run_policy`: the policy, its final metrics, history and wall time."""

    name: str
    recommender: Recommender
    metrics: dict[str, float]
    history: list[dict[str, Any]]
    wall_seconds: float
    out_dir: Path


def simulator_table(preset: MethodPreset, inputs: PolicyInputs) -> RewardTable:
    """The table the simulator (or a scorer) reads, with the preset's uncertainty."""
    if inputs.reward is None:
        raise ConfigError(f"method {preset.name!r} needs a reward table ({preset.reward})")
    table = inputs.reward
    if preset.uncertainty == "user_model_disagreement":
        if inputs.uncertainty is None:
            raise ConfigError(f"method {preset.name!r} needs the user model's disagreement table (--user-model)")
        other = inputs.uncertainty
        if not (np.array_equal(other.users, table.users) and np.array_equal(other.items, table.items)):
            raise ConfigError("the uncertainty table's users / items differ from the reward table's")
        table = RewardTable(table.mean, other.uncertainty, table.users, table.items,
                            f"{table.kind}+uncertainty:{other.kind}")
    return table


def _embeddings_for(inputs: PolicyInputs, columns: np.ndarray) -> np.ndarray | None:
    if inputs.item_embeddings is None:
        return None
    return np.asarray(inputs.item_embeddings, dtype=np.float32)[np.asarray(columns, dtype=np.int64)]


def _column_table(inputs: PolicyInputs) -> RewardTable:
    """The table whose columns are the action ids: the reward table, else the ground truth."""
    if inputs.reward is not None:
        return inputs.reward
    from recsim.policy.evaluator import ground_truth_table

    return ground_truth_table(inputs.dataset)


def run_policy(config: PolicyRunConfig, inputs: PolicyInputs, out_dir: str | os.PathLike,
               resume: bool = False) -> PolicyRun:
    """Train (if the method trains) and evaluate one method; write its artifacts into `out_dir`."""
    preset = config.method
    dataset = inputs.dataset
    dataset_name = (config.dataset or dataset.name).lower()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    evaluator = GroundTruthEvaluator(dataset, config.evaluation) if dataset.truth is not None else None
    provenance = {"run": config, "dataset": {"name": dataset.name, "n_users": dataset.n_users,
                                             "n_items": dataset.n_items}}
    start = time.perf_counter()
    if preset.family == "static":
        rule = _environment_quit_rule(preset, inputs, config, evaluator) if preset.name == "quit_aware" else None
        recommender = static_recommender(preset, inputs, config.seed, rule)
        metrics = evaluator.evaluate(recommender, config.device, config.seed) if evaluator is not None else {}
        write_json(out / "config.json", provenance)
        run = PolicyRun(preset.name, recommender, metrics, [], time.perf_counter() - start, out)
    else:
        overrides = dict(epochs=config.epochs, epoch_num_steps=config.epoch_num_steps, num_envs=config.num_envs,
                         batch_size=config.batch_size, eval_every=config.eval_every,
                         eval_episodes=config.evaluation.episodes)
        run_budget = budget(config.budget, preset.family, **overrides)
        if preset.family == "model_based":
            table = simulator_table(preset, inputs)
            categories = table_item_categories(dataset, table)
            quit_rule = make_quit_rule(config.evaluation.quit, item_categories=categories, truth=table.mean)
            penalty = method_penalty(preset, dataset_name)
            entropy = entropy_table(dataset, table, penalty.entropy_orders) if penalty.uses_entropy else None
            mb_config = ModelBasedConfig(method=preset.name, penalty=penalty, budget=run_budget,
                                         agent=AgentConfig(algorithm=config.algorithm, tracker=config.tracker),
                                         train_mode=config.train_mode, evaluation=config.evaluation, seed=config.seed,
                                         device=config.device, progress=config.progress,
                                         torch_threads=config.torch_threads)
            result = train_model_based(mb_config, table, quit_rule, out, entropy=entropy, evaluator=evaluator,
                                       item_embeddings=_embeddings_for(inputs, table.items), resume=resume,
                                       extra_config=provenance)
        else:
            table = _column_table(inputs)
            categories = table_item_categories(dataset, table)
            quit_rule = make_quit_rule(config.evaluation.quit, item_categories=categories, truth=table.mean)
            transitions = log_transitions(dataset, table, quit_rule, config.evaluation.env_config(config.train_mode))
            agent = OfflineAgentConfig(algorithm=preset.name, tracker=config.tracker,
                                       **{k: v for k, v in preset.params.items()})
            off_config = OfflineConfig(method=preset.name, budget=run_budget, agent=agent, evaluation=config.evaluation,
                                       seed=config.seed, device=config.device, progress=config.progress,
                                       torch_threads=config.torch_threads)
            result = train_offline(off_config, transitions, table.shape[1], out, evaluator=evaluator,
                                   item_embeddings=_embeddings_for(inputs, table.items), resume=resume,
                                   extra_config=provenance)
        run = PolicyRun(preset.name, result.recommender, result.final, result.history, time.perf_counter() - start, out)
    save_recommender(run.recommender, out)
    write_json(out / "results.json", {"method": preset.name, "family": preset.family, "metrics": run.metrics,
                                      "wall_seconds": run.wall_seconds, "seed": config.seed})
    return run


def entropy_table(dataset, table: RewardTable, orders: tuple[int, ...]) -> EntropyTable:
    """DORL's entropy table of the training log over the table's item columns (corrected flaw)."""
    column_of_item = np.full(dataset.n_items, -1, dtype=np.int64)
    column_of_item[np.asarray(table.items, dtype=np.int64)] = np.arange(table.shape[1])
    log = dataset.train
    columns = column_of_item[log["item"].to_numpy(np.int64)]
    keep = columns >= 0
    frame = log.loc[keep, [c for c in ("user", "timestamp") if c in log.columns]].copy()
    frame["item"] = columns[keep]
    return EntropyTable.from_log(frame, table.shape[1], EntropyConfig(orders=orders))


def _environment_quit_rule(preset: MethodPreset, inputs: PolicyInputs, config: PolicyRunConfig,
                           evaluator: GroundTruthEvaluator | None) -> QuitRule:
    """The evaluation environment's quit rule, else the simulator's over the method's table."""
    if evaluator is not None:
        return evaluator.quit_rule
    table = simulator_table(preset, inputs)
    return make_quit_rule(config.evaluation.quit, item_categories=table_item_categories(inputs.dataset, table),
                          truth=table.mean)


def static_recommender(preset: MethodPreset, inputs: PolicyInputs, seed: int,
                       quit_rule: QuitRule | None = None) -> Recommender:
    """The static baseline `preset` over the inputs (`quit_rule`: the environment's, for quit_aware)."""
    if preset.name == "random":
        return RandomRecommender(seed)
    if preset.name == "popular":
        dataset = inputs.dataset
        table = _column_table(inputs)
        column_of_item = np.full(dataset.n_items, -1, dtype=np.int64)
        column_of_item[np.asarray(table.items, dtype=np.int64)] = np.arange(table.shape[1])
        return PopularRecommender(column_of_item[dataset.train["item"].to_numpy(np.int64)],
                                  dataset.train["label"].to_numpy(), table.shape[1])
    table = simulator_table(preset, inputs)
    if preset.name == "greedy":
        return GreedyRecommender(table)
    if preset.name == "egreedy":
        return EpsilonGreedyRecommender(table, float(preset.params.get("epsilon", 0.3)), seed)
    if preset.name == "ucb":
        return UCBRecommender(table, float(preset.params.get("c", 1.0)))
    if preset.name == "quit_aware":
        if quit_rule is None:
            raise ConfigError("method 'quit_aware' needs the environment's quit rule")
        return QuitAwareGreedyRecommender(table, quit_rule)
    raise ConfigError(f"static method {preset.name!r} has no recommender")
