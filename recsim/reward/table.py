"""The reward table: the one object every reward source produces and the simulator consumes.

The user model (DeepFM ensemble), the kNN estimator (ROLeR) and a ground-truth matrix all reduce
to a `RewardTable`: predicted reward `mean` and its `uncertainty`, both float32 arrays of shape
(n_users, n_items) over the rows `users` and columns `items` (contiguous dataset ids, int32).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from recsim.errors import DataError
from recsim.io import check_finite, load_npz, save_npz

FILENAME = "reward_table.npz"


@dataclasses.dataclass
class RewardTable:
    """Predicted reward and uncertainty over users x items.

    Attributes:
        mean: float32 (n_users, n_items), predicted reward of each (user, item).
        uncertainty: float32 (n_users, n_items), >= 0; what MOPO-style penalties subtract.
        users: int32 (n_users,), dataset user id of each row.
        items: int32 (n_items,), dataset item id of each column.
        kind: free-text provenance, e.g. "deepfm-ensemble/max_variance" or "knn/variance".
    """

    mean: np.ndarray
    uncertainty: np.ndarray
    users: np.ndarray
    items: np.ndarray
    kind: str = ""

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float32)
        self.uncertainty = np.asarray(self.uncertainty, dtype=np.float32)
        self.users = np.asarray(self.users, dtype=np.int32)
        self.items = np.asarray(self.items, dtype=np.int32)
        expected = (len(self.users), len(self.items))
        for name in ("mean", "uncertainty"):
            if getattr(self, name).shape != expected:
                raise DataError("reward table", name, f"shape {getattr(self, name).shape}, expected {expected}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.mean.shape

    @classmethod
    def from_truth(cls, truth: np.ndarray, users: np.ndarray, items: np.ndarray, kind: str = "truth") -> RewardTable:
        """A table from a ground-truth matrix: NaN entries become 0, uncertainty is 0."""
        mean = np.nan_to_num(np.asarray(truth, dtype=np.float32), nan=0.0)
        return cls(mean, np.zeros_like(mean), users, items, kind)

    def save(self, directory: str | os.PathLike) -> Path:
        path = Path(directory) / FILENAME
        save_npz(path, mean=self.mean, uncertainty=self.uncertainty, user_ids=self.users,
                 item_ids=self.items, kind=np.array(self.kind))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, dataset: Any | None = None) -> RewardTable:
        """Load from a `reward_table.npz` file or a directory that holds one.

        Every check names the file: the arrays must be present, numeric, of matching shapes and
        finite (NaN or infinite rewards are refused here, never used), the uncertainty >= 0;
        with `dataset` (a `recsim.data.schema.Dataset`), the row and column ids must be users
        and items of that dataset.
        """
        path = Path(path)
        if path.is_dir():
            path = path / FILENAME
        if not path.is_file():
            raise DataError(str(path), None, "reward table not found")
        arrays = load_npz(path, ("mean", "uncertainty", "user_ids", "item_ids"))
        for name in ("mean", "uncertainty"):
            if arrays[name].dtype.kind not in "fiu" or arrays[name].ndim != 2:
                raise DataError(str(path), name, f"expected a 2-d numeric array, got {arrays[name].dtype} "
                                                 f"of shape {arrays[name].shape}")
            check_finite(path, name, arrays[name])
        for name in ("user_ids", "item_ids"):
            if arrays[name].dtype.kind not in "iu" or arrays[name].ndim != 1:
                raise DataError(str(path), name, f"expected 1-d integer ids, got {arrays[name].dtype} "
                                                 f"of shape {arrays[name].shape}")
        if (arrays["uncertainty"] < 0).any():
            raise DataError(str(path), "uncertainty", "negative values; an uncertainty is >= 0")
        if dataset is not None:
            _check_ids(path, "user_ids", arrays["user_ids"], dataset.n_users, "users")
            _check_ids(path, "item_ids", arrays["item_ids"], dataset.n_items, "items")
        try:
            return cls(arrays["mean"], arrays["uncertainty"], arrays["user_ids"], arrays["item_ids"],
                       str(arrays["kind"]) if "kind" in arrays else "")
        except DataError as error:
            raise DataError(str(path), error.field, error.problem) from None


def _check_ids(path: Path, name: str, ids: np.ndarray, bound: int, what: str) -> None:
    """`DataError` unless `ids` are distinct ids in [0, bound) (the dataset's `what`)."""
    if len(ids) == 0:
        raise DataError(str(path), name, f"no {what}")
    if ids.min() < 0 or ids.max() >= bound:
        raise DataError(str(path), name, f"ids outside the dataset's {bound} {what}: the table comes from "
                                         "another dataset")
    if len(np.unique(ids)) != len(ids):
        raise DataError(str(path), name, f"repeated {what}")
