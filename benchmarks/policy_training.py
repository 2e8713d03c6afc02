"""On-policy training throughput: the batched collection path against tianshou's `Collector` path.

Environment steps per second end to end (collection and PPO update, tianshou's algorithm in
both) of `recsim.policy.model_based.train_model_based` with `collector="batched"`
(`recsim.policy.onpolicy`) and with `collector="tianshou"` (`OnPolicyTrainer` over a `Collector`
on `TianshouVectorEnv`), same network (average tracker, MLP 64-64, softmax over all items;
`--learner` picks the `AgentConfig` preset, "default" by default; `--tied` the item logits from
the tracker's embeddings with an entropy term 0.01), same world and budget, in one run:

- world: the synthetic `kuairec` world (1,411 users x 3,327 items), its ground truth as the
  simulator's reward table (the speed does not depend on the values), the category quit rule
  (threshold 0, N = 4), NX_0 mask, 30-step limit, MBPO reward;
- budget (`SETTINGS`, `--settings`): `published`, 100 parallel users, 100 episodes per update,
  minibatch 1,024 (DORL / ROLeR), and `wide`, 1,000 users and episodes per update, minibatch
  1,024 (tianshou's collector is at its fastest with many envs); both by default;
- one warm-up epoch per path first (tianshou compiles its GAE kernel with numba once per
  process), then `--repeats` alternating timed epochs per path; the best of each is reported
  (the machine is shared with other jobs; the median is printed too).

`steps_per_s` = environment steps of the epoch / wall time of `train_model_based` (setup of the
network and environment included, the ground-truth evaluation off). `collection_only` times the
two collections alone with the same untrained policy (`BatchedCollector.collect` against
`Collector.collect(n_episode=...)`), best of `--repeats`, to show how much of an epoch the
update (the same tianshou code on both paths) takes, and `ratio_if_collection_free` the ratio
that leaves: the `Collector` path's time per step over the batched path's time per step outside
its collection (the ceiling of the ratio while both paths share the update). Prints one JSON
object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recsim.data.synthetic import generate_world
from recsim.env import CategoryOverlapQuit, EnvConfig
from recsim.policy.methods import Budget
from recsim.policy.model_based import AgentConfig, ModelBasedConfig, agent_preset, train_model_based
from recsim.reward.penalty import PenaltyConfig
from recsim.reward.table import RewardTable

SETTINGS = {
    "published": {"num_envs": 100, "episodes": 100, "batch_size": 1024},
    "wide": {"num_envs": 1000, "episodes": 1000, "batch_size": 1024},
}
"""`published`: DORL / ROLeR's 100 parallel users, 100 episodes per update, minibatch 1,024
(`recsim.policy.methods.BUDGETS["paper"]`); `wide`: 1,000 users and episodes per update, the
same minibatch (the same per-sample work, ten times the users per forward pass)."""


def learner(args: argparse.Namespace) -> AgentConfig:
    """The `--learner` preset, with `--tied`'s two fields when set."""
    tied = {"tied_embeddings": True, "ent_coef": 0.01} if args.tied else {}
    return AgentConfig(**{**agent_preset(args.learner, "--learner"), **tied})


def time_epoch(collector: str, table: RewardTable, quit_rule, steps: int, setting: dict,
               args: argparse.Namespace) -> dict:
    """One training epoch of `steps` environment steps; its steps, seconds and steps per second."""
    budget = Budget(epochs=1, epoch_num_steps=steps, num_envs=setting["num_envs"],
                    episodes_per_collect=setting["episodes"], batch_size=setting["batch_size"])
    config = ModelBasedConfig(method="mbpo", penalty=PenaltyConfig(0.0, 0.0), budget=budget, collector=collector,
                              agent=learner(args),
                              env=EnvConfig(mode="NX_0"), device=args.device, progress=False,
                              torch_threads=args.threads)
    with tempfile.TemporaryDirectory() as out:
        result = train_model_based(config, table, quit_rule, out)
    record = result.history[-1]
    return {"steps": int(record["env_step"]), "seconds": round(result.wall_seconds, 3),
            "steps_per_s": round(record["env_step"] / result.wall_seconds),
            "train_return": round(float(record["train_return"]), 4)}


