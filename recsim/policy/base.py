"""The one interface every policy offers for evaluation (`Recommender`).

`observations` is the environment's observation dict with a leading batch axis (layout:
`recsim.env.config.observation_space`: user, history, feedback, mask, turn); `mask` is bool
(B, n_items), True = allowed.

- `act(observations, mask)` -> int64 (B,) item columns, never a masked item;
- `action_probs(observations, mask)` -> float32 (B, n_items): the distribution `act` draws
  from (masked items 0, rows sum to 1), for off-policy estimates;
- `ranking_scores(observations, mask)` -> float64 (B, n_items) scores to rank items by (NDCG),
  or None for a policy with no ranking (random).

Static baselines implement `Recommender` directly (`recsim.policy.static`); tianshou-trained
policies are wrapped by `TianshouRecommender`.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from tianshou.algorithm.algorithm_base import Policy
from tianshou.data import Batch

from recsim.policy.scaling import FeedbackScale


@runtime_checkable
class Recommender(Protocol):
    """What an evaluation needs from a policy."""

    name: str

    def act(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """int64 (B,) items, one per row of the batch, each allowed by `mask` (B, n_items)."""
        ...

    def action_probs(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """float32 (B, n_items): the probability that `act` picks each item (masked items 0)."""
        ...

    def ranking_scores(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray | None:
        """float64 (B, n_items) item scores to rank by, or None when the policy ranks nothing."""
        ...


def one_hot(items: np.ndarray, n_items: int) -> np.ndarray:
    """float32 (B, n_items) with 1 at each row's item of `items` (B,)."""
    out = np.zeros((len(items), n_items), dtype=np.float32)
    out[np.arange(len(items)), np.asarray(items, dtype=np.int64)] = 1.0
    return out


def uniform_probs(mask: np.ndarray) -> np.ndarray:
    """float32 (B, n_items): uniform over each row's allowed items."""
    mask = np.asarray(mask, dtype=bool)
    return (mask / np.maximum(mask.sum(axis=1, keepdims=True), 1)).astype(np.float32)


def observation_batch(observations: dict[str, np.ndarray], mask: np.ndarray) -> Batch:
    """A tianshou `Batch(obs=..., info=...)` from an observation dict and its mask."""
    obs = {k: np.asarray(v) for k, v in observations.items() if k != "mask"}
    obs["mask"] = np.asarray(mask, dtype=bool)
    return Batch(obs=Batch(obs), info=Batch())


class TianshouRecommender:
    """A tianshou 2 `Policy` behind the `Recommender` interface.

    The policy runs in eval mode without gradients; a probabilistic policy samples its action
    unless it was built with `deterministic_eval=True` (then it takes the mode). Sampling uses
    torch's global generator, so callers seed it (`recsim.evaluation.rollout` does, inside
    `torch.random.fork_rng`).

    Args:
        policy: the trained tianshou policy (its network applies the mask, see `actors`).
        name: the policy's name in reports.
        feedback_scale: maps the evaluation environment's rewards in the observation to the
            [0, 1] range the policy was trained with (`recsim.policy.scaling`); None = as is.
        mask_history: the policy never recommends an item of its observed history (the
            observation's `history`, the last W items of the episode) in `act` and
            `action_probs`. For a policy trained with the NX mask (every model-based method's
            default, every offline method): it never saw a repeat and keeps its top item's
            logit after showing it, so in FB it would repeat that item until the quit rule ends
            the episode (the quickstart's FB table had DORL, ROLeR, ours and CRR below random).
            In NX modes the environment's mask already holds these items (a no-op there). This
            is the NX rule applied by the policy to its own history; it never reads the quit
            rule.
    """

    def __init__(self, policy: Policy, name: str, feedback_scale: FeedbackScale | None = None,
                 mask_history: bool = False) -> None:
        self.policy = policy
        self.name = name
        self.feedback_scale = feedback_scale
        self.mask_history = mask_history

    def _allowed(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """bool (B, n_items): `mask` without the observed history's items when `mask_history`."""
        mask = np.asarray(mask, dtype=bool)
        history = observations.get("history") if self.mask_history else None
        if history is None:
            return mask
        return without_history(mask, np.asarray(history, dtype=np.int64))

    @torch.no_grad()
    def _forward(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> Batch:
        """The policy's output batch in eval mode (observations scaled as in training)."""
        was_training = self.policy.training
        self.policy.eval()
        if self.feedback_scale is not None:
            observations = self.feedback_scale.observations(observations)
        try:
            return self.policy(observation_batch(observations, mask))
        finally:
            self.policy.train(was_training)

    @property
    def stochastic(self) -> bool:
        """Whether `act` samples from the actor's softmax (else it takes a deterministic item)."""
        return getattr(self.policy, "actor", None) is not None and not getattr(self.policy, "deterministic_eval", True)

    def act(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        mask = self._allowed(observations, mask)
        result = self._forward(observations, mask)
        act = result.act
        if isinstance(act, torch.Tensor):
            act = act.cpu().numpy()
        items = np.asarray(act, dtype=np.int64).reshape(-1)
        allowed = np.asarray(mask, dtype=bool)[np.arange(len(items)), items]
        if not allowed.all():
            items = np.where(allowed, items, masked_fallback(observations, mask, result))
        return items

    @torch.no_grad()
    def action_probs(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """The actor's masked softmax for a stochastic policy, else 1 on the item `act` picks."""
        mask = self._allowed(observations, mask)
        if not self.stochastic:
            return one_hot(self.act(observations, mask), mask.shape[1])
        logits = self._forward(observations, mask).logits
        probs = torch.softmax(torch.as_tensor(logits).float(), dim=-1).cpu().numpy()
        probs[~mask] = 0.0
        return probs / np.maximum(probs.sum(axis=1, keepdims=True), np.float32(1e-30))

    def ranking_scores(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray | None:
        """The policy's logits or Q-values (quantiles averaged), float64 (B, n_items)."""
        return self._scores(self._forward(observations, mask))

    @staticmethod
    def _scores(result: Batch) -> np.ndarray:
        logits = result.logits
        scores = logits.detach().cpu().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits)
        return (scores.mean(axis=2) if scores.ndim == 3 else scores).astype(np.float64)


def without_history(mask: np.ndarray, history: np.ndarray) -> np.ndarray:
    """bool (B, n_items): `mask` (B, n_items) with each row's `history` (B, W) items (-1 = none)
    set False; a row whose history would leave no item allowed keeps its `mask`."""
    out = mask.copy()
    rows, cols = np.nonzero(history >= 0)
    out[rows, history[rows, cols]] = False
    empty = ~out.any(axis=1)
    out[empty] = mask[empty]
    return out


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
