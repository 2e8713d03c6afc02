"""Off-policy estimates of the episode value R_tra from the logs alone (issue 16).

R_tra is the mean over users of the undiscounted return of one episode in the environment with
the dataset's quit rule, as `recsim.evaluation.online.OnlineEvaluator` measures it in the ground
truth. The estimators here read only the training log, behaviour propensities, the user model's
reward table and the quit rule; none reads the ground truth.

Logged episodes and the policy's terms on them: `recsim.evaluation.episode_log` (windows of L
steps of each user's time-ordered log, the quit rule replayed on them). Over episodes e of
users u(e), steps t = 1..L (alive_t: the step is played):

- rho_t = prod_{k <= min(t, end)} pi(a_k | h_k) / pi_b(a_k), the cumulative importance weight,
  frozen after the episode's end (the absorbing state has one action); w_t = min(rho_t, cap);
- c_e = 1 / (episodes of u(e)), so every user counts once (the evaluator draws users uniformly);
- `pdis`: sum_t sum_e c_e rho_t alive_t r_t / sum_e c_e, per-decision importance sampling
  (Precup, Sutton & Singh, ICML 2000); unbiased, uncapped;
- `ncis`: sum_t sum_e c_e w_t alive_t r_t / sum_e c_e w_t, capped weights self-normalised at
  every step: NCIS (Gilotte et al., WSDM 2018) applied per decision of the trajectory, i.e.
  weighted per-decision IS (Precup et al., 2000) with capped weights; a step whose weights are all
  0 contributes 0;
- `model`: the policy rolled out in the simulator over the user model's table with the dataset's
  quit rule (the rule built over that table: the distance rule reads the model's columns), the
  same rollout as the ground-truth evaluation (`recsim.evaluation.rollout.rollout`); its
  interval covers the rollout's users, not the model's error;
- `dr`: sum_t sum_e c_e [rho_t (r_t - Q_t) + rho_{t-1} V_t] alive_t / sum_e c_e, the sequential
  doubly robust estimator (Jiang & Li, ICML 2016), rho_0 = 1, with the model values Q, V of
  `episode_log.target_terms` (from `model`'s rollouts); unbiased for any Q, uncapped;
- `wdr`: sum_t [sum_e c_e w_t (r_t - Q_t) alive_t / sum_e c_e w_t + sum_e c_e w_{t-1} V_t
  alive_t / sum_e c_e w_{t-1}], the weighted doubly robust estimator (Thomas & Brunskill, ICML
  2016) with capped weights.

Diagnostics: the effective sample size share of step t's weights, ess_t = [(sum c w)^2 /
sum (c w)^2] / [(sum c)^2 / sum c^2] (Kong, 1992; 1 when every weight is equal), for the
weights each estimator uses (`model`: ncis's, describing the overlap only); `ess` = min_t ess_t.
An estimate is `unreliable` when ess < `min_ess_share` (not `model`) or it is not finite.
Intervals: 95 % percentile bootstrap over users (`recsim.evaluation.bootstrap`), every
normalisation recomputed in each resample; the model values are held fixed.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from recsim.env import EnvConfig, QuitRule, QuitRuleConfig, table_quit_rule
from recsim.errors import ConfigError
from recsim.evaluation.bootstrap import group_index, group_sums, mean_interval, percentile_interval, resampled_sums
from recsim.evaluation.episode_log import (
    LoggedEpisodes,
    TargetTerms,
    logged_episodes,
    target_terms,
    value_to_go,
)
from recsim.evaluation.logged import item_columns
from recsim.evaluation.online import policy_seed, table_item_categories
from recsim.evaluation.ope import estimate_columns
from recsim.evaluation.rollout import EpisodeLog, rollout
from recsim.reward.table import RewardTable

EPISODE_ESTIMATORS = ("pdis", "ncis", "model", "dr", "wdr")
"""Every episode-value estimator (module docstring), in the order they are computed."""
NEEDS_MODEL = ("model", "dr", "wdr")


@dataclasses.dataclass(frozen=True)
class EpisodeEstimate:
    """One estimate of R_tra.

    Fields: `value`, `low` / `high` (95 % user-bootstrap interval), `ess` (min over steps of the
    per-step ESS share), `ess_per_step` (float (L,)), `unreliable`, `n_episodes`, `n_users`,
    `reason` (why it is unreliable; empty when it is not).
    """

    value: float
    low: float
    high: float
    ess: float
    ess_per_step: np.ndarray
    unreliable: bool
    n_episodes: int
    n_users: int
    reason: str = ""

    def columns(self, name: str) -> dict[str, Any]:
        """`ope_rtra_<name>` with `_low`, `_high`, `_ess`, `_unreliable` and `_reason`
        (`recsim.evaluation.ope.estimate_columns`: None where a number is undefined)."""
        reason = self.reason or (f"lowest per-step ESS share {self.ess:.2%}" if self.unreliable else "")
        return estimate_columns(f"ope_rtra_{name}", self.value, self.low, self.high, self.ess, self.unreliable,
                                reason)


def missing_estimate(length: int, reason: str) -> EpisodeEstimate:
    """The estimate of an estimator whose pieces are missing: NaN, flagged unreliable with `reason`."""
    return EpisodeEstimate(math.nan, math.nan, math.nan, 0.0, np.zeros(length), True, 0, 0, reason)


def cumulative_weights(episodes: LoggedEpisodes, terms: TargetTerms) -> np.ndarray:
    """float64 (E, L): rho_t, the cumulative importance weight frozen after the episode's end."""
    ratio = np.where(episodes.alive, terms.action_prob / episodes.pscore, 1.0)
    with np.errstate(over="ignore"):
        return np.cumprod(ratio, axis=1)


