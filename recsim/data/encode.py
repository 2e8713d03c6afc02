"""Encoding raw columns into the canonical compact form: contiguous ids and int32 feature codes."""
from __future__ import annotations

import numpy as np
import pandas as pd

MAX_CATEGORY_FEATURES = 4


def id_map(*raw_id_arrays: np.ndarray) -> np.ndarray:
    """Sorted unique raw ids over all arrays; contiguous id k stands for `result[k]`."""
    return np.unique(np.concatenate([np.asarray(a) for a in raw_id_arrays if len(a)]))


def to_contiguous(raw_ids: np.ndarray, id_values: np.ndarray) -> np.ndarray:
    """int32 contiguous ids of `raw_ids` under the sorted map `id_values` (all must be present)."""
    return np.searchsorted(id_values, raw_ids).astype(np.int32)


def categorical_codes(values: pd.Series) -> np.ndarray:
    """int32 codes of a column: sorted distinct values map to 1..n, missing values to 0."""
    codes, _ = pd.factorize(values, sort=True)
    return (codes + 1).astype(np.int32)


def encode_feature_table(frame: pd.DataFrame, raw_ids: np.ndarray, id_values: np.ndarray,
                         columns: list[str]) -> pd.DataFrame:
    """One row per contiguous id (0 codes where an id has no row), each column as int32 codes."""
    out = pd.DataFrame({c: np.zeros(len(id_values), dtype=np.int32) for c in columns})
    rows = to_contiguous(raw_ids, id_values)
    for column in columns:
        out.loc[rows, column] = categorical_codes(frame[column])
    return out.astype(np.int32)


def multi_hot(rows: np.ndarray, labels: list[list[int]], n_rows: int, n_labels: int) -> np.ndarray:
    """bool (n_rows, n_labels) with True at (rows[k], label) for every label in labels[k]."""
    matrix = np.zeros((n_rows, n_labels), dtype=bool)
    lengths = np.fromiter((len(x) for x in labels), dtype=np.int64, count=len(labels))
    flat = np.fromiter((v for x in labels for v in x), dtype=np.int64, count=int(lengths.sum()))
    matrix[np.repeat(rows, lengths), flat] = True
    return matrix


def item_features_from_categories(categories: np.ndarray) -> pd.DataFrame:
    """Columns feat0..feat3: the item's k-th smallest category id + 1 (0 = none), as published.

    The published KuaiRec code feeds the first four tags of an item as sparse features; taking
    them in sorted order makes the encoding independent of the order tags are listed in.
    """
    n_items, n_categories = categories.shape
    ranked = np.where(categories, np.arange(n_categories)[None, :], n_categories)
    ranked.sort(axis=1)
    width = min(MAX_CATEGORY_FEATURES, n_categories)
    codes = np.where(ranked[:, :width] < n_categories, ranked[:, :width] + 1, 0).astype(np.int32)
    return pd.DataFrame({f"feat{k}": codes[:, k] for k in range(width)})
