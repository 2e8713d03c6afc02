"""Why A2C collapses or stalls: a model-based method (default MBPO) under learner variants (prints JSON).

The published learner (A2C, lr 1e-3, ent_coef 0, GAE lambda 1, 100 users per update) trained in
the MBPO simulator ends at random's or greedy's return with short episodes and a handful of items
(`benchmarks/policies.py`, `benchmarks/policy_diagnostics.py`). Each variant below trains the
same policy for the same number of simulator steps (batched collection, `recsim.policy.onpolicy`),
and the ground truth (NX_0; synthetic: category quit rule N = 4, threshold 0) scores it after
every epoch:

- `default`: `AgentConfig`'s defaults (recsim's learner) at the CPU budget's minibatch (1024);
  `default_*` are the defaults with the named change (`raw_returns`: no return scaling,
  `gamma_0.99`, `window_4`, `users`: the user model's user embedding in the state, `lr_decay`:
  the learning rate decays linearly to 0, `ent_*`, `lr_*`, `hidden_256`, `users_*`: users and
  episodes per update, `mb*`: another minibatch, `repeat_*`: passes per batch, `gru_*` /
  `attention_*`: that tracker over 4 steps, `lambda_E_*`: the method's entropy weight; the
  figures below up to the minibatch paragraph were taken at minibatch 64);
- `published`: the "published" learner preset (A2C, lr 1e-3, GAE lambda 1, one pass), minibatch
  64, the average tracker over the last 3 steps; every other variant is the
  published preset with the named changes: `ent_*` (policy-entropy bonus), `users_1000*` (1,000
  users and episodes per update; `_mb1024`: minibatch 1,024), `ppo*` (tianshou PPO: clipped
  ratio, per-minibatch advantage normalisation; `ppo` 4 passes, `ppo1` / `ppo2` one / two),
  `gae_0.95`, `window_4` (the tracker over the quit rule's 4 steps), `lr_*`, `mb*`, `clip_0.5`.

`--world coat` runs pipelines/coat.yaml's settings (completed truth, its user model, its distance
rule: the 10 % quantile of the item distances since 2026-12-02, before that the public threshold 10,
under which the Coat figures in this docstring were measured; the attention tracker over 3 steps);
`--method` picks the method (ROLeR reads the kNN table, every other method the user model's; "ours" is not supported);
`--world-seed` another synthetic world (to choose a setting on a world other than the reported
seed 0).

Measured (MBPO, synthetic, `--seeds 2 --epochs 2 --epoch-steps 10000`, final R_tra of seeds 0 / 1;
random 3.8, greedy 6.5, quit_aware 54): published 4.0 / 4.0 (seed 0 of a 1-seed run), ppo1 4.3 /
4.0, ppo1 + entropy 0.01 3.8 / 3.9, ppo (4 passes) 7.6 (seed 0, 2.4x the time), ppo mb256 4.4 /
3.9, a2c lr 3e-3 5.6 (10 items, 3-step episodes) / 8.4, ppo1 lr 3e-3 11.3 / 8.4, ppo1 lr 1e-2
14.6 / 15.0 (the new default), ppo1 lr 3e-2 13.7 / 11.0, ppo1 lr 1e-2 + entropy 0.01 8.6 / 13.3,
ppo1 lr 1e-2 + window 4 10.5 / 12.6. Coat (`--world coat --only published,default`): published
6.05 +- 0.41, default 9.21 +- 0.51 (random 4.60, greedy 4.59, quit_aware 8.11).

Return scaling (the default since; `--epochs 5 --epoch-steps 40000 --only default,default_raw_returns`,
seeds 0-2, final R_tra mean +- std; quit_aware 50.2): MBPO 25.3 +- 4.5 against 19.9 +- 8.4 raw
(after 120,000 steps 25.6 +- 1.0 against 21.2 +- 2.8), DORL 19.2 +- 0.4 against 17.2 +- 3.5,
gt_oracle 24.0 +- 3.0 against 27.5 +- 4.7 (after 120,000 steps 27.5 +- 4.1 against 24.2 +- 3.1).
Seed 0 with scaling: gamma 0.99 21.3, window 4 27.8, users 22.8 after 120,000 steps (26.2
without). Coat (`--world coat --epochs 4 --epoch-steps 25000`, seeds 0-2): 8.64 +- 0.21 against
8.16 +- 1.49 raw.
Minibatch (`--epochs 4 --epoch-steps 25000`, seeds 0-2, final R_tra mean +- std; quit_aware 50.2,
greedy 6.3, random 3.7): 64 18.9 +- 2.8, 256 24.1 +- 1.9, 1024 26.9 +- 0.8 (the default since),
4096 25.4 +- 1.1; Coat 64 8.53 +- 0.26, 1024 9.09 +- 0.27 (`AgentConfig` has the rest).
Long runs (`--epochs 10 --epoch-steps 200000 --seeds 1`, final R_tra): gt_oracle 18.9 at a
constant rate (33.6 after 400,000 steps), 34.9 with `default_lr_decay`; MBPO 29.3 and 27.2.
At 1024 (`--epochs 4 --epoch-steps 25000` and `--epochs 8`, seeds 0-2): `AgentConfig` lists the
variants tried and not taken (repeat, trackers, users per update, decay).
DORL's entropy weight on world seed 1 (`--world-seed 1 --method dorl --only
default_lambda_E_0.1,...`, 4 x 25,000 steps, seeds 0-2, final R_tra / MCD; 5 ran as `default`,
before the choice): MOPO 27.34 +- 1.22 / 0.380; DORL lambda_E 0.1
25.74 +- 2.29 / 0.331, 0.3 23.46 +- 1.94 / 0.264, 1 18.14 +- 0.55 / 0.218, 2 16.19 +- 0.35 /
0.149, 5 16.43 +- 1.51 / 0.201 (the choice: `recsim.reward.penalty.CHOSEN`); ROLeR 0.1
26.36 +- 2.46, 0.3 25.16 +- 2.02, 1 19.88 +- 2.22, 5 16.79 +- 0.33; MBPO 25.62 +- 0.98.

The step count in the state (`default_turn`; an option, off: `AgentConfig` has the rule and the
Coat check) and the variants measured beside it, world seed 1, MBPO, 4 x 25,000 steps, seeds 0-2,
final R_tra against the default's 25.62 +- 0.98: turn 27.58 +-
1.65, no advantage normalisation 27.16 +- 2.01, both 28.67 +- 1.46; deterministic evaluation
26.05 +- 1.22 (30-step episodes; +0.2 to +0.7 per seed); lr 3e-3 with 4 passes 25.15 +- 1.28
(2.2x the time), lr 1e-3 with 4 passes 22.56 +- 1.67, lr 3e-3 with 4 passes and 400 users per
update 12.61 +- 0.78; entropy 0.01 25.08 +- 0.33, 0.003 26.88 +- 1.71; a policy over primary
categories, then items in the category (p(item) = p(c | s) p(item | c, s); a prototype, not kept)
18.16 +- 0.65 (seeds 0-1). World seed 2: default 25.08 +- 4.08, turn 27.75 +- 1.78, no
normalisation 26.81 +- 2.39, both 27.21 +- 1.05. gt_oracle, world seed 1: 33.11 +- 1.24, turn
33.49 +- 1.89, no normalisation 34.99 +- 1.04, both 35.61 +- 1.82. `default_tied_turn` (item
logits from the tracker's embeddings, with the step count): `AgentConfig` has its figures and
its collapse rate (`--epochs 1 --seeds 12 --first-seed 10`). `default_tied` (without the step
count) and `default_tied_ent_0.01` / `_0.003` (with a policy-entropy term), worlds 1 / 2,
4 x 25,000 steps, seeds 0-2, final R_tra against the default's in the same run (MBPO 25.45 /
25.00, gt_oracle 32.78 / 33.70, MOPO 26.08 / 25.85, DORL 23.69 / 25.24, ROLeR 29.99 / 26.94):
`default_tied` MBPO 30.13 / 30.94, gt_oracle 37.70 / 33.66, MOPO 29.30 / 28.54, DORL 27.68 /
30.02, ROLeR 30.11 / 31.40; `default_tied_ent_0.01` MBPO 27.58 / 30.00, gt_oracle 35.10 /
34.44, MOPO 30.12 / 30.05, DORL 28.43 / 28.59, ROLeR 30.67 / 30.11. ROLeR, world 1, seeds
10-21, collapses (coverage <= 0.002) after one epoch / after four: default 1 of 12 / 0 of 12
(28.70 +- 2.18), `default_tied` 8 / 4 of 12, `default_tied_ent_0.003` 4 of 12 after one,
`default_tied_ent_0.01` 3 / 0 of 12 (30.67 +- 1.76). Neither is confirmed by Coat's full table
or holds on the reported world (`AgentConfig`).

Per run: the final epoch's R_tra, length, coverage, MCD and the mean over all evaluated epochs
(the published aggregation); `static` gives greedy, quit_aware and random on the same users.
`mean_user_sequence` asks whether the learner stopped at a local optimum: the first evaluation
episode's item sequence, scored for the ground truth's mean user (its mean reward per item) under
the world's quit rule, before and after single-item swap ascent (`swap_ascent`); quit_aware's own
sequence is in `static`. Measured on the reported world (the quickstart's user model, 4 x 25,000
steps, the default, seeds 0-2): gt_oracle's sequences 37.3 / 33.4 / 35.9 reach 50.8 /
53.9 / 52.6 by swaps, MBPO's 27.2 / 28.7 / 29.9 reach 49.8 / 51.9 / 51.1, quit_aware's own 49.7
reaches 55.0. The learned sequences stop far from any local optimum: single-item changes the
policy no longer samples would close the gap to quit_aware.

Whether a long budget closes that gap (`--world-seed 1 --method gt_oracle --epochs 10
--epoch-steps 200000 --seeds 2`, final R_tra / epoch mean; quit_aware 55.0 on world 1, greedy
6.5, random 3.6): `default` 44.37 +- 0.92 / 43.59, `default_lr_decay` 44.18 +- 2.50 / 42.92,
`default_ent_0.003_lr_decay` 45.07 +- 1.86 / 44.16, `default_ent_0.01_lr_decay` 42.15 +- 2.55 /
41.42. The default's R_tra by epoch, seed 0: 41.4, 42.9, 44.1, 44.0, 43.7, 44.1, 44.0, 44.9,
45.1, 45.0: the policy reaches its plateau within the first 200,000 steps and then shows one
30-item sequence to every user (coverage 0.009), about 0.8 x quit_aware, while single-item swaps
take that sequence from 45.0 to 57.8, above quit_aware's 55.1. A policy-entropy term does not
move the plateau, nor do the step count (`default_turn`: 43.06 / 45.55) or the tied head with
an entropy term (`default_tied_ent_0.01`: 42.09 / 39.46). Coat (`--world coat --only
default,default_turn --epochs 4 --epoch-steps 75000`, seeds 0-2; the step count re-checked in
the 10 % quantile world): `AgentConfig`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from recsim.policy.methods import BUDGETS

METRICS = ("R_tra", "length", "coverage", "MCD")
USER_MODEL = {"members": 2, "epochs": 1, "lr": 0.003, "batch_size": 4096, "negative_rounds": 1, "patience": 1}
COAT_USER_MODEL = {"members": 5, "epochs": 5, "batch_size": 4096, "lr": 0.001,
                   "model": {"embedding_dim": 8, "dnn_hidden_units": [128, 128], "l2_reg_dnn": 0.1}}


def variants() -> dict[str, tuple[dict, dict]]:
    """name -> (AgentConfig overrides, Budget overrides); `default*` at the CPU budget's minibatch."""
    many = {"num_envs": 1000, "episodes_per_collect": 1000}
    ppo_gae = {"algorithm": "ppo", "repeat": 4, "gae_lambda": 0.95}
    cpu = {"batch_size": BUDGETS["cpu"]["model_based"].batch_size}
    recsim = {
        "default": ({}, {}),
        "default_raw_returns": ({"return_scaling": False}, {}),
        "default_gamma_0.99": ({"gamma": 0.99}, {}),
        "default_gamma_0.85": ({"gamma": 0.85}, {}),
        "default_gamma_0.8": ({"gamma": 0.8}, {}),
        "default_gamma_0.7": ({"gamma": 0.7}, {}),
        "default_gamma_0.6": ({"gamma": 0.6}, {}),
        "default_gamma_0.5": ({"gamma": 0.5}, {}),
        "default_gamma_0.95": ({"gamma": 0.95}, {}),
        "default_window_4": ({"tracker": {"window": 4}}, {}),
        "default_users": ({"tracker": {"users": True}}, {}),
        "default_turn": ({"turn": True}, {}),
        "default_tied_turn": ({"tied_embeddings": True, "turn": True}, {}),
        "default_tied": ({"tied_embeddings": True}, {}),
        "default_tied_ent_0.01": ({"tied_embeddings": True, "ent_coef": 0.01}, {}),
        "default_tied_ent_0.003": ({"tied_embeddings": True, "ent_coef": 0.003}, {}),
        "default_no_adv_norm": ({"advantage_normalization": False}, {}),
        "default_no_adv_norm_turn": ({"advantage_normalization": False, "turn": True}, {}),
        "default_lr_decay": ({"lr_decay": True}, {}),
        "default_lr_3e-2_decay": ({"lr": 3e-2, "lr_decay": True}, {}),
        "default_ent_0.01": ({"ent_coef": 0.01}, {}),
        "default_ent_0.001": ({"ent_coef": 0.001}, {}),
        "default_ent_0.003": ({"ent_coef": 0.003}, {}),
        "default_ent_0.003_lr_decay": ({"ent_coef": 0.003, "lr_decay": True}, {}),
        "default_ent_0.01_lr_decay": ({"ent_coef": 0.01, "lr_decay": True}, {}),
        "default_lr_3e-2": ({"lr": 3e-2}, {}),
        "default_lr_3e-3": ({"lr": 3e-3}, {}),
        "default_hidden_256": ({"hidden_sizes": (256, 256)}, {}),
        "default_users_1000": ({}, many),
        "default_users_25": ({}, {"num_envs": 25, "episodes_per_collect": 25}),
        "default_users_50": ({}, {"num_envs": 50, "episodes_per_collect": 50}),
        "default_mb64": ({}, {"batch_size": 64}),
        "default_mb256": ({}, {"batch_size": 256}),
        "default_mb4096": ({}, {"batch_size": 4096}),
        "default_repeat_2": ({"repeat": 2}, {}),
        "default_repeat_4": ({"repeat": 4}, {}),
        "default_gru_4": ({"tracker": {"kind": "gru", "window": 4}}, {}),
        "default_attention_4": ({"tracker": {"kind": "attention", "window": 4}}, {}),
        "default_deterministic_eval": ({"deterministic_eval": True}, {}),
        "default_lr_3e-3_repeat_4": ({"lr": 3e-3, "repeat": 4}, {}),
        "default_lr_1e-3_repeat_4": ({"lr": 1e-3, "repeat": 4}, {}),
        "default_lr_3e-3_repeat_4_users_400": ({"lr": 3e-3, "repeat": 4},
                                               {"num_envs": 400, "episodes_per_collect": 400}),
    }
    recsim.update({name: ({}, {}) for name in PENALTIES})
    return {
        **{name: (agent, {**cpu, **budget}) for name, (agent, budget) in recsim.items()},
        "published": ({}, {}),
        "ent_0.01": ({"ent_coef": 0.01}, {}),
        "ent_0.1": ({"ent_coef": 0.1}, {}),
        "users_1000": ({}, many),
        "users_1000_mb1024": ({}, {**many, "batch_size": 1024}),
        "ppo": ({"algorithm": "ppo", "repeat": 4}, {}),
        "ppo_ent_0.01": ({"algorithm": "ppo", "repeat": 4, "ent_coef": 0.01}, {}),
        "ppo_gae_0.95": ({"algorithm": "ppo", "repeat": 4, "gae_lambda": 0.95}, {}),
        "gae_0.95": ({"gae_lambda": 0.95}, {}),
        "window_4": ({"tracker": {"window": 4}}, {}),
        "ppo_gae_0.95_ent_0.01": ({**ppo_gae, "ent_coef": 0.01}, {}),
        "ppo_gae_0.95_window_4": ({**ppo_gae, "tracker": {"window": 4}}, {}),
        "ppo_gae_0.95_users_1000": (ppo_gae, many),
        "ppo_gae_0.95_clip_0.5": ({**ppo_gae, "max_grad_norm": 0.5}, {}),
        "ppo_gae_0.95_mb256": (ppo_gae, {"batch_size": 256}),
        "ppo1_gae_0.95": ({**ppo_gae, "repeat": 1}, {}),
        "ppo1_gae_0.95_ent_0.01": ({**ppo_gae, "repeat": 1, "ent_coef": 0.01}, {}),
        "ppo2_gae_0.95": ({**ppo_gae, "repeat": 2}, {}),
        "ppo1_gae_0.95_window_4": ({**ppo_gae, "repeat": 1, "tracker": {"window": 4}}, {}),
        "ppo1_gae_0.95_lr_3e-3": ({**ppo_gae, "repeat": 1, "lr": 3e-3}, {}),
        "ppo1_gae_0.95_lr_1e-2": ({**ppo_gae, "repeat": 1, "lr": 1e-2}, {}),
        "ppo_gae_0.95_lr_3e-3": ({**ppo_gae, "lr": 3e-3}, {}),
        "a2c_lr_3e-3": ({"lr": 3e-3}, {}),
        "ppo1_gae_0.95_lr_3e-2": ({**ppo_gae, "repeat": 1, "lr": 3e-2}, {}),
        "ppo1_gae_0.95_lr_1e-2_ent_0.01": ({**ppo_gae, "repeat": 1, "lr": 1e-2, "ent_coef": 0.01}, {}),
        "ppo1_gae_0.95_lr_1e-2_window_4": ({**ppo_gae, "repeat": 1, "lr": 1e-2, "tracker": {"window": 4}}, {}),
    }


