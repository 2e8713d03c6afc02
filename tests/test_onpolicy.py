"""Batched on-policy collection: layout, masks, GAE against tianshou's buffer, determinism, resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from tianshou.data import ReplayBuffer, VectorReplayBuffer
from tianshou.utils.torch_utils import policy_within_training_step

from recsim.data.synthetic import generate_world
from recsim.env import BatchedRecEnv, CategoryOverlapQuit, EnvConfig
from recsim.errors import ConfigError
from recsim.policy.actors import MaskedItemHead, TiedItemHead, build_tracker, categorical_from_logits
from recsim.policy.methods import Budget
from recsim.policy.model_based import AGENT_PRESETS, AgentConfig, ModelBasedConfig, build_agent, train_model_based
from recsim.policy.onpolicy import BatchedCollector, _Round, flatten_round
from recsim.policy.scaling import FeedbackScale
from recsim.policy.trackers import TrackerConfig
from recsim.reward.penalty import PenaltyConfig
from recsim.reward.table import RewardTable

GAMMA = 0.9


@pytest.fixture(scope="module")
def world():
    return generate_world("tiny", 0)


@pytest.fixture(scope="module")
def table(world):
    return RewardTable.from_truth(world.truth, world.truth_users, world.truth_items)


@pytest.fixture(scope="module")
def quit_rule(world):
    return CategoryOverlapQuit(np.asarray(world.item_categories, dtype=bool), leave_threshold=0, window=4)


def _algorithm(env: BatchedRecEnv, agent: AgentConfig | None = None):
    torch.manual_seed(0)
    agent = agent or AgentConfig()
    tracker = build_tracker(agent.tracker, env.n_items, None, env.config.history_window, 0)
    return build_agent(agent, env.n_items, tracker, env.single_action_space, env.single_observation_space)


def _collect(table, quit_rule, mode: str, num_envs: int, episodes: int, max_turn: int = 30):
    env = BatchedRecEnv(table, quit_rule, EnvConfig(mode=mode, max_turn=max_turn), num_envs=num_envs, seed=3,
                        breakdown=False)
    algorithm = _algorithm(env)
    torch.manual_seed(1)
    return env, BatchedCollector(algorithm.policy, env, FeedbackScale(0.0, 4.0)).collect(episodes)


@pytest.mark.parametrize("mode", ["NX_0", "FB"])
def test_collection_is_whole_episodes_in_order_with_next_observations(table, quit_rule, mode):
    env, rollout = _collect(table, quit_rule, mode, num_envs=7, episodes=17)
    data = rollout.buffer[:]
    assert len(rollout.lengths) == 17 and len(rollout.buffer) == rollout.n_steps == rollout.lengths.sum()
    ends = np.cumsum(rollout.lengths) - 1
    assert np.flatnonzero(data.done).tolist() == ends.tolist()  # an episode ends exactly at its flag
    assert not (data.terminated & data.truncated).any()
    assert (data.truncated <= (data.obs_next.turn == env.limit)).all()
    starts = np.concatenate([[0], ends[:-1] + 1])
    assert (data.obs.turn[starts] == 0).all() and (data.obs.history[starts] == -1).all()
    inside = np.setdiff1d(np.arange(len(data)), ends)
    for key in ("history", "feedback", "turn", "user"):  # obs_next of a step is the next step's obs
        np.testing.assert_array_equal(data.obs_next[key][inside], data.obs[key][inside + 1])
    np.testing.assert_array_equal(data.obs_next.history[:, -1], data.act)
    np.testing.assert_allclose(data.obs_next.feedback[:, -1], data.rew / 4.0, rtol=1e-6)  # scaled feedback
    returns = np.add.reduceat(data.rew.astype(np.float64), starts)
    np.testing.assert_allclose(rollout.returns, returns, rtol=1e-6)
    row_of_user = {int(u): i for i, u in enumerate(table.users)}
    rows = np.array([row_of_user[int(u)] for u in data.obs.user])
    np.testing.assert_allclose(data.rew, table.mean[rows, data.act], rtol=1e-6)  # raw table reward
    assert ("masked_items" in data.obs.get_keys()) == (mode == "NX_0")


def test_masked_items_are_the_episodes_earlier_items_and_never_sampled(table, quit_rule):
    _, rollout = _collect(table, quit_rule, "NX_0", num_envs=5, episodes=40, max_turn=30)
    data = rollout.buffer[:]
    start = 0
    for length in rollout.lengths:
        acts = data.act[start:start + length]
        assert len(set(acts.tolist())) == length  # the mask keeps every item of an episode distinct
        for t in range(length):
            masked = data.obs.masked_items[start + t]
            assert masked[:t].tolist() == acts[:t].tolist() and (masked[t:] == -1).all()
        start += length
    _, fb = _collect(table, quit_rule, "FB", num_envs=5, episodes=40)
    assert fb.lengths.max() >= 1


def test_fixed_length_mode_truncates_every_episode(table, quit_rule):
    _, rollout = _collect(table, quit_rule, "NX_5", num_envs=4, episodes=6)
    data = rollout.buffer[:]
    assert (rollout.lengths == 5).all() and data.truncated.sum() == 6 and not data.terminated.any()


def _hand_round() -> _Round:
    """Two episodes, T = 3: episode 0 quits after 2 steps, episode 1 is truncated after 3."""
    limit, k, w = 3, 2, 2
    act = np.array([[4, 1], [2, 0], [-1, 3]])
    history = np.full((limit + 1, k, w), -1, dtype=np.int64)
    for t in range(limit):
        for e in range(k):
            if act[t, e] >= 0:
                history[t + 1, e] = np.append(history[t, e, 1:], act[t, e])
    turn = np.array([[0, 0], [1, 1], [2, 2], [0, 3]])
    feedback = (history >= 0) * 0.5
    return _Round(user=np.array([0, 1]), history=history, feedback=feedback.astype(np.float32), turn=turn, act=act,
                  logp=np.where(act >= 0, -0.1 * (act + 1), 0.0).astype(np.float32),
                  rew=np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 5.0]], dtype=np.float32),
                  terminated=np.array([[False, False], [True, False], [False, False]]),
                  truncated=np.array([[False, False], [False, False], [False, True]]))


def test_returns_and_advantages_equal_tianshous_on_its_own_buffer_hand_case(table):
    env = BatchedRecEnv(table, None, EnvConfig(mode="NX_0", max_turn=3, history_window=2), num_envs=2)
    # raw returns: with `return_scaling` each `_preprocess_batch` call also updates tianshou's running std
    algorithm = _algorithm(env, AgentConfig(gae_lambda=0.95, return_scaling=False, tracker=TrackerConfig(window=2)))
    batch, returns, lengths = flatten_round(_hand_round(), masked=True)
    assert lengths.tolist() == [2, 3] and returns.tolist() == [4.0, 11.0]
    assert batch.act.tolist() == [4, 2, 1, 0, 3] and batch.done.tolist() == [False, True, False, False, True]
    np.testing.assert_allclose(batch.policy.logp_old, -0.1 * (batch.act + 1), rtol=1e-6)  # each step's own
    ours = ReplayBuffer.from_data(batch.obs, batch.act, batch.rew, batch.terminated, batch.truncated, batch.done,
                                  batch.obs_next)
    # the same transitions added step by step as tianshou's Collector does (one sub-buffer per env)
    theirs = VectorReplayBuffer(20, 2)
    for t in range(3):
        for e, (lo, hi) in enumerate([(0, 2), (2, 5)]):
            if lo + t < hi:
                theirs.add(batch[lo + t:lo + t + 1], buffer_ids=[e])
    with torch.no_grad():
        a, a_idx = ours.sample(0)
        b, b_idx = theirs.sample(0)
        a = algorithm._preprocess_batch(a, ours, a_idx)
        b = algorithm._preprocess_batch(b, theirs, b_idx)
    np.testing.assert_array_equal(a.act.numpy(), b.act.numpy())  # same order: episode 0, then episode 1
    np.testing.assert_allclose(a.returns.numpy(), b.returns.numpy(), rtol=1e-6)
    np.testing.assert_allclose(a.adv.numpy(), b.adv.numpy(), rtol=1e-6)
    # and equal to a naive loop: no bootstrap after the quit, V(s_T) after the truncation
    with torch.no_grad():
        v = algorithm.critic(batch.obs).flatten().numpy()
        v_next = algorithm.critic(batch.obs_next).flatten().numpy()
    v_next = v_next * ~batch.terminated
    delta = batch.rew + GAMMA * v_next - v
    adv = np.zeros(5)
    for lo, hi in [(0, 2), (2, 5)]:
        running = 0.0
        for j in range(hi - 1, lo - 1, -1):
            running = delta[j] + GAMMA * 0.95 * running
            adv[j] = running
    np.testing.assert_allclose(a.adv.numpy(), adv, rtol=1e-5, atol=1e-6)


def test_the_default_and_published_learners_keep_the_published_network(table, quit_rule):
    env = BatchedRecEnv(table, quit_rule, EnvConfig(mode="NX_0"), num_envs=2, seed=3, breakdown=False)
    default, published = _algorithm(env), _algorithm(env, AgentConfig(**AGENT_PRESETS["published"]))
    options = _algorithm(env, AgentConfig(tied_embeddings=True, turn=True))
    tied = _algorithm(env, AgentConfig(tied_embeddings=True, ent_coef=0.01))
    for algorithm in (default, published):
        assert type(algorithm.policy.actor) is MaskedItemHead and not algorithm.policy.actor.preprocess.turn
        assert algorithm.ent_coef == 0.0
    assert isinstance(options.policy.actor, TiedItemHead) and options.policy.actor.preprocess.turn
    assert isinstance(tied.policy.actor, TiedItemHead) and not tied.policy.actor.preprocess.turn
    assert tied.ent_coef == 0.01 and tied.policy.dist_fn is categorical_from_logits


LEARNERS = {"published": AGENT_PRESETS["published"], "default": {}, "tied": {"tied_embeddings": True}}
"""The learners of the update tests: the presets and the default with the tied item head."""


@pytest.mark.parametrize("learner", sorted(LEARNERS))
@pytest.mark.parametrize("ent_coef", [0.0, 0.05])
def test_tianshous_update_with_the_item_distribution_equals_it_with_torchs_categorical(table, quit_rule, ent_coef,
                                                                                        learner):
    """Same batch, same initial weights: the learner's minibatch updates (the published A2C, the
    default PPO, PPO with the tied item head) give the same weights."""
    env = BatchedRecEnv(table, quit_rule, EnvConfig(mode="NX_0"), num_envs=8, seed=3, breakdown=False)
    agent = AgentConfig(**{**LEARNERS[learner], "ent_coef": ent_coef})
    ours, reference = _algorithm(env, agent), _algorithm(env, agent)
    reference.policy.dist_fn = lambda logits: torch.distributions.Categorical(logits=logits)
    torch.manual_seed(1)
    rollout = BatchedCollector(ours.policy, env, FeedbackScale(0.0, 4.0)).collect(20)
    for algorithm in (ours, reference):
        np.random.seed(0)  # tianshou's minibatch shuffle
        with policy_within_training_step(algorithm.policy):
            stats = algorithm.update(rollout.buffer, batch_size=16, repeat=2)
        assert stats.gradient_steps >= 4
    theirs = dict(reference.named_parameters())
    scale = agent.lr / 1e-3  # float rounding of the two distributions grows with the step size
    for name, value in ours.named_parameters():
        torch.testing.assert_close(value, theirs[name], rtol=1e-4 * scale, atol=1e-6 * scale,
                                   msg=lambda m, name=name: f"{name}: {m}")
    assert _moved(ours, _algorithm(env, agent))


def _moved(trained, initial) -> bool:
    """Whether any weight of `trained`'s actor differs from the same weight in `initial`."""
    before = dict(initial.policy.actor.named_parameters())
    return any(not torch.equal(value, before[name]) for name, value in trained.policy.actor.named_parameters())


