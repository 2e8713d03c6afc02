"""The ground-truth evaluation of a policy during and after training (docs/protocol.md).

`GroundTruthEvaluator` builds a dataset's ground-truth environment (its truth matrix, the
dataset's quit rule, NX_0 by default) and rolls a policy out with the evaluation's one rollout
(`recsim.evaluation.rollout.rollout`: a fixed, seeded set of users shared by every method), then
reduces the episodes with `recsim.evaluation.rollout.summarise`:

- R_tra: mean cumulative true reward per episode (with a bootstrap interval); length: mean
  episode length; R_each = R_tra / length (ratio of the means, as published);
- MCD: share of recommended items carrying a dominating category, the dominating categories
  taken from the training log's positives over the table's item columns;
- Gini, coverage, category entropy, quit rate; and R_tra_std, the std of returns over episodes.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from recsim.env import EnvConfig, QuitRuleConfig, make_quit_rule
from recsim.errors import ConfigError
from recsim.evaluation.exposure import dominating_categories
from recsim.evaluation.rollout import EpisodeLog, rollout, summarise
from recsim.policy.base import Recommender
from recsim.reward.table import RewardTable


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How policies are evaluated in the ground-truth environment.

    Attributes:
        mode: evaluation mode (published table: NX_0).
        episodes: episodes per evaluation (published: 100 test envs).
        max_turn: episode limit (published 30).
        history_window: observation window W (>= the tracker's window).
        quit: the quit rule (KuaiRec / KuaiRand paper logs: category overlap, N = 4, threshold 0).
        dominating_share: the MCD cumulative share (published 0.8).
        positive_threshold: training rows with label above it count as positives for MCD.
        seed: seed of the evaluation users (shared by every method); a policy's sampling is
            seeded by its run's seed.
    """

    mode: str = "NX_0"
    episodes: int = 100
    max_turn: int = 30
    history_window: int = 10
    quit: QuitRuleConfig = dataclasses.field(default_factory=QuitRuleConfig)
    dominating_share: float = 0.8
    positive_threshold: float = 0.0
    seed: int = 12345

    def __post_init__(self) -> None:
        if isinstance(self.quit, dict):
            object.__setattr__(self, "quit", QuitRuleConfig(**self.quit))
        if self.episodes < 1:
            raise ConfigError(f"EvalConfig.episodes: must be >= 1, got {self.episodes}")
        if not 0 < self.dominating_share <= 1:
            raise ConfigError(f"EvalConfig.dominating_share: must lie in (0, 1], got {self.dominating_share}")
        EnvConfig(max_turn=self.max_turn, history_window=self.history_window, mode=self.mode)

    def env_config(self, mode: str | None = None) -> EnvConfig:
        return EnvConfig(max_turn=self.max_turn, history_window=self.history_window, mode=mode or self.mode)


def table_item_categories(dataset, table: RewardTable) -> np.ndarray:
    """bool (n_table_items, n_categories): the categories of the table's item columns."""
    return np.asarray(dataset.item_categories, dtype=bool)[np.asarray(table.items, dtype=np.int64)]


def ground_truth_table(dataset) -> RewardTable:
    """The dataset's ground truth as a `RewardTable` (rows truth_users, columns truth_items)."""
    if dataset.truth is None:
        raise ConfigError(f"dataset {dataset.name!r} has no ground truth; it cannot be evaluated online")
    return RewardTable.from_truth(dataset.truth, dataset.truth_users, dataset.truth_items)


class GroundTruthEvaluator:
    """The ground-truth environment of a dataset and the published metrics of a policy in it.

    Args:
        dataset: a `Dataset` with `truth`.
        config: evaluation settings.
    """

    def __init__(self, dataset, config: EvalConfig | None = None) -> None:
        self.config = config or EvalConfig()
        self.table = ground_truth_table(dataset)
        self.item_categories = table_item_categories(dataset, self.table)
        self.quit_rule = make_quit_rule(self.config.quit, item_categories=self.item_categories,
                                        truth=self.table.mean)
        column_of_item = np.full(dataset.n_items, -1, dtype=np.int64)
        column_of_item[self.table.items] = np.arange(len(self.table.items))
        train_columns = column_of_item[dataset.train["item"].to_numpy(np.int64)]
        keep = train_columns >= 0
        self.dominating = dominating_categories(train_columns[keep], dataset.train["label"].to_numpy()[keep],
                                                self.item_categories, self.config.dominating_share,
                                                self.config.positive_threshold)

    @property
    def n_items(self) -> int:
        return self.table.shape[1]

    def rollout(self, recommender: Recommender, device: str = "cpu", policy_seed: int | None = None) -> EpisodeLog:
        """Episodes of the evaluation users (`config.seed`); the policy samples from `policy_seed`."""
        return rollout(recommender, self.table, self.config.mode, self.quit_rule, self.config.episodes,
                       user_seed=self.config.seed, env_config=self.config.env_config(), policy_seed=policy_seed,
                       device=device)

    def metrics(self, episodes: EpisodeLog) -> dict[str, float]:
        """`summarise`'s metrics of the episodes plus R_tra_std (std of returns over episodes)."""
        metrics = summarise(episodes, self.item_categories, self.dominating)
        metrics["R_tra_std"] = float(episodes.returns.std())
        return metrics

    def evaluate(self, recommender: Recommender, device: str = "cpu",
                 policy_seed: int | None = None) -> dict[str, float]:
        """Roll the policy out in the ground-truth environment and return `metrics`."""
        return self.metrics(self.rollout(recommender, device, policy_seed))
