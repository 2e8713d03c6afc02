"""Shared fixtures: the path of the real data in ../shared/data and tiny synthetic worlds."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA_ENV = "RECSIM_SHARED_DATA"


def shared_data_dir() -> Path:
    return Path(os.environ.get(SHARED_DATA_ENV, REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $RECSIM_SHARED_DATA); the test is skipped when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} not found; set {SHARED_DATA_ENV} to its location")
    return path


@pytest.fixture(scope="session")
def tiny_world():
    from recsim.data.synthetic import generate_world

    return generate_world("tiny", seed=0)


@pytest.fixture(scope="module")
def torch_one_thread():
    """torch on one intra-op thread for a module: tiny models train several times faster that way
    when the machine's cores are shared (use with `pytestmark = pytest.mark.usefixtures(...)`)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep converted-dataset caches out of the user's home during tests."""
    monkeypatch.setenv("RECSIM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "recsim-cache"))


@pytest.fixture
def hand_dataset():
    """One user, items 0..5 logged as 0, 1, 1, 2, 3, 4, 5 with labels 1..7 (timestamps 10..70).

    Categories: 0 -> {0}, 1 -> {1}, 2 -> {0}, 3 -> {2}, 4 -> {3}, 5 -> {1}.
    """
    import numpy as np
    import pandas as pd

    from recsim.data.schema import Dataset

    cats = np.zeros((6, 4), dtype=bool)
    cats[[0, 1, 2, 3, 4, 5], [0, 1, 0, 2, 3, 1]] = True
    train = pd.DataFrame({"user": np.zeros(7, np.int32), "item": np.array([0, 1, 1, 2, 3, 4, 5], np.int32),
                          "label": np.array([1, 2, 3, 4, 5, 6, 7], np.float32),
                          "timestamp": np.array([10, 20, 30, 40, 50, 60, 70], np.int64)})
    return Dataset(name="hand", train=train, user_ids=np.arange(1), item_ids=np.arange(6),
                   user_features=pd.DataFrame({"f": np.ones(1, np.int32)}),
                   item_features=pd.DataFrame({"f": np.ones(6, np.int32)}), item_categories=cats,
                   category_names=list("abcd"))
