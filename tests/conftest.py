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


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep converted-dataset caches out of the user's home during tests."""
    monkeypatch.setenv("RECSIM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "recsim-cache"))
