"""SQN: the joint loss (cross-entropy + double-Q TD) by hand, one copy trained per step, imitation."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tianshou.algorithm.optim import AdamOptimizerFactory

from recsim.env import CategoryOverlapQuit, EnvConfig
from recsim.policy.actors import StateNet
from recsim.policy.offline import log_transitions
from recsim.policy.sqn import build_sqn
from recsim.policy.trackers import TrackerConfig, make_tracker
from recsim.reward.table import RewardTable

GAMMA = 0.9


def _hand_sqn(hand_dataset, lr: float = 1e-3):
    table = RewardTable(np.zeros((1, 6)), np.zeros((1, 6)), [0], np.arange(6))
    rule = CategoryOverlapQuit(hand_dataset.item_categories, leave_threshold=0, window=2)
    transitions = log_transitions(hand_dataset, table, rule, EnvConfig(max_turn=30, history_window=3, mode="NX_0"))
    torch.manual_seed(0)
    nets = tuple(StateNet(make_tracker(TrackerConfig(embedding_dim=8), 6), (16,)) for _ in range(2))
    sqn = build_sqn(nets, 6, AdamOptimizerFactory(lr=lr), GAMMA, gym.spaces.Discrete(6), None)
    buffer = transitions.to_buffer()
    return sqn, transitions, buffer[np.arange(len(buffer))]


def _parameters(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_sqn_loss_is_cross_entropy_plus_double_q_td_and_trains_one_copy(hand_dataset):
    sqn, transitions, batch = _hand_sqn(hand_dataset)
    torch.manual_seed(3)
    main_index = int(torch.randint(0, 2, (1,)).item())
    main, target = sqn.policy.networks[main_index], sqn.policy.networks[1 - main_index]
    with torch.no_grad():
        logits, q = main(batch.obs)
        _, next_main_q = main(batch.obs_next)
        _, next_target_q = target(batch.obs_next)
    act = torch.as_tensor(transitions.act)
    chosen = next_main_q.argmax(dim=1)
    # the next state's argmax never picks an item already shown in the episode
    assert all(int(chosen[i]) not in transitions.obs_next["masked_items"][i] for i in range(len(act)))
    bootstrap = next_target_q[torch.arange(len(act)), chosen]
    rew = torch.as_tensor(transitions.rew)
    td_target = rew + GAMMA * (1 - torch.as_tensor(transitions.terminated, dtype=torch.float32)) * bootstrap
    expected = F.cross_entropy(logits, act) + F.mse_loss(q[torch.arange(len(act)), act], td_target)
    before_main, before_target = _parameters(main), _parameters(target)

    torch.manual_seed(3)
    stats = sqn._update_with_batch(batch)

    assert stats.loss == pytest.approx(expected.item(), rel=1e-5)
    assert not all(torch.equal(a, b) for a, b in zip(before_main, main.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(before_target, target.parameters()))


def test_sqn_recommends_with_its_supervised_head_and_imitates_the_log(hand_dataset):
    sqn, transitions, batch = _hand_sqn(hand_dataset, lr=1e-2)
    torch.manual_seed(0)
    for _ in range(300):
        sqn._update_with_batch(batch)
    sqn.policy.eval()
    with torch.no_grad():
        result = sqn.policy(batch)
    logits = result.logits
    assert torch.equal(result.act, logits.argmax(dim=1))
    # rows 0 and 3 share one observation (an empty episode start) with different logged items
    act = result.act.numpy()
    assert act[0] in (0, 3) and act[3] in (0, 3)
    assert act[[1, 2, 4, 5]].tolist() == transitions.act[[1, 2, 4, 5]].tolist()
