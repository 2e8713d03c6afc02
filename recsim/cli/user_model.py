"""`recsim user-model train | eval`: the DeepFM ensemble user model."""
from __future__ import annotations

import argparse
import pickle
from pathlib import Path

from recsim.cli.arguments import (
    fraction,
    non_negative_int,
    positive_float,
    positive_int,
)
from recsim.errors import DataError
from recsim.io import to_json, write_json
from recsim.outdir import output_dir, output_file
from recsim.seeds import seed_argument

USER_MODEL_KIND = "user_model"
EVAL_KIND = "user-model-eval"


def _dataset(path: Path):
    from recsim.data.schema import Dataset

    return Dataset.load(path).validate(str(path))


def load_model(directory: Path, device: str):
    """The ensemble saved in `directory`, refused with one line naming the folder when its files
    are corrupt, from another architecture or hold NaN or infinite weights."""
    import torch

    from recsim.user_model.predict import load_ensemble

    try:
        ensemble = load_ensemble(directory, device)
    except (KeyError, TypeError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        reason = " ".join(str(error).split())[:200]
        raise DataError(str(directory), None, f"not a readable user model ({type(error).__name__}: {reason})") from None
    for k, member in enumerate(ensemble.members):
        for name, tensor in member.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise DataError(str(directory), f"member {k}: {name}",
                                "NaN or infinite weights; recsim refuses to use them")
    return ensemble


_TRAIN_FIELDS = ("members", "epochs", "batch_size", "lr", "nll_beta", "negatives", "negative_rounds",
                 "val_fraction", "patience", "early_stopping", "bootstrap", "ips", "device", "seed", "uncertainty")
_MODEL_FIELDS = ("embedding_dim", "init_std", "task")


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    """The options among `names` given on the command line (None = not given: the preset decides)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def train(args: argparse.Namespace) -> int:
    with output_dir(args.out, USER_MODEL_KIND, inputs=[args.data]) as out:
        return _train(args, out)


def _train(args: argparse.Namespace, out: Path) -> int:
    from recsim.user_model.train import preset_config, train_ensemble, write_outputs

    dataset = _dataset(args.data)
    config = preset_config(args.preset, model=_given(args, _MODEL_FIELDS), **_given(args, _TRAIN_FIELDS))
    try:
        ensemble = train_ensemble(dataset, config, out, resume=args.resume, progress=not args.quiet)
    except pickle.UnpicklingError as error:  # a checkpoint torch.load(weights_only=True) refused
        reason = " ".join(str(error).split())[:200]
        raise DataError(str(out / "checkpoints"), None, f"a checkpoint is not loadable as tensors ({reason})") from None
    metrics = write_outputs(ensemble, dataset, out, config.uncertainty, tuple(args.k), progress=not args.quiet)
    print(to_json(metrics))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    if args.out is None:
        return _evaluate(args, None)
    with output_file(args.out, EVAL_KIND, inputs=[args.model, args.data]) as out:
        return _evaluate(args, out)


def _evaluate(args: argparse.Namespace, out: Path | None) -> int:
    from recsim.user_model.metrics import evaluate as evaluate_model

    ensemble = load_model(args.model, args.device)
    dataset = _dataset(args.data)
    if (dataset.n_users, dataset.n_items) != (ensemble.spec.n_users, ensemble.spec.n_items):
        raise DataError(str(args.data), None, f"{dataset.n_users} users x {dataset.n_items} items, but the model "
                        f"was trained on {ensemble.spec.n_users} x {ensemble.spec.n_items}")
    metrics = evaluate_model(ensemble, dataset, tuple(args.k), diagnostics=True)
    if out is not None:
        write_json(out, {"recsim": EVAL_KIND, **metrics})
    print(to_json(metrics))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from recsim.user_model.options import (
        NEGATIVE_SCHEMES,
        PRESETS,
        STOPPING_CRITERIA,
        UNCERTAINTY_KINDS,
    )

    parser = subparsers.add_parser("user-model", help="train and evaluate the DeepFM ensemble user model")
    commands = parser.add_subparsers(dest="user_model_command", required=True)

    p = commands.add_parser("train", help="train the ensemble; write weights, reward table, embeddings, metrics")
    p.add_argument("--data", required=True, type=Path, help="a prepared dataset directory")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="published: the published DeepFM ensemble (uniform target-0 negatives, plain NLL, "
                        "max-variance uncertainty); default: the measured defaults of TrainConfig (see its docstring)")
    p.add_argument("--members", type=positive_int)
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--lr", type=positive_float)
    p.add_argument("--nll-beta", type=float, help="beta of the beta-NLL loss (0: the published NLL)")
    p.add_argument("--embedding-dim", type=positive_int)
    p.add_argument("--init-std", type=positive_float,
                   help="std of the normal initialisation of embeddings and DNN weights")
    p.add_argument("--task", choices=["regression", "binary"],
                   help="regression: heteroscedastic Gaussian NLL; binary: BCE on 0/1 labels")
    p.add_argument("--negatives", choices=list(NEGATIVE_SCHEMES),
                   help="uniform: published target-0 pairs; exposure: drawn like the log; none: logged rows only")
    p.add_argument("--negative-rounds", type=non_negative_int,
                   help="negatives per logged row (default: 3 on KuaiRec, 5 elsewhere)")
    p.add_argument("--val-fraction", type=fraction)
    p.add_argument("--patience", type=positive_int)
    p.add_argument("--early-stopping", choices=list(STOPPING_CRITERIA))
    p.add_argument("--bootstrap", action="store_true", default=None,
                   help="train each member on a bootstrap resample of the log")
    p.add_argument("--ips", action="store_true", default=None,
                   help="inverse item-popularity weights (the IPS baseline)")
    p.add_argument("--device", help="cpu, cuda or cuda:N")
    seed_argument(p, default=None)
    p.add_argument("--uncertainty", choices=list(UNCERTAINTY_KINDS), help="the reward table's uncertainty")
    p.add_argument("--k", type=positive_int, nargs="+", default=[10], help="ranking cut-offs for NDCG@k / Recall@k")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=train)

    p = commands.add_parser("eval", help="evaluate a trained ensemble on a dataset's held-out data")
    p.add_argument("--model", required=True, type=Path, help="a directory written by `user-model train`")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--device", default="cpu")
    p.add_argument("--k", type=positive_int, nargs="+", default=[10])
    p.add_argument("--out", type=Path, default=None, help="also write the metrics JSON here")
    p.set_defaults(handler=evaluate)
