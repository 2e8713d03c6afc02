"""Validity of the episode-value (R_tra) and one-step off-policy estimates on a finished run.

Prints one JSON object to stdout. Reads a `recsim run` folder of the quickstart (the synthetic
KuaiRec-like world with a full ground truth), made e.g. with

    recsim run pipelines/quickstart.yaml --out RUN --seeds 0

and scores every saved policy of run seed `--seed` (learned and static: `recsim.policy.storage.
load_policy`) from the training log alone with `recsim.evaluation.episode_ope` (pdis, ncis,
model, dr, wdr; behaviour propensities "logged", the world's exact per-row propensity, and
"item popularity" of the training log) and the one-step estimators of `recsim.evaluation.logged`
(ips, snips, ncis, dm, dr with the logged propensities), using the run's user model table.

Truth, for validation only: R_tra of each policy in the ground-truth environment
(`OnlineEvaluator`, the spec's evaluation in each mode, `--truth-episodes` users instead of the
run's 100 to lower the truth's own noise; the run's reported R_tra is kept beside it), and the
one-step truth `ope_step_truth` (sum_a pi(a|x) truth(u, a) on the same logged contexts).

Per estimator and mode, across the policies: Spearman correlation of the estimates with the true
R_tra (and with the run's reported R_tra; for the one-step estimators with `ope_step_truth` and with
R_tra), mean relative error |est - truth| /
|truth| (policies whose truth is 0 left out), the share of policies whose truth lies inside the
estimate's 95 % interval, and the share flagged unreliable. Baseline (same run): `naive`, the mean
return of the replayed logged episodes (the behaviour's own R_tra, blind to the policy).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from recsim.data.schema import Dataset
from recsim.evaluation.episode_log import behaviour_pscore
from recsim.evaluation.episode_ope import EPISODE_ESTIMATORS, EpisodeOPEConfig, estimates_from, prepare
from recsim.evaluation.logged import covered_users, logged_contexts, off_policy_estimates
from recsim.evaluation.online import OnlineEvaluator
from recsim.evaluation.propensity import PROPENSITY_MODELS, fit_behaviour
from recsim.pipeline.methods import method_inputs, method_needs
from recsim.pipeline.spec import Spec, load_spec
from recsim.pipeline.stages import model_seed, model_stage_name
from recsim.policy.storage import load_policy
from recsim.reward.table import RewardTable

REPO = Path(__file__).resolve().parents[1]
ONE_STEP = ["ips", "snips", "ncis", "dm", "dr"]


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman rank correlation over the pairs where both are finite; NaN if undefined."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(float)
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(float)
    for r, v in ((ra, a), (rb, b)):  # average ranks of ties
        for value in np.unique(v):
            tied = v == value
            r[tied] = r[tied].mean()
    return float(np.corrcoef(ra, rb)[0, 1])


def run_policies(spec: Spec, run_dir: Path, seed: int) -> dict[str, Any]:
    """Every saved policy of run seed `seed` in `run_dir`, by method name."""
    dataset = Dataset.load(run_dir / "data" / "dataset")
    ms = model_seed(spec, seed)
    knn = "knn" if (run_dir / "knn").is_dir() else f"knn-s{ms}"
    stage_of = {"user_model": model_stage_name(ms), "user_model_ips": model_stage_name(ms, True), "knn": knn}
    policies = {}
    for method in spec.methods:
        folder = run_dir / f"policy-{method.name}-s{seed}"
        if not folder.is_dir():
            continue
        needs = method_needs(method)
        table = RewardTable.load(run_dir / stage_of[needs.table]) if needs.table else None
        disagreement = (RewardTable.load(run_dir / model_stage_name(ms) / "disagreement")
                        if needs.disagreement else None)
        model_dir = run_dir / model_stage_name(ms) if needs.user_model else None
        policies[method.name] = load_policy(folder, method_inputs(dataset, needs, table, model_dir, disagreement))
    return policies


def reported_r_tra(run_dir: Path, name: str, seed: int, mode: str) -> float:
    path = run_dir / f"eval-{name}-s{seed}" / "metrics.json"
    if not path.is_file():
        return math.nan
    rows = json.loads(path.read_text())["rows"]
    return next((float(r["R_tra"]) for r in rows if r["mode"] == mode), math.nan)


def summarise(values: dict[str, dict[str, float]], truth: dict[str, float]) -> dict[str, Any]:
    """Spearman, relative error, interval coverage, unreliable share of one estimator's values."""
    names = [p for p in truth if p in values]
    est = [values[p]["value"] for p in names]
    true = [truth[p] for p in names]
    rel = [abs(values[p]["value"] - truth[p]) / abs(truth[p]) for p in names
           if truth[p] != 0 and math.isfinite(values[p]["value"])]
    covered = [values[p]["low"] <= truth[p] <= values[p]["high"] for p in names]
    return dict(spearman=spearman(est, true), mean_relative_error=float(np.mean(rel)) if rel else math.nan,
                coverage=float(np.mean(covered)), unreliable_share=float(np.mean([values[p]["unreliable"]
                                                                                  for p in names])),
                n_finite=int(np.isfinite(est).sum()))


