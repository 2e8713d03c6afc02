"""Turn each user's neighbours into a reward and an uncertainty per item (ROLeR, CIKM 2024).

Given, for each query user u, neighbours j_1..j_k with similarities s_1..s_k and the neighbours'
logged feedback f_j(i) (a sparse matrix; unobserved entries are 0), with weights w_uj summing
to 1 over the k neighbours (`neighbour_weights`):

- plain aggregation, as published: r(u, i) = sum_j w_uj f_j(i), unobserved feedback counted as 0;
- observed-only aggregation: only the n_obs(u, i) neighbours who observed i count, with their
  weights renormalised: m(u, i) = sum_{j obs} w_uj f_j(i) / sum_{j obs} w_uj, shrunk toward a prior
  p(u, i) (the user model's prediction, or the item's mean logged feedback) when few observed it:
  r(u, i) = (n_obs m + alpha p) / (n_obs + alpha); with n_obs = 0, r = p.

Uncertainty options:

- "variance": the weighted variance of the neighbours' feedback on i, sum_j w_uj (f_j(i) - r)^2
  (in observed-only mode: over the observers with renormalised weights, around m, then shrunk
  toward the variance of all logged feedback with the same alpha; with n_obs = 0, that variance);
- "distance": the mean distance from u to its k neighbours (cosine distance 1 - s, or Euclidean
  distance for the L2 metric), the same for every item;
- "count": 1 / (1 + n_obs(u, i)).

The (users x items) outputs are built in chunks of users by a compiled kernel (numba, parallel over
users) that walks each neighbour's sparse row of feedback, so a 27,285 x 7,583 float32 table needs
no dense neighbour-feedback tensor and no user x user matrix (measured at 5,000 users x 7,583
items, k = 150: 1.1 s for three sums, against 4.2 s for two scipy sparse products).
"""
from __future__ import annotations

import dataclasses

import numba
import numpy as np
import scipy.sparse as sp

from recsim.errors import ConfigError
from recsim.progress import progress_bar

AGGREGATES = ("mean", "weighted", "softmax")
UNCERTAINTIES = ("variance", "distance", "count")


def similarity_to_distance(similarities: np.ndarray, metric: str) -> np.ndarray:
    """Distance of each neighbour: 1 - cosine similarity, or the Euclidean distance for "l2"
    (whose similarity is minus the distance, see `knn_neighbors`)."""
    return (1.0 - similarities) if metric == "cosine" else -similarities


def neighbour_weights(similarities: np.ndarray, scheme: str, temperature: float = 1.0,
                      metric: str = "cosine") -> np.ndarray:
    """Aggregation weights, float32 (n_users, k), each row summing to 1.

    scheme:
        "mean": 1/k for every neighbour.
        "weighted": proportional to the similarity clipped at 0 (cosine) or to 1 / (1 + distance)
            (L2); a row whose weights are all 0 falls back to 1/k.
        "softmax": softmax(similarity / temperature) over the k neighbours.
    """
    sims = np.asarray(similarities, dtype=np.float64)
    n, k = sims.shape
    if scheme == "mean":
        weights = np.full((n, k), 1.0 / k)
    elif scheme == "weighted":
        raw = np.clip(sims, 0.0, None) if metric == "cosine" else 1.0 / (1.0 + np.clip(-sims, 0.0, None))
        total = raw.sum(axis=1, keepdims=True)
        weights = np.where(total > 0, raw / np.where(total > 0, total, 1.0), 1.0 / k)
    elif scheme == "softmax":
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        z = sims / temperature
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        weights = e / e.sum(axis=1, keepdims=True)
    else:
        raise ConfigError(f"aggregate must be one of {AGGREGATES}, got {scheme!r}")
    return weights.astype(np.float32)


@dataclasses.dataclass
class AggregateParams:
    """How neighbour feedback becomes a table (see the module docstring for the formulas).

    Attributes:
        uncertainty: "variance", "distance" or "count".
        observed_only: average only the neighbours who observed the item.
        shrinkage: alpha >= 0, the prior's weight in neighbours (observed-only mode).
        chunk_size: query users per chunk.
        progress: show a progress bar over chunks (`recsim.progress`).
    """

    uncertainty: str = "variance"
    observed_only: bool = False
    shrinkage: float = 1.0
    chunk_size: int = 1024
    progress: bool = False


@numba.njit(parallel=True, cache=True)
def _accumulate(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, neighbors: np.ndarray,
                weights: np.ndarray, total: np.ndarray, second: np.ndarray, observed_weight: np.ndarray,
                n_obs: np.ndarray) -> None:
    """For each query q and each neighbour j's observed item i, add w f, w f^2, w and 1.

    Outputs are float64 (n_q, n_items), zeroed by the caller; `second`, `observed_weight` and
    `n_obs` may be (0, 0) arrays to skip them. Parallel over queries, so no two threads write the
    same output row.
    """
    n_q, k = neighbors.shape
    do_second = second.shape[0] > 0
    do_weight = observed_weight.shape[0] > 0
    do_count = n_obs.shape[0] > 0
    for q in numba.prange(n_q):
        for t in range(k):
            j = neighbors[q, t]
            w = weights[q, t]
            for p in range(indptr[j], indptr[j + 1]):
                i = indices[p]
                f = data[p]
                total[q, i] += w * f
                if do_second:
                    second[q, i] += w * f * f
                if do_weight:
                    observed_weight[q, i] += w
                if do_count:
                    n_obs[q, i] += 1.0


