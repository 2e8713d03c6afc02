"""A held-out part of the training log, for datasets without a random-exposure test log.

Per user, the last `fraction` of the user's logged rows by timestamp (a seeded random
`fraction` where the log has no timestamps) is moved from `train` to `test` before any model
sees the data; the user model, the kNN table and every policy then train on the rest, and a
policy's NDCG@k / Recall@k are measured on the held-out rows (the leave-last-out protocol of
sequential recommendation, e.g. Kang & McAuley, "Self-Attentive Sequential Recommendation",
ICDM 2018, here with a fraction instead of one item). Each user keeps at least one training
row: a user with n rows holds out min(round(fraction * n), n - 1) of them.

The held-out rows are exposures chosen by the logging policy, not random exposure: the dataset
records this in `meta["test_log"]` (`kind_of_test_log` reads it), and every metric computed on it
is named `..._heldout_log`.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from recsim.data.schema import Dataset
from recsim.errors import ConfigError, DataError

HELDOUT = "heldout"
RANDOM = "random"
TEST_LOG_KINDS = (HELDOUT, RANDOM)


@dataclasses.dataclass(frozen=True)
class HoldoutConfig:
    """The split of the training log (see the module docstring).

    Attributes:
        fraction: share of each user's rows held out, in (0, 1).
        seed: seed of the random choice where the log has no timestamps, and of the order of
            rows that share a timestamp.
    """

    fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise ConfigError(f"data.holdout.fraction: must be in (0, 1), got {self.fraction}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"data.holdout.seed: must be an integer >= 0, got {self.seed!r}")


def has_timestamps(log: pd.DataFrame) -> bool:
    """Whether every row of `log` has a known timestamp (a `timestamp` column with no -1)."""
    return "timestamp" in log.columns and bool((log["timestamp"].to_numpy() >= 0).all())


def heldout_mask(log: pd.DataFrame, config: HoldoutConfig) -> np.ndarray:
    """bool (len(log),): True for the rows held out (see the module docstring).

    Rows are ordered per user by timestamp (ties and, without timestamps, every row in a seeded
    random order); the last min(round(fraction * n_u), n_u - 1) rows of user u are held out.
    """
    users = log["user"].to_numpy(np.int64)
    n = len(users)
    tiebreak = np.random.default_rng(config.seed).permutation(n)
    time = log["timestamp"].to_numpy(np.int64) if has_timestamps(log) else np.zeros(n, np.int64)
    order = np.lexsort((tiebreak, time, users))
    sorted_users = users[order]
    first = np.r_[True, sorted_users[1:] != sorted_users[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    position = np.arange(n) - start
    counts = np.bincount(sorted_users, minlength=int(users.max()) + 1 if n else 0)[sorted_users]
    n_held = np.minimum(np.floor(config.fraction * counts + 0.5), counts - 1)
    mask = np.zeros(n, dtype=bool)
    mask[order] = position >= counts - n_held
    return mask


def describe(config: HoldoutConfig, by_time: bool) -> str:
    """One line naming the held-out part (stored in the dataset's meta, shown in reports)."""
    rule = "last by timestamp" if by_time else f"seeded random choice, seed {config.seed}"
    return (f"held-out part of the training log: {config.fraction:.0%} of each user's rows ({rule}), "
            "logged exposure, not random")


def with_holdout(dataset: Dataset, config: HoldoutConfig) -> Dataset:
    """`dataset` with the held-out rows moved from `train` to `test` (see the module docstring).

    Raises `DataError` when the dataset already has a test log (a random-exposure log is the
    better test set) or when no row can be held out (every user has a single row).
    """
    if dataset.test is not None:
        raise DataError(dataset.name, "data.holdout",
                        "the dataset has its own test log (random exposure); drop data.holdout")
    mask = heldout_mask(dataset.train, config)
    if not mask.any():
        raise DataError(dataset.name, "data.holdout", "no row held out: every user has a single logged row")
    by_time = has_timestamps(dataset.train)
    meta = dict(dataset.meta, test_log={"kind": HELDOUT, "fraction": config.fraction, "seed": config.seed,
                                        "by": "timestamp" if by_time else "random", "rows": int(mask.sum()),
                                        "description": describe(config, by_time)})
    return dataclasses.replace(dataset, train=dataset.train[~mask].reset_index(drop=True),
                               test=dataset.train[mask].reset_index(drop=True), meta=meta).validate()


def kind_of_test_log(dataset: Dataset) -> str | None:
    """"heldout" (a part of the training log, `with_holdout`), "random" (a random-exposure test
    log shipped with the dataset) or None (no test log)."""
    if dataset.test is None:
        return None
    info = dataset.meta.get("test_log")
    return HELDOUT if isinstance(info, dict) and info.get("kind") == HELDOUT else RANDOM
