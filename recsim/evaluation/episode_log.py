"""The training log as environment episodes, and a policy's terms on them (for `episode_ope`).

Episodes (`logged_episodes`): each user's training-log rows in time order (timestamp, then log
order; rows of items outside the action columns are dropped first) give one episode per window
of L = `EnvConfig.limit_for(n_columns)` consecutive rows, starting every `stride` rows; only
complete windows are kept, so whether a window exists never depends on its items. A window starts
with an empty history, as the environment's reset does, and ignores day boundaries: in the
synthetic world the behaviour policy draws a user's items i.i.d. within a day, so any window is
a draw of a behaviour episode. The dataset's quit rule is replayed on the window: step t is
played (`alive`) while no earlier step of the window made the user leave; the leaving step still
counts, as in the environment. Overlapping windows of one user are dependent; every estimate
resamples whole users.

Behaviour propensities pi_b(a_t): the `pscore` given (one per training row), else the log's own
`propensity` column when every value is positive ("logged"), else the item popularity of the
training log, count(a) / n_rows ("item popularity"), as in `recsim.evaluation.logged`.

Target terms (`target_terms`): at every played step the policy's observation is the episode's
own history (last W items and their logged labels, most recent last), `turn` = t and the mode's
mask (NX modes: the episode's earlier items are masked); `action_prob` is the policy's
`action_probs` of the logged item. With a reward model r_hat (a `RewardTable`) and the model's
value to go g(t) (the mean return from step t of the model rollouts that reach it, see
`value_to_go`), the per-step model values are Q(h_t, a) = r_hat(u, a) + (1 - quit(h_t, a)) g(t+1)
and V(h_t) = sum_a pi(a | h_t) Q(h_t, a) (0 at unplayed steps).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from recsim.env.quit_rules import QuitRule
from recsim.errors import DataError
from recsim.reward.table import RewardTable

CHUNK = 1024
"""Played steps whose observations go through the policy together."""


@dataclasses.dataclass
class LoggedEpisodes:
    """Windows of the training log replayed as environment episodes (module docstring).

    Attributes:
        users: int64 (E,), the dataset user of each episode.
        items: int64 (E, L), the logged item column of each step.
        rewards: float64 (E, L), the logged label of each step.
        pscore: float64 (E, L), the behaviour propensity of each step's item.
        alive: bool (E, L), whether the step is played under the quit rule.
        user_weight: float64 (E,), 1 / (episodes of the same user): every user counts once.
        pscore_source: where `pscore` comes from.
        rows: int64 (E, L), the position of each step's row in the training log.
    """

    users: np.ndarray
    items: np.ndarray
    rewards: np.ndarray
    pscore: np.ndarray
    alive: np.ndarray
    user_weight: np.ndarray
    pscore_source: str
    rows: np.ndarray

    def with_pscore(self, pscore: np.ndarray, source: str) -> LoggedEpisodes:
        """The same episodes with the propensities `pscore` (n_train,) of another behaviour model."""
        return dataclasses.replace(self, pscore=np.asarray(pscore, dtype=np.float64)[self.rows], pscore_source=source)

    @property
    def n_users(self) -> int:
        return int(np.unique(self.users).size)


def behaviour_pscore(dataset: Any, pscore: np.ndarray | None) -> tuple[np.ndarray, str]:
    """float64 (n_train,) propensity of each training row and its source (module docstring)."""
    log = dataset.train
    if pscore is not None:
        pscore = np.asarray(pscore, dtype=np.float64)
        if pscore.shape != (len(log),) or not (np.isfinite(pscore).all() and (pscore > 0).all()):
            raise DataError("pscore", None, f"expected {len(log)} positive finite propensities, one per "
                            f"training row; got shape {pscore.shape}")
        return pscore, "given"
    if "propensity" in log.columns and np.all(log["propensity"].to_numpy() > 0):
        return log["propensity"].to_numpy(np.float64), "logged"
    items = log["item"].to_numpy(np.int64)
    counts = np.bincount(items, minlength=dataset.n_items).astype(np.float64)
    return counts[items] / counts.sum(), "item popularity"


def replay_alive(items: np.ndarray, quit_rule: QuitRule | None) -> np.ndarray:
    """bool (E, L): step t is played when no step before it made the user leave.

    `items` (E, L) are item columns; the rule sees the last `window` items of the episode."""
    n, length = items.shape
    alive = np.ones((n, length), dtype=bool)
    window = getattr(quit_rule, "window", 0) if quit_rule is not None else 0
    if not window:
        return alive
    assert quit_rule is not None
    padded = np.concatenate([np.full((n, window), -1, dtype=np.int64), items], axis=1)
    for t in range(length - 1):
        quit_now = quit_rule.should_quit(padded[:, t:t + window], items[:, t])
        alive[:, t + 1] = alive[:, t] & ~quit_now
    return alive


def logged_episodes(dataset: Any, columns: np.ndarray, length: int, quit_rule: QuitRule | None,
                    users: np.ndarray | None = None, stride: int = 1,
                    pscore: np.ndarray | None = None) -> LoggedEpisodes:
    """The training log's windows of `length` steps as episodes (module docstring).

    Args:
        dataset: the `Dataset` (its `train` log).
        columns: int64 (n_items,), the action column of each dataset item (-1: not an action).
        length: L, the episode limit of the evaluation mode.
        quit_rule: the dataset's quit rule over the action columns (None: never leave).
        users: the dataset users to keep (None: every user of the log).
        stride: rows between the starts of consecutive windows of a user (>= 1).
        pscore: float (n_train,) behaviour propensities (None: see `behaviour_pscore`).

    Returns no episodes (E = 0) when no user has `length` usable rows.
    """
    if stride < 1:
        raise ValueError(f"stride: must be >= 1, got {stride}")
    log = dataset.train
    pscore_all, source = behaviour_pscore(dataset, pscore)
    frame = pd.DataFrame({"row": np.arange(len(log)), "user": log["user"].to_numpy(np.int64),
                          "item": columns[log["item"].to_numpy(np.int64)],
                          "label": log["label"].to_numpy(np.float64), "pscore": pscore_all,
                          "t": log["timestamp"].to_numpy() if "timestamp" in log.columns else np.zeros(len(log))})
    frame = frame[frame["item"].to_numpy() >= 0]
    if users is not None:
        frame = frame[np.isin(frame["user"].to_numpy(), users)]
    frame = frame.sort_values(["user", "t"], kind="stable")
    row_user = frame["user"].to_numpy()
    first = np.r_[True, row_user[1:] != row_user[:-1]] if len(row_user) else np.zeros(0, bool)
    begin = np.flatnonzero(first)
    count = np.diff(np.r_[begin, len(row_user)])
    starts = [b + np.arange(0, c - length + 1, stride) for b, c in zip(begin, count, strict=True) if c >= length]
    start = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    index = start[:, None] + np.arange(length)[None, :]
    items = frame["item"].to_numpy()[index]
    episode_users = row_user[start]
    _, inverse, per_user = np.unique(episode_users, return_inverse=True, return_counts=True)
    return LoggedEpisodes(episode_users, items, frame["label"].to_numpy()[index], frame["pscore"].to_numpy()[index],
                          replay_alive(items, quit_rule), 1.0 / per_user[inverse], source,
                          frame["row"].to_numpy()[index])


def value_to_go(rewards: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """float64 (L + 1,): g(t), the mean return from step t of the episodes that reach it (0 if
    none; g(L) = 0), from a rollout's `rewards` (n, L) and `lengths` (n,)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    to_go = np.cumsum(rewards[:, ::-1], axis=1)[:, ::-1]
    reached = np.asarray(lengths)[:, None] > np.arange(rewards.shape[1])[None, :]
    total = (to_go * reached).sum(axis=0)
    n = reached.sum(axis=0)
    return np.r_[np.where(n > 0, total / np.maximum(n, 1), 0.0), 0.0]