def test_ppo_reads_the_collected_log_probabilities_which_equal_tianshous_recomputed_ones(table, quit_rule):
    """The collector's log pi(a | s) equal a fresh pass over the buffer; PPO's update from them
    equals tianshou's own PPO update (which recomputes them) from a buffer without them."""
    env = BatchedRecEnv(table, quit_rule, EnvConfig(mode="NX_0"), num_envs=8, seed=3, breakdown=False)
    ours, reference = _algorithm(env), _algorithm(env)
    torch.manual_seed(1)
    rollout = BatchedCollector(ours.policy, env, FeedbackScale(0.0, 4.0)).collect(20)
    data = rollout.buffer[:]
    with torch.no_grad():
        fresh = ours.policy(data).dist.log_prob(torch.as_tensor(data.act))
    np.testing.assert_allclose(data.policy.logp_old, fresh.numpy(), rtol=1e-5, atol=1e-5)
    without = ReplayBuffer.from_data(data.obs, data.act, data.rew, data.terminated, data.truncated, data.done,
                                     data.obs_next)
    assert "logp_old" not in without[:].policy.get_keys()
    for algorithm, buffer in ((ours, rollout.buffer), (reference, without)):
        np.random.seed(0)  # tianshou's minibatch shuffle
        with policy_within_training_step(algorithm.policy):
            algorithm.update(buffer, batch_size=16, repeat=2)
    theirs = dict(reference.named_parameters())
    for name, value in ours.named_parameters():
        torch.testing.assert_close(value, theirs[name], rtol=1e-4, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")
    assert _moved(ours, _algorithm(env))


def _config(**overrides) -> ModelBasedConfig:
    values = {"method": "mbpo", "penalty": PenaltyConfig(0.0, 0.0), "progress": False,
              "budget": Budget(epochs=2, epoch_num_steps=400, num_envs=16, episodes_per_collect=20, batch_size=64)}
    values.update(overrides)
    return ModelBasedConfig(**values)


def _weights(result) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in result.recommender.policy.state_dict().items()}


