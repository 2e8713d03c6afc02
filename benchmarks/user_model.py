"""Does the user model personalise, and does its uncertainty point where it is wrong? (issue 14)

One invocation trains, in the same run, the `published` preset (docs/methods.md, "The user model") and the
`default` preset of `recsim.user_model.train` (plus, with `--candidates`, the default with one
choice changed at a time) on two worlds, and scores them beside most-popular and random:

- `synthetic`: `generate_world("kuairec", 0)` (1,411 users x 3,327 items, ~320 k popularity-biased,
  missing-not-at-random log rows); held-out truth = the full ground-truth matrix.
- `synthetic_small` (not in the default `--worlds`): a Coat-sized world, `generate_world("kuairec",
  --world-seed, n_users=290, n_items=300, n_rounds=1)` (~6.5 k log rows against Coat's 7 k), on which
  the small-log settings are chosen before they are confirmed on Coat; the published preset keeps
  Coat's 5 negative rounds there.
- `coat`: Coat from `--coat` (default `../shared/data/coat`, skipped when absent); held-out truth
  = the random-exposure test ratings (missing at random); models are never tuned on it.

Per row: NDCG@10 and Recall@10 against the truth (synthetic: every item of every user is a
candidate; Coat: each user's test items; gain 2^rel - 1; relevant for Recall = at least the 80th
percentile of the candidates' relevance), distinct items among all users' top-10 over all items
and the Gini of that top-10 exposure, RMSE on the known pairs beside the training-mean constant,
and per uncertainty kind the Spearman correlation with |prediction - truth| over the known pairs,
with the item's log count (item mean), and the share of users whose UCB top item (rhat + sqrt(U))
differs from the greedy one (`recsim.user_model.diagnostics`). Models also report training time
(`train_ensemble` only: wall seconds, and the process's CPU seconds, which shared cores disturb
less) and peak RSS (each model trains in a fresh subprocess).

Prints one JSON object. `--quick`: a 300-user synthetic world, 2 members, at most 3 epochs (a
smoke run: too short for the default to personalise). `--users N` / `--members N`: a smaller world
or ensemble with the presets' epochs (the candidate table of the note: `--candidates --users 500
--members 3`).
`--threads N`: torch intra-op threads (default 1: the cores are shared). `--jobs N`: train N models at
once (each in its own process); their wall seconds then share the cores, so compare CPU seconds.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from recsim.profiling import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES: dict[str, dict[str, Any]] = {
    "default+uniform_negatives": {"negatives": "uniform"},
    "default+exposure_negatives": {"negatives": "exposure"},
    "default+plain_nll": {"nll_beta": 0.0},
    "default+embedding_8": {"model": {"embedding_dim": 8}},
    "default+init_1e-4": {"model": {"init_std": 1e-4}},
    "default+lr_1e-3": {"lr": 1e-3},
    "default+loss_stopping": {"early_stopping": "loss"},
    "default+bootstrap": {"bootstrap": True},
    "default+ips": {"ips": True},
    "default+batch_128": {"batch_size": 128},
}


SMALL_WORLD = {"n_users": 290, "n_items": 300, "n_rounds": 1}
"""The Coat-sized synthetic world's overrides of the "kuairec" preset."""


def load_world(name: str, n_users: int | None, coat_dir: Path, world_seed: int = 0):
    if name.startswith("synthetic"):
        from recsim.data.synthetic import generate_world

        sizes = SMALL_WORLD if name == "synthetic_small" else ({"n_users": n_users} if n_users else {})
        return generate_world("kuairec", world_seed, **sizes)
    from recsim.data.store import load_dataset

    return load_dataset("coat", coat_dir, cache_dir=Path(tempfile.gettempdir()) / "recsim-bench-coat")


def held_out(world) -> tuple[np.ndarray, np.ndarray]:
    """(relevance float64 (n_users, n_items) >= 0, candidate mask bool) of the held-out truth."""
    if world.truth is not None:
        relevance = np.zeros((world.n_users, world.n_items))
        mask = np.zeros(relevance.shape, dtype=bool)
        block = np.ix_(world.truth_users, world.truth_items)
        known = ~np.isnan(world.truth)
        relevance[block] = np.where(known, np.maximum(world.truth, 0.0), 0.0)
        mask[block] = known
        return relevance, mask
    pairs = world.test.groupby(["user", "item"])["label"].mean().reset_index()
    relevance = np.zeros((world.n_users, world.n_items))
    mask = np.zeros(relevance.shape, dtype=bool)
    relevance[pairs["user"], pairs["item"]] = np.maximum(pairs["label"], 0.0)
    mask[pairs["user"], pairs["item"]] = True
    return relevance, mask


