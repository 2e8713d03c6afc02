"""The natively batched recommendation environment.

`BatchedRecEnv` steps `num_envs` independent user sessions with a fixed number of numpy calls per
step whatever the batch size (gathers from the reward table, the quit rule's bit tests, in-place
shifts of preallocated state arrays). It follows `RecEnv` (`recsim.env.single`, the readable
reference) exactly: stream i of a batched env seeded with `seed` gives the same users, rewards,
observations and ends as `RecEnv(..., seed=env.stream_seeds[i])` under the same actions.

Native API (no automatic reset, like tianshou's vector envs):

    obs, info = env.reset(env_ids=None)             # reset all, or the given envs
    obs, info = env.reset(ids, users=user_ids)      # ... with chosen users instead of draws
    obs, rew, terminated, truncated, info = env.step(actions, env_ids=None)

`obs` is a dict of arrays with a leading batch axis (layout: `recsim.env.config.observation_space`);
`info` is a dict of arrays: user, quit and, unless `breakdown=False`, predicted,
uncertainty_penalty, entropy_bonus, total. All arrays are fresh except `obs["mask"]`, a read-only
view of the environment state (valid until the next call; copy it to keep it). A finished env
must be reset before it is stepped again.

`recsim.env.tianshou_adapter.TianshouVectorEnv` puts it behind tianshou 2's vector-env contract
(kept apart so that the simulator imports without tianshou and torch).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from recsim.env.config import EnvConfig, draw_rows, observation_space, resolve_user_rows, stream_keys
from recsim.env.quit_rules import NoQuit, QuitRule
from recsim.reward.penalty import PenalisedReward, PenaltyConfig
from recsim.reward.table import RewardTable
from recsim.seeding import child_seeds


class BatchedRecEnv:
    """`num_envs` user sessions stepped together (see the module docstring).

    Args:
        table, quit_rule, config, reward, users: as for `RecEnv`.
        num_envs: the number of parallel sessions.
        seed: streams use `child_seeds(seed, num_envs)`; ignored when `seeds` is given.
        seeds: explicit per-stream seeds (length num_envs).
        breakdown: compute the reward breakdown for `info` (two extra gathers per step).
    """

    metadata: dict[str, Any] = {"render_modes": []}
    spec = None
    reward_range = (-float("inf"), float("inf"))

    def __init__(self, table: RewardTable, quit_rule: QuitRule | None = None, config: EnvConfig | None = None,
                 reward: PenalisedReward | None = None, users: np.ndarray | list[int] | None = None,
                 num_envs: int = 100, seed: int = 0, seeds: list[int] | None = None,
                 breakdown: bool = True) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.table = table
        self.config = config or EnvConfig()
        self.mode = self.config.parsed_mode
        self.quit_rule: QuitRule = quit_rule if (quit_rule is not None and self.mode.quit_enabled) else NoQuit()
        self.reward_fn = reward or PenalisedReward(table, PenaltyConfig.raw())
        self.user_rows = resolve_user_rows(table.users, users)
        self.num_envs = int(num_envs)
        self.n_items = table.shape[1]
        self.limit = self.config.limit_for(self.n_items)
        self.breakdown = breakdown
        self.single_observation_space = observation_space(int(table.users.max()) + 1, self.n_items,
                                                          self.config.history_window, self.limit)
        self.single_action_space = gym.spaces.Discrete(self.n_items)
        self._user_ids = table.users.astype(np.int64)

        n, w = self.num_envs, self.config.history_window
        self._width = max(w, self.quit_rule.window, self.reward_fn.history_needed, 1)
        self._all = np.arange(n, dtype=np.int64)
        self.stream_seeds = list(seeds) if seeds is not None else child_seeds(seed, n)
        if len(self.stream_seeds) != n:
            raise ValueError(f"seeds: {len(self.stream_seeds)} seeds for {n} envs")
        self._keys = stream_keys(self.stream_seeds)
        self._episodes = np.zeros(n, dtype=np.uint64)
        self._rows = np.zeros(n, dtype=np.int64)
        self._recent = np.full((n, self._width), -1, dtype=np.int64)
        self._feedback = np.zeros((n, w), dtype=np.float32)
        self._turn = np.zeros(n, dtype=np.int64)
        self._done = np.ones(n, dtype=bool)  # every env needs a reset first
        if self.mode.mask_recommended:
            self._mask = np.ones((n, self.n_items), dtype=bool)
            self._log = np.full((n, self.limit), -1, dtype=np.int64)
        else:
            self._mask = np.broadcast_to(np.ones(self.n_items, dtype=bool), (n, self.n_items))

    def __len__(self) -> int:
        return self.num_envs

    def _select(self, env_ids: Any) -> tuple[slice | np.ndarray, np.ndarray]:
        if env_ids is None:
            return slice(None), self._all
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        if len(ids) == self.num_envs and (ids == self._all).all():
            return slice(None), self._all
        return ids, ids

    def _observe(self, sel: slice | np.ndarray) -> dict[str, np.ndarray]:
        fancy = not isinstance(sel, slice)
        history = self._recent[sel, self._width - self.config.history_window:]
        if not self.mode.mask_recommended:
            mask = np.broadcast_to(self._mask[0], (self.num_envs if isinstance(sel, slice) else len(sel), self.n_items))
        else:
            mask = self._mask[sel] if fancy else self._mask.view()
            mask.flags.writeable = False
        return {
            "user": self._user_ids[self._rows[sel]],
            "history": history if fancy else history.copy(),
            "feedback": self._feedback[sel] if fancy else self._feedback.copy(),
            "mask": mask,
            "turn": self._turn[sel] if fancy else self._turn.copy(),
        }

    def reseed(self, seed: int) -> list[int]:
        """Restart every stream from `child_seeds(seed, num_envs)`; return the stream seeds."""
        self.stream_seeds = child_seeds(seed, self.num_envs)
        self._keys = stream_keys(self.stream_seeds)
        self._episodes[:] = 0
        return self.stream_seeds

    def reset(self, env_ids: Any = None, seed: int | None = None,
              users: Any = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Start new episodes in `env_ids` (default all); `seed` first restarts every stream.

        `users` (dataset user ids, one per reset env) assigns the users instead of drawing them
        (e.g. to evaluate every test user exactly once); the streams do not advance then.
        """
        if seed is not None:
            self.reseed(seed)
        sel, idx = self._select(env_ids)
        if users is not None:
            rows = resolve_user_rows(self.table.users, np.asarray(users).reshape(-1))
            if len(rows) != len(idx):
                raise ValueError(f"{len(rows)} users for {len(idx)} envs")
        else:
            rows = draw_rows(self.user_rows, self._keys[idx], self._episodes[idx])
            self._episodes[idx] += np.uint64(1)
        self._rows[sel] = rows
        self._recent[sel] = -1
        self._feedback[sel] = 0.0
        self._turn[sel] = 0
        self._done[sel] = False
        if self.mode.mask_recommended:
            logged = self._log[idx]
            r, c = np.nonzero(logged >= 0)
            self._mask[idx[r], logged[r, c]] = True
            self._log[sel] = -1
        return self._observe(sel), {"user": self._user_ids[rows]}

    def step(self, actions: Any, env_ids: Any = None) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray,
                                                                np.ndarray, dict[str, np.ndarray]]:
        """Recommend `actions[j]` (item columns) to env `env_ids[j]` (default all envs, in order)."""
        sel, idx = self._select(env_ids)
        a = np.asarray(actions).astype(np.int64, copy=False).reshape(-1)
        if len(a) != len(idx):
            raise ValueError(f"{len(a)} actions for {len(idx)} envs")
        if len(a) and (a.min() < 0 or a.max() >= self.n_items):
            raise ValueError(f"actions outside [0, {self.n_items})")
        if self._done[sel].any():
            raise RuntimeError("stepping a finished (or never reset) env; reset it first")
        if self.mode.mask_recommended and self.config.masked_action == "error" and not self._mask[idx, a].all():
            raise ValueError(f"an action was already recommended in its episode (mode {self.mode.name})")
        recent = self._recent[sel]
        width = self._width
        if self.quit_rule.window:
            quit_now = self.quit_rule.should_quit(recent[:, width - self.quit_rule.window:], a)
        else:
            quit_now = np.zeros(len(a), dtype=bool)
        rows = self._rows[sel]
        history = recent[:, width - self.reward_fn.history_needed:]
        if self.breakdown:
            parts = self.reward_fn.breakdown(rows, history, a)
            reward = parts.total
        else:
            reward = self.reward_fn.total(rows, history, a)
        turn = self._turn[sel] + 1
        if self.mode.mask_recommended:
            self._mask[idx, a] = False
            self._log[idx, turn - 1] = a
        if isinstance(sel, slice):
            self._recent[:, :-1] = self._recent[:, 1:]
            self._recent[:, -1] = a
            self._feedback[:, :-1] = self._feedback[:, 1:]
            self._feedback[:, -1] = reward
        else:
            self._recent[idx, :-1] = recent[:, 1:]
            self._recent[idx, -1] = a
            feedback = self._feedback[idx]
            self._feedback[idx, :-1] = feedback[:, 1:]
            self._feedback[idx, -1] = reward
        self._turn[sel] = turn
        terminated = quit_now
        truncated = ~quit_now & (turn >= self.limit)
        self._done[sel] = terminated | truncated
        info = {"user": self._user_ids[rows], "quit": quit_now}
        if self.breakdown:
            info.update(predicted=parts.predicted, uncertainty_penalty=parts.uncertainty_penalty,
                        entropy_bonus=parts.entropy_bonus, total=parts.total)
        return self._observe(sel), reward, terminated, truncated, info
