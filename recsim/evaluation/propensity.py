"""Behaviour-policy propensities for off-policy evaluation where the log records none.

Each model gives pi_b(a | u), the probability that the logging policy showed item a to user u,
for the rows of the training log. The choice is `evaluation.ope_propensity`; its name (with
its fitted parameters) is the `ope_pscore_source` of every output.

- "logged": the log's own `propensity` column (the synthetic world's exact pi_b; Coat's shipped
  observation propensities). An error where the log has none.
- "item_popularity": pi_b(a) = n(a) / N, the item's share of the training log, the same for
  every user (the propensity of Yang et al., "Unbiased offline recommender evaluation for
  missing-not-at-random implicit feedback", RecSys 2018, without their power-law exponent).
- "user_model_softmax": pi_b(a | u) = softmax_a(q(u, a) / T) over the columns of the user
  model's reward table q, with the temperature T fitted by maximum likelihood of the logged
  (u, a) pairs (a multinomial logit with one feature; McFadden, 1974).
- "user_model_popularity_softmax": pi_b(a | u) = softmax_a(theta_q q(u, a) + theta_p log n(a)),
  both coefficients fitted by maximum likelihood: the user model's scores and item popularity as
  the two features of a conditional logit (the synthetic world's logging policy has this form).
- "auto": "logged" where the log has a positive `propensity` column, else "item_popularity".

The softmax models are fitted on the rows of at most `max_fit_users` table users (a seeded
choice) and defined only for the table's users and items; `covered_users` says which.
`calibration` compares estimated with known propensities (Spearman rank correlation and the
mean absolute log-ratio), as `benchmarks/propensity.py` does on the synthetic world.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy import optimize, stats
from scipy.special import logsumexp

from recsim.errors import ConfigError, DataError
from recsim.reward.table import RewardTable

PROPENSITY_MODELS = ("auto", "logged", "item_popularity", "user_model_softmax", "user_model_popularity_softmax")
NEEDS_TABLE = ("user_model_softmax", "user_model_popularity_softmax")
MAX_FIT_USERS = 1000
CHUNK_USERS = 512
MIN_PSCORE = 1e-12
"""Floor of a fitted propensity (a softmax can underflow; IPS divides by it)."""


@dataclasses.dataclass(frozen=True)
class BehaviourModel:
    """A fitted behaviour policy (see the module docstring).

    Attributes:
        kind: the model's name (`PROPENSITY_MODELS`, "auto" resolved).
        source: the name with its fitted parameters (the outputs' `ope_pscore_source`).
        item_share: float64 (n_items,) n(a) / N of the training log (popularity model).
        theta: float64 (K,) the softmax models' coefficients (None for the others).
        scores: float32 (n_table_users, n_table_items) the reward table's means q(u, a).
        log_popularity: float64 (n_table_items,) log n(a) of the table's items (second feature).
        row_of_user: int64 (n_users,) table row of each dataset user (-1: not covered).
        column_of_item: int64 (n_items,) table column of each dataset item (-1: not covered).
    """

    kind: str
    source: str
    item_share: np.ndarray
    theta: np.ndarray | None = None
    scores: np.ndarray | None = None
    log_popularity: np.ndarray | None = None
    row_of_user: np.ndarray | None = None
    column_of_item: np.ndarray | None = None

    @property
    def covered_users(self) -> np.ndarray | None:
        """int64 ids of the users the model is defined for (None: every user)."""
        return None if self.row_of_user is None else np.flatnonzero(self.row_of_user >= 0)

    def features(self, rows: np.ndarray) -> list[np.ndarray]:
        """The K features (len(rows), n_table_items) of table rows `rows` (softmax models)."""
        assert self.scores is not None
        out = [self.scores[rows].astype(np.float64)]
        if self.log_popularity is not None:
            out.append(np.broadcast_to(self.log_popularity, out[0].shape))
        return out

    def pscore(self, users: np.ndarray, items: np.ndarray, logged: np.ndarray | None = None) -> np.ndarray:
        """float64 (n,) pi_b(items | users) for dataset ids; `logged` (n,) the log's own column
        ("logged" model). Rows outside the model's users or items raise `DataError`."""
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        if self.kind == "logged":
            if logged is None:
                raise DataError("train", "propensity", "the log has no propensity column")
            return np.asarray(logged, np.float64)
        if self.theta is None:
            return self.item_share[items]
        assert self.row_of_user is not None and self.column_of_item is not None
        rows, columns = self.row_of_user[users], self.column_of_item[items]
        if (rows < 0).any() or (columns < 0).any():
            raise DataError("train", "user", f"{self.kind}: rows outside the reward table's users or items")
        out = np.empty(len(rows))
        unique, inverse = np.unique(rows, return_inverse=True)
        for start in range(0, len(unique), CHUNK_USERS):
            part = unique[start:start + CHUNK_USERS]
            logits = sum(t * f for t, f in zip(self.theta, self.features(part)))
            assert isinstance(logits, np.ndarray)
            log_probs = logits - logsumexp(logits, axis=1, keepdims=True)
            at = np.flatnonzero((inverse >= start) & (inverse < start + len(part)))
            out[at] = log_probs[inverse[at] - start, columns[at]]
        return np.maximum(np.exp(out), MIN_PSCORE)


def resolve_kind(kind: str, log: Any) -> str:
    """`kind` with "auto" resolved against the training log `log` (see the module docstring)."""
    if kind not in PROPENSITY_MODELS:
        raise ConfigError(f"evaluation.ope_propensity: unknown model {kind!r}; "
                          f"choose from {', '.join(PROPENSITY_MODELS)}")
    has_logged = "propensity" in log.columns and bool((log["propensity"].to_numpy() > 0).all())
    if kind == "auto":
        return "logged" if has_logged else "item_popularity"
    if kind == "logged" and not has_logged:
        raise DataError("train", "propensity", "evaluation.ope_propensity is 'logged' but the log has no positive "
                                               "propensity column; choose item_popularity or a user-model softmax")
    return kind


def fit_behaviour(kind: str, dataset: Any, table: RewardTable | None, max_fit_users: int = MAX_FIT_USERS,
                  seed: int = 0) -> BehaviourModel:
    """The behaviour model `kind` fitted on `dataset.train` (softmax models: over `table`)."""
    log = dataset.train
    kind = resolve_kind(kind, log)
    counts = np.bincount(log["item"].to_numpy(), minlength=dataset.n_items).astype(np.float64)
    share = counts / counts.sum()
    if kind == "logged":
        return BehaviourModel(kind, "logged", share)
    if kind == "item_popularity":
        return BehaviourModel(kind, "item popularity", share)
    if table is None:
        raise ConfigError(f"evaluation.ope_propensity: {kind} needs the user model's reward table")
    row_of_user = np.full(dataset.n_users, -1, np.int64)
    row_of_user[table.users] = np.arange(len(table.users))
    column_of_item = np.full(dataset.n_items, -1, np.int64)
    column_of_item[table.items] = np.arange(len(table.items))
    log_pop = np.log(np.maximum(counts[table.items], 0.5)) if kind == "user_model_popularity_softmax" else None
    unfitted = BehaviourModel(kind, kind, share, None, table.mean, log_pop, row_of_user, column_of_item)
    rows, columns = row_of_user[log["user"].to_numpy()], column_of_item[log["item"].to_numpy()]
    keep = (rows >= 0) & (columns >= 0)
    fit_users, user_rows, position = _fit_sample(rows[keep], max_fit_users, seed)
    theta = fit_conditional_logit(unfitted.features(fit_users), user_rows, columns[keep][position],
                                  nonnegative=kind == "user_model_softmax")
    if kind == "user_model_softmax":
        temperature = math.inf if theta[0] == 0 else 1.0 / theta[0]
        source = f"user-model softmax (T = {temperature:.3g}, ML fit on {len(position):,} rows)"
    else:
        source = (f"user-model x popularity softmax (theta_q = {theta[0]:.3g}, theta_log_pop = {theta[1]:.3g}, "
                  f"ML fit on {len(position):,} rows)")
    return dataclasses.replace(unfitted, source=source, theta=theta)


def _fit_sample(rows: np.ndarray, max_users: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(table rows of the chosen users (U,), each kept log row's index into them (n,), the kept
    log rows' positions (n,)): the rows of at most `max_users` users, a seeded choice."""
    present = np.unique(rows)
    if len(present) > max_users:
        present = np.sort(np.random.default_rng(seed).choice(present, max_users, replace=False))
    position = np.flatnonzero(np.isin(rows, present))
    return present, np.searchsorted(present, rows[position]), position


def fit_conditional_logit(features: list[np.ndarray], user_rows: np.ndarray, chosen: np.ndarray,
                          nonnegative: bool = False) -> np.ndarray:
    """Maximum-likelihood coefficients theta (K,) of p(a | u) = softmax_a(sum_k theta_k F_k[u, a]).

    Args:
        features: K arrays (U, A): feature k of every (user, item).
        user_rows: int (n,) row in the features of each logged choice.
        chosen: int (n,) column of the chosen item of each logged choice.
        nonnegative: constrain theta >= 0 (a temperature).
    The negative mean log-likelihood is convex in theta; L-BFGS-B with its exact gradient.
    """
    stacked = np.stack([np.asarray(f, np.float64) for f in features])  # (K, U, A)
    n = len(chosen)
    if n == 0:
        raise DataError("train", "user", "no logged row of the reward table's users and items to fit on")
    per_user = np.bincount(user_rows, minlength=stacked.shape[1]).astype(np.float64) / n  # (U,)
    observed = stacked[:, user_rows, chosen].mean(axis=1)  # (K,)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        logits = np.tensordot(theta, stacked, axes=1)  # (U, A)
        lse = logsumexp(logits, axis=1)
        probs = np.exp(logits - lse[:, None])
        expected = np.einsum("kua,ua,u->k", stacked, probs, per_user)
        return float(per_user @ lse - theta @ observed), expected - observed

    bounds = [(0.0, None)] * len(features) if nonnegative else None
    result = optimize.minimize(loss, np.full(len(features), 0.5), jac=True, method="L-BFGS-B", bounds=bounds)
    return np.asarray(result.x, np.float64)


def calibration(estimated: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """How well estimated propensities (n,) match known ones (n,), both > 0.

    Returns `spearman` (rank correlation), `mean_abs_log_ratio` (mean |log(est / true)|; 0 is
    exact, log 2 = 0.69 is off by a factor of two on average) and `median_abs_log_ratio`.
    """
    estimated, true = np.asarray(estimated, np.float64), np.asarray(true, np.float64)
    ratio = np.abs(np.log(estimated / true))
    rho = stats.spearmanr(estimated, true).statistic if np.ptp(estimated) > 0 and np.ptp(true) > 0 else 0.0
    return {"spearman": float(rho), "mean_abs_log_ratio": float(ratio.mean()),
            "median_abs_log_ratio": float(np.median(ratio))}