def ranking_row(scores: np.ndarray, world) -> dict[str, float]:
    """NDCG@10, Recall@10 against the held-out truth; distinct top-10 items and their Gini (all items)."""
    from recsim.evaluation.ranking import ndcg_at_k, recall_at_k
    from recsim.user_model.diagnostics import top_k_exposure
    from recsim.user_model.metrics import relevant_threshold

    relevance, mask = held_out(world)
    users = np.flatnonzero(mask.any(axis=1))
    threshold = relevant_threshold(relevance[mask])
    scores, relevance, mask = scores[users], relevance[users], mask[users]
    return {"ndcg@10": ndcg_at_k(scores, relevance, 10, mask),
            "recall@10": recall_at_k(scores, (relevance >= threshold).astype(np.float64), 10, mask),
            **top_k_exposure(scores, 10)}


def baselines(world) -> dict[str, dict[str, float]]:
    counts = np.bincount(world.train["item"], minlength=world.n_items).astype(np.float64)
    popular = np.broadcast_to(counts, (world.n_users, world.n_items)).copy()
    rng = np.random.default_rng(0)
    return {"most_popular": ranking_row(popular, world),
            "random": ranking_row(rng.random((world.n_users, world.n_items)), world)}


def part(world_name: str, row: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one model in this process and score it."""
    from recsim.user_model.diagnostics import diagnose
    from recsim.user_model.options import UNCERTAINTY_KINDS
    from recsim.user_model.train import preset_config, train_ensemble

    world = load_world(world_name, args.users, args.coat, args.world_seed)
    preset = "published" if row == "published" else "default"
    overrides = dict(CANDIDATES.get(row, {}), members=args.members)
    if preset == "published" and world_name == "synthetic":
        overrides["negative_rounds"] = 3  # KuaiRec's published value (the world's name lacks "kuairec")
    if args.quick:
        overrides["epochs"] = min(3, preset_config(preset).epochs)
    config = preset_config(preset, **overrides)
    with tempfile.TemporaryDirectory() as out:
        start, start_cpu = time.perf_counter(), time.process_time()
        ensemble = train_ensemble(world, config, out, progress=False)
        train_s, train_cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
        training = json.loads((Path(out) / "training.json").read_text())
        resolved = json.loads((Path(out) / "config.json").read_text())["train"]
    tables = ensemble.reward_tables(kinds=UNCERTAINTY_KINDS)
    diagnostics = diagnose(tables, world, 10)
    return {**ranking_row(tables["max_variance"].mean, world),
            "rmse": diagnostics["rmse"], "rmse_train_mean": diagnostics["rmse_train_mean"],
            "uncertainty": diagnostics["uncertainty"], "table_uncertainty": config.uncertainty,
            "train_seconds": train_s, "train_cpu_seconds": train_cpu_s, "peak_rss_mb": peak_rss_mb(),
            "epochs_run": [m["epochs_run"] for m in training["members"]],
            "config": {k: resolved[k] for k in ("members", "epochs", "batch_size", "lr", "nll_beta", "negatives",
                                                "negative_rounds", "early_stopping", "bootstrap", "ips")}
            | {"embedding_dim": resolved["model"]["embedding_dim"], "init_std": resolved["model"]["init_std"]}}


def run_part(world_name: str, row: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--part", world_name, row, "--threads", str(args.threads),
           "--coat", str(args.coat), "--members", str(args.members), "--users", str(args.users or 0),
           "--world-seed", str(args.world_seed)]
    cmd += ["--quick"] if args.quick else []
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{world_name}/{row} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--candidates", action="store_true", help="also the default with one choice changed")
    parser.add_argument("--worlds", default="synthetic,coat")
    parser.add_argument("--coat", type=Path, default=ROOT.parent / "shared" / "data" / "coat")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--users", type=int, default=0, help="synthetic world users (0: the preset's 1,411)")
    parser.add_argument("--world-seed", type=int, default=0, help="seed of the synthetic worlds")
    parser.add_argument("--jobs", type=int, default=1,
                        help="models trained at once, each in its own process (compare CPU seconds when > 1)")
    parser.add_argument("--part", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.members, args.users = 2, args.users or 300
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    if args.part:
        print(json.dumps(part(args.part[0], args.part[1], args)))
        return
    rows = ["published", "default"] + (list(CANDIDATES) if args.candidates else [])
    result: dict[str, Any] = {"benchmark": "user_model", "quick": args.quick, "threads": args.threads,
                              "members": args.members, "synthetic_users": args.users or "preset",
                              "world_seed": args.world_seed}
    worlds = [w for w in args.worlds.split(",") if w != "coat" or args.coat.is_dir()]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        parts = {(w, row): pool.submit(run_part, w, row, args) for w in worlds for row in rows}
    for world_name in args.worlds.split(","):
        if world_name not in worlds:
            result[world_name] = {"skipped": f"{args.coat} not found"}
            continue
        world = load_world(world_name, args.users, args.coat, args.world_seed)
        entry: dict[str, Any] = {"n_users": world.n_users, "n_items": world.n_items, "n_log_rows": len(world.train)}
        entry.update({row: parts[world_name, row].result() for row in rows})
        entry.update(baselines(world))
        for key in ("train_seconds", "train_cpu_seconds"):
            entry[f"{key}_default_vs_published"] = entry["default"][key] / entry["published"][key]
        result[world_name] = entry
    print(json.dumps(result))


if __name__ == "__main__":
    main()
