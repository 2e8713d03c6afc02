"""DORL's k-order entropy table (the Matthew-effect term of the penalised reward).

Source: Gao et al., "Alleviating Matthew Effect of Offline Reinforcement Learning in Interactive
Recommendation", SIGIR 2023 (DORL); docs/methods.md.

Construction from a log (columns `user`, `item` and, where present, `timestamp`):

1. Sort the log by (user, timestamp), stably (rows with equal timestamps keep their log order;
   without a `timestamp` column the log order within each user is the time order).
2. For every order k and every position t of a user's sequence with at least k earlier items,
   the key is the *sorted* tuple of the k items before t (order-insensitive) and the successor is
   the item at t. Sequences never cross users.
3. For each key with successor counts c_1..c_d (d distinct successors, n = sum c):
   ``H(key) = -sum_j (c_j/n) log2(c_j/n) / log2(d)``, a normalised entropy in [0, 1].

Lookup at simulation time (`EntropyTable.entropy`): for the recommended item a and the episode's
earlier items, order k uses the sorted tuple of the last k items *including* a. A key never seen
in the log gets 1 (maximal novelty, as published), and so does an order k whose episode is still
shorter than k items (the published "history too short" rule).

Known flaw fixed here: the public code returns the *maximum* entropy 1 for a key with a single
distinct successor (it special-cases ``len(counts) <= 1`` because log2(1) = 0 would divide by
zero). A deterministic successor has zero entropy, so this implementation returns 0.

Keys are encoded as int64 ``sum_j sorted_items[j] * n_items**j`` (requires n_items**k < 2**63),
stored sorted per order (the saved form), and looked up for a whole batch through an
open-addressing hash index built at load time (a few gathers per order and step).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recsim.errors import ConfigError, DataError
from recsim.io import save_npz

FILENAME = "entropy.npz"
UNSEEN_ENTROPY = 1.0
"""Entropy of a key absent from the log, and of an order longer than the episode so far (DORL)."""


@dataclasses.dataclass(frozen=True)
class EntropyConfig:
    """How to build the table.

    Attributes:
        orders: the orders k to tabulate (DORL: (1, 2)); each >= 1, distinct.
        single_successor_entropy: entropy of a key with one distinct successor. 0 is correct;
            1 reproduces the published code's flaw (for comparison runs only).
    """

    orders: tuple[int, ...] = (1, 2)
    single_successor_entropy: float = 0.0

    def __post_init__(self) -> None:
        orders = tuple(int(k) for k in self.orders)
        object.__setattr__(self, "orders", orders)
        if not orders or any(k < 1 for k in orders) or len(set(orders)) != len(orders):
            raise ConfigError(f"EntropyConfig.orders: need distinct orders >= 1, got {self.orders}")
        if not 0.0 <= self.single_successor_entropy <= 1.0:
            raise ConfigError("EntropyConfig.single_successor_entropy: must lie in [0, 1]")


def _encode(sorted_items: np.ndarray, n_items: int) -> np.ndarray:
    """int64 key of each row of `sorted_items` (B, k), items ascending: sum_j x_j * n_items**j."""
    keys = np.zeros(sorted_items.shape[0], dtype=np.int64)
    base = np.int64(1)
    for j in range(sorted_items.shape[1]):
        keys += sorted_items[:, j].astype(np.int64) * base
        base *= np.int64(n_items)
    return keys


def _check_order_fits(k: int, n_items: int) -> None:
    if k * np.log2(max(n_items, 2)) >= 63:
        raise ConfigError(f"EntropyConfig.orders: order {k} with {n_items} items overflows int64 keys")


def _normalised_entropy(keys: np.ndarray, successors: np.ndarray, single: float) -> tuple[np.ndarray, np.ndarray]:
    """Unique sorted keys and their normalised successor entropy (see module docstring)."""
    if len(keys) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    order = np.lexsort((successors, keys))
    keys, successors = keys[order], successors[order]
    pair_start = np.ones(len(keys), dtype=bool)
    pair_start[1:] = (keys[1:] != keys[:-1]) | (successors[1:] != successors[:-1])
    pair_idx = np.flatnonzero(pair_start)
    pair_counts = np.diff(np.append(pair_idx, len(keys))).astype(np.float64)
    pair_keys = keys[pair_idx]
    key_start = np.ones(len(pair_keys), dtype=bool)
    key_start[1:] = pair_keys[1:] != pair_keys[:-1]
    key_idx = np.flatnonzero(key_start)
    totals = np.add.reduceat(pair_counts, key_idx)
    distinct = np.diff(np.append(key_idx, len(pair_keys)))
    p = pair_counts / np.repeat(totals, distinct)
    plogp = np.add.reduceat(p * np.log2(p), key_idx)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(distinct > 1, -plogp / np.log2(np.maximum(distinct, 2)), single)
    return pair_keys[key_idx], np.clip(h, 0.0, 1.0).astype(np.float32)


class _KeyIndex:
    """Open-addressing hash table (Fibonacci hashing, linear probing) from int64 keys >= 0 to float32.

    Batched lookups cost a few gathers (load factor <= 1/4) instead of the ~log2(n) cache misses
    per query of a binary search over millions of keys. Queries still unresolved after
    `PROBES` probes (the rare long runs) fall back to a binary search of the sorted keys, which
    bounds the number of numpy calls per lookup.
    """

    PROBES = 3

    _EMPTY = np.int64(-1)
    _FIB = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        self._sorted_keys, self._sorted_values = keys, values
        bits = max(4, int(np.ceil(np.log2(max(len(keys), 1) * 4))))
        self._shift = np.uint64(64 - bits)
        self._mask = np.int64((1 << bits) - 1)
        self._keys = np.full(1 << bits, self._EMPTY, dtype=np.int64)
        self._values = np.zeros(1 << bits, dtype=np.float32)
        slot = self._home(keys)
        pending = np.arange(len(keys))
        while len(pending):
            cand_slot = slot[pending]
            free = self._keys[cand_slot] == self._EMPTY
            taken_slots, first = np.unique(cand_slot[free], return_index=True)
            winners = pending[free][first]
            self._keys[taken_slots] = keys[winners]
            self._values[taken_slots] = values[winners]
            placed = np.zeros(len(keys), dtype=bool)
            placed[winners] = True
            pending = pending[~placed[pending]]
            slot[pending] = (slot[pending] + 1) & self._mask

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * self._FIB) >> self._shift).astype(np.int64)

    def get(self, query: np.ndarray, default: float) -> np.ndarray:
        """float32 value of each int64 key in `query`; `default` where absent."""
        out = np.full(len(query), default, dtype=np.float32)
        idx = np.arange(len(query))
        slot = self._home(query)
        q = query
        for _ in range(self.PROBES):
            at = self._keys[slot]
            hit = at == q
            out[idx[hit]] = self._values[slot[hit]]
            go_on = ~hit & (at != self._EMPTY)
            idx, q, slot = idx[go_on], q[go_on], (slot[go_on] + 1) & self._mask
            if not len(idx):
                return out
        pos = np.minimum(np.searchsorted(self._sorted_keys, q), len(self._sorted_keys) - 1)
        found = self._sorted_keys[pos] == q
        out[idx[found]] = self._sorted_values[pos[found]]
        return out


@dataclasses.dataclass
class EntropyTable:
    """Normalised successor entropy per order k, looked up for whole batches.

    Attributes:
        n_items: item-id range the keys were encoded with.
        orders: the tabulated orders, ascending.
        keys: per order, sorted int64 encoded keys (see module docstring).
        values: per order, float32 entropy of each key, in [0, 1].
    """

    n_items: int
    orders: tuple[int, ...]
    keys: list[np.ndarray]
    values: list[np.ndarray]

    def __post_init__(self) -> None:
        self.orders = tuple(int(k) for k in self.orders)
        if len(self.keys) != len(self.orders) or len(self.values) != len(self.orders):
            raise DataError("entropy table", "keys", "one key and value array per order required")
        for k in self.orders:
            _check_order_fits(k, self.n_items)
        keys, values = [], []
        for k_arr, v_arr in zip(self.keys, self.values, strict=True):
            k_arr, v_arr = np.asarray(k_arr, dtype=np.int64), np.asarray(v_arr, dtype=np.float32)
            if k_arr.shape != v_arr.shape or k_arr.ndim != 1:
                raise DataError("entropy table", "values", "keys and values must be 1-d arrays of equal length")
            order = np.argsort(k_arr, kind="stable")
            k_arr, v_arr = k_arr[order], v_arr[order]
            if len(k_arr) and ((k_arr[1:] == k_arr[:-1]).any() or k_arr[0] < 0):
                raise DataError("entropy table", "keys", "keys must be unique and >= 0")
            keys.append(k_arr)
            values.append(v_arr)
        self.keys, self.values = keys, values
        self._index = [_KeyIndex(keys, values) for keys, values in zip(self.keys, self.values, strict=True)]
        # order 1 also gets a dense per-item array: one gather.
        self._dense1: np.ndarray | None = None
        if 1 in self.orders:
            j = self.orders.index(1)
            dense = np.full(self.n_items, UNSEEN_ENTROPY, dtype=np.float32)
            dense[self.keys[j]] = self.values[j]
            self._dense1 = dense

    @property
    def max_order(self) -> int:
        return max(self.orders)

    @classmethod
    def from_log(cls, log: pd.DataFrame, n_items: int, config: EntropyConfig | None = None) -> EntropyTable:
        """Build from a log with columns `user`, `item` (ids < n_items) and optional `timestamp`."""
        config = config or EntropyConfig()
        for column in ("user", "item"):
            if column not in log.columns:
                raise DataError("entropy log", column, "missing column")
        sort_cols = ["user", "timestamp"] if "timestamp" in log.columns else ["user"]
        ordered = log[sort_cols + (["item"] if "item" not in sort_cols else [])].sort_values(sort_cols, kind="stable")
        users = ordered["user"].to_numpy(np.int64)
        items = ordered["item"].to_numpy(np.int64)
        if len(items) and (items.min() < 0 or items.max() >= n_items):
            raise DataError("entropy log", "item", f"ids out of range [0, {n_items})")
        keys, values = [], []
        for k in sorted(config.orders):
            _check_order_fits(k, n_items)
            if len(items) <= k:
                keys.append(np.zeros(0, np.int64))
                values.append(np.zeros(0, np.float32))
                continue
            t = np.arange(k, len(items))
            valid = users[t - k] == users[t]
            t = t[valid]
            window = np.stack([items[t - k + j] for j in range(k)], axis=1)
            window.sort(axis=1)
            key_t, value_t = _normalised_entropy(_encode(window, n_items), items[t], config.single_successor_entropy)
            keys.append(key_t)
            values.append(value_t)
        return cls(n_items=n_items, orders=tuple(sorted(config.orders)), keys=keys, values=values)

    def lookup(self, k: int, items_BK: np.ndarray) -> np.ndarray:
        """Entropy of order k for each row of `items_BK` (B, k) (any order; -1 = missing -> 1)."""
        j = self.orders.index(k)
        items_BK = np.asarray(items_BK)
        missing = items_BK[:, 0] < 0
        for col in range(1, k):
            missing |= items_BK[:, col] < 0
        if k == 1 and self._dense1 is not None:
            out = self._dense1[np.maximum(items_BK[:, 0], 0)]
            out[missing] = np.float32(UNSEEN_ENTROPY)
            return out
        items_BK = np.maximum(items_BK, 0)
        if k == 2:
            a, b = items_BK[:, 0], items_BK[:, 1]
            query = np.minimum(a, b).astype(np.int64) + np.maximum(a, b).astype(np.int64) * np.int64(self.n_items)
        else:
            query = _encode(np.sort(items_BK, axis=1), self.n_items)
        out = self._index[j].get(query, UNSEEN_ENTROPY)
        out[missing] = np.float32(UNSEEN_ENTROPY)
        return out

    def per_order(self, history_BW: np.ndarray, action_B: np.ndarray,
                  orders: Sequence[int] | None = None) -> np.ndarray:
        """H_k of the last k items including the action, float32 (B, len(orders)).

        Args:
            history_BW: int (B, W) earlier items of each episode, most recent last, -1 padded;
                W >= max(orders) - 1.
            action_B: int (B,) the recommended items.
            orders: subset of the table's orders (default all).
        """
        orders = tuple(self.orders if orders is None else orders)
        history_BW = np.asarray(history_BW)
        action_B = np.asarray(action_B)
        need = max(orders) - 1
        if history_BW.shape[1] < need:
            raise ConfigError(f"entropy lookup: history window {history_BW.shape[1]} < max order - 1 = {need}")
        out = np.empty((len(action_B), len(orders)), dtype=np.float32)
        for j, k in enumerate(orders):
            if k == 1:
                items = action_B[:, None]
            else:
                items = np.concatenate([history_BW[:, history_BW.shape[1] - (k - 1):], action_B[:, None]], axis=1)
            out[:, j] = self.lookup(k, items)
        return out

    def entropy(self, history_BW: np.ndarray, action_B: np.ndarray,
                orders: Sequence[int] | None = None) -> np.ndarray:
        """sum_k H_k (last k items including the action), float32 (B,), summed in order of k.

        See `per_order`.
        """
        per = self.per_order(history_BW, action_B, orders)
        total = per[:, 0].copy()
        for j in range(1, per.shape[1]):
            total += per[:, j]
        return total

    def min_sum(self, orders: Sequence[int] | None = None) -> float:
        """sum_k min(H_k) over the table's values (1 for an empty order): the MIN_R entropy term."""
        orders = tuple(self.orders if orders is None else orders)
        total = 0.0
        for k in orders:
            values = self.values[self.orders.index(k)]
            total += float(values.min()) if len(values) else UNSEEN_ENTROPY
        return total

    def save(self, directory: str | os.PathLike) -> Path:
        path = Path(directory) / FILENAME
        arrays = {"n_items": np.array(self.n_items, dtype=np.int64), "orders": np.array(self.orders, dtype=np.int64)}
        for k, keys, values in zip(self.orders, self.keys, self.values, strict=True):
            arrays[f"keys_{k}"] = keys
            arrays[f"values_{k}"] = values
        save_npz(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> EntropyTable:
        """Load from an `entropy.npz` file or a directory that holds one."""
        path = Path(path)
        if path.is_dir():
            path = path / FILENAME
        if not path.is_file():
            raise DataError(str(path), None, "entropy table not found")
        with np.load(path, allow_pickle=False) as z:
            if "orders" not in z.files or "n_items" not in z.files:
                raise DataError(str(path), "orders", "missing arrays")
            orders = tuple(int(k) for k in z["orders"])
            missing = [f"keys_{k}" for k in orders if f"keys_{k}" not in z.files]
            if missing:
                raise DataError(str(path), ",".join(missing), "missing arrays")
            return cls(int(z["n_items"]), orders, [z[f"keys_{k}"] for k in orders], [z[f"values_{k}"] for k in orders])
