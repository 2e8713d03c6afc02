"""Loading datasets by name with a Parquet cache keyed by the raw files' fingerprint."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from recsim.data.loaders import DATASETS
from recsim.data.schema import Dataset, is_prepared
from recsim.errors import DataError, OutputError

DATASET_NAMES = (*DATASETS, "synthetic")
CACHE_ENV = "RECSIM_CACHE_DIR"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "recsim"))


def fingerprint(name: str, raw_dir: Path) -> str:
    """Hash of the dataset name and each raw file's path, size and modification time."""
    digest = hashlib.sha256(name.encode())
    for file in sorted(DATASETS[name].files):
        stat = (raw_dir / file).stat()
        digest.update(f"{(raw_dir / file).resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def load_dataset(name: str, raw_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Dataset:
    """The dataset `name` read from `raw_dir`.

    A prepared directory (written by `Dataset.save`) is loaded as it is. Raw files are converted
    once and cached as Parquet under `cache_dir` (default `$RECSIM_CACHE_DIR` or
    `~/.cache/recsim`); later loads of unchanged files read the cache. The cache is best
    effort: where it cannot be written (a read-only home), the dataset is still returned.
    """
    raw_dir = Path(raw_dir)
    if name not in DATASET_NAMES:
        raise DataError(str(raw_dir), "name", f"unknown dataset {name!r}; choose from {', '.join(DATASET_NAMES)}")
    if is_prepared(raw_dir):
        dataset = Dataset.load(raw_dir)
        if name != "synthetic" and dataset.name != name:
            raise DataError(str(raw_dir), "name", f"holds dataset {dataset.name!r}, not {name!r}")
        return dataset
    if name == "synthetic":
        raise DataError(str(raw_dir), None, "not a synthetic world; create one with `recsim data synth --out DIR`")
    source = DATASETS[name]
    if not raw_dir.is_dir() or not all((raw_dir / f).is_file() for f in source.files):
        missing = [f for f in source.files if not (raw_dir / f).is_file()]
        raise DataError(str(raw_dir), None, f"missing raw files {', '.join(missing)}; {source.hint}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache / f"{name}-{fingerprint(name, raw_dir)}"
    if is_prepared(cached):
        return Dataset.load(cached)
    dataset = source.load(raw_dir)
    try:
        dataset.save(cached)
    except (OSError, OutputError):  # unwritable, or a folder there that recsim did not write
        pass
    return dataset
