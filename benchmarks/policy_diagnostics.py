"""Why MBPO and MOPO stop after 2-4 steps on the synthetic KuaiRec world (diagnostics, prints JSON).

`benchmarks/policies.py` measures MBPO and MOPO at near-greedy returns with 2-4-step episodes
(MCD 1.0), far below the published 15-step episodes. Two questions, answered in one run on the
same user model (`--workdir` shares the one `benchmarks/policies.py` trained, else one is
trained here with the same settings):

1. Does the MBPO simulator itself reward short greedy episodes? Two fixed policies are rolled out
   in the simulator (user-model mean, MBPO reward rhat - MIN_R) and in the ground truth, NX_0,
   the category quit rule, 300 users: `greedy` (the highest rhat) and `quit_aware` (the highest
   rhat among items the quit rule keeps the user after). If `quit_aware` earns more in the
   simulator too, the simulator does reward long episodes and the short ones are an optimisation
   failure of the learner.
2. Is that failure A2C's policy collapsing onto a few items? MBPO is trained with the published
   A2C (ent_coef 0) and with a policy-entropy bonus (ent_coef 0.01, 0.1), CPU budget, seeds
   `--seeds`: per-epoch ground-truth R_tra, length, MCD, coverage and the simulator's training
   return. The presets keep the published ent_coef 0; this only measures the mechanism.
3. Why does the IPS simulator not collapse? Its reward scale: for the plain and the IPS-weighted
   user model, what two greedy steps earn in the MBPO reward (rhat - MIN_R, the mean of each
   user's top two items) against 30 steps of an average item. When the two are close, the
   greedy two-step episode is a strong local optimum.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

GAMMA = 0.9
ENT_COEFS = (0.0, 0.01, 0.1)


def _policies_benchmark():
    """`benchmarks/policies.py` as a module (its user-model settings and training helper)."""
    path = Path(__file__).with_name("policies.py")
    spec = importlib.util.spec_from_file_location("recsim_benchmark_policies", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _returns(log, shift: float) -> dict:
    """Mean undiscounted and discounted (GAMMA) return of `log`'s episodes with rewards - shift."""
    rewards = np.where(log.items >= 0, log.rewards.astype(np.float64) - shift, 0.0)
    discount = GAMMA ** np.arange(rewards.shape[1])
    return {"return": float(rewards.sum(axis=1).mean()),
            "discounted_return": float((rewards * discount).sum(axis=1).mean()), "length": float(log.lengths.mean())}


def simulator_against_truth(world, table, episodes: int) -> dict:
    from recsim.env import EnvConfig
    from recsim.evaluation.online import EvalConfig, OnlineEvaluator
    from recsim.evaluation.rollout import rollout
    from recsim.policy.static import GreedyRecommender, QuitAwareGreedyRecommender

    evaluation = EvalConfig(episodes=episodes)
    truth = OnlineEvaluator(world, evaluation)
    out = {}
    for policy in (GreedyRecommender(table), QuitAwareGreedyRecommender(table, truth.quit_rule)):
        simulated = rollout(policy, table, evaluation.mode, truth.quit_rule, episodes, user_seed=evaluation.seed,
                            env_config=EnvConfig(mode=evaluation.mode))
        out[policy.name] = {"simulator_mbpo": _returns(simulated, float(table.mean.min())),
                            "ground_truth": _returns(truth.rollout(policy), 0.0)}
    return out


def mbpo_entropy_sweep(world, table, item_embeddings: np.ndarray, seeds: list[int], workdir: Path,
                       budget_overrides: dict) -> dict:
    from recsim.policy.train import MethodInputs, method_config, train_method

    inputs = MethodInputs(world, table, None, item_embeddings)
    out = {}
    for ent_coef in ENT_COEFS:
        runs = []
        for seed in seeds:
            config = method_config("mbpo", world.name, params={**budget_overrides, "ent_coef": ent_coef}, seed=seed,
                                   progress=False)
            result = train_method(config, inputs, workdir / f"mbpo-ent{ent_coef}" / str(seed), resume=True)
            epochs = [{k: h[k] for k in ("epoch", "train_return", "R_tra", "length", "MCD", "coverage")}
                      for h in result.history]
            runs.append({"seed": seed, "final": {k: result.metrics[k] for k in ("R_tra", "length", "MCD", "coverage")},
                         "epochs": epochs})
            print(f"mbpo ent_coef {ent_coef} seed {seed}: R_tra {result.metrics['R_tra']:.3f} "
                  f"length {result.metrics['length']:.2f}", file=sys.stderr, flush=True)
        out[str(ent_coef)] = {"R_tra_mean": float(np.mean([r["final"]["R_tra"] for r in runs])),
                              "length_mean": float(np.mean([r["final"]["length"] for r in runs])), "runs": runs}
    return out


def reward_scale(table) -> dict:
    """Two greedy steps against 30 average steps, in MBPO's reward rhat - MIN_R (MIN_R = min rhat)."""
    mean = table.mean.astype(np.float64)
    shift = float(mean.min())
    top_two = float(np.sort(mean, axis=1)[:, -2:].mean())
    return {"rhat_min": shift, "rhat_mean": float(mean.mean()), "rhat_max": float(mean.max()),
            "two_greedy_steps": 2 * (top_two - shift), "thirty_average_steps": 30 * (float(mean.mean()) - shift)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the policies benchmark's quick sizes")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--episodes", type=int, default=300, help="users of the fixed-policy rollouts")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="the policies benchmark's workdir (reuses its user model) or a new folder")
    args = parser.parse_args()

    import torch

    from recsim.data.synthetic import generate_world

    torch.set_num_threads(args.threads)
    bench = _policies_benchmark()
    settings = bench._settings(args.quick)
    world = generate_world("kuairec", 0, **settings["world"])
    with tempfile.TemporaryDirectory(prefix="recsim-bench-diagnostics-") as tmp:
        workdir = args.workdir or Path(tmp)
        ensemble = bench._user_model(world, settings["user_model"], workdir / "user_model", ips=False, seed=0)
        table = ensemble.reward_table(world.truth_users, world.truth_items, "max_variance")
        item_embeddings = ensemble.embeddings()[1]
        ips = bench._user_model(world, settings["user_model"], workdir / "user_model_ips", ips=True, seed=0)
        ips_table = ips.reward_table(world.truth_users, world.truth_items, "max_variance")
        result = {
            "benchmark": "policy_diagnostics",
            "quick": args.quick,
            "world": {"preset": "kuairec", "n_users": world.n_users, "n_items": world.n_items},
            "user_model_distinct_top1_items": int(len(np.unique(table.mean.argmax(axis=1)))),
            "fixed_policies": simulator_against_truth(world, table, args.episodes),
            "reward_scale": {"user_model": reward_scale(table), "user_model_ips": reward_scale(ips_table)},
            "mbpo_by_ent_coef": mbpo_entropy_sweep(world, table, item_embeddings, list(range(args.seeds)),
                                                   workdir / "diagnostics", settings["model_based"]),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
