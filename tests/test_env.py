"""Environments: gymnasium checker, batched == single, modes' masks, tianshou collector contract."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from recsim.env import (
    BatchedRecEnv,
    CategoryOverlapQuit,
    EnvConfig,
    ItemDistanceQuit,
    RecEnv,
    TianshouVectorEnv,
    item_distance_matrix,
    observation_space,
)
from recsim.errors import ConfigError
from recsim.reward.entropy import EntropyTable
from recsim.reward.penalty import PenalisedReward, PenaltyConfig
from recsim.reward.table import RewardTable

N_USERS, N_ITEMS, N_CATS = 7, 20, 5
USER_IDS = np.array([0, 2, 3, 5, 8, 9, 11])  # rows are not user ids


def _world(seed: int = 0):
    rng = np.random.default_rng(seed)
    mean = rng.random((N_USERS, N_ITEMS)).astype(np.float32) * 5
    unc = rng.random((N_USERS, N_ITEMS)).astype(np.float32)
    table = RewardTable(mean, unc, USER_IDS, np.arange(N_ITEMS))
    cats = np.zeros((N_ITEMS, N_CATS), dtype=bool)
    cats[np.arange(N_ITEMS), rng.integers(0, N_CATS, N_ITEMS)] = True
    cats |= rng.random((N_ITEMS, N_CATS)) < 0.1
    log = pd.DataFrame({"user": rng.integers(0, 30, 400), "item": rng.integers(0, N_ITEMS, 400),
                        "timestamp": rng.integers(0, 1000, 400)})
    entropy = EntropyTable.from_log(log, N_ITEMS)
    return table, cats, entropy


def _rewards(table, entropy):
    return {
        "raw": None,
        "dorl": PenalisedReward(table, PenaltyConfig(0.05, 5.0), entropy),
        "mopo": PenalisedReward(table, PenaltyConfig(0.1, 0.0)),
    }


@pytest.mark.parametrize("mode", ["FB", "NX_0", "NX_4"])
def test_gymnasium_checker(mode):
    table, cats, entropy = _world()
    env = RecEnv(table, CategoryOverlapQuit(cats), EnvConfig(mode=mode, history_window=3),
                 reward=PenalisedReward(table, PenaltyConfig(0.05, 5.0), entropy))
    check_env(env, skip_render_check=True)


def _assert_same_obs(batched_obs, j, single_obs):
    for key, value in single_obs.items():
        np.testing.assert_array_equal(batched_obs[key][j], value, err_msg=key)


@pytest.mark.parametrize("mode", ["FB", "NX_0", "NX_6"])
@pytest.mark.parametrize("reward_name", ["raw", "dorl", "mopo"])
@pytest.mark.parametrize("subset", [False, True])
def test_batched_equals_single(mode, reward_name, subset):
    """Same seeds and actions: identical observations, rewards, ends and reward breakdowns."""
    table, cats, entropy = _world()
    reward = _rewards(table, entropy)[reward_name]
    config = EnvConfig(mode=mode, history_window=4, max_turn=8)
    quit_rule = CategoryOverlapQuit(cats, leave_threshold=0, window=3)
    n = 5
    batched = BatchedRecEnv(table, quit_rule, config, reward, num_envs=n, seed=123)
    singles = [RecEnv(table, quit_rule, config, reward, seed=s) for s in batched.stream_seeds]
    obs, info = batched.reset()
    for j, env in enumerate(singles):
        single_obs, single_info = env.reset()
        _assert_same_obs(obs, j, single_obs)
        assert info["user"][j] == single_info["user"]
    rng = np.random.default_rng(7)
    episodes_done = 0
    for _ in range(80):
        ids = np.sort(rng.choice(n, size=rng.integers(1, n + 1), replace=False)) if subset else np.arange(n)
        actions = rng.integers(0, N_ITEMS, len(ids))
        obs, rew, term, trunc, info = batched.step(actions, ids if subset else None)
        for j, (i, a) in enumerate(zip(ids, actions)):
            s_obs, s_rew, s_term, s_trunc, s_info = singles[i].step(a)
            _assert_same_obs(obs, j, s_obs)
            assert rew[j] == np.float32(s_rew)
            assert term[j] == s_term and trunc[j] == s_trunc
            for key in ("predicted", "uncertainty_penalty", "entropy_bonus", "total"):
                assert info[key][j] == np.float32(s_info[key]), key
        done = np.flatnonzero(term | trunc)
        if len(done):
            episodes_done += len(done)
            reset_obs, _ = batched.reset(ids[done])
            for j, i in enumerate(ids[done]):
                _assert_same_obs(reset_obs, j, singles[i].reset()[0])
    assert episodes_done > 5


def test_reset_draws_from_users_and_is_seeded():
    table, cats, _ = _world()
    env = BatchedRecEnv(table, CategoryOverlapQuit(cats), num_envs=50, seed=1, users=[3, 9])
    users = env.reset()[0]["user"]
    assert set(users.tolist()) == {3, 9}
    a = BatchedRecEnv(table, num_envs=50, seed=2).reset()[0]["user"]
    b = BatchedRecEnv(table, num_envs=50, seed=2).reset()[0]["user"]
    c = BatchedRecEnv(table, num_envs=50, seed=3).reset()[0]["user"]
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert set(a.tolist()) <= set(USER_IDS.tolist())
    with pytest.raises(ConfigError):
        BatchedRecEnv(table, num_envs=2, users=[1])


def test_reset_with_given_users():
    table, cats, _ = _world()
    env = BatchedRecEnv(table, CategoryOverlapQuit(cats), num_envs=3, seed=0)
    obs, info = env.reset(users=[11, 0, 5])
    np.testing.assert_array_equal(obs["user"], [11, 0, 5])
    env.step(np.array([1, 2, 3]))
    obs, _ = env.reset([1], users=[9])
    assert obs["user"].tolist() == [9]
    with pytest.raises(ConfigError):
        env.reset(users=[1, 2, 3])  # 1 is not a user of the table
    with pytest.raises(ValueError):
        env.reset(users=[0, 2])
    single = RecEnv(table, CategoryOverlapQuit(cats))
    assert int(single.reset(options={"user": 8})[0]["user"]) == 8


def test_single_reset_seed_restarts_stream():
    table, cats, _ = _world()
    env = RecEnv(table, CategoryOverlapQuit(cats), seed=5)
    first = [int(env.reset()[0]["user"]) for _ in range(10)]
    again = [int(env.reset(seed=5)[0]["user"])] + [int(env.reset()[0]["user"]) for _ in range(9)]
    assert first == again
    assert len(set(first)) > 1


def test_fb_mask_all_true_and_repeats_allowed():
    table, _, _ = _world()
    env = BatchedRecEnv(table, None, EnvConfig(mode="FB", max_turn=5), num_envs=3)
    obs, _ = env.reset()
    for _ in range(4):
        obs, rew, term, trunc, _ = env.step(np.array([2, 2, 2]))
        assert obs["mask"].all()
        np.testing.assert_array_equal(rew, table.mean[env._rows, 2])
    obs, _, term, trunc, _ = env.step(np.array([2, 2, 2]))
    assert trunc.all() and not term.any()
    np.testing.assert_array_equal(obs["turn"], [5, 5, 5])
    single = RecEnv(table, None, EnvConfig(mode="FB", max_turn=2))
    with pytest.raises(RuntimeError):
        single.step(0)
    single.reset()
    single.step(0)
    assert single.step(0)[3]
    with pytest.raises(RuntimeError):
        single.step(0)


def test_observation_keys_are_not_batch_methods():
    from tianshou.data import Batch

    from recsim.env import OBS_KEYS

    assert set(OBS_KEYS) == set(observation_space(3, 4, 2, 5).spaces)
    assert not any(hasattr(Batch(), key) for key in OBS_KEYS)


def test_nx0_masks_recommended_and_reset_restores():
    table, cats, _ = _world()
    env = BatchedRecEnv(table, None, EnvConfig(mode="NX_0", max_turn=10), num_envs=2)
    env.reset()
    env.step(np.array([1, 4]))
    obs, *_ = env.step(np.array([3, 5]))
    expected = np.ones((2, N_ITEMS), dtype=bool)
    expected[0, [1, 3]] = False
    expected[1, [4, 5]] = False
    np.testing.assert_array_equal(obs["mask"], expected)
    obs, _ = env.reset([0])
    assert obs["mask"].all()
    obs, *_ = env.step(np.array([7]), [1])
    expected[1, 7] = False
    np.testing.assert_array_equal(obs["mask"][0], expected[1])


def test_nx0_episode_ends_when_every_item_was_shown():
    """max_turn above the item count: the step that shows the last item truncates (nothing is left)."""
    table, _, _ = _world()
    env = BatchedRecEnv(table, None, EnvConfig(mode="NX_0", max_turn=30), num_envs=1)
    single = RecEnv(table, None, EnvConfig(mode="NX_0", max_turn=30))
    env.reset()
    single.reset()
    for item in range(N_ITEMS):
        obs, _, term, trunc, _ = env.step([item])
        _, _, single_term, single_trunc, _ = single.step(item)
        assert not term[0] and not single_term
        assert trunc[0] == single_trunc == (item == N_ITEMS - 1)
    assert not obs["mask"].any()


def test_nx0_masked_action_error():
    table, _, _ = _world()
    env = BatchedRecEnv(table, None, EnvConfig(mode="NX_0", masked_action="error"), num_envs=1)
    env.reset()
    env.step([4])
    with pytest.raises(ValueError):
        env.step([4])
    single = RecEnv(table, None, EnvConfig(mode="NX_0", masked_action="error"))
    single.reset()
    single.step(4)
    with pytest.raises(ValueError):
        single.step(4)


def test_nxk_exact_length_no_quit():
    """NX_k ignores the quit rule (same category every step) and truncates after exactly k steps."""
    table, _, _ = _world()
    cats = np.ones((N_ITEMS, 1), dtype=bool)  # every item shares the category: FB would quit at step 2
    quit_rule = CategoryOverlapQuit(cats, window=4)
    fb = BatchedRecEnv(table, quit_rule, EnvConfig(mode="FB"), num_envs=1)
    fb.reset()
    assert not fb.step([0])[2][0]
    assert fb.step([1])[2][0]
    env = BatchedRecEnv(table, quit_rule, EnvConfig(mode="NX_3"), num_envs=2)
    env.reset()
    for step in range(3):
        obs, _, term, trunc, _ = env.step(np.array([step, step + 5]))
        assert not term.any()
        assert trunc.all() == (step == 2)
    assert (~obs["mask"]).sum(axis=1).tolist() == [3, 3]
    with pytest.raises(RuntimeError):
        env.step(np.array([9, 9]))


def test_distance_quit_in_env():
    table, _, _ = _world()
    rule = ItemDistanceQuit(item_distance_matrix(table.mean), threshold=1e-6, window=2)
    env = RecEnv(table, rule, EnvConfig(mode="FB"))
    env.reset()
    assert not env.step(3)[2]
    assert not env.step(4)[2]
    assert env.step(3)[2]  # distance 0 to itself, within the last 2 items


def test_tianshou_collector_random_policy():
    """A real tianshou Collector drives the adapter; the buffer's transitions are consistent."""
    from tianshou.algorithm.algorithm_base import RandomActionPolicy
    from tianshou.data import Collector, VectorReplayBuffer

    table, cats, entropy = _world()
    reward = PenalisedReward(table, PenaltyConfig(0.05, 5.0), entropy)
    batched = BatchedRecEnv(table, CategoryOverlapQuit(cats), EnvConfig(mode="NX_0", history_window=3),
                            reward, num_envs=4, seed=0)
    venv = TianshouVectorEnv(batched, info="breakdown")
    assert venv.action_space[0].n == N_ITEMS and len(venv) == 4
    policy = RandomActionPolicy(batched.single_action_space)
    buffer = VectorReplayBuffer(2000, 4)
    collector = Collector(policy, venv, buffer)
    stats = collector.collect(n_episode=12, reset_before_collect=True)
    assert stats.n_collected_episodes == 12
    stats = collector.collect(n_step=40)
    assert stats.n_collected_steps == 40
    data = buffer.sample(0)[0]
    assert len(data) > 40
    # the reward of every transition is the table's penalised reward of (user, action, history)
    act = data.act.astype(np.int64)
    rows = np.searchsorted(USER_IDS, data.obs.user)
    expected = reward.total(rows, data.obs.history[:, -1:], act)
    np.testing.assert_allclose(data.rew, expected, rtol=0, atol=0)
    np.testing.assert_allclose(data.info.total, data.rew)
    # within an episode, obs_next appends the action and its reward to obs
    cont = ~data.done
    np.testing.assert_array_equal(data.obs_next.history[:, -1], act)
    np.testing.assert_array_equal(data.obs_next.history[cont][:, :-1], data.obs.history[cont][:, 1:])
    np.testing.assert_array_equal(data.obs_next.turn, data.obs.turn + 1)
    assert not data.obs_next.mask[np.arange(len(data)), act].any()
    # random-action collection goes through the per-env action spaces
    stats = collector.collect(n_step=8, random=True)
    assert stats.n_collected_steps == 8


