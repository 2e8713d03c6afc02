"""Every method on the KuaiRec-like synthetic world, 3 seeds each, NX_0 in the ground-truth env.

Pipeline (all through the public APIs, inside this run):

1. `generate_world("kuairec", 0)`: 1,411 users x 3,327 items, 31 categories, full ground truth.
2. The DeepFM ensemble (`recsim.user_model.train.train_ensemble`; published settings: 5 members,
   5 epochs) -> the user-model reward table (max-variance uncertainty: MBPO / MOPO / DORL and the
   static scorers), its disagreement table ("ours") and its item embeddings (trackers).
3. The same ensemble trained with IPS weights (the "ips" method's simulator).
4. ROLeR's kNN table (`recsim.reward.knn.build_knn_reward_table`, the dataset's defaults).
5. Each method of `recsim.policy.methods.METHODS` with `train_method` (the CLI's and the pipeline's path) on the CPU
   budget, seeds 0, 1, 2, evaluated in the ground-truth environment in NX_0 (category quit rule, N = 4,
   threshold 0, 100 episodes from a fixed set of users shared by all methods).

Prints one JSON object: per method the mean and std over seeds of R_tra, length, R_each, MCD and
coverage at the final epoch and of R_tra, length and MCD averaged over the evaluated epochs, the
per-seed values, the wall-clock seconds of each run; the random policy as the
same-run baseline with each method's R_tra ratio to it; and the checks of what the published
table leads one to expect (DORL above MOPO in R_tra with lower MCD, ROLeR at or above DORL,
model-based above the published offline and static baselines), on final and epoch-mean R_tra,
with the unpublished quit-aware greedy compared on its own.

`--workdir DIR` keeps every run's outputs; a later call with the same DIR reuses the finished user
models and runs whose resolved configs match (so an interrupted benchmark resumes, and a new
method adds only its own runs), and reports how many runs it reused.

`--world coat` reads Coat's quit rule from pipelines/coat.yaml (the 10 % quantile of the item
distances); `--coat-distance-quantile Q` takes another quantile, `--coat-threshold 10` the public
code's distance (docs/protocol.md, "The quit rules").

`--quick`: 400 users, a 2-member 1-epoch user model, 2 epochs of 10,000 steps per model-based
run and 2 epochs of 300 gradient steps per offline run (3 seeds still).
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

REPO = Path(__file__).resolve().parents[1]

METRICS = ("R_tra", "length", "R_each", "MCD", "coverage")
UNPUBLISHED = ("quit_aware",)
"""Baselines outside the published table, compared separately (quit_aware knows the quit rule)."""
EPOCH_METRICS = ("R_tra", "length", "MCD")
"""Also averaged over every epoch's ground-truth evaluation of a run (the published tables average
over epochs; a run's final epoch alone can catch an A2C policy mid-collapse)."""


QUICKSTART_USER_MODEL = {"members": 2, "epochs": 1, "lr": 0.003, "batch_size": 4096, "negative_rounds": 1,
                         "patience": 1}
COAT_USER_MODEL = {"members": 5, "epochs": 5, "batch_size": 4096, "lr": 0.001,
                   "model": {"embedding_dim": 8, "dnn_hidden_units": [128, 128], "l2_reg_dnn": 0.1}}


