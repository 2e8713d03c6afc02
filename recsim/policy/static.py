"""Static baselines: no sequential learning, scores from the log or the user model.

Each is a `Recommender` (`act(observations, mask) -> items`): it scores every item for the
batch's users and recommends the best allowed one (docs/methods.md, "Static baselines"):

- `RandomRecommender`: a uniformly random allowed item.
- `PopularRecommender`: the item with the most logged positives (label above a threshold).
- `GreedyRecommender`: the highest user-model reward rhat(u, i).
- `EpsilonGreedyRecommender`: greedy, replaced by a random allowed item with probability epsilon
  (published 0.3).
- `UCBRecommender`: rhat(u, i) + c * sqrt(U(u, i)), an upper confidence bound with the user
  model's uncertainty (the published "UCB" baseline adds a bonus to the DeepFM scores).
- `QuitAwareGreedyRecommender` (not published): greedy among the items after which the
  environment's quit rule lets the user stay. It reads the evaluation protocol's rule instead of
  learning it, so it measures how much of R_tra comes from avoiding the quit rule alone.

Scores are looked up by the observation's `user` (dataset user id) in the reward table's rows;
a user absent from the table gets the table's mean row. Random choices come from a numpy
generator that `reseed(seed)` restarts (evaluations call it).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from recsim.env.quit_rules import QuitRule
from recsim.errors import ConfigError
from recsim.policy.base import Recommender, one_hot, uniform_probs
from recsim.reward.table import RewardTable


def _random_allowed(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """A uniformly random allowed column per row of `mask` (B, n_items), int64 (B,)."""
    noise = rng.random(mask.shape)
    return np.argmax(np.where(mask, noise, -1.0), axis=1).astype(np.int64)


class RandomRecommender:
    """A uniformly random allowed item."""

    def __init__(self, seed: int = 0, name: str = "random") -> None:
        self.name = name
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        return _random_allowed(self.rng, np.asarray(mask, dtype=bool))

    def action_probs(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        return uniform_probs(mask)

    def ranking_scores(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """Its action distribution: every allowed item ties (the ranking's tie order decides)."""
        return uniform_probs(mask).astype(np.float64)


class ScoreRecommender:
    """Recommend the allowed item with the highest score; scores per user row.

    Args:
        scores: float (n_rows, n_items) scores; a 1-row matrix scores every user alike.
        users: dataset user id of each row (None for a single shared row).
        name: the method's name.
    """

    def __init__(self, scores: np.ndarray, users: np.ndarray | None, name: str) -> None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 2:
            raise ConfigError(f"{name}: scores must be a (users, items) matrix")
        self.name = name
        self.scores = scores
        self.fallback = scores.mean(axis=0)
        if users is None:
            self.row_of_user = None
        else:
            users = np.asarray(users, dtype=np.int64)
            self.row_of_user = np.full(int(users.max()) + 1, -1, dtype=np.int64)
            self.row_of_user[users] = np.arange(len(users))

    def user_scores(self, users: np.ndarray) -> np.ndarray:
        """float64 (B, n_items) scores of the dataset users `users` (B,)."""
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        if self.row_of_user is None:
            return np.broadcast_to(self.scores[0], (len(users), self.scores.shape[1]))
        inside = (users >= 0) & (users < len(self.row_of_user))
        rows = np.where(inside, self.row_of_user[np.where(inside, users, 0)], -1)
        out = self.scores[np.maximum(rows, 0)]
        if (rows < 0).any():
            out = out.copy()
            out[rows < 0] = self.fallback
        return out

    def act(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        scores = np.where(np.asarray(mask, dtype=bool), self.user_scores(observations["user"]), -np.inf)
        return np.argmax(scores, axis=1).astype(np.int64)

    def action_probs(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """1 on the item `act` picks (a deterministic policy)."""
        return one_hot(self.act(observations, mask), np.asarray(mask).shape[1])

    def ranking_scores(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_scores(observations["user"]), dtype=np.float64)


class GreedyRecommender(ScoreRecommender):
    """The highest predicted reward rhat(u, i) of the user model's table."""

    def __init__(self, table: RewardTable, name: str = "greedy") -> None:
        super().__init__(table.mean, table.users, name)


class UCBRecommender(ScoreRecommender):
    """rhat(u, i) + c * sqrt(U(u, i)) (U: the table's uncertainty, a variance or a std^2).

    c = 1 (`StaticConfig.c`): one standard error when U is the squared standard error of the
    mean (the default table's `count` uncertainty), so an item overtakes greedy's only where its
    upper bound passes greedy's. Measured on Coat (default user model, `recsim.user_model.diagnostics`):
    the ordered top-10 differs from greedy's for 98 % of users, the top item for 2.1 %: within a
    user's row the bonus varies by 0.043 (mean std over items), a seventh of the median gap between
    the two best means (0.30). Scaling c to the spread of the mean (c = 13.2, the bonus then varying
    as much as rhat) moves the top item for only 13.8 % of users and is no longer a confidence bound,
    so c stays 1; the ensemble's `disagreement` varies more (top item 8.6 % at c = 1).
    """

    def __init__(self, table: RewardTable, c: float = 1.0, name: str = "ucb") -> None:
        if c < 0:
            raise ConfigError(f"ucb.c: must be >= 0, got {c}")
        super().__init__(table.mean + c * np.sqrt(np.maximum(table.uncertainty, 0.0)), table.users, name)


class PopularRecommender(ScoreRecommender):
    """The item with the most logged positives (ties: the lower column).

    Args:
        train_columns: int (n_rows,) reward-table column of each logged row (-1 = not in the table).
        labels: float (n_rows,) logged labels.
        n_items: number of table columns.
        threshold: a row is a positive when its label is above it.
    """

    def __init__(self, train_columns: np.ndarray, labels: np.ndarray, n_items: int, threshold: float = 0.0,
                 name: str = "popular") -> None:
        columns = np.asarray(train_columns, dtype=np.int64)
        keep = (columns >= 0) & (np.asarray(labels) > threshold)
        counts = np.bincount(columns[keep], minlength=n_items).astype(np.float64)
        super().__init__(counts[None, :], None, name)


class EpsilonGreedyRecommender(GreedyRecommender):
    """Greedy on the user model; with probability `epsilon` a uniformly random allowed item."""

    def __init__(self, table: RewardTable, epsilon: float = 0.3, seed: int = 0, name: str = "egreedy") -> None:
        if not 0 <= epsilon <= 1:
            raise ConfigError(f"egreedy.epsilon: must lie in [0, 1], got {epsilon}")
        super().__init__(table, name)
        self.epsilon = float(epsilon)
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask, dtype=bool)
        greedy = super().act(observations, mask)
        explore = self.rng.random(len(greedy)) < self.epsilon
        return np.where(explore, _random_allowed(self.rng, mask), greedy)

    def action_probs(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """(1 - epsilon) on the greedy item plus epsilon spread uniformly over the allowed items."""
        mask = np.asarray(mask, dtype=bool)
        greedy = ScoreRecommender.act(self, observations, mask)
        return ((1.0 - self.epsilon) * one_hot(greedy, mask.shape[1]) + self.epsilon * uniform_probs(mask)
                ).astype(np.float32)


class QuitAwareGreedyRecommender(ScoreRecommender):
    """Greedy on rhat(u, i) among the items after which the quit rule keeps the user.

    For each row, every item is tested against the rule with the observation's last N items
    (`quit_rule.should_quit`, N = its window); the best allowed item that does not end the
    episode is recommended, or the best allowed item when every one would. The rule is the
    evaluation environment's own, so this is a protocol-aware heuristic, not a learned policy.

    Args:
        table: the user model's reward table (scores = its mean).
        quit_rule: the environment's quit rule over the table's item columns.
        rows_per_block: rows tested together (bounds memory: block x n_items x N item ids).
    """

    def __init__(self, table: RewardTable, quit_rule: QuitRule, name: str = "quit_aware",
                 rows_per_block: int = 128) -> None:
        super().__init__(table.mean, table.users, name)
        self.quit_rule = quit_rule
        self.rows_per_block = int(rows_per_block)

    def act(self, observations: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        scores = np.where(np.asarray(mask, dtype=bool), self.user_scores(observations["user"]), -np.inf)
        window = self.quit_rule.window
        if window == 0:
            return np.argmax(scores, axis=1).astype(np.int64)
        history = np.asarray(observations["history"], dtype=np.int64)
        if history.shape[1] < window:
            raise ConfigError(f"quit_aware: the observation's history ({history.shape[1]} items) is shorter than "
                              f"the quit rule's window ({window})")
        recent = history[:, -window:]
        n_items = scores.shape[1]
        candidates = np.arange(n_items, dtype=np.int64)
        out = np.empty(len(scores), dtype=np.int64)
        for start in range(0, len(scores), self.rows_per_block):
            rows = slice(start, start + self.rows_per_block)
            block = scores[rows]
            quits = self.quit_rule.should_quit(np.repeat(recent[rows], n_items, axis=0),
                                               np.tile(candidates, len(block))).reshape(len(block), n_items)
            safe = np.where(quits, -np.inf, block)
            stays = np.asarray(np.isfinite(safe).any(axis=1))
            out[rows] = np.argmax(np.where(stays[:, None], safe, block), axis=1)
        return out


@dataclasses.dataclass(frozen=True)
class StaticConfig:
    """Settings of the static baselines (the published values).

    Attributes:
        epsilon: epsilon-greedy's exploration probability (published 0.3).
        c: UCB's bonus weight on sqrt(uncertainty).
        threshold: a logged row counts as a positive for "popular" when its label is above it.
    """

    epsilon: float = 0.3
    c: float = 1.0
    threshold: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.epsilon <= 1:
            raise ConfigError(f"StaticConfig.epsilon: must lie in [0, 1], got {self.epsilon}")
        if not (np.isfinite(self.c) and self.c >= 0):
            raise ConfigError(f"StaticConfig.c: must be finite and >= 0, got {self.c}")
        if not np.isfinite(self.threshold):
            raise ConfigError(f"StaticConfig.threshold: must be finite, got {self.threshold}")


@dataclasses.dataclass
class StaticInputs:
    """What a static baseline is built from.

    Attributes:
        config: its settings.
        seed: seeds its random choices.
        train_columns: int64 (n_rows,) the action column of each training row (-1 outside).
        train_labels: float (n_rows,) the training labels.
        n_columns: number of action columns.
        table: the method's reward table (None for random / popular).
        quit_rule: the environment's quit rule over the columns (quit_aware only).
    """

    config: StaticConfig
    seed: int
    train_columns: np.ndarray
    train_labels: np.ndarray
    n_columns: int
    table: RewardTable | None = None
    quit_rule: QuitRule | None = None

    def needs_table(self, name: str) -> RewardTable:
        if self.table is None:
            raise ConfigError(f"method {name!r} reads a reward table; none was given")
        return self.table


def _quit_aware(inputs: StaticInputs) -> QuitAwareGreedyRecommender:
    if inputs.quit_rule is None:
        raise ConfigError("method 'quit_aware' needs the environment's quit rule")
    return QuitAwareGreedyRecommender(inputs.needs_table("quit_aware"), inputs.quit_rule)


STATIC_BASELINES: dict[str, Callable[[StaticInputs], Recommender]] = {
    "random": lambda inputs: RandomRecommender(inputs.seed),
    "popular": lambda inputs: PopularRecommender(inputs.train_columns, inputs.train_labels, inputs.n_columns,
                                                 inputs.config.threshold),
    "greedy": lambda inputs: GreedyRecommender(inputs.needs_table("greedy")),
    "egreedy": lambda inputs: EpsilonGreedyRecommender(inputs.needs_table("egreedy"), inputs.config.epsilon,
                                                       inputs.seed),
    "ucb": lambda inputs: UCBRecommender(inputs.needs_table("ucb"), inputs.config.c),
    "quit_aware": _quit_aware,
}
"""Static method name -> its constructor from `StaticInputs`."""
