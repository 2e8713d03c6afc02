"""`BatchedRecEnv` behind tianshou 2's vector-env contract, for tianshou's `Collector`.

Observations come as a `tianshou.data.Batch`, infos as an object array of dicts, and done envs are
reset by the collector (`reset(env_id=...)`), never automatically.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from tianshou.data import Batch
from tianshou.env import BaseVectorEnv

from recsim.env.batched import BatchedRecEnv


class TianshouVectorEnv(BaseVectorEnv):
    """`BatchedRecEnv` behind tianshou 2's `BaseVectorEnv` contract (synchronous).

    `reset(env_id)` / `step(action, id)` return a `Batch` of observations (fresh, writable arrays:
    the collector writes reset observations into them) and an object array of info dicts; the
    collector resets finished envs itself. `info="none"` (default) gives empty dicts, which keeps
    the collector fast; `info="breakdown"` gives each step's reward breakdown, user and quit flag
    (a Python dict per env and step: slow for large batches). `action_space` /
    `observation_space` resolve, as for any tianshou vector env, to one space per env.

    `BaseVectorEnv.__init__` is not called: it builds one worker per environment, and a batched
    environment has none.
    """

    def __init__(self, env: BatchedRecEnv, info: str = "none") -> None:
        if info not in ("none", "breakdown"):
            raise ValueError(f"info: unknown {info!r}; choose none or breakdown")
        if info == "breakdown" and not env.breakdown:
            raise ValueError("info='breakdown' needs a BatchedRecEnv built with breakdown=True")
        self.batched = env
        self.info_mode = info
        self.env_num = env.num_envs
        self.wait_num = env.num_envs
        self.timeout = None
        self.is_async = False
        self.waiting_conn: list = []
        self.waiting_id: list[int] = []
        self.ready_id = list(range(env.num_envs))
        self.is_closed = False
        self.workers: list = []

    def __len__(self) -> int:
        return self.env_num

    def get_env_attr(self, key: str, id: Any = None) -> list[Any]:
        ids = self._wrap_id(id)
        value = {"action_space": self.batched.single_action_space,
                 "observation_space": self.batched.single_observation_space}.get(key)
        if value is None:
            value = getattr(self.batched, key)
        return [value] * len(ids)

    def set_env_attr(self, key: str, value: Any, id: Any = None) -> None:
        setattr(self.batched, key, value)

    def _obs_batch(self, obs: dict[str, np.ndarray]):
        return Batch({k: np.array(v, copy=True) for k, v in obs.items()})

    def _infos(self, info: dict[str, np.ndarray] | None, n: int) -> np.ndarray:
        out = np.empty(n, dtype=object)
        if self.info_mode == "none" or info is None:
            out[:] = [{} for _ in range(n)]
            return out
        columns = {k: np.asarray(v).tolist() for k, v in info.items()}
        names = list(columns)
        out[:] = [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]
        return out

    def reset(self, env_id: Any = None, **kwargs: Any):
        self._assert_is_not_closed()
        obs, _ = self.batched.reset(env_id, seed=kwargs.get("seed"))
        n = len(obs["user"])
        return self._obs_batch(obs), self._infos(None, n)

    def step(self, action: Any, id: Any = None):
        self._assert_is_not_closed()
        if action is None:
            raise ValueError("action must not be None (synchronous vector env)")
        if hasattr(action, "detach"):
            action = action.detach().cpu().numpy()
        obs, rew, terminated, truncated, info = self.batched.step(action, id)
        return self._obs_batch(obs), rew, terminated, truncated, self._infos(info, len(rew))

    def seed(self, seed: Any = None) -> list[Any]:
        self._assert_is_not_closed()
        if seed is None:
            return [None] * self.env_num
        first = seed if isinstance(seed, int) else int(seed[0])
        return list(self.batched.reseed(first))

    def render(self, **kwargs: Any) -> list[Any]:
        return []

    def close(self) -> None:
        self.is_closed = True