def _settings(setting: str, world: str) -> dict:
    """World overrides, user model, and the model-based / offline budgets of a `--setting`.

    full: the published user model (5 members, 5 epochs) and the CPU budgets; quick: 400 users,
    2 x 10,000 model-based steps, 2 x 300 offline steps; quickstart: pipelines/quickstart.yaml's
    user model and budgets (on Coat: pipelines/coat.yaml's user model with the quickstart's budgets);
    long: the issue's benchmark budget, 10 x 200,000 steps per model-based run (2 M) with the
    learning rate decaying to 0 (`lr_decay`, as the published-budget specs), the full user model
    (Coat: pipelines/coat.yaml's), the offline methods' CPU budgets.
    """
    if setting == "quick":
        return dict(world={"n_users": 400}, user_model=dict(members=2, epochs=1),
                    model_based=dict(epochs=2, epoch_num_steps=10_000), offline=dict(epochs=2, epoch_num_steps=300))
    if setting == "long":
        return dict(world={}, user_model=dict(members=5, epochs=5) if world == "synthetic" else COAT_USER_MODEL,
                    model_based=dict(epochs=10, epoch_num_steps=200_000, num_envs=100, episodes_per_collect=100,
                                     batch_size=1024, lr_decay=True),
                    offline={})
    if setting == "quickstart":
        return dict(world={}, user_model=QUICKSTART_USER_MODEL if world == "synthetic" else COAT_USER_MODEL,
                    model_based=_quickstart_budget("mbpo"), offline=_quickstart_budget("bcq"))
    return dict(world={}, user_model=dict(members=5, epochs=5), model_based={}, offline={})


def coat_quit() -> dict:
    """The quit section of pipelines/coat.yaml."""
    from recsim.pipeline.spec import read_spec_data

    return read_spec_data(REPO / "pipelines" / "coat.yaml")["quit"]


def coat_quit_overrides(quantile: float | None, threshold: float | None) -> dict:
    """Coat's quit rule with the threshold as a quantile of the item distances, or as a distance."""
    if threshold is not None:
        return {"leave_threshold": threshold, "distance_quantile": None}
    return {} if quantile is None else {"distance_quantile": quantile}


def _quickstart_budget(method: str) -> dict:
    """`method`'s budget in pipelines/quickstart.yaml (its params less the evaluation's episodes)."""
    from recsim.pipeline.spec import read_spec_data

    entry = next(m for m in read_spec_data(REPO / "pipelines" / "quickstart.yaml")["methods"] if m["name"] == method)
    return {key: value for key, value in entry["params"].items() if key != "eval_episodes"}


def _world(name: str, overrides: dict, coat_dir: Path, quit_overrides: dict | None = None):
    """(dataset, quit rule, tracker params of the learned methods): the synthetic world, or Coat as
    pipelines/coat.yaml has it (completed truth, its distance rule, the attention tracker), its quit
    section updated with `quit_overrides`."""
    from recsim.env import QuitRuleConfig

    if name == "synthetic":
        from recsim.data.synthetic import generate_world

        return generate_world("kuairec", 0, **overrides), QuitRuleConfig(), {}
    from recsim.data.completion import with_completed_truth
    from recsim.data.store import load_dataset

    world = with_completed_truth(load_dataset("coat", coat_dir, cache_dir=Path(tempfile.gettempdir()) /
                                              "recsim-bench-coat"))
    quit = {**coat_quit(), **(quit_overrides or {})}
    return (world, QuitRuleConfig(**quit),
            {"tracker": {"kind": "attention", "window": 3}})


def _user_model(world, settings: dict, out: Path, ips: bool, seed: int):
    """Train the ensemble into `out`, or load it when a finished one is there (same settings)."""
    from recsim.config import build_dataclass
    from recsim.io import read_json
    from recsim.user_model.predict import load_ensemble
    from recsim.user_model.train import TrainConfig, train_ensemble

    config = build_dataclass(TrainConfig, {"ips": ips, "seed": seed, **settings}, "user_model", "")
    if (out / "training.json").is_file() and read_json(out / "config.json")["train"] == _as_json(
            config.resolved(world.name)):
        return load_ensemble(out)
    return train_ensemble(world, config, out, progress=False)


def _as_json(value):
    import dataclasses

    return json.loads(json.dumps(dataclasses.asdict(value)))


def _finished_run(out: Path, config) -> dict | None:
    """The results of a finished run in `out` with the same resolved run config, else None."""
    from recsim.io import read_json

    results, saved = out / "results.json", out / "config.json"
    if not (results.is_file() and saved.is_file()):
        return None
    if read_json(saved).get("method") != _as_json(config):
        return None
    return read_json(results)


