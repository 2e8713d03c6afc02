"""The canonical dataset object every stage reads.

A `Dataset` holds, in compact dtypes and contiguous integer ids:

- `train`: the training log, a DataFrame with columns `user` (int32), `item` (int32), `label`
  (float32) and, where the data has them, `timestamp` (int64, milliseconds; -1 where unknown), `propensity` (float32,
  the behaviour policy's probability of the logged item) and extra float32 feedback columns
  (`watch_ratio`, `is_click`, ...). `label` is the training target the dataset's loader chose.
- `test`: an optional held-out log of the same shape (random-exposure logs where they exist).
- `user_features` (n_users rows) and `item_features` (n_items rows): DataFrames of int32
  categorical codes, 0 = missing or unknown, so every column is a ready `SparseFeat` whose
  vocabulary size is `max + 1`. Row i describes user (item) i.
- `item_categories`: bool matrix of shape (n_items, n_categories), multi-label; `category_names`
  names its columns.
- `truth`: optional float32 matrix of shape (len(truth_users), len(truth_items)), the expected
  reward of every (user, item) pair where known, NaN where unknown; `truth_users` and
  `truth_items` (int32) give the contiguous ids of its rows and columns.
- `user_ids`, `item_ids`: the raw ids; `user_ids[u]` is the raw id of contiguous user u.

It is saved as Parquet (logs and features) plus `.npz` (matrices and ids) plus `meta.json`, and
reloads in seconds.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from recsim.errors import DataError
from recsim.io import atomic_dir, load_npz, read_json, write_json

LOG_REQUIRED_COLUMNS = ("user", "item", "label")
SCHEMA_VERSION = 1
DATASET_KIND = "dataset"
"""The marker kind of a prepared dataset folder (`recsim.io.MARKER`)."""


@dataclasses.dataclass
class Dataset:
    """One dataset in canonical form (see the module docstring for every field's layout)."""

    name: str
    train: pd.DataFrame
    user_ids: np.ndarray
    item_ids: np.ndarray
    user_features: pd.DataFrame
    item_features: pd.DataFrame
    item_categories: np.ndarray
    category_names: list[str]
    test: pd.DataFrame | None = None
    truth: np.ndarray | None = None
    truth_users: np.ndarray | None = None
    truth_items: np.ndarray | None = None
    label_name: str = "label"
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return int(len(self.user_ids))

    @property
    def n_items(self) -> int:
        return int(len(self.item_ids))

    @property
    def n_categories(self) -> int:
        return int(self.item_categories.shape[1])

    @property
    def has_truth(self) -> bool:
        return self.truth is not None

    def validate(self, source: str | None = None) -> Dataset:
        """Check shapes, dtypes and id ranges; raise `DataError` naming the first problem."""
        where = source or f"dataset {self.name!r}"
        for count, what in ((self.n_users, "users"), (self.n_items, "items")):
            if count == 0:
                raise DataError(where, what, f"the dataset has no {what}")
        logs = [("train", self.train)] + ([("test", self.test)] if self.test is not None else [])
        for part, log in logs:
            if len(log) == 0:
                raise DataError(where, part, "the log has no rows (an empty or header-only file, or no "
                                             "observed feedback)")
            for column, kinds in zip(LOG_REQUIRED_COLUMNS, ("iu", "iu", "fiu")):
                if column not in log.columns:
                    raise DataError(where, f"{part}.{column}", "missing column")
                if log[column].dtype.kind not in kinds:
                    raise DataError(where, f"{part}.{column}", f"expected numbers, got {log[column].dtype}")
            for column, bound in (("user", self.n_users), ("item", self.n_items)):
                ids = log[column].to_numpy()
                if len(ids) and (ids.min() < 0 or ids.max() >= bound):
                    raise DataError(where, f"{part}.{column}", f"ids out of range [0, {bound})")
            if not np.isfinite(log["label"].to_numpy()).all():
                raise DataError(where, f"{part}.label", "NaN or infinite labels")
        if len(self.user_features) != self.n_users:
            raise DataError(where, "user_features", f"{len(self.user_features)} rows for {self.n_users} users")
        if len(self.item_features) != self.n_items:
            raise DataError(where, "item_features", f"{len(self.item_features)} rows for {self.n_items} items")
        if (self.item_categories.ndim != 2 or self.item_categories.shape[0] != self.n_items
                or self.item_categories.dtype != bool):
            raise DataError(where, "item_categories", f"must be bool of shape ({self.n_items}, n_categories)")
        if len(self.category_names) != self.n_categories:
            raise DataError(where, "category_names", "one name per category column required")
        if self.truth is not None:
            if self.truth_users is None or self.truth_items is None:
                raise DataError(where, "truth", "truth_users and truth_items are required with truth")
            expected = (len(self.truth_users), len(self.truth_items))
            if self.truth.shape != expected:
                raise DataError(where, "truth", f"shape {self.truth.shape}, expected {expected}")
            if len(self.truth_users) and (self.truth_users.max() >= self.n_users or self.truth_users.min() < 0):
                raise DataError(where, "truth_users", f"ids out of range [0, {self.n_users})")
            if len(self.truth_items) and (self.truth_items.max() >= self.n_items or self.truth_items.min() < 0):
                raise DataError(where, "truth_items", f"ids out of range [0, {self.n_items})")
        return self

    def truth_block(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(truth float32 (len(truth_users), len(truth_items)), truth_users int, truth_items int);
        `DataError` when the dataset has no ground truth."""
        if self.truth is None or self.truth_users is None or self.truth_items is None:
            raise DataError(self.name, "truth", "this dataset has no ground-truth matrix")
        return self.truth, self.truth_users, self.truth_items

    def truth_dense(self) -> np.ndarray:
        """The ground truth as a float32 (n_users, n_items) matrix, NaN outside the truth block."""
        truth, truth_users, truth_items = self.truth_block()
        dense = np.full((self.n_users, self.n_items), np.nan, dtype=np.float32)
        dense[np.ix_(truth_users, truth_items)] = truth
        return dense

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the dataset to `directory` (replaced atomically); return the path."""
        directory = Path(directory)
        with atomic_dir(directory, DATASET_KIND) as tmp:
            self.train.to_parquet(tmp / "train.parquet", index=False)
            if self.test is not None:
                self.test.to_parquet(tmp / "test.parquet", index=False)
            self.user_features.to_parquet(tmp / "user_features.parquet", index=False)
            self.item_features.to_parquet(tmp / "item_features.parquet", index=False)
            arrays = dict(
                user_ids=self.user_ids,
                item_ids=self.item_ids,
                item_categories=self.item_categories,
            )
            if self.has_truth:
                truth, truth_users, truth_items = self.truth_block()
                arrays.update(truth=truth, truth_users=truth_users, truth_items=truth_items)
            np.savez(tmp / "arrays.npz", allow_pickle=False, **arrays)
            write_json(
                tmp / "meta.json",
                dict(
                    schema_version=SCHEMA_VERSION,
                    name=self.name,
                    label_name=self.label_name,
                    category_names=list(self.category_names),
                    meta=self.meta,
                ),
            )
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Dataset:
        """Read a dataset written by `save`, checked file by file (`validate`): a missing or
        corrupt file, a missing field or array, or shapes that disagree raise `DataError`
        naming the file."""
        directory = Path(directory)
        meta_path = directory / "meta.json"
        if not meta_path.is_file():
            raise DataError(str(directory), None,
                            "not a prepared dataset (no meta.json); run `recsim data prepare` first")
        info = _read_meta(meta_path)
        arrays = load_npz(directory / "arrays.npz", ("user_ids", "item_ids", "item_categories"))
        truth = [name for name in ("truth", "truth_users", "truth_items") if name in arrays]
        if truth and len(truth) != 3:
            raise DataError(str(directory / "arrays.npz"), "truth", "truth, truth_users and truth_items go together")
        test_path = directory / "test.parquet"

        def features(name: str, n_rows: int) -> pd.DataFrame:
            frame = _read_parquet(directory / name)
            return frame if len(frame.columns) else pd.DataFrame(index=pd.RangeIndex(n_rows))

        return cls(
            name=info["name"],
            train=_read_parquet(directory / "train.parquet"),
            test=_read_parquet(test_path) if test_path.is_file() else None,
            user_ids=arrays["user_ids"],
            item_ids=arrays["item_ids"],
            user_features=features("user_features.parquet", len(arrays["user_ids"])),
            item_features=features("item_features.parquet", len(arrays["item_ids"])),
            item_categories=arrays["item_categories"],
            category_names=list(info["category_names"]),
            truth=arrays.get("truth"),
            truth_users=arrays.get("truth_users"),
            truth_items=arrays.get("truth_items"),
            label_name=info["label_name"],
            meta=info.get("meta", {}),
        ).validate(str(directory))


def _read_meta(path: Path) -> dict[str, Any]:
    """A prepared dataset's `meta.json`, checked for the fields `Dataset.load` reads."""
    info = read_json(path)
    if not isinstance(info, dict):
        raise DataError(str(path), None, "expected a JSON object")
    if info.get("schema_version") != SCHEMA_VERSION:
        raise DataError(str(path), "schema_version",
                        f"{info.get('schema_version')} is not {SCHEMA_VERSION}; prepare it again")
    for key, kind in (("name", str), ("label_name", str), ("category_names", list), ("meta", dict)):
        if key in info and not isinstance(info[key], kind):
            raise DataError(str(path), key, f"expected a {kind.__name__}, got {info[key]!r}")
        if key not in info and key != "meta":
            raise DataError(str(path), key, "missing field")
    return info


def _read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file of a prepared dataset; `DataError` naming it when missing or unreadable."""
    if not path.is_file():
        raise DataError(str(path), None, "missing file; prepare the dataset again")
    try:
        return pd.read_parquet(path)
    except (ValueError, OSError, pa.ArrowException) as error:
        reason = " ".join(str(error).split())[:200]
        raise DataError(str(path), None, f"not a readable Parquet file ({reason})") from None


def is_prepared(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds a dataset written by `Dataset.save`."""
    return (Path(directory) / "meta.json").is_file()
