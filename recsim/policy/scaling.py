"""The reward the policy sees in its observation, mapped to [0, 1] per environment.

The published state tracker normalises its reward input with the range of the environment it
acts in: the simulator's penalised reward range in training, the ground truth's range in
evaluation (DORL's `StateTrackerAvg2`, train_min/max vs test_min/max). Here the environments stay
untouched: `ScaledFeedbackVectorEnv` rescales `feedback` in the observations handed to tianshou's
collector, and `TianshouRecommender` rescales the observations of an evaluation.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from recsim.env import TianshouVectorEnv


@dataclasses.dataclass(frozen=True)
class FeedbackScale:
    """Affine map of rewards [low, high] -> [0, 1] (identity when high <= low)."""

    low: float = 0.0
    high: float = 1.0

    def apply(self, feedback: np.ndarray) -> np.ndarray:
        """float32 array of the scaled feedback (padding 0 maps like any other value)."""
        span = self.high - self.low
        if span <= 0:
            return np.asarray(feedback, dtype=np.float32)
        return ((np.asarray(feedback, dtype=np.float32) - np.float32(self.low)) / np.float32(span)).astype(np.float32)

    def observations(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A shallow copy of an observation dict with `feedback` scaled."""
        out = dict(observations)
        out["feedback"] = self.apply(observations["feedback"])
        return out


class ScaledFeedbackVectorEnv(TianshouVectorEnv):
    """`TianshouVectorEnv` whose observations carry feedback scaled by `scale`."""

    def __init__(self, env, scale: FeedbackScale, info: str = "none") -> None:
        super().__init__(env, info)
        self.scale = scale

    def reset(self, env_id: Any = None, **kwargs: Any):
        obs, info = super().reset(env_id, **kwargs)
        obs.feedback = self.scale.apply(obs.feedback)
        return obs, info

    def step(self, action: Any, id: Any = None):
        obs, rew, terminated, truncated, info = super().step(action, id)
        obs.feedback = self.scale.apply(obs.feedback)
        return obs, rew, terminated, truncated, info
