"""State trackers: observation (user, last items, their feedback) -> state vector (torch).

A tracker is the `preprocess_net` of tianshou 2's actor and critic (`DiscreteActor`,
`DiscreteCritic`, or a masked actor): a `tianshou.utils.net.common.ModuleWithVectorOutput` whose

    forward(obs, state=None, info=None) -> (features_BD, state)

reads the observation `Batch` (or dict) of `recsim.env` (keys `history` int (B, W), -1 padded,
most recent last; `feedback` float (B, W); `user` int (B,)) and returns float32 features of size
`get_output_dim()`. The same module instance can be shared by actor and critic, so the item
embeddings train end to end with the RL loss.

Kinds (DORL / ROLeR; docs/methods.md):

- `average` (published default): mean over the last `window` (3) steps of
  [item embedding || normalised reward]; padding steps are excluded from the mean (all-zero
  state on an episode's first step).
- `gru`: a GRU over the last `window` steps of [item embedding || normalised reward]; the state
  is its final hidden state (padding steps are skipped, not fed as zeros).
- `attention`: SASRec-like self-attention (Kang & McAuley, ICDM 2018): projected inputs plus
  learned position embeddings, a Transformer encoder with a key-padding mask; the state is the
  output at the most recent step.

Item embeddings start from a given array (the user model's item embeddings, shape
(n_items, d)) or from scratch (normal, std 0.1, seeded); they are trainable unless frozen.
Optionally a user embedding table (e.g. the user model's) is concatenated to the state.
Normalised reward: (r - reward_low) / (reward_high - reward_low).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from tianshou.utils.net.common import ModuleWithVectorOutput
from torch import nn

from recsim.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class TrackerConfig:
    """Hyperparameters of a state tracker (shapes come from the data at build time).

    Attributes:
        kind: "average", "gru" or "attention".
        window: how many most recent steps of the observed history the tracker reads
            (published: 3); must not exceed the environment's `history_window`.
        embedding_dim: item embedding size when starting from scratch (ignored with an
            initial array, whose width is used).
        hidden_dim: state size of the GRU / attention trackers.
        n_heads, n_layers, dropout: attention tracker's encoder.
        reward_low, reward_high: reward normalisation range.
        freeze_embeddings: keep the item (and user) embeddings fixed.
        users: concatenate the user model's embedding of the observation's user to the state
            (recsim's option; published: no, the state reads the episode's items and feedback only,
            so the first recommendation is the same for every user).
        seed: initialisation seed (weights not given by arrays).
    """

    kind: str = "average"
    window: int = 3
    embedding_dim: int = 8
    hidden_dim: int = 64
    n_heads: int = 2
    n_layers: int = 1
    dropout: float = 0.0
    reward_low: float = 0.0
    reward_high: float = 1.0
    freeze_embeddings: bool = False
    users: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in TRACKERS:
            raise ConfigError(f"TrackerConfig.kind: unknown {self.kind!r}; choose from {sorted(TRACKERS)}")
        for name in ("window", "embedding_dim", "hidden_dim", "n_heads", "n_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrackerConfig.{name}: must be >= 1, got {getattr(self, name)}")
        if not self.reward_high > self.reward_low:
            raise ConfigError("TrackerConfig.reward_high: must exceed reward_low")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"TrackerConfig.dropout: must lie in [0, 1), got {self.dropout}")
        if self.kind == "attention" and self.hidden_dim % self.n_heads:
            raise ConfigError("TrackerConfig.hidden_dim: must be divisible by n_heads")


def _embedding(n: int, init: np.ndarray | None, dim: int, freeze: bool, generator: torch.Generator) -> nn.Embedding:
    """(n + 1) rows, the last one a zero padding row (index n)."""
    if init is not None:
        init = np.asarray(init, dtype=np.float32)
        if init.ndim != 2 or init.shape[0] != n:
            raise ConfigError(f"initial embeddings: expected shape ({n}, d), got {init.shape}")
        dim = init.shape[1]
        weight = torch.from_numpy(init.copy())
    else:
        weight = torch.randn(n, dim, generator=generator) * 0.1
    emb = nn.Embedding(n + 1, dim, padding_idx=n)
    with torch.no_grad():
        emb.weight[:n] = weight
        emb.weight[n] = 0.0
    emb.weight.requires_grad_(not freeze)
    return emb


class Tracker(ModuleWithVectorOutput):
    """Shared input handling of the trackers (see the module docstring).

    Args:
        config: hyperparameters.
        n_items: number of items (columns of the reward table).
        item_embeddings: optional float (n_items, d) initial item embeddings.
        user_embeddings: optional float (n_user_ids, d_u) user embeddings indexed by the
            observation's `user`, concatenated to the state.
    """

    def __init__(self, config: TrackerConfig, n_items: int, item_embeddings: np.ndarray | None = None,
                 user_embeddings: np.ndarray | None = None) -> None:
        generator = torch.Generator().manual_seed(config.seed)
        item_emb = _embedding(n_items, item_embeddings, config.embedding_dim, config.freeze_embeddings, generator)
        user_emb = None
        if user_embeddings is not None:
            user_emb = _embedding(len(user_embeddings), user_embeddings, 1, config.freeze_embeddings, generator)
        core_dim = self._core_dim(config, item_emb.embedding_dim)
        super().__init__(core_dim + (user_emb.embedding_dim if user_emb is not None else 0))
        self.config = config
        self.n_items = n_items
        self.item_embedding = item_emb
        self.user_embedding = user_emb
        self._generator = generator

    @staticmethod
    def _core_dim(config: TrackerConfig, item_dim: int) -> int:
        raise NotImplementedError

    def _inputs(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Step inputs [item embedding || normalised reward] (B, L, d+1) and validity (B, L)."""
        device = self.item_embedding.weight.device
        history = torch.as_tensor(obs["history"], device=device).long()
        feedback = torch.as_tensor(obs["feedback"], device=device, dtype=torch.float32)
        if history.shape[1] < self.config.window:
            raise ConfigError(f"tracker window {self.config.window} exceeds the observed history {history.shape[1]}")
        history = history[:, -self.config.window:]
        feedback = feedback[:, -self.config.window:]
        valid = history >= 0
        emb = self.item_embedding(torch.where(valid, history, torch.full_like(history, self.n_items)))
        scale = self.config.reward_high - self.config.reward_low
        reward = ((feedback - self.config.reward_low) / scale) * valid
        return torch.cat([emb, reward.unsqueeze(-1)], dim=-1), valid

    def _with_user(self, features: torch.Tensor, obs: Any) -> torch.Tensor:
        if self.user_embedding is None:
            return features
        user = torch.as_tensor(obs["user"], device=features.device).long().reshape(-1)
        return torch.cat([features, self.user_embedding(user)], dim=-1)

    def encode(self, x_BLD: torch.Tensor, valid_BL: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, obs: Any, state: Any = None, info: dict[str, Any] | None = None) -> tuple[torch.Tensor, Any]:
        x, valid = self._inputs(obs)
        return self._with_user(self.encode(x, valid), obs), state