def episode_section(args: argparse.Namespace, spec: Spec, dataset: Any, policies: dict[str, Any],
                    table: RewardTable, mode: str) -> dict[str, Any]:
    env = dataclasses.replace(spec.env, mode=mode)
    evaluator = OnlineEvaluator(dataset, dataclasses.replace(spec.evaluation.online(mode),
                                                             episodes=args.truth_episodes), env, spec.quit)
    popularity, _ = behaviour_pscore(dataclasses.replace(dataset, train=dataset.train.drop(columns="propensity")),
                                     None)
    config = EpisodeOPEConfig(tuple(EPISODE_ESTIMATORS), args.cap, args.n_bootstrap, args.seed, args.max_users,
                              args.stride, args.model_episodes)
    truth, reported, per_policy = {}, {}, {}
    values: dict[str, dict[str, dict[str, float]]] = {}
    naive = math.nan
    for name, policy in policies.items():
        start = time.perf_counter()
        truth[name] = evaluator.evaluate(policy, run_seed=args.seed)["R_tra"]
        reported[name] = reported_r_tra(args.run_dir, name, args.seed, mode)
        row: dict[str, Any] = {"true_R_tra": truth[name], "reported_R_tra": reported[name]}
        inputs = prepare(policy, dataset, env, spec.quit, table, config)
        popular = dataclasses.replace(inputs, episodes=inputs.episodes.with_pscore(popularity, "item popularity"))
        weighting = dataclasses.replace(config, estimators=("pdis", "ncis", "dr", "wdr"))
        for suffix, results in (("", estimates_from(inputs, config)),
                                ("[item popularity]", estimates_from(popular, weighting))):
            for est, r in results.items():
                key = est + suffix
                values.setdefault(key, {})[name] = dict(value=r.value, low=r.low, high=r.high, ess=r.ess,
                                                        unreliable=r.unreliable)
                row[key] = values[key][name] | {"ess_first_steps": [float(x) for x in r.ess_per_step[:5]]}
        episodes = inputs.episodes
        row["n_episodes"], row["n_users"] = len(episodes.users), episodes.n_users
        c = episodes.user_weight
        naive = float(np.sum(c * np.where(episodes.alive, episodes.rewards, 0.0).sum(axis=1)) / c.sum())
        row["seconds"] = time.perf_counter() - start
        per_policy[name] = row
    naive_values = {p: dict(value=naive, low=naive, high=naive, unreliable=False) for p in policies}
    summary = {est: summarise(v, truth) | {"spearman_vs_reported_R_tra": spearman(
        [v[p]["value"] for p in policies], [reported[p] for p in policies])} for est, v in values.items()}
    summary["naive"] = summarise(naive_values, truth)
    return dict(mode=mode, summary=summary,
                reported_vs_true_spearman=spearman([reported[p] for p in policies], [truth[p] for p in policies]),
                per_policy=per_policy)


