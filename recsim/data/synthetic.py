"""The synthetic world: a seeded, KuaiRec-like world whose ground truth is fully known.

Generative model (parameters in `WorldConfig`; presets in `PRESETS`, fixed before any method is
compared on them):

1. **Categories.** Category c has base weight w_c ∝ (c + 1)^-category_skew, so a few categories
   dominate the catalogue. Item i carries 1 + Binomial(max_categories - 1, 0.3) distinct
   categories, drawn without replacement in proportion to w (Gumbel top-k).
2. **Items.** Latent vector v_i ~ N(0, I/d), quality q_i ~ N(0, 1), duration ~ LogNormal (ms).
3. **Users.** Category taste theta_u ~ Dirichlet(taste_concentration * C * w), latent vector
   x_u ~ N(0, I/d), activity a_u ~ LogNormal(0, activity_spread) (scales session length).
4. **Ground truth.** With m(u, i) = C * mean_{c in cats(i)} theta_u[c] (1 = indifferent),
   affinity(u, i) = bias + quality_weight * q_i + taste_weight * log(m + 0.05)
                    + latent_weight * sqrt(d) * <x_u, v_i>,
   truth(u, i) = min(5, exp(affinity)): an expected watch ratio, capped at 5 like KuaiRec's.
5. **Behaviour policy with exposure feedback.** Over `n_rounds` days, each user's session shows
   items drawn i.i.d. from pi_b(i | u) = softmax_i(popularity_bias * log pop_t(i)
   + personalisation * (affinity(u, i) + eps_ui)), eps_ui ~ N(0, preference_noise^2) fixed per
   pair (the recommender's imperfect knowledge). pop_0(i) = w_{primary(i)} * exp(pop_spread * z_i)
   with z_i correlated with quality. After each day pop_{t+1}(i) = pop_t(i) + feedback_rate *
   sum_j pop_t(j) * (i's share of the day's summed logged labels): exposure feeds popularity, the rich get richer,
   so the log is missing-not-at-random and carries a Matthew effect. Every logged row records its exact
   propensity pi_b(i | u) for that day.
6. **Feedback.** Logged label = truth(u, i) * LogNormal(-s^2/2, s) with s = label_noise: mean
   preserving and not clipped (like KuaiRec's logged watch ratios, which exceed 5), so
   E[label | u, i] = truth(u, i) exactly and off-policy estimates can be checked against truth.
7. **Test log.** `test_per_user` items per user drawn uniformly at random (propensity 1/n_items)
   with labels drawn as in 6: a random-exposure log like KuaiRand's or Coat's.
8. **Timestamps.** Day t's session starts at a user-specific hour; consecutive rows are spaced by
   the item's play time (label x duration) plus a gap.

`generate_world(preset, seed)` returns a `Dataset` with truth over all users x all items;
`write_kuairec(dataset, directory)` writes it in KuaiRec 2.0's exact file format.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from recsim.data.encode import item_features_from_categories
from recsim.data.schema import Dataset
from recsim.errors import ConfigError
from recsim.io import atomic_path
from recsim.seeding import child_rngs

TRUTH_CAP = 5.0
MAX_CELLS = 20_000_000
"""Most users x items of a synthetic world (the KuaiRec preset has 4.7 M; each dense float32
(users, items) matrix of the generator takes 4 bytes per pair, and it holds several)."""
START_TIMESTAMP_MS = 1_593_561_600_000  # 2020-07-01 00:00 UTC, when KuaiRec's logs begin
DAY_MS = 86_400_000


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """Parameters of the synthetic world (see the module docstring for the model)."""

    n_users: int = 100
    n_items: int = 200
    n_categories: int = 8
    latent_dim: int = 8
    max_categories: int = 3
    category_skew: float = 1.0
    taste_concentration: float = 0.5
    bias: float = -0.35
    quality_weight: float = 0.25
    taste_weight: float = 0.35
    latent_weight: float = 0.30
    pop_spread: float = 1.0
    popularity_bias: float = 0.8
    personalisation: float = 0.7
    preference_noise: float = 0.5
    feedback_rate: float = 0.3
    n_rounds: int = 5
    session_length: float = 8.0
    activity_spread: float = 0.5
    label_noise: float = 0.3
    test_per_user: int = 10
    duration_median_ms: float = 12_000.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "float" and not math.isfinite(value):
                raise ConfigError(f"WorldConfig.{field.name}: must be a finite number, got {value}")
        for name in ("n_users", "n_items", "n_categories", "latent_dim", "max_categories", "n_rounds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"WorldConfig.{name}: must be >= 1, got {getattr(self, name)}")
        if self.n_users * self.n_items > MAX_CELLS:
            raise ConfigError(f"WorldConfig.n_users x n_items: {self.n_users * self.n_items:,} pairs; the "
                              f"synthetic world holds at most {MAX_CELLS:,} "
                              "(several dense float matrices of that size)")
        if self.test_per_user < 0:
            raise ConfigError(f"WorldConfig.test_per_user: must be >= 0, got {self.test_per_user}")
        if self.duration_median_ms <= 0:
            raise ConfigError(f"WorldConfig.duration_median_ms: must be > 0, got {self.duration_median_ms}")
        if self.max_categories > self.n_categories:
            raise ConfigError("WorldConfig.max_categories: cannot exceed n_categories")
        for name in ("session_length", "taste_concentration", "label_noise", "feedback_rate"):
            if getattr(self, name) < 0:
                raise ConfigError(f"WorldConfig.{name}: must be >= 0, got {getattr(self, name)}")


PRESETS: dict[str, WorldConfig] = {
    "tiny": WorldConfig(),
    "kuairec": WorldConfig(
        n_users=1411, n_items=3327, n_categories=31, n_rounds=10, session_length=20.0,
        test_per_user=30,
    ),
}


def resolve_config(preset: str, **overrides) -> WorldConfig:
    """The preset's config with `overrides` applied; unknown names raise `ConfigError`."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown synthetic preset {preset!r}; choose from {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(WorldConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise ConfigError(f"unknown WorldConfig field(s): {sorted(unknown)}")
    return dataclasses.replace(PRESETS[preset], **overrides)


