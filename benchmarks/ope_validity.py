"""Validity of the off-policy estimators against exact truth (synthetic world) and a random test log (Coat).

Prints one JSON object to stdout.

Synthetic world (`recsim.data.synthetic.generate_world`): truth(u, i) is the exact expected
reward of every pair, so a target policy's true value is exact:
V(pi) = sum_u n_u sum_i pi(i|u) truth(u, i) / sum_u n_u, with n_u the user's row count in the
world's training log (users weighted as they appear in the log).

- Repeated logs. The world records only the logged item's propensity (its behaviour policy
  changes daily with popularity feedback), not the full distribution. Repeated logs are therefore
  drawn from a stationary behaviour policy of the world's own form, built from its config and
  estimated popularity: pi_b(i|u) = softmax_i(popularity_bias * log(n_i + 1) + personalisation *
  (log truth(u, i) + eps_ui)), n_i = item i's row count in the world's log, eps_ui ~ N(0,
  preference_noise^2) drawn from the benchmark seed. Each log draws n_u' ~ Poisson(n_u) rows per
  user, items i.i.d. from pi_b(.|u) and rewards truth(u, i) * LogNormal(-s^2/2, s) (mean
  preserving, not clipped, so E[reward | u, i] = truth(u, i) exactly). Per estimator and policy:
  bias, RMSE, coverage of the 95 % user-bootstrap interval, mean interval width, share flagged
  unreliable; across policies the Spearman correlation of estimates with true values. The
  interval resamples users, so it also covers the variation of drawing users; the world's users
  are held fixed here, which makes it conservative (above 95 % for unbiased estimators).
- The world's own log, once, with its exact logged (day-varying) propensities; its labels are
  mean preserving too, so the true value is computed from truth.
DM, DR and SNDR use an additive reward model (mu + b_u + b_i, shrunk biases), two-fold
cross-fitted over random halves of the rows.

Baseline (same run): the naive estimate, the mean logged reward (the behaviour's value, blind
to the target policy); `rmse_ratio_to_naive` = estimator RMSE / naive RMSE.

Coat (Schnabel et al., ICML 2016; raw `train.ascii`, `test.ascii`, `propensities.ascii`, 290 x
300, 0 = unobserved): policies are scored from the self-selected (MNAR) training ratings and
compared with the value measured on the random test ratings, V_test(pi) = mean_u sum_{i in T_u}
pi(i|u) r_ui * n_items / |T_u| (IPS with the uniform test propensity), with a user-bootstrap
interval. Behaviour propensities on the training log, each named in the output:
"dataset" (the shipped observation propensities P_ui normalised per user, P_ui / sum_j P_uj,
i.e. the probability that a logged row is item i), "item popularity" ((count_i + 1) /
sum (count + 1)) and "uniform" (1 / n_items: no correction; the naive baseline).

With `--run-dir RUN` (a finished `recsim run pipelines/quickstart.yaml --out RUN`), the trained
and static policies of that run are scored too: the episode-value estimators of
`recsim.evaluation.episode_ope` against the true R_tra and the one-step estimators against the
one-step truth (`benchmarks/ope_episode.py`, which also runs alone; its output under "episode").
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recsim.evaluation.bootstrap import mean_interval
from recsim.evaluation.ope import CIS, DM, DR, IPS, NCIS, SNDR, SNIPS, PointNCIS, expected_capped_weight
from recsim.progress import progress_bar

REPO = Path(__file__).resolve().parents[1]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def draw_items(rng: np.random.Generator, cdf_flat: np.ndarray, users: np.ndarray, n_items: int) -> np.ndarray:
    """Items drawn from row `users[k]` of a row-normalised cdf flattened with a +row offset."""
    items = np.searchsorted(cdf_flat, users + rng.random(users.size), side="right") - users * n_items
    return np.clip(items, 0, n_items - 1)


def estimators(cap: float, n_bootstrap: int, seed: int) -> dict[str, object]:
    common = dict(n_bootstrap=n_bootstrap, seed=seed)
    return {
        "ips": IPS(**common),
        "cis": CIS(cap=cap, **common),
        "snips": SNIPS(**common),
        "ncis": NCIS(cap=cap, **common),
        "point_ncis": PointNCIS(cap=cap, **common),
        "dm": DM(**common),
        "dr": DR(**common),
        "sndr": SNDR(**common),
    }


def additive_reward_model(users, items, reward, n_users, n_items, shrink=10.0):
    """q(u, i) = mu + b_u + b_i with shrunk biases fitted on the log; returns (mu, b_u, b_i)."""
    mu = float(reward.mean())
    item_n = np.bincount(items, minlength=n_items)
    b_i = np.bincount(items, reward - mu, minlength=n_items) / (item_n + shrink)
    user_n = np.bincount(users, minlength=n_users)
    b_u = np.bincount(users, reward - mu - b_i[items], minlength=n_users) / (user_n + shrink)
    return mu, b_u, b_i


class CrossFitModel:
    """Two-fold cross-fitted additive reward model: each row is predicted by the model fitted on
    the other half of the rows (random halves), so q is independent of the row's own reward and
    DR stays unbiased (Chernozhukov et al., 2018); without it DR inherits the model's overfit."""

    def __init__(self, rng, users, items, reward, n_users, n_items):
        self.users, self.items = users, items
        self.fold = rng.integers(0, 2, users.size)
        self.models = [additive_reward_model(users[self.fold != k], items[self.fold != k],
                                             reward[self.fold != k], n_users, n_items) for k in (0, 1)]

    def q_logged(self) -> np.ndarray:
        out = np.empty(self.users.size)
        for k, (mu, b_u, b_i) in enumerate(self.models):
            rows = self.fold == k
            out[rows] = mu + b_u[self.users[rows]] + b_i[self.items[rows]]
        return out

    def v_target(self, pi: np.ndarray) -> np.ndarray:
        out = np.empty(self.users.size)
        for k, (mu, b_u, b_i) in enumerate(self.models):
            rows = self.fold == k
            out[rows] = (mu + b_u + pi @ b_i)[self.users[rows]]
        return out


