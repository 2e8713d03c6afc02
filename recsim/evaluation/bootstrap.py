"""Cluster (group) bootstrap helpers: resample whole groups (users) with replacement.

A bootstrap resample that draws G groups with replacement out of G is described by how many
times each group is drawn: a Multinomial(G, 1/G, ..., 1/G) count vector. Resampling whole
groups (users) keeps the dependence between a user's rows (cluster bootstrap; Field & Welsh,
2007), and every normalisation is recomputed inside each resample. Any statistic that is
a function of per-group sums (means, ratios of sums, sums of ratios) is then evaluated for all
resamples at once as `counts @ group_sums`, without materialising the resampled rows.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = [
    "group_index",
    "group_sums",
    "mean_interval",
    "percentile_interval",
    "resample_count_chunks",
    "resample_counts",
    "resampled_sums",
]


def group_index(group: np.ndarray | None, n: int, name: str = "group") -> tuple[np.ndarray, int]:
    """(inverse, n_groups): each row's dense group index; every row its own group when None.

    Dense indices follow the sorted group ids (as `np.unique`). `name` is the argument named in
    the error when `group` has the wrong shape.
    """
    if group is None:
        return np.arange(n), n
    group = np.asarray(group)
    if group.ndim != 1 or group.shape[0] != n:
        raise ValueError(f"{name}: expected a 1-D array of length {n}, got shape {group.shape}")
    if np.issubdtype(group.dtype, np.integer) and n and group.min() >= 0 and group.max() < 4 * n + 1024:
        # Small non-negative integer ids (users): O(n) with bincount instead of a sort.
        present = np.bincount(group, minlength=1) > 0
        dense = np.cumsum(present) - 1
        return dense[group], int(present.sum())
    uniques, inverse = np.unique(group, return_inverse=True)
    return inverse.ravel(), int(uniques.size)


def group_sums(columns: np.ndarray, inverse: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the rows of `columns` (n, m) per group; returns (n_groups, m) float64."""
    columns = np.asarray(columns, dtype=np.float64)
    out = np.zeros((n_groups, columns.shape[1]))
    for j in range(columns.shape[1]):
        out[:, j] = np.bincount(inverse, weights=columns[:, j], minlength=n_groups)
    return out


def resample_counts(n_groups: int, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """(n_bootstrap, n_groups) int counts: how often each group is drawn in each resample.

    Each resample draws n_groups group indices uniformly with replacement (a Multinomial(G, 1/G)
    count vector, drawn as indices because numpy's multinomial is ~20x slower for large G).
    """
    draws = rng.integers(0, n_groups, size=(n_bootstrap, n_groups))
    offsets = np.arange(n_bootstrap)[:, None] * n_groups
    return np.bincount((draws + offsets).ravel(), minlength=n_bootstrap * n_groups).reshape(n_bootstrap, n_groups)


def resample_count_chunks(
    n_groups: int, n_bootstrap: int, rng: np.random.Generator, max_cells: int = 1 << 22
) -> Iterator[np.ndarray]:
    """`resample_counts` in chunks of at most `max_cells` counts (bounds memory for many groups).

    The concatenated chunks equal one `resample_counts(n_groups, n_bootstrap, rng)` call.
    """
    chunk = max(1, max_cells // max(n_groups, 1))
    for start in range(0, n_bootstrap, chunk):
        yield resample_counts(n_groups, min(chunk, n_bootstrap - start), rng)


def resampled_sums(sums: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Per-resample totals (n_bootstrap, m) of per-group sums (n_groups, m)."""
    return np.concatenate([c @ sums for c in resample_count_chunks(sums.shape[0], n_bootstrap, rng)])


def percentile_interval(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """The (alpha/2, 1 - alpha/2) percentiles of the finite bootstrap values (NaN if none)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def mean_interval(
    values: np.ndarray,
    group: np.ndarray | None = None,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` (n,) with a percentile interval from a bootstrap
    over groups (rows when `group` is None); each resample's mean is its sum over its row count."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("values: expected a non-empty array of finite numbers")
    inverse, n_groups = group_index(group, values.size)
    sums = group_sums(np.stack([values, np.ones_like(values)], axis=1), inverse, n_groups)
    boot = resampled_sums(sums, n_bootstrap, np.random.default_rng(seed))
    low, high = percentile_interval(boot[:, 0] / boot[:, 1], alpha)
    return float(values.mean()), low, high
