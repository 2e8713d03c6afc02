"""`recsim policy train|evaluate|list`: train one method, evaluate a saved policy again, list the methods."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from recsim.config import build_dataclass, parse_value
from recsim.data.schema import Dataset
from recsim.env import EnvConfig, QuitRuleConfig
from recsim.errors import ConfigError, DataError
from recsim.evaluation.online import EvalConfig, OnlineEvaluator
from recsim.io import check_finite, load_npz, read_json, to_json, write_json
from recsim.outdir import output_dir, output_file
from recsim.policy.methods import METHODS, describe, get_method
from recsim.policy.runtime import torch_device
from recsim.policy.storage import load_policy, saved_config
from recsim.policy.trackers import TRACKERS, TrackerConfig
from recsim.policy.train import MethodInputs, method_config, train_method
from recsim.reward.table import RewardTable
from recsim.seeds import seed_argument

EMBEDDINGS_FILE = "embeddings.npz"
INPUTS_FILE = "inputs.json"
"""Where `policy train` records its input folders (a static baseline is rebuilt from them)."""
POLICY_KIND = "policy"
EVALUATION_KIND = "policy-evaluation"


def _embeddings(directories: list[Path | None], n_users: int,
                n_items: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The `user` and `item` arrays, float32 (n_users | n_items, dim), of the first `embeddings.npz`
    in `directories` (None, None without one; `user` is None in a file without it)."""
    for directory in directories:
        if directory is not None and (directory / EMBEDDINGS_FILE).is_file():
            path = directory / EMBEDDINGS_FILE
            item = _embedding_array(path, load_npz(path, ("item",))["item"], "item", n_items)
            with np.load(path, allow_pickle=False) as z:
                user = _embedding_array(path, z["user"], "user", n_users) if "user" in z.files else None
            return user, item
    return None, None


def _embedding_array(path: Path, array: np.ndarray, field: str, n_rows: int) -> np.ndarray:
    """`array` as float32 (n_rows, dim), or a DataError naming `path` and `field`."""
    if array.ndim != 2 or array.shape[0] != n_rows or array.dtype.kind not in "fiu":
        raise DataError(str(path), field, f"{array.dtype} of shape {array.shape}, expected ({n_rows}, dim) "
                                          f"numbers: one row per {field} of the world")
    check_finite(path, field, array)
    return array.astype(np.float32)


def _disagreement_table(user_model: Path, reward: RewardTable, device: str) -> RewardTable:
    from recsim.cli.user_model import load_model

    ensemble = load_model(user_model, device)
    return ensemble.reward_table(reward.users, reward.items, uncertainty="disagreement")


def _inputs(method: str, world: Path, reward_dir: Path | None, user_model: Path | None, device: str,
            embeddings: bool = True) -> MethodInputs:
    """The `MethodInputs` of `method` read from the command's folders."""
    spec = get_method(method)
    dataset = Dataset.load(world)
    reward = RewardTable.load(reward_dir, dataset) if reward_dir is not None else None
    if spec.reward not in ("none", "truth") and reward is None:
        raise ConfigError(f"method {spec.name!r} reads a reward table ({spec.reward}); pass --reward DIR")
    uncertainty = None
    if spec.uncertainty == "user_model_disagreement":
        if user_model is None:
            raise ConfigError(f"method {spec.name!r} needs --user-model DIR (ensemble disagreement)")
        assert reward is not None  # the method reads a reward table: a ConfigError above otherwise
        uncertainty = _disagreement_table(user_model, reward, device)
    users, items = (_embeddings([user_model, reward_dir], dataset.n_users, dataset.n_items) if embeddings
                    else (None, None))
    return MethodInputs(dataset, reward, uncertainty, items, users)


def _params(assignments: list[str], option: str = "--param") -> dict[str, object]:
    """`--param key=value` settings (values parsed as YAML scalars, `a.b=v` for nested keys)."""
    params: dict[str, object] = {}
    for text in assignments:
        if "=" not in text:
            raise ConfigError(f"{option} {text!r}: expected key=value")
        key, value = (part.strip() for part in text.split("=", 1))
        node = params
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})  # type: ignore[assignment]
            if not isinstance(node, dict):
                raise ConfigError(f"{option} {key}: {parent!r} is not a mapping")
        node[leaf] = parse_value(value)
    return params


