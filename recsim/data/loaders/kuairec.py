"""KuaiRec 2.0 (Gao et al., CIKM 2022; CC BY-SA 4.0): https://kuairec.com/

Files: `big_matrix.csv` (training log, 7,176 users x 10,728 videos, ~12.5 M rows),
`small_matrix.csv` (1,411 x 3,327, ~99.6 % dense: the ground truth), `item_categories.csv`
(`video_id,feat` with `feat` a list literal of tag ids), `user_features.csv`.

Labels: `watch_ratio` (play / video duration) and `watch_ratio_normed`, the per-video min-max
normalisation the published DORL code trains on. The published code computes the per-video
min and max over big *and* small matrix, which lets the ground truth leak into training; here
they come from the training log alone. Truth = watch_ratio of the small matrix capped at 5.
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from recsim.data.csvread import check_range, check_unique_pairs, header_of, read_csv_columns, require_files
from recsim.data.encode import encode_feature_table, id_map, item_features_from_categories, multi_hot, to_contiguous
from recsim.data.schema import Dataset
from recsim.errors import DataError

FILES = ["big_matrix.csv", "small_matrix.csv", "item_categories.csv", "user_features.csv"]
HINT = "download KuaiRec 2.0 from https://kuairec.com/ and point --raw at its data/ folder"
LABELS = ("watch_ratio", "watch_ratio_normed")
TRUTH_CAP = 5.0
INTERACTION_TYPES = {"user_id": pa.int32(), "video_id": pa.int32(), "watch_ratio": pa.float32()}


def _read_interactions(path: Path, with_time: bool) -> pd.DataFrame:
    types = dict(INTERACTION_TYPES, **({"timestamp": pa.float64()} if with_time else {}))
    frame = read_csv_columns(path, types, nullable=("timestamp",))
    check_range(path, frame, "watch_ratio", 0.0, np.inf)
    for column in ("user_id", "video_id"):
        check_range(path, frame, column, 0, np.iinfo(np.int32).max)
    return frame


def _truth_matrix(small: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw user ids, raw item ids, float32 matrix capped at TRUTH_CAP, NaN where unobserved)."""
    users, items = small["user_id"].to_numpy(), small["video_id"].to_numpy()
    truth_users, truth_items = id_map(users), id_map(items)
    truth = np.full((len(truth_users), len(truth_items)), np.nan, dtype=np.float32)
    truth[np.searchsorted(truth_users, users), np.searchsorted(truth_items, items)] = np.minimum(
        small["watch_ratio"].to_numpy(), TRUTH_CAP)
    return truth_users, truth_items, truth


def _parse_tags(path: Path, frame: pd.DataFrame) -> list[list[int]]:
    tags = []
    for row, text in enumerate(frame["feat"].astype(str)):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise DataError(str(path), f"feat (line {row + 2})", f"{text!r} is not a list of tag ids") from None
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and v >= 0 for v in value):
            raise DataError(str(path), f"feat (line {row + 2})", f"{text!r} is not a list of non-negative ints")
        tags.append(list(value))
    return tags


def seconds_to_milliseconds(seconds: np.ndarray) -> np.ndarray:
    """int64 milliseconds of float seconds (rounded; -1 where missing), in place where writable."""
    if not seconds.flags.writeable:
        seconds = seconds.copy()
    np.multiply(seconds, 1000.0, out=seconds)
    np.round(seconds, out=seconds)
    seconds[np.isnan(seconds)] = -1
    return seconds.astype(np.int64)


def read_category_lists(path: str | Path) -> np.ndarray:
    """bool (n_videos, 31) category matrix of an item_categories.csv, rows in video_id order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), None, f"missing file; {HINT}")
    frame = read_csv_columns(path, {"video_id": pa.int64(), "feat": pa.string()})
    tags = _parse_tags(path, frame)
    n_categories = 1 + max((max(t) for t in tags if t), default=-1)
    ids = frame["video_id"].to_numpy()
    return multi_hot(to_contiguous(ids, id_map(ids)), tags, len(np.unique(ids)), n_categories)


def per_video_minmax(items: np.ndarray, ratio: np.ndarray, n_items: int) -> np.ndarray:
    """(ratio - min_v) / (max_v - min_v) per video over the given rows; 0 where max == min."""
    low = np.full(n_items, np.inf, dtype=ratio.dtype)
    high = np.full(n_items, -np.inf, dtype=ratio.dtype)
    np.minimum.at(low, items, ratio)
    np.maximum.at(high, items, ratio)
    span = high - low
    scale = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)
    return ((ratio - low[items]) * scale[items]).astype(np.float32)


def load_kuairec(raw_dir: str | Path, label: str = "watch_ratio") -> Dataset:
    """Read KuaiRec 2.0 from `raw_dir` into a `Dataset` (label: 'watch_ratio' or 'watch_ratio_normed')."""
    if label not in LABELS:
        raise DataError("kuairec", "label", f"{label!r} is not one of {LABELS}")
    paths = require_files(raw_dir, FILES, HINT)
    small = _read_interactions(paths["small_matrix.csv"], with_time=False)
    check_unique_pairs(paths["small_matrix.csv"], small["user_id"].to_numpy(), small["video_id"].to_numpy(),
                       ("user_id", "video_id"))
    truth_users, truth_items, truth = _truth_matrix(small)
    del small
    big = _read_interactions(paths["big_matrix.csv"], with_time=True)

    categories = read_csv_columns(paths["item_categories.csv"], {"video_id": pa.int64(), "feat": pa.string()})
    tags = _parse_tags(paths["item_categories.csv"], categories)
    users_path = paths["user_features.csv"]
    user_columns = [c for c in header_of(users_path) if c != "user_id"]
    user_table = read_csv_columns(users_path, {"user_id": pa.int64(), **{c: pa.string() for c in user_columns}},
                                  nullable=tuple(user_columns))

    user_values = id_map(user_table["user_id"].to_numpy(), big["user_id"].to_numpy(), truth_users)
    item_values = id_map(categories["video_id"].to_numpy(), big["video_id"].to_numpy(), truth_items)
    n_categories = 1 + max((max(t) for t in tags if t), default=-1)
    item_categories = multi_hot(to_contiguous(categories["video_id"].to_numpy(), item_values), tags,
                                len(item_values), n_categories)

    items = to_contiguous(big.pop("video_id").to_numpy(), item_values)
    ratio = big.pop("watch_ratio").to_numpy()
    normed = per_video_minmax(items, ratio, len(item_values))
    seconds = big.pop("timestamp").to_numpy()
    train = pd.DataFrame({
        "user": to_contiguous(big.pop("user_id").to_numpy(), user_values),
        "item": items,
        "label": ratio if label == "watch_ratio" else normed,
        "timestamp": seconds_to_milliseconds(seconds),
        "watch_ratio": ratio,
        "watch_ratio_normed": normed,
    }, copy=False)
    del big, seconds

    return Dataset(
        name="kuairec",
        train=train,
        user_ids=user_values,
        item_ids=item_values,
        user_features=encode_feature_table(user_table, user_table["user_id"].to_numpy(), user_values, user_columns),
        item_features=item_features_from_categories(item_categories),
        item_categories=item_categories,
        category_names=[str(c) for c in range(n_categories)],
        truth=truth,
        truth_users=to_contiguous(truth_users, user_values),
        truth_items=to_contiguous(truth_items, item_values),
        label_name=label,
        meta={"source": str(raw_dir), "truth_cap": TRUTH_CAP},
    ).validate(str(raw_dir))