def run_estimators(ests, reward, pscore, action_prob, users, q_logged, v_target, m_exact=None, source=None):
    out = {}
    for name, est in ests.items():
        out[name] = est.estimate(reward, pscore, action_prob, group=users, context=users,
                                 q_logged=q_logged, v_target=v_target, pscore_source=source)
    if m_exact is not None:
        out["point_ncis_exact"] = ests["point_ncis"].estimate(
            reward, pscore, action_prob, group=users, capped_weight_mean=m_exact, pscore_source=source)
    return out


def spearman(x, y) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks); NaN if undefined."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if not (np.isfinite(x).all() and np.isfinite(y).all()) or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    rx = pd.Series(x).rank(method="average").to_numpy()
    ry = pd.Series(y).rank(method="average").to_numpy()
    return float(np.corrcoef(rx, ry)[0, 1])


# ----------------------------------------------------------------------------- synthetic world


def synthetic_policies(truth: np.ndarray, behaviour: np.ndarray) -> dict[str, np.ndarray]:
    n_users, n_items = truth.shape
    uniform = np.full_like(behaviour, 1.0 / n_items)
    top10 = np.argsort(-truth, axis=1)[:, :10]
    greedy = np.zeros_like(behaviour)
    np.put_along_axis(greedy, top10, 0.1, axis=1)
    return {
        "behaviour": behaviour,
        "behaviour_tilted_by_truth": softmax(np.log(behaviour) + truth / 0.5),
        "mix_half_behaviour_half_uniform": 0.5 * behaviour + 0.5 * uniform,
        "softmax_truth_t1.0": softmax(truth / 1.0),
        "softmax_truth_t0.3": softmax(truth / 0.3),
        "uniform": uniform,
        "top10_truth_eps0.1": 0.9 * greedy + 0.1 * uniform,
    }


