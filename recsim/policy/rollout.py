"""Evaluating a policy in an environment: episodes, R_tra, length, R_each, MCD (REFERENCE.md §2-3).

`rollout` runs one episode in each of the `num_envs` streams of a `BatchedRecEnv` (finished
episodes drop out of the batch) and returns per-episode returns, lengths and recommended items.
`GroundTruthEvaluator` builds the ground-truth environment of a dataset (its truth matrix, the
dataset's quit rule, NX_0 by default) and reduces a rollout to the published metrics:

- R_tra: mean cumulative true reward per episode; length: mean episode length;
- R_each = R_tra / length (ratio of the means, as published);
- MCD: share of recommended items carrying a dominating category (`recsim.evaluation.exposure`);
- coverage: unique recommended items / items.

Randomness: the environment's users come from its seeded streams; the policy's sampling from
torch's generator, forked and seeded inside `rollout` (`seeded_scope`), and `reseed(seed)` for
numpy policies.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import numpy as np
import torch

from recsim.env import BatchedRecEnv, EnvConfig, QuitRuleConfig, make_quit_rule
from recsim.errors import ConfigError
from recsim.evaluation.exposure import coverage, dominating_categories, mcd
from recsim.policy.base import Recommender
from recsim.reward.table import RewardTable


@dataclasses.dataclass
class RolloutResult:
    """Episodes of one rollout.

    Attributes:
        returns: float64 (n_episodes,), summed rewards.
        lengths: int64 (n_episodes,), steps per episode.
        items: int64 (n_episodes, episode_limit), recommended item columns, -1 after the end.
        users: int64 (n_episodes,), the dataset user id of each episode.
    """

    returns: np.ndarray
    lengths: np.ndarray
    items: np.ndarray
    users: np.ndarray


@contextlib.contextmanager
def seeded_scope(seed: int, device: str = "cpu") -> Iterator[None]:
    """Seed torch's generators and numpy's legacy global generator inside the block only.

    tianshou draws minibatch orders and buffer samples from `np.random` and actions from torch;
    both are seeded from `seed` on entry and restored on exit, so nothing outside the block sees
    a changed global state.
    """
    devices = [torch.device(device).index or 0] if str(device).startswith("cuda") else []
    numpy_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            yield
    finally:
        np.random.set_state(numpy_state)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch intra-op threads (None: unchanged), restored afterwards.

    The policies' networks are small (64-unit layers); on a busy machine several threads per
    small matrix product cost far more in contention than they gain (measured on 2 shared
    cores: 15.7 ms per 256 x 64 x 200 layer with 2 threads, 0.7 ms with 1).
    """
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def rollout(recommender: Recommender, env: BatchedRecEnv, seed: int, device: str = "cpu",
            policy_seed: int | None = None) -> RolloutResult:
    """One episode per env stream (the env restarts its streams from `seed`).

    The policy's own randomness is seeded from `policy_seed` (default `seed`), so a fixed set of
    users (`seed`) can be shared by runs whose policies sample differently.
    """
    policy_seed = seed if policy_seed is None else int(policy_seed)
    reseed = getattr(recommender, "reseed", None)
    if callable(reseed):
        reseed(policy_seed)
    n = env.num_envs
    obs, info = env.reset(seed=seed)
    users = np.asarray(info["user"], dtype=np.int64)
    returns = np.zeros(n, dtype=np.float64)
    lengths = np.zeros(n, dtype=np.int64)
    items = np.full((n, env.limit), -1, dtype=np.int64)
    ids = np.arange(n, dtype=np.int64)
    with seeded_scope(policy_seed, device):
        while ids.size:
            mask = np.array(obs["mask"], dtype=bool)
            actions = np.asarray(recommender.act(obs, mask), dtype=np.int64).reshape(-1)
            if not mask[np.arange(len(ids)), actions].all():
                raise RuntimeError(f"policy {recommender.name!r} recommended a masked item")
            obs, reward, terminated, truncated, _ = env.step(actions, ids)
            items[ids, lengths[ids]] = actions
            returns[ids] += reward
            lengths[ids] += 1
            keep = ~(terminated | truncated)
            ids = ids[keep]
            obs = {k: np.asarray(v)[keep] for k, v in obs.items()}
    return RolloutResult(returns, lengths, items, users)


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
        self.env = BatchedRecEnv(self.table, self.quit_rule, self.config.env_config(),
                                 num_envs=self.config.episodes, seed=self.config.seed, breakdown=False)

    @property
    def n_items(self) -> int:
        return self.table.shape[1]

    def rollout(self, recommender: Recommender, device: str = "cpu", policy_seed: int | None = None) -> RolloutResult:
        """Episodes of the evaluation users (`config.seed`); the policy samples from `policy_seed`."""
        return rollout(recommender, self.env, self.config.seed, device, policy_seed)

    def metrics(self, result: RolloutResult) -> dict[str, float]:
        """R_tra, length, R_each, MCD, coverage and the std of R_tra over episodes."""
        r_tra = float(result.returns.mean())
        length = float(result.lengths.mean())
        return {
            "R_tra": r_tra,
            "R_tra_std": float(result.returns.std()),
            "length": length,
            "R_each": r_tra / length if length > 0 else float("nan"),
            "MCD": mcd(result.items, self.item_categories, self.dominating),
            "coverage": coverage(result.items, self.n_items),
        }

    def evaluate(self, recommender: Recommender, device: str = "cpu",
                 policy_seed: int | None = None) -> dict[str, float]:
        """Roll the policy out in the ground-truth environment and return `metrics`."""
        return self.metrics(self.rollout(recommender, device, policy_seed))
