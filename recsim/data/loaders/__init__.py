"""The datasets recsim reads, one entry per name: loader, expected raw files, where to get them."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from recsim.data.loaders import coat, kuairand, kuairec, movielens, yahoo
from recsim.data.schema import Dataset


@dataclasses.dataclass(frozen=True)
class DatasetSource:
    """How to read one dataset: its loader, the raw files it needs and where to get them."""

    load: Callable[..., Dataset]
    files: tuple[str, ...]
    hint: str
    licence: str


DATASETS: dict[str, DatasetSource] = {
    "kuairec": DatasetSource(kuairec.load_kuairec, tuple(kuairec.FILES), kuairec.HINT, "CC BY-SA 4.0"),
    "kuairand": DatasetSource(kuairand.load_kuairand, tuple(kuairand.FILES), kuairand.HINT, "CC BY-SA 4.0"),
    "coat": DatasetSource(coat.load_coat, tuple(coat.FILES), coat.HINT, "research use; cite Schnabel et al. 2016"),
    "yahoo": DatasetSource(yahoo.load_yahoo, (yahoo.TRAIN_FILE, yahoo.TEST_FILE), yahoo.HINT,
                           "Yahoo! Webscope data agreement"),
    "movielens-100k": DatasetSource(movielens.load_movielens_100k, ("u.data", "u.item"), movielens.HINT,
                                    "GroupLens research licence"),
}


def raw_files_present(name: str, raw_dir: str | Path) -> bool:
    return all((Path(raw_dir) / f).is_file() for f in DATASETS[name].files)
