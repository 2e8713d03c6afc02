"""Coat (Schnabel et al., "Recommendations as Treatments", ICML 2016):
https://www.cs.cornell.edu/~schnabts/mnar/

Files: `train.ascii` and `test.ascii` (290 x 300 rating matrices, 0 = not observed; train holds
ratings of self-selected items, missing not at random; test ratings of items drawn at random),
`propensities.ascii` (the authors' estimated probability that each rating is observed in train),
`user_item_features/` (one-hot user and item features with their `group:value` maps).

The train log's `propensity` column is the shipped observation propensity of the rated item.
Categories are the item's jacket type; features are the one-hot groups decoded to codes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsim.data.csvread import read_matrix, require_files
from recsim.data.schema import Dataset
from recsim.errors import DataError

N_USERS, N_ITEMS = 290, 300
FILES = ["train.ascii", "test.ascii", "propensities.ascii",
         "user_item_features/user_features.ascii", "user_item_features/user_features_map.txt",
         "user_item_features/item_features.ascii", "user_item_features/item_features_map.txt"]
HINT = "download coat.zip from https://www.cs.cornell.edu/~schnabts/mnar/ and point --raw at the unzipped folder"
CATEGORY_GROUP = "jackettype"


def _ratings(path: Path, matrix: np.ndarray) -> pd.DataFrame:
    if ((matrix != np.round(matrix)) | (matrix < 0) | (matrix > 5)).any():
        row, col = np.argwhere((matrix != np.round(matrix)) | (matrix < 0) | (matrix > 5))[0]
        raise DataError(str(path), f"line {row + 1}, column {col + 1}",
                        f"rating {matrix[row, col]} not an integer in 0..5")
    users, items = np.nonzero(matrix)
    return pd.DataFrame({"user": users.astype(np.int32), "item": items.astype(np.int32),
                         "label": matrix[users, items].astype(np.float32)})


def _decode_one_hot(matrix_path: Path, map_path: Path, n_rows: int) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """One-hot columns grouped by the `group:value` map -> one int32 code column per group."""
    labels = [line.strip() for line in map_path.read_text().splitlines() if line.strip()]
    matrix = read_matrix(matrix_path)
    if matrix.shape != (n_rows, len(labels)):
        raise DataError(str(matrix_path), "shape",
                        f"{matrix.shape}, expected ({n_rows}, {len(labels)}) from {map_path.name}")
    groups: dict[str, list[int]] = {}
    for column, label in enumerate(labels):
        if ":" not in label:
            raise DataError(str(map_path), f"line {column + 1}", f"{label!r} is not 'group:value'")
        groups.setdefault(label.split(":", 1)[0], []).append(column)
    frame = pd.DataFrame({
        group: np.where(matrix[:, cols].any(axis=1), matrix[:, cols].argmax(axis=1) + 1, 0).astype(np.int32)
        for group, cols in groups.items()
    })
    values = {group: [labels[c].split(":", 1)[1] for c in cols] for group, cols in groups.items()}
    return frame, values


def load_coat(raw_dir: str | Path) -> Dataset:
    """Read Coat from `raw_dir` into a `Dataset` (label: the 1-5 rating)."""
    paths = require_files(raw_dir, FILES, HINT)
    shape = (N_USERS, N_ITEMS)
    train = _ratings(paths["train.ascii"], read_matrix(paths["train.ascii"], shape))
    test = _ratings(paths["test.ascii"], read_matrix(paths["test.ascii"], shape))
    propensities = read_matrix(paths["propensities.ascii"], shape)
    train["propensity"] = propensities[train["user"], train["item"]].astype(np.float32)
    if (train["propensity"] <= 0).any():
        raise DataError(str(paths["propensities.ascii"]), "value", "propensity <= 0 for an observed training rating")
    user_features, _ = _decode_one_hot(paths["user_item_features/user_features.ascii"],
                                       paths["user_item_features/user_features_map.txt"], N_USERS)
    item_features, item_values = _decode_one_hot(paths["user_item_features/item_features.ascii"],
                                                 paths["user_item_features/item_features_map.txt"], N_ITEMS)
    if CATEGORY_GROUP not in item_features:
        raise DataError(str(paths["user_item_features/item_features_map.txt"]), CATEGORY_GROUP, "missing feature group")
    names = item_values[CATEGORY_GROUP]
    codes = item_features[CATEGORY_GROUP].to_numpy()
    categories = codes[:, None] == np.arange(1, len(names) + 1)[None, :]
    return Dataset(
        name="coat",
        train=train,
        test=test,
        user_ids=np.arange(N_USERS, dtype=np.int64),
        item_ids=np.arange(N_ITEMS, dtype=np.int64),
        user_features=user_features,
        item_features=item_features,
        item_categories=categories,
        category_names=names,
        label_name="rating",
        meta={"source": str(raw_dir)},
    ).validate(str(raw_dir))
