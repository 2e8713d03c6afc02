"""Behaviour models for propensities (`recsim.evaluation.propensity`): the ML fit recovers known
coefficients, probabilities sum to one, and calibration against the synthetic world's truth."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from recsim.errors import ConfigError, DataError
from recsim.evaluation.propensity import calibration, fit_behaviour, fit_conditional_logit, resolve_kind
from recsim.reward.table import RewardTable


def test_maximum_likelihood_recovers_the_coefficients_of_a_known_softmax():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 30))
    log_pop = np.broadcast_to(rng.normal(size=30), scores.shape)
    theta = np.array([1.7, 0.6])
    logits = theta[0] * scores + theta[1] * log_pop
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    users = np.repeat(np.arange(200), 40)
    chosen = np.array([rng.choice(30, p=probs[u]) for u in users])
    fitted = fit_conditional_logit([scores, log_pop], users, chosen)
    np.testing.assert_allclose(fitted, theta, atol=0.12)
    temperature_only = fit_conditional_logit([scores], users, chosen, nonnegative=True)
    assert temperature_only[0] > 0


def _table_world(tiny_world):
    truth, users, items = tiny_world.truth_block()
    return RewardTable.from_truth(np.log(truth), users, items)


def test_fitted_propensities_are_distributions_and_beat_popularity_with_good_scores(tiny_world):
    table = _table_world(tiny_world)
    log = tiny_world.train
    true = log["propensity"].to_numpy()
    popularity = fit_behaviour("item_popularity", tiny_world, None)
    joint = fit_behaviour("user_model_popularity_softmax", tiny_world, table)
    everything = np.arange(tiny_world.n_items)
    for model in (fit_behaviour("user_model_softmax", tiny_world, table), joint):
        row = model.pscore(np.zeros(tiny_world.n_items, np.int64), everything)
        assert row.sum() == pytest.approx(1.0, abs=1e-9)
        assert model.source.startswith("user-model")
    pop_fit = calibration(popularity.pscore(log["user"], log["item"]), true)
    joint_fit = calibration(joint.pscore(log["user"], log["item"]), true)
    # the world's logging policy is a softmax of log popularity and noisy affinity: with the
    # true log-affinity as the score the two-feature logit is better calibrated than popularity
    assert joint_fit["spearman"] > pop_fit["spearman"]
    assert joint_fit["mean_abs_log_ratio"] < pop_fit["mean_abs_log_ratio"]
    assert calibration(true, true) == {"spearman": 1.0, "mean_abs_log_ratio": 0.0, "median_abs_log_ratio": 0.0}


def test_choices_resolve_and_missing_inputs_are_one_line_errors(tiny_world):
    assert resolve_kind("auto", tiny_world.train) == "logged"
    no_column = tiny_world.train.drop(columns="propensity")
    assert resolve_kind("auto", no_column) == "item_popularity"
    with pytest.raises(DataError, match="no positive propensity column"):
        resolve_kind("logged", no_column)
    with pytest.raises(ConfigError, match="unknown model"):
        resolve_kind("bogus", no_column)
    with pytest.raises(ConfigError, match="needs the user model's reward table"):
        fit_behaviour("user_model_softmax", tiny_world, None)


def test_softmax_models_cover_only_the_tables_users(tiny_world):
    table = _table_world(tiny_world)
    half = dataclasses.replace(table, mean=table.mean[:50], uncertainty=table.uncertainty[:50], users=table.users[:50])
    model = fit_behaviour("user_model_softmax", tiny_world, half)
    assert (model.covered_users == np.arange(50)).all()
    with pytest.raises(DataError, match="outside the reward table"):
        model.pscore(np.array([70]), np.array([0]))
    assert isinstance(pd.Series(model.pscore(np.array([3]), np.array([0]))).item(), float)
