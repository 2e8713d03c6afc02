"""Episode-value off-policy estimates (`recsim.evaluation.episode_ope`) against the ground truth."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from recsim.data.synthetic import generate_world
from recsim.env import EnvConfig, QuitRuleConfig, RecEnv, table_quit_rule
from recsim.errors import ConfigError, DataError
from recsim.evaluation.episode_log import replay_alive, value_to_go
from recsim.evaluation.episode_ope import EPISODE_ESTIMATORS, EpisodeOPEConfig, episode_estimates, estimate_episodes
from recsim.evaluation.online import EvalConfig, OnlineEvaluator, ground_truth_table, table_item_categories
from recsim.reward.table import RewardTable

ENV = EnvConfig(max_turn=6, history_window=3, mode="FB")
QUIT = QuitRuleConfig("category", window=1, leave_threshold=0)


class TablePolicy:
    """A stochastic policy with a fixed distribution per user: probs (n_users, n_items)."""

    name = "table"

    def __init__(self, probs: np.ndarray, seed: int = 0) -> None:
        self.probs = probs
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def action_probs(self, observations, mask):
        p = self.probs[np.asarray(observations["user"])] * mask
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    def act(self, observations, mask):
        p = self.action_probs(observations, mask).astype(np.float64)
        u = self.rng.random((len(p), 1))
        return np.minimum((np.cumsum(p, axis=1) < u * p.sum(axis=1, keepdims=True)).sum(axis=1), p.shape[1] - 1)

    def ranking_scores(self, observations, mask):
        return self.action_probs(observations, mask).astype(np.float64)


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def make_world(rows_per_user: int = 120):
    """The tiny synthetic world with a log of `rows_per_user` rows per user drawn i.i.d. from a known
    behaviour; labels are the truth (so every return is exact)."""
    ds = generate_world("tiny", seed=3)
    truth = ds.truth.astype(np.float64)
    rng = np.random.default_rng(0)
    behaviour = softmax(rng.normal(0, 1.0, truth.shape))
    users = np.repeat(np.arange(ds.n_users), rows_per_user)
    cdf = np.cumsum(behaviour[users], axis=1)
    items = np.minimum((cdf < rng.random((len(users), 1))).sum(axis=1), ds.n_items - 1)
    log = pd.DataFrame({"user": users.astype(np.int32), "item": items.astype(np.int32),
                        "label": truth[users, items].astype(np.float32),
                        "timestamp": np.arange(len(users), dtype=np.int64),
                        "propensity": behaviour[users, items].astype(np.float32)})
    return dataclasses.replace(ds, train=log), behaviour


@pytest.fixture(scope="module")
def world():
    return make_world()


def true_r_tra(ds, policy, episodes=4000):
    evaluator = OnlineEvaluator(ds, EvalConfig(mode="FB", episodes=episodes, n_bootstrap=10), ENV, QUIT)
    return evaluator.evaluate(policy)["R_tra"]


def replayed_returns(ds):
    """Mean over users of the mean return of every window of ENV.max_turn logged rows, each
    replayed step by step in `RecEnv` over the truth (the reference loop)."""
    truth = ground_truth_table(ds)
    rule = table_quit_rule(QUIT, truth, table_item_categories(ds, truth))
    env = RecEnv(truth, rule, ENV)
    per_user = []
    for _, rows in ds.train.groupby("user", sort=True):
        items = rows["item"].to_numpy()
        returns = []
        for start in range(len(items) - ENV.max_turn + 1):
            env.reset(options={"user": int(rows["user"].iloc[0])})
            total = 0.0
            for a in items[start:start + ENV.max_turn]:
                _, reward, terminated, truncated, _ = env.step(int(a))
                total += reward
                if terminated or truncated:
                    break
            returns.append(total)
        per_user.append(np.mean(returns))
    return float(np.mean(per_user))


def estimates(ds, policy, table=None, estimators=("pdis", "ncis"), **kwargs):
    return episode_estimates(policy, ds, ENV, QUIT, table, estimators, cap=kwargs.pop("cap", 1e9),
                             n_bootstrap=50, seed=0, max_users=kwargs.pop("max_users", 1000), **kwargs)


def test_replay_alive_matches_environment_quit():
    rule = table_quit_rule(QuitRuleConfig("category", window=2), *_rule_inputs())
    items = np.array([[0, 1, 0, 2], [0, 0, 1, 2]])
    alive = replay_alive(items, rule)
    # item 0 and 1 share no category; 0 after [0, 1] repeats a category: leave at step 3
    assert alive[0].tolist() == [True, True, True, False]
    assert alive[1].tolist() == [True, True, False, False]


def _rule_inputs():
    cats = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=bool)
    table = RewardTable(np.ones((1, 3)), np.zeros((1, 3)), [0], [0, 1, 2])
    return table, cats


def test_pdis_is_the_logged_mean_return_for_the_behaviour_policy():
    ds, behaviour = make_world(rows_per_user=15)
    out = estimates(ds, TablePolicy(behaviour))
    reference = replayed_returns(ds)
    assert out["ope_rtra_pdis"] == pytest.approx(reference, rel=1e-9)
    assert out["ope_rtra_ncis"] == pytest.approx(reference, rel=1e-9)
    assert out["ope_rtra_pdis_ess"] == pytest.approx(1.0)
    assert out["ope_rtra_pdis_low"] <= reference <= out["ope_rtra_pdis_high"]


def test_pdis_is_the_on_policy_mean_return_for_the_behaviour_policy(world):
    ds, behaviour = world
    policy = TablePolicy(behaviour)
    out = estimates(ds, policy)
    truth = true_r_tra(ds, policy)
    assert abs(out["ope_rtra_pdis"] - truth) < 0.03 * truth


def test_pdis_recovers_another_policy_true_r_tra(world):
    ds, behaviour = world
    target = TablePolicy(softmax(np.log(behaviour) + ds.truth / 1.5))
    out = estimates(ds, target)
    truth = true_r_tra(ds, target)
    behaviour_value = true_r_tra(ds, TablePolicy(behaviour))
    assert abs(truth - behaviour_value) > 0.1 * truth  # the target differs from the behaviour
    for name in ("pdis", "ncis"):
        assert abs(out[f"ope_rtra_{name}"] - truth) < 0.05 * truth, name
        assert out[f"ope_rtra_{name}_unreliable"] is False


def test_model_estimate_is_the_ground_truth_rollout_when_the_table_is_the_truth(world):
    ds, behaviour = world
    policy = TablePolicy(softmax(ds.truth / 0.3), seed=5)
    evaluator = OnlineEvaluator(ds, EvalConfig(mode="FB", episodes=300, seed=4, n_bootstrap=10), ENV, QUIT)
    truth = evaluator.evaluate(policy, run_seed=2)["R_tra"]
    out = episode_estimates(policy, ds, ENV, QUIT, ground_truth_table(ds), ("model",), n_bootstrap=20, seed=4,
                            model_episodes=300, run_seed=2)
    assert out["ope_rtra_model"] == truth
    assert out["ope_rtra_model_low"] <= truth <= out["ope_rtra_model_high"]


def test_doubly_robust_corrects_a_wrong_model(world):
    ds, behaviour = world
    target = TablePolicy(softmax(np.log(behaviour) + ds.truth / 1.5))
    truth = true_r_tra(ds, target)
    wrong = RewardTable(np.full(ds.truth.shape, 3.0), np.zeros(ds.truth.shape), ds.truth_users, ds.truth_items)
    out = estimates(ds, target, wrong, ("model", "dr", "wdr"), model_episodes=500)
    assert abs(out["ope_rtra_model"] - truth) > 0.3 * truth  # the model alone is far off
    for name in ("dr", "wdr"):
        assert abs(out[f"ope_rtra_{name}"] - truth) < 0.05 * truth, name


def test_doubly_robust_without_support_is_the_model_value(world):
    """A target that never picks a logged item has zero weights: DR = mean_e V(h_1), the model's
    value of the first step, sum_a pi(a|u) r_hat(u, a) + g(2) (nothing can leave at step 1)."""
    ds, behaviour = world
    logged = np.zeros(ds.truth.shape, dtype=bool)
    logged[ds.train["user"].to_numpy(), ds.train["item"].to_numpy()] = True
    probs = np.where(logged, 0.0, softmax(ds.truth / 0.5))
    assert (probs.sum(axis=1) > 0).all()
    target = TablePolicy(probs / probs.sum(axis=1, keepdims=True))
    table = ground_truth_table(ds)
    results, inputs = estimate_episodes(target, ds, ENV, QUIT, table, EpisodeOPEConfig(
        ("model", "dr", "wdr"), n_bootstrap=20, max_users=1000, model_episodes=500))
    episodes = inputs.episodes
    from recsim.evaluation.episode_ope import model_rollout
    log = model_rollout(target, table, table_quit_rule(QUIT, table, table_item_categories(ds, table)), ENV, 500, 0, 0)
    g = value_to_go(log.rewards, log.lengths)
    pi = target.probs[episodes.users]
    first = (pi * ds.truth[episodes.users]).sum(axis=1) + g[1]
    expected = float(np.sum(episodes.user_weight * first) / episodes.user_weight.sum())
    for name in ("dr", "wdr"):
        assert results[name].value == pytest.approx(expected, rel=1e-6)
        assert results[name].unreliable
    assert not results["model"].unreliable


def test_missing_model_gives_flagged_nan(world):
    ds, behaviour = world
    out = estimates(ds, TablePolicy(behaviour), None, EPISODE_ESTIMATORS)
    for name in ("model", "dr", "wdr"):
        assert out[f"ope_rtra_{name}"] is None and out[f"ope_rtra_{name}_unreliable"] is True
        assert out[f"ope_rtra_{name}_reason"]
    assert math.isfinite(out["ope_rtra_pdis"])


@pytest.mark.parametrize("kwargs, error", [
    ({"estimators": ("pdis", "nope")}, ConfigError),
    ({"cap": 0.0}, ConfigError),
    ({"pscore": np.ones(3)}, DataError),
    ({"max_users": 0}, ConfigError),
])
def test_invalid_inputs(world, kwargs, error):
    ds, behaviour = world
    args = {"estimators": ("pdis",), "cap": 10.0, **kwargs}
    with pytest.raises(error):
        episode_estimates(TablePolicy(behaviour), ds, ENV, QUIT, None, **args)


def test_too_short_logs_leave_only_the_model_estimate():
    ds, behaviour = make_world(rows_per_user=ENV.max_turn - 1)
    out = estimates(ds, TablePolicy(behaviour), ground_truth_table(ds), EPISODE_ESTIMATORS)
    assert out["ope_n_episodes"] == 0.0
    for name in EPISODE_ESTIMATORS:
        if name == "model":  # a rollout in the simulator needs no logged episode
            assert out["ope_rtra_model"] > 0 and out["ope_rtra_model_unreliable"] is False
            continue
        assert out[f"ope_rtra_{name}"] is None and out[f"ope_rtra_{name}_unreliable"] is True
        assert out[f"ope_rtra_{name}_reason"]