def _epochs_mean(run_dir: Path, final: dict) -> dict:
    """Per metric of EPOCH_METRICS, its mean over the run's evaluated epochs (static: the final value)."""
    path = run_dir / "history.json"
    history = json.loads(path.read_text()) if path.is_file() else []
    rows = [h for h in history if "R_tra" in h]
    return {f"{k}_epochs_mean": float(np.mean([h[k] for h in rows])) if rows else float(final[k])
            for k in EPOCH_METRICS}


def _summary(values: list[dict]) -> dict:
    out = {}
    for name in values[0]:
        column = np.array([v[name] for v in values], dtype=np.float64)
        out[name] = {"mean": float(column.mean()), "std": float(column.std(ddof=1)) if len(column) > 1 else 0.0}
    return out


def run(setting: str, seeds: list[int], methods: list[str], workdir: Path, threads: int, world_name: str = "synthetic",
        modes: tuple[str, ...] = (), coat_dir: Path | None = None, quit_overrides: dict | None = None) -> dict:
    import torch

    from recsim.evaluation.online import EvalConfig
    from recsim.policy.methods import METHODS
    from recsim.policy.storage import load_policy
    from recsim.policy.train import MethodInputs, evaluator_for, method_config, train_method
    from recsim.reward.knn import build_knn_reward_table, default_config

    torch.set_num_threads(threads)
    settings = _settings(setting, world_name)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    world, quit_config, learned_params = _world(world_name, settings["world"], coat_dir or Path("."), quit_overrides)
    timings["world"] = time.perf_counter() - start

    needs = {METHODS[m].reward for m in methods} | {"user_model"}
    tables: dict[str, object] = {}
    start = time.perf_counter()
    ensemble = _user_model(world, settings["user_model"], workdir / "user_model", ips=False, seed=0)
    users, items = world.truth_users, world.truth_items
    tables["user_model"] = ensemble.reward_table(users, items, "max_variance")
    disagreement = ensemble.reward_table(users, items, "disagreement")
    item_embeddings = ensemble.embeddings()[1]
    timings["user_model"] = time.perf_counter() - start
    if "user_model_ips" in needs:
        start = time.perf_counter()
        ips = _user_model(world, settings["user_model"], workdir / "user_model_ips", ips=True, seed=0)
        tables["user_model_ips"] = ips.reward_table(users, items, "max_variance")
        timings["user_model_ips"] = time.perf_counter() - start
    if "knn" in needs:
        start = time.perf_counter()
        tables["user_model"].save(workdir / "user_model_table")  # the "predicted" indicator reads it (Coat)
        tables["knn"] = build_knn_reward_table(world, default_config(world.name),
                                               user_model_dir=workdir / "user_model_table")
        timings["knn"] = time.perf_counter() - start

    results: dict[str, dict] = {}
    reused = 0
    for name in methods:
        preset = METHODS[name]
        family_overrides = settings["model_based"] if preset.family == "model_based" else (
            settings["offline"] if preset.family == "offline" else {})
        if preset.family != "static":
            family_overrides = {**family_overrides, **learned_params}
        per_seed, walls = [], []
        for seed in seeds:
            inputs = MethodInputs(world, tables.get(preset.reward), disagreement, item_embeddings)
            config = method_config(name, world.name, params=family_overrides, quit=quit_config,
                                   evaluation=EvalConfig(), seed=seed, progress=False)
            run_dir = workdir / name / str(seed)
            finished = _finished_run(run_dir, config)
            if finished is None:
                outcome = train_method(config, inputs, run_dir)
                metrics, wall, policy = outcome.metrics, outcome.wall_seconds, outcome.policy
            else:
                metrics, wall = finished["metrics"], finished["wall_seconds"]
                policy = load_policy(run_dir, inputs) if modes else None
                reused += 1
            row = {**{k: metrics[k] for k in METRICS}, **_epochs_mean(run_dir, metrics)}
            evaluator = evaluator_for(config, world)
            for mode in modes:
                other = evaluator.in_mode(mode).evaluate(policy, seed)
                row.update({f"{mode}_{k}": other[k] for k in ("R_tra", "length")})
            per_seed.append(row)
            walls.append(wall)
            print(f"{name} seed {seed}: R_tra {metrics['R_tra']:.3f} length {metrics['length']:.2f} "
                  f"MCD {metrics['MCD']:.3f} ({wall:.1f} s{', reused' if finished else ''})", file=sys.stderr,
                  flush=True)
        results[name] = {"family": preset.family, **_summary(per_seed), "per_seed": per_seed,
                         "wall_seconds": walls, "wall_seconds_mean": float(np.mean(walls))}

    baseline = results.get("random")
    if baseline is not None:
        for row in results.values():
            row["R_tra_ratio_to_random"] = row["R_tra"]["mean"] / baseline["R_tra"]["mean"]

    def mean(name: str, metric: str) -> float | None:
        return results[name][metric]["mean"] if name in results else None

    checks = {}
    for metric in ("R_tra", "R_tra_epochs_mean"):
        suffix = "" if metric == "R_tra" else "_over_epochs"
        if {"dorl", "mopo"} <= set(results):
            checks[f"dorl_R_tra_above_mopo{suffix}"] = mean("dorl", metric) > mean("mopo", metric)
        if {"dorl", "roler"} <= set(results):
            checks[f"roler_R_tra_at_or_above_dorl{suffix}"] = mean("roler", metric) >= mean("dorl", metric)
        model_based = [n for n in results if results[n]["family"] == "model_based"]
        published = [n for n in results if results[n]["family"] != "model_based" and n not in UNPUBLISHED]
        if model_based and published:
            best = max(mean(n, metric) for n in model_based)
            checks[f"best_model_based_above_best_offline_and_static{suffix}"] = best > max(
                mean(n, metric) for n in published)
            checks[f"every_model_based_above_every_offline_and_static{suffix}"] = min(
                mean(n, metric) for n in model_based) > max(mean(n, metric) for n in published)
            for name in UNPUBLISHED:
                if name in results:
                    checks[f"best_model_based_above_{name}{suffix}"] = best > mean(name, metric)
    if {"dorl", "mopo"} <= set(results):
        checks["dorl_MCD_below_mopo"] = mean("dorl", "MCD") < mean("mopo", "MCD")
    return {
        "benchmark": "policies",
        "setting": setting,
        "world": {"name": world_name, "n_users": world.n_users, "n_items": world.n_items,
                  "n_train_rows": int(len(world.train))},
        "evaluation": f"ground truth, NX_0 (and {list(modes)}), quit rule {dataclasses.asdict(quit_config)}, "
                      "100 episodes, max 30 steps",
        "seeds": seeds,
        "settings": settings,
        "torch_threads": threads,
        "preparation_seconds": timings,
        "runs_reused_from_workdir": reused,
        "baseline": "random",
        "methods": results,
        "expectations": checks,
    }


