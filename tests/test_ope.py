"""Off-policy estimators: formulas, exact properties, group bootstrap, diagnostics, invalid inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from recsim.errors import ConfigError
from recsim.evaluation.bootstrap import mean_interval, resample_count_chunks, resample_counts
from recsim.evaluation.ope import (
    CIS,
    DM,
    DR,
    ESTIMATORS,
    IPS,
    NCIS,
    SNDR,
    SNIPS,
    PointNCIS,
    cis,
    dm,
    dr,
    expected_capped_weight,
    ips,
    ncis,
    point_ncis,
    sndr,
    snips,
)


def _log(seed=0, n=300, n_users=12):
    rng = np.random.default_rng(seed)
    reward = rng.normal(1.0, 1.0, n)
    pscore = rng.uniform(0.01, 0.5, n)
    action_prob = rng.uniform(0.0, 0.5, n) * (rng.random(n) < 0.8)
    user = rng.integers(0, n_users, n)
    q_logged = reward + rng.normal(0, 0.5, n)
    v_target = rng.normal(1.0, 0.3, n)
    return reward, pscore, action_prob, user, q_logged, v_target


def test_plain_functions_match_formulas():
    r, p, a, _, q, v = _log()
    w = a / p
    wc = np.minimum(w, 3.0)
    assert ips(r, p, a) == pytest.approx(np.mean(w * r))
    assert cis(r, p, a, 3.0) == pytest.approx(np.mean(wc * r))
    assert snips(r, p, a) == pytest.approx(np.sum(w * r) / np.sum(w))
    assert ncis(r, p, a, 3.0) == pytest.approx(np.sum(wc * r) / np.sum(wc))
    assert dm(v) == pytest.approx(np.mean(v))
    assert dr(r, p, a, q, v) == pytest.approx(np.mean(v + w * (r - q)))
    assert dr(r, p, a, q, v, cap=3.0) == pytest.approx(np.mean(v + wc * (r - q)))
    assert sndr(r, p, a, q, v) == pytest.approx(np.mean(v) + np.sum(w * (r - q)) / np.sum(w))


def _estimate(name, r, p, a, user, q, v, cap=3.0, **kwargs):
    cls = ESTIMATORS[name]
    est = cls(cap=cap) if cls.uses_cap else cls()
    return est.estimate(r, p, a, group=user, context=user, q_logged=q, v_target=v, **kwargs)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_estimator_classes_agree_with_plain_functions(name):
    r, p, a, user, q, v = _log(1)
    expected = {
        "ips": ips(r, p, a),
        "cis": cis(r, p, a, 3.0),
        "snips": snips(r, p, a),
        "ncis": ncis(r, p, a, 3.0),
        "point_ncis": point_ncis(r, p, a, 3.0, context=user),
        "dm": dm(v),
        "dr": dr(r, p, a, q, v, cap=3.0),
        "sndr": sndr(r, p, a, q, v),
    }[name]
    result = _estimate(name, r, p, a, user, q, v)
    assert result.value == pytest.approx(expected)
    assert result.estimator == name
    assert result.ci_low <= result.value <= result.ci_high
    assert result.n == r.size and result.n_groups == 12


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_on_policy_logs_give_the_mean_reward(name):
    r, p, _, user, q, _ = _log(2)
    # Weight 1 everywhere; a reward model whose target value equals its logged prediction.
    result = _estimate(name, r, p, p.copy(), user, q, q.copy() if name != "dm" else r.copy())
    assert result.value == pytest.approx(r.mean())
    assert result.max_weight == pytest.approx(1.0)
    assert result.ess_share == pytest.approx(1.0)
    assert result.capped_share == 0.0
    # The exact PointNCIS normaliser is 1 on-policy (cap >= 1).
    m = expected_capped_weight(np.array([[0.2, 0.8]]), np.array([[0.2, 0.8]]), 3.0)
    assert m == pytest.approx([1.0])


@pytest.mark.parametrize("seed", range(5))
def test_exact_properties(seed):
    r, p, a, user, _, _ = _log(seed)
    w_max = float(np.max(a / p))
    assert ncis(r, p, a, w_max) == pytest.approx(snips(r, p, a))
    assert ncis(r, p, a, 10 * w_max) == pytest.approx(snips(r, p, a))
    assert cis(r, p, a, math.inf) == pytest.approx(ips(r, p, a))
    assert CIS(cap=math.inf).estimate(r, p, a).value == pytest.approx(ips(r, p, a))
    for value in (snips(r, p, a), ncis(r, p, a, 2.0), point_ncis(r, p, a, 2.0, context=user)):
        assert r.min() - 1e-12 <= value <= r.max() + 1e-12
    for scale in (0.01, 3.0, 1e4):
        assert snips(r, scale * p, a) == pytest.approx(snips(r, p, a))
        assert ncis(r, scale * p, a, math.inf) == pytest.approx(ncis(r, p, a, math.inf))
        assert ncis(r, scale * p, a, 2.0 / scale) == pytest.approx(ncis(r, p, a, 2.0))
        expected = point_ncis(r, p, a, 2.0, context=user)
        assert point_ncis(r, scale * p, a, 2.0 / scale, context=user) == pytest.approx(expected)


def test_point_ncis_hand_computed():
    # Context 0: weights (1, 3) rewards (1, 0) -> NCIS 0.25 over 2 rows; context 1: weight 2, reward 4 -> 4.
    r = np.array([1.0, 0.0, 4.0])
    p = np.array([0.5, 0.1, 0.25])
    a = np.array([0.5, 0.3, 0.5])
    ctx = np.array([7, 7, 3])
    assert point_ncis(r, p, a, math.inf, context=ctx) == pytest.approx((2 * 0.25 + 1 * 4.0) / 3)
    # Cap 2: context 0 weights (1, 2) -> 1/3.
    assert point_ncis(r, p, a, 2.0, context=ctx) == pytest.approx((2 / 3 + 4.0) / 3)
    # One context for all rows = NCIS.
    assert point_ncis(r, p, a, 2.0, context=np.zeros(3)) == pytest.approx(ncis(r, p, a, 2.0))
    # A context whose weights are all 0 is left out.
    a0 = np.array([0.5, 0.3, 0.0])
    assert point_ncis(r, p, a0, math.inf, context=ctx) == pytest.approx(0.25)
    # Exact normaliser given per row.
    m = np.array([0.5, 0.5, 2.0])
    assert point_ncis(r, p, a, 2.0, capped_weight_mean=m) == pytest.approx(np.mean([1 * 1 / 0.5, 0.0, 2 * 4 / 2.0]))


def test_expected_capped_weight_hand_computed():
    target = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    behaviour = np.array([[0.1, 0.45, 0.45], [0.2, 0.0, 0.8]])
    # Row 0, cap 2: min(.5, .2) + min(.5, .9) + 0 = 0.7; row 1: min(1, .4) = 0.4.
    np.testing.assert_allclose(expected_capped_weight(target, behaviour, 2.0), [0.7, 0.4])
    np.testing.assert_allclose(expected_capped_weight(target, behaviour, math.inf), [1.0, 1.0])


def test_point_ncis_exact_normaliser_is_unbiased_without_cap_and_close_with_it():
    """Monte Carlo over logs of a small contextual bandit with known distributions."""
    rng = np.random.default_rng(5)
    n_ctx, n_act = 4, 5
    pi_b = rng.dirichlet(np.ones(n_act), n_ctx)
    pi = rng.dirichlet(np.ones(n_act) * 0.5, n_ctx)
    mean_r = rng.uniform(0, 1, (n_ctx, n_act))
    truth = float(np.mean((pi * mean_r).sum(axis=1)))
    m = expected_capped_weight(pi, pi_b, math.inf)
    estimates = []
    for _ in range(400):
        ctx = rng.integers(0, n_ctx, 200)
        act = (rng.random(200)[:, None] > np.cumsum(pi_b[ctx], axis=1)).sum(axis=1)
        r = mean_r[ctx, act] + rng.normal(0, 0.1, 200)
        estimates.append(point_ncis(r, pi_b[ctx, act], pi[ctx, act], math.inf, capped_weight_mean=m[ctx]))
    assert np.mean(estimates) == pytest.approx(truth, abs=4 * np.std(estimates) / np.sqrt(len(estimates)))


def _naive_bootstrap(name, r, p, a, user, q, v, n_bootstrap, seed):
    """Materialise each resample's rows and call the plain function on them."""
    groups = np.unique(user)
    counts = resample_counts(groups.size, n_bootstrap, np.random.default_rng(seed))
    values = []
    for b in range(n_bootstrap):
        idx = np.concatenate([np.repeat(np.flatnonzero(user == g), c) for g, c in zip(groups, counts[b])])
        fn = {
            "ips": lambda i: ips(r[i], p[i], a[i]),
            "cis": lambda i: cis(r[i], p[i], a[i], 3.0),
            "snips": lambda i: snips(r[i], p[i], a[i]),
            "ncis": lambda i: ncis(r[i], p[i], a[i], 3.0),
            "point_ncis": lambda i: point_ncis(r[i], p[i], a[i], 3.0, context=user[i]),
            "dm": lambda i: dm(v[i]),
            "dr": lambda i: dr(r[i], p[i], a[i], q[i], v[i], cap=3.0),
            "sndr": lambda i: sndr(r[i], p[i], a[i], q[i], v[i]),
        }[name]
        values.append(fn(idx))
    return np.quantile(values, [0.025, 0.975])


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_group_bootstrap_matches_naive_resampling(name):
    r, p, a, user, q, v = _log(3, n=120, n_users=9)
    result = _estimate(name, r, p, a, user, q, v)
    low, high = _naive_bootstrap(name, r, p, a, user, q, v, 200, 0)
    assert result.ci_low == pytest.approx(low)
    assert result.ci_high == pytest.approx(high)


