"""Simulated users for training and evaluating recommendation policies (docs/protocol.md).

- `RecEnv` (`single`): one user per episode, gymnasium API; the readable reference.
- `BatchedRecEnv` (`batched`): many users stepped with array operations; `TianshouVectorEnv`
  (`tianshou_adapter`, imported on first use: it needs tianshou and torch) puts it behind
  tianshou 2's vector-env contract for its collectors.
- `quit_rules`: when a user leaves (category overlap, item distance, none).
- `modes`: FB, NX_0, NX_k evaluation modes.
- `config`: `EnvConfig`, the observation layout and the seeded user sampler.

Rewards come from a `recsim.reward.table.RewardTable` through `recsim.reward.penalty`; the
ground-truth environment is the same environment over `RewardTable.from_truth(...)`.

Training inside a learned simulator with tianshou (DORL settings)::

    table = RewardTable.load(model_dir)
    reward = PenalisedReward(table, preset("kuairec", "dorl"), EntropyTable.load(model_dir))
    quit_rule = make_quit_rule(QuitRuleConfig("category", window=4), item_categories=ds.item_categories)
    env = BatchedRecEnv(table, quit_rule, EnvConfig(mode="FB"), reward, num_envs=100, seed=0)
    collector = Collector(algorithm, TianshouVectorEnv(env), VectorReplayBuffer(20_000, 100))

Evaluating on the ground truth in NX_0 (raw reward, the mask in `obs["mask"]`)::

    truth = RewardTable.from_truth(ds.truth, ds.truth_users, ds.truth_items)
    env = BatchedRecEnv(truth, quit_rule, EnvConfig(mode="NX_0"), num_envs=1000, seed=1)
    obs, _ = env.reset()
    obs, rew, terminated, truncated, info = env.step(actions)  # reset finished envs yourself

The observation of every env is a dict (`config.observation_space`): `user` (dataset user id),
`history` (last W item columns, -1 padded, most recent last), `feedback` (their rewards,
float32), `mask` (bool n_items, True = allowed) and `turn` (steps taken).
"""
from recsim.env.batched import BatchedRecEnv
from recsim.env.config import OBS_KEYS, EnvConfig, observation_space
from recsim.env.modes import FB, NX_0, Mode, parse_mode
from recsim.env.quit_rules import (
    CategoryOverlapQuit,
    ItemDistanceQuit,
    NoQuit,
    QuitRule,
    QuitRuleConfig,
    item_distance_matrix,
    make_quit_rule,
    table_quit_rule,
)
from recsim.env.single import RecEnv

__all__ = [
    "BatchedRecEnv", "TianshouVectorEnv", "RecEnv", "EnvConfig", "OBS_KEYS", "observation_space",
    "Mode", "FB", "NX_0", "parse_mode", "QuitRule", "QuitRuleConfig", "NoQuit", "CategoryOverlapQuit",
    "ItemDistanceQuit", "item_distance_matrix", "make_quit_rule", "table_quit_rule",
]


def __getattr__(name: str):
    if name == "TianshouVectorEnv":
        from recsim.env.tianshou_adapter import TianshouVectorEnv

        return TianshouVectorEnv
    raise AttributeError(f"module 'recsim.env' has no attribute {name!r}")
