"""SQN (Xin et al., "Self-Supervised Reinforcement Learning for Recommender Systems", SIGIR 2020).

tianshou 2 has no SQN; this module builds it from tianshou's public classes (`Policy`,
`OfflineAlgorithm`, `SimpleLossTrainingStats`) and recsim's masked heads.

Model: a base network G (here the state tracker and the shared MLP, `StateNet`) maps the
history to a state s_t; two heads read it:

- the supervised head: logits over all items, trained with cross-entropy on the logged item,
  L_s = -log softmax(G(s_t) W_s)[a_t];
- the Q-learning head: Q(s_t, a) over all items, trained with one-step TD,
  L_q = (r_t + gamma * (1 - terminated_t) * Q'(s_{t+1}, argmax_a Q(s_{t+1}, a)) - Q(s_t, a_t))^2.

Both losses flow into the shared base: L = L_s + L_q (the paper's joint loss). The paper stabilises
the Q head with double Q-learning over two full copies of the model: at each gradient step one
copy, drawn at random, is trained (main) and the other, unchanged, evaluates the next state's
action that the main copy selects (target). Recommendations come from the supervised head of the
first copy (as the published evaluation does); the Q head acts as a regulariser of the shared
state. The copy draw uses torch's global generator, which `recsim.policy.offline` seeds per epoch,
so runs and resumed runs are reproducible.

Masking: both heads mask as `MaskedItemHead` does (`apply_mask`), so an item already shown in the episode (NX modes)
never wins the next-state argmax and is excluded from the softmax of the supervised loss (the
logged item itself is never masked, `recsim.policy.offline.log_transitions` skips repeats).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
import torch.nn.functional as F
from tianshou.algorithm.algorithm_base import OfflineAlgorithm, Policy
from tianshou.algorithm.modelfree.reinforce import SimpleLossTrainingStats
from tianshou.algorithm.optim import OptimizerFactory
from tianshou.data import Batch, to_torch
from tianshou.data.types import RolloutBatchProtocol
from torch import nn

from recsim.policy.actors import StateNet, apply_mask, observation_mask


@dataclass(kw_only=True)
class SQNTrainingStats(SimpleLossTrainingStats):
    supervised_loss: float
    q_loss: float


class SQNNetwork(nn.Module):
    """One copy of SQN: a base network and its two heads, the base run once per batch.

    Args:
        state_net: this copy's own base (`StateNet`), shared by its two heads.
        n_items: the number of actions.
    """

    def __init__(self, state_net: StateNet, n_items: int) -> None:
        super().__init__()
        self.n_items = int(n_items)
        self.state_net = state_net
        self.supervised = nn.Linear(state_net.get_output_dim(), self.n_items)
        self.q_head = nn.Linear(state_net.get_output_dim(), self.n_items)

    def forward(self, obs: Any, state: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(supervised logits (B, n_items), Q-values (B, n_items)), masked items at `MASKED_VALUE`."""
        features_BH, _ = self.state_net(obs, state)
        mask_BA = observation_mask(obs, self.n_items, features_BH.device)
        return apply_mask(self.supervised(features_BH), mask_BA), apply_mask(self.q_head(features_BH), mask_BA)


class SQNPolicy(Policy):
    """Acts with the supervised head of the first copy: argmax of its masked logits.

    Args:
        networks: the two copies (double Q-learning); `networks[0]` recommends.
    """

    def __init__(self, *, networks: tuple[SQNNetwork, SQNNetwork], action_space: gym.spaces.Discrete,
                 observation_space: gym.Space | None = None) -> None:
        super().__init__(action_space=action_space, observation_space=observation_space)
        if len(networks) != 2:
            raise ValueError(f"SQN needs two network copies, got {len(networks)}")
        self.networks = nn.ModuleList(networks)

    def forward(self, batch: Batch, state: Any = None, **kwargs: Any) -> Batch:
        logits, q_values = self.networks[0](batch.obs, state)
        return Batch(act=logits.argmax(dim=-1), logits=logits, q_value=q_values, state=None)


class SQN(OfflineAlgorithm[SQNPolicy]):
    """SQN's joint supervised + double-Q update (see the module docstring).

    Args:
        policy: the `SQNPolicy` holding both copies.
        optim: one optimiser factory for both copies (a copy that is not trained at a step gets no
            gradient, so Adam leaves its parameters and moments untouched, as with the paper's two
            separate optimisers).
        gamma: discount of the TD target.
        q_loss_weight: weight of L_q in the joint loss (paper: 1).
    """

    def __init__(self, *, policy: SQNPolicy, optim: OptimizerFactory, gamma: float = 0.9,
                 q_loss_weight: float = 1.0) -> None:
        super().__init__(policy=policy)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
        self.optim = self._create_optimizer(self.policy, optim)
        self.gamma = float(gamma)
        self.q_loss_weight = float(q_loss_weight)

    def _update_with_batch(self, batch: RolloutBatchProtocol) -> SQNTrainingStats:
        main_index = int(torch.randint(0, 2, (1,)).item())
        main, target = self.policy.networks[main_index], self.policy.networks[1 - main_index]
        logits, q_values = main(batch.obs)
        act = to_torch(batch.act, dtype=torch.long, device=logits.device)
        reward = to_torch(batch.rew, dtype=torch.float32, device=logits.device)
        terminated = to_torch(batch.terminated, dtype=torch.float32, device=logits.device)
        with torch.no_grad():
            _, next_main_q = main(batch.obs_next)
            _, next_target_q = target(batch.obs_next)
            next_act = next_main_q.argmax(dim=-1, keepdim=True)
            next_q = next_target_q.gather(1, next_act).squeeze(1)
            td_target = reward + self.gamma * (1.0 - terminated) * next_q
        current_q = q_values.gather(1, act.unsqueeze(1)).squeeze(1)
        q_loss = F.mse_loss(current_q, td_target)
        supervised_loss = F.cross_entropy(logits, act)
        loss = supervised_loss + self.q_loss_weight * q_loss
        self.optim.step(loss)
        return SQNTrainingStats(loss=loss.item(), supervised_loss=supervised_loss.item(), q_loss=q_loss.item())


def build_sqn(state_nets: tuple[StateNet, StateNet], n_items: int, optim: OptimizerFactory, gamma: float,
              action_space: gym.spaces.Discrete, observation_space: gym.Space | None) -> SQN:
    """SQN over two independent state nets (one per copy)."""
    networks = (SQNNetwork(state_nets[0], n_items), SQNNetwork(state_nets[1], n_items))
    policy = SQNPolicy(networks=networks, action_space=action_space, observation_space=observation_space)
    return SQN(policy=policy, optim=optim, gamma=gamma)