def test_point_ncis_bootstrap_with_contexts_crossing_groups():
    r, p, a, user, _, _ = _log(4, n=150, n_users=10)
    ctx = np.arange(r.size) % 3  # every context spans all users
    est = PointNCIS(cap=3.0, n_bootstrap=50, seed=1).estimate(r, p, a, group=user, context=ctx)
    groups = np.unique(user)
    counts = resample_counts(groups.size, 50, np.random.default_rng(1))
    naive = []
    for b in range(50):
        idx = np.concatenate([np.repeat(np.flatnonzero(user == g), c) for g, c in zip(groups, counts[b])])
        naive.append(point_ncis(r[idx], p[idx], a[idx], 3.0, context=ctx[idx]))
    assert (est.ci_low, est.ci_high) == pytest.approx(tuple(np.quantile(naive, [0.025, 0.975])))


def test_bootstrap_is_seeded_and_rows_are_default_groups():
    r, p, a, user, _, _ = _log(5)
    first = SNIPS(seed=3).estimate(r, p, a, group=user)
    assert first == SNIPS(seed=3).estimate(r, p, a, group=user)
    assert first != SNIPS(seed=4).estimate(r, p, a, group=user)
    rows = SNIPS(seed=3).estimate(r, p, a)
    assert rows == SNIPS(seed=3).estimate(r, p, a, group=np.arange(r.size))
    assert rows.n_groups == r.size