def synthetic(args, rng: np.random.Generator) -> dict:
    from recsim.data.synthetic import generate_world

    world = generate_world(args.preset, seed=args.seed)
    cfg = world.meta["config"]
    truth = world.truth_dense().astype(np.float64)
    n_users, n_items = truth.shape
    log = world.train
    log_users = log["user"].to_numpy().astype(np.int64)
    log_items = log["item"].to_numpy().astype(np.int64)
    n_u = np.bincount(log_users, minlength=n_users)
    item_count = np.bincount(log_items, minlength=n_items)
    eps = rng.normal(0.0, cfg["preference_noise"], truth.shape)
    behaviour = softmax(cfg["popularity_bias"] * np.log(item_count + 1.0)[None, :]
                        + cfg["personalisation"] * (np.log(truth) + eps))
    policies = synthetic_policies(truth, behaviour)
    user_share = n_u / n_u.sum()
    true_values = {name: float(user_share @ (pi * truth).sum(axis=1)) for name, pi in policies.items()}
    distance = {}
    for name, pi in policies.items():
        kl = np.where(pi > 0, pi * (np.log(np.maximum(pi, 1e-300)) - np.log(behaviour)), 0.0).sum(axis=1)
        w = pi / behaviour
        ess = (pi.sum(axis=1) ** 2) / (pi * w).sum(axis=1)  # per-user (E w)^2 / E w^2 under pi_b
        distance[name] = dict(kl_to_behaviour=float(user_share @ kl), expected_ess_share=float(user_share @ ess))
    m_exact = {name: expected_capped_weight(pi, behaviour, args.cap) for name, pi in policies.items()}

    cdf = np.cumsum(behaviour, axis=1)
    cdf /= cdf[:, -1:]
    cdf_flat = (cdf + np.arange(n_users)[:, None]).ravel()
    s = cfg["label_noise"]
    ests = estimators(args.cap, args.n_bootstrap, args.seed)
    names = list(ests) + ["point_ncis_exact", "naive"]
    records = {e: {p: [] for p in policies} for e in names}  # (value, low, high, unreliable)
    for _ in progress_bar(range(args.reps), "synthetic logs", enabled=not args.quiet):
        counts = rng.poisson(n_u)
        users = np.repeat(np.arange(n_users), counts)
        items = draw_items(rng, cdf_flat, users, n_items)
        reward = truth[users, items] * np.exp(rng.normal(-s * s / 2, s, users.size))
        pscore = behaviour[users, items]
        model = CrossFitModel(rng, users, items, reward, n_users, n_items)
        q_logged = model.q_logged()
        naive = mean_interval(reward, users, args.n_bootstrap, seed=args.seed)
        for name, pi in policies.items():
            v_target = model.v_target(pi)
            result = run_estimators(ests, reward, pscore, pi[users, items], users, q_logged, v_target,
                                    m_exact[name][users])
            for e, r in result.items():
                records[e][name].append((r.value, r.ci_low, r.ci_high, r.unreliable))
            records["naive"][name].append((naive[0], naive[1], naive[2], False))

    summary = {}
    for e in names:
        per_policy = {}
        estimates = np.array([[v[0] for v in records[e][p]] for p in policies])  # (policies, reps)
        truths = np.array([true_values[p] for p in policies])
        for p in policies:
            arr = np.array(records[e][p], dtype=float)
            err = arr[:, 0] - true_values[p]
            per_policy[p] = dict(
                bias=float(np.nanmean(err)),
                rmse=float(np.sqrt(np.nanmean(err**2))),
                coverage=float(np.mean((arr[:, 1] <= true_values[p]) & (true_values[p] <= arr[:, 2]))),
                mean_ci_width=float(np.nanmean(arr[:, 2] - arr[:, 1])),
                unreliable_share=float(arr[:, 3].mean()),
            )
        rho = [spearman(estimates[:, j], truths) for j in range(estimates.shape[1])]
        summary[e] = dict(
            mean_abs_bias=float(np.mean([abs(v["bias"]) for v in per_policy.values()])),
            mean_rmse=float(np.mean([v["rmse"] for v in per_policy.values()])),
            coverage=float(np.mean([v["coverage"] for v in per_policy.values()])),
            spearman_per_log=float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan"),
            spearman_of_mean_estimates=spearman(np.nanmean(estimates, axis=1), truths),
            per_policy=per_policy,
        )
    naive_rmse = summary["naive"]["mean_rmse"]
    for e in names:
        summary[e]["rmse_ratio_to_naive"] = summary[e]["mean_rmse"] / naive_rmse

    # The world's own log, once, with its exact logged propensities (E[label | u, i] = truth).
    log_true = {name: float(user_share @ (pi * truth).sum(axis=1)) for name, pi in policies.items()}
    reward = log["label"].to_numpy().astype(np.float64)
    pscore = log["propensity"].to_numpy().astype(np.float64)
    model = CrossFitModel(rng, log_users, log_items, reward, n_users, n_items)
    q_logged = model.q_logged()
    original = {}
    for name, pi in policies.items():
        v_target = model.v_target(pi)
        result = run_estimators(ests, reward, pscore, pi[log_users, log_items], log_users, q_logged, v_target,
                                source="logged")
        original[name] = {e: dict(value=r.value, ci_low=r.ci_low, ci_high=r.ci_high, ess_share=r.ess_share,
                                  covered=bool(r.ci_low <= log_true[name] <= r.ci_high))
                          for e, r in result.items()}
        original[name]["true_value_of_clipped_labels"] = log_true[name]
    original_summary = {
        e: dict(
            mean_abs_error=float(np.mean([abs(original[p][e]["value"] - log_true[p]) for p in policies])),
            coverage=float(np.mean([original[p][e]["covered"] for p in policies])),
            spearman=spearman([original[p][e]["value"] for p in policies], [log_true[p] for p in policies]),
        )
        for e in ests
    }
    return dict(
        preset=args.preset,
        n_users=n_users,
        n_items=n_items,
        n_rows_world_log=int(log_users.size),
        reps=args.reps,
        behaviour="stationary softmax of the world's form (see the module docstring); pscore_source='logged'",
        baseline="naive: mean logged reward",
        policies={p: dict(true_value=true_values[p], **distance[p]) for p in policies},
        estimators=summary,
        world_log_logged_propensities=dict(summary=original_summary, per_policy=original),
    )