def time_collections(table: RewardTable, quit_rule, setting: dict, args: argparse.Namespace, repeats: int) -> dict:
    """Steps per second of collecting `setting["episodes"]` episodes, batched and through tianshou's Collector."""
    import torch
    from tianshou.data import Collector, VectorReplayBuffer

    from recsim.env import BatchedRecEnv
    from recsim.policy.actors import build_tracker
    from recsim.policy.model_based import build_agent
    from recsim.policy.onpolicy import BatchedCollector
    from recsim.policy.scaling import FeedbackScale, ScaledFeedbackVectorEnv

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    num_envs, episodes = setting["num_envs"], setting["episodes"]
    env = BatchedRecEnv(table, quit_rule, EnvConfig(mode="NX_0"), num_envs=num_envs, seed=0, breakdown=False)
    agent = learner(args)
    tracker = build_tracker(agent.tracker, env.n_items, None, env.config.history_window)
    algorithm = build_agent(agent, env.n_items, tracker, env.single_action_space, env.single_observation_space)
    scale = FeedbackScale(float(table.mean.min()), float(table.mean.max()))
    batched = BatchedCollector(algorithm.policy, env, scale)
    venv = ScaledFeedbackVectorEnv(env, scale)
    collector = Collector(algorithm.policy, venv, VectorReplayBuffer(episodes * env.limit * 2, num_envs))
    rates: dict[str, list[float]] = {"batched": [], "tianshou_collector": []}
    for _ in range(repeats + 1):  # the first round warms up
        start = time.perf_counter()
        steps = batched.collect(episodes).n_steps
        rates["batched"].append(steps / (time.perf_counter() - start))
        collector.reset(reset_buffer=True)
        start = time.perf_counter()
        steps = collector.collect(n_episode=episodes).n_collected_steps
        rates["tianshou_collector"].append(steps / (time.perf_counter() - start))
    best = {k: round(max(v[1:])) for k, v in rates.items()}
    return {**{f"{k}_best_steps_per_s": v for k, v in best.items()},
            "ratio_best": round(best["batched"] / best["tianshou_collector"], 1)}


def summary(runs: list[dict]) -> dict:
    rates = [r["steps_per_s"] for r in runs]
    return {"best_steps_per_s": max(rates), "median_steps_per_s": round(float(np.median(rates))), "runs": runs}


def measure(name: str, table: RewardTable, quit_rule, args: argparse.Namespace) -> dict:
    """Both paths at one setting: warm-up, `repeats` alternating timed epochs each, collections alone."""
    setting = SETTINGS[name]
    batched_steps = args.batched_steps or (20_000 if args.quick else 100_000)
    tianshou_steps = args.tianshou_steps or (5_000 if args.quick else 20_000)
    repeats = args.repeats or (1 if args.quick else 3)
    for collector in ("batched", "tianshou"):  # warm-up: numba compilation, first allocations
        time_epoch(collector, table, quit_rule, setting["episodes"], setting, args)
    runs: dict[str, list[dict]] = {"batched": [], "tianshou": []}
    for _ in range(repeats):
        runs["batched"].append(time_epoch("batched", table, quit_rule, batched_steps, setting, args))
        runs["tianshou"].append(time_epoch("tianshou", table, quit_rule, tianshou_steps, setting, args))
    batched, baseline = summary(runs["batched"]), summary(runs["tianshou"])
    collections = time_collections(table, quit_rule, setting, args, repeats)
    return {"num_envs": setting["num_envs"], "episodes_per_update": setting["episodes"],
            "batch_size": setting["batch_size"], "repeats": repeats,
            "batched": batched, "tianshou_collector": baseline,
            "ratio_best": round(batched["best_steps_per_s"] / baseline["best_steps_per_s"], 1),
            "ratio_median": round(batched["median_steps_per_s"] / baseline["median_steps_per_s"], 1),
            "collection_only": collections,
            "ratio_if_collection_free": ratio_if_collection_free(batched, baseline, collections)}


def ratio_if_collection_free(batched: dict, baseline: dict, collections: dict) -> float | None:
    """The ratio the batched path would reach if its collection cost nothing.

    Seconds per step of the batched epoch minus those of its collection alone leave the rest of
    the epoch (tianshou's update, which both paths share, and the run's setup); the `Collector`
    path's seconds per step over that rest bound the end-to-end ratio while the update is the
    same code on both paths. None when the difference is not positive (noise on a loaded machine).
    """
    rest = 1.0 / batched["best_steps_per_s"] - 1.0 / collections["batched_best_steps_per_s"]
    return round((1.0 / baseline["best_steps_per_s"]) / rest, 1) if rest > 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter epochs, one repeat")
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=["published", "wide"])
    parser.add_argument("--batched-steps", type=int, default=None, help="steps per timed epoch, batched path")
    parser.add_argument("--tianshou-steps", type=int, default=None, help="steps per timed epoch, collector path")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the training default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--learner", default="default", help="an AgentConfig preset (default, published)")
    parser.add_argument("--tied", action="store_true", help="tied item embeddings and entropy 0.01 (AgentConfig)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    world = generate_world("kuairec", 0)
    table = RewardTable.from_truth(world.truth, world.truth_users, world.truth_items)
    quit_rule = CategoryOverlapQuit(np.asarray(world.item_categories, dtype=bool), leave_threshold=0, window=4)
    load_before = os.getloadavg()[0]
    settings = {name: measure(name, table, quit_rule, args) for name in args.settings}
    result = {
        "benchmark": "policy_training",
        "quick": args.quick,
        "setup": {"world": "synthetic kuairec", "users": int(table.shape[0]), "items": int(table.shape[1]),
                  "mode": "NX_0", "quit_rule": "category overlap, threshold 0, window 4", "max_turn": 30,
                  "reward": "MBPO (ground truth as the table)", "tracker": "average, window 3",
                  "network": "MLP 64-64, softmax over all items",
                  "learner": args.learner, "tied": args.tied,
                  "torch_threads": args.threads, "device": args.device, "cpu_count": os.cpu_count(),
                  "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                  "python": platform.python_version()},
        "settings": settings,
        "targets": {"ratio_at_least": 10, "batched_steps_per_s_at_least": 30_000},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
