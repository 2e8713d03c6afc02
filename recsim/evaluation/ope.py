"""Off-policy estimators of a target policy's value from logged feedback.

Inputs are 1-D arrays over the n logged rows:
- `reward` (n,): the logged reward;
- `pscore` (n,): the behaviour policy's probability of the logged action, pi_b(a_i | x_i) > 0;
- `action_prob` (n,): the target policy's probability of the logged action, pi(a_i | x_i) >= 0
  (for a sequential policy: of the logged item given the logged history);
- `q_logged` (n,): a reward model's prediction for the logged action, q(x_i, a_i);
- `v_target` (n,): the reward model's expected value under the target policy,
  sum_a pi(a | x_i) q(x_i, a).
Importance weight w_i = action_prob_i / pscore_i; capped weight w_c = min(w, cap).

Estimators (value = a float):
- IPS  = mean(w r)                                 (Horvitz & Thompson, 1952)
- CIS  = mean(w_c r)                               (capped IPS; Bottou et al., JMLR 2013)
- SNIPS = sum(w r) / sum(w)                        (Swaminathan & Joachims, NeurIPS 2015)
- NCIS = sum(w_c r) / sum(w_c)                     (Gilotte et al., WSDM 2018)
- PointNCIS = mean(w_c r / m(x)), m(x) = E_{a ~ pi_b(.|x)}[w_c(x, a)], the per-context
  normaliser of Gilotte et al. (2018). With single-item actions m(x) = sum_a min(pi(a|x),
  cap * pi_b(a|x)) is exact when both distributions are known (`expected_capped_weight`);
  otherwise it is estimated by the mean capped weight of the rows sharing the context id,
  which makes the estimate the row-share-weighted mean of per-context NCIS (their PieceNCIS
  with one piece per context).
- DM   = mean(v_target)                            (direct method)
- DR   = mean(v_target + w_c (r - q_logged))       (Dudik et al., ICML 2011; cap = inf: plain DR)
- SNDR = mean(v_target) + sum(w (r - q_logged)) / sum(w)   (self-normalised DR, as in OBP)

The plain functions return the point value. The estimator dataclasses (fields = hyperparameters,
as in Open Bandit Pipeline) return an `Estimate` with a 95 % percentile bootstrap interval that
resamples whole groups (users) with replacement and recomputes every normalisation inside each
resample, plus weight diagnostics: effective sample size share ess = (sum w)^2 / sum w^2 / n
(Kong, 1992) of the weights the estimator uses, the largest raw weight, the share of rows whose
weight exceeds the cap, and an `unreliable` flag when ess < `min_ess_share` (default 0.01:
fewer than 1 % of the rows carry the estimate) or the value is not finite. DM uses no weights:
its diagnostics describe the raw weights (the overlap of the two policies) and never flag it.
The reward model's predictions are held fixed in the bootstrap, so the DM / DR / SNDR intervals
leave out the model's own estimation error; cross-fit the model (predict each row with a model
fitted without it) to keep DR unbiased.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from recsim.errors import ConfigError
from recsim.evaluation.bootstrap import (
    group_index,
    group_sums,
    percentile_interval,
    resample_count_chunks,
    resampled_sums,
)

__all__ = [
    "CIS",
    "DM",
    "DR",
    "ESTIMATORS",
    "IPS",
    "NCIS",
    "SNDR",
    "SNIPS",
    "Estimate",
    "Estimator",
    "PointNCIS",
    "cis",
    "dm",
    "dr",
    "expected_capped_weight",
    "importance_weights",
    "ips",
    "ncis",
    "point_ncis",
    "sndr",
    "snips",
]


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


# ----------------------------------------------------------------------------- estimator classes


@dataclasses.dataclass(frozen=True)
class Estimate:
    """One off-policy estimate with its bootstrap interval and weight diagnostics.

    Fields: `estimator` (name), `value`, `ci_low` / `ci_high` (percentile group-bootstrap
    interval), `n` (rows), `n_groups` (resampling units), `ess_share` ((sum w)^2 / sum w^2 / n of
    the weights used), `max_weight` (largest uncapped weight), `capped_share` (share of rows
    with weight > cap), `unreliable` (ess_share below the threshold or a non-finite value),
    `pscore_source` (where the behaviour propensities came from).
    """

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    n_groups: int
    ess_share: float
    max_weight: float
    capped_share: float
    unreliable: bool
    pscore_source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class _Rows:
    reward: np.ndarray
    pscore: np.ndarray
    action_prob: np.ndarray
    weight: np.ndarray
    group: np.ndarray | None
    context: np.ndarray | None
    q_logged: np.ndarray | None
    v_target: np.ndarray | None
    capped_weight_mean: np.ndarray | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Estimator:
    """Base of the estimator dataclasses: bootstrap and reliability settings.

    Fields:
        n_bootstrap: number of group-bootstrap resamples for the interval (>= 1).
        alpha: 1 - confidence level of the percentile interval (0.05: a 95 % interval).
        seed: seed of the resampling generator (same seed => same interval).
        min_ess_share: flag the estimate `unreliable` below this effective-sample-size share.
    """

    n_bootstrap: int = 200
    alpha: float = 0.05
    seed: int = 0
    min_ess_share: float = 0.01

    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()
    uses_cap: ClassVar[bool] = False

    def __post_init__(self) -> None:
        cls = type(self).__name__
        if isinstance(self.n_bootstrap, bool) or not isinstance(self.n_bootstrap, int) or self.n_bootstrap < 1:
            raise ConfigError(f"{cls}.n_bootstrap: must be an integer >= 1, got {self.n_bootstrap!r}")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"{cls}.alpha: must be in (0, 1), got {self.alpha}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"{cls}.seed: must be an integer, got {self.seed!r}")
        if not 0 <= self.min_ess_share <= 1:
            raise ConfigError(f"{cls}.min_ess_share: must be in [0, 1], got {self.min_ess_share}")
        if self.uses_cap:
            _check_cap(getattr(self, "cap", math.inf), f"{cls}.cap")

    # -- the per-estimator part: per-row columns summed per group, and how to combine the sums
    def _columns(self, rows: _Rows) -> np.ndarray:
        raise NotImplementedError

    def _combine(self, sums: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _used_weight(self, rows: _Rows) -> np.ndarray:
        cap = getattr(self, "cap", math.inf)
        return np.minimum(rows.weight, cap)

    def estimate(
        self,
        reward: np.ndarray,
        pscore: np.ndarray,
        action_prob: np.ndarray,
        *,
        group: np.ndarray | None = None,
        context: np.ndarray | None = None,
        q_logged: np.ndarray | None = None,
        v_target: np.ndarray | None = None,
        capped_weight_mean: np.ndarray | None = None,
        pscore_source: str | None = None,
    ) -> Estimate:
        """Estimate the target policy's value with an interval (bootstrap over `group`).

        Args:
            reward, pscore, action_prob: (n,) logged rows (see the module docstring).
            group: (n,) ids of the resampling unit (users); None resamples rows.
            context: (n,) context ids (PointNCIS without `capped_weight_mean`).
            q_logged, v_target: (n,) reward-model predictions (DM, DR, SNDR).
            capped_weight_mean: (n,) exact PointNCIS normaliser per row.
            pscore_source: where the behaviour propensities come from ("logged", "dataset",
                "item popularity", ...); copied into the result.
        """
        reward, pscore, action_prob = _logged(reward, pscore, action_prob)
        n = reward.size
        for arg, given in (("q_logged", q_logged), ("v_target", v_target)):
            if arg in self.needs and given is None:
                raise ValueError(f"{arg}: {type(self).__name__} needs reward-model predictions")
        rows = _Rows(
            reward=reward,
            pscore=pscore,
            action_prob=action_prob,
            weight=importance_weights(pscore, action_prob),
            group=group,
            context=context,
            q_logged=None if q_logged is None else _vector("q_logged", q_logged, n),
            v_target=None if v_target is None else _vector("v_target", v_target, n),
            capped_weight_mean=capped_weight_mean,
        )
        inverse, n_groups = group_index(group, n)
        rng = np.random.default_rng(self.seed)
        value, boot = self._point_and_bootstrap(rows, inverse, n_groups, rng)
        low, high = percentile_interval(boot, self.alpha)
        used = self._used_weight(rows)
        sum_w, sum_w2 = used.sum(), np.square(used).sum()
        ess_share = float(sum_w**2 / sum_w2 / n) if sum_w2 > 0 else 0.0
        cap = getattr(self, "cap", math.inf)
        unreliable = not math.isfinite(value) or (not isinstance(self, DM) and ess_share < self.min_ess_share)
        return Estimate(
            estimator=self.name,
            value=value,
            ci_low=low,
            ci_high=high,
            n=n,
            n_groups=n_groups,
            ess_share=ess_share,
            max_weight=float(rows.weight.max()),
            capped_share=float(np.mean(rows.weight > cap)),
            unreliable=bool(unreliable),
            pscore_source=pscore_source,
        )

    def _point_and_bootstrap(
        self, rows: _Rows, inverse: np.ndarray, n_groups: int, rng: np.random.Generator
    ) -> tuple[float, np.ndarray]:
        sums = group_sums(self._columns(rows), inverse, n_groups)
        value = float(self._combine(sums.sum(axis=0, keepdims=True))[0])
        return value, self._combine(resampled_sums(sums, self.n_bootstrap, rng))


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


@dataclasses.dataclass(frozen=True, kw_only=True)
class IPS(Estimator):
    """Inverse propensity scoring, mean(w r)."""

    name: ClassVar[str] = "ips"

    def _columns(self, rows: _Rows) -> np.ndarray:
        return np.stack([rows.weight * rows.reward, np.ones_like(rows.reward)], axis=1)

    def _combine(self, sums: np.ndarray) -> np.ndarray:
        return sums[:, 0] / sums[:, 1]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CIS(Estimator):
    """Capped IPS, mean(min(w, cap) r). Fields: cap (> 0; math.inf = IPS)."""

    cap: float = 10.0
    name: ClassVar[str] = "cis"
    uses_cap: ClassVar[bool] = True

    def _columns(self, rows: _Rows) -> np.ndarray:
        return np.stack([np.minimum(rows.weight, self.cap) * rows.reward, np.ones_like(rows.reward)], axis=1)

    def _combine(self, sums: np.ndarray) -> np.ndarray:
        return sums[:, 0] / sums[:, 1]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SNIPS(Estimator):
    """Self-normalised IPS, sum(w r) / sum(w)."""

    name: ClassVar[str] = "snips"

    def _columns(self, rows: _Rows) -> np.ndarray:
        return np.stack([rows.weight * rows.reward, rows.weight], axis=1)

    def _combine(self, sums: np.ndarray) -> np.ndarray:
        return _safe_ratio(sums[:, 0], sums[:, 1])


@dataclasses.dataclass(frozen=True, kw_only=True)
class NCIS(Estimator):
    """Normalised capped IPS (Gilotte et al., 2018), sum(w_c r) / sum(w_c). Fields: cap."""

    cap: float = 10.0
    name: ClassVar[str] = "ncis"
    uses_cap: ClassVar[bool] = True

    def _columns(self, rows: _Rows) -> np.ndarray:
        w = np.minimum(rows.weight, self.cap)
        return np.stack([w * rows.reward, w], axis=1)

    def _combine(self, sums: np.ndarray) -> np.ndarray:
        return _safe_ratio(sums[:, 0], sums[:, 1])


@dataclasses.dataclass(frozen=True, kw_only=True)
class PointNCIS(Estimator):
    """PointNCIS (Gilotte et al., 2018) with exact or per-context normalisers. Fields: cap.

    Pass `capped_weight_mean` (exact, single-item actions) or `context` ids to `estimate`.
    In the bootstrap the per-context normalisers are recomputed inside every resample.
    """

    cap: float = 10.0
    name: ClassVar[str] = "point_ncis"
    uses_cap: ClassVar[bool] = True

    def _point_and_bootstrap(
        self, rows: _Rows, inverse: np.ndarray, n_groups: int, rng: np.random.Generator
    ) -> tuple[float, np.ndarray]:
        stats = _PointNCISStats.build(
            rows.reward, rows.pscore, rows.action_prob, self.cap, rows.context, rows.capped_weight_mean, rows.group
        )
        if stats.exact is not None:
            sums = group_sums(np.stack([stats.exact, np.ones_like(stats.exact)], axis=1), inverse, n_groups)
            boot = resampled_sums(sums, self.n_bootstrap, rng)
            return stats.value(), boot[:, 0] / boot[:, 1]
        # Bound the (chunk, n_pairs) multiplicity matrix, not just the (chunk, n_groups) counts.
        max_cells = max(1, (1 << 22) * n_groups // max(stats.pair_group.size, 1))
        chunks = [
            stats.resampled(counts[:, stats.pair_group].astype(np.float64))
            for counts in resample_count_chunks(n_groups, self.n_bootstrap, rng, max_cells)
        ]
        return stats.value(), np.concatenate(chunks)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DM(Estimator):
    """Direct method, mean(v_target) (needs `v_target`)."""

    name: ClassVar[str] = "dm"
    needs: ClassVar[tuple[str, ...]] = ("v_target",)

    def _columns(self, rows: _Rows) -> np.ndarray:
        assert rows.v_target is not None  # in `needs`: estimate raised without it
        return np.stack([rows.v_target, np.ones_like(rows.reward)], axis=1)

    def _combine(self, sums: np.ndarray) -> np.ndarray:
        return sums[:, 0] / sums[:, 1]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DR(Estimator):
    """Doubly robust, mean(v_target + min(w, cap)(r - q_logged)). Fields: cap (inf = plain DR)."""

    cap: float = math.inf
    name: ClassVar[str] = "dr"
    needs: ClassVar[tuple[str, ...]] = ("q_logged", "v_target")
    uses_cap: ClassVar[bool] = True

    def _columns(self, rows: _Rows) -> np.ndarray:
        assert rows.v_target is not None and rows.q_logged is not None  # in `needs`: estimate raised without them
        w = np.minimum(rows.weight, self.cap)
        return np.stack([rows.v_target + w * (rows.reward - rows.q_logged), np.ones_like(rows.reward)], axis=1)

    def _combine(self, sums: np.ndarray) -> np.ndarray:
        return sums[:, 0] / sums[:, 1]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SNDR(Estimator):
    """Self-normalised doubly robust, mean(v_target) + sum(w (r - q)) / sum(w)."""

    name: ClassVar[str] = "sndr"
    needs: ClassVar[tuple[str, ...]] = ("q_logged", "v_target")

    def _columns(self, rows: _Rows) -> np.ndarray:
        assert rows.v_target is not None and rows.q_logged is not None  # in `needs`: estimate raised without them
        w = rows.weight
        ones = np.ones_like(rows.reward)
        return np.stack([rows.v_target, ones, w * (rows.reward - rows.q_logged), w], axis=1)

    def _combine(self, sums: np.ndarray) -> np.ndarray:
        return sums[:, 0] / sums[:, 1] + _safe_ratio(sums[:, 2], sums[:, 3])


ESTIMATORS: dict[str, type[Estimator]] = {
    "ips": IPS,
    "cis": CIS,
    "snips": SNIPS,
    "ncis": NCIS,
    "point_ncis": PointNCIS,
    "dm": DM,
    "dr": DR,
    "sndr": SNDR,
}