def test_ground_truth_env_on_synthetic_world():
    """The ground-truth env is the same env over the truth matrix; the learned one adds penalties."""
    from recsim.data.synthetic import generate_world

    world = generate_world("tiny", seed=0)
    truth = RewardTable.from_truth(world.truth, world.truth_users, world.truth_items)
    quit_rule = CategoryOverlapQuit(world.item_categories, leave_threshold=0, window=4)
    env = BatchedRecEnv(truth, quit_rule, EnvConfig(mode="NX_0"), num_envs=64, seed=0)
    obs, _ = env.reset()
    rng = np.random.default_rng(0)
    total, steps = 0.0, 0
    for _ in range(40):
        obs, rew, term, trunc, info = env.step(rng.integers(0, world.n_items, 64))
        rows = np.searchsorted(world.truth_users, info["user"])
        np.testing.assert_array_equal(rew, np.nan_to_num(world.truth)[rows, obs["history"][:, -1]])
        total, steps = total + rew.sum(), steps + 64
        done = np.flatnonzero(term | trunc)
        env.reset(done)
    assert steps == 40 * 64 and np.isfinite(total)
    entropy = EntropyTable.from_log(world.train, world.n_items)
    learned = PenalisedReward(RewardTable(truth.mean, np.ones_like(truth.mean), truth.users, truth.items),
                              PenaltyConfig(0.05, 5.0), entropy)
    single = RecEnv(truth, quit_rule, EnvConfig(), learned, seed=3)
    single.reset()
    _, r, *_ = single.step(0)
    assert r >= 0