def test_same_seed_same_weights_and_history_resume_equals_uninterrupted(table, quit_rule, tmp_path):
    first = train_model_based(_config(), table, quit_rule, tmp_path / "a")
    second = train_model_based(_config(), table, quit_rule, tmp_path / "b")
    assert first.history == second.history and first.history[-1]["env_step"] >= 800
    for key, value in _weights(first).items():
        assert torch.equal(value, _weights(second)[key]), key
    one = Budget(epochs=1, epoch_num_steps=400, num_envs=16, episodes_per_collect=20, batch_size=64)
    train_model_based(_config(budget=one), table, quit_rule, tmp_path / "c")
    resumed = train_model_based(_config(), table, quit_rule, tmp_path / "c", resume=True)
    assert resumed.history == first.history
    for key, value in _weights(first).items():
        assert torch.equal(value, _weights(resumed)[key]), key
    other = train_model_based(_config(seed=5), table, quit_rule, tmp_path / "d")
    assert other.history != first.history
    assert any((tmp_path / "a" / "tensorboard").iterdir())


def test_a_decaying_learning_rate_resumes_as_an_uninterrupted_run(table, quit_rule, tmp_path, monkeypatch):
    from recsim.policy import model_based
    from recsim.policy.model_based import LinearDecay

    decay = _config(agent=AgentConfig(lr_decay=True))
    first = train_model_based(decay, table, quit_rule, tmp_path / "a")
    constant = train_model_based(_config(), table, quit_rule, tmp_path / "b")
    assert any(not torch.equal(v, _weights(constant)[k]) for k, v in _weights(first).items())
    calls, real_epoch = [], model_based.train_epoch

    def interrupted(*args, **kwargs):  # the run is killed in its second epoch
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(model_based, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_model_based(decay, table, quit_rule, tmp_path / "c")
    monkeypatch.undo()
    resumed = train_model_based(decay, table, quit_rule, tmp_path / "c", resume=True)
    assert resumed.history == first.history
    for key, value in _weights(first).items():
        assert torch.equal(value, _weights(resumed)[key]), key
    schedule = LinearDecay(200)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = schedule.create_scheduler(optimizer)
    schedule.env_step = 150
    optimizer.step()  # no gradient: a no-op, in the order torch expects
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.025)
    schedule.env_step = 400
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 0.0
    with pytest.raises(ConfigError, match="lr_decay"):
        _config(agent=AgentConfig(lr_decay=True), collector="tianshou")