@dataclasses.dataclass
class TargetTerms:
    """A policy's terms at the steps of `LoggedEpisodes` (module docstring); unplayed steps hold
    action_prob 1 (the weight stays frozen after the end) and model values 0.

    Attributes:
        action_prob: float64 (E, L), pi(a_t | h_t) of the logged item.
        q_logged: float64 (E, L) Q(h_t, a_t), or None without a reward model.
        v_target: float64 (E, L) V(h_t), or None without a reward model.
    """

    action_prob: np.ndarray
    q_logged: np.ndarray | None
    v_target: np.ndarray | None


def step_observations(episodes: LoggedEpisodes, e: np.ndarray, t: np.ndarray, window: int, n_columns: int,
                      mask_recommended: bool) -> dict[str, np.ndarray]:
    """The observation dict (B rows) of steps (`e`, `t`) of the episodes, as the environment builds it."""
    b = len(e)
    history = np.full((b, window), -1, dtype=np.int64)
    feedback = np.zeros((b, window), dtype=np.float32)
    for lag in range(1, window + 1):
        ok = np.flatnonzero(t >= lag)
        history[ok, window - lag] = episodes.items[e[ok], t[ok] - lag]
        feedback[ok, window - lag] = episodes.rewards[e[ok], t[ok] - lag]
    mask = np.ones((b, n_columns), dtype=bool)
    if mask_recommended:
        earlier = np.arange(episodes.items.shape[1])[None, :] < t[:, None]
        rows, steps = np.nonzero(earlier)
        mask[rows, episodes.items[e[rows], steps]] = False
    return {"user": episodes.users[e], "history": history, "feedback": feedback, "mask": mask,
            "turn": t.astype(np.int64)}