# ----------------------------------------------------------------------------- Coat


def coat_policies(train: np.ndarray, mf: np.ndarray) -> dict[str, np.ndarray]:
    n_users, n_items = train.shape
    observed = train > 0
    count = observed.sum(axis=0)
    mean_rating = (train.sum(axis=0) + 2.5 * 5) / (count + 5)
    ones = np.ones((n_users, 1))
    return {
        "uniform": np.full((n_users, n_items), 1.0 / n_items),
        "popular_t0.5": softmax(ones * np.log(count + 1.0)[None, :] / 0.5),
        "unpopular_t0.5": softmax(-ones * np.log(count + 1.0)[None, :] / 0.5),
        "item_mean_t0.3": softmax(ones * mean_rating[None, :] / 0.3),
        "mf_t1.0": softmax(mf / 1.0),
        "mf_t0.3": softmax(mf / 0.3),
        "mf_reverse_t0.5": softmax(-mf / 0.5),
    }


def coat_reward_model(train: np.ndarray, rank: int = 8, shrink: float = 5.0) -> np.ndarray:
    """Biases plus a rank-`rank` SVD of the residuals (unobserved residuals = 0); (n_users, n_items)."""
    users, items = np.nonzero(train)
    ratings = train[users, items]
    mu, b_u, b_i = additive_reward_model(users, items, ratings, train.shape[0], train.shape[1], shrink)
    residual = np.zeros_like(train)
    residual[users, items] = ratings - (mu + b_u[users] + b_i[items])
    u, sv, vt = np.linalg.svd(residual, full_matrices=False)
    low_rank = (u[:, :rank] * sv[:rank]) @ vt[:rank]
    return np.clip(mu + b_u[:, None] + b_i[None, :] + low_rank, 1.0, 5.0)


