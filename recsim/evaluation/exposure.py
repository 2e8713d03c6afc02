"""Matthew-effect, exposure and diversity metrics over recommended items (pure functions).

Recommended items can be given as
- a 1-D int array of item ids (e.g. all recommendations of an evaluation, concatenated),
- an int array of any shape whose negative entries are padding (e.g. (n_episodes, max_len)
  with -1 after an episode ends), or
- a sequence of 1-D int arrays, one per episode (ragged).
Every function flattens them the same way (`flatten_items`).

`item_categories` is the dataset's bool matrix of shape (n_items, n_categories) (multi-label).

Sources: MCD as in DORL (Gao et al., SIGIR 2023) and ROLeR (CIKM 2024); Gini and Lorenz curve of
exposure (e.g. Fleder & Hosanagar, 2009); intra-list diversity (Ziegler et al., WWW 2005);
novelty as mean self-information -log2 popularity (Zhou et al., PNAS 2010); long-tail share and
popularity lift (Abdollahpouri et al., RecSys 2017 / 2019).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "category_entropy",
    "coverage",
    "dominating_categories",
    "exposure_counts",
    "flatten_items",
    "gini",
    "intra_list_diversity",
    "long_tail_share",
    "lorenz_curve",
    "mcd",
    "novelty",
    "popularity_lift",
]

ItemsLike = np.ndarray | Sequence[np.ndarray] | Sequence[int]


def flatten_items(items: ItemsLike) -> np.ndarray:
    """All item ids in `items` as a 1-D int64 array, dropping negative (padding) entries."""
    if isinstance(items, np.ndarray):
        flat = items.ravel()
    else:
        parts = [np.asarray(p).ravel() for p in items]
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if flat.size and not np.issubdtype(flat.dtype, np.integer):
        raise ValueError(f"items: expected integer item ids, got dtype {flat.dtype}")
    flat = flat.astype(np.int64, copy=False)
    return flat[flat >= 0]


def _check_ids(items: np.ndarray, n_items: int, name: str = "items") -> None:
    if items.size and items.max() >= n_items:
        raise ValueError(f"{name}: item id {int(items.max())} out of range [0, {n_items})")


def _check_categories(item_categories: np.ndarray) -> np.ndarray:
    item_categories = np.asarray(item_categories)
    if item_categories.ndim != 2 or item_categories.dtype != bool:
        raise ValueError("item_categories: expected a bool array of shape (n_items, n_categories)")
    return item_categories


def exposure_counts(items: ItemsLike, n_items: int) -> np.ndarray:
    """How many times each item was recommended; int64 array of shape (n_items,)."""
    flat = flatten_items(items)
    _check_ids(flat, n_items)
    return np.bincount(flat, minlength=n_items)


def dominating_categories(
    train_items: np.ndarray,
    train_labels: np.ndarray,
    item_categories: np.ndarray,
    share: float = 0.8,
    threshold: float = 0.0,
) -> np.ndarray:
    """The majority categories of the training positives, as sorted category indices.

    Positives are the training rows with `label > threshold` (KuaiRec: watch ratio; Coat:
    rating; use the threshold the dataset's positive label needs). Each positive counts once for
    every category its item carries; categories are ranked by their share of these counts (ties:
    lower index first) and the dominating set is the top categories whose cumulative share stays
    within `share` (<= share, up to 1e-12), as in DORL's MCD (10 of 31 categories on KuaiRec).
    Categories without positives are never dominating. The set may be empty when the largest
    category alone exceeds `share`.

    Args:
        train_items: (n_rows,) item id of every training row.
        train_labels: (n_rows,) label of every training row.
        item_categories: (n_items, n_categories) bool.
        share: cumulative share bound in (0, 1].
        threshold: a row is positive when its label is above it.
    """
    item_categories = _check_categories(item_categories)
    train_items = np.asarray(train_items).astype(np.int64, copy=False).ravel()
    train_labels = np.asarray(train_labels, dtype=np.float64).ravel()
    if train_items.shape != train_labels.shape:
        raise ValueError(f"train_labels: {train_labels.shape[0]} labels for {train_items.shape[0]} items")
    if not 0 < share <= 1:
        raise ValueError(f"share: must be in (0, 1], got {share}")
    _check_ids(train_items, item_categories.shape[0], "train_items")
    positives = train_items[train_labels > threshold]
    per_item = np.bincount(positives, minlength=item_categories.shape[0]).astype(np.float64)
    counts = per_item @ item_categories
    total = counts.sum()
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")
    cumulative = np.cumsum(counts[order]) / total
    keep = (cumulative <= share + 1e-12) & (counts[order] > 0)
    return np.sort(order[keep])


def mcd(recommended_items: ItemsLike, item_categories: np.ndarray, dominating: np.ndarray) -> float:
    """Majority-category domination: share of recommended items carrying a dominating category.

    Lower means less Matthew effect (DORL, SIGIR 2023). NaN when nothing was recommended.
    """
    item_categories = _check_categories(item_categories)
    flat = flatten_items(recommended_items)
    _check_ids(flat, item_categories.shape[0], "recommended_items")
    if flat.size == 0:
        return float("nan")
    is_dominating = np.asarray(item_categories[:, np.asarray(dominating, dtype=np.int64)].any(axis=1))
    return float(is_dominating[flat].mean())


def gini(exposure_counts: np.ndarray) -> float:
    """Gini coefficient of item exposure over all items (zeros included); 0 = equal, -> 1 = one item.

    G = sum_i (2 i - n - 1) x_(i) / (n sum x) with x sorted ascending and i = 1..n. NaN when the
    total exposure is 0.
    """
    x = np.sort(np.asarray(exposure_counts, dtype=np.float64).ravel())
    if x.size == 0 or (x < 0).any() or not np.isfinite(x).all():
        raise ValueError("exposure_counts: expected a non-empty array of finite values >= 0")
    total = x.sum()
    if total == 0:
        return float("nan")
    n = x.size
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def lorenz_curve(exposure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curve of item exposure: (share of items, share of exposure), each of length n + 1.

    Items are sorted by increasing exposure; both arrays start at 0 and end at 1. The Gini
    coefficient is 1 - 2 * (area under the curve) (trapezoid rule).
    """
    x = np.sort(np.asarray(exposure, dtype=np.float64).ravel())
    if x.size == 0 or (x < 0).any() or x.sum() == 0:
        raise ValueError("exposure: expected a non-empty array of values >= 0 with a positive total")
    items = np.linspace(0.0, 1.0, x.size + 1)
    share = np.concatenate([[0.0], np.cumsum(x) / x.sum()])
    return items, share


def coverage(items: ItemsLike, n_items: int) -> float:
    """Unique recommended items / n_items."""
    if n_items < 1:
        raise ValueError(f"n_items: must be >= 1, got {n_items}")
    flat = flatten_items(items)
    _check_ids(flat, n_items)
    return float(np.unique(flat).size / n_items)


def category_entropy(items: ItemsLike, item_categories: np.ndarray, normalise: bool = False) -> float:
    """Shannon entropy (bits) of the category distribution of the recommended items.

    Each recommended item adds one count to every category it carries; p = counts / sum.
    `normalise=True` divides by log2(n_categories) so the value lies in [0, 1]. NaN when the
    recommended items carry no category.
    """
    item_categories = _check_categories(item_categories)
    flat = flatten_items(items)
    _check_ids(flat, item_categories.shape[0])
    counts = item_categories[flat].sum(axis=0).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")
    p = counts[counts > 0] / total
    h = float(-(p * np.log2(p)).sum())
    if normalise:
        n_cat = item_categories.shape[1]
        return h / np.log2(n_cat) if n_cat > 1 else 0.0
    return h


def _pad_episodes(episodes: ItemsLike) -> np.ndarray:
    if isinstance(episodes, np.ndarray):
        if episodes.ndim != 2:
            raise ValueError("episodes: expected a 2-D (n_episodes, length) array or a list of 1-D arrays")
        return episodes.astype(np.int64, copy=False)
    rows = [np.asarray(e, dtype=np.int64).ravel() for e in episodes]
    length = max((r.size for r in rows), default=0)
    padded = np.full((len(rows), length), -1, dtype=np.int64)
    for j, row in enumerate(rows):
        padded[j, : row.size] = row
    return padded


def intra_list_diversity(
    episodes: ItemsLike,
    item_vectors: np.ndarray,
    metric: str = "jaccard",
    chunk_size: int = 1024,
) -> float:
    """Mean pairwise distance between the items of an episode, averaged over episodes.

    For every episode with at least two items: the mean over unordered position pairs (i < j)
    of d(item_i, item_j) (a repeated item contributes distance 0); the result is the mean over
    those episodes (NaN when there are none).

    Args:
        episodes: (n_episodes, length) int with -1 padding, or a list of 1-D item arrays.
        item_vectors: (n_items, d); bool category rows for "jaccard", real embeddings for "cosine".
        metric: "jaccard" (1 - |a & b| / |a | b|; two empty rows have distance 0) or
            "cosine" (1 - cos; a zero vector has cosine 0 to everything).
        chunk_size: episodes processed at once (bounds memory at chunk * length^2).
    """
    if metric not in ("jaccard", "cosine"):
        raise ValueError(f"metric: must be 'jaccard' or 'cosine', got {metric!r}")
    item_vectors = np.asarray(item_vectors)
    if item_vectors.ndim != 2:
        raise ValueError("item_vectors: expected a 2-D (n_items, d) array")
    padded = _pad_episodes(episodes)
    _check_ids(padded[padded >= 0], item_vectors.shape[0], "episodes")
    if metric == "jaccard":
        vectors = (item_vectors != 0).astype(np.float64)
        sizes = vectors.sum(axis=1)
    else:
        vectors = item_vectors.astype(np.float64)
        norms = np.linalg.norm(vectors, axis=1)
        vectors = np.divide(vectors, norms[:, None], out=np.zeros_like(vectors), where=norms[:, None] > 0)
    length = padded.shape[1]
    upper = np.triu(np.ones((length, length), dtype=bool), k=1)
    values = []
    for start in range(0, padded.shape[0], chunk_size):
        block = padded[start : start + chunk_size]
        valid = block >= 0
        ids = np.where(valid, block, 0)
        v = vectors[ids]  # (b, L, d)
        gram = v @ v.transpose(0, 2, 1)  # (b, L, L)
        if metric == "jaccard":
            s = sizes[ids]
            union = s[:, :, None] + s[:, None, :] - gram
            dist = np.where(union > 0, 1.0 - gram / np.where(union > 0, union, 1.0), 0.0)
        else:
            dist = 1.0 - gram
        same = ids[:, :, None] == ids[:, None, :]
        dist = np.where(same, 0.0, dist)
        pairs = valid[:, :, None] & valid[:, None, :] & upper
        n_pairs = pairs.sum(axis=(1, 2))
        total = np.where(pairs, dist, 0.0).sum(axis=(1, 2))
        ok = n_pairs > 0
        values.append(total[ok] / n_pairs[ok])
    per_list = np.concatenate(values) if values else np.zeros(0)
    return float(per_list.mean()) if per_list.size else float("nan")


def _popularity_share(popularity: np.ndarray, smoothing: float) -> np.ndarray:
    popularity = np.asarray(popularity, dtype=np.float64).ravel()
    if popularity.size == 0 or (popularity < 0).any() or not np.isfinite(popularity).all():
        raise ValueError("popularity: expected a non-empty (n_items,) array of counts >= 0")
    if smoothing < 0:
        raise ValueError(f"smoothing: must be >= 0, got {smoothing}")
    smoothed = popularity + smoothing
    if smoothed.sum() == 0:
        raise ValueError("popularity: all counts are zero")
    return smoothed / smoothed.sum()


def novelty(items: ItemsLike, popularity: np.ndarray, smoothing: float = 1.0) -> float:
    """Mean self-information -log2(popularity share) of the recommended items, in bits.

    share_i = (pop_i + smoothing) / sum_j (pop_j + smoothing), with `popularity` an (n_items,)
    count (e.g. the training log's interactions per item). The additive (Laplace) smoothing
    keeps never-logged items finite; pass 0 for the unsmoothed definition (never-logged items
    then give inf). NaN when nothing was recommended.
    """
    share = _popularity_share(popularity, smoothing)
    flat = flatten_items(items)
    _check_ids(flat, share.size)
    if flat.size == 0:
        return float("nan")
    with np.errstate(divide="ignore"):
        return float(-np.log2(share[flat]).mean())


def popularity_lift(rec_items: ItemsLike, logged_items: ItemsLike, n_items: int | None = None) -> float:
    """Mean popularity of the recommended items over the mean popularity of the logged items.

    Popularity of an item = its number of rows in the log. The denominator is the mean over the
    log's rows (sum pop^2 / sum pop), so a policy that recommends like the log has lift 1;
    > 1 means more popular items than the log (popularity amplification).
    """
    rec = flatten_items(rec_items)
    logged = flatten_items(logged_items)
    if logged.size == 0:
        raise ValueError("logged_items: empty log")
    if n_items is None:
        n_items = int(max(rec.max(initial=-1), logged.max())) + 1
    _check_ids(rec, n_items, "rec_items")
    _check_ids(logged, n_items, "logged_items")
    if rec.size == 0:
        return float("nan")
    pop = np.bincount(logged, minlength=n_items).astype(np.float64)
    return float(pop[rec].mean() / pop[logged].mean())


def long_tail_share(items: ItemsLike, popularity: np.ndarray, head_share: float = 0.2) -> float:
    """Share of recommended items outside the popular head.

    The head is the ceil(head_share * n_items) most popular items by `popularity` (n_items,)
    counts (ties: lower index first); every other item is in the long tail. NaN when nothing was
    recommended.
    """
    popularity = np.asarray(popularity, dtype=np.float64).ravel()
    if popularity.size == 0:
        raise ValueError("popularity: expected a non-empty (n_items,) array")
    if not 0 <= head_share <= 1:
        raise ValueError(f"head_share: must be in [0, 1], got {head_share}")
    flat = flatten_items(items)
    _check_ids(flat, popularity.size)
    if flat.size == 0:
        return float("nan")
    n_head = int(np.ceil(head_share * popularity.size - 1e-9))
    head = np.zeros(popularity.size, dtype=bool)
    head[np.argsort(-popularity, kind="stable")[:n_head]] = True
    return float((~head[flat]).mean())
