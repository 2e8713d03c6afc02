"""State trackers: output shapes, padding, gradient flow, use inside tianshou actor and critic."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recsim.errors import ConfigError
from recsim.policy.trackers import TRACKERS, AverageTracker, GRUTracker, TrackerConfig, make_tracker

N_ITEMS, DIM = 12, 4


def _obs(batch: int = 5, window: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    history = rng.integers(0, N_ITEMS, (batch, window))
    lengths = np.arange(batch) % (window + 1)  # 0 .. window valid steps, left padded
    for b, n in enumerate(lengths):
        history[b, : window - n] = -1
    feedback = rng.random((batch, window)).astype(np.float32) * (history >= 0)
    return {"user": rng.integers(0, 3, batch), "history": history, "feedback": feedback,
            "mask": np.ones((batch, N_ITEMS), dtype=bool), "turn": lengths}


def _init_embeddings() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(N_ITEMS, DIM)).astype(np.float32)


@pytest.mark.parametrize("kind", sorted(TRACKERS))
def test_output_shape_and_dim(kind):
    config = TrackerConfig(kind=kind, window=3, hidden_dim=16)
    tracker = make_tracker(config, N_ITEMS, _init_embeddings())
    features, state = tracker(_obs())
    expected = DIM + 1 if kind == "average" else 16
    assert tracker.get_output_dim() == expected
    assert features.shape == (5, expected) and features.dtype == torch.float32
    assert state is None
    assert torch.isfinite(features).all()
    assert (features[0] == 0).all()  # first row has no history


@pytest.mark.parametrize("kind", sorted(TRACKERS))
def test_gradients_reach_item_embeddings(kind):
    tracker = make_tracker(TrackerConfig(kind=kind, window=4, hidden_dim=8), N_ITEMS, _init_embeddings())
    obs = _obs()
    features, _ = tracker(obs)
    (features ** 2).sum().backward()
    grad = tracker.item_embedding.weight.grad
    used = np.unique(obs["history"][obs["history"] >= 0])
    assert grad[used].abs().sum(dim=1).gt(0).all()
    assert grad[N_ITEMS].abs().sum() == 0  # padding row never trains


@pytest.mark.parametrize("kind", sorted(TRACKERS))
def test_padding_is_ignored(kind):
    tracker = make_tracker(TrackerConfig(kind=kind, window=4, hidden_dim=8), N_ITEMS).eval()
    obs = _obs()
    other = {k: v.copy() for k, v in obs.items()}
    other["feedback"][obs["history"] < 0] = 7.0  # garbage under the padding
    a, _ = tracker(obs)
    b, _ = tracker(other)
    torch.testing.assert_close(a, b)


def test_average_is_published_mean_of_last_three():
    emb = _init_embeddings()
    tracker = AverageTracker(TrackerConfig(window=3, reward_low=0.0, reward_high=2.0), N_ITEMS, emb)
    obs = {"history": np.array([[5, 1, 2, 3], [-1, -1, 4, 6]]), "feedback": np.array([[9, 1, 2, 3], [0, 0, 1, 0.5]])}
    features, _ = tracker(obs)
    expected0 = np.concatenate([emb[[1, 2, 3]], np.array([[0.5], [1.0], [1.5]])], axis=1).mean(axis=0)
    expected1 = np.concatenate([emb[[4, 6]], np.array([[0.5], [0.25]])], axis=1).mean(axis=0)
    np.testing.assert_allclose(features.detach().numpy(), [expected0, expected1], rtol=1e-6)


def test_gru_skips_left_padding():
    tracker = GRUTracker(TrackerConfig(kind="gru", window=4, hidden_dim=6), N_ITEMS, _init_embeddings())
    obs = {"history": np.array([[-1, -1, 3, 7]]), "feedback": np.array([[0, 0, 0.3, 0.9]], dtype=np.float32)}
    features, _ = tracker(obs)
    x = torch.cat([tracker.item_embedding(torch.tensor([[3, 7]])), torch.tensor([[[0.3], [0.9]]])], dim=-1)
    _, hidden = tracker.gru(x)
    torch.testing.assert_close(features, hidden[-1])


def test_user_embeddings_and_from_scratch():
    users = np.random.default_rng(2).normal(size=(3, 2)).astype(np.float32)
    tracker = make_tracker(TrackerConfig(kind="average", embedding_dim=5), N_ITEMS, user_embeddings=users)
    obs = _obs()
    features, _ = tracker(obs)
    assert tracker.get_output_dim() == 5 + 1 + 2
    np.testing.assert_allclose(features[:, -2:].detach().numpy(), users[obs["user"]])
    a = make_tracker(TrackerConfig(kind="gru", seed=3), N_ITEMS)
    b = make_tracker(TrackerConfig(kind="gru", seed=3), N_ITEMS)
    torch.testing.assert_close(a(obs)[0], b(obs)[0])


def test_frozen_embeddings():
    tracker = make_tracker(TrackerConfig(freeze_embeddings=True), N_ITEMS, _init_embeddings())
    assert not tracker.item_embedding.weight.requires_grad


@pytest.mark.parametrize("kwargs", [dict(kind="lstm"), dict(window=0), dict(reward_high=0.0),
                                    dict(kind="attention", hidden_dim=5, n_heads=2), dict(dropout=1.0)])
def test_invalid_config(kwargs):
    with pytest.raises(ConfigError):
        TrackerConfig(**kwargs)


def test_window_larger_than_history():
    tracker = make_tracker(TrackerConfig(window=6), N_ITEMS)
    with pytest.raises(ConfigError):
        tracker(_obs(window=4))


@pytest.mark.parametrize("kind", sorted(TRACKERS))
def test_inside_tianshou_actor_and_critic(kind):
    """One tracker shared by DiscreteActor and DiscreteCritic, fed a Batch collected from the env."""
    from tianshou.data import Batch
    from tianshou.utils.net.discrete import DiscreteActor, DiscreteCritic

    from recsim.env import BatchedRecEnv, EnvConfig, TianshouVectorEnv
    from recsim.reward.table import RewardTable

    rng = np.random.default_rng(0)
    table = RewardTable(rng.random((4, N_ITEMS)), np.zeros((4, N_ITEMS)), np.arange(4), np.arange(N_ITEMS))
    venv = TianshouVectorEnv(BatchedRecEnv(table, None, EnvConfig(history_window=4), num_envs=6))
    obs, _ = venv.reset()
    obs, *_ = venv.step(rng.integers(0, N_ITEMS, 6))
    assert isinstance(obs, Batch)
    tracker = make_tracker(TrackerConfig(kind=kind, window=3, hidden_dim=8), N_ITEMS, _init_embeddings())
    actor = DiscreteActor(preprocess_net=tracker, action_shape=N_ITEMS, hidden_sizes=(16,))
    critic = DiscreteCritic(preprocess_net=tracker, hidden_sizes=(16,))
    probs, _ = actor(obs)
    values = critic(obs)
    assert probs.shape == (6, N_ITEMS) and values.shape == (6, 1)
    (values.sum() - probs[:, 0].log().sum()).backward()
    assert tracker.item_embedding.weight.grad is not None
    assert tracker.item_embedding.weight.grad.abs().sum() > 0


def test_a2c_trains_tracker_end_to_end():
    """Tracker shared by actor and critic, A2C over the batched env: embeddings move with the RL loss."""
    from tianshou.algorithm import A2C
    from tianshou.algorithm.modelfree.reinforce import ProbabilisticActorPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, VectorReplayBuffer
    from tianshou.trainer import OnPolicyTrainerParams
    from tianshou.utils.net.discrete import DiscreteActor, DiscreteCritic

    from recsim.env import BatchedRecEnv, EnvConfig, TianshouVectorEnv
    from recsim.reward.table import RewardTable

    rng = np.random.default_rng(0)
    table = RewardTable(rng.random((4, N_ITEMS)), np.zeros((4, N_ITEMS)), np.arange(4), np.arange(N_ITEMS))
    venv = TianshouVectorEnv(BatchedRecEnv(table, None, EnvConfig(history_window=3, max_turn=5), num_envs=8))
    tracker = make_tracker(TrackerConfig(kind="average", window=3), N_ITEMS, _init_embeddings())
    before = tracker.item_embedding.weight.detach().clone()
    actor = DiscreteActor(preprocess_net=tracker, action_shape=N_ITEMS, hidden_sizes=(16,), softmax_output=False)
    critic = DiscreteCritic(preprocess_net=tracker, hidden_sizes=(16,))
    policy = ProbabilisticActorPolicy(actor=actor,
                                      dist_fn=lambda logits: torch.distributions.Categorical(logits=logits),
                                      action_space=venv.action_space[0], action_scaling=False)
    algorithm = A2C(policy=policy, critic=critic, optim=AdamOptimizerFactory(lr=1e-2), gamma=0.9, gae_lambda=1.0)
    collector = Collector(algorithm, venv, VectorReplayBuffer(400, 8))
    algorithm.run_training(OnPolicyTrainerParams(
        training_collector=collector, max_epochs=1, epoch_num_steps=64, collection_step_num_env_steps=32,
        batch_size=32, test_step_num_episodes=1, show_progress=False, verbose=False))
    assert not torch.equal(before, tracker.item_embedding.weight.detach())