def test_diagnostics_hand_computed_and_unreliable_flag():
    r = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([0.5, 0.5, 0.1, 0.5])
    a = np.array([0.5, 0.0, 0.5, 1.0])  # w = 1, 0, 5, 2
    result = IPS().estimate(r, p, a, pscore_source="logged")
    assert result.ess_share == pytest.approx(8**2 / 30 / 4)
    assert result.max_weight == pytest.approx(5.0)
    assert result.capped_share == 0.0
    assert result.pscore_source == "logged"
    capped = NCIS(cap=1.5).estimate(r, p, a)  # used weights 1, 0, 1.5, 1.5
    assert capped.ess_share == pytest.approx(4**2 / 5.5 / 4)
    assert capped.capped_share == pytest.approx(0.5)
    assert capped.max_weight == pytest.approx(5.0)
    assert not result.unreliable
    assert IPS(min_ess_share=0.6).estimate(r, p, a).unreliable
    # One huge weight among many: ess share ~ 1 / n.
    n = 1000
    a_big = np.full(n, 1e-6)
    a_big[0] = 1.0
    assert SNIPS().estimate(np.ones(n), np.full(n, 1e-3), a_big).unreliable
    assert math.isnan(SNIPS().estimate(np.ones(3), np.ones(3), np.zeros(3)).value)
    assert SNIPS().estimate(np.ones(3), np.ones(3), np.zeros(3)).unreliable
    assert not DM().estimate(np.ones(n), np.full(n, 1e-3), a_big, v_target=np.ones(n)).unreliable


def test_unreliable_estimates_say_why_and_their_columns_hold_no_nan():
    undefined = SNIPS().estimate(np.ones(3), np.ones(3), np.zeros(3))
    assert undefined.reason.startswith("undefined: every weight is 0")
    columns = undefined.columns("ope_step_snips")
    assert columns["ope_step_snips"] is None and columns["ope_step_snips_unreliable"] is True
    assert set(columns) == {"ope_step_snips" + s for s in ("", "_low", "_high", "_ess", "_unreliable", "_reason")}
    n = 1000
    a_big = np.full(n, 1e-6)
    a_big[0] = 1.0
    sparse = SNIPS().estimate(np.ones(n), np.full(n, 1e-3), a_big)
    assert sparse.reason.startswith("effective sample size") and "< 1%" in sparse.reason
    sound = IPS().estimate(np.ones(4), np.full(4, 0.5), np.full(4, 0.5))
    assert sound.reason == "" and not sound.columns("x")["x_unreliable"]
    assert all(v is None or v == v for v in columns.values())  # no NaN


def test_resample_counts_are_multinomial_and_chunks_reproduce_one_call():
    counts = resample_counts(7, 300, np.random.default_rng(0))
    assert counts.shape == (300, 7) and (counts.sum(axis=1) == 7).all()
    assert counts.mean() == pytest.approx(1.0)
    chunks = list(resample_count_chunks(7, 300, np.random.default_rng(0), max_cells=50))
    assert len(chunks) == 43
    np.testing.assert_array_equal(np.concatenate(chunks), counts)