def coat(args, directory: Path) -> dict:
    train = np.loadtxt(directory / "train.ascii")
    test = np.loadtxt(directory / "test.ascii")
    prop = np.loadtxt(directory / "propensities.ascii")
    n_users, n_items = train.shape
    model = coat_reward_model(train)
    policies = coat_policies(train, model)
    ests = estimators(args.cap, args.n_bootstrap, args.seed)

    tu, ti = np.nonzero(test)
    test_r = test[tu, ti]
    measured = {}
    for name, pi in policies.items():
        r = IPS(n_bootstrap=args.n_bootstrap, seed=args.seed).estimate(
            test_r, np.full(tu.size, 1.0 / n_items), pi[tu, ti], group=tu, pscore_source="uniform random test items")
        measured[name] = dict(value=r.value, ci_low=r.ci_low, ci_high=r.ci_high)

    lu, li = np.nonzero(train)
    reward = train[lu, li]
    count = (train > 0).sum(axis=0)
    sources = {
        "dataset": (prop / prop.sum(axis=1, keepdims=True))[lu, li],
        "item popularity": ((count + 1.0) / (count + 1.0).sum())[li],
        "uniform": np.full(lu.size, 1.0 / n_items),
    }
    q_logged = model[lu, li]
    results = {}
    for source, pscore in sources.items():
        per_est: dict[str, dict] = {}
        for name, pi in policies.items():
            v_target = (pi * model).sum(axis=1)[lu]
            for e, r in run_estimators(ests, reward, pscore, pi[lu, li], lu, q_logged, v_target,
                                       source=source).items():
                m = measured[name]
                per_est.setdefault(e, {})[name] = dict(
                    value=r.value, ci_low=r.ci_low, ci_high=r.ci_high, ess_share=r.ess_share,
                    unreliable=r.unreliable, error=r.value - m["value"],
                    test_value_in_ci=bool(r.ci_low <= m["value"] <= r.ci_high),
                    intervals_overlap=bool(r.ci_low <= m["ci_high"] and m["ci_low"] <= r.ci_high),
                )
        results[source] = {
            e: dict(
                mean_abs_error=float(np.mean([abs(v["error"]) for v in pp.values()])),
                test_value_in_ci_share=float(np.mean([v["test_value_in_ci"] for v in pp.values()])),
                intervals_overlap_share=float(np.mean([v["intervals_overlap"] for v in pp.values()])),
                spearman_vs_test=spearman([pp[p]["value"] for p in policies], [measured[p]["value"] for p in policies]),
                per_policy=pp,
            )
            for e, pp in per_est.items()
        }
    baseline = results["uniform"]["snips"]["mean_abs_error"]
    for source in results:
        for e in results[source]:
            results[source][e]["mae_ratio_to_naive"] = results[source][e]["mean_abs_error"] / baseline
    return dict(
        reward="rating 1-5",
        n_train_rows=int(lu.size),
        n_test_rows=int(tu.size),
        measured_on_random_test=measured,
        baseline="naive: SNIPS with uniform propensities (the mean of pi-weighted MNAR ratings)",
        reward_model="biases + rank-8 SVD of train residuals (DM, DR, SNDR)",
        by_pscore_source=results,
    )


def json_safe(value):
    """NaN and infinities become null (strict JSON); numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny synthetic world (< 30 s)")
    parser.add_argument("--preset", default=None, help="synthetic preset (default kuairec; tiny with --quick)")
    parser.add_argument("--reps", type=int, default=30, help="repeated logs")
    parser.add_argument("--cap", type=float, default=50.0, help="weight cap of CIS, NCIS and PointNCIS")
    parser.add_argument("--n-bootstrap", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--coat-dir", default=None, help="raw Coat folder (default $RECSIM_SHARED_DATA/coat)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--run-dir", default=None, help="a finished quickstart run: also score its policies "
                        "(benchmarks/ope_episode.py with its defaults)")
    args = parser.parse_args(argv)
    if args.reps < 2:
        parser.error("--reps: needs at least 2 repeated logs")
    args.preset = args.preset or ("tiny" if args.quick else "kuairec")

    start, cpu_start = time.perf_counter(), time.process_time()
    rng = np.random.default_rng(args.seed)
    out: dict = dict(benchmark="ope_validity", config=dict(vars(args)))
    out["synthetic"] = synthetic(args, rng)
    out["synthetic_seconds"] = time.perf_counter() - start
    shared = Path(os.environ.get("RECSIM_SHARED_DATA", REPO.parent / "shared" / "data"))
    coat_dir = Path(args.coat_dir) if args.coat_dir else shared / "coat"
    if (coat_dir / "train.ascii").is_file():
        coat_start = time.perf_counter()
        out["coat"] = coat(args, coat_dir)
        out["coat_seconds"] = time.perf_counter() - coat_start
    else:
        out["coat"] = dict(skipped=f"no Coat raw files in {coat_dir}")
    if args.run_dir:
        import ope_episode  # the sibling benchmark (this file's folder is on sys.path when run as a script)

        episode_start = time.perf_counter()
        episode_args = ope_episode.parser().parse_args(["--run-dir", args.run_dir, "--seed", str(args.seed)])
        out["episode"] = ope_episode.validate(episode_args)
        out["episode_seconds"] = time.perf_counter() - episode_start
    out["seconds"] = time.perf_counter() - start
    out["cpu_seconds"] = time.process_time() - cpu_start
    print(json.dumps(json_safe(out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