def ess_per_step(weights: np.ndarray, user_weight: np.ndarray) -> np.ndarray:
    """float64 (L,): the ESS share of each step's weights `weights` (E, L) (module docstring)."""
    cw = user_weight[:, None] * weights
    with np.errstate(invalid="ignore", over="ignore"):
        kish = cw.sum(axis=0) ** 2 / np.square(cw).sum(axis=0)
    base = user_weight.sum() ** 2 / np.square(user_weight).sum()
    return np.nan_to_num(kish / base, nan=0.0, posinf=0.0)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (a step without support)."""
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


def _columns(ep: LoggedEpisodes, rho: np.ndarray, w: np.ndarray, terms: TargetTerms, name: str) -> np.ndarray:
    """Per-episode columns whose user sums determine the estimate (see `_combine`)."""
    c = ep.user_weight[:, None]
    r = np.where(ep.alive, ep.rewards, 0.0)
    if name == "pdis":
        return np.concatenate([c * rho * r, c], axis=1)
    if name == "ncis":
        return np.concatenate([c * w * r, c * w], axis=1)
    assert terms.q_logged is not None and terms.v_target is not None
    weights = rho if name == "dr" else w
    previous = np.concatenate([np.ones((len(c), 1)), weights[:, :-1]], axis=1)
    correction = c * weights * np.where(ep.alive, r - terms.q_logged, 0.0)
    baseline = c * previous * np.where(ep.alive, terms.v_target, 0.0)
    if name == "dr":
        return np.concatenate([correction + baseline, c], axis=1)
    return np.concatenate([correction, baseline, c * weights, c * previous], axis=1)


def _combine(sums: np.ndarray, name: str, length: int) -> np.ndarray:
    """The estimate (B,) from user sums (B, k) of `_columns`."""
    L = length
    if name in ("pdis", "dr"):
        return sums[:, :L].sum(axis=1) / sums[:, L]
    if name == "ncis":
        return _ratio(sums[:, :L], sums[:, L:2 * L]).sum(axis=1)
    return (_ratio(sums[:, :L], sums[:, 2 * L:3 * L]) + _ratio(sums[:, L:2 * L], sums[:, 3 * L:])).sum(axis=1)


def weighted_estimate(episodes: LoggedEpisodes, terms: TargetTerms, name: str, cap: float, n_bootstrap: int,
                      seed: int, min_ess_share: float = 0.01) -> EpisodeEstimate:
    """`pdis`, `ncis`, `dr` or `wdr` (module docstring) with its interval and diagnostics."""
    if name in ("dr", "wdr") and terms.q_logged is None:
        return missing_estimate(episodes.items.shape[1], "no reward model")
    rho = cumulative_weights(episodes, terms)
    w = np.minimum(rho, cap)
    length = episodes.items.shape[1]
    columns = np.nan_to_num(_columns(episodes, rho, w, terms, name), nan=0.0)
    inverse, n_groups = group_index(episodes.users, len(episodes.users), "users")
    sums = group_sums(columns, inverse, n_groups)
    with np.errstate(invalid="ignore", over="ignore"):
        value = float(_combine(sums.sum(axis=0, keepdims=True), name, length)[0])
        boot = _combine(resampled_sums(sums, n_bootstrap, np.random.default_rng(seed)), name, length)
    low, high = percentile_interval(boot)
    ess = ess_per_step(rho if name in ("pdis", "dr") else w, episodes.user_weight)
    unreliable = not math.isfinite(value) or float(ess.min()) < min_ess_share
    return EpisodeEstimate(value, low, high, float(ess.min()), ess, bool(unreliable), len(episodes.users), n_groups)


def model_rollout(policy: Any, table: RewardTable, quit_rule: QuitRule, env_config: EnvConfig, episodes: int,
                  seed: int, run_seed: int, batch_size: int = 1000) -> EpisodeLog:
    """The policy's episodes in the simulator over `table` (raw reward), the ground-truth
    evaluation's rollout with the users of `seed` and the policy seed `policy_seed(seed, run_seed)`."""
    return rollout(policy, table, env_config.mode, quit_rule, episodes, user_seed=seed, env_config=env_config,
                   batch_size=batch_size, policy_seed=policy_seed(seed, run_seed))