PENALTIES = {f"default_lambda_E_{value}": {"lambda_E": value} for value in (0.1, 0.3, 1.0, 2.0, 5.0)}
"""Variants that change the method's penalty weights (DORL's entropy weight), over the default learner;
5.0 is KuaiRec's published value, which the synthetic world used before `recsim.reward.penalty.CHOSEN`."""


def _world(name: str, coat_dir: Path, world_seed: int = 0):
    """(dataset, user-model settings, quit rule, tracker) of the study's world.

    synthetic: the quickstart's world, user model and quit rule (category, N = 4, threshold 0),
    the published tracker. coat: pipelines/coat.yaml (completed truth, its user model, its
    distance rule, the attention tracker over 3 steps).
    """
    from recsim.env import QuitRuleConfig

    if name == "synthetic":
        from recsim.data.synthetic import generate_world

        return generate_world("kuairec", world_seed), USER_MODEL, QuitRuleConfig(), {}
    from recsim.data.completion import with_completed_truth
    from recsim.data.store import load_dataset

    world = with_completed_truth(load_dataset("coat", coat_dir, cache_dir=Path(tempfile.gettempdir()) /
                                              "recsim-bench-coat"))
    from recsim.pipeline.spec import read_spec_data

    quit = read_spec_data(Path(__file__).resolve().parents[1] / "pipelines" / "coat.yaml")["quit"]
    return (world, COAT_USER_MODEL, QuitRuleConfig(**quit),
            {"tracker": {"kind": "attention", "window": 3}})