def train(args: argparse.Namespace) -> int:
    with output_dir(args.out, POLICY_KIND, inputs=[args.world, args.reward, args.user_model]) as out:
        return _train(args, out)


def _train(args: argparse.Namespace, out: Path) -> int:
    params = _params(args.param)
    for key, value in (("epochs", args.epochs), ("epoch_num_steps", args.steps), ("num_envs", args.num_envs),
                       ("batch_size", args.batch_size), ("eval_every", args.eval_every),
                       ("train_mode", args.train_mode)):
        if value is not None:
            params[key] = value
    if args.algorithm is not None:
        params["algorithm"] = args.algorithm
    if args.tracker is not None:
        params["tracker"] = {**params.get("tracker", {}), "kind": args.tracker}  # type: ignore[dict-item]
    inputs = _inputs(args.preset, args.world, args.reward, args.user_model, args.device, not args.no_embeddings)
    env = build_dataclass(EnvConfig, _params(args.env, "--env"), "--env", "")
    quit = build_dataclass(QuitRuleConfig, _params(args.quit, "--quit"), "--quit", "")
    config = method_config(args.preset, args.dataset or inputs.dataset.name, params=params, budget_name=args.budget,
                           env=env, quit=quit,
                           evaluation=EvalConfig(episodes=args.eval_episodes, seed=args.eval_seed), seed=args.seed,
                           device=args.device, progress=not args.quiet, where="--param")
    run = train_method(config, inputs, out, resume=args.resume)
    write_json(out / INPUTS_FILE, {k: None if v is None else str(Path(v).resolve()) for k, v in
                                        (("world", args.world), ("reward", args.reward),
                                         ("user_model", args.user_model))})
    for warning in run.warnings:
        print(f"recsim: warning: {run.name}: {warning}", file=sys.stderr)
    if not args.quiet:
        shown = {k: round(v, 4) for k, v in run.metrics.items()}
        print(f"{run.name}: {to_json(shown)} ({run.wall_seconds:.1f} s) -> {args.out}")
    return 0


def _recorded_inputs(run_dir: Path) -> dict[str, Path | None]:
    path = run_dir / INPUTS_FILE
    if not path.is_file():
        return {}
    try:
        saved = read_json(path)
    except ValueError as error:
        raise DataError(str(path), None, f"not valid JSON ({error})") from None
    return {k: Path(v) if isinstance(v, str) else None for k, v in saved.items()} if isinstance(saved, dict) else {}


def evaluate(args: argparse.Namespace) -> int:
    """Roll a saved policy out again in a world's ground truth (mode, episodes, users of choice).

    The evaluation starts from the run's own settings (quit rule, episode limit, history window,
    evaluation users), so `--mode NX_0` with the defaults reproduces the run's final metrics.
    """
    if args.out is None:
        return _evaluate(args, None)
    with output_file(args.out, EVALUATION_KIND, inputs=[args.run, args.world, args.reward]) as out:
        return _evaluate(args, out)


def _evaluate(args: argparse.Namespace, out: Path | None) -> int:
    torch_device(args.device)
    config = saved_config(args.run)
    inputs = None
    if config.family == "static":
        recorded = _recorded_inputs(args.run)
        inputs = _inputs(config.method, args.world, args.reward or recorded.get("reward"),
                         recorded.get("user_model"), args.device, embeddings=False)
    policy = load_policy(args.run, inputs, args.device)
    dataset = inputs.dataset if inputs is not None else Dataset.load(args.world)
    if dataset.truth is None:
        raise ConfigError(f"{args.world}: dataset {dataset.name!r} has no ground truth to evaluate in")
    changes = {k: v for k, v in (("mode", args.mode), ("episodes", args.episodes), ("seed", args.eval_seed))
               if v is not None}
    evaluation = dataclasses.replace(config.evaluation, **changes)
    run_seed = args.seed if args.seed is not None else config.seed
    metrics = OnlineEvaluator(dataset, evaluation, config.env, config.quit).evaluate(policy, run_seed, args.device)
    result = {"recsim": EVALUATION_KIND, "run": str(args.run), "world": str(args.world), "evaluation": evaluation,
              "run_seed": run_seed, "metrics": metrics}
    if out is not None:
        write_json(out, result)
    print(to_json({k: round(v, 6) for k, v in metrics.items()}))
    return 0


