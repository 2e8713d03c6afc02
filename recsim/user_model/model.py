"""One ensemble member: deepctr-torch's DeepFM plus a log-variance head.

The mean is deepctr's DeepFM (Guo et al., IJCAI 2017) over sparse features: a linear term, the
FM second-order term and a DNN (128-128, ReLU) whose output feeds `dnn_linear`, all summed with
a bias. The second head maps the same DNN hidden output to a raw log-variance that is
soft-clamped into [min_logvar, max_logvar] as in PETS (Chua et al., NeurIPS 2018, appendix A.1)
and MOPO (Yu et al., NeurIPS 2020):

    s = max_logvar - softplus(max_logvar - raw)
    s = min_logvar + softplus(s - min_logvar)

which is smooth, monotone and keeps gradients alive near the bounds (defaults [-10, 0.5],
docs/methods.md, "The user model"; since softplus(x) > x the second step can exceed max_logvar by at most
log(1 + exp(min_logvar - max_logvar)), 3e-5 with the defaults). The bounds are fixed, not learned.

Features (`FeatureSpec.from_dataset`): the user id, the item id, every column of the dataset's
`user_features` and `item_features` (int32 codes, 0 = missing, vocabulary max + 1), named
`user:<column>` / `item:<column>`. The data layer already encodes an item's first four
categories as item columns `feat0..feat3` (the published encoding); those share one embedding
table `item:feat`, since they index the same category vocabulary. All features are `SparseFeat`s
with `embedding_dim` dimensions.

Regularisation is deepctr's: `l2_reg_dnn * sum(w^2)` over the DNN weight matrices and
`dnn_linear` (not biases), `l2_reg_embedding` over the embedding tables and `l2_reg_linear` over
the linear term, added to the summed (not averaged) batch loss, as deepctr's own `fit` does. The
log-variance head is not regularised.

deepctr's `BaseModel.__init__` calls `torch.manual_seed(seed)`; members are built inside
`torch.random.fork_rng`, so the caller's global RNG is left untouched while the member's
initialisation is a function of its own seed only.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from recsim.errors import ConfigError, DataError
from recsim.user_model.deepctr_quiet import DeepFM, SparseFeat

TASKS = ("regression", "binary")
_SHARED_CATEGORY = re.compile(r"feat\d+")
SHARED_CATEGORY_EMBEDDING = "item:feat"


@dataclasses.dataclass
class DeepFMConfig:
    """Architecture of one member (shapes come from the data, not from here)."""

    embedding_dim: int = 16
    """Embedding size of every sparse feature (8 on KuaiRec, 4 on KuaiRand in the paper). Default 16:
    truth NDCG@10 0.756 and 334 distinct top-10 items against 0.711 and 187 with 8
    (`benchmarks/user_model.py --candidates --users 300 --members 2`)."""
    dnn_hidden_units: tuple[int, ...] = (128, 128)
    l2_reg_dnn: float = 0.1
    l2_reg_embedding: float = 1e-5
    l2_reg_linear: float = 1e-5
    init_std: float = 0.01
    """Std of deepctr's normal initialisation of embeddings and DNN weights (deepctr's default 1e-4).
    0.01 gave 0.745 against 0.687 / 0.683 with 0.05 / 0.1 in the exploration (500-user synthetic
    world, one member); with the rest of the default, 1e-4 did as well (candidate run: 0.765)."""
    min_logvar: float = -10.0
    max_logvar: float = 0.5
    task: str = "regression"
    """"regression": Gaussian heteroscedastic NLL; "binary": BCE on clicks (the variance head is unused)."""

    def __post_init__(self) -> None:
        self.dnn_hidden_units = tuple(int(u) for u in self.dnn_hidden_units)
        if self.embedding_dim < 1:
            raise ConfigError(f"DeepFMConfig.embedding_dim: must be >= 1, got {self.embedding_dim}")
        if not self.dnn_hidden_units or min(self.dnn_hidden_units) < 1:
            raise ConfigError(f"DeepFMConfig.dnn_hidden_units: need positive widths, got {self.dnn_hidden_units}")
        for name in ("l2_reg_dnn", "l2_reg_embedding", "l2_reg_linear", "init_std"):
            if getattr(self, name) < 0:
                raise ConfigError(f"DeepFMConfig.{name}: must be >= 0, got {getattr(self, name)}")
        if not self.min_logvar < self.max_logvar:
            raise ConfigError(f"DeepFMConfig.min_logvar: must be below max_logvar, got {self.min_logvar} >= "
                              f"{self.max_logvar}")
        if self.task not in TASKS:
            raise ConfigError(f"DeepFMConfig.task: {self.task!r} is not one of {TASKS}")


@dataclasses.dataclass
class FeatureSpec:
    """The sparse features of the model and the lookup tables that produce them.

    Attributes:
        user_columns: names of the user-side features, the user id first.
        item_columns: names of the item-side features, the item id first.
        vocabulary: feature name -> vocabulary size.
        embedding_names: feature name -> embedding table name (shared for `feat<k>` columns).
        user_table: int64 (n_users, len(user_columns)), row u = feature codes of user u.
        item_table: int64 (n_items, len(item_columns)), row i = feature codes of item i.
    """

    user_columns: list[str]
    item_columns: list[str]
    vocabulary: dict[str, int]
    embedding_names: dict[str, str]
    user_table: np.ndarray
    item_table: np.ndarray

    @property
    def columns(self) -> list[str]:
        return self.user_columns + self.item_columns

    @property
    def n_users(self) -> int:
        return int(self.user_table.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_table.shape[0])

    @classmethod
    def from_dataset(cls, dataset: Any) -> FeatureSpec:
        """Build the spec from a `recsim.data.schema.Dataset`."""
        user_table, user_columns = _table(dataset.user_features, dataset.n_users, "user", "user_features")
        item_table, item_columns = _table(dataset.item_features, dataset.n_items, "item", "item_features")
        vocabulary = {c: int(t.max(initial=0)) + 1 for c, t in zip(user_columns, user_table.T)}
        vocabulary.update({c: int(t.max(initial=0)) + 1 for c, t in zip(item_columns, item_table.T)})
        vocabulary["user"], vocabulary["item"] = dataset.n_users, dataset.n_items
        embedding_names = {c: c for c in user_columns}
        embedding_names.update({c: (SHARED_CATEGORY_EMBEDDING if _SHARED_CATEGORY.fullmatch(c.split(":")[-1]) else c)
                                for c in item_columns})
        shared = [c for c in item_columns if embedding_names[c] == SHARED_CATEGORY_EMBEDDING]
        if shared:
            size = max(vocabulary[c] for c in shared)
            vocabulary.update({c: size for c in shared})
        return cls(user_columns, item_columns, vocabulary, embedding_names, user_table, item_table)

    def to_json(self) -> dict[str, Any]:
        """The JSON-able part (the tables are saved separately as `features.npz`)."""
        return dict(user_columns=self.user_columns, item_columns=self.item_columns,
                    vocabulary=self.vocabulary, embedding_names=self.embedding_names)

    @classmethod
    def from_json(cls, info: dict[str, Any], user_table: np.ndarray, item_table: np.ndarray) -> FeatureSpec:
        return cls(list(info["user_columns"]), list(info["item_columns"]), dict(info["vocabulary"]),
                   dict(info["embedding_names"]), user_table, item_table)

    def feature_columns(self, embedding_dim: int) -> list[SparseFeat]:
        return [SparseFeat(c, self.vocabulary[c], embedding_dim=embedding_dim, embedding_name=self.embedding_names[c])
                for c in self.columns]

    def inputs(self, users: torch.Tensor, items: torch.Tensor, user_table: torch.Tensor,
               item_table: torch.Tensor) -> torch.Tensor:
        """float32 (n, n_features) deepctr input rows of the pairs (users[k], items[k])."""
        return torch.cat([user_table[users], item_table[items]], dim=1).float()


def _table(frame: pd.DataFrame, n_rows: int, id_name: str, where: str) -> tuple[np.ndarray, list[str]]:
    """int64 (n_rows, 1 + n_columns): the id, then the frame's codes; and the feature names.

    Feature names are the id name, then `<id_name>:<column>` (Coat has `gender` on both sides).
    """
    if len(frame) != n_rows:
        raise DataError(where, None, f"{len(frame)} rows for {n_rows} ids")
    columns = [str(c) for c in frame.columns]
    values = frame.to_numpy(dtype=np.int64) if columns else np.zeros((n_rows, 0), np.int64)
    if values.size and values.min() < 0:
        raise DataError(where, columns[int(np.argmin(values.min(axis=0)))], "negative feature codes")
    table = np.concatenate([np.arange(n_rows, dtype=np.int64)[:, None], values], axis=1)
    return table, [id_name] + [f"{id_name}:{c}" for c in columns]


def soft_clamp(raw: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Softplus clamp of `raw` into (low, high) (PETS / MOPO); identity far inside the bounds."""
    s = high - F.softplus(high - raw)
    return low + F.softplus(s - low)


