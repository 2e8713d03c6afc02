"""Environment configuration and the counter-based user sampler shared by both environments.

User draws: the i-th reset of an environment stream picks ``rows[floor(u * len(rows))]`` with
``u = uniform(key, i)``, a SplitMix64 hash of the stream key and the episode counter (a
counter-based generator: any number of streams advance with one vectorised call, and a stream
gives the same users whether it runs alone or inside a batch). The key of a stream comes from
its integer seed through `numpy.random.SeedSequence`; a batched environment seeded with `seed`
runs the streams `recsim.seeding.child_seeds(seed, num_envs)`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from recsim.env.modes import Mode, parse_mode
from recsim.errors import ConfigError

OBS_KEYS = ("user", "history", "feedback", "mask", "turn")
"""Observation keys (never a tianshou `Batch` method name such as `items`, `keys` or `get`)."""


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """Episode settings shared by `RecEnv` and `BatchedRecEnv`.

    Attributes:
        max_turn: maximal episode length (published: 30); NX_k modes use k instead.
        history_window: W, the number of most recent items (and their rewards) in the observation.
        mode: "FB", "NX_0" or "NX_<k>" (see `recsim.env.modes`).
        masked_action: what a step with an already-masked item does: "allow" (served as usual;
            the mask is advice to the policy) or "error" (raise ValueError).
    """

    max_turn: int = 30
    history_window: int = 10
    mode: str = "FB"
    masked_action: str = "allow"

    def __post_init__(self) -> None:
        for name in ("max_turn", "history_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"EnvConfig.{name}: must be an integer, got {value!r}")
        if self.max_turn < 1:
            raise ConfigError(f"EnvConfig.max_turn: must be >= 1, got {self.max_turn}")
        if self.history_window < 1:
            raise ConfigError(f"EnvConfig.history_window: must be >= 1, got {self.history_window}")
        parse_mode(self.mode)
        if self.masked_action not in ("allow", "error"):
            raise ConfigError(f"EnvConfig.masked_action: unknown {self.masked_action!r}; choose allow or error")

    @property
    def parsed_mode(self) -> Mode:
        return parse_mode(self.mode)

    @property
    def episode_limit(self) -> int:
        """Steps after which an episode is truncated: k in NX_k, else `max_turn`."""
        return self.parsed_mode.episode_limit(self.max_turn)

    def limit_for(self, n_items: int) -> int:
        """`episode_limit` over `n_items` items: NX modes also end once every item was shown.

        Raises:
            ConfigError: NX_k needs at least k items.
        """
        mode = self.parsed_mode
        limit = self.episode_limit
        if mode.fixed_length is not None and limit > n_items:
            raise ConfigError(f"mode {mode.name}: episodes of {limit} steps need >= {limit} items, "
                              f"the data has {n_items}")
        return min(limit, n_items) if mode.mask_recommended else limit


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def stream_keys(seeds: np.ndarray | list[int]) -> np.ndarray:
    """uint64 key of each integer seed (via `SeedSequence`), shape (len(seeds),)."""
    return np.array([np.random.SeedSequence(int(s)).generate_state(1, np.uint64)[0] for s in seeds],
                    dtype=np.uint64)


def stream_uniform(keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """float64 in [0, 1) for each (key, counter) pair; arrays of equal shape, uint64."""
    h = _splitmix64(_splitmix64(keys) ^ (counters * _GOLDEN))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def draw_rows(user_rows: np.ndarray, keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """Table rows drawn uniformly from `user_rows` for each stream's episode `counters` (int64)."""
    idx = (stream_uniform(keys, counters) * len(user_rows)).astype(np.int64)
    return user_rows[np.minimum(idx, len(user_rows) - 1)]


def resolve_user_rows(table_users: np.ndarray, users: np.ndarray | list[int] | None) -> np.ndarray:
    """Table rows of the dataset user ids `users` (None = every row), int64; unknown ids raise."""
    if users is None:
        return np.arange(len(table_users), dtype=np.int64)
    users = np.asarray(users, dtype=np.int64)
    if users.size == 0:
        raise ConfigError("users: the list of users to draw from is empty")
    order = np.argsort(table_users, kind="stable")
    pos = np.searchsorted(table_users[order], users)
    pos = np.minimum(pos, len(order) - 1)
    found = table_users[order][pos] == users
    if not found.all():
        raise ConfigError(f"users: ids not in the reward table, e.g. {users[~found][:5].tolist()}")
    return order[pos].astype(np.int64)


def observation_space(n_user_ids: int, n_items: int, history_window: int, episode_limit: int):
    """The gymnasium Dict space of one observation.

    - `user`: int64 scalar, the dataset user id of the episode.
    - `history`: int64 (W,), the last W recommended items (column ids), most recent last, -1 padded.
    - `feedback`: float32 (W,), the reward the environment returned for each of them, 0 padded.
    - `mask`: bool (n_items,), True = allowed; all True in FB, already-recommended items False in NX.
    - `turn`: int64 scalar, the number of steps taken in the episode.
    """
    from gymnasium import spaces

    return spaces.Dict({
        "user": spaces.Box(0, max(n_user_ids - 1, 0), shape=(), dtype=np.int64),
        "history": spaces.Box(-1, n_items - 1, shape=(history_window,), dtype=np.int64),
        "feedback": spaces.Box(float(np.finfo(np.float32).min), float(np.finfo(np.float32).max),
                               shape=(history_window,), dtype=np.float32),
        "mask": spaces.Box(0, 1, shape=(n_items,), dtype=np.bool_),
        "turn": spaces.Box(0, episode_limit, shape=(), dtype=np.int64),
    })
