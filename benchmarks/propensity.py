"""How well do the fitted behaviour models recover the logging propensities? (issue 16)

On synthetic worlds, whose training log records the exact propensity pi_b(a | u) of every logged
row (`recsim.data.synthetic`, step 5), each behaviour model of `recsim.evaluation.propensity` is
fitted on the training log and its propensities of the logged rows are compared with the true
ones (`calibration`: Spearman rank correlation, mean and median |log(estimate / truth)|):

- `uniform`: 1 / n_items for every row (the baseline that knows nothing);
- `item_popularity`;
- `user_model_softmax` and `user_model_popularity_softmax` over the scores of a DeepFM user
  model trained on the same log (`recsim.user_model.train`, the default preset with `--members`
  members and `--epochs` epochs), and over the ground truth itself (`scores: truth`, a ceiling:
  what the behaviour model reaches when the scores are exact).

Worlds: `tiny` (100 users x 200 items) and `kuairec` with `--users` users (3,327 items).
Prints one JSON object. `--quick`: the tiny world only, one member, one epoch.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

import numpy as np


def behaviour_rows(world: Any, table: Any, scores: str) -> list[dict[str, Any]]:
    from recsim.evaluation.propensity import calibration, fit_behaviour

    log = world.train
    true = log["propensity"].to_numpy(np.float64)
    kinds = ["item_popularity"] if scores == "none" else ["user_model_softmax", "user_model_popularity_softmax"]
    rows = []
    for kind in kinds:
        start = time.perf_counter()
        model = fit_behaviour(kind, world, table)
        estimate = model.pscore(log["user"].to_numpy(), log["item"].to_numpy())
        rows.append({"model": kind, "scores": scores, "source": model.source,
                     "seconds": round(time.perf_counter() - start, 3), **calibration(estimate, true)})
    return rows


def user_model_table(world: Any, members: int, epochs: int) -> Any:
    from recsim.user_model.train import TrainConfig, train_ensemble

    config = TrainConfig(members=members, epochs=epochs, seed=0).resolved(world.name, len(world.train))
    with tempfile.TemporaryDirectory() as out:
        ensemble = train_ensemble(world, config, out, progress=False)
        return ensemble.reward_table()


def evaluate_world(name: str, world: Any, members: int, epochs: int) -> dict[str, Any]:
    from recsim.evaluation.propensity import calibration
    from recsim.reward.table import RewardTable

    true = world.train["propensity"].to_numpy(np.float64)
    rows = [{"model": "uniform", "scores": "none", **calibration(np.full(len(true), 1.0 / world.n_items), true)}]
    rows += behaviour_rows(world, None, "none")
    start = time.perf_counter()
    table = user_model_table(world, members, epochs)
    train_seconds = time.perf_counter() - start
    rows += behaviour_rows(world, table, "user_model")
    truth, users, items = world.truth_block()
    rows += behaviour_rows(world, RewardTable.from_truth(truth, users, items), "truth")
    return {"world": name, "n_users": world.n_users, "n_items": world.n_items, "log_rows": len(world.train),
            "user_model": {"members": members, "epochs": epochs, "train_seconds": round(train_seconds, 1)},
            "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300, help="users of the kuairec-preset world")
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="world seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import torch

    from recsim.data.synthetic import generate_world

    torch.set_num_threads(args.threads)
    members, epochs = (1, 1) if args.quick else (args.members, args.epochs)
    worlds = [("tiny", generate_world("tiny", args.seed))]
    if not args.quick:
        worlds.append((f"kuairec-{args.users}", generate_world("kuairec", args.seed, n_users=args.users)))
    out = {"benchmark": "propensity", "config": vars(args),
           "worlds": [evaluate_world(name, world, members, epochs) for name, world in worlds]}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