def test_the_tianshou_path_stays_selectable(table, quit_rule, tmp_path):
    legacy = train_model_based(_config(collector="tianshou"), table, quit_rule, tmp_path / "tianshou")
    assert np.isfinite(legacy.history[-1]["train_return"]) and legacy.history[-1]["env_step"] >= 800
    with pytest.raises(ConfigError, match="collector"):
        _config(collector="fast")


def test_collect_rejects_an_empty_request(table, quit_rule):
    env = BatchedRecEnv(table, quit_rule, EnvConfig(mode="NX_0"), num_envs=2)
    with pytest.raises(ValueError):
        BatchedCollector(_algorithm(env).policy, env, FeedbackScale()).collect(0)


@pytest.mark.slow
def test_batched_a2c_learns_in_the_ground_truth_simulator(table, quit_rule, tmp_path):
    """In a simulator that is the truth, 8 x 5,000 steps lift the training return well above the first epoch's."""
    config = _config(budget=Budget(epochs=8, epoch_num_steps=5_000, num_envs=100, episodes_per_collect=100,
                                   batch_size=64))
    history = train_model_based(config, table, quit_rule, tmp_path / "learn").history
    assert history[-1]["train_return"] > 1.5 * history[0]["train_return"]


def _masked_logits(rows: int = 4, items: int = 50) -> torch.Tensor:
    from recsim.policy.actors import MASKED_VALUE

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(rows, items, generator=generator) * 3
    logits[:, ::3] = MASKED_VALUE
    return logits