def model_estimate(log: EpisodeLog, overlap_ess: np.ndarray, n_bootstrap: int, seed: int) -> EpisodeEstimate:
    """`model`: the mean return of the simulator's episodes with a bootstrap over their users."""
    returns = log.returns
    value, low, high = mean_interval(returns, log.users, n_bootstrap, seed=seed)
    return EpisodeEstimate(value, low, high, float(overlap_ess.min()), overlap_ess, not math.isfinite(value),
                           len(returns), int(np.unique(log.users).size))


@dataclasses.dataclass(frozen=True)
class EpisodeOPEConfig:
    """Settings of the episode-value estimates.

    Attributes:
        estimators: names from `EPISODE_ESTIMATORS`.
        cap: weight cap of `ncis` and `wdr` (> 0).
        n_bootstrap: bootstrap resamples of every interval.
        seed: seed of the chosen users, the bootstrap and the model rollout's users.
        max_users: logged users at most (seeded choice among those the user model covers).
        stride: rows between the starts of a user's logged windows.
        model_episodes: episodes of the model rollout.
        run_seed: the run seed of the model rollout's policy sampling (as in `OnlineEvaluator`).
        min_ess_share: flag an estimate `unreliable` below this ESS share.
    """

    estimators: tuple[str, ...] = EPISODE_ESTIMATORS
    cap: float = 10.0
    n_bootstrap: int = 200
    seed: int = 0
    max_users: int = 100
    stride: int = 1
    model_episodes: int = 1000
    run_seed: int = 0
    min_ess_share: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(self, "estimators", tuple(self.estimators))
        unknown = [e for e in self.estimators if e not in EPISODE_ESTIMATORS]
        if unknown:
            raise ConfigError(f"EpisodeOPEConfig.estimators: unknown {unknown}; choose from {list(EPISODE_ESTIMATORS)}")
        if not self.cap > 0:
            raise ConfigError(f"EpisodeOPEConfig.cap: must be > 0, got {self.cap}")
        for name in ("n_bootstrap", "max_users", "stride", "model_episodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"EpisodeOPEConfig.{name}: must be >= 1, got {getattr(self, name)}")


@dataclasses.dataclass
class EpisodeInputs:
    """What the estimates of one policy are computed from: the logged episodes, the policy's
    terms on them and the model rollout (None without a user model table)."""

    episodes: LoggedEpisodes
    terms: TargetTerms
    log: EpisodeLog | None


def prepare(policy: Any, dataset: Any, env_config: EnvConfig, quit_config: QuitRuleConfig,
            user_model_table: RewardTable | None, config: EpisodeOPEConfig,
            pscore: np.ndarray | None = None) -> EpisodeInputs:
    """The logged episodes, the policy's terms and the model rollout (see `estimate_episodes`)."""
    if user_model_table is not None:
        columns = np.full(dataset.n_items, -1, dtype=np.int64)
        columns[np.asarray(user_model_table.items, dtype=np.int64)] = np.arange(user_model_table.shape[1])
        n_columns = user_model_table.shape[1]
        rule_table = user_model_table
    else:
        if quit_config.kind == "distance":
            raise ConfigError("episode estimates: the distance quit rule reads the user model's table; none was given")
        columns = item_columns(dataset)
        n_columns = int(columns.max()) + 1
        rule_table = RewardTable(np.zeros((1, n_columns)), np.zeros((1, n_columns)), np.zeros(1, np.int32),
                                 np.flatnonzero(columns >= 0)[np.argsort(columns[columns >= 0])])
    quit_rule = table_quit_rule(quit_config, rule_table, table_item_categories(dataset, rule_table))
    candidates = np.unique(dataset.train["user"].to_numpy(np.int64))
    if user_model_table is not None:
        candidates = candidates[np.isin(candidates, np.asarray(user_model_table.users, np.int64))]
    if len(candidates) > config.max_users:
        candidates = np.sort(np.random.default_rng(config.seed).choice(candidates, config.max_users, replace=False))
    mode = env_config.parsed_mode
    replayed_rule = quit_rule if mode.quit_enabled else None
    episodes = logged_episodes(dataset, columns, env_config.limit_for(n_columns), replayed_rule, candidates,
                               config.stride, pscore)
    wanted = set(config.estimators) if len(episodes.users) else set(config.estimators) & {"model"}
    log = None
    if user_model_table is not None and wanted & set(NEEDS_MODEL):
        log = model_rollout(policy, user_model_table, quit_rule, env_config, config.model_episodes, config.seed,
                            config.run_seed)
    to_go = value_to_go(log.rewards, log.lengths) if log is not None and wanted & {"dr", "wdr"} else None
    terms = target_terms(policy, episodes, env_config.history_window, n_columns, mode.mask_recommended,
                         replayed_rule, user_model_table if to_go is not None else None, to_go)
    return EpisodeInputs(episodes, terms, log)


def estimates_from(inputs: EpisodeInputs, config: EpisodeOPEConfig) -> dict[str, EpisodeEstimate]:
    """One `EpisodeEstimate` per name of `config.estimators` from prepared inputs."""
    episodes, terms = inputs.episodes, inputs.terms
    out: dict[str, EpisodeEstimate] = {}
    for name in config.estimators:
        if name == "model":
            overlap = ess_per_step(np.minimum(cumulative_weights(episodes, terms), config.cap), episodes.user_weight)
            out[name] = (model_estimate(inputs.log, overlap, config.n_bootstrap, config.seed)
                         if inputs.log is not None else missing_estimate(episodes.items.shape[1], "no reward model"))
        else:
            out[name] = weighted_estimate(episodes, terms, name, config.cap, config.n_bootstrap, config.seed,
                                          config.min_ess_share)
    return out


def estimate_episodes(policy: Any, dataset: Any, env_config: EnvConfig, quit_config: QuitRuleConfig,
                      user_model_table: RewardTable | None, config: EpisodeOPEConfig,
                      pscore: np.ndarray | None = None) -> tuple[dict[str, EpisodeEstimate], EpisodeInputs]:
    """Every estimate of `config.estimators` (an `EpisodeEstimate` each) and its inputs.

    The action columns are the user model table's (else the truth's, else every item); the quit
    rule is built over the user model's table (without one only the category rule can be built,
    from the item categories). Users: those of the log that the table covers, at most
    `config.max_users` (seeded choice). Without a user model table `model`, `dr` and `wdr` are
    NaN and flagged; every estimate but `model` is, when no user has an episode's length of
    logged rows.
    See `episode_estimates`.
    """
    inputs = prepare(policy, dataset, env_config, quit_config, user_model_table, config, pscore)
    if not len(inputs.episodes.users):
        length = inputs.episodes.items.shape[1]
        reason = "no user has a whole episode of logged rows"
        out = {name: missing_estimate(length, reason) for name in config.estimators}
        if "model" in out and inputs.log is not None:  # the rollout needs no logged episode
            out["model"] = model_estimate(inputs.log, np.zeros(length), config.n_bootstrap, config.seed)
        return out, inputs
    return estimates_from(inputs, config), inputs


def episode_estimates(policy: Any, dataset: Any, env_config: EnvConfig, quit_config: QuitRuleConfig,
                      user_model_table: RewardTable | None,
                      estimators: tuple[str, ...] | list[str] = EPISODE_ESTIMATORS,
                      cap: float = 10.0, n_bootstrap: int = 200, seed: int = 0, *, max_users: int = 100,
                      stride: int = 1, model_episodes: int = 1000, run_seed: int = 0,
                      pscore: np.ndarray | None = None) -> dict[str, Any]:
    """Estimates of the policy's R_tra in `env_config.mode` from the training log alone.

    Args:
        policy: a `Recommender` over the user model table's columns.
        dataset: the `Dataset` (its training log).
        env_config: the evaluation's episode settings, with its mode (FB, NX_0, NX_k).
        quit_config: the dataset's quit rule.
        user_model_table: the user model's reward table (None: `model`, `dr`, `wdr` are NaN).
        estimators: names from `EPISODE_ESTIMATORS` (module docstring).
        cap: weight cap of `ncis` and `wdr`.
        n_bootstrap: bootstrap resamples over users.
        seed: seed of the users, the bootstrap and the model rollout.
        max_users: logged users at most.
        stride: logged rows between the starts of a user's windows.
        model_episodes: episodes of the model rollout.
        run_seed: the run seed of the model rollout's policy sampling.
        pscore: float (n_train,) behaviour propensities of the training rows (None: the log's
            `propensity` column when positive, else item popularity).

    Returns:
        `ope_rtra_<name>`, `_low`, `_high`, `_ess`, `_unreliable` (1.0 / 0.0) per estimator, plus
        `ope_n_episodes` and `ope_n_episode_users` (the logged episodes and users used).
    """
    config = EpisodeOPEConfig(tuple(estimators), cap, n_bootstrap, seed, max_users, stride, model_episodes, run_seed)
    results, inputs = estimate_episodes(policy, dataset, env_config, quit_config, user_model_table, config, pscore)
    out: dict[str, Any] = {}
    for name, estimate in results.items():
        out.update(estimate.columns(name))
    out["ope_n_episodes"] = float(len(inputs.episodes.users))
    out["ope_n_episode_users"] = float(inputs.episodes.n_users)
    return out
