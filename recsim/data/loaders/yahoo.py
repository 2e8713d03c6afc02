"""Yahoo! R3 (Marlin & Zemel, RecSys 2009): https://webscope.sandbox.yahoo.com/ (dataset R3).

Files: `ydata-ymusic-rating-study-v1_0-train.txt` (311,704 ratings of self-selected songs by
15,400 users) and `ydata-ymusic-rating-study-v1_0-test.txt` (54,000 ratings of 10 randomly
drawn songs for each of 5,400 users); tab-separated `user item rating`, ids 1-indexed, 1,000
songs. No features or categories are distributed; the feature tables hold only the ids.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from recsim.data.csvread import check_range, read_csv_columns, require_files
from recsim.data.encode import id_map, to_contiguous
from recsim.data.schema import Dataset

TRAIN_FILE = "ydata-ymusic-rating-study-v1_0-train.txt"
TEST_FILE = "ydata-ymusic-rating-study-v1_0-test.txt"
HINT = "request Yahoo! R3 from https://webscope.sandbox.yahoo.com/ and point --raw at its folder"
COLUMNS = ["user_id", "item_id", "rating"]


def _read(path: Path) -> pd.DataFrame:
    frame = read_csv_columns(path, {"user_id": pa.int64(), "item_id": pa.int64(), "rating": pa.float64()},
                             delimiter="\t", column_names=COLUMNS)
    check_range(path, frame, "rating", 1, 5, first_line=1)
    check_range(path, frame, "user_id", 1, np.iinfo(np.int32).max, first_line=1)
    check_range(path, frame, "item_id", 1, np.iinfo(np.int32).max, first_line=1)
    return frame


def _log(frame: pd.DataFrame, users: np.ndarray, items: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"user": to_contiguous(frame["user_id"].to_numpy(), users),
                         "item": to_contiguous(frame["item_id"].to_numpy(), items),
                         "label": frame["rating"].to_numpy(dtype=np.float32)})


def load_yahoo(raw_dir: str | Path) -> Dataset:
    """Read Yahoo! R3 from `raw_dir` into a `Dataset` (label: the 1-5 rating)."""
    paths = require_files(raw_dir, [TRAIN_FILE, TEST_FILE], HINT)
    train, test = _read(paths[TRAIN_FILE]), _read(paths[TEST_FILE])
    users = id_map(train["user_id"].to_numpy(), test["user_id"].to_numpy())
    items = id_map(train["item_id"].to_numpy(), test["item_id"].to_numpy())
    return Dataset(
        name="yahoo",
        train=_log(train, users, items),
        test=_log(test, users, items),
        user_ids=users,
        item_ids=items,
        user_features=pd.DataFrame(index=pd.RangeIndex(len(users))),
        item_features=pd.DataFrame(index=pd.RangeIndex(len(items))),
        item_categories=np.zeros((len(items), 0), dtype=bool),
        category_names=[],
        label_name="rating",
        meta={"source": str(raw_dir)},
    ).validate(str(raw_dir))
