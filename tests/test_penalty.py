"""Penalised reward: formula and MIN_R against a hand computation, presets, validation."""
from __future__ import annotations

import numpy as np
import pytest

from recsim.errors import ConfigError
from recsim.reward.entropy import EntropyTable
from recsim.reward.penalty import PRESETS, PenalisedReward, PenaltyConfig, preset
from recsim.reward.table import RewardTable


def _table() -> RewardTable:
    mean = np.array([[1.0, 2.0], [3.0, 0.5]])
    unc = np.array([[0.1, 0.4], [0.2, 0.3]])
    return RewardTable(mean, unc, [0, 1], [0, 1])


def _entropy() -> EntropyTable:
    # order 1: H(0) = 0.5, H(1) = 0.25; order 2 (key = lo + hi * n_items): H(0,1) = 0.75, H(1,1) = 0.6
    return EntropyTable(n_items=2, orders=(1, 2), keys=[np.array([0, 1]), np.array([2, 3])],
                        values=[np.array([0.5, 0.25]), np.array([0.75, 0.6])])


def test_min_r_by_hand():
    reward = PenalisedReward(_table(), PenaltyConfig(lambda_U=0.5, lambda_E=2.0), _entropy())
    # min(rhat) - lU * max(U) + lE * (min H1 + min H2) = 0.5 - 0.5 * 0.4 + 2 * (0.25 + 0.6)
    assert reward.min_r == pytest.approx(2.0, abs=1e-6)


def test_step_rewards_by_hand():
    reward = PenalisedReward(_table(), PenaltyConfig(lambda_U=0.5, lambda_E=2.0), _entropy())
    rows = np.array([0, 1, 1])
    history = np.array([[-1], [1], [0]])
    actions = np.array([1, 1, 0])
    parts = reward.breakdown(rows, history, actions)
    np.testing.assert_allclose(parts.predicted, [2.0, 0.5, 3.0])
    np.testing.assert_allclose(parts.uncertainty_penalty, [0.2, 0.15, 0.1], rtol=1e-6)
    # H1(1) + 1 (no earlier item); H1(1) + H2(1,1); H1(0) + unseen H2(0,0) = 1
    np.testing.assert_allclose(parts.entropy_bonus, [2 * 1.25, 2 * 0.85, 2 * 1.5], rtol=1e-6)
    np.testing.assert_allclose(parts.total, [2.3, 0.05, 3.9], rtol=1e-5)
    np.testing.assert_array_equal(parts.total, reward.total(rows, history, actions))
    assert parts.total.dtype == np.float32


def test_rewards_non_negative():
    rng = np.random.default_rng(0)
    table = RewardTable(rng.normal(size=(6, 9)), rng.random((6, 9)), np.arange(6), np.arange(9))
    entropy = EntropyTable(9, (1, 2), [np.arange(9), np.array([1, 20, 40])],
                           [rng.random(9), rng.random(3)])
    reward = PenalisedReward(table, PenaltyConfig(0.3, 1.5), entropy)
    rows = rng.integers(0, 6, 2000)
    history = rng.integers(-1, 9, (2000, 1))
    actions = rng.integers(0, 9, 2000)
    assert reward.total(rows, history, actions).min() >= -1e-5


def test_mbpo_mopo_and_raw():
    table = _table()
    mbpo = PenalisedReward(table, PenaltyConfig(0.0, 0.0))
    assert mbpo.min_r == pytest.approx(0.5)
    np.testing.assert_allclose(mbpo.total(np.array([1]), np.zeros((1, 0), int), np.array([0])), [2.5])
    mopo = PenalisedReward(table, PenaltyConfig(1.0, 0.0))
    assert mopo.min_r == pytest.approx(0.5 - 0.4)
    assert mopo.history_needed == 0
    raw = PenalisedReward(table, PenaltyConfig.raw())
    np.testing.assert_array_equal(raw.total(np.array([0, 1]), np.zeros((2, 0), int), np.array([1, 1])),
                                  np.float32([2.0, 0.5]))


def test_presets():
    assert preset("kuairec", "mopo") == PenaltyConfig(0.05, 0.0)
    assert preset("kuairec", "dorl") == PenaltyConfig(0.05, 5.0)
    assert preset("KuaiRand", "MOPO") == PenaltyConfig(0.01, 0.0)
    assert preset("kuairand", "dorl") == PenaltyConfig(0.01, 0.05)
    for methods in PRESETS.values():
        assert methods["mbpo"] == PenaltyConfig(0.0, 0.0)
        assert methods["roler"] == methods["dorl"]
    # the released code's Coat / Yahoo commands: lambda_U 0.005 and no entropy bonus (no timestamps)
    assert preset("coat", "dorl") == preset("yahoo", "mopo") == PenaltyConfig(0.005, 0.0)
    assert preset("movielens-100k", "dorl") == preset("kuairec", "dorl")  # no published values: KuaiRec's
    # the synthetic world's own lambda_E (chosen on another world seed; recsim.reward.penalty.CHOSEN)
    assert preset("synthetic", "dorl") == preset("synthetic", "roler") == PenaltyConfig(0.05, 0.1)
    assert preset("synthetic", "mopo") == preset("kuairec", "mopo")
    with pytest.raises(ConfigError):
        preset("kuairec", "magic")


@pytest.mark.parametrize("kwargs", [dict(lambda_U=-0.1), dict(lambda_E=-1.0), dict(lambda_U=float("nan")),
                                    dict(lambda_E=1.0, entropy_orders=(0,))])
def test_invalid_config(kwargs):
    with pytest.raises(ConfigError):
        PenaltyConfig(**kwargs)


def test_entropy_required_and_compatible():
    with pytest.raises(ConfigError):
        PenalisedReward(_table(), PenaltyConfig(0.0, 1.0))
    with pytest.raises(ConfigError):
        PenalisedReward(_table(), PenaltyConfig(0.0, 1.0, entropy_orders=(3,)), _entropy())
