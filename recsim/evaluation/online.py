"""The one online evaluation: a policy rolled out in a dataset's ground-truth environment.

Used during training (every `eval_every` epochs), by `recsim policy evaluate` and for the final
table of `recsim run`, so a run's last training epoch and its final row are the same measurement
when they use the same `EvalConfig` (protocol: docs/protocol.md):

- the environment: the dataset's truth matrix with the raw reward (`RewardTable.from_truth`),
  the dataset's quit rule over the truth's columns (`recsim.env.table_quit_rule`), the episode
  settings of an `EnvConfig` with the evaluation's mode;
- the users: `episodes` users drawn from the counter-based sampler seeded with `seed`, the same
  for every method, mode and run seed (`recsim.evaluation.rollout`);
- the policy's own randomness: seeded from (`seed`, the run's seed) by `policy_seed`, so run
  seeds differ in the policy's draws but not in the users they meet;
- the metrics (`recsim.evaluation.rollout.summarise`): R_tra with a bootstrap interval, length,
  R_each, quit rate, MCD, Gini, coverage, category entropy, and R_tra_std (std of the returns
  over episodes). MCD's dominating categories are the training positives' (`dominating_set`);
  without item categories MCD and category entropy are NaN (missing), never 0.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from recsim.env import EnvConfig, QuitRule, QuitRuleConfig, table_quit_rule
from recsim.env.modes import parse_mode
from recsim.errors import ConfigError, DataError
from recsim.evaluation.exposure import dominating_categories
from recsim.evaluation.rollout import EpisodeLog, Policy, rollout, summarise
from recsim.reward.table import RewardTable
from recsim.seeding import child_seeds


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How a policy is evaluated in the ground-truth environment.

    Attributes:
        mode: "FB", "NX_0" (the published table's) or "NX_<k>".
        episodes: evaluation users, one episode each (published: 100 test environments).
        seed: seed of the evaluation users (shared by every method and run seed).
        mcd_share: cumulative share of the training positives that defines MCD's dominating
            categories (published 0.8).
        positive_threshold: a training row is a positive (for MCD) when its label is above it.
        n_bootstrap: bootstrap resamples of R_tra's interval over episodes.
        batch_size: episodes stepped together.
    """

    mode: str = "NX_0"
    episodes: int = 100
    seed: int = 0
    mcd_share: float = 0.8
    positive_threshold: float = 0.0
    n_bootstrap: int = 200
    batch_size: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", parse_mode(self.mode).name)
        for name in ("episodes", "n_bootstrap", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"EvalConfig.{name}: must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise ConfigError(f"EvalConfig.seed: must be >= 0, got {self.seed}")
        if not 0 < self.mcd_share <= 1:
            raise ConfigError(f"EvalConfig.mcd_share: must lie in (0, 1], got {self.mcd_share}")


def policy_seed(eval_seed: int, run_seed: int) -> int:
    """The seed of a policy's sampling in an evaluation: stream `run_seed` of `eval_seed`."""
    return child_seeds(eval_seed, run_seed + 1)[run_seed]


def ground_truth_table(dataset: Any) -> RewardTable:
    """The dataset's ground truth as a `RewardTable` (rows truth_users, columns truth_items)."""
    if dataset.truth is None:
        raise DataError(dataset.name, "truth", "online evaluation needs a ground-truth matrix")
    return RewardTable.from_truth(dataset.truth, dataset.truth_users, dataset.truth_items)


def table_item_categories(dataset: Any, table: RewardTable) -> np.ndarray:
    """bool (n_table_items, n_categories): the categories of the table's item columns."""
    return np.asarray(dataset.item_categories, dtype=bool)[np.asarray(table.items, dtype=np.int64)]


def dominating_set(dataset: Any, share: float = 0.8, threshold: float = 0.0) -> np.ndarray:
    """MCD's dominating categories: the top categories of the training positives (label >
    `threshold`) within cumulative `share`, as category indices (DORL's MCD, docs/protocol.md).

    Every training row counts, also rows of items outside the ground truth's columns."""
    train = dataset.train
    return dominating_categories(train["item"].to_numpy(np.int64), train["label"].to_numpy(),
                                 np.asarray(dataset.item_categories, dtype=bool), share, threshold)


class OnlineEvaluator:
    """A dataset's ground-truth environment and the published metrics of a policy in it.

    Args:
        dataset: a `Dataset` with `truth`.
        config: the evaluation's settings.
        env: episode settings (max_turn, history_window; the mode is `config.mode`).
        quit: the dataset's quit rule, built over the truth's columns.
    """

    def __init__(self, dataset: Any, config: EvalConfig | None = None, env: EnvConfig | None = None,
                 quit: QuitRuleConfig | None = None) -> None:
        self.config = config or EvalConfig()
        self.env = dataclasses.replace(env or EnvConfig(), mode=self.config.mode)
        self.table = ground_truth_table(dataset)
        self.item_categories = table_item_categories(dataset, self.table)
        self.quit_rule: QuitRule = table_quit_rule(quit or QuitRuleConfig(), self.table, self.item_categories)
        self.dominating = dominating_set(dataset, self.config.mcd_share, self.config.positive_threshold)

    @property
    def n_items(self) -> int:
        return self.table.shape[1]

    def rollout(self, policy: Policy, run_seed: int = 0, device: str = "cpu", progress: bool = False) -> EpisodeLog:
        """Episodes of the evaluation users; the policy samples from `policy_seed(seed, run_seed)`."""
        return rollout(policy, self.table, self.config.mode, self.quit_rule, self.config.episodes,
                       user_seed=self.config.seed, env_config=self.env, batch_size=self.config.batch_size,
                       progress=progress, policy_seed=policy_seed(self.config.seed, run_seed), device=device)

    def metrics(self, episodes: EpisodeLog) -> dict[str, float]:
        """`summarise`'s metrics of the episodes plus R_tra_std (std of returns over episodes)."""
        metrics = summarise(episodes, self.item_categories, self.dominating, self.config.n_bootstrap,
                            self.config.seed)
        metrics["R_tra_std"] = float(episodes.returns.std())
        return {k: float(v) for k, v in metrics.items()}

    def evaluate(self, policy: Policy, run_seed: int = 0, device: str = "cpu") -> dict[str, float]:
        """Roll the policy out in the ground-truth environment and return `metrics`."""
        return self.metrics(self.rollout(policy, run_seed, device))

    def in_mode(self, mode: str) -> OnlineEvaluator:
        """The same evaluation in another mode (same users, rule and dominating categories)."""
        other = object.__new__(OnlineEvaluator)
        other.__dict__.update(self.__dict__)
        other.config = dataclasses.replace(self.config, mode=mode)
        other.env = dataclasses.replace(self.env, mode=other.config.mode)
        return other