class HeteroscedasticDeepFM(DeepFM):
    """deepctr's DeepFM (task "regression": identity output) plus a log-variance head.

    `forward(X)` returns `(mean_B, logvar_B)`: the mean head (a logit for the binary task) and the
    soft-clamped log-variance, both float32 (batch,). `X` is deepctr's float input (batch, n_features).
    """

    def __init__(self, spec: FeatureSpec, config: DeepFMConfig, seed: int) -> None:
        columns = spec.feature_columns(config.embedding_dim)
        super().__init__(columns, columns, use_fm=True, dnn_hidden_units=config.dnn_hidden_units,
                         l2_reg_linear=config.l2_reg_linear, l2_reg_embedding=config.l2_reg_embedding,
                         l2_reg_dnn=config.l2_reg_dnn, init_std=config.init_std, seed=seed,
                         dnn_dropout=0, dnn_activation="relu", dnn_use_bn=False, task="regression", device="cpu")
        self.logvar_head = nn.Linear(config.dnn_hidden_units[-1], 1)
        self.min_logvar = float(config.min_logvar)
        self.max_logvar = float(config.max_logvar)

    def place(self, device: str) -> HeteroscedasticDeepFM:
        """Move to `device` (deepctr keeps the device name for its regularisation tensors)."""
        self.device = str(device)
        self.linear_model.device = str(device)
        return self.to(device)

    def forward(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sparse_embeddings, _ = self.input_from_feature_columns(X, self.dnn_feature_columns, self.embedding_dict)
        logit = self.linear_model(X) + self.fm(torch.cat(sparse_embeddings, dim=1))
        dnn_input = torch.flatten(torch.cat(sparse_embeddings, dim=-1), start_dim=1)
        hidden = self.dnn(dnn_input)
        logit = self.out(logit + self.dnn_linear(hidden))
        logvar = soft_clamp(self.logvar_head(hidden), self.min_logvar, self.max_logvar)
        return logit.squeeze(-1), logvar.squeeze(-1)

    def get_regularization_loss(self) -> torch.Tensor:
        """deepctr's penalty sum_groups (l1 sum |w| + l2 sum w^2) over its registered weights, shape (1,).

        The same sum as `BaseModel.get_regularization_loss`, taken over one concatenation of each
        group's tensors instead of two or three operations per tensor: on Coat at batch 128 it cut
        the penalty's forward and backward from 1.5 + ~1.4 ms to 0.6 ms of a ~15 ms step.
        """
        total = torch.zeros((1,), device=self.device)
        for weights, l1, l2 in self.regularization_weight:
            tensors = [w[1] if isinstance(w, tuple) else w for w in weights]
            if not tensors or (l1 <= 0 and l2 <= 0):
                continue
            flat = torch.cat([t.reshape(-1) for t in tensors])
            if l1 > 0:
                total = total + l1 * flat.abs().sum()
            if l2 > 0:
                total = total + l2 * torch.dot(flat, flat)
        return total


def build_member(spec: FeatureSpec, config: DeepFMConfig, seed: int, device: str = "cpu") -> HeteroscedasticDeepFM:
    """A freshly initialised member whose weights depend only on `seed` (global RNG untouched)."""
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices):
        model = HeteroscedasticDeepFM(spec, config, seed)
    return model.place(device)


def config_from_json(info: dict[str, Any]) -> DeepFMConfig:
    known = {f.name for f in dataclasses.fields(DeepFMConfig)}
    unknown = set(info) - known
    if unknown:
        raise ConfigError(f"DeepFMConfig: unknown key(s) {sorted(unknown)}")
    return DeepFMConfig(**info)