@pytest.mark.parametrize("entropy_grad", [True, False])
def test_item_categorical_values_and_gradients_equal_torchs_categorical(entropy_grad):
    from recsim.policy.actors import ItemCategorical

    base = _masked_logits()
    act = torch.tensor([1, 4, 49, 2])
    weights = torch.tensor([0.5, -1.0, 2.0, 0.25])
    grads = []
    for make in (lambda z: ItemCategorical(z, entropy_grad=entropy_grad),
                 lambda z: torch.distributions.Categorical(logits=z)):
        logits = base.clone().requires_grad_()
        dist = make(logits)
        log_prob, entropy = dist.log_prob(act.float()), dist.entropy()
        ((log_prob * weights).sum() + 0.3 * (entropy * weights.flip(0)).sum()).backward()
        grads.append((log_prob.detach(), entropy.detach(), logits.grad))
    (ours_lp, ours_h, ours_g), (ref_lp, ref_h, ref_g) = grads
    torch.testing.assert_close(ours_lp, ref_lp)
    torch.testing.assert_close(ours_h, ref_h)
    if entropy_grad:
        torch.testing.assert_close(ours_g, ref_g)
    else:  # the log-probability's gradient alone
        logits = base.clone().requires_grad_()
        (torch.distributions.Categorical(logits=logits).log_prob(act) * weights).sum().backward()
        torch.testing.assert_close(ours_g, logits.grad)
    assert (ours_g[:, ::3] == 0).all()  # masked items get no gradient


def test_item_categorical_sampler_draws_the_softmax_and_never_a_masked_item():
    from recsim.policy.actors import SAMPLE_BLOCK, categorical_from_logits

    logits = _masked_logits(items=SAMPLE_BLOCK * 2 + 7)  # two full blocks and a partial one
    reference = torch.distributions.Categorical(logits=logits)
    torch.manual_seed(0)
    draws = categorical_from_logits(logits).sample((20_000,))
    assert draws.shape == (20_000, 4) and (draws % 3 != 0).all()
    frequencies = torch.stack([torch.bincount(draws[:, r], minlength=logits.shape[1]) for r in range(4)]) / 20_000.0
    assert (frequencies - reference.probs).abs().max() < 0.015
    one_hot = torch.full((3, 200), -1e9)
    one_hot[torch.arange(3), torch.tensor([0, 127, 199])] = 0.0  # first, block-boundary and last item
    assert categorical_from_logits(one_hot).sample().tolist() == [0, 127, 199]


@pytest.mark.parametrize("n_values", [1, 3])
def test_compact_mask_written_in_place_equals_the_dense_mask_with_its_gradient(n_values):
    from recsim.policy.actors import apply_mask, mask_listed_items_

    weight = torch.randn(4, 6 * n_values, generator=torch.Generator().manual_seed(0)).requires_grad_()
    features = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    listed = np.array([[0, 5, -1], [-1, -1, -1], [2, 2, 3], [1, -1, -1], [4, 0, 1]])
    dense = np.ones((5, 6), dtype=bool)
    for row, items in enumerate(listed):
        dense[row, items[items >= 0]] = False
    outputs = []
    for masked in (lambda out: mask_listed_items_(out, listed),
                   lambda out: apply_mask(out, torch.as_tensor(dense))):
        out = masked((features @ weight).view(5, 6, n_values).squeeze(-1))
        out.sum().backward()  # a gradient at every entry: a masked one must not reach the weights
        outputs.append((out.detach().clone(), weight.grad.clone()))
        weight.grad = None
    torch.testing.assert_close(outputs[0][0], outputs[1][0])
    torch.testing.assert_close(outputs[0][1], outputs[1][1])
