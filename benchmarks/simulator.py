"""Simulator throughput: the batched environment against tianshou's DummyVectorEnv of single envs.

KuaiRec scale (1,411 users x 3,327 items, 31 categories), FB mode, 30-step episodes, the
category quit rule (threshold 0, N = 4), uniformly random actions, reward breakdown computed by
both. Same work in the same run:

- baseline: `tianshou.env.DummyVectorEnv` over 100 `RecEnv` (the published set-up), stepped and
  reset (finished envs only) in a loop;
- batched: one `BatchedRecEnv` over `--batch` users, stepped and reset the same way;
- the same two behind a real `tianshou.data.Collector` with tianshou's `RandomActionPolicy`
  (the batched one through `TianshouVectorEnv`);
- the batched loop again with DORL's penalised reward (uncertainty + k-order entropy lookups).

The reward table and categories are seeded random arrays of the right shapes (the speed does not
depend on the values). Prints one JSON object; `--quick` uses a smaller batch and shorter runs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recsim.env import BatchedRecEnv, CategoryOverlapQuit, EnvConfig, RecEnv, TianshouVectorEnv
from recsim.reward.entropy import EntropyTable
from recsim.reward.penalty import PenalisedReward, preset
from recsim.reward.table import RewardTable

N_USERS, N_ITEMS, N_CATEGORIES = 1411, 3327, 31


def build_world(seed: int = 0) -> tuple[RewardTable, np.ndarray, EntropyTable]:
    rng = np.random.default_rng(seed)
    mean = rng.gamma(2.0, 0.5, (N_USERS, N_ITEMS)).astype(np.float32)
    unc = rng.random((N_USERS, N_ITEMS), dtype=np.float32)
    table = RewardTable(mean, unc, np.arange(N_USERS), np.arange(N_ITEMS))
    cats = np.zeros((N_ITEMS, N_CATEGORIES), dtype=bool)
    cats[np.arange(N_ITEMS), rng.integers(0, N_CATEGORIES, N_ITEMS)] = True
    cats[np.arange(N_ITEMS), rng.integers(0, N_CATEGORIES, N_ITEMS)] |= rng.random(N_ITEMS) < 0.3
    n_rows = 1_000_000
    log = pd.DataFrame({"user": rng.integers(0, 7176, n_rows), "item": rng.integers(0, N_ITEMS, n_rows),
                        "timestamp": rng.integers(0, 10**9, n_rows)})
    return table, cats, EntropyTable.from_log(log, N_ITEMS)


def run_native(env, seconds: float, seed: int = 0) -> dict:
    """Step `env` (BatchedRecEnv or DummyVectorEnv) with random actions, resetting finished envs."""
    rng = np.random.default_rng(seed)
    n = len(env)
    env.reset()
    steps = episodes = 0
    start = time.perf_counter()
    while True:
        actions = rng.integers(0, N_ITEMS, n)
        _, _, terminated, truncated, _ = env.step(actions)
        steps += n
        done = np.flatnonzero(terminated | truncated)
        if len(done):
            episodes += len(done)
            env.reset(done)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    return {"steps": steps, "seconds": round(elapsed, 3), "steps_per_s": round(steps / elapsed),
            "mean_episode_length": round(steps / max(episodes, 1), 2)}


def run_collector(venv, n_steps: int) -> dict:
    from tianshou.algorithm.algorithm_base import RandomActionPolicy
    from tianshou.data import Collector, VectorReplayBuffer

    policy = RandomActionPolicy(venv.action_space[0])
    buffer = VectorReplayBuffer(max(n_steps, 20 * len(venv)) + len(venv), len(venv))
    collector = Collector(policy, venv, buffer, raise_on_nan_in_buffer=False)
    collector.reset()
    collector.collect(n_step=len(venv))  # warm-up (first calls compile numba kernels)
    start = time.perf_counter()
    stats = collector.collect(n_step=n_steps)
    elapsed = time.perf_counter() - start
    return {"steps": int(stats.n_collected_steps), "seconds": round(elapsed, 3),
            "steps_per_s": round(stats.n_collected_steps / elapsed),
            "episodes": int(stats.n_collected_episodes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batch, shorter runs")
    parser.add_argument("--batch", type=int, default=None, help="parallel users of the batched env")
    parser.add_argument("--seconds", type=float, default=None, help="duration of each native run")
    args = parser.parse_args()
    batch = args.batch or (4_000 if args.quick else 20_000)
    seconds = args.seconds or (1.0 if args.quick else 4.0)
    warnings.filterwarnings("ignore")

    table, cats, entropy = build_world()
    quit_rule = CategoryOverlapQuit(cats, leave_threshold=0, window=4)
    config = EnvConfig(mode="FB", max_turn=30, history_window=10)

    from tianshou.env import DummyVectorEnv

    dummy = DummyVectorEnv([lambda i=i: RecEnv(table, quit_rule, config, seed=i) for i in range(100)])
    baseline = run_native(dummy, seconds)
    batched_env = BatchedRecEnv(table, quit_rule, config, num_envs=batch, seed=0)
    batched = run_native(batched_env, seconds)
    dorl = PenalisedReward(table, preset("kuairec", "dorl"), entropy)
    batched_dorl = run_native(BatchedRecEnv(table, quit_rule, config, dorl, num_envs=batch, seed=0), seconds)

    collector_steps = 20_000 if args.quick else 100_000
    collector_batch = 1_000
    coll_baseline = run_collector(dummy, collector_steps // 5)
    coll_batched = run_collector(
        TianshouVectorEnv(BatchedRecEnv(table, quit_rule, config, num_envs=collector_batch, seed=0)),
        collector_steps)

    result = {
        "benchmark": "simulator",
        "quick": args.quick,
        "setup": {"users": N_USERS, "items": N_ITEMS, "categories": N_CATEGORIES, "max_turn": 30,
                  "quit_rule": "category overlap, threshold 0, window 4", "mode": "FB",
                  "actions": "uniform random", "reward": "raw table (breakdown in info)",
                  "cpu_count": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__},
        "baseline_dummy_vector_env_100": baseline,
        "batched_env": {"num_envs": batch, **batched},
        "ratio_batched_vs_dummy": round(batched["steps_per_s"] / baseline["steps_per_s"], 1),
        "batched_env_dorl_reward": {"num_envs": batch, "penalty": "kuairec dorl (0.05, 5.0), entropy orders 1, 2",
                                    "entropy_keys": int(sum(len(k) for k in entropy.keys)), **batched_dorl},
        "collector_baseline_dummy_vector_env_100": coll_baseline,
        "collector_batched_env": {"num_envs": collector_batch, **coll_batched},
        "ratio_collector_batched_vs_dummy": round(coll_batched["steps_per_s"] / coll_baseline["steps_per_s"], 1),
        "targets": {"ratio_at_least": 50, "batched_steps_per_s_at_least": 1_000_000},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