def _user_model(world, settings: dict, out: Path):
    """The world's user model, trained into `out` or loaded from a finished one there."""
    from recsim.user_model.predict import load_ensemble
    from recsim.user_model.train import TrainConfig, train_ensemble

    if (out / "training.json").is_file():
        return load_ensemble(out)
    return train_ensemble(world, build_dataclass_config(TrainConfig, {"seed": 0, **settings}), out, progress=False)


def _method_table(method: str, world, table, workdir: Path):
    """The simulator's reward table of `method`: the user model's, or ROLeR's kNN table (the
    dataset's kNN defaults; the indicator of a non-KuaiRec dataset reads the user model's table)."""
    from recsim.policy.methods import get_method
    from recsim.reward.knn import build_knn_reward_table, default_config

    if get_method(method).reward != "knn":
        return table
    table.save(workdir / "user_model_table")
    return build_knn_reward_table(world, default_config(world.name), user_model_dir=workdir / "user_model_table")


def sequence_returns(sequences_CT: np.ndarray, reward_A: np.ndarray, quit_rule) -> np.ndarray:
    """float64 (C,): return of each fixed item sequence for a user whose reward of item a is
    `reward_A[a]`, under `quit_rule` (the quitting step earns its reward, as in the environment)."""
    n, horizon = sequences_CT.shape
    window = max(int(quit_rule.window), 1)
    recent = np.full((n, window), -1, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    total = np.zeros(n)
    for t in range(horizon):
        action = sequences_CT[:, t]
        total += np.where(alive, reward_A[action], 0.0)
        alive &= ~quit_rule.should_quit(recent, action)
        recent = np.concatenate([recent[:, 1:], action[:, None]], axis=1)
    return total


def swap_ascent(sequence: np.ndarray, reward_A: np.ndarray, quit_rule, rounds: int = 5) -> tuple[float, float]:
    """(return of `sequence`, return after single-item swap ascent), for the mean user `reward_A`.

    Ascent: position by position, replace the item by the one not yet in the sequence that
    raises the return most; repeat until a round changes nothing. How far a local search
    gets from the learned sequence, i.e. whether the learner stopped at a local optimum.
    """
    seq = np.asarray(sequence, dtype=np.int64).copy()
    start = best = float(sequence_returns(seq[None], reward_A, quit_rule)[0])
    items = np.arange(len(reward_A))
    for _ in range(rounds):
        changed = False
        for t in range(len(seq)):
            candidates = items[~np.isin(items, seq)]
            trial = np.repeat(seq[None], len(candidates), axis=0)
            trial[:, t] = candidates
            values = sequence_returns(trial, reward_A, quit_rule)
            if values.max() > best + 1e-9:
                best, seq[t], changed = float(values.max()), candidates[values.argmax()], True
        if not changed:
            break
    return start, best


def build_dataclass_config(cls, settings: dict):
    from recsim.config import build_dataclass

    return build_dataclass(cls, settings, "user_model", "")


def _run(name: str, agent_overrides: dict, budget_overrides: dict, seed: int, study: dict, out: Path) -> dict:
    """One training run of `study["method"]` under a variant; its metrics per epoch and final."""
    from recsim.policy.train import method_config, train_method

    learner = "default" if name.startswith("default") else "published"
    params = {**dataclasses.asdict(dataclasses.replace(study["budget"], **budget_overrides)), "learner": learner,
              **study["agent"], **agent_overrides}
    config = method_config(study["method"], study["world"].name, params=params, penalty=PENALTIES.get(name),
                           evaluation=study["evaluation"], quit=study["quit"], seed=seed, progress=False)
    result = train_method(config, study["inputs"], out / name / str(seed))
    evaluated = [h for h in result.history if "R_tra" in h]
    row = {"seed": seed, "seconds": round(result.wall_seconds, 1), "env_steps": result.history[-1]["env_step"]}
    row.update({f"final_{k}": round(float(result.metrics[k]), 4) for k in METRICS})
    row["epoch_mean_R_tra"] = round(float(np.mean([h["R_tra"] for h in evaluated])), 4)
    row["train_return_by_epoch"] = [round(float(h["train_return"]), 3) for h in result.history]
    row["R_tra_by_epoch"] = [round(float(h["R_tra"]), 3) for h in evaluated]
    evaluator = study["evaluator"]
    log = evaluator.rollout(result.policy)
    first = log.items[0][log.items[0] >= 0]
    learned, ascent = swap_ascent(first, evaluator.table.mean.mean(axis=0), evaluator.quit_rule)
    row["mean_user_sequence"] = {"learned": round(learned, 3), "after_swap_ascent": round(ascent, 3),
                                 "length": int(len(first))}
    print(f"{study['method']} {name} seed {seed}: R_tra {row['final_R_tra']:.2f} length {row['final_length']:.1f} "
          f"coverage {row['final_coverage']:.3f} mean-user sequence {learned:.2f} -> {ascent:.2f} by swaps "
          f"({row['seconds']} s)", file=sys.stderr, flush=True)
    return row


def _aggregate(rows: list[dict]) -> dict:
    out = {}
    for key in [f"final_{k}" for k in METRICS] + ["epoch_mean_R_tra"]:
        values = np.array([r[key] for r in rows], dtype=np.float64)
        out[key] = {"mean": round(float(values.mean()), 4), "std": round(float(values.std(ddof=1)), 4)
                    if len(values) > 1 else 0.0}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", choices=("synthetic", "coat"), default="synthetic")
    parser.add_argument("--coat", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data" /
                        "coat", help="Coat's raw folder (--world coat)")
    parser.add_argument("--method", default="mbpo", help="a model-based method (mbpo, mopo, dorl, gt_oracle, ...)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--world-seed", type=int, default=0, help="the synthetic world's seed (0: the reported one)")
    parser.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--epoch-steps", type=int, default=10_000)
    parser.add_argument("--episodes", type=int, default=100, help="ground-truth episodes per evaluation")
    parser.add_argument("--only", default=None, help="comma-separated variant names")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None, help="reuses the user model found there")
    args = parser.parse_args()

    import torch

    from recsim.evaluation.online import EvalConfig, OnlineEvaluator
    from recsim.policy.methods import Budget
    from recsim.policy.static import GreedyRecommender, QuitAwareGreedyRecommender, RandomRecommender
    from recsim.policy.train import MethodInputs

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    world, user_model, quit_config, agent = _world(args.world, args.coat, args.world_seed)
    evaluation = EvalConfig(episodes=args.episodes)
    base = Budget(epochs=args.epochs, epoch_num_steps=args.epoch_steps, num_envs=100, episodes_per_collect=100,
                  batch_size=64, eval_every=1)
    chosen = variants()
    if args.only:
        chosen = {k: chosen[k] for k in args.only.split(",")}
    with tempfile.TemporaryDirectory(prefix="recsim-bench-collapse-") as tmp:
        workdir = args.workdir or Path(tmp)
        ensemble = _user_model(world, user_model, workdir / "user_model")
        table = ensemble.reward_table(world.truth_users, world.truth_items, "max_variance")
        evaluator = OnlineEvaluator(world, evaluation, quit=quit_config)
        study = {"method": args.method, "world": world, "budget": base, "agent": agent, "evaluation": evaluation,
                 "evaluator": evaluator,
                 "quit": quit_config, "inputs": MethodInputs(world, _method_table(args.method, world, table, workdir),
                                                             None, *ensemble.embeddings()[::-1])}
        static = {}
        for policy in (GreedyRecommender(table), QuitAwareGreedyRecommender(table, evaluator.quit_rule),
                       RandomRecommender(0)):
            metrics = evaluator.evaluate(policy, 0)
            static[policy.name] = {k: round(float(metrics[k]), 4) for k in METRICS}
        log = evaluator.rollout(QuitAwareGreedyRecommender(table, evaluator.quit_rule))
        static["quit_aware"]["mean_user_sequence"] = round(float(sequence_returns(
            log.items[:1], evaluator.table.mean.mean(axis=0), evaluator.quit_rule)[0]), 3)
        runs = {}
        for name, (agent_overrides, budget_overrides) in chosen.items():
            rows = [_run(name, agent_overrides, budget_overrides, seed, study, workdir / args.method)
                    for seed in range(args.first_seed, args.first_seed + args.seeds)]
            runs[name] = {"settings": {"agent": {k: str(v) for k, v in agent_overrides.items()},
                                       "budget": budget_overrides, "penalty": PENALTIES.get(name)},
                          "summary": _aggregate(rows), "per_seed": rows}
    result = {"benchmark": "a2c_collapse",
              "world": {"name": args.world, "seed": args.world_seed, "users": world.n_users, "items": world.n_items},
              "method": args.method, "budget": dataclasses.asdict(base), "seeds": args.seeds, "user_model": user_model,
              "quit": dataclasses.asdict(quit_config), "agent": agent,
              "evaluation": {"mode": "NX_0", "episodes": args.episodes}, "static": static, "variants": runs,
              "seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