def _sample_categories(rng: np.random.Generator, cfg: WorldConfig, weights: np.ndarray) -> np.ndarray:
    """Bool (n_items, n_categories): distinct categories per item, drawn in proportion to weights."""
    n_per_item = 1 + rng.binomial(cfg.max_categories - 1, 0.3, size=cfg.n_items)
    keys = np.log(weights)[None, :] + rng.gumbel(size=(cfg.n_items, cfg.n_categories))
    order = np.argsort(-keys, axis=1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(cfg.n_categories)[None, :].repeat(cfg.n_items, 0), axis=1)
    return ranks < n_per_item[:, None]


def _affinity(cfg: WorldConfig, theta: np.ndarray, user_vec: np.ndarray, categories: np.ndarray,
              item_vec: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """float32 (n_users, n_items): the log of the expected watch ratio before the cap."""
    cat = categories.astype(np.float32)
    match = cfg.n_categories * (theta @ cat.T) / cat.sum(axis=1)[None, :]
    latent = np.sqrt(cfg.latent_dim) * (user_vec @ item_vec.T)
    return (cfg.bias + cfg.quality_weight * quality[None, :] + cfg.taste_weight * np.log(match + 0.05)
            + cfg.latent_weight * latent).astype(np.float32)


def _noisy_labels(rng: np.random.Generator, cfg: WorldConfig, truth_values: np.ndarray) -> np.ndarray:
    s = cfg.label_noise
    noise = np.exp(rng.normal(-s * s / 2, s, size=truth_values.shape))
    return (truth_values * noise).astype(np.float32)


def _draw_rows(rng: np.random.Generator, probs: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw counts[u] items i.i.d. from row u of `probs`; return (users, items), both int64."""
    users = np.repeat(np.arange(len(counts)), counts)
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(len(users))
    n_items = probs.shape[1]
    flat = (cdf + np.arange(len(counts))[:, None]).ravel()
    items = np.searchsorted(flat, users + u, side="right") - users * n_items
    return users, np.minimum(items, n_items - 1)


def _behaviour_log(rng: np.random.Generator, cfg: WorldConfig, affinity: np.ndarray, truth: np.ndarray,
                   base_pop: np.ndarray, activity: np.ndarray, durations_ms: np.ndarray) -> pd.DataFrame:
    """The training log of the popularity-biased behaviour policy with exposure feedback."""
    preference = affinity + rng.normal(0.0, cfg.preference_noise, size=affinity.shape).astype(np.float32)
    popularity = base_pop.astype(np.float64).copy()
    start_hour_ms = rng.integers(8 * 3_600_000, 20 * 3_600_000, size=cfg.n_users)
    parts = []
    for day in range(cfg.n_rounds):
        logits = cfg.popularity_bias * np.log(popularity)[None, :] + cfg.personalisation * preference
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        counts = rng.poisson(cfg.session_length * activity)
        users, items = _draw_rows(rng, probs, counts)
        labels = _noisy_labels(rng, cfg, truth[users, items])
        play_ms = labels * durations_ms[items] + rng.integers(1_000, 5_000, size=len(users))
        cumulative = np.cumsum(play_ms)
        first_row = np.repeat(np.cumsum(counts) - counts, counts)
        elapsed_ms = cumulative - play_ms - (cumulative[first_row] - play_ms[first_row])
        timestamps = START_TIMESTAMP_MS + day * DAY_MS + start_hour_ms[users] + elapsed_ms.astype(np.int64)
        parts.append(pd.DataFrame({
            "user": users.astype(np.int32),
            "item": items.astype(np.int32),
            "label": labels,
            "timestamp": timestamps.astype(np.int64),
            "propensity": probs[users, items].astype(np.float32),
        }))
        engagement = np.bincount(items, labels, minlength=cfg.n_items)
        popularity += cfg.feedback_rate * popularity.sum() * engagement / max(engagement.sum(), 1e-12)
    log = pd.concat(parts, ignore_index=True)
    return log.sort_values(["user", "timestamp"], kind="stable", ignore_index=True)


def _user_features(rng: np.random.Generator, theta: np.ndarray, activity: np.ndarray) -> pd.DataFrame:
    """int32 codes (0 = missing): activity quartile, favourite category, a noisy one-hot group."""
    def dense_codes(values: np.ndarray) -> np.ndarray:
        return (np.unique(values, return_inverse=True)[1] + 1).astype(np.int32)

    activity_bucket = np.searchsorted(np.quantile(activity, [0.25, 0.5, 0.75]), activity)
    favourite = theta.argmax(axis=1)
    noisy_group = np.where(rng.random(len(activity)) < 0.7, favourite % 4, rng.integers(0, 4, len(activity)))
    return pd.DataFrame({
        "user_active_degree": dense_codes(activity_bucket),
        "favourite_category": dense_codes(favourite),
        "onehot_feat0": dense_codes(noisy_group),
    })


def generate_world(preset: str = "tiny", seed: int = 0, item_categories: np.ndarray | None = None,
                   **overrides) -> Dataset:
    """Generate the synthetic world `preset` (with field overrides) from `seed`; deterministic.

    `item_categories`, when given, is a bool (n_real_items, C) matrix of real category lists
    (e.g. `read_category_lists` of KuaiRec's item_categories.csv): the world's items then take
    the lists of `n_items` real items drawn at random (among those with at least one category),
    and the category weights w are the real categories' frequencies instead of the power law.
    """
    if item_categories is not None:
        item_categories = np.asarray(item_categories, dtype=bool)
        overrides = {"n_categories": item_categories.shape[1], **overrides}
    cfg = resolve_config(preset, **overrides)
    rng_cat, rng_item, rng_user, rng_pop, rng_log, rng_test, rng_feat = child_rngs(seed, 7)
    if item_categories is None:
        weights = (np.arange(cfg.n_categories) + 1.0) ** -cfg.category_skew
        weights /= weights.sum()
        categories = _sample_categories(rng_cat, cfg, weights)
    else:
        candidates = item_categories[item_categories.any(axis=1)]
        if len(candidates) < cfg.n_items:
            raise ConfigError(f"item_categories: {len(candidates)} items with categories, need n_items={cfg.n_items}")
        categories = candidates[np.sort(rng_cat.choice(len(candidates), cfg.n_items, replace=False))]
        weights = categories.sum(axis=0) + 1e-3
        weights = weights / weights.sum()
    item_vec = rng_item.normal(0, 1 / np.sqrt(cfg.latent_dim), (cfg.n_items, cfg.latent_dim)).astype(np.float32)
    quality = rng_item.normal(size=cfg.n_items).astype(np.float32)
    durations_ms = np.round(cfg.duration_median_ms * np.exp(rng_item.normal(0, 0.6, cfg.n_items))).astype(np.int64)
    theta = rng_user.dirichlet(cfg.taste_concentration * cfg.n_categories * weights + 1e-3, size=cfg.n_users)
    user_vec = rng_user.normal(0, 1 / np.sqrt(cfg.latent_dim), (cfg.n_users, cfg.latent_dim)).astype(np.float32)
    activity = np.exp(rng_user.normal(0, cfg.activity_spread, cfg.n_users))

    affinity = _affinity(cfg, theta.astype(np.float32), user_vec, categories, item_vec, quality)
    truth = np.minimum(np.exp(affinity), TRUTH_CAP).astype(np.float32)

    primary = np.argmax(categories * weights[None, :], axis=1)
    z = 0.5 * quality + np.sqrt(0.75) * rng_pop.normal(size=cfg.n_items)
    base_pop = weights[primary] * np.exp(cfg.pop_spread * z)
    train = _behaviour_log(rng_log, cfg, affinity, truth, base_pop, activity, durations_ms)

    test_users = np.repeat(np.arange(cfg.n_users), cfg.test_per_user)
    test_items = rng_test.integers(0, cfg.n_items, size=len(test_users))
    test = pd.DataFrame({
        "user": test_users.astype(np.int32),
        "item": test_items.astype(np.int32),
        "label": _noisy_labels(rng_test, cfg, truth[test_users, test_items]),
        "propensity": np.full(len(test_users), 1.0 / cfg.n_items, dtype=np.float32),
    }) if cfg.test_per_user else None

    return Dataset(
        name="synthetic",
        train=train,
        test=test,
        user_ids=np.arange(cfg.n_users, dtype=np.int64),
        item_ids=np.arange(cfg.n_items, dtype=np.int64),
        user_features=_user_features(rng_feat, theta, activity),
        item_features=item_features_from_categories(categories),
        item_categories=categories,
        category_names=[str(c) for c in range(cfg.n_categories)],
        truth=truth,
        truth_users=np.arange(cfg.n_users, dtype=np.int32),
        truth_items=np.arange(cfg.n_items, dtype=np.int32),
        label_name="watch_ratio",
        meta={"preset": preset, "seed": seed, "config": dataclasses.asdict(cfg),
              "real_categories": item_categories is not None,
              "video_duration_ms": durations_ms.tolist()},
    ).validate()


def _kuairec_interactions(users: np.ndarray, items: np.ndarray, ratio: np.ndarray, timestamp_ms: np.ndarray,
                          durations_ms: np.ndarray) -> pd.DataFrame:
    """Rows in the column layout of KuaiRec's big_matrix.csv / small_matrix.csv."""
    video_duration = durations_ms[items]
    moments = pd.to_datetime(timestamp_ms, unit="ms")
    return pd.DataFrame({
        "user_id": users,
        "video_id": items,
        "play_duration": np.round(ratio.astype(np.float64) * video_duration).astype(np.int64),
        "video_duration": video_duration,
        "time": moments.strftime("%Y-%m-%d %H:%M:%S.%f").str[:-3],
        "date": moments.strftime("%Y%m%d").astype(np.int64),
        "timestamp": [f"{t / 1000:.3f}" for t in timestamp_ms],
        "watch_ratio": [repr(float(v)) for v in ratio.astype(np.float32)],
    })


def write_kuairec(dataset: Dataset, directory: str | os.PathLike) -> Path:
    """Write a synthetic world in KuaiRec 2.0's file format (big/small matrix, categories, users).

    `small_matrix.csv` holds the ground truth over truth_users x truth_items (fully dense);
    `big_matrix.csv` the training log. Float values are written with enough digits that the
    KuaiRec loader reads back the identical float32 values.
    """
    if dataset.truth is None or "video_duration_ms" not in dataset.meta:
        raise ConfigError("write_kuairec: only synthetic worlds (with truth and durations) can be written")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    durations_ms = np.asarray(dataset.meta["video_duration_ms"], dtype=np.int64)
    train = dataset.train
    big = _kuairec_interactions(dataset.user_ids[train["user"]], dataset.item_ids[train["item"]],
                                train["label"].to_numpy(), train["timestamp"].to_numpy(), durations_ms)
    truth, truth_users, truth_items = dataset.truth_block()
    tu, ti = np.meshgrid(truth_users, truth_items, indexing="ij")
    small_ts = START_TIMESTAMP_MS + np.arange(tu.size, dtype=np.int64) % DAY_MS
    small = _kuairec_interactions(dataset.user_ids[tu.ravel()], dataset.item_ids[ti.ravel()],
                                  truth.ravel(), small_ts, durations_ms)
    tags = [str(sorted(np.flatnonzero(row).tolist())) for row in dataset.item_categories]
    categories = pd.DataFrame({"video_id": dataset.item_ids, "feat": tags})
    users = dataset.user_features.copy()
    users.insert(0, "user_id", dataset.user_ids)
    for name, frame in (("big_matrix.csv", big), ("small_matrix.csv", small),
                        ("item_categories.csv", categories), ("user_features.csv", users)):
        with atomic_path(directory / name) as tmp:
            frame.to_csv(tmp, index=False)
    return directory
