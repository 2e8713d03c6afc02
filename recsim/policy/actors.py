"""Networks of the tianshou-trained policies: a shared state net and masked heads over all items.

Layout (DORL / ROLeR, docs/methods.md): a state tracker turns the observation (history of items
and rewards) into a state vector; a shared MLP (published: 64-64, ReLU) maps it to features; heads
map the features to one value per item (policy logits, Q-values or quantiles) or to V(s).

Masking: in NX modes the observation's `mask` (bool (B, n_items), True = allowed) marks items
already recommended in the episode. tianshou's `DiscreteActor` applies its own softmax and cannot
mask, so `MaskedItemHead` (an `AbstractDiscreteActor`) returns raw per-item outputs with masked
entries set to `MASKED_VALUE`; with ``dist_fn=categorical_from_logits`` a masked item has
probability exactly 0 (exp underflows), and a Q-learning argmax never picks it.

Every module here follows tianshou 2's conventions: `forward(obs, state=None, info=None)` returns
``(output, state)`` and `get_output_dim()` gives the output width.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from tianshou.utils.net.common import MLP, AbstractDiscreteActor, ModuleWithVectorOutput
from torch import nn

from recsim.errors import ConfigError
from recsim.policy.trackers import TrackerConfig, make_tracker

MASKED_VALUE = -1e9
"""Output of a masked item: far below any logit or Q-value, finite (no NaN in softmax or losses)."""
TURN_SCALE = 30.0
"""Divides the step count fed to the state (`StateNet`): the published episode limit, a scale only."""
SAMPLE_BLOCK = 64
"""Items per block of `sample_rows`."""


class ItemCategorical(torch.distributions.Categorical):
    """A categorical over items from (masked) logits, built for thousands of rows x items.

    The distribution of `torch.distributions.Categorical(logits=...)`, with `log_prob`,
    `entropy` and `sample` computed in fewer passes over the (B, n_items) tensor (each pass
    costs about as much as the output layer's forward at KuaiRec scale):

    - one no-grad pass shared by all three: w = exp(z - row max), its row sum s and
      lse = log-sum-exp (`_weights`, `_normaliser`); p = w / s is never stored (torch takes
      `logsumexp`, a subtraction and a second softmax);
    - `log_prob(a)` = z_a - lse with the gradient g (onehot(a) - p) from the saved w and s
      (`_LogProbAt`; torch's autograd of log-softmax + gather takes three more passes);
    - `entropy` = lse - sum p z, gradient -p (z - lse + H) (`_Entropy`); with
      `entropy_grad=False` it carries no gradient (for losses that weight it by 0, as the
      published A2C does: the gradient would be exactly 0, yet tianshou's A2C / PPO compute
      the term whatever its weight);
    - `sample`: blocked inverse-CDF sampling from the unnormalised weights (`sample_rows`).

    A masked item (logit `MASKED_VALUE`) has p = 0 exactly: it adds 0 to the entropy, its
    gradient is 0 and it is never drawn. `logits` and `probs` stay torch's differentiable
    log-softmax and softmax, computed only when asked for.
    """

    def __init__(self, logits: torch.Tensor, entropy_grad: bool = True) -> None:
        self._raw = logits
        self._param = logits
        self._num_events = logits.size(-1)
        self.entropy_grad = entropy_grad
        torch.distributions.Distribution.__init__(self, logits.size()[:-1], validate_args=False)

    @functools.cached_property
    def logits(self) -> torch.Tensor:
        return torch.log_softmax(self._raw, dim=-1)

    @functools.cached_property
    def probs(self) -> torch.Tensor:
        return torch.softmax(self._raw, dim=-1)

    @functools.cached_property
    def _weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(exp(z - row max), row max (..., 1)), without gradient."""
        with torch.no_grad():
            top = self._raw.amax(dim=-1, keepdim=True)
            return (self._raw - top).exp_(), top

    @functools.cached_property
    def _normaliser(self) -> _Normaliser:
        with torch.no_grad():
            weights, top = self._weights
            total = weights.sum(dim=-1)
            return _Normaliser(weights, total, top.squeeze(-1) + total.log())

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if value.shape != self._raw.shape[:-1]:
            return super().log_prob(value)
        norm = self._normaliser
        return _LogProbAt.apply(self._raw, value.long(), norm.weights, norm.total, norm.lse)

    def entropy(self) -> torch.Tensor:
        norm = self._normaliser
        if self.entropy_grad:
            return _Entropy.apply(self._raw, norm.weights, norm.total, norm.lse)
        with torch.no_grad():
            return _entropy_value(self._raw, norm.weights, norm.total, norm.lse)

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        weights, _ = self._weights
        with torch.no_grad():
            shape = torch.Size(sample_shape) + weights.shape[:-1]
            rows = weights.expand(shape + weights.shape[-1:]).reshape(-1, weights.shape[-1])
            return sample_rows(rows).view(shape)


class _Normaliser(NamedTuple):
    """Per-row softmax terms, without gradient: p = weights / total (weights (..., n), total and lse (...))."""

    weights: torch.Tensor
    total: torch.Tensor
    lse: torch.Tensor


def _entropy_value(raw: torch.Tensor, weights: torch.Tensor, total: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """H = lse - sum p z per row (= -sum p log p; masked entries have p = 0 and add 0)."""
    return lse - torch.linalg.vecdot(weights, raw.detach()) / total


class _LogProbAt(torch.autograd.Function):
    """log softmax(z)[a] per row from the precomputed softmax terms; d/dz = g (onehot(a) - p)."""

    @staticmethod
    def forward(ctx: Any, raw: torch.Tensor, act: torch.Tensor, weights: torch.Tensor, total: torch.Tensor,
                lse: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(act, weights, total)
        return raw.detach().gather(-1, act.unsqueeze(-1)).squeeze(-1) - lse

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:
        act, weights, total = ctx.saved_tensors
        grad_raw = weights * (grad / total).neg().unsqueeze(-1)
        grad_raw.scatter_add_(-1, act.unsqueeze(-1), grad.unsqueeze(-1))
        return grad_raw, None, None, None, None


class _Entropy(torch.autograd.Function):
    """H(softmax(z)) per row from the precomputed softmax terms; d/dz = -p (z - lse + H)."""

    @staticmethod
    def forward(ctx: Any, raw: torch.Tensor, weights: torch.Tensor, total: torch.Tensor,
                lse: torch.Tensor) -> torch.Tensor:
        entropy = _entropy_value(raw, weights, total, lse)
        ctx.save_for_backward(raw, weights, total, lse - entropy)
        return entropy

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        raw, weights, total, shift = ctx.saved_tensors
        scale = (grad / total).neg().unsqueeze(-1)
        return (raw.detach() - shift.unsqueeze(-1)).mul_(weights).mul_(scale), None, None, None


def sample_rows(weights_BA: torch.Tensor) -> torch.Tensor:
    """One index per row of non-negative weights (B, A), drawn with probability w / sum(w): int64 (B,).

    Blocked inverse-CDF sampling: the row's weights are summed in blocks of S = 64 items (one
    float32 pass over the tensor); one uniform number u per row picks the block whose float64
    cumulative sum first exceeds u * total, then the item inside that block by the block's own
    float64 cumulative sum. Exact up to the float32 rounding of the block sums; a weight of 0 is
    never drawn. A full float64 cumulative sum over all items (the previous sampler) costs
    about 6x the block sums at 1,024 x 3,327 (45 ms against 7 ms on 2 shared cores).
    """
    n_rows, n_items = weights_BA.shape
    size = min(SAMPLE_BLOCK, n_items)
    full = n_items // size
    head = weights_BA[:, :full * size].unflatten(1, (full, size)).sum(dim=-1)
    tail = weights_BA[:, full * size:].sum(dim=-1, keepdim=True)
    cumulative = torch.cat([head, tail], dim=1).double().cumsum_(dim=1)           # (B, G + 1)
    total = cumulative[:, -1:]
    uniform = torch.rand(n_rows, 1, dtype=torch.float64, device=weights_BA.device)
    target = torch.minimum(uniform * total, torch.nextafter(total, torch.zeros_like(total)))
    block = torch.searchsorted(cumulative, target, right=True)                  # (B, 1)
    before = torch.where(block > 0, cumulative.gather(1, (block - 1).clamp_(min=0)), 0.0)
    columns = block * size + torch.arange(size, device=weights_BA.device)        # (B, S)
    inside = weights_BA.gather(1, columns.clamp(max=n_items - 1)).double() * (columns < n_items)
    inner = inside.cumsum_(dim=1)
    rest = torch.minimum((target - before).clamp_(min=0.0), torch.nextafter(inner[:, -1:], torch.zeros_like(total)))
    return (block * size + torch.searchsorted(inner, rest, right=True)).squeeze(1)


def categorical_from_logits(logits_BA: torch.Tensor) -> torch.distributions.Categorical:
    """The `dist_fn` of the masked actor: a categorical over items from (masked) logits."""
    return ItemCategorical(logits_BA)


def categorical_without_entropy_grad(logits_BA: torch.Tensor) -> torch.distributions.Categorical:
    """`categorical_from_logits` whose entropy carries no gradient (for an entropy weight of 0)."""
    return ItemCategorical(logits_BA, entropy_grad=False)


def item_distribution(ent_coef: float) -> Callable[[torch.Tensor], torch.distributions.Categorical]:
    """The actor's `dist_fn` for a loss that weights the entropy by `ent_coef` (0: no entropy gradient)."""
    return categorical_from_logits if ent_coef else categorical_without_entropy_grad


def _field(obs: Any, key: str) -> Any:
    value = getattr(obs, key, None)
    if value is None and isinstance(obs, dict):
        value = obs.get(key)
    return value


def observation_mask(obs: Any, n_items: int, device: torch.device) -> torch.Tensor | None:
    """bool (B, n_items) mask of a tianshou observation batch (True = allowed), or None.

    Environments give a dense `mask`; buffers built from logs (`recsim.policy.offline`) give the
    compact `masked_items` instead: int (B, K), the disallowed items, -1 padded.
    """
    mask = _field(obs, "mask")
    if mask is not None:
        return torch.as_tensor(np.asarray(mask), dtype=torch.bool, device=device)
    masked = _field(obs, "masked_items")
    if masked is None:
        return None
    masked = torch.as_tensor(np.asarray(masked), dtype=torch.long, device=device)
    dense = torch.ones(masked.shape[0], n_items + 1, dtype=torch.bool, device=device)
    dense.scatter_(1, torch.where(masked < 0, n_items, masked), False)
    return dense[:, :n_items]


class StateNet(ModuleWithVectorOutput):
    """Tracker followed by an MLP: observation batch -> features (B, hidden_sizes[-1]).

    Args:
        tracker: a tianshou preprocess net over the observation (`recsim.policy.trackers`),
            `forward(obs, state) -> (state_BD, hidden)`.
        hidden_sizes: the shared MLP (published: (64, 64)); empty = the tracker's state itself.
        turn: append the episode's step count, the observation's `turn` / `TURN_SCALE`, to the
            tracker's state (recsim's option; published: no). An episode is truncated after a
            fixed number of steps, so the value of a state depends on the steps left, which the
            published state (the last items and their feedback) does not show (Pardo et al.,
            "Time Limits in Reinforcement Learning", ICML 2018).
    """

    def __init__(self, tracker: ModuleWithVectorOutput, hidden_sizes: Sequence[int] = (64, 64),
                 turn: bool = False) -> None:
        sizes = tuple(int(h) for h in hidden_sizes)
        width = tracker.get_output_dim() + int(turn)
        super().__init__(sizes[-1] if sizes else width)
        self.tracker = tracker
        self.turn = bool(turn)
        self.mlp = MLP(input_dim=width, hidden_sizes=sizes) if sizes else None

    def forward(self, obs: Any, state: Any = None, info: Any = None) -> tuple[torch.Tensor, Any]:
        state_BD, hidden = self.tracker(obs, state)
        if self.turn:
            turn = torch.as_tensor(np.asarray(_field(obs, "turn")), device=state_BD.device)
            state_BD = torch.cat([state_BD, turn.reshape(-1, 1).float() / TURN_SCALE], dim=1)
        if self.mlp is not None:
            state_BD = self.mlp(state_BD)
        return state_BD, hidden


class MaskedItemHead(AbstractDiscreteActor):
    """Per-item outputs over a shared `StateNet`, masked by the observation's `mask`.

    Output (B, n_items) or, with `n_values` > 1, (B, n_items, n_values) (quantiles for QR-DQN /
    discrete CQL); masked items get `MASKED_VALUE` in every entry.

    Args:
        preprocess_net: the shared `StateNet` (or any preprocess net returning (features, state)).
        n_items: the number of actions (reward-table columns).
        n_values: outputs per item (1 for logits or Q-values).
        relative_margin: if set, masked entries get (smallest allowed output of the row) -
            margin instead of `MASKED_VALUE` (still never the argmax; a softmax weight below
            exp(-margin)); for losses that average over all items (BCQ's logit penalty).
    """

    def __init__(self, preprocess_net: ModuleWithVectorOutput, n_items: int, n_values: int = 1,
                 relative_margin: float | None = None) -> None:
        super().__init__(int(n_items) * int(n_values))
        self.preprocess = preprocess_net
        self.n_items = int(n_items)
        self.n_values = int(n_values)
        self.relative_margin = relative_margin
        self.last = nn.Linear(preprocess_net.get_output_dim(), self.n_items * self.n_values)

    def get_preprocess_net(self) -> ModuleWithVectorOutput:
        return self.preprocess

    def outputs(self, features_BH: torch.Tensor) -> torch.Tensor:
        """Unmasked per-item outputs (B, n_items[, n_values]) of the features (B, H)."""
        out = self.last(features_BH)
        return out.view(-1, self.n_items, self.n_values) if self.n_values > 1 else out

    def forward(self, obs: Any, state: Any = None, info: Any = None) -> tuple[torch.Tensor, Any]:
        features_BH, hidden = self.preprocess(obs, state)
        out = self.outputs(features_BH)
        masked = _field(obs, "masked_items")
        if self.relative_margin is None and masked is not None and _field(obs, "mask") is None:
            return mask_listed_items_(out, masked), hidden
        return apply_mask(out, observation_mask(obs, self.n_items, out.device), self.relative_margin), hidden


class TiedItemHead(MaskedItemHead):
    """Item logits from the tracker's own item embeddings: z_j = (P f) . e_j + b_j, masked.

    f (B, H) are the `StateNet`'s features, P a learned (d, H) projection, e_j (d,) item j's
    embedding in the state tracker (the same trainable table the tracker reads, initialised
    from the user model's) and b_j a per-item bias: weight tying between the input and output
    item representations (Press & Wolf, EACL 2017; Inan et al., ICLR 2017, for language
    models). An item's logit moves with every item whose embedding is close to its own, not
    only when it is sampled; the output layer costs d instead of H multiply-adds per item.
    recsim's option (`AgentConfig.tied_embeddings`); the published actor is `MaskedItemHead`.
    The head needs the table to learn through it: with e_j detached (only P and b trained)
    every run of a 12-seed check collapsed onto greedy's 2-3 items (`AgentConfig`), so do not
    combine it with `TrackerConfig.freeze_embeddings`.

    Args:
        preprocess_net: the shared `StateNet`, whose tracker has an `item_embedding` table.
        n_items: the number of actions (reward-table columns).
    """

    def __init__(self, preprocess_net: StateNet, n_items: int) -> None:
        AbstractDiscreteActor.__init__(self, int(n_items))
        self.preprocess = preprocess_net
        self.n_items = int(n_items)
        self.n_values = 1
        self.relative_margin = None
        self.project = nn.Linear(preprocess_net.get_output_dim(), self._items().embedding_dim)
        self.bias = nn.Parameter(torch.zeros(self.n_items))

    def _items(self) -> nn.Embedding:
        embedding = getattr(self.preprocess, "tracker", None)
        embedding = getattr(embedding, "item_embedding", None)
        if not isinstance(embedding, nn.Embedding):
            raise ConfigError("TiedItemHead: the state net's tracker has no item embedding table")
        return embedding

    def outputs(self, features_BH: torch.Tensor) -> torch.Tensor:
        items_AD = self._items().weight[:self.n_items]
        return torch.addmm(self.bias, self.project(features_BH), items_AD.T)


def mask_listed_items_(out: torch.Tensor, masked_items: Any) -> torch.Tensor:
    """`out` (B, n_items[, n_values]) with the listed items set to `MASKED_VALUE`, in place.

    `masked_items`: int (B, K), each row's disallowed items, -1 padded (the compact layout of
    `observation_mask`). Writes B x K entries instead of building and applying a dense
    (B, n_items) mask (two passes over the outputs); `out` must be a fresh tensor that autograd
    does not need (a linear layer's output: its backward reads the layer's inputs only).
    """
    listed = torch.as_tensor(masked_items, dtype=torch.long, device=out.device)
    rows, slots = torch.nonzero(listed >= 0, as_tuple=True)
    out[rows, listed[rows, slots]] = MASKED_VALUE
    return out


def apply_mask(out: torch.Tensor, mask_BA: torch.Tensor | None, relative_margin: float | None = None) -> torch.Tensor:
    """Per-item outputs (B, n_items[, n_values]) with the masked items (mask False) pushed down.

    Masked entries get `MASKED_VALUE`, or with `relative_margin` (smallest allowed output of the
    row) - margin (see `MaskedItemHead`); `mask_BA` None leaves `out` as it is.
    """
    if mask_BA is None:
        return out
    if out.dim() == 3:
        mask_BA = mask_BA.unsqueeze(-1)
    if relative_margin is None:
        return out.masked_fill(~mask_BA, MASKED_VALUE)
    floor = out.detach().masked_fill(~mask_BA, float("inf")).amin(dim=1, keepdim=True)
    return torch.where(mask_BA, out, floor - relative_margin)


class ItemCritic(ModuleWithVectorOutput):
    """Q(s, item) for every item over a shared `StateNet`, unmasked: (B, n_items).

    A critic in tianshou's sense (returns the tensor only, as `DiscreteCritic` does).
    """

    def __init__(self, preprocess_net: ModuleWithVectorOutput, n_items: int) -> None:
        super().__init__(int(n_items))
        self.preprocess = preprocess_net
        self.last = nn.Linear(preprocess_net.get_output_dim(), int(n_items))

    def forward(self, obs: Any, state: Any = None, info: Any = None) -> torch.Tensor:
        features_BH, _ = self.preprocess(obs, state)
        return self.last(features_BH)


class ValueHead(ModuleWithVectorOutput):
    """V(s) over a shared `StateNet` (the critic of A2C / PPO): (B, 1).

    Equivalent to tianshou's `DiscreteCritic`, which calls its preprocess net with
    `state=` as keyword; this one forwards the observation only.
    """

    def __init__(self, preprocess_net: ModuleWithVectorOutput) -> None:
        super().__init__(1)
        self.preprocess = preprocess_net
        self.last = nn.Linear(preprocess_net.get_output_dim(), 1)

    def forward(self, obs: Any, state: Any = None, info: Any = None) -> torch.Tensor:
        features_BH, _ = self.preprocess(obs, state)
        return self.last(features_BH)


def build_tracker(config: TrackerConfig, n_items: int, item_embeddings: np.ndarray | None, history_window: int,
                  seed: int = 0, user_embeddings: np.ndarray | None = None) -> ModuleWithVectorOutput:
    """The tracker `config` names over `n_items` items (initial embeddings indexed by item column).

    The observation's feedback is already scaled to [0, 1] (`recsim.policy.scaling`), so the
    tracker's own normalisation range should stay [0, 1]; `seed` replaces the config's seed.
    `user_embeddings`, float32 (n_user_ids, d_u) indexed by the observation's `user`, is required
    by and only used with `config.users`.
    """
    if config.window > history_window:
        raise ConfigError(f"TrackerConfig.window: {config.window} exceeds the observation's history window "
                          f"{history_window}")
    if config.users and user_embeddings is None:
        raise ConfigError("TrackerConfig.users: needs the user model's user embeddings (train with a user model)")
    return make_tracker(dataclasses.replace(config, seed=int(seed)), n_items, item_embeddings,
                        user_embeddings if config.users else None)