def aggregate_table(neighbors: np.ndarray, weights: np.ndarray, distances: np.ndarray,
                    feedback: sp.csr_matrix, params: AggregateParams,
                    prior: np.ndarray | None = None, prior_variance: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Reward mean and uncertainty over (query users x items), float32.

    Args:
        neighbors: int (n_q, k), rows of `feedback` that are each query user's neighbours.
        weights: float (n_q, k), aggregation weights, rows summing to 1.
        distances: float (n_q, k), distance to each neighbour (for the "distance" uncertainty).
        feedback: float32 CSR (n_pool, n_items), the neighbours' logged feedback; its stored
            entries (zeros included) are the observed pairs.
        params: see `AggregateParams`.
        prior: float (n_items,) or (n_q, n_items), the shrinkage target (observed-only mode).
        prior_variance: the variance the observed-only variance is shrunk toward.

    Returns:
        (mean, uncertainty), each float32 (n_q, n_items).
    """
    if params.uncertainty not in UNCERTAINTIES:
        raise ConfigError(f"uncertainty must be one of {UNCERTAINTIES}, got {params.uncertainty!r}")
    n_q = neighbors.shape[0]
    n_pool, n_items = feedback.shape
    if params.observed_only and prior is None:
        raise ConfigError("observed-only aggregation needs a prior")
    if prior is not None and prior.ndim == 2 and prior.shape != (n_q, n_items):
        raise ConfigError(f"prior of shape {prior.shape}, expected ({n_q}, {n_items}) or ({n_items},)")
    need_squares = params.uncertainty == "variance"
    need_counts = params.observed_only or params.uncertainty == "count"
    feedback = sp.csr_matrix(feedback, dtype=np.float32)
    indptr = feedback.indptr.astype(np.int64)
    indices = feedback.indices.astype(np.int64)
    data = feedback.data.astype(np.float64)
    neighbors = np.ascontiguousarray(neighbors, dtype=np.int64)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    if len(neighbors) and (neighbors.min() < 0 or neighbors.max() >= n_pool):
        raise ConfigError(f"neighbour ids out of range [0, {n_pool})")
    mean = np.empty((n_q, n_items), dtype=np.float32)
    uncertainty = np.empty((n_q, n_items), dtype=np.float32)
    mean_distance = np.asarray(distances, dtype=np.float64).mean(axis=1)
    alpha = float(params.shrinkage)
    size = min(params.chunk_size, max(n_q, 1))
    total_buf = np.empty((size, n_items))
    second_buf = np.empty((size, n_items) if need_squares else (0, 0))
    weight_buf = np.empty((size, n_items) if params.observed_only else (0, 0))
    count_buf = np.empty((size, n_items) if need_counts else (0, 0))
    starts = range(0, n_q, params.chunk_size)
    for start in progress_bar(starts, "knn aggregate", enabled=params.progress, leave=False):
        rows = slice(start, min(start + params.chunk_size, n_q))
        c = rows.stop - rows.start
        views = [buf[:c] if buf.shape[0] else buf for buf in (total_buf, second_buf, weight_buf, count_buf)]
        for view in views:
            view.fill(0.0)
        _accumulate(indptr, indices, data, neighbors[rows], weights[rows], *views)
        total, second, observed_weight, n_obs = views
        if params.observed_only:
            assert prior is not None  # checked above: observed-only aggregation needs a prior
            seen = observed_weight > 0
            safe = np.where(seen, observed_weight, 1.0)
            obs_mean = np.where(seen, total / safe, 0.0)
            chunk_prior = prior[rows] if prior.ndim == 2 else prior[None, :]
            denom = n_obs + alpha
            shrunk = np.divide(n_obs * obs_mean + alpha * chunk_prior, denom, out=np.zeros_like(obs_mean),
                               where=denom > 0)
            mean[rows] = np.where(n_obs > 0, shrunk, chunk_prior)
            if need_squares:
                obs_var = np.clip(np.where(seen, second / safe, 0.0) - obs_mean**2, 0.0, None)
                shrunk_var = np.divide(n_obs * obs_var + alpha * prior_variance, denom,
                                       out=np.zeros_like(obs_var), where=denom > 0)
                uncertainty[rows] = np.where(n_obs > 0, shrunk_var, prior_variance)
        else:
            mean[rows] = total
            if need_squares:
                uncertainty[rows] = np.clip(second - total**2, 0.0, None)
        if params.uncertainty == "distance":
            uncertainty[rows] = mean_distance[rows, None]
        elif params.uncertainty == "count":
            uncertainty[rows] = 1.0 / (1.0 + n_obs)
    return mean, uncertainty