def recent_items(episodes: LoggedEpisodes, e: np.ndarray, t: np.ndarray, window: int) -> np.ndarray:
    """int64 (B, window): the last `window` items before step (`e`, `t`) of the episodes, -1 padded."""
    recent = np.full((len(e), window), -1, dtype=np.int64)
    for lag in range(1, window + 1):
        ok = np.flatnonzero(t >= lag)
        recent[ok, window - lag] = episodes.items[e[ok], t[ok] - lag]
    return recent


def quit_matrix(quit_rule: QuitRule | None, recent: np.ndarray, n_columns: int) -> np.ndarray:
    """bool (B, n_columns): whether recommending each item after the `recent` (B, N) items makes
    the user leave."""
    if quit_rule is None or not getattr(quit_rule, "window", 0):
        return np.zeros((len(recent), n_columns), dtype=bool)
    out = np.zeros((len(recent), n_columns), dtype=bool)
    step = max(1, (1 << 21) // max(n_columns, 1))
    candidates = np.arange(n_columns, dtype=np.int64)
    for start in range(0, len(recent), step):
        block = recent[start:start + step]
        leaves = quit_rule.should_quit(np.repeat(block, n_columns, axis=0), np.tile(candidates, len(block)))
        out[start:start + len(block)] = np.asarray(leaves).reshape(len(block), n_columns)
    return out


def target_terms(policy: Any, episodes: LoggedEpisodes, window: int, n_columns: int, mask_recommended: bool,
                 quit_rule: QuitRule | None = None, model: RewardTable | None = None,
                 to_go: np.ndarray | None = None) -> TargetTerms:
    """`TargetTerms` of `policy` on the played steps (model values when `model` and `to_go` are given).

    Args:
        policy: a `Recommender` (`action_probs(observations, mask)` -> float (B, n_columns)).
        episodes: the logged episodes.
        window: W, the history window of the observation.
        n_columns: the number of action columns.
        mask_recommended: the mode masks the episode's earlier items (NX modes).
        quit_rule: the quit rule of the model values.
        model: the reward model; its rows must hold every episode user.
        to_go: float (L + 1,), the model's value to go (`value_to_go`).
    """
    shape = episodes.items.shape
    action_prob = np.ones(shape)
    with_model = model is not None and to_go is not None
    q_logged = np.zeros(shape) if with_model else None
    v_target = np.zeros(shape) if with_model else None
    row_of: dict[int, int] = {}
    if with_model:
        assert model is not None
        row_of = {int(u): i for i, u in enumerate(model.users)}
        model_rows = np.array([row_of.get(int(u), -1) for u in episodes.users], dtype=np.int64)
        if (model_rows < 0).any():
            raise DataError("user model table", "users", "does not cover every episode user")
    e_all, t_all = np.nonzero(episodes.alive)
    if with_model:  # the quit rule reads only the recent items: one row per distinct window
        window = getattr(quit_rule, "window", 0) if quit_rule is not None else 0
        windows, window_of = np.unique(recent_items(episodes, e_all, t_all, window), axis=0, return_inverse=True)
        stays_by_window = ~quit_matrix(quit_rule, windows, n_columns)
        window_of = window_of.reshape(-1)
    for start in range(0, len(e_all), CHUNK):
        e, t = e_all[start:start + CHUNK], t_all[start:start + CHUNK]
        obs = step_observations(episodes, e, t, window, n_columns, mask_recommended)
        probs = np.asarray(policy.action_probs(obs, obs["mask"]), dtype=np.float64)
        logged = episodes.items[e, t]
        action_prob[e, t] = probs[np.arange(len(e)), logged]
        if with_model:
            assert model is not None and to_go is not None and q_logged is not None and v_target is not None
            stays = stays_by_window[window_of[start:start + CHUNK]]
            q_all = model.mean[model_rows[e]].astype(np.float64) + stays * to_go[t + 1][:, None]
            q_logged[e, t] = q_all[np.arange(len(e)), logged]
            v_target[e, t] = np.einsum("ij,ij->i", probs, q_all)
    return TargetTerms(action_prob, q_logged, v_target)
