"""Batched on-policy training: episodes from `BatchedRecEnv` straight into tianshou's update.

tianshou's `Collector` does Python work per environment and step (dicts of infos, buffer
insertion per env, episode bookkeeping), which caps on-policy training at a few thousand steps
per second however fast the environment is (NOTES.md: 21 k steps/s for the collector with a
random policy over an environment that steps at 3 M). `BatchedCollector` instead runs whole
episodes of many simulated users at once:

- **Rounds.** A collection of `E` episodes runs rounds of `k = min(num_envs, remaining)` users:
  every user of the round is reset, then all users still in their episode are stepped together
  (one batched forward pass of the policy, one `BatchedRecEnv.step`) until every episode of the
  round has ended (terminated by the quit rule, or truncated at the episode limit). Episodes of
  different lengths are handled by the set of active rows; there is no per-user Python work.
  Every collected episode is complete, so each update sees `E` whole episodes (the published
  set-up collects 100 episodes per update).
- **Layout.** The round's arrays are time-major (T + 1, k, ...); the transitions are gathered
  episode after episode (t ascending inside an episode) into one tianshou `ReplayBuffer` with
  the reserved keys (obs, act, rew, terminated, truncated, done, obs_next), so tianshou's own
  `compute_episodic_return` (GAE) sees each episode end at its terminated / truncated flag.
  Each transition also keeps, under the reserved key `policy.logp_old`, the log-probability of
  its action under the collecting policy, which PPO reads instead of recomputing it
  (`recsim.policy.model_based.CollectedLogpPPO`).
- **Masks.** In NX modes the observation carries `masked_items`, int64 (B, T): the items shown
  earlier in the episode, -1 padded (the compact layout `recsim.policy.actors.observation_mask`
  reads), equal to the environment's dense `mask` but 100x smaller to keep for the update.
- **Sampling.** The policy's own forward pass (`ProbabilisticActorPolicy`, training mode) over
  all active users at once; its distribution (`recsim.policy.actors.ItemCategorical`) samples
  by blocked inverse-CDF sampling from torch's global generator (seeded by the caller), and
  the masked head writes the compact `masked_items` into its outputs in place.
- **Feedback scale.** Rewards in the observation are mapped with `scale`
  (`recsim.policy.scaling`), as the published tracker normalises its input.

The update is tianshou's: `algorithm.update(buffer, batch_size, repeat)` of its `A2C` / `PPO`
(critic values, GAE and returns in its `_preprocess_batch`, its losses and optimiser in
`_update_with_batch`), called inside `policy_within_training_step` as its trainer does.

Where the time goes (cProfile at the settings of `benchmarks/policy_training.py`, KuaiRec
scale, NX_0): with 1,000 users per step an epoch is 68 % tianshou's update and 31 % collection,
both dominated by the (B, 64) x (64, 3,327) output layer (one matrix product per collected
step, three per updated sample) and a handful of elementwise passes over (B, 3,327); with the
published 100 users per step, 47 % update and 49 % collection, whose fixed cost per step
(about 30 small torch calls for the tracker, sampling and mask) then weighs as much as the
arithmetic. The update's cost per sample does not depend on the minibatch size or the number
of minibatches, so no learning setting is changed for speed. Reading PPO's old log-probabilities
from the collection instead of tianshou's extra pass (`CollectedLogpPPO`) measured, with
`benchmarks/policy_training.py --quick` before and after on 2 cores shared with two other jobs
(load about 3, one repeat, so a rough figure): the batched path from 2,555 to 3,290 steps/s
with 100 users and from 3,830 to 4,318 with 1,000, while the `Collector` path (which keeps the
extra pass) went from 1,189 to 1,288 and 1,083 to 1,122; ratios 2.1 -> 2.6 and 3.5 -> 3.8.

Measured for the next speed change (torch 2.13 CPU with MKL, an AVX2 AMD EPYC with 2 cores,
one thread, 1,024 x 64 features against 3,327 items; a scratch script, not a benchmark):
`nn.Linear`'s product x W^T ran at 32-42 GFLOP/s (10-17 ms), the same product computed item-major
as W x^T (an (items, users) result) at 66-75 GFLOP/s (5.8-6.6 ms), numpy's OpenBLAS at 126; but
making the item-major result row-major again costs 5 ms, and the blocked sampler on the
transposed view took twice its time (56 ms against 27 ms per 1,024 rows with the forward), so
the layout pays only if every pass over the logits is item-major. Each elementwise pass over a
(1,024, 3,327) float32 tensor costs 1-4 ms (exp alone 3.6-5 ms, a two-tensor `vecdot` 3.6 ms):
memory-bound, so fewer passes, not faster kernels, is what is left outside the products.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from tianshou.data import Batch, ReplayBuffer
from tianshou.utils.torch_utils import policy_within_training_step, torch_train_mode

from recsim.env import BatchedRecEnv
from recsim.policy.scaling import FeedbackScale


@dataclasses.dataclass
class Rollout:
    """One collection.

    Attributes:
        buffer: the transitions, episode after episode, each episode ending with terminated or
            truncated; `len(buffer)` = number of steps.
        returns: float64 (E,) undiscounted return of each episode (the simulator's reward).
        lengths: int64 (E,) steps of each episode.
    """

    buffer: ReplayBuffer
    returns: np.ndarray
    lengths: np.ndarray

    @property
    def n_steps(self) -> int:
        return int(self.lengths.sum())

    def log_data(self) -> dict[str, Any]:
        """The collection's statistics in the layout of tianshou's `CollectStats` (for the logger)."""
        return {"n_collected_episodes": len(self.lengths), "n_collected_steps": self.n_steps,
                "returns_stat": _summary(self.returns), "lens_stat": _summary(self.lengths)}


def _summary(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
            "max": float(values.max())}


@dataclasses.dataclass
class _Round:
    """Time-major arrays of one round of k episodes (T = the episode limit)."""

    user: np.ndarray       # int64 (k,)
    history: np.ndarray    # int64 (T + 1, k, W), -1 padded
    feedback: np.ndarray   # float32 (T + 1, k, W), scaled
    turn: np.ndarray       # int64 (T + 1, k)
    act: np.ndarray        # int64 (T, k), -1 after the episode's end
    logp: np.ndarray       # float32 (T, k), log pi(act | obs) of the collecting policy
    rew: np.ndarray        # float32 (T, k)
    terminated: np.ndarray  # bool (T, k)
    truncated: np.ndarray  # bool (T, k)


class BatchedCollector:
    """Collects complete episodes of `policy` in `env` (see the module docstring).

    Args:
        policy: a tianshou `ProbabilisticActorPolicy` over the masked item head
            (`recsim.policy.actors.MaskedItemHead`).
        env: the simulator; its `num_envs` bounds the users of one round.
        scale: maps the simulator's rewards in the observation to [0, 1].
    """

    def __init__(self, policy: Any, env: BatchedRecEnv, scale: FeedbackScale) -> None:
        self.policy = policy
        self.env = env
        self.scale = scale
        self.masked = env.mode.mask_recommended

    def collect(self, n_episodes: int) -> Rollout:
        """`n_episodes` complete episodes in rounds of at most `env.num_envs` users."""
        if n_episodes < 1:
            raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
        rounds = []
        left = int(n_episodes)
        with torch.no_grad(), torch_train_mode(self.policy, enabled=False), \
                policy_within_training_step(self.policy):
            while left > 0:
                k = min(left, self.env.num_envs)
                rounds.append(self._round(k))
                left -= k
        return self._rollout(rounds)

    def _act(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(int64 (B,) sampled items, float32 (B,) their log-probabilities)."""
        result = self.policy(Batch(obs=Batch(obs), info=Batch()))
        act = torch.as_tensor(result.act)
        return act.cpu().numpy(), result.dist.log_prob(act).float().cpu().numpy()

    def _round(self, k: int) -> _Round:
        env = self.env
        limit, window = env.limit, env.config.history_window
        ids = np.arange(k, dtype=np.int64)
        obs, _ = env.reset(ids)
        data = _Round(user=obs["user"], history=np.full((limit + 1, k, window), -1, dtype=np.int64),
                      feedback=np.zeros((limit + 1, k, window), dtype=np.float32),
                      turn=np.zeros((limit + 1, k), dtype=np.int64), act=np.full((limit, k), -1, dtype=np.int64),
                      logp=np.zeros((limit, k), dtype=np.float32),
                      rew=np.zeros((limit, k), dtype=np.float32), terminated=np.zeros((limit, k), dtype=bool),
                      truncated=np.zeros((limit, k), dtype=bool))
        self._store(data, 0, ids, obs)
        active = ids
        for t in range(limit):
            if not len(active):
                break
            step_obs = {"user": data.user[active], "history": data.history[t, active],
                        "feedback": data.feedback[t, active], "turn": data.turn[t, active]}
            if self.masked:
                step_obs["masked_items"] = data.act[:t, active].T
            action, logp = self._act(step_obs)
            obs, rew, terminated, truncated, _ = env.step(action, active)
            data.act[t, active] = action
            data.logp[t, active] = logp
            data.rew[t, active] = rew
            data.terminated[t, active] = terminated
            data.truncated[t, active] = truncated
            self._store(data, t + 1, active, obs)
            active = active[~(terminated | truncated)]
        return data

    def _store(self, data: _Round, t: int, rows: np.ndarray, obs: dict[str, np.ndarray]) -> None:
        data.history[t, rows] = obs["history"]
        data.feedback[t, rows] = self.scale.apply(obs["feedback"])
        data.turn[t, rows] = obs["turn"]

    def _rollout(self, rounds: list[_Round]) -> Rollout:
        parts = [flatten_round(r, self.masked) for r in rounds]
        batch = Batch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        returns = np.concatenate([p[1] for p in parts])
        lengths = np.concatenate([p[2] for p in parts])
        buffer = ReplayBuffer(len(batch))
        buffer.set_batch(batch)
        buffer._size = len(batch)  # as `ReplayBuffer.from_data` sets it: the buffer holds exactly `batch`
        return Rollout(buffer, returns, lengths)


def flatten_round(data: _Round, masked: bool) -> tuple[Batch, np.ndarray, np.ndarray]:
    """(transitions episode after episode, float64 (k,) returns, int64 (k,) lengths) of a round.

    Transition j is step t_j of episode e_j, (e_j, t_j) in lexicographic order; `obs_next` of
    step t is the observation after it (row t + 1 of the round). `masked_items` of step t:
    the episode's actions 0..t-1, -1 padded to the episode limit.
    """
    alive = data.act >= 0                                    # (T, k)
    episode, step = np.nonzero(alive.T)                      # episode-major, t ascending
    obs = {"user": data.user[episode], "history": data.history[step, episode],
           "feedback": data.feedback[step, episode], "turn": data.turn[step, episode]}
    obs_next = {"user": data.user[episode], "history": data.history[step + 1, episode],
                "feedback": data.feedback[step + 1, episode], "turn": data.turn[step + 1, episode]}
    if masked:
        limit = data.act.shape[0]
        earlier = np.arange(limit)[None, :] < step[:, None]  # (N, T)
        obs["masked_items"] = np.where(earlier, data.act.T[episode], -1)
    terminated = data.terminated[step, episode]
    truncated = data.truncated[step, episode]
    batch = Batch(obs=Batch(obs), act=data.act[step, episode], rew=data.rew[step, episode],
                  terminated=terminated, truncated=truncated, done=terminated | truncated,
                  obs_next=Batch(obs_next), policy=Batch(logp_old=data.logp[step, episode]))
    returns = np.where(alive, data.rew, 0.0).sum(axis=0, dtype=np.float64)
    return batch, returns, alive.sum(axis=0).astype(np.int64)


@dataclasses.dataclass
class EpochTotals:
    """What one epoch of `train_epoch` did.

    Attributes:
        train_return: mean simulator return of the epoch's episodes (NaN if none).
        env_step, gradient_step: the run's counters after the epoch.
        loss: mean total loss over the epoch's gradient steps (NaN if none).
    """

    train_return: float
    env_step: int
    gradient_step: int
    loss: float


def train_epoch(algorithm: Any, collector: BatchedCollector, *, epoch_num_steps: int, episodes_per_collect: int,
                batch_size: int | None, repeat: int, logger: Any, env_step: int, gradient_step: int,
                progress: Any = None, lr_schedule: Any = None) -> EpochTotals:
    """Collect-and-update until the epoch holds `epoch_num_steps` environment steps.

    The loop of tianshou's `OnPolicyTrainer` (collect `episodes_per_collect` episodes, one
    `algorithm.update` over all of them in minibatches of `batch_size`, `repeat` passes, then
    drop the data), with the collection done by `collector`. `logger` receives tianshou's
    training and update records (`log_training_data`, `log_update_data`); `progress` (a tqdm
    bar or None) advances by the steps collected; `lr_schedule` (a
    `recsim.policy.model_based.LinearDecay` or None) learns the run's step count after each
    collection.
    """
    steps = 0
    returns, losses = [], []
    while steps < epoch_num_steps:
        rollout = collector.collect(episodes_per_collect)
        steps += rollout.n_steps
        env_step += rollout.n_steps
        if lr_schedule is not None:
            lr_schedule.env_step = env_step
        returns.append(rollout.returns)
        logger.log_training_data(rollout.log_data(), env_step)
        with policy_within_training_step(algorithm.policy):
            stats = algorithm.update(rollout.buffer, batch_size=batch_size, repeat=repeat)
        gradient_step += int(stats.gradient_steps)
        losses.append(float(stats.loss.mean))
        logger.log_update_data(dataclasses.asdict(stats), gradient_step)
        if progress is not None:
            progress.update(rollout.n_steps)
    all_returns = np.concatenate(returns) if returns else np.zeros(0)
    return EpochTotals(float(all_returns.mean()) if len(all_returns) else float("nan"), env_step, gradient_step,
                       float(np.mean(losses)) if losses else float("nan"))
