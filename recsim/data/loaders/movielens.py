"""MovieLens-100K (Harper & Konstan, 2015): https://grouplens.org/datasets/movielens/100k/

Files: `u.data` (tab-separated `user item rating timestamp`, 100,000 ratings), `u.item`
(`|`-separated, latin-1: id, title, release date, video release date, URL, 19 genre flags), and
optionally `u.user` (`id|age|gender|occupation|zip`). Genres are the categories.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from recsim.data.csvread import check_range, read_csv_columns, require_files
from recsim.data.encode import encode_feature_table, id_map, item_features_from_categories, to_contiguous
from recsim.data.schema import Dataset
from recsim.errors import DataError

HINT = "download ml-100k.zip from https://grouplens.org/datasets/movielens/100k/ and point --raw at ml-100k/"
GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western"]
ITEM_FIELDS = 5 + len(GENRES)
USER_TYPES = {"user_id": pa.int64(), "age": pa.int64(), "gender": pa.string(), "occupation": pa.string(),
              "zip": pa.string()}


def _read_items(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(raw item ids, bool genre matrix) from u.item."""
    ids, genres = [], []
    for line_number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != ITEM_FIELDS:
            raise DataError(str(path), f"line {line_number}", f"{len(fields)} fields, expected {ITEM_FIELDS}")
        try:
            ids.append(int(fields[0]))
            genres.append([int(v) == 1 for v in fields[5:]])
        except ValueError:
            raise DataError(str(path), f"line {line_number}", "item id or genre flag is not an integer") from None
    return np.asarray(ids, dtype=np.int64), np.asarray(genres, dtype=bool).reshape(len(ids), len(GENRES))


def load_movielens_100k(raw_dir: str | Path) -> Dataset:
    """Read MovieLens-100K from `raw_dir` into a `Dataset` (label: the 1-5 rating)."""
    paths = require_files(raw_dir, ["u.data", "u.item"], HINT)
    ratings = read_csv_columns(paths["u.data"], {"user_id": pa.int64(), "item_id": pa.int64(), "rating": pa.float64(),
                                                 "timestamp": pa.int64()},
                               delimiter="\t", column_names=["user_id", "item_id", "rating", "timestamp"])
    check_range(paths["u.data"], ratings, "rating", 1, 5, first_line=1)
    item_raw, genres = _read_items(paths["u.item"])
    user_path = Path(raw_dir) / "u.user"
    user_table = None
    if user_path.is_file():
        user_table = read_csv_columns(user_path, USER_TYPES, delimiter="|", column_names=list(USER_TYPES))
        check_range(user_path, user_table, "age", 0, 150, first_line=1)
        user_table["age"] = (user_table["age"] // 10).astype(str)
    listed_users = [user_table["user_id"].to_numpy()] if user_table is not None else []
    users = id_map(ratings["user_id"].to_numpy(), *listed_users)
    items = id_map(ratings["item_id"].to_numpy(), item_raw)
    categories = np.zeros((len(items), len(GENRES)), dtype=bool)
    categories[to_contiguous(item_raw, items)] = genres
    feature_columns = ["age", "gender", "occupation"]
    user_features = (encode_feature_table(user_table, user_table["user_id"].to_numpy(), users, feature_columns)
                     if user_table is not None else pd.DataFrame(index=pd.RangeIndex(len(users))))
    train = pd.DataFrame({
        "user": to_contiguous(ratings["user_id"].to_numpy(), users),
        "item": to_contiguous(ratings["item_id"].to_numpy(), items),
        "label": ratings["rating"].to_numpy(dtype=np.float32),
        "timestamp": ratings["timestamp"].to_numpy(dtype=np.int64) * 1000,
    })
    return Dataset(
        name="movielens-100k",
        train=train,
        user_ids=users,
        item_ids=items,
        user_features=user_features,
        item_features=item_features_from_categories(categories),
        item_categories=categories,
        category_names=list(GENRES),
        label_name="rating",
        meta={"source": str(raw_dir)},
    ).validate(str(raw_dir))