class AverageTracker(Tracker):
    """Mean of [item embedding || normalised reward] over the valid last `window` steps."""

    @staticmethod
    def _core_dim(config: TrackerConfig, item_dim: int) -> int:
        return item_dim + 1

    def encode(self, x_BLD: torch.Tensor, valid_BL: torch.Tensor) -> torch.Tensor:
        count = valid_BL.sum(dim=1, keepdim=True).clamp(min=1)
        return (x_BLD * valid_BL.unsqueeze(-1)).sum(dim=1) / count


class GRUTracker(Tracker):
    """Final hidden state of a GRU over the valid last `window` steps (zeros if none)."""

    def __init__(self, config: TrackerConfig, n_items: int, item_embeddings: np.ndarray | None = None,
                 user_embeddings: np.ndarray | None = None) -> None:
        super().__init__(config, n_items, item_embeddings, user_embeddings)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.gru = nn.GRU(self.item_embedding.embedding_dim + 1, config.hidden_dim, batch_first=True)

    @staticmethod
    def _core_dim(config: TrackerConfig, item_dim: int) -> int:
        return config.hidden_dim

    def encode(self, x_BLD: torch.Tensor, valid_BL: torch.Tensor) -> torch.Tensor:
        lengths = valid_BL.sum(dim=1)
        n_steps = x_BLD.shape[1]
        # padding is on the left: move each row's valid steps to the front, then pack.
        shift = (n_steps - lengths).unsqueeze(1)
        index = (torch.arange(n_steps, device=x_BLD.device).unsqueeze(0) + shift) % n_steps
        front = torch.gather(x_BLD, 1, index.unsqueeze(-1).expand_as(x_BLD))
        packed = nn.utils.rnn.pack_padded_sequence(front, lengths.clamp(min=1).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        _, hidden = self.gru(packed)
        return hidden[-1] * (lengths > 0).unsqueeze(-1)


class AttentionTracker(Tracker):
    """SASRec-like self-attention; the state is the encoder output at the most recent step."""

    def __init__(self, config: TrackerConfig, n_items: int, item_embeddings: np.ndarray | None = None,
                 user_embeddings: np.ndarray | None = None) -> None:
        super().__init__(config, n_items, item_embeddings, user_embeddings)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.project = nn.Linear(self.item_embedding.embedding_dim + 1, config.hidden_dim)
            self.position = nn.Embedding(config.window, config.hidden_dim)
            layer = nn.TransformerEncoderLayer(config.hidden_dim, config.n_heads, 2 * config.hidden_dim,
                                               config.dropout, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(config.hidden_dim)

    @staticmethod
    def _core_dim(config: TrackerConfig, item_dim: int) -> int:
        return config.hidden_dim

    def encode(self, x_BLD: torch.Tensor, valid_BL: torch.Tensor) -> torch.Tensor:
        n_steps = x_BLD.shape[1]
        h = self.project(x_BLD) + self.position(torch.arange(n_steps, device=x_BLD.device)).unsqueeze(0)
        empty = ~valid_BL.any(dim=1)
        padding = ~valid_BL
        padding[:, -1] = padding[:, -1] & ~empty  # keep one key for empty rows (their output is zeroed)
        out = self.encoder(h, src_key_padding_mask=padding)
        return self.norm(out[:, -1]) * (~empty).unsqueeze(-1)


TRACKERS: dict[str, type[Tracker]] = {
    "average": AverageTracker,
    "gru": GRUTracker,
    "attention": AttentionTracker,
}


def make_tracker(config: TrackerConfig, n_items: int, item_embeddings: np.ndarray | None = None,
                 user_embeddings: np.ndarray | None = None) -> Tracker:
    """The tracker `config.kind` names."""
    return TRACKERS[config.kind](config, n_items, item_embeddings, user_embeddings)
