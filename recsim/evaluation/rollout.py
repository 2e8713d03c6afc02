"""Online evaluation: roll a policy in the ground-truth environment and summarise its episodes.

Protocol (DORL / ROLeR, docs/protocol.md): the ground-truth environment is the simulator over
`RewardTable.from_truth(...)` with the raw reward. For a mode (FB, NX_0, NX_k), a fixed, seeded
set of `n_episodes` users is evaluated: episode j runs on stream `child_seeds(user_seed,
n_episodes)[j]` of the counter-based user sampler (`recsim.env.config`), so every method, mode
and run seed meets exactly the same users, and the users do not depend on the policy's actions.

Metrics of one rollout (docs/protocol.md, "Metrics"):

- R_tra = mean over episodes of the cumulative true reward; length = mean episode length;
  R_each = R_tra / length (as published: a ratio of means, not a mean of ratios);
- R_tra_low / R_tra_high: a 95 % bootstrap interval of R_tra over episodes (users);
- exposure metrics over every recommended item of the rollout: MCD, Gini, coverage, category
  entropy (`recsim.evaluation.exposure`).

Across run seeds, `across_seeds` gives mean, sample std and a 95 % Student-t interval.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from recsim.env.batched import BatchedRecEnv
from recsim.env.config import EnvConfig
from recsim.env.quit_rules import QuitRule
from recsim.errors import DataError
from recsim.evaluation import exposure
from recsim.evaluation.bootstrap import mean_interval
from recsim.io import save_npz
from recsim.progress import progress_bar
from recsim.reward.table import RewardTable
from recsim.seeding import child_seeds, seeded_scope


class Policy(Protocol):
    """What the evaluation needs from a policy.

    `act(observations, mask)` returns one item column per row: int (B,). `observations` is the
    batched environment's observation dict (user (B,), history (B, W), feedback (B, W), mask
    (B, n_items), turn (B,)); `mask` (B, n_items) bool is True where an item may be recommended.
    """

    def act(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray: ...


@dataclasses.dataclass
class EpisodeLog:
    """Every episode of one rollout.

    Attributes:
        mode: the evaluation mode's name.
        users: int64 (n,), the dataset user id of each episode.
        items: int64 (n, L), recommended item columns per step, -1 after the episode ended.
        rewards: float32 (n, L), true reward per step, 0 after the end.
        lengths: int64 (n,), steps per episode.
        quit: bool (n,), whether the user left (False: truncated at the mode's limit).
    """

    mode: str
    users: np.ndarray
    items: np.ndarray
    rewards: np.ndarray
    lengths: np.ndarray
    quit: np.ndarray

    @property
    def returns(self) -> np.ndarray:
        """float64 (n,): cumulative reward of each episode."""
        return self.rewards.astype(np.float64).sum(axis=1)

    def episodes(self) -> list[np.ndarray]:
        """The recommended items of each episode, without padding."""
        return [row[:n] for row, n in zip(self.items, self.lengths, strict=True)]

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        save_npz(path, mode=np.array(self.mode), users=self.users, items=self.items, rewards=self.rewards,
                 lengths=self.lengths, quit=self.quit)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> EpisodeLog:
        path = Path(path)
        if not path.is_file():
            raise DataError(str(path), None, "episode log not found")
        with np.load(path, allow_pickle=False) as z:
            return cls(str(z["mode"]), z["users"], z["items"], z["rewards"], z["lengths"], z["quit"])


def rollout(policy: Policy, table: RewardTable, mode: str, quit_rule: QuitRule | None, n_episodes: int,
            user_seed: int = 0, env_config: EnvConfig | None = None, batch_size: int = 1000,
            progress: bool = False, policy_seed: int | None = None, device: str = "cpu") -> EpisodeLog:
    """Roll `policy` in the environment over `table` (raw reward) for `n_episodes` users.

    Args:
        policy: anything with `act(observations, mask) -> items` (see `Policy`).
        table: the ground-truth reward table (`RewardTable.from_truth`).
        mode: "FB", "NX_0" or "NX_<k>".
        quit_rule: the dataset's quit rule (ignored by NX_k modes).
        n_episodes: number of episodes, one user each.
        user_seed: seed of the set of users (see the module docstring).
        env_config: max_turn and history_window (its mode is replaced by `mode`).
        batch_size: episodes stepped together.
        progress: show a progress bar over batches (`recsim.progress`).
        policy_seed: seed of a stochastic policy's sampling (default `user_seed`): the policy's
            `reseed(seed)` is called when it has one, and torch's and numpy's global generators
            (which tianshou policies sample from) are seeded inside the rollout and restored after.
        device: the torch device of the policy (its generator is seeded too).

    Raises:
        RuntimeError: the policy recommended an item its mask forbids.
    """
    seed = user_seed if policy_seed is None else policy_seed
    reseed = getattr(policy, "reseed", None)
    if callable(reseed):
        reseed(seed)
    with seeded_scope(seed, device):
        return _rollout(policy, table, mode, quit_rule, n_episodes, user_seed, env_config, batch_size, progress)


def _rollout(policy: Policy, table: RewardTable, mode: str, quit_rule: QuitRule | None, n_episodes: int,
             user_seed: int, env_config: EnvConfig | None, batch_size: int, progress: bool) -> EpisodeLog:
    config = dataclasses.replace(env_config or EnvConfig(), mode=mode)
    seeds = child_seeds(user_seed, n_episodes)
    limit = config.episode_limit
    users = np.zeros(n_episodes, dtype=np.int64)
    items = np.full((n_episodes, limit), -1, dtype=np.int64)
    rewards = np.zeros((n_episodes, limit), dtype=np.float32)
    lengths = np.zeros(n_episodes, dtype=np.int64)
    quit_flags = np.zeros(n_episodes, dtype=bool)
    starts = range(0, n_episodes, batch_size)
    for start in progress_bar(starts, f"rollout {config.mode}", enabled=progress and len(starts) > 1, leave=False):
        stop = min(start + batch_size, n_episodes)
        env = BatchedRecEnv(table, quit_rule, config, users=None, num_envs=stop - start, seeds=seeds[start:stop],
                            breakdown=False)
        obs, info = env.reset()
        users[start:stop] = info["user"]
        active = np.arange(stop - start)
        while len(active):
            mask = np.array(obs["mask"], copy=True)
            actions = np.asarray(policy.act(obs, mask)).astype(np.int64).reshape(-1)
            if len(actions) != len(active):
                raise ValueError(f"policy returned {len(actions)} actions for {len(active)} episodes")
            if not mask[np.arange(len(actions)), actions].all():
                raise RuntimeError(f"policy {getattr(policy, 'name', type(policy).__name__)!r} recommended a "
                                   "masked item")
            obs, reward, terminated, truncated, _ = env.step(actions, active)
            rows = start + active
            turn = lengths[rows]
            items[rows, turn] = actions
            rewards[rows, turn] = reward
            lengths[rows] = turn + 1
            quit_flags[rows] = terminated
            keep = ~(terminated | truncated)
            active = active[keep]
            obs = {k: v[keep] for k, v in obs.items()}
    return EpisodeLog(config.mode, users, items, rewards, lengths, quit_flags)


def summarise(log: EpisodeLog, item_categories: np.ndarray, dominating: np.ndarray,
              n_bootstrap: int = 200, seed: int = 0) -> dict[str, float]:
    """Metrics of one rollout (see the module docstring); floats keyed by metric name."""
    returns = log.returns
    r_tra, low, high = mean_interval(returns, n_bootstrap=n_bootstrap, seed=seed)
    length = float(log.lengths.mean())
    n_items = item_categories.shape[0]
    recommended = log.items[log.items >= 0]
    has_categories = item_categories.shape[1] > 0
    return {
        "R_tra": r_tra,
        "R_tra_low": low,
        "R_tra_high": high,
        "length": length,
        "R_each": r_tra / length if length > 0 else float("nan"),
        "quit_rate": float(log.quit.mean()),
        "MCD": exposure.mcd(recommended, item_categories, dominating) if has_categories else math.nan,
        "gini": exposure.gini(exposure.exposure_counts(recommended, n_items)),
        "coverage": exposure.coverage(recommended, n_items),
        "category_entropy": (exposure.category_entropy(recommended, item_categories, normalise=True)
                             if has_categories else math.nan),
    }


def across_seeds(values: np.ndarray | list[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean, sample std (ddof=1; 0 for one seed) and a Student-t interval of per-seed values.

    NaN values are dropped; with one finite value the interval collapses to it.
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"mean": math.nan, "std": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    mean = float(x.mean())
    if x.size == 1:
        return {"mean": mean, "std": 0.0, "low": mean, "high": mean, "n": 1}
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1)) * std / math.sqrt(x.size)
    return {"mean": mean, "std": std, "low": mean - half, "high": mean + half, "n": int(x.size)}
