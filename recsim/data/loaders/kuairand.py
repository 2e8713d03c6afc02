"""KuaiRand-Pure (Gao et al., CIKM 2022; CC BY-SA 4.0): https://kuairand.com/

Files: `log_standard_4_08_to_4_21_pure.csv` (training log of the production recommender),
`log_random_4_22_to_5_08_pure.csv` (random-exposure log: the unbiased test set),
`user_features_pure.csv` (27,285 users), `video_features_basic_pure.csv` (7,583 videos; `tag` a
comma-separated list of tag ids, the categories).

Label: `is_click` by default (as the published DORL code), or `long_view`, `is_like`,
`watch_ratio` (play_time_ms / duration_ms, 0 where the duration is 0, as published).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from recsim.data.csvread import check_range, header_of, read_csv_columns, require_files
from recsim.data.encode import encode_feature_table, id_map, multi_hot, to_contiguous
from recsim.data.schema import Dataset
from recsim.errors import DataError

TRAIN_FILE = "log_standard_4_08_to_4_21_pure.csv"
TEST_FILE = "log_random_4_22_to_5_08_pure.csv"
USER_FILE = "user_features_pure.csv"
VIDEO_FILE = "video_features_basic_pure.csv"
FILES = [TRAIN_FILE, TEST_FILE, USER_FILE, VIDEO_FILE]
HINT = "download KuaiRand-Pure from https://kuairand.com/ and point --raw at its data/ folder"
BINARY_FEEDBACK = ("is_click", "is_like", "long_view")
LABELS = BINARY_FEEDBACK + ("watch_ratio",)
VIDEO_FEATURES = ["video_type", "upload_type", "music_type"]
LOG_TYPES = {"user_id": pa.int64(), "video_id": pa.int64(), "time_ms": pa.int64(), "is_click": pa.float64(),
             "is_like": pa.float64(), "long_view": pa.float64(), "play_time_ms": pa.float64(),
             "duration_ms": pa.float64()}


def _read_log(path: Path) -> pd.DataFrame:
    frame = read_csv_columns(path, LOG_TYPES)
    for column in BINARY_FEEDBACK:
        check_range(path, frame, column, 0, 1)
    for column in ("user_id", "video_id"):
        check_range(path, frame, column, 0, np.iinfo(np.int32).max)
    duration = frame["duration_ms"].to_numpy()
    ratio = np.divide(frame["play_time_ms"].to_numpy(), duration, out=np.zeros(len(frame)), where=duration > 0)
    frame["watch_ratio"] = ratio
    return frame


def _parse_tags(path: Path, tags: pd.Series) -> list[list[int]]:
    parsed: list[list[int]] = []
    for row, text in enumerate(tags):
        if text is None or (isinstance(text, float) and np.isnan(text)) or text == "":
            parsed.append([])
            continue
        try:
            parsed.append([int(t) for t in str(text).split(",")])
        except ValueError:
            raise DataError(str(path), f"tag (line {row + 2})",
                            f"{text!r} is not a comma-separated list of ints") from None
    return parsed


def _canonical_log(frame: pd.DataFrame, label: str, user_values: np.ndarray, item_values: np.ndarray) -> pd.DataFrame:
    out = pd.DataFrame({
        "user": to_contiguous(frame["user_id"].to_numpy(), user_values),
        "item": to_contiguous(frame["video_id"].to_numpy(), item_values),
        "label": frame[label].to_numpy(dtype=np.float32),
        "timestamp": frame["time_ms"].to_numpy(dtype=np.int64),
    })
    for column in LABELS:
        out[column] = frame[column].to_numpy(dtype=np.float32)
    return out


def load_kuairand(raw_dir: str | Path, label: str = "is_click") -> Dataset:
    """Read KuaiRand-Pure from `raw_dir` into a `Dataset` (label: one of `LABELS`)."""
    if label not in LABELS:
        raise DataError("kuairand", "label", f"{label!r} is not one of {LABELS}")
    paths = require_files(raw_dir, FILES, HINT)
    train = _read_log(paths[TRAIN_FILE])
    test = _read_log(paths[TEST_FILE])
    user_columns = [c for c in header_of(paths[USER_FILE]) if c != "user_id"]
    users = read_csv_columns(paths[USER_FILE], {"user_id": pa.int64(), **{c: pa.string() for c in user_columns}},
                             nullable=tuple(user_columns))
    videos = read_csv_columns(paths[VIDEO_FILE], {"video_id": pa.int64(), "tag": pa.string(),
                                                  **{c: pa.string() for c in VIDEO_FEATURES}},
                              nullable=("tag", *VIDEO_FEATURES))
    tags = _parse_tags(paths[VIDEO_FILE], videos["tag"])

    user_values = id_map(users["user_id"].to_numpy(), train["user_id"].to_numpy(), test["user_id"].to_numpy())
    item_values = id_map(videos["video_id"].to_numpy(), train["video_id"].to_numpy(), test["video_id"].to_numpy())
    tag_values = np.unique(np.fromiter((t for row in tags for t in row), dtype=np.int64))
    item_categories = multi_hot(to_contiguous(videos["video_id"].to_numpy(), item_values),
                                [list(np.searchsorted(tag_values, row)) for row in tags],
                                len(item_values), len(tag_values))
    return Dataset(
        name="kuairand",
        train=_canonical_log(train, label, user_values, item_values),
        test=_canonical_log(test, label, user_values, item_values),
        user_ids=user_values,
        item_ids=item_values,
        user_features=encode_feature_table(users, users["user_id"].to_numpy(), user_values, user_columns),
        item_features=encode_feature_table(videos, videos["video_id"].to_numpy(), item_values, VIDEO_FEATURES),
        item_categories=item_categories,
        category_names=[str(t) for t in tag_values],
        label_name=label,
        meta={"source": str(raw_dir)},
    ).validate(str(raw_dir))
