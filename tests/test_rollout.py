"""Online evaluation: rollouts against a naive single-environment loop, metrics, seed statistics."""
from __future__ import annotations

import math

import numpy as np
import pytest

from recsim.env import EnvConfig, RecEnv
from recsim.env.quit_rules import CategoryOverlapQuit
from recsim.evaluation.rollout import EpisodeLog, across_seeds, rollout, summarise
from recsim.reward.table import RewardTable
from recsim.seeding import child_seeds

N_USERS, N_ITEMS = 6, 12


@pytest.fixture
def world():
    rng = np.random.default_rng(0)
    mean = rng.uniform(0, 2, (N_USERS, N_ITEMS)).astype(np.float32)
    table = RewardTable.from_truth(mean, np.arange(N_USERS), np.arange(N_ITEMS))
    categories = np.zeros((N_ITEMS, 4), dtype=bool)
    categories[np.arange(N_ITEMS), np.arange(N_ITEMS) % 4] = True
    return table, categories


class CyclePolicy:
    """Deterministic: item (user + 5 * turn) mod n_items, the next allowed one if masked."""

    def act(self, observations, mask):
        want = (observations["user"] + 5 * observations["turn"]) % N_ITEMS
        order = (want[:, None] + np.arange(N_ITEMS)[None, :]) % N_ITEMS
        allowed = np.take_along_axis(mask, order, axis=1)
        return order[np.arange(len(order)), allowed.argmax(axis=1)]


def naive_rollout(policy, table, mode, quit_rule, n_episodes, user_seed):
    """One RecEnv per episode on the stream seed the rollout uses; plain Python loop."""
    results = []
    for stream in child_seeds(user_seed, n_episodes):
        env = RecEnv(table, quit_rule, EnvConfig(mode=mode), seed=stream)
        obs, info = env.reset()
        items, rewards = [], []
        while True:
            batch = {k: np.asarray(v)[None] for k, v in obs.items()}
            action = int(policy.act(batch, batch["mask"].copy())[0])
            obs, reward, terminated, truncated, _ = env.step(action)
            items.append(action)
            rewards.append(reward)
            if terminated or truncated:
                break
        results.append((info["user"], items, rewards, terminated))
    return results


@pytest.mark.parametrize("mode", ["FB", "NX_0", "NX_10"])
@pytest.mark.parametrize("batch_size", [1, 4, 100])
def test_rollout_matches_naive_loop(world, mode, batch_size):
    table, categories = world
    quit_rule = CategoryOverlapQuit(categories, 0, 2)
    log = rollout(CyclePolicy(), table, mode, quit_rule, 9, user_seed=3, batch_size=batch_size)
    expected = naive_rollout(CyclePolicy(), table, mode, quit_rule, 9, 3)
    for j, (user, items, rewards, quit_flag) in enumerate(expected):
        assert log.users[j] == user
        assert log.lengths[j] == len(items)
        assert log.items[j, :len(items)].tolist() == items
        assert (log.items[j, len(items):] == -1).all()
        np.testing.assert_allclose(log.rewards[j, :len(items)], rewards, rtol=1e-6)
        assert log.quit[j] == quit_flag
    if mode == "NX_10":
        assert (log.lengths == 10).all() and not log.quit.any()
        assert all(len(set(e.tolist())) == 10 for e in log.episodes())


def test_users_are_fixed_by_the_user_seed_not_the_policy(world):
    table, categories = world

    class First:
        def act(self, observations, mask):
            return mask.argmax(axis=1)

    a = rollout(CyclePolicy(), table, "FB", None, 20, user_seed=1)
    b = rollout(First(), table, "NX_0", None, 20, user_seed=1)
    c = rollout(First(), table, "FB", None, 20, user_seed=2)
    assert (a.users == b.users).all()
    assert not (a.users == c.users).all()


def test_repeating_an_item_quits_on_the_second_step_in_fb(world):
    table, categories = world

    class Same:
        def act(self, observations, mask):
            return np.zeros(len(mask), dtype=np.int64)

    log = rollout(Same(), table, "FB", CategoryOverlapQuit(categories, 0, 4), 10)
    assert (log.lengths == 2).all() and log.quit.all()
    np.testing.assert_allclose(log.returns, 2 * table.mean[log.users, 0], rtol=1e-6)


def test_summarise_against_hand_computation(world):
    table, categories = world
    log = rollout(CyclePolicy(), table, "NX_10", None, 8)
    dominating = np.array([0])
    metrics = summarise(log, categories, dominating, n_bootstrap=50)
    returns = np.array([table.mean[u, e].sum() for u, e in zip(log.users, log.episodes(), strict=True)])
    assert metrics["R_tra"] == pytest.approx(returns.mean(), rel=1e-6)
    assert metrics["length"] == 10
    assert metrics["R_each"] == pytest.approx(returns.mean() / 10, rel=1e-6)
    assert metrics["R_tra_low"] <= metrics["R_tra"] <= metrics["R_tra_high"]
    flat = np.concatenate(log.episodes())
    assert metrics["coverage"] == len(set(flat.tolist())) / N_ITEMS
    assert metrics["MCD"] == pytest.approx(np.mean(flat % 4 == 0))
    assert metrics["quit_rate"] == 0.0


def test_across_seeds_student_t():
    stats = across_seeds([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t_{0.975, 2} * std / sqrt(n)
    assert stats["mean"] == 2.0 and stats["std"] == pytest.approx(1.0)
    assert stats["low"] == pytest.approx(2.0 - half) and stats["high"] == pytest.approx(2.0 + half)
    one = across_seeds([5.0, float("nan")])
    assert one == {"mean": 5.0, "std": 0.0, "low": 5.0, "high": 5.0, "n": 1}
    assert math.isnan(across_seeds([])["mean"])


def test_episode_log_round_trip(world, tmp_path):
    table, _ = world
    log = rollout(CyclePolicy(), table, "NX_0", None, 5)
    log.save(tmp_path / "episodes.npz")
    back = EpisodeLog.load(tmp_path / "episodes.npz")
    assert back.mode == "NX_0"
    for name in ("users", "items", "rewards", "lengths", "quit"):
        np.testing.assert_array_equal(getattr(back, name), getattr(log, name))