def list_methods(args: argparse.Namespace) -> int:
    rows = describe(args.dataset)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        settings = {k: v for k, v in row.items() if k not in ("name", "family", "description")}
        extra = " ".join(f"{k}={v}" for k, v in settings.items())
        print(f"{row['name']:<8} {row['family']:<12} {row['description']}" + (f"  [{extra}]" if extra else ""))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("policy", help="train and evaluate recommendation policies")
    commands = parser.add_subparsers(dest="policy_command", required=True)

    p = commands.add_parser("train", help="train (or, for static baselines, build) one method and evaluate it")
    p.add_argument("--preset", required=True, choices=sorted(METHODS), help="the method (see `recsim policy list`)")
    p.add_argument("--world", required=True, type=Path,
                   help="a prepared dataset folder (with ground truth to evaluate)")
    p.add_argument("--reward", type=Path, default=None,
                   help="reward-table folder: the user model's (mbpo/mopo/dorl/greedy/...), the IPS user model's (ips) "
                        "or the kNN table's (roler/ours)")
    p.add_argument("--user-model", type=Path, default=None,
                   help="user-model folder: item embeddings for the tracker, ensemble disagreement for 'ours'")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--dataset", default=None,
                   help="dataset name for per-dataset penalty weights (default: the world's)")
    p.add_argument("--budget", choices=("cpu", "paper"), default="cpu",
                   help="cpu: minutes; paper: published epochs/steps")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="environment steps (offline: gradient steps) per epoch")
    p.add_argument("--num-envs", type=int, default=None, help="parallel simulated users")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--eval-every", type=int, default=None, help="evaluate in the ground-truth env every N epochs")
    p.add_argument("--eval-episodes", type=int, default=EvalConfig.episodes)
    seed_argument(p, "--eval-seed", EvalConfig.seed)
    p.add_argument("--algorithm", choices=("a2c", "ppo"), default=None,
                   help="model-based learner (default ppo; --param learner=published: the published A2C)")
    p.add_argument("--tracker", choices=sorted(TRACKERS), default=None,
                   help=f"state tracker (default {TrackerConfig.kind})")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="any budget or agent setting of the method (lr=3e-4, ent_coef=0.1, hidden_sizes=[128,128], "
                        "tracker.window=5, epsilon=0.1, ...); repeatable")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="episode settings (EnvConfig: max_turn=30, history_window=10); repeatable")
    p.add_argument("--quit", action="append", default=[], metavar="KEY=VALUE",
                   help="the quit rule (QuitRuleConfig: kind=distance, window=3, distance_quantile=0.1, ...); "
                        "repeatable")
    p.add_argument("--no-embeddings", action="store_true", help="learn item embeddings from scratch")
    p.add_argument("--train-mode", default=None, help="simulator mode of model-based training (default NX_0)")
    seed_argument(p)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:n]")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary line")
    p.set_defaults(handler=train)

    p = commands.add_parser("evaluate", help="evaluate a saved policy (a `policy train` folder) in a world's truth")
    p.add_argument("--run", required=True, type=Path, help="the folder `recsim policy train --out` wrote")
    p.add_argument("--world", required=True, type=Path, help="a prepared dataset folder with ground truth")
    p.add_argument("--mode", default=None, help="FB, NX_0 or NX_<k> (default: the run's, NX_0)")
    p.add_argument("--episodes", type=int, default=None, help="evaluation users (default: the run's)")
    seed_argument(p, "--eval-seed", None, "seed of the evaluation users (default: the run's)")
    seed_argument(p, "--seed", None, "run seed of the policy's sampling (default: the run's)")
    p.add_argument("--reward", type=Path, default=None,
                   help="a static baseline's reward-table folder (default: the one it was built from)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:n]")
    p.add_argument("--out", type=Path, default=None, help="also write the metrics and settings to this JSON file")
    p.set_defaults(handler=evaluate)

    p = commands.add_parser("list", help="the methods and their settings")
    p.add_argument("--dataset", default="kuairec", help="show this dataset's penalty weights")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=list_methods)