def one_step_section(args: argparse.Namespace, spec: Spec, dataset: Any, policies: dict[str, Any],
                     table: RewardTable, r_tra: dict[str, float]) -> dict[str, Any]:
    behaviour = fit_behaviour(args.propensity, dataset, table, seed=args.seed)
    contexts = logged_contexts(dataset, spec.env.history_window, args.max_users, args.seed, behaviour,
                               covered_users(dataset, table, behaviour))
    rows = {name: off_policy_estimates(policy, dataset, contexts, ONE_STEP, args.cap, args.n_bootstrap, args.seed,
                                       table) for name, policy in policies.items()}
    truth = {p: rows[p]["ope_step_truth"] for p in policies}
    summary = {}
    for est in ONE_STEP:
        key = f"ope_step_{est}"
        values = {p: dict(value=math.nan if rows[p][key] is None else rows[p][key],
                          low=math.nan if rows[p][f"{key}_low"] is None else rows[p][f"{key}_low"],
                          high=math.nan if rows[p][f"{key}_high"] is None else rows[p][f"{key}_high"],
                          unreliable=bool(rows[p][f"{key}_unreliable"])) for p in policies}
        summary[est] = summarise(values, truth) | {
            "spearman_with_R_tra": spearman([values[p]["value"] for p in policies], [r_tra[p] for p in policies])}
    return dict(pscore_source=contexts.pscore_source, n_rows=len(contexts.users), summary=summary,
                truth_vs_R_tra_spearman=spearman([truth[p] for p in policies], [r_tra[p] for p in policies]),
                per_policy=rows)


def validate(args: argparse.Namespace) -> dict[str, Any]:
    spec = load_spec(args.spec, seeds=[args.seed])
    dataset = Dataset.load(args.run_dir / "data" / "dataset")
    table = RewardTable.load(args.run_dir / model_stage_name(model_seed(spec, args.seed)))
    policies = run_policies(spec, args.run_dir, args.seed)
    out: dict[str, Any] = dict(run_dir=str(args.run_dir), seed=args.seed, policies=list(policies),
                               user_model_table=table.kind, episodes={})
    for mode in args.modes:
        out["episodes"][mode] = episode_section(args, spec, dataset, policies, table, mode)
    first = out["episodes"][args.modes[0]]["per_policy"]
    out["one_step"] = one_step_section(args, spec, dataset, policies, table,
                                       {p: first[p]["true_R_tra"] for p in policies})
    return out


def json_safe(value: Any) -> Any:
    """NaN and infinities become null (strict JSON); numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", type=Path, required=True, help="a finished `recsim run` folder of the spec")
    p.add_argument("--spec", type=Path, default=REPO / "pipelines" / "quickstart.yaml")
    p.add_argument("--seed", type=int, default=0, help="the run seed whose policies are scored")
    p.add_argument("--modes", type=lambda s: s.split(","), default=["FB", "NX_0"])
    p.add_argument("--cap", type=float, default=10.0, help="weight cap (the quickstart's ope_cap)")
    p.add_argument("--n-bootstrap", type=int, default=200)
    p.add_argument("--max-users", type=int, default=200, help="logged users of every estimate")
    p.add_argument("--propensity", choices=PROPENSITY_MODELS, default="auto",
                   help="behaviour model of the one-step estimates (the episode estimates use the log's)")
    p.add_argument("--stride", type=int, default=1, help="rows between a user's logged windows")
    p.add_argument("--model-episodes", type=int, default=1000, help="episodes of the model rollout")
    p.add_argument("--truth-episodes", type=int, default=1000, help="episodes of the true R_tra")
    return p


def main(argv: list[str] | None = None) -> int:
    import torch

    torch.set_num_threads(1)
    args = parser().parse_args(argv)
    start = time.perf_counter()
    out = dict(benchmark="ope_episode", config={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()})
    out.update(validate(args))
    out["seconds"] = time.perf_counter() - start
    print(json.dumps(json_safe(out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
