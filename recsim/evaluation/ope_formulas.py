"""The off-policy estimators' formulas as functions, and their input checks (`recsim.evaluation.ope`).

Each function takes per-row arrays: `reward` (n,), `pscore` (n,) the behaviour propensity of the
logged action, `action_prob` (n,) the target policy's probability of it, and returns one float.
The formulas and their sources are in `recsim.evaluation.ope`'s module docstring (IPS, CIS, SNIPS,
NCIS of Gilotte et al. WSDM 2018, PointNCIS, DM, DR, SNDR).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from recsim.errors import ConfigError
from recsim.evaluation.bootstrap import (
    group_index,
    group_sums,
)

# ----------------------------------------------------------------------------- validation


def _vector(name: str, values: Any, n: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    if n is None and array.size == 0:
        raise ValueError(f"{name}: empty array")
    if n is not None and array.shape[0] != n:
        raise ValueError(f"{name}: length {array.shape[0]} does not match reward's {n}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: NaN or infinite values")
    return array


def _logged(reward: Any, pscore: Any, action_prob: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    reward = _vector("reward", reward)
    n = reward.shape[0]
    pscore = _vector("pscore", pscore, n)
    if (pscore <= 0).any():
        raise ValueError("pscore: behaviour propensities must be > 0")
    action_prob = _vector("action_prob", action_prob, n)
    if (action_prob < 0).any():
        raise ValueError("action_prob: target probabilities must be >= 0")
    return reward, pscore, action_prob


def _check_cap(cap: float, name: str = "cap") -> float:
    if isinstance(cap, bool) or not isinstance(cap, (int, float, np.floating, np.integer)):
        raise ConfigError(f"{name}: must be a number > 0, got {cap!r}")
    if math.isnan(cap) or cap <= 0:
        raise ConfigError(f"{name}: must be > 0 (math.inf for no cap), got {cap}")
    return float(cap)


def importance_weights(pscore: np.ndarray, action_prob: np.ndarray) -> np.ndarray:
    """w = action_prob / pscore, shape (n,)."""
    return np.asarray(action_prob, dtype=np.float64) / np.asarray(pscore, dtype=np.float64)


def expected_capped_weight(target_probs: np.ndarray, behaviour_probs: np.ndarray, cap: float) -> np.ndarray:
    """Exact PointNCIS normaliser m(x) = sum_a min(pi(a|x), cap * pi_b(a|x)) per context.

    Args:
        target_probs: (n_contexts, n_actions) pi(a | x).
        behaviour_probs: (n_contexts, n_actions) pi_b(a | x).
        cap: weight cap (> 0, inf for none: m = sum_a pi(a|x) over the behaviour's support).
    Returns:
        (n_contexts,) float64.
    """
    cap = _check_cap(cap)
    target_probs = np.asarray(target_probs, dtype=np.float64)
    behaviour_probs = np.asarray(behaviour_probs, dtype=np.float64)
    if target_probs.shape != behaviour_probs.shape or target_probs.ndim != 2:
        raise ValueError("behaviour_probs: expected the same 2-D (n_contexts, n_actions) shape as target_probs")
    support = behaviour_probs > 0
    bound = target_probs if math.isinf(cap) else np.minimum(target_probs, cap * behaviour_probs)
    capped = np.where(support, bound, 0.0)
    return capped.sum(axis=1)


# ----------------------------------------------------------------------------- plain functions


def ips(reward: np.ndarray, pscore: np.ndarray, action_prob: np.ndarray) -> float:
    """Inverse propensity scoring: mean(w r)."""
    reward, pscore, action_prob = _logged(reward, pscore, action_prob)
    return float(np.mean(importance_weights(pscore, action_prob) * reward))


def cis(reward: np.ndarray, pscore: np.ndarray, action_prob: np.ndarray, cap: float) -> float:
    """Capped IPS: mean(min(w, cap) r); cap = math.inf gives IPS."""
    cap = _check_cap(cap)
    reward, pscore, action_prob = _logged(reward, pscore, action_prob)
    return float(np.mean(np.minimum(importance_weights(pscore, action_prob), cap) * reward))


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")


def snips(reward: np.ndarray, pscore: np.ndarray, action_prob: np.ndarray) -> float:
    """Self-normalised IPS: sum(w r) / sum(w); NaN when every weight is 0."""
    reward, pscore, action_prob = _logged(reward, pscore, action_prob)
    w = importance_weights(pscore, action_prob)
    return _ratio(np.sum(w * reward), np.sum(w))


def ncis(reward: np.ndarray, pscore: np.ndarray, action_prob: np.ndarray, cap: float) -> float:
    """Normalised capped IPS (Gilotte et al., 2018): sum(w_c r) / sum(w_c), w_c = min(w, cap)."""
    cap = _check_cap(cap)
    reward, pscore, action_prob = _logged(reward, pscore, action_prob)
    w = np.minimum(importance_weights(pscore, action_prob), cap)
    return _ratio(np.sum(w * reward), np.sum(w))


def point_ncis(
    reward: np.ndarray,
    pscore: np.ndarray,
    action_prob: np.ndarray,
    cap: float,
    context: np.ndarray | None = None,
    capped_weight_mean: np.ndarray | None = None,
) -> float:
    """PointNCIS: mean(w_c r / m(x)) with a per-context normaliser m (see the module docstring).

    Give `capped_weight_mean` (n,) = the exact m(x_i) of each row's context (from
    `expected_capped_weight`), or `context` (n,) ids to estimate m(x) by the mean capped weight
    of the rows sharing the context. Contexts whose rows all have weight 0 carry no information
    about the target policy there and are left out (the others are re-weighted by row share).
    """
    stats = _PointNCISStats.build(reward, pscore, action_prob, cap, context, capped_weight_mean)
    return stats.value()


def dm(v_target: np.ndarray) -> float:
    """Direct method: mean over rows of the reward model's value of the target policy."""
    return float(np.mean(_vector("v_target", v_target)))


