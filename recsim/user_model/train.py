"""Training the DeepFM ensemble (DORL's user model, docs/methods.md).

Per member k (seed `member_seeds[k]`, see below):

1. the log is split once, for all members, into train / validation rows (`val_fraction`, seeded);
2. negatives are sampled for both parts (`recsim.user_model.sampling`, `negative_rounds` per row,
   target 0) with the member's generator;
3. each epoch visits the train examples (logged rows and negatives together) in a permutation
   drawn from `numpy.random.default_rng([member_seed, epoch])`, so a resumed run replays the same
   order as an uninterrupted one, and minimises over each batch B

       regression: sum_B w (yhat - y)^2 exp(-s) + w s   (+ deepctr's L2 terms)
       binary:     sum_B w BCE(sigmoid(yhat), y)        (+ deepctr's L2 terms)

   the heteroscedastic Gaussian NLL of DORL's user model (up to constants), written per example
   (logged rows with their label, negatives with target 0), with Adam (torch's fused kernel: the same
   update as the per-tensor loop, 1.3 ms instead of 3.3 ms a step on Coat at batch 128);
4. after each epoch the validation criterion (`early_stopping`) decides early stopping (`patience`); the
   best epoch's weights are kept. A checkpoint (weights, optimizer, early-stopping state) is
   written atomically after every epoch; `resume=True` continues from it.

Weights w are 1, or with `ips=True` the inverse item popularity of logged rows, 1 / n_train(i),
normalised to mean 1 over the logged training rows (negatives are uniform draws and keep weight
1): the "IPS" baseline of the published table.

Member seeds are `recsim.seeding.child_seeds(seed, members + 1)[1:]` (index 0 seeds the split).
The published code seeds every member identically, so its members differ only by shuffle order
and the ensemble's disagreement is understated; here each member has its own initialisation,
negatives and order. Member k's seed does not depend on the ensemble size.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recsim.errors import ConfigError, DataError
from recsim.io import atomic_path, read_json, save_npz, write_json
from recsim.progress import progress_bar
from recsim.seeding import child_seeds
from recsim.user_model.diagnostics import table_ids
from recsim.user_model.metrics import grouped_ndcg
from recsim.user_model.model import (
    DeepFMConfig,
    FeatureSpec,
    HeteroscedasticDeepFM,
    build_member,
    config_from_json,
)
from recsim.user_model.options import (
    NEGATIVE_SCHEMES,
    PRESETS,
    STOPPING_CRITERIA,
    UNCERTAINTY_KINDS,
)
from recsim.user_model.predict import CONFIG_FILE, FEATURES_FILE, Ensemble, member_file
from recsim.user_model.sampling import LoggedLabels, sample_negatives

CHECKPOINT_DIR = "checkpoints"
MIN_STEPS_PER_EPOCH = 25
EpochCallback = Callable[[int, int, dict[str, float]], None]


@dataclasses.dataclass
class TrainConfig:
    """Everything that determines a trained ensemble (the resolved copy goes to `config.json`)."""

    model: DeepFMConfig = dataclasses.field(default_factory=DeepFMConfig)
    members: int = 5
    """Ensemble size (5 in the paper)."""
    epochs: int = 20
    """At most this many epochs (5 in the paper). With the default loss and learning rate one member on
    the 500-user synthetic world needed about 7 epochs to leave the non-personalised start and was
    still improving at 25 (validation NDCG 0.74 -> 0.82, truth NDCG 0.51 -> 0.78); 20 keeps the
    training time on the full world within 1.5x the published preset's."""
    batch_size: int | None = None
    """Rows per optimizer step; None: `auto_batch_size` of the log (4096 on logs of 4096 x 25 = 102,400 rows or more,
    the published size; smaller on small logs so that an epoch takes at least `MIN_STEPS_PER_EPOCH`
    steps: Coat's 7 k rows would otherwise train for 2 steps an epoch). At least 25 steps, not 50:
    on two Coat-sized synthetic worlds (`benchmarks/user_model.py --worlds synthetic_small
    --world-seed 0|1 --candidates`, 290 users x 300 items, ~6.5 k rows) batch 256 instead of 128
    trained in 0.76-0.93x the CPU time (1.16-1.28x the published preset's, against 1.38-1.52x) for
    truth NDCG@10 0.575 / 0.631 against 0.582 / 0.645, the same distinct top-10 items (51 / 45
    against 55 / 45) and count-uncertainty Spearman with |error| (0.27 / 0.27 against 0.27 / 0.28)."""
    lr: float = 1e-2
    """Adam's learning rate (1e-3 in the paper). 1e-2: `benchmarks/user_model.py --candidates --users 300
    --members 2` gave truth NDCG@10 0.756 and 334 distinct top-10 items, against 0.523 and 10 with 1e-3
    (the members never leave the non-personalised start within the budget)."""
    nll_beta: float = 1.0
    """beta of the beta-NLL loss (`example_loss`); 0: the published heteroscedastic NLL. Default 1 was
    chosen in an exploration where beta 0 runs had stopped early; the controlled candidate run
    (`--candidates --users 300 --members 2`) found no gain from it (truth NDCG 0.756 with beta 1,
    0.772 with 0). It is kept because the full-world figures of the note were measured with it."""
    negatives: str = "none"
    """Negative items: "uniform" (the published draw), "exposure" (drawn in proportion to the item's
    share of the log), "none" (logged rows only). Default "none": target-0 negatives teach "rarely
    logged means 0", a popularity model (issue 14: 10 distinct items in all users' top-10). With the
    rest of the default (`--candidates --users 300 --members 2`): uniform negatives truth NDCG 0.766,
    168 distinct items, RMSE 0.91, 4x the training time, count uncertainty uncorrelated with the
    error (0.07); exposure negatives 0.675; none 0.756, 334 distinct, RMSE 0.60, Spearman 0.38."""
    negative_rounds: int | None = None
    """Negatives per logged row; None: 3 when the dataset name contains "kuairec", else 5 (as published)."""
    negative_max_tries: int = 10
    val_fraction: float = 0.1
    """Share of logged rows held out for early stopping (0: no early stopping, all epochs run)."""
    patience: int = 5
    """Epochs without validation improvement before a member stops (5: the validation NDCG stays flat
    for the first ~6 epochs before the member starts to personalise)."""
    early_stopping: str = "ndcg"
    """Validation criterion: "loss" (the training loss on held-out rows and their negatives) or "ndcg"
    (NDCG@10 of each validation user's held-out logged rows ranked by the member). Default "ndcg": it
    tracked the truth NDCG epoch by epoch on the synthetic world (one member, 25 epochs); with
    patience 5 the loss criterion did as well (candidate run: 0.756 both)."""
    ips: bool = False
    bootstrap: bool = False
    """Train each member on its own bootstrap resample of the training rows (drawn with its seed).
    Off by default: truth NDCG 0.683 against 0.756 without (`--candidates --users 300 --members 2`),
    and the members' disagreement still did not follow the error (Spearman -0.02)."""
    device: str = "cpu"
    seed: int = 0
    uncertainty: str = "count"
    """Uncertainty of the written reward table, one of `UNCERTAINTY_KINDS` (`recsim.user_model.predict`).
    Default "count": the only kind with Spearman >= 0.3 with |error| and negative with the item's log
    count on the synthetic world (`benchmarks/user_model.py`); "max_variance" is the published one."""

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = config_from_json(self.model)
        for name in ("members", "epochs", "batch_size", "negative_max_tries", "patience"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name}: must be >= 1, got {getattr(self, name)}")
        if self.negative_rounds is not None and self.negative_rounds < 0:
            raise ConfigError(f"TrainConfig.negative_rounds: must be >= 0, got {self.negative_rounds}")
        if not self.lr > 0:
            raise ConfigError(f"TrainConfig.lr: must be > 0, got {self.lr}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"TrainConfig.val_fraction: must be in [0, 1), got {self.val_fraction}")
        if self.early_stopping not in STOPPING_CRITERIA:
            raise ConfigError(f"TrainConfig.early_stopping: {self.early_stopping!r} is not one of {STOPPING_CRITERIA}")
        if self.negatives not in NEGATIVE_SCHEMES:
            raise ConfigError(f"TrainConfig.negatives: {self.negatives!r} is not one of {NEGATIVE_SCHEMES}")
        if self.uncertainty not in UNCERTAINTY_KINDS:
            raise ConfigError(f"TrainConfig.uncertainty: {self.uncertainty!r} is not one of {UNCERTAINTY_KINDS}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"TrainConfig.device: {self.device!r} is not 'cpu' or 'cuda[:n]'")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"TrainConfig.device: {self.device!r} requested but CUDA is not available")

    def resolved(self, dataset_name: str, n_rows: int | None = None) -> TrainConfig:
        """Negative rounds from the dataset name; the batch size from the log's `n_rows` (when given)."""
        batch_size = self.batch_size
        if batch_size is None and n_rows is not None:
            batch_size = auto_batch_size(n_rows)
        rounds = self.negative_rounds
        if self.negatives == "none":
            rounds = 0
        elif rounds is None:
            rounds = 3 if "kuairec" in dataset_name.lower() else 5
        return dataclasses.replace(self, negative_rounds=rounds, batch_size=batch_size)

    @classmethod
    def from_json(cls, info: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(info) - known
        if unknown:
            raise ConfigError(f"TrainConfig: unknown key(s) {sorted(unknown)}")
        return cls(**info)


@dataclasses.dataclass
class PresetOverrides(TrainConfig):
    """The shape of a pipeline spec's `user_model:` section: `preset` and overrides of its fields.

    Only its field names and types are read (to check the section); `preset_config(preset, **rest)`
    builds the `TrainConfig`.
    """

    preset: str = "default"
    """"published" or "default" (`recsim.user_model.options.PRESETS`)."""


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    """The `TrainConfig` of preset `name` ("published" or "default") with `overrides` applied.

    `overrides["model"]` may be a dict of `DeepFMConfig` fields, merged over the preset's, or a
    `DeepFMConfig`, all of whose fields replace the preset's.
    """
    if name not in PRESETS:
        raise ConfigError(f"user-model preset: {name!r} is not one of {sorted(PRESETS)}")
    fields = dict(PRESETS[name])
    model = dict(fields.pop("model", {}))
    extra = overrides.pop("model", {})
    model.update(dataclasses.asdict(extra) if isinstance(extra, DeepFMConfig) else extra)
    fields.update(overrides)
    return TrainConfig(model=DeepFMConfig(**model), **fields)


def auto_batch_size(n_rows: int, steps: int = MIN_STEPS_PER_EPOCH, largest: int = 4096, smallest: int = 32) -> int:
    """The largest power of two <= n_rows / steps, within [smallest, largest]."""
    if n_rows < steps * smallest:
        return smallest
    return int(min(largest, 2 ** int(math.floor(math.log2(n_rows / steps)))))


@dataclasses.dataclass
class Examples:
    """Training examples on a device: deepctr inputs `x` (n, n_features), `target` (n,), `weight` (n,).

    The first `len(users)` examples are the logged rows, `users` int64 (n_logged,) their users; the
    sampled negatives follow.
    """

    x: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor
    users: np.ndarray

    def __len__(self) -> int:
        return int(self.target.shape[0])


def split_rows(n_rows: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_rows, val_rows), int64, a seeded random split of range(n_rows)."""
    if val_fraction == 0 or n_rows < 2:
        return np.arange(n_rows), np.zeros(0, dtype=np.int64)
    perm = np.random.default_rng(seed).permutation(n_rows)
    n_val = max(1, int(round(val_fraction * n_rows)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def ips_weights(items: np.ndarray, train_items: np.ndarray, n_items: int) -> np.ndarray:
    """float32 1 / n_train(item) of each row in `items`, scaled so rows of `train_items` average 1."""
    counts = np.bincount(train_items, minlength=n_items).astype(np.float64)
    inverse = 1.0 / np.maximum(counts, 1.0)
    scale = inverse[train_items].mean() if len(train_items) else 1.0
    return (inverse[items] / scale).astype(np.float32)


def exposure_probs(items: np.ndarray, n_items: int) -> np.ndarray:
    """float64 (n_items,): each item's share of the logged rows `items` (uniform if the log is empty)."""
    counts = np.bincount(items, minlength=n_items).astype(np.float64)
    return counts / counts.sum() if counts.sum() > 0 else np.full(n_items, 1.0 / n_items)


def bootstrap_rows(rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """int64 (len(rows),): a bootstrap resample of `rows` (uniform draws with replacement; Efron 1979)."""
    return np.sort(rows[rng.integers(0, len(rows), size=len(rows))]) if len(rows) else rows


def build_examples(spec: FeatureSpec, users: np.ndarray, items: np.ndarray, labels: np.ndarray,
                   weights: np.ndarray, logged: LoggedLabels, rounds: int, rng: np.random.Generator,
                   max_tries: int, device: str, item_probs: np.ndarray | None = None) -> Examples:
    """Logged rows plus their sampled negatives (target 0, weight 1) as device tensors.

    `item_probs` (n_items,): the negatives' item distribution (None: uniform).
    """
    neg_users, neg_items, _ = sample_negatives(users, labels, logged, rounds, rng, max_tries, item_probs)
    all_users = torch.as_tensor(np.concatenate([users, neg_users]).astype(np.int64))
    all_items = torch.as_tensor(np.concatenate([items, neg_items]).astype(np.int64))
    x = spec.inputs(all_users, all_items, torch.as_tensor(spec.user_table), torch.as_tensor(spec.item_table))
    target = np.concatenate([labels, np.zeros(len(neg_users), np.float32)]).astype(np.float32)
    weight = np.concatenate([weights, np.ones(len(neg_users), np.float32)]).astype(np.float32)
    return Examples(x.to(device), torch.as_tensor(target, device=device), torch.as_tensor(weight, device=device),
                    np.asarray(users, np.int64))


def example_loss(model: HeteroscedasticDeepFM, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                 task: str, beta: float = 0.0) -> torch.Tensor:
    """Weighted per-example loss (n,): Gaussian NLL, or BCE for "binary".

    Regression: stopgrad(exp(s))^beta ((yhat - y)^2 exp(-s) + s), the beta-NLL of Seitzer et al.
    (ICLR 2022, eq. 4; the constant factor 1/2 dropped). beta = 0 is the plain heteroscedastic NLL
    of the published code; with beta = 1 the mean's gradient is the squared error's, so rows with a
    large predicted variance are no longer down-weighted in the fit of the mean.
    """
    mean, logvar = model(x)
    if task == "binary":
        return weight * F.binary_cross_entropy_with_logits(mean, target, reduction="none")
    nll = (mean - target) ** 2 * torch.exp(-logvar) + logvar
    if beta:
        nll = torch.exp(beta * logvar.detach()) * nll
    return weight * nll


@torch.no_grad()
def validation_loss(model: HeteroscedasticDeepFM, examples: Examples, task: str, batch_size: int,
                    beta: float = 0.0) -> float:
    """Mean weighted per-example loss over `examples` (NaN when empty)."""
    model.eval()
    total = 0.0
    for start in range(0, len(examples), batch_size):
        sl = slice(start, start + batch_size)
        total += float(example_loss(model, examples.x[sl], examples.target[sl], examples.weight[sl], task,
                                   beta).sum())
    model.train()
    return total / len(examples) if len(examples) else math.nan


@torch.no_grad()
def validation_ndcg(model: HeteroscedasticDeepFM, examples: Examples, batch_size: int, k: int = 10) -> float:
    """NDCG@k of the member's mean ranking each validation user's held-out logged rows (negatives unused)."""
    model.eval()
    n = len(examples.users)
    scores = torch.zeros(0)
    if n:
        scores = torch.cat([model(examples.x[s:min(s + batch_size, n)])[0] for s in range(0, n, batch_size)])
    model.train()
    return grouped_ndcg(examples.users, scores.cpu().numpy(), examples.target[:n].cpu().numpy(), k)


def _save_torch(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_member(model: HeteroscedasticDeepFM, train: Examples, val: Examples, config: TrainConfig, member: int,
                 member_seed: int, checkpoint: Path, progress: bool = True,
                 on_epoch_end: EpochCallback | None = None) -> dict[str, Any]:
    """Train one member in place (resuming from `checkpoint` when it exists); return its history."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    state: dict[str, Any] = dict(epoch=0, best_val=math.inf, bad_epochs=0, done=False, history=[],
                                 best_state=None)
    if checkpoint.is_file():
        saved = torch.load(checkpoint, map_location=config.device, weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = {k: saved[k] for k in state}
    task = config.model.task
    batch_size = config.batch_size
    assert batch_size is not None, "TrainConfig.resolved fills in the batch size before training"
    model.train()
    while not state["done"] and state["epoch"] < config.epochs:
        epoch = state["epoch"]
        permutation = np.random.default_rng([member_seed, epoch]).permutation(len(train))
        order = torch.as_tensor(permutation, device=config.device)
        x, target, weight = train.x[order], train.target[order], train.weight[order]
        total, seen = 0.0, 0
        bar = progress_bar(range(0, len(train), batch_size),
                           f"member {member} epoch {epoch + 1}/{config.epochs}", enabled=progress, leave=False)
        for start in bar:
            sl = slice(start, start + batch_size)
            loss = example_loss(model, x[sl], target[sl], weight[sl], task, config.nll_beta).sum()
            optimizer.zero_grad(set_to_none=True)
            (loss + model.get_regularization_loss().squeeze()).backward()
            optimizer.step()
            total += float(loss.detach())
            seen += int(target[sl].shape[0])
            bar.set_postfix(loss=f"{total / seen:.4f}")
        bar.close()
        val_loss = validation_loss(model, val, task, 4 * batch_size, config.nll_beta)
        record = {"epoch": epoch + 1, "train_loss": total / max(seen, 1), "val_loss": val_loss}
        criterion = val_loss
        if config.early_stopping == "ndcg":
            record["val_ndcg"] = validation_ndcg(model, val, 4 * batch_size)
            criterion = -record["val_ndcg"]
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if len(val) == 0 or criterion < state["best_val"]:
            state["best_val"] = criterion if len(val) else math.nan
            state["bad_epochs"] = 0
            state["best_state"] = _state_copy(model)
        else:
            state["bad_epochs"] += 1
            state["done"] = state["bad_epochs"] >= config.patience
        state["done"] = state["done"] or state["epoch"] >= config.epochs
        _save_torch(dict(state, model=model.state_dict(), optimizer=optimizer.state_dict()), checkpoint)
        if on_epoch_end is not None:
            on_epoch_end(member, epoch + 1, record)
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    model.eval()
    return {"history": state["history"], "best_val": state["best_val"],
            "epochs_run": state["epoch"]}


def _dataset_summary(dataset: Any) -> dict[str, Any]:
    return dict(name=dataset.name, label_name=dataset.label_name, n_users=dataset.n_users,
                n_items=dataset.n_items, n_train_rows=int(len(dataset.train)))


def train_ensemble(dataset: Any, config: TrainConfig, out_dir: str | os.PathLike, resume: bool = False,
                   progress: bool = True, on_epoch_end: EpochCallback | None = None) -> Ensemble:
    """Train the ensemble on `dataset.train`, writing `config.json`, `features.npz`, `member<k>.pt`.

    Args:
        dataset: a `recsim.data.schema.Dataset`.
        config: the training configuration (resolved against the dataset before use).
        out_dir: output directory; per-epoch checkpoints go to `out_dir/checkpoints/`.
        resume: continue from the checkpoints in `out_dir` (its `config.json` must match `config`,
            device aside); without it, earlier checkpoints there are discarded.
        progress: show progress bars (stderr; `recsim.progress`).
        on_epoch_end: called as `on_epoch_end(member, epoch, record)` after each checkpoint.

    Returns:
        The trained `Ensemble` (best validation epoch of every member), on `config.device`.
    """
    config = config.resolved(dataset.name, len(dataset.train))
    out = Path(out_dir)
    labels_all = dataset.train["label"].to_numpy(np.float32)
    if config.model.task == "binary" and ((labels_all < 0) | (labels_all > 1)).any():
        raise DataError(dataset.name, "train.label", "binary task needs labels in [0, 1]")
    split_seed, *member_seeds = child_seeds(config.seed, config.members + 1)
    spec = FeatureSpec.from_dataset(dataset)
    info = dict(train=dataclasses.asdict(config), features=spec.to_json(), member_seeds=member_seeds,
                split_seed=split_seed,
                dataset=_dataset_summary(dataset))
    info_json = _comparable(info)
    checkpoints = out / CHECKPOINT_DIR
    if resume and (out / CONFIG_FILE).is_file():
        previous = _comparable(read_json(out / CONFIG_FILE))
        if previous != info_json:
            raise ConfigError(f"{out / CONFIG_FILE}: differs from this run's config; cannot resume (use another --out)")
    elif checkpoints.exists():
        shutil.rmtree(checkpoints)
    write_json(out / CONFIG_FILE, info)
    users = dataset.train["user"].to_numpy(np.int64)
    items = dataset.train["item"].to_numpy(np.int64)
    user_count = np.bincount(users, minlength=dataset.n_users).astype(np.float32)
    item_count = np.bincount(items, minlength=dataset.n_items).astype(np.float32)
    save_npz(out / FEATURES_FILE, user_table=spec.user_table, item_table=spec.item_table, user_log_count=user_count,
             item_log_count=item_count)
    logged = LoggedLabels(users, items, labels_all, dataset.n_items)
    train_rows, val_rows = split_rows(len(users), config.val_fraction, split_seed)
    if config.ips:
        weights = ips_weights(items, items[train_rows], dataset.n_items)
    else:
        weights = np.ones(len(users), np.float32)

    item_probs = exposure_probs(items[train_rows], dataset.n_items) if config.negatives == "exposure" else None

    rounds = config.negative_rounds
    assert rounds is not None, "TrainConfig.resolved fills in the negative rounds before training"
    members, reports = [], []
    for k, member_seed in enumerate(member_seeds):
        rng = np.random.default_rng(member_seed)
        member_rows = bootstrap_rows(train_rows, rng) if config.bootstrap else train_rows
        parts = [build_examples(spec, users[rows], items[rows], labels_all[rows], weights[rows], logged,
                                rounds, rng, config.negative_max_tries, config.device, item_probs)
                 for rows in (member_rows, val_rows)]
        model = build_member(spec, config.model, member_seed, config.device)
        report = train_member(model, parts[0], parts[1], config, k, member_seed, checkpoints / f"member{k}.pt",
                              progress, on_epoch_end)
        _save_torch(model.state_dict(), out / member_file(k))
        members.append(model)
        reports.append(report)
    write_json(out / "training.json", {"members": reports, "n_train_rows": int(len(train_rows)),
                                       "n_val_rows": int(len(val_rows))})
    return Ensemble(spec, config.model, members, config.device, user_count, item_count)


def _comparable(info: dict[str, Any]) -> Any:
    """The config as JSON data without the fields a resumed run may change (the device)."""
    data = json.loads(json.dumps(info))
    data["train"].pop("device", None)
    return data


def write_outputs(ensemble: Ensemble, dataset: Any, out_dir: str | os.PathLike, uncertainty: str = "max_variance",
                  ks: tuple[int, ...] = (10,), progress: bool = False) -> dict[str, Any]:
    """Write `reward_table.npz` (with the `uncertainty` kind), `embeddings.npz` and `metrics.json`
    (held-out metrics and the `recsim.user_model.diagnostics` of every uncertainty kind); return the metrics."""
    from recsim.user_model.metrics import evaluate

    users, items = table_ids(dataset)
    ensemble.reward_table(users, items, uncertainty, progress=progress).save(out_dir)
    ensemble.save_embeddings(out_dir)
    metrics = evaluate(ensemble, dataset, ks, diagnostics=True)
    write_json(Path(out_dir) / "metrics.json", metrics)
    return metrics