def main() -> None:
    from recsim.policy.methods import METHODS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes and budgets (--setting quick)")
    parser.add_argument("--setting", choices=("full", "quick", "quickstart", "long"), default="full")
    parser.add_argument("--world", choices=("synthetic", "coat"), default="synthetic")
    parser.add_argument("--coat", type=Path, default=REPO.parent / "shared" / "data" /
                        "coat", help="Coat's raw folder (--world coat)")
    parser.add_argument("--coat-distance-quantile", type=float, default=None,
                        help="Coat's quit threshold as this quantile of the item distances (the spec's: 0.1)")
    parser.add_argument("--coat-threshold", type=float, default=None,
                        help="Coat's quit threshold as a distance (the public code's: 10)")
    parser.add_argument("--modes", default="", help="comma-separated extra evaluation modes of the final policy (FB)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the runs' outputs here")
    args = parser.parse_args()
    methods = list(dict.fromkeys(["random", *args.methods]))
    setting = "quick" if args.quick else args.setting
    modes = tuple(m for m in args.modes.split(",") if m)
    with tempfile.TemporaryDirectory(prefix="recsim-bench-policies-") as tmp:
        workdir = args.workdir or Path(tmp)
        result = run(setting, list(range(args.seeds)), methods, workdir, args.threads, args.world, modes, args.coat,
                     coat_quit_overrides(args.coat_distance_quantile, args.coat_threshold))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