def dr(
    reward: np.ndarray,
    pscore: np.ndarray,
    action_prob: np.ndarray,
    q_logged: np.ndarray,
    v_target: np.ndarray,
    cap: float = math.inf,
) -> float:
    """Doubly robust: mean(v_target + min(w, cap) (r - q_logged))."""
    cap = _check_cap(cap)
    reward, pscore, action_prob = _logged(reward, pscore, action_prob)
    q_logged = _vector("q_logged", q_logged, reward.size)
    v_target = _vector("v_target", v_target, reward.size)
    w = np.minimum(importance_weights(pscore, action_prob), cap)
    return float(np.mean(v_target + w * (reward - q_logged)))


def sndr(
    reward: np.ndarray,
    pscore: np.ndarray,
    action_prob: np.ndarray,
    q_logged: np.ndarray,
    v_target: np.ndarray,
) -> float:
    """Self-normalised doubly robust: mean(v_target) + sum(w (r - q_logged)) / sum(w)."""
    reward, pscore, action_prob = _logged(reward, pscore, action_prob)
    q_logged = _vector("q_logged", q_logged, reward.size)
    v_target = _vector("v_target", v_target, reward.size)
    w = importance_weights(pscore, action_prob)
    return float(np.mean(v_target)) + _ratio(np.sum(w * (reward - q_logged)), np.sum(w))


# ----------------------------------------------------------------------------- PointNCIS statistics


@dataclasses.dataclass
class _PointNCISStats:
    """Sufficient statistics of empirical PointNCIS per (group, context) pair."""

    pair_group: np.ndarray  # (P,) group index of each pair
    pair_context: np.ndarray  # (P,) context index of each pair
    sums: np.ndarray  # (P, 3): sum w_c r, sum w_c, row count
    exact: np.ndarray | None  # (n,) per-row w_c r / m when the exact normaliser is given

    @classmethod
    def build(cls, reward, pscore, action_prob, cap, context, capped_weight_mean, group=None):
        cap = _check_cap(cap)
        reward, pscore, action_prob = _logged(reward, pscore, action_prob)
        n = reward.size
        w = np.minimum(importance_weights(pscore, action_prob), cap)
        inverse, _ = group_index(group, n)
        if capped_weight_mean is not None:
            m = _vector("capped_weight_mean", capped_weight_mean, n)
            if (m <= 0).any():
                raise ValueError("capped_weight_mean: must be > 0")
            return cls(inverse, inverse, np.zeros((0, 3)), w * reward / m)
        if context is None:
            raise ValueError("context: PointNCIS needs context ids or capped_weight_mean")
        ctx_inverse, n_contexts = group_index(context, n, "context")
        pair_key = inverse.astype(np.int64) * n_contexts + ctx_inverse
        pair_inverse, n_pairs = group_index(pair_key, n, "context")
        pairs = np.zeros(n_pairs, dtype=np.int64)
        pairs[pair_inverse] = pair_key
        columns = np.stack([w * reward, w, np.ones(n)], axis=1)
        sums = group_sums(columns, pair_inverse, n_pairs)
        return cls(pairs // n_contexts, pairs % n_contexts, sums, None)

    def resampled(self, pair_multiplicity: np.ndarray) -> np.ndarray:
        """Estimates for (B, P) pair multiplicities; (B,)."""
        order = np.argsort(self.pair_context, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(self.pair_context[order]) != 0])
        weighted, weight, rows = (
            np.add.reduceat(pair_multiplicity[:, order] * self.sums[order, j], starts, axis=1) for j in range(3)
        )
        informative = weight > 0
        ncis_ctx = np.divide(weighted, weight, out=np.zeros_like(weighted), where=informative)
        used_rows = np.where(informative, rows, 0.0)
        total = used_rows.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, (used_rows * ncis_ctx).sum(axis=1) / total, np.nan)

    def value(self) -> float:
        if self.exact is not None:
            return float(self.exact.mean())
        return float(self.resampled(np.ones((1, self.pair_group.size)))[0])
