"""The kNN reward estimator of ROLeR (Ye et al., CIKM 2024) on faiss.

For each evaluation user, find the k most similar logged users by cosine similarity of a user
indicator vector (see `recsim.reward.indicators`), and estimate the reward of every item from the
neighbours' logged feedback (see `recsim.reward.aggregate`). The result is a `RewardTable`, the
same object the user model produces, so the simulator treats both alike.

Differences from the published code (docs/protocol.md, deviations), on purpose:

- The search runs on faiss (exact inner product on L2-normalised float32 rows for cosine; L2 or
  an approximate HNSW / IVF index as options) with top-k selection, instead of a dense float64
  user x user similarity matrix sorted row by row.
- A user is never its own neighbour unless `exclude_self=False`: the published code lets a user
  be its own neighbour on every dataset but KuaiRec, which leaks the user's own logged feedback
  into its "estimated" reward.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import scipy.sparse as sp

from recsim.data.schema import Dataset
from recsim.errors import ConfigError, DataError
from recsim.progress import progress_bar
from recsim.reward import indicators as ind
from recsim.reward.aggregate import (
    AGGREGATES,
    UNCERTAINTIES,
    AggregateParams,
    aggregate_table,
    neighbour_weights,
    similarity_to_distance,
)
from recsim.reward.table import RewardTable

METRICS = ("cosine", "l2")
INDEXES = ("exact", "hnsw", "ivf")
INDICATORS = ("logged", "predicted", "embedding", "features")
PRIORS = ("auto", "user_model", "item_mean", "global_mean")

DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "kuairec": dict(k=30, indicator="logged", cap=5.0, column="watch_ratio"),
    "kuairand": dict(k=150, indicator="predicted"),
    "coat": dict(k=15, indicator="predicted"),
    "yahoo": dict(k=20, indicator="predicted"),
    "synthetic": dict(k=30, indicator="logged", cap=5.0),
}
"""Per-dataset defaults of ROLeR (docs/methods.md; k and indicator of the ROLeR paper; KuaiRec reads
the raw watch ratio capped at 5 whatever the training label); the synthetic world is KuaiRec-like
and gets KuaiRec's settings."""


