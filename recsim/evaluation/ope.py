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
from recsim.evaluation.ope_formulas import (
    _check_cap,
    _logged,
    _PointNCISStats,
    _vector,
    cis,
    dm,
    dr,
    expected_capped_weight,
    importance_weights,
    ips,
    ncis,
    point_ncis,
    sndr,
    snips,
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
    "estimate_columns",
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


# ----------------------------------------------------------------------------- estimator classes


@dataclasses.dataclass(frozen=True)
class Estimate:
    """One off-policy estimate with its bootstrap interval and weight diagnostics.

    Fields: `estimator` (name), `value`, `ci_low` / `ci_high` (percentile group-bootstrap
    interval), `n` (rows), `n_groups` (resampling units), `ess_share` ((sum w)^2 / sum w^2 / n of
    the weights used), `max_weight` (largest uncapped weight), `capped_share` (share of rows
    with weight > cap), `unreliable` (ess_share below the threshold or a non-finite value),
    `pscore_source` (where the behaviour propensities came from), `reason` (why it is
    unreliable; "" when it is not).
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
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def columns(self, prefix: str) -> dict[str, Any]:
        """The result-table columns of this estimate: `<prefix>` (the value, None where
        undefined), `_low`, `_high`, `_ess`, `_unreliable` and `_reason`."""
        return estimate_columns(prefix, self.value, self.ci_low, self.ci_high, self.ess_share, self.unreliable,
                                self.reason)


def estimate_columns(prefix: str, value: float, low: float, high: float, ess: float, unreliable: bool,
                     reason: str) -> dict[str, Any]:
    """Result-table columns of one estimate (see `Estimate.columns`); non-finite numbers become
    None, and an undefined value is always unreliable with a reason."""
    def finite(x: float) -> float | None:
        return float(x) if x is not None and math.isfinite(x) else None

    if finite(value) is None and not reason:
        reason = "undefined"
    return {prefix: finite(value), f"{prefix}_low": finite(low), f"{prefix}_high": finite(high),
            f"{prefix}_ess": finite(ess), f"{prefix}_unreliable": bool(unreliable or finite(value) is None),
            f"{prefix}_reason": reason}


def unreliable_reason(value: float, ess_share: float, min_ess_share: float, sum_weight: float,
                      weighted: bool) -> str:
    """Why an estimate is unreliable ("" when it is not): an undefined value, or too few
    effective rows."""
    if not math.isfinite(value):
        if weighted and sum_weight <= 0:
            return "undefined: every weight is 0 (the policy never picks a logged item)"
        return "undefined: not a finite number"
    if weighted and ess_share < min_ess_share:
        return f"effective sample size {ess_share:.2%} of the rows < {min_ess_share:.0%}"
    return ""


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
        reason = unreliable_reason(value, ess_share, self.min_ess_share, float(sum_w), not isinstance(self, DM))
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
            unreliable=bool(reason),
            pscore_source=pscore_source,
            reason=reason,
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
