"""User indicator vectors for the kNN reward estimator (ROLeR, CIKM 2024) and the logged feedback.

An *indicator* describes a user so that similar users can be found by nearest-neighbour search.
ROLeR uses the user's row of logged feedback on KuaiRec (watch ratios capped at 5, unobserved = 0)
and the user's row of the user model's predicted rewards elsewhere. This module builds those and
two more (the user model's user embedding, one-hot user features), plus the sparse feedback
matrix the neighbours' rewards are read from.

Every builder returns an `Indicators`: a matrix whose row r describes dataset user `users[r]`.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recsim.data.schema import Dataset
from recsim.errors import DataError
from recsim.reward.table import RewardTable

EMBEDDINGS_FILENAME = "embeddings.npz"
UNOBSERVED_MODES = ("zero", "ignore")


@dataclasses.dataclass
class Indicators:
    """Indicator rows of a pool of users.

    Attributes:
        matrix: float32 (n_pool, d), dense ndarray or scipy CSR; row r describes user `users[r]`.
        users: int32 (n_pool,), the dataset ids of the rows (the users that can be neighbours).
    """

    matrix: np.ndarray | sp.csr_matrix
    users: np.ndarray

    def __post_init__(self) -> None:
        self.users = np.asarray(self.users, dtype=np.int32)
        if self.matrix.shape[0] != len(self.users):
            raise DataError("indicators", "matrix", f"{self.matrix.shape[0]} rows for {len(self.users)} users")


def feedback_matrix(dataset: Dataset, column: str = "label", cap: float | None = None) -> sp.csr_matrix:
    """The training log as a sparse float32 CSR matrix of shape (n_users, n_items).

    Entry (u, i) is the mean of `column` over the log's rows for (u, i) (repeated exposures are
    averaged), capped at `cap` when given (KuaiRec's watch ratios are capped at 5, docs/datasets.md).
    Every logged pair is stored, zeros included, so the sparsity pattern is exactly the set
    of observed pairs; use `observed_matrix` for that pattern as ones.
    """
    log = dataset.train
    if column not in log.columns:
        raise DataError(f"dataset {dataset.name!r}", f"train.{column}", "missing feedback column")
    users = log["user"].to_numpy(dtype=np.int64)
    items = log["item"].to_numpy(dtype=np.int64)
    values = log[column].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataError(f"dataset {dataset.name!r}", f"train.{column}", "NaN or infinite feedback")
    if cap is not None:
        values = np.minimum(values, cap)
    key = users * dataset.n_items + items
    unique_keys, inverse = np.unique(key, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(unique_keys))
    counts = np.bincount(inverse, minlength=len(unique_keys))
    rows, cols = np.divmod(unique_keys, dataset.n_items)
    indptr = np.zeros(dataset.n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=dataset.n_users), out=indptr[1:])
    matrix = sp.csr_matrix(((sums / counts).astype(np.float32), cols.astype(np.int32), indptr),
                           shape=(dataset.n_users, dataset.n_items))
    matrix.has_sorted_indices = True
    return matrix


def observed_matrix(feedback: sp.csr_matrix) -> sp.csr_matrix:
    """float32 CSR of the same pattern as `feedback` with every stored entry set to 1."""
    return sp.csr_matrix((np.ones(feedback.nnz, dtype=np.float32), feedback.indices, feedback.indptr),
                         shape=feedback.shape)


def logged_indicators(feedback: sp.csr_matrix, unobserved: str = "zero") -> Indicators:
    """Each user's row of logged feedback (ROLeR's KuaiRec indicator), sparse.

    unobserved:
        "zero": unobserved items count as feedback 0, as published, so two users look alike
            partly because they both skipped the same items.
        "ignore": unobserved items carry no information: each user's observed entries are centred
            on that user's observed mean, so an unobserved 0 sits at the user's own average instead
            of reading as "disliked"; cosine similarity then compares deviations from each user's
            mean over the items they saw (a Pearson-like correlation). A user whose observed
            feedback is constant gets a zero row (similarity 0 to everyone).
    """
    if unobserved not in UNOBSERVED_MODES:
        raise DataError("indicators", "unobserved", f"{unobserved!r} is not one of {UNOBSERVED_MODES}")
    matrix = feedback.astype(np.float32, copy=True)
    if unobserved == "ignore":
        counts = np.diff(matrix.indptr)
        row_of_entry = np.repeat(np.arange(matrix.shape[0]), counts)
        sums = np.bincount(row_of_entry, weights=matrix.data, minlength=matrix.shape[0])
        means = sums / np.maximum(counts, 1)
        matrix.data -= means[row_of_entry].astype(np.float32)
    return Indicators(matrix, np.arange(feedback.shape[0], dtype=np.int32))


def predicted_indicators(table: RewardTable) -> Indicators:
    """Each user's row of the user model's predicted rewards (ROLeR's indicator beyond KuaiRec).

    The pool is the table's users: only they have a predicted row.
    """
    return Indicators(np.ascontiguousarray(table.mean, dtype=np.float32), table.users)


def embedding_indicators(user_model_dir: str | os.PathLike, n_users: int) -> Indicators:
    """The user model's user embeddings: array `user` (n_users, d) of `embeddings.npz`."""
    path = Path(user_model_dir) / EMBEDDINGS_FILENAME
    if not path.is_file():
        raise DataError(str(path), None, "user embeddings not found (train the user model first)")
    with np.load(path, allow_pickle=False) as z:
        if "user" not in z.files:
            raise DataError(str(path), "user", "missing array")
        user = np.asarray(z["user"], dtype=np.float32)
    if user.ndim != 2 or user.shape[0] != n_users:
        raise DataError(str(path), "user", f"shape {user.shape}, expected ({n_users}, d)")
    if not np.isfinite(user).all():
        raise DataError(str(path), "user", "NaN or infinite values")
    return Indicators(user, np.arange(n_users, dtype=np.int32))


def feature_indicators(dataset: Dataset) -> Indicators:
    """One-hot user features: a sparse (n_users, sum of vocabulary sizes) float32 matrix.

    Code 0 means missing or unknown and gets no column, so a missing value makes no two users
    alike.
    """
    blocks = []
    for column in dataset.user_features.columns:
        codes = dataset.user_features[column].to_numpy(dtype=np.int64)
        if len(codes) and codes.min() < 0:
            raise DataError(f"dataset {dataset.name!r}", f"user_features.{column}", "negative codes")
        width = int(codes.max()) if len(codes) else 0
        present = codes > 0
        rows = np.flatnonzero(present)
        blocks.append(sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, codes[present] - 1)),
                                    shape=(dataset.n_users, width)))
    if not blocks or sum(b.shape[1] for b in blocks) == 0:
        raise DataError(f"dataset {dataset.name!r}", "user_features", "no user features to build indicators from")
    return Indicators(sp.hstack(blocks, format="csr", dtype=np.float32), np.arange(dataset.n_users, dtype=np.int32))


def reduce_svd(indicators: Indicators, dim: int, seed: int = 0) -> Indicators:
    """Truncated SVD (randomized, scikit-learn) of the indicator rows to `dim` dimensions, dense float32.

    The rows are projected on the top right-singular vectors (no centring, so sparse rows stay
    cheap); cosine similarities in the projection approximate those of the full rows. When `dim`
    is not below the indicator width, the rows are returned unchanged.
    """
    from sklearn.decomposition import TruncatedSVD

    width = indicators.matrix.shape[1]
    if dim >= width or dim >= indicators.matrix.shape[0]:
        return indicators
    svd = TruncatedSVD(n_components=dim, algorithm="randomized", random_state=seed)
    reduced = svd.fit_transform(indicators.matrix).astype(np.float32)
    return Indicators(reduced, indicators.users)