def test_mean_interval_bootstrap_by_group():
    values = np.array([1.0, 1.0, 5.0, 5.0, 5.0])
    mean, low, high = mean_interval(values, group=np.array([0, 0, 1, 1, 1]), n_bootstrap=500, seed=0)
    assert mean == pytest.approx(3.4)
    # Only three resample outcomes: groups (0, 0) -> 1, (1, 1) -> 5, (0, 1) -> 3.4.
    assert low == pytest.approx(1.0) and high == pytest.approx(5.0)


R, P, A = np.ones(3), np.full(3, 0.5), np.full(3, 0.5)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: ips(np.ones((3, 1)), P, A), ValueError, "reward"),
        (lambda: ips(np.array([]), np.array([]), np.array([])), ValueError, "reward"),
        (lambda: ips(np.array([1.0, np.nan, 1.0]), P, A), ValueError, "reward"),
        (lambda: ips(R, np.ones(2), A), ValueError, "pscore"),
        (lambda: ips(R, np.array([0.5, 0.0, 0.5]), A), ValueError, "pscore"),
        (lambda: snips(R, P, np.array([0.5, -0.1, 0.5])), ValueError, "action_prob"),
        (lambda: snips(R, P, np.array([0.5, np.inf, 0.5])), ValueError, "action_prob"),
        (lambda: cis(R, P, A, 0.0), ConfigError, "cap"),
        (lambda: ncis(R, P, A, float("nan")), ConfigError, "cap"),
        (lambda: ncis(R, P, A, "10"), ConfigError, "cap"),
        (lambda: point_ncis(R, P, A, 2.0), ValueError, "context"),
        (lambda: point_ncis(R, P, A, 2.0, context=np.zeros(2)), ValueError, "context"),
        (lambda: point_ncis(R, P, A, 2.0, capped_weight_mean=np.zeros(3)), ValueError, "capped_weight_mean"),
        (lambda: dr(R, P, A, np.ones(2), np.ones(3)), ValueError, "q_logged"),
        (lambda: sndr(R, P, A, np.ones(3), np.array([1.0, np.nan, 1.0])), ValueError, "v_target"),
        (lambda: dm(np.array([])), ValueError, "v_target"),
        (lambda: IPS().estimate(R, P, A, group=np.zeros(2)), ValueError, "group"),
        (lambda: DR().estimate(R, P, A, v_target=np.ones(3)), ValueError, "q_logged"),
        (lambda: SNDR().estimate(R, P, A, q_logged=np.ones(3)), ValueError, "v_target"),
        (lambda: DM().estimate(R, P, A), ValueError, "v_target"),
        (lambda: NCIS(cap=-1.0), ConfigError, "NCIS.cap"),
        (lambda: DR(cap=0), ConfigError, "DR.cap"),
        (lambda: IPS(n_bootstrap=0), ConfigError, "IPS.n_bootstrap"),
        (lambda: SNIPS(alpha=1.5), ConfigError, "SNIPS.alpha"),
        (lambda: CIS(seed=1.5), ConfigError, "CIS.seed"),
        (lambda: PointNCIS(min_ess_share=2.0), ConfigError, "PointNCIS.min_ess_share"),
        (lambda: expected_capped_weight(np.ones((2, 2)), np.ones((2, 3)), 1.0), ValueError, "behaviour_probs"),
    ],
)
def test_invalid_inputs_name_the_argument(call, error, name):
    with pytest.raises(error, match=f"^{name}"):
        call()


def test_user_bootstrap_interval_covers_the_true_value_about_95_percent():
    """Each log draws a fresh population of users (random tastes, user effects, policies) and
    their rows; the population value is exactly 0.5 (uniform(0, 1) rewards, zero-mean user
    effects). Seeded, so deterministic."""
    rng = np.random.default_rng(11)
    n_users, n_act, n_rows = 40, 6, 400
    covered = []
    for rep in range(300):
        pi_b = rng.dirichlet(np.ones(n_act) * 2, n_users)
        pi = rng.dirichlet(np.ones(n_act) * 2, n_users)
        mean_r = rng.uniform(0, 1, (n_users, n_act)) + rng.normal(0, 0.5, (n_users, 1))
        users = rng.integers(0, n_users, n_rows)
        act = (rng.random(n_rows)[:, None] > np.cumsum(pi_b[users], axis=1)).sum(axis=1)
        r = mean_r[users, act] + rng.normal(0, 0.3, n_rows)
        est = IPS(seed=rep).estimate(r, pi_b[users, act], pi[users, act], group=users)
        covered.append(est.ci_low <= 0.5 <= est.ci_high)
    assert 0.9 <= np.mean(covered) <= 0.98
