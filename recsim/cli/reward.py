"""`recsim reward knn`: ROLeR's kNN reward table from a prepared dataset."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from recsim.data.schema import Dataset
from recsim.io import write_json
from recsim.outdir import output_dir
from recsim.reward.aggregate import AGGREGATES, UNCERTAINTIES
from recsim.reward.indicators import UNOBSERVED_MODES
from recsim.reward.knn import (
    INDEXES,
    INDICATORS,
    METRICS,
    PRIORS,
    build_knn_reward_table,
    default_config,
)
from recsim.seeds import seed_argument

REWARD_KIND = "reward_table"

# CLI flag -> KnnConfig field; flags left unset keep the dataset's defaults.
_OVERRIDES = ("k", "metric", "index", "indicator", "unobserved", "aggregate", "temperature", "uncertainty",
              "shrinkage", "prior", "svd_dim", "cap", "column", "nlist", "nprobe", "ef_search", "seed")


def knn(args: argparse.Namespace) -> int:
    with output_dir(args.out, REWARD_KIND, inputs=[args.data, args.user_model]) as out:
        return _knn(args, out)


def _knn(args: argparse.Namespace, out: Path) -> int:
    dataset = Dataset.load(args.data).validate(str(args.data))
    overrides = {name: getattr(args, name) for name in _OVERRIDES if getattr(args, name) is not None}
    if args.observed_only:
        overrides["observed_only"] = True
    if args.include_self:
        overrides["exclude_self"] = False
    overrides["progress"] = not args.quiet
    config = default_config(dataset.name, **overrides)
    table = build_knn_reward_table(dataset, config, user_model_dir=args.user_model)
    table.save(out)
    write_json(out / "config.json", {
        "command": "reward knn",
        "data": str(args.data),
        "user_model": None if args.user_model is None else str(args.user_model),
        "dataset": dataset.name,
        "shape": list(table.shape),
        "kind": table.kind,
        "knn": dataclasses.asdict(config),
    })
    if not args.quiet:
        print(f"wrote {table.kind} reward table {table.shape[0]} x {table.shape[1]} to {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("reward", help="build reward tables")
    commands = parser.add_subparsers(dest="reward_command", required=True)

    p = commands.add_parser("knn", help="ROLeR's kNN reward table (faiss neighbour search)")
    p.add_argument("--data", required=True, type=Path, help="a prepared dataset folder")
    p.add_argument("--user-model", type=Path, default=None,
                   help="user-model folder (reward_table.npz, embeddings.npz) for predicted/embedding indicators "
                        "and priors")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--k", type=int, help="neighbours per user (default per dataset: 30 KuaiRec, 150 KuaiRand, ...)")
    p.add_argument("--metric", choices=METRICS)
    p.add_argument("--index", choices=INDEXES)
    p.add_argument("--indicator", choices=INDICATORS)
    p.add_argument("--unobserved", choices=UNOBSERVED_MODES, help="logged indicator: unobserved as 0 or ignored")
    p.add_argument("--aggregate", choices=AGGREGATES)
    p.add_argument("--temperature", type=float)
    p.add_argument("--uncertainty", choices=UNCERTAINTIES)
    p.add_argument("--observed-only", action="store_true", help="average only neighbours who observed the item")
    p.add_argument("--shrinkage", type=float, help="observed-only: prior weight alpha, in neighbours")
    p.add_argument("--prior", choices=PRIORS)
    p.add_argument("--svd-dim", type=int, help="truncated-SVD dimensions before the search")
    p.add_argument("--cap", type=float, help="cap on logged feedback values")
    p.add_argument("--column", help="training-log column read as feedback (default: label)")
    p.add_argument("--nlist", type=int)
    p.add_argument("--nprobe", type=int)
    p.add_argument("--ef-search", type=int)
    p.add_argument("--include-self", action="store_true", help="let a user be its own neighbour (as published)")
    seed_argument(p, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary line")
    p.set_defaults(handler=knn)
