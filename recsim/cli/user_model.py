"""`recsim user-model train | eval`: the DeepFM ensemble user model."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from recsim.errors import DataError


def _dataset(path: Path):
    from recsim.data.schema import Dataset

    return Dataset.load(path).validate(str(path))


def train(args: argparse.Namespace) -> int:
    from recsim.user_model.model import DeepFMConfig
    from recsim.user_model.train import TrainConfig, train_ensemble, write_outputs

    dataset = _dataset(args.data)
    config = TrainConfig(
        model=DeepFMConfig(embedding_dim=args.embedding_dim, task=args.task),
        members=args.members, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        negative_rounds=args.negative_rounds, val_fraction=args.val_fraction, patience=args.patience,
        ips=args.ips, device=args.device, seed=args.seed, uncertainty=args.uncertainty,
    )
    ensemble = train_ensemble(dataset, config, args.out, resume=args.resume, progress=not args.quiet)
    metrics = write_outputs(ensemble, dataset, args.out, config.uncertainty, tuple(args.k), progress=not args.quiet)
    print(json.dumps(metrics))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from recsim.io import write_json
    from recsim.user_model.metrics import evaluate as evaluate_model
    from recsim.user_model.predict import load_ensemble

    ensemble = load_ensemble(args.model, args.device)
    dataset = _dataset(args.data)
    if (dataset.n_users, dataset.n_items) != (ensemble.spec.n_users, ensemble.spec.n_items):
        raise DataError(str(args.data), None, f"{dataset.n_users} users x {dataset.n_items} items, but the model "
                        f"was trained on {ensemble.spec.n_users} x {ensemble.spec.n_items}")
    metrics = evaluate_model(ensemble, dataset, tuple(args.k))
    if args.out is not None:
        write_json(args.out, metrics)
    print(json.dumps(metrics))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("user-model", help="train and evaluate the DeepFM ensemble user model")
    commands = parser.add_subparsers(dest="user_model_command", required=True)

    p = commands.add_parser("train", help="train the ensemble; write weights, reward table, embeddings, metrics")
    p.add_argument("--data", required=True, type=Path, help="a prepared dataset directory")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--embedding-dim", type=int, default=8)
    p.add_argument("--task", choices=["regression", "binary"], default="regression",
                   help="regression: heteroscedastic Gaussian NLL; binary: BCE on 0/1 labels")
    p.add_argument("--negative-rounds", type=int, default=None,
                   help="negatives per logged row (default: 3 on KuaiRec, 5 elsewhere)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--ips", action="store_true", help="inverse item-popularity weights (the IPS baseline)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--uncertainty", choices=["max_variance", "disagreement"], default="max_variance")
    p.add_argument("--k", type=int, nargs="+", default=[10], help="ranking cut-offs for NDCG@k / Recall@k")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=train)

    p = commands.add_parser("eval", help="evaluate a trained ensemble on a dataset's held-out data")
    p.add_argument("--model", required=True, type=Path, help="a directory written by `user-model train`")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--device", default="cpu")
    p.add_argument("--k", type=int, nargs="+", default=[10])
    p.add_argument("--out", type=Path, default=None, help="also write the metrics JSON here")
    p.set_defaults(handler=evaluate)
