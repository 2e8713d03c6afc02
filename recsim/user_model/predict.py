"""A trained ensemble: reward tables, per-pair predictions and embeddings.

Reward table (docs/methods.md, "The user model"): over users x items, `mean` is the mean over members of each
member's predicted reward, and `uncertainty` is one of

- `max_variance`: max over members of the predicted variance exp(s) (the MOPO penalty, as in the
  published code); for the binary task, the Bernoulli variance p (1 - p) of each member;
- `disagreement`: the standard deviation (ddof 0) over members of their predicted means;
- `relative_disagreement`: `disagreement / max(|mean|, 1e-3)` (dimensionless);
- `count`: sigma^2(u, i) (1 / (1 + n_u) + 1 / (1 + n_i)), with sigma^2 the members' mean predicted
  variance and n_u, n_i the user's and the item's number of logged training rows: the squared
  standard error of a user effect and an item effect each estimated from that many sigma-noisy
  observations, so it is a variance like `max_variance` (UCB's sqrt(U) is then a standard error,
  the count-based bonus of UCB1, Auer et al. 2002, with the noise level learned). It is large where
  the log is thin, and needs the log counts saved at training (`features.npz`).

Tables are computed in chunks of users with an exact factorised DeepFM forward: every term
splits into a user part and an item part (linear terms add; the FM term is
0.5 (|S_u|^2 - Q_u) + 0.5 (|S_i|^2 - Q_i) + <S_u, S_i> with S the sum and Q the summed squared
norms of a side's embeddings; the first DNN layer is W1 [e_u; e_i] = W1_u e_u + W1_i e_i), so only
the DNN layers after the first run per pair. Memory is bounded by `memory_budget_bytes`, so the
KuaiRand scale (27,285 x 7,583) fits; `tests/test_user_model.py` checks it against `forward`.

Embeddings: the user and item id embedding tables averaged over members. Members are trained
from different initialisations, so their embedding spaces are not aligned; the average is what
the lead's pipeline asked for (a smoothed, ensemble-level id vector), not a geometric consensus.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recsim.errors import ConfigError, DataError
from recsim.io import read_json, save_npz
from recsim.progress import progress_bar
from recsim.reward.table import RewardTable
from recsim.user_model.model import (
    DeepFMConfig,
    FeatureSpec,
    HeteroscedasticDeepFM,
    build_member,
    config_from_json,
    soft_clamp,
)
from recsim.user_model.options import UNCERTAINTY_KINDS

CONFIG_FILE = "config.json"
FEATURES_FILE = "features.npz"
EMBEDDINGS_FILE = "embeddings.npz"
DEFAULT_MEMORY_BUDGET = 512 * 2**20


def member_file(k: int) -> str:
    return f"member{k}.pt"


class Ensemble:
    """Members sharing one feature spec; predictions are reduced over members.

    Attributes:
        spec: the feature spec (and lookup tables) the members were built for.
        model_config: the members' architecture.
        members: the trained `HeteroscedasticDeepFM`s, in eval mode.
        device: where the members and lookup tables live.
        user_log_count, item_log_count: float32 (n_users,), (n_items,) logged training rows per user
            and item (None when unknown: the "count" uncertainty is then unavailable).
    """

    def __init__(self, spec: FeatureSpec, model_config: DeepFMConfig, members: list[HeteroscedasticDeepFM],
                 device: str = "cpu", user_log_count: np.ndarray | None = None,
                 item_log_count: np.ndarray | None = None) -> None:
        if not members:
            raise ConfigError("Ensemble.members: at least one member is required")
        self.spec = spec
        self.model_config = model_config
        self.members = [m.eval() for m in members]
        self.device = device
        self.user_table = torch.as_tensor(spec.user_table, device=device)
        self.item_table = torch.as_tensor(spec.item_table, device=device)
        self.user_log_count = None if user_log_count is None else np.asarray(user_log_count, np.float32)
        self.item_log_count = None if item_log_count is None else np.asarray(item_log_count, np.float32)

    def inverse_counts(self, users: np.ndarray, items: np.ndarray, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(1 / (1 + n_u) float32 (len(users),), 1 / (1 + n_i) (len(items),)) for the "count" kind, else zeros."""
        if kind != "count":
            return torch.zeros(len(users), device=self.device), torch.zeros(len(items), device=self.device)
        if self.user_log_count is None or self.item_log_count is None:
            raise ConfigError("uncertainty 'count': this model has no log counts (trained before they were saved)")
        return (torch.as_tensor(1.0 / (1.0 + self.user_log_count[users]), device=self.device),
                torch.as_tensor(1.0 / (1.0 + self.item_log_count[items]), device=self.device))

    @property
    def binary(self) -> bool:
        return self.model_config.task == "binary"

    def _reduce(self, means: torch.Tensor, logvars: torch.Tensor, kind: str,
                inverse_count: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(members, ...) raw outputs -> (mean, uncertainty) over members.

        `inverse_count` (broadcastable to `means[0]`): 1 / (1 + n_u) + 1 / (1 + n_i), for "count".
        """
        if kind not in UNCERTAINTY_KINDS:
            raise ConfigError(f"uncertainty: {kind!r} is not one of {UNCERTAINTY_KINDS}")
        if self.binary:
            means = torch.sigmoid(means)
            variances = means * (1 - means)
        else:
            variances = torch.exp(logvars)
        mean = means.mean(dim=0)
        if kind == "max_variance":
            uncertainty = variances.max(dim=0).values
        elif kind == "count":
            uncertainty = variances.mean(dim=0) * inverse_count
        else:
            uncertainty = means.std(dim=0, correction=0)
            if kind == "relative_disagreement":
                uncertainty = uncertainty / mean.abs().clamp_min(1e-3)
        return mean, uncertainty

    @torch.no_grad()
    def predict_pairs(self, users: np.ndarray, items: np.ndarray, uncertainty: str = "max_variance",
                      batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble (mean, uncertainty), float32 (n,), of the pairs (users[k], items[k]) via `forward`."""
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        users_t = torch.as_tensor(users, device=self.device)
        items_t = torch.as_tensor(items, device=self.device)
        inv_user, inv_item = self.inverse_counts(users, items, uncertainty)
        means, uncertainties = [], []
        for start in range(0, len(users_t), batch_size):
            x = self.spec.inputs(users_t[start:start + batch_size], items_t[start:start + batch_size],
                                 self.user_table, self.item_table)
            outputs = [m(x) for m in self.members]
            sl = slice(start, start + batch_size)
            mean, unc = self._reduce(torch.stack([o[0] for o in outputs]), torch.stack([o[1] for o in outputs]),
                                     uncertainty, inv_user[sl] + inv_item[sl])
            means.append(mean.cpu())
            uncertainties.append(unc.cpu())
        if not means:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        return torch.cat(means).numpy().astype(np.float32), torch.cat(uncertainties).numpy().astype(np.float32)

    @torch.no_grad()
    def reward_table(self, users: np.ndarray | None = None, items: np.ndarray | None = None,
                     uncertainty: str = "max_variance", memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
                     progress: bool = False) -> RewardTable:
        """The ensemble's `RewardTable` over `users` x `items` (default: all x all), in user chunks."""
        return self.reward_tables(users, items, (uncertainty,), memory_budget_bytes, progress)[uncertainty]

    @torch.no_grad()
    def reward_tables(self, users: np.ndarray | None = None, items: np.ndarray | None = None,
                      kinds: tuple[str, ...] = UNCERTAINTY_KINDS, memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
                      progress: bool = False) -> dict[str, RewardTable]:
        """One `RewardTable` per uncertainty kind, from one pass over the members (sharing one mean array)."""
        users = np.arange(self.spec.n_users, dtype=np.int64) if users is None else np.asarray(users, dtype=np.int64)
        items = np.arange(self.spec.n_items, dtype=np.int64) if items is None else np.asarray(items, dtype=np.int64)
        for name, ids, bound in (("users", users, self.spec.n_users), ("items", items, self.spec.n_items)):
            if len(ids) and (ids.min() < 0 or ids.max() >= bound):
                raise DataError("reward table", name, f"ids out of range [0, {bound})")
        mean = np.empty((len(users), len(items)), dtype=np.float32)
        unc = {kind: np.empty((len(users), len(items)), dtype=np.float32) for kind in kinds}
        items_t = torch.as_tensor(items, device=self.device)
        inverse = {kind: self.inverse_counts(users, items, kind) for kind in kinds}
        item_parts = [_side_parts(m, self.spec, self.item_table[items_t], self.spec.item_columns) for m in self.members]
        width = max(self.model_config.dnn_hidden_units)
        per_user = max(1, len(items)) * width * 4 * (2 + len(self.members))
        chunk = int(max(1, min(len(users), memory_budget_bytes // per_user)))
        starts = range(0, len(users), chunk)
        for start in progress_bar(starts, "reward table", enabled=progress, leave=False):
            users_t = torch.as_tensor(users[start:start + chunk], device=self.device)
            rows = self.user_table[users_t]
            outputs = [_pair_outputs(m, _side_parts(m, self.spec, rows, self.spec.user_columns), part)
                       for m, part in zip(self.members, item_parts)]
            means, logvars = torch.stack([o[0] for o in outputs]), torch.stack([o[1] for o in outputs])
            block = slice(start, start + len(users_t))
            for kind in kinds:
                inv_user, inv_item = inverse[kind]
                chunk_mean, chunk_unc = self._reduce(means, logvars, kind, inv_user[block, None] + inv_item[None, :])
                mean[block] = chunk_mean.cpu().numpy()
                unc[kind][block] = chunk_unc.cpu().numpy()
        return {kind: RewardTable(mean, unc[kind], users.astype(np.int32), items.astype(np.int32),
                                  kind=f"deepfm-ensemble/{kind}") for kind in kinds}

    @torch.no_grad()
    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """(user float32 (n_users, d), item float32 (n_items, d)): id embeddings averaged over members."""
        user = torch.stack([m.embedding_dict["user"].weight for m in self.members]).mean(dim=0)
        item = torch.stack([m.embedding_dict["item"].weight for m in self.members]).mean(dim=0)
        return user.cpu().numpy().astype(np.float32), item.cpu().numpy().astype(np.float32)

    def save_embeddings(self, directory: str | os.PathLike) -> Path:
        user, item = self.embeddings()
        path = Path(directory) / EMBEDDINGS_FILE
        save_npz(path, user=user, item=item)
        return path


def _side_parts(model: HeteroscedasticDeepFM, spec: FeatureSpec, rows: torch.Tensor,
                columns: list[str]) -> dict[str, torch.Tensor]:
    """One side's share of every DeepFM term for the feature rows `rows` (n, len(columns)).

    Returns a dict of tensors over the n rows: `linear` (n,), `fm_self` (n,) = 0.5 (|S|^2 - Q),
    `sum` (n, d) = S, `first` (n, H1) = W1 restricted to this side's input blocks times e.
    """
    d = model.embedding_dict[spec.embedding_names[columns[0]]].embedding_dim
    first_layer = model.dnn.linears[0].weight  # (H1, n_features * d)
    positions = [spec.columns.index(c) for c in columns]
    embeddings = [model.embedding_dict[spec.embedding_names[c]](rows[:, j]) for j, c in enumerate(columns)]
    linear = sum(model.linear_model.embedding_dict[spec.embedding_names[c]](rows[:, j]).squeeze(-1)
                 for j, c in enumerate(columns))
    total = torch.stack(embeddings).sum(dim=0)
    squares = sum((e * e).sum(dim=-1) for e in embeddings)
    first = sum(e @ first_layer[:, p * d:(p + 1) * d].T for e, p in zip(embeddings, positions))
    return {"linear": linear, "fm_self": 0.5 * ((total * total).sum(dim=-1) - squares), "sum": total, "first": first}


def _pair_outputs(model: HeteroscedasticDeepFM, user: dict[str, torch.Tensor],
                  item: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw (mean, logvar), each (n_users, n_items), of a member for every user x item pair."""
    dnn = model.dnn  # members are built with ReLU activations, no batch norm and no dropout
    hidden = ((user["first"] + dnn.linears[0].bias)[:, None, :] + item["first"][None, :, :]).relu_()
    for layer in dnn.linears[1:]:
        hidden = F.linear(hidden, layer.weight, layer.bias).relu_()
    heads = torch.cat([model.dnn_linear.weight, model.logvar_head.weight])  # (2, H): mean and log-variance
    out = F.linear(hidden, heads)
    logit = (out[..., 0] + (user["linear"] + user["fm_self"] + model.out.bias)[:, None]
             + (item["linear"] + item["fm_self"])[None, :] + user["sum"] @ item["sum"].T)
    logvar = soft_clamp(out[..., 1] + model.logvar_head.bias, model.min_logvar, model.max_logvar)
    return logit, logvar


def load_ensemble(directory: str | os.PathLike, device: str = "cpu") -> Ensemble:
    """Rebuild the trained ensemble written by `recsim.user_model.train.train_ensemble` from its directory."""
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise DataError(str(directory), None, "not a user-model directory (no config.json)")
    info: dict[str, Any] = read_json(config_path)
    features_path = directory / FEATURES_FILE
    if not features_path.is_file():
        raise DataError(str(features_path), None, "missing feature tables")
    with np.load(features_path, allow_pickle=False) as z:
        spec = FeatureSpec.from_json(info["features"], z["user_table"], z["item_table"])
        counts = [z[name] if name in z.files else None for name in ("user_log_count", "item_log_count")]
    model_config = config_from_json(info["train"]["model"])
    members = []
    for k, seed in enumerate(info["member_seeds"]):
        path = directory / member_file(k)
        if not path.is_file():
            raise DataError(str(path), None, "member weights missing (training unfinished? rerun with --resume)")
        member = build_member(spec, model_config, seed, device)
        member.load_state_dict(torch.load(path, map_location=device, weights_only=True))
        members.append(member)
    return Ensemble(spec, model_config, members, device, *counts)
