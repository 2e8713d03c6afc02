"""Quit rules: when a simulated user leaves the session (docs/protocol.md, "The quit rules").

Every rule is a small object with one vectorised method,

    should_quit(recent_BN, action_B) -> bool (B,)

where `recent_BN` holds the last `window` items recommended earlier in each episode (item column
ids, most recent last, -1 = no item yet) and `action_B` the item recommended now. The environment
calls it *before* appending the action, and the step on which the user leaves still earns its
reward (as in the published KuaiEnv / CoatEnv). Nothing else ends an episode early.

Padding uses a sentinel row: every per-item array gets one extra trailing row, so an id of -1
indexes that row (numpy's negative indexing), which never matches anything.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import numpy as np

from recsim.errors import ConfigError, DataError
from recsim.reward.table import RewardTable


class QuitRule(Protocol):
    """What the environments need from a quit rule."""

    window: int
    """N: how many earlier items of the episode the rule looks at."""

    def should_quit(self, recent_BN: np.ndarray, action_B: np.ndarray) -> np.ndarray:
        """bool (B,): whether each user leaves after being shown `action_B`."""
        ...


@dataclasses.dataclass
class NoQuit:
    """Never leave (NX_k evaluation, or an unbounded simulator)."""

    window: int = 0

    def should_quit(self, recent_BN: np.ndarray, action_B: np.ndarray) -> np.ndarray:
        return np.zeros(len(action_B), dtype=bool)


class CategoryOverlapQuit:
    """Leave when a category of the item appears in more than `leave_threshold` of the last N items.

    Published rule (DORL KuaiEnv, docs/protocol.md): count, for each category c of the recommended
    item, the earlier items of the window that carry c; leave if any count exceeds the threshold.
    With the paper's threshold 0 this is "leave when the item shares any category with one of the
    last N items". KuaiRec / KuaiRand paper logs: threshold 0, N = 4.

    Args:
        item_categories: bool (n_items, n_categories), multi-label item categories.
        leave_threshold: the count that must be exceeded (>= 0).
        window: N, the number of earlier items compared (>= 1).
    """

    def __init__(self, item_categories: np.ndarray, leave_threshold: int = 0, window: int = 4) -> None:
        cats = np.asarray(item_categories)
        if cats.ndim != 2 or cats.dtype != bool:
            raise DataError("item_categories", None, "must be a bool matrix (n_items, n_categories)")
        if leave_threshold < 0:
            raise ConfigError(f"CategoryOverlapQuit.leave_threshold: must be >= 0, got {leave_threshold}")
        if window < 1:
            raise ConfigError(f"CategoryOverlapQuit.window: must be >= 1, got {window}")
        self.window = int(window)
        self.leave_threshold = int(leave_threshold)
        self.n_items, self.n_categories = cats.shape
        # dense form with a sentinel row (general threshold)
        self._cats = np.vstack([cats, np.zeros((1, self.n_categories), dtype=bool)])
        # bit-packed form (threshold 0): one uint64 word per 64 categories
        n_words = max(1, -(-self.n_categories // 64))
        padded = np.zeros((self.n_items + 1, n_words * 64), dtype=bool)
        padded[:, : self.n_categories] = self._cats
        weights = (np.uint64(1) << np.arange(64, dtype=np.uint64))
        self._bits = (padded.reshape(self.n_items + 1, n_words, 64) * weights).sum(axis=2, dtype=np.uint64)
        if n_words == 1:
            self._bits = np.ascontiguousarray(self._bits[:, 0])

    def should_quit(self, recent_BN: np.ndarray, action_B: np.ndarray) -> np.ndarray:
        if self.leave_threshold == 0:
            # any shared category with any window item == (OR of the window's bits) AND item's bits
            seen = self._bits[recent_BN[:, 0]].copy()
            for j in range(1, recent_BN.shape[1]):
                seen |= self._bits[recent_BN[:, j]]
            shared = seen & self._bits[action_B]
            return shared != 0 if shared.ndim == 1 else (shared != 0).any(axis=1)
        counts_BC = self._cats[recent_BN].sum(axis=1)
        return ((counts_BC > self.leave_threshold) & self._cats[action_B]).any(axis=1)


class ItemDistanceQuit:
    """Leave when the item is closer than `threshold` to one of the last N items (Coat / Yahoo).

    Distances are between item columns of the ground-truth (or completed) matrix, see
    `item_distance_matrix`; the rule precomputes the bool "too close" matrix once, so a step is
    one gather. An item is at distance 0 from itself: repeating a recent item makes the user leave.

    Args:
        distance: float (n_items, n_items), symmetric item-item distances.
        threshold: leave when a distance is strictly below it.
        window: N (published: 3).
    """

    def __init__(self, distance: np.ndarray, threshold: float, window: int = 3) -> None:
        distance = np.asarray(distance)
        if distance.ndim != 2 or distance.shape[0] != distance.shape[1]:
            raise DataError("item distance", None, f"must be square, got shape {distance.shape}")
        if window < 1:
            raise ConfigError(f"ItemDistanceQuit.window: must be >= 1, got {window}")
        self.window = int(window)
        self.threshold = float(threshold)
        n = distance.shape[0]
        close = np.zeros((n + 1, n + 1), dtype=bool)
        close[:n, :n] = distance < threshold
        self._close = close

    def should_quit(self, recent_BN: np.ndarray, action_B: np.ndarray) -> np.ndarray:
        return self._close[action_B[:, None], recent_BN].any(axis=1)


def item_distance_matrix(truth: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """Distances between the item columns of a (users x items) matrix, float32 (n_items, n_items).

    NaN entries count as 0. `metric`: "euclidean" (as in the published CoatEnv / YahooEnv) or
    "cosine" (1 - cosine similarity).
    """
    x = np.nan_to_num(np.asarray(truth, dtype=np.float64)).T
    if metric == "euclidean":
        sq = (x * x).sum(axis=1)
        d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
        dist = np.sqrt(np.maximum(d2, 0.0))
    elif metric == "cosine":
        norm = np.linalg.norm(x, axis=1)
        norm[norm == 0] = 1.0
        unit = x / norm[:, None]
        dist = 1.0 - unit @ unit.T
    else:
        raise ConfigError(f"item_distance_matrix.metric: unknown {metric!r}; choose euclidean or cosine")
    np.fill_diagonal(dist, 0.0)
    return dist.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class QuitRuleConfig:
    """Which quit rule to build.

    Attributes:
        kind: "category" (KuaiRec / KuaiRand), "distance" (Coat / Yahoo) or "none".
        window: N, earlier items compared (published: 4 for category, 3 for distance).
        leave_threshold: category rule: count to exceed (published 0); distance rule: distance
            below which the user leaves (dataset-specific; see `distance_quantile`).
        distance_metric: "euclidean" or "cosine" (distance rule).
        distance_quantile: if set (0 < q < 1), the distance threshold is this quantile of the
            off-diagonal distances instead of `leave_threshold`.
    """

    kind: str = "category"
    window: int = 4
    leave_threshold: float = 0.0
    distance_metric: str = "euclidean"
    distance_quantile: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("category", "distance", "none"):
            raise ConfigError(f"QuitRuleConfig.kind: unknown {self.kind!r}; choose category, distance or none")
        if isinstance(self.window, bool) or not isinstance(self.window, int):
            raise ConfigError(f"QuitRuleConfig.window: must be an integer, got {self.window!r}")
        if not math.isfinite(self.leave_threshold):
            raise ConfigError(f"QuitRuleConfig.leave_threshold: must be a finite number, got {self.leave_threshold}")
        if self.kind != "none" and self.window < 1:
            raise ConfigError(f"QuitRuleConfig.window: must be >= 1, got {self.window}")
        if self.leave_threshold < 0:
            raise ConfigError(f"QuitRuleConfig.leave_threshold: must be >= 0, got {self.leave_threshold}")
        if self.distance_quantile is not None and not 0.0 < self.distance_quantile < 1.0:  # NaN fails too
            raise ConfigError("QuitRuleConfig.distance_quantile: must lie in (0, 1)")


def make_quit_rule(config: QuitRuleConfig, *, item_categories: np.ndarray | None = None,
                   truth: np.ndarray | None = None) -> QuitRule:
    """Build the rule `config` names from the dataset's categories or ground-truth matrix."""
    if config.kind == "none":
        return NoQuit()
    if config.kind == "category":
        if item_categories is None:
            raise ConfigError("quit rule 'category' needs item_categories")
        return CategoryOverlapQuit(item_categories, int(config.leave_threshold), config.window)
    if truth is None:
        raise ConfigError("quit rule 'distance' needs a ground-truth (users x items) matrix")
    distance = item_distance_matrix(truth, config.distance_metric)
    threshold = config.leave_threshold
    if config.distance_quantile is not None:
        off_diagonal = distance[~np.eye(len(distance), dtype=bool)]
        threshold = float(np.quantile(off_diagonal, config.distance_quantile))
    return ItemDistanceQuit(distance, threshold, config.window)


def table_quit_rule(config: QuitRuleConfig, table: RewardTable, item_categories: np.ndarray) -> QuitRule:
    """The quit rule `config` over the item columns of `table`, the one way every environment
    (simulator, ground truth, logged replay) builds its rule.

    The category rule reads the categories of the table's items; the distance rule reads the
    distances between the table's columns of `table.mean`: the ground truth's in a ground-truth
    environment, the learned model's in a simulator (a policy never trains on the truth).

    Args:
        config: the rule.
        table: the environment's reward table (its `items` are dataset item ids).
        item_categories: bool (n_columns, n_categories): categories of the table's columns.
    """
    return make_quit_rule(config, item_categories=item_categories, truth=table.mean)
