"""The single-user recommendation environment: the readable reference (gymnasium API).

One episode = one user's session (DORL / ROLeR simulators, docs/protocol.md):

- `reset` draws a user uniformly from the table's rows (or from a given list of user ids), with
  the counter-based sampler of `recsim.env.config` (seeded; stream-compatible with the batched env);
  `reset(options={"user": uid})` starts an episode of user `uid` instead (no draw).
- `step(a)`: `a` is an item column of the reward table. In order: the quit rule looks at `a`
  and the last N items of the episode (if the mode enables it); the reward is computed from the
  table (penalised or raw, `recsim.reward.penalty`); `a` and its reward enter the history, `a`
  is masked (NX modes) and the turn count grows. `terminated` = the user left (the leaving step
  still earns its reward); `truncated` = the episode reached its limit (`max_turn`, or k in NX_k;
  in NX modes at most the number of items, after which every item is masked) without the user
  leaving.
- `info` of a step: predicted, uncertainty_penalty, entropy_bonus, total (floats), user, quit.

The ground-truth environment is this environment over `RewardTable.from_truth(...)` with
`PenaltyConfig.raw()` (the default reward). `BatchedRecEnv` must match it exactly.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from recsim.env.config import EnvConfig, draw_rows, observation_space, resolve_user_rows, stream_keys
from recsim.env.quit_rules import NoQuit, QuitRule
from recsim.reward.penalty import PenalisedReward, PenaltyConfig
from recsim.reward.table import RewardTable


class RecEnv(gym.Env):
    """One simulated user per episode over a `RewardTable` (see the module docstring).

    Args:
        table: rewards, rows = users, columns = items.
        quit_rule: when the user leaves (`recsim.env.quit_rules`); ignored in NX_k modes.
        config: episode settings.
        reward: the step reward; default the raw table mean.
        users: dataset user ids to draw from (default every row of the table).
        seed: seed of the user stream (a later `reset(seed=...)` replaces it).
    """

    metadata = {"render_modes": []}

    def __init__(self, table: RewardTable, quit_rule: QuitRule | None = None, config: EnvConfig | None = None,
                 reward: PenalisedReward | None = None, users: np.ndarray | list[int] | None = None,
                 seed: int = 0) -> None:
        self.table = table
        self.config = config or EnvConfig()
        self.mode = self.config.parsed_mode
        self.quit_rule: QuitRule = quit_rule if (quit_rule is not None and self.mode.quit_enabled) else NoQuit()
        self.reward_fn = reward or PenalisedReward(table, PenaltyConfig.raw())
        self.user_rows = resolve_user_rows(table.users, users)
        self.n_items = table.shape[1]
        self.limit = self.config.limit_for(self.n_items)
        self.observation_space = observation_space(int(table.users.max()) + 1, self.n_items,
                                                   self.config.history_window, self.limit)
        self.action_space = gym.spaces.Discrete(self.n_items)
        self._key = stream_keys([seed])
        self._episode = 0
        self._row = -1
        self._done = True
        self._items: list[int] = []
        self._rewards: list[float] = []

    def _observe(self) -> dict[str, np.ndarray]:
        w = self.config.history_window
        history = np.full(w, -1, dtype=np.int64)
        feedback = np.zeros(w, dtype=np.float32)
        recent = self._items[-w:]
        if recent:
            history[w - len(recent):] = recent
            feedback[w - len(recent):] = self._rewards[-w:]
        mask = np.ones(self.n_items, dtype=bool)
        if self.mode.mask_recommended:
            mask[self._items] = False
        return {
            "user": np.array(self.table.users[self._row], dtype=np.int64),
            "history": history,
            "feedback": feedback,
            "mask": mask,
            "turn": np.array(len(self._items), dtype=np.int64),
        }

    def _last(self, n: int) -> np.ndarray:
        """The last n items of the episode, -1 padded on the left, shape (1, n)."""
        out = np.full((1, n), -1, dtype=np.int64)
        recent = self._items[-n:] if n else []
        if recent:
            out[0, n - len(recent):] = recent
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = stream_keys([seed])
            self._episode = 0
        if options and "user" in options:
            self._row = int(resolve_user_rows(self.table.users, [options["user"]])[0])
        else:
            counter = np.array([self._episode], dtype=np.uint64)
            self._row = int(draw_rows(self.user_rows, self._key, counter)[0])
            self._episode += 1
        self._done = False
        self._items = []
        self._rewards = []
        return self._observe(), {"user": int(self.table.users[self._row])}

    def step(self, action):
        if self._done:
            raise RuntimeError("the episode is over (or never started): call reset() first")
        a = int(action)
        if not 0 <= a < self.n_items:
            raise ValueError(f"action {a} outside [0, {self.n_items})")
        if self.mode.mask_recommended and a in self._items and self.config.masked_action == "error":
            raise ValueError(f"action {a} was already recommended in this episode (mode {self.mode.name})")
        action_arr = np.array([a], dtype=np.int64)
        quit_now = bool(self.quit_rule.should_quit(self._last(self.quit_rule.window), action_arr)[0]) \
            if self.quit_rule.window else False
        parts = self.reward_fn.breakdown(np.array([self._row]), self._last(self.reward_fn.history_needed), action_arr)
        reward = float(parts.total[0])
        self._items.append(a)
        self._rewards.append(reward)
        terminated = quit_now
        truncated = (not quit_now) and len(self._items) >= self.limit
        self._done = terminated or truncated
        info = {
            "predicted": float(parts.predicted[0]),
            "uncertainty_penalty": float(parts.uncertainty_penalty[0]),
            "entropy_bonus": float(parts.entropy_bonus[0]),
            "total": reward,
            "user": int(self.table.users[self._row]),
            "quit": quit_now,
        }
        return self._observe(), reward, terminated, truncated, info
