"""The one interface every policy offers for evaluation: `act(observations, mask) -> items`.

`observations` is the environment's observation dict with a leading batch axis (layout:
`recsim.env.config.observation_space`: user, history, feedback, mask, turn); `mask` is bool
(B, n_items), True = allowed. `act` returns int64 (B,) item columns, never a masked item.

Static baselines implement `Recommender` directly (`recsim.policy.static`); tianshou-trained
policies are wrapped by `TianshouRecommender`.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from tianshou.data import Batch

from recsim.policy.scaling import FeedbackScale


@runtime_checkable
class Recommender(Protocol):
    """What an evaluation needs from a policy."""

    name: str

    def act(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """int64 (B,) items, one per row of the batch, each allowed by `mask` (B, n_items)."""
        ...


def observation_batch(observations: dict[str, np.ndarray], mask: np.ndarray) -> Batch:
    """A tianshou `Batch(obs=..., info=...)` from an observation dict and its mask."""
    obs = {k: np.asarray(v) for k, v in observations.items() if k != "mask"}
    obs["mask"] = np.asarray(mask, dtype=bool)
    return Batch(obs=Batch(obs), info=Batch())


class TianshouRecommender:
    """A tianshou 2 `Policy` behind the `Recommender` interface.

    The policy runs in eval mode without gradients; a probabilistic policy samples its action
    unless it was built with `deterministic_eval=True` (then it takes the mode). Sampling uses
    torch's global generator, so callers seed it (`recsim.policy.evaluator` does, inside
    `torch.random.fork_rng`).

    Args:
        policy: the trained tianshou policy (its network applies the mask, see `actors`).
        name: the policy's name in reports.
        feedback_scale: maps the evaluation environment's rewards in the observation to the
            [0, 1] range the policy was trained with (`recsim.policy.scaling`); None = as is.
    """

    def __init__(self, policy: torch.nn.Module, name: str, feedback_scale: FeedbackScale | None = None) -> None:
        self.policy = policy
        self.name = name
        self.feedback_scale = feedback_scale

    @torch.no_grad()
    def act(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        was_training = self.policy.training
        self.policy.eval()
        if self.feedback_scale is not None:
            observations = self.feedback_scale.observations(observations)
        try:
            result = self.policy(observation_batch(observations, mask))
        finally:
            self.policy.train(was_training)
        act = result.act
        if isinstance(act, torch.Tensor):
            act = act.cpu().numpy()
        items = np.asarray(act, dtype=np.int64).reshape(-1)
        allowed = np.asarray(mask, dtype=bool)[np.arange(len(items)), items]
        if not allowed.all():
            items = np.where(allowed, items, masked_fallback(observations, mask, result))
        return items


def masked_fallback(observations: dict[str, np.ndarray], mask: np.ndarray, result: Batch) -> np.ndarray:
    """The best allowed item by the policy's raw outputs (for policies whose action ignores the mask).

    Uses `result.logits` (per-item scores; quantiles are averaged) when present, else the first
    allowed item.
    """
    mask = np.asarray(mask, dtype=bool)
    logits = getattr(result, "logits", None)
    if logits is None:
        return np.argmax(mask, axis=1).astype(np.int64)
    scores = logits.detach().cpu().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits)
    if scores.ndim == 3:
        scores = scores.mean(axis=2)
    scores = np.where(mask, scores.astype(np.float64), -np.inf)
    return np.argmax(scores, axis=1).astype(np.int64)