@dataclasses.dataclass
class KnnConfig:
    """Hyperparameters of the kNN reward estimator (validated on construction)."""

    k: int = 30
    """Neighbours per user (ROLeR: 30 KuaiRec, 150 KuaiRand, 15 Coat, 20 Yahoo)."""
    metric: str = "cosine"
    """"cosine" (inner product of L2-normalised rows) or "l2" (similarity = -Euclidean distance)."""
    index: str = "exact"
    """"exact" (faiss flat index), "hnsw" or "ivf" (approximate, for large user counts)."""
    exclude_self: bool = True
    """Never return a user as its own neighbour (the published code does, outside KuaiRec)."""
    indicator: str = "logged"
    """"logged" feedback row, "predicted" user-model row, user-model "embedding", user "features"."""
    unobserved: str = "zero"
    """Logged indicator only: "zero" (as published) or "ignore" (centre on the user's observed mean)."""
    aggregate: str = "mean"
    """"mean", "weighted" (by similarity) or "softmax" (of similarity / temperature)."""
    temperature: float = 1.0
    """Softmax temperature (aggregate="softmax")."""
    uncertainty: str = "variance"
    """"variance" of neighbours' feedback, mean "distance" to the neighbours, or "count" 1/(1+n_obs)."""
    observed_only: bool = False
    """Average only the neighbours who observed the item, shrunk toward `prior`."""
    shrinkage: float = 1.0
    """alpha in r = (n_obs m + alpha prior) / (n_obs + alpha), in units of neighbours."""
    prior: str = "auto"
    """Shrinkage target: "user_model" prediction, "item_mean" or "global_mean" of logged feedback;
    "auto" = the user model's when a user-model directory is given, else the item mean."""
    svd_dim: int | None = None
    """Reduce indicators to this many dimensions by truncated SVD before the search (None: off)."""
    cap: float | None = None
    """Cap on logged feedback values (KuaiRec: watch ratios capped at 5)."""
    column: str = "label"
    """Column of the training log read as feedback."""
    hnsw_m: int = 32
    """HNSW graph degree."""
    ef_search: int = 256
    """HNSW search breadth (raised to at least the number of neighbours searched)."""
    nlist: int | None = None
    """IVF lists (None: about 4 sqrt(n_users))."""
    nprobe: int | None = None
    """IVF lists visited per query (None: a quarter of nlist)."""
    chunk_size: int = 1024
    """Users per chunk in the search and the aggregation (bounds memory)."""
    seed: int = 0
    """Seed of the SVD and the IVF k-means."""
    progress: bool = False
    """Show progress bars (`recsim.progress`)."""

    def __post_init__(self) -> None:
        choices = dict(metric=METRICS, index=INDEXES, indicator=INDICATORS, unobserved=ind.UNOBSERVED_MODES,
                       aggregate=AGGREGATES, uncertainty=UNCERTAINTIES, prior=PRIORS)
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"knn.{name}: {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        positive = dict(k=self.k, hnsw_m=self.hnsw_m, ef_search=self.ef_search, chunk_size=self.chunk_size,
                        svd_dim=self.svd_dim, nlist=self.nlist, nprobe=self.nprobe)
        for name, value in positive.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                raise ConfigError(f"knn.{name}: must be a positive integer, got {value!r}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ConfigError(f"knn.temperature: must be > 0, got {self.temperature!r}")
        if not (math.isfinite(self.shrinkage) and self.shrinkage >= 0):
            raise ConfigError(f"knn.shrinkage: must be >= 0, got {self.shrinkage!r}")
        if self.cap is not None and not math.isfinite(self.cap):
            raise ConfigError(f"knn.cap: must be finite, got {self.cap!r}")
        if self.unobserved == "ignore" and self.indicator != "logged":
            raise ConfigError("knn.unobserved: 'ignore' applies to the logged indicator only")


def default_config(dataset_name: str, **overrides: Any) -> KnnConfig:
    """The config for `dataset_name` (DATASET_DEFAULTS, else KnnConfig's defaults) with overrides."""
    fields = {f.name for f in dataclasses.fields(KnnConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"knn: unknown field(s) {', '.join(unknown)}")
    values = dict(DATASET_DEFAULTS.get(dataset_name.lower(), {}))
    values.update(overrides)
    return KnnConfig(**values)


def _prepare_vectors(indicators: np.ndarray | sp.spmatrix, metric: str) -> np.ndarray:
    """Dense C-contiguous float32 copy, rows L2-normalised for cosine (zero rows stay zero)."""
    if isinstance(indicators, (sp.spmatrix, sp.sparray)):
        x = np.asarray(indicators.toarray(), dtype=np.float32, order="C")
    else:
        x = np.array(indicators, dtype=np.float32, order="C", copy=True)
    if x.ndim != 2:
        raise DataError("indicators", None, f"expected a 2-D array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError("indicators", None, "NaN or infinite values")
    if metric == "cosine":
        norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
        x /= np.where(norms > 0, norms, 1.0).astype(np.float32)[:, None]
    return x


def _build_index(x: np.ndarray, metric: str, index: str, hnsw_m: int, nlist: int | None,
                 nprobe: int | None, ef_search: int, seed: int) -> faiss.Index:
    """An approximate faiss index over the rows of `x` ("hnsw" or "ivf")."""
    n, d = x.shape
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    if index == "hnsw":
        hnsw = faiss.IndexHNSWFlat(d, hnsw_m, faiss_metric)
        hnsw.hnsw.efConstruction = max(40, 2 * hnsw_m)
        hnsw.hnsw.efSearch = ef_search
        built: faiss.Index = hnsw
    else:
        lists = nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))
        quantizer = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
        ivf = faiss.IndexIVFFlat(quantizer, d, lists, faiss_metric)
        ivf.cp.seed = seed
        ivf.train(x)
        ivf.nprobe = min(lists, nprobe or max(1, math.ceil(lists / 4)))
        built = ivf
    built.add(x)
    return built


def knn_neighbors(indicators: np.ndarray | sp.spmatrix, k: int, metric: str = "cosine", exclude_self: bool = True,
                  *, query_rows: np.ndarray | None = None, index: str = "exact", hnsw_m: int = 32,
                  ef_search: int = 256, nlist: int | None = None, nprobe: int | None = None, seed: int = 0,
                  chunk_size: int = 4096, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of each query row, most to least similar, by faiss.

    Args:
        indicators: float (n, d), one row per user (dense, or scipy sparse: densified).
        k: neighbours per query.
        metric: "cosine" (inner product of L2-normalised float32 rows, exact with index="exact";
            a zero row has similarity 0 to every row) or "l2" (similarity = -Euclidean distance).
        exclude_self: drop the query's own row. k + 1 rows are searched and the query's own id
            removed; when ties (duplicate rows) push it out of the k + 1, the last one is dropped.
        query_rows: int (n_q,), rows of `indicators` to query (default: all rows).
        index: "exact" (faiss brute force, `faiss.knn`, as IndexFlatIP / IndexFlatL2 without the
            copy of the data), "hnsw" (IndexHNSWFlat) or "ivf" (IndexIVFFlat).
        hnsw_m, ef_search: HNSW degree and search breadth (ef_search is raised to >= k + 1).
        nlist, nprobe: IVF lists and lists visited per query (defaults: ~4 sqrt(n), nlist / 4).
        seed: IVF k-means seed. HNSW construction is multi-threaded and may differ slightly
            between runs; the exact index is deterministic.
        chunk_size: queries per faiss call.

    Returns:
        (indices int64 (n_q, k), similarities float32 (n_q, k)).
    """
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {METRICS}, got {metric!r}")
    if index not in INDEXES:
        raise ConfigError(f"index must be one of {INDEXES}, got {index!r}")
    x = _prepare_vectors(indicators, metric)
    n = x.shape[0]
    rows = np.arange(n, dtype=np.int64) if query_rows is None else np.asarray(query_rows, dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise DataError("indicators", "query_rows", f"ids out of range [0, {n})")
    available = n - 1 if exclude_self else n
    if not 1 <= k <= available:
        raise ConfigError(f"knn.k: {k} neighbours requested but only {available} candidate users")
    searched = k + 1 if exclude_self else k
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    built = None if index == "exact" else _build_index(x, metric, index, hnsw_m, nlist, nprobe,
                                                       max(ef_search, searched), seed)
    indices = np.empty((len(rows), k), dtype=np.int64)
    similarities = np.empty((len(rows), k), dtype=np.float32)
    for start in progress_bar(range(0, len(rows), chunk_size), "knn search", enabled=progress, leave=False):
        chunk = rows[start:start + chunk_size]
        if built is None:  # brute force straight on x: same as IndexFlatIP/L2, without copying x
            dist, found = faiss.knn(x[chunk], x, searched, metric=faiss_metric)
        else:
            dist, found = built.search(x[chunk], searched)
        if (found < 0).any():
            raise ConfigError(f"knn.index: the {index} index found fewer than {searched} neighbours for some "
                              "users; raise nprobe / ef_search or use index='exact'")
        if exclude_self:
            is_self = found == chunk[:, None]
            drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), searched - 1)
            keep = np.ones_like(is_self)
            keep[np.arange(len(chunk)), drop] = False
            found = found[keep].reshape(len(chunk), k)
            dist = dist[keep].reshape(len(chunk), k)
        sims = dist if metric == "cosine" else -np.sqrt(np.clip(dist, 0.0, None))
        indices[start:start + len(chunk)] = found
        similarities[start:start + len(chunk)] = sims
    return indices, similarities


def _default_rows(dataset: Dataset, users: np.ndarray | None,
                  items: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if users is None:
        users = dataset.truth_users if dataset.has_truth else np.arange(dataset.n_users)
    if items is None:
        items = dataset.truth_items if dataset.has_truth else np.arange(dataset.n_items)
    users = np.asarray(users, dtype=np.int32)
    items = np.asarray(items, dtype=np.int32)
    for name, ids, bound in (("users", users, dataset.n_users), ("items", items, dataset.n_items)):
        if len(ids) == 0:
            raise ConfigError(f"knn: no {name} to build the reward table for")
        if ids.min() < 0 or ids.max() >= bound:
            raise DataError(f"dataset {dataset.name!r}", name, f"ids out of range [0, {bound})")
    return users, items


def _load_user_model_table(user_model_dir: str | os.PathLike | None, purpose: str) -> RewardTable:
    if user_model_dir is None:
        raise ConfigError(f"knn: {purpose} needs a user-model directory (--user-model)")
    return RewardTable.load(user_model_dir)


def _table_block(table: RewardTable, users: np.ndarray, items: np.ndarray, source: str) -> np.ndarray:
    """table.mean restricted to (users x items), float32; DataError if some are missing."""
    row_of = {int(u): r for r, u in enumerate(table.users)}
    col_of = {int(i): c for c, i in enumerate(table.items)}
    missing_users = [int(u) for u in users if int(u) not in row_of]
    missing_items = [int(i) for i in items if int(i) not in col_of]
    if missing_users or missing_items:
        what = "users" if missing_users else "items"
        raise DataError(source, what, f"user-model table lacks {len(missing_users or missing_items)} of the {what}")
    r = np.fromiter((row_of[int(u)] for u in users), dtype=np.int64, count=len(users))
    c = np.fromiter((col_of[int(i)] for i in items), dtype=np.int64, count=len(items))
    return np.ascontiguousarray(table.mean[np.ix_(r, c)], dtype=np.float32)


def _indicators(dataset: Dataset, config: KnnConfig, feedback: sp.csr_matrix,
                user_model_dir: str | os.PathLike | None) -> ind.Indicators:
    if config.indicator == "logged":
        return ind.logged_indicators(feedback, config.unobserved)
    if config.indicator == "predicted":
        return ind.predicted_indicators(_load_user_model_table(user_model_dir, "indicator 'predicted'"))
    if config.indicator == "embedding":
        if user_model_dir is None:
            raise ConfigError("knn: indicator 'embedding' needs a user-model directory (--user-model)")
        return ind.embedding_indicators(user_model_dir, dataset.n_users)
    return ind.feature_indicators(dataset)


def _prior(config: KnnConfig, feedback: sp.csr_matrix, users: np.ndarray, items: np.ndarray,
           user_model_dir: str | os.PathLike | None) -> tuple[np.ndarray, float]:
    """Shrinkage target (n_items,) or (n_q, n_items) and the prior variance (all logged feedback)."""
    values = feedback.data.astype(np.float64)
    global_mean = float(values.mean()) if len(values) else 0.0
    prior_variance = float(values.var()) if len(values) else 0.0
    source = config.prior
    if source == "auto":
        source = "user_model" if user_model_dir is not None else "item_mean"
    if source == "user_model":
        table = _load_user_model_table(user_model_dir, "prior 'user_model'")
        return _table_block(table, users, items, str(user_model_dir)), prior_variance
    if source == "global_mean":
        return np.full(len(items), global_mean, dtype=np.float32), prior_variance
    by_column = feedback.tocsc()[:, items]
    counts = np.diff(by_column.indptr)
    sums = np.asarray(by_column.sum(axis=0)).ravel()
    item_mean = np.where(counts > 0, sums / np.maximum(counts, 1), global_mean)
    return item_mean.astype(np.float32), prior_variance


def build_knn_reward_table(dataset: Dataset, config: KnnConfig, users: np.ndarray | None = None,
                           items: np.ndarray | None = None,
                           user_model_dir: str | os.PathLike | None = None) -> RewardTable:
    """ROLeR's kNN reward table over (users x items) of `dataset`.

    Rows default to the dataset's truth users (all users when it has no truth), columns to its
    truth items (all items). Neighbours are searched among the users that have an indicator (all
    users, or the user model table's users for the "predicted" indicator); their feedback is the
    training log's `config.column`, capped at `config.cap`.

    Returns:
        A `RewardTable` of kind "knn/<indicator>/<aggregate>/<uncertainty>", float32
        (len(users), len(items)).
    """
    users, items = _default_rows(dataset, users, items)
    if user_model_dir is not None and not Path(user_model_dir).is_dir():
        raise DataError(str(user_model_dir), None, "user-model directory not found")
    feedback = ind.feedback_matrix(dataset, config.column, config.cap)
    pool = _indicators(dataset, config, feedback, user_model_dir)
    if config.svd_dim is not None:
        pool = ind.reduce_svd(pool, config.svd_dim, config.seed)
    row_of_user = np.full(dataset.n_users, -1, dtype=np.int64)
    row_of_user[pool.users] = np.arange(len(pool.users))
    query_rows = row_of_user[users]
    if (query_rows < 0).any():
        raise DataError("indicators", "users", f"{int((query_rows < 0).sum())} requested users have no indicator "
                        f"({config.indicator!r}); the user model must cover them")
    neighbors, sims = knn_neighbors(pool.matrix, config.k, config.metric, config.exclude_self,
                                    query_rows=query_rows, index=config.index, hnsw_m=config.hnsw_m,
                                    ef_search=config.ef_search, nlist=config.nlist, nprobe=config.nprobe,
                                    seed=config.seed, chunk_size=max(config.chunk_size, 4096),
                                    progress=config.progress)
    weights = neighbour_weights(sims, config.aggregate, config.temperature, config.metric)
    distances = similarity_to_distance(sims, config.metric)
    neighbour_feedback = feedback
    if not np.array_equal(pool.users, np.arange(dataset.n_users)):
        neighbour_feedback = neighbour_feedback[pool.users]
    if not np.array_equal(items, np.arange(dataset.n_items)):
        neighbour_feedback = neighbour_feedback[:, items]
    prior, prior_variance = (None, 0.0)
    if config.observed_only:
        prior, prior_variance = _prior(config, feedback, users, items, user_model_dir)
    params = AggregateParams(uncertainty=config.uncertainty, observed_only=config.observed_only,
                             shrinkage=config.shrinkage, chunk_size=config.chunk_size, progress=config.progress)
    mean, uncertainty = aggregate_table(neighbors, weights, distances, neighbour_feedback, params,
                                        prior, prior_variance)
    kind = f"knn/{config.indicator}/{config.aggregate}/{config.uncertainty}"
    return RewardTable(mean, uncertainty, users, items, kind)
