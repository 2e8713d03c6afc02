"""Offline baselines trained from the log: discrete BCQ, CQL and CRR (tianshou 2) and SQN.

Buffer (`log_buffer`): each user's logged items, in time order and mapped to reward-table
columns (items outside the table are dropped, as the published KuaiRec code filters them), are
replayed through the same quit rule and mode as the environment:

- an episode starts empty; each logged item is one step whose reward is the logged label;
- in NX modes an item already shown in the current episode is skipped (it would be masked);
- the episode ends when the quit rule fires (terminated; the leaving step keeps its reward), at
  the mode's episode limit (truncated), or at the end of the user's log (truncated);
- observations have the environment's layout (user, history, feedback, turn) with the rewards
  scaled to [0, 1] by the log's label range; instead of the dense `mask` (n_items booleans per
  transition) they carry `masked_items`, the episode's earlier items (-1 padded), which the
  masked heads expand on the fly (`recsim.policy.actors.observation_mask`).

The replay is vectorised over users: one pass per log position, a few array operations each.

Algorithms (tianshou 2, `OfflineTrainerParams`): DiscreteBCQ (published unlikely-action
threshold 0.6), DiscreteCQL (QR-DQN based, 20 quantiles, min-Q weight 10), DiscreteCRR; all with
the tracker + MLP 64-64 state net and masked per-item heads, gamma 0.9; and SQN (`recsim.policy.sqn`,
built on tianshou's public classes: a supervised head and a double-Q head on the same state). Training
runs tianshou's `OfflineTrainer` epoch by epoch with the same checkpoints, logs and ground-truth
evaluation as `recsim.policy.model_based`.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from tianshou.algorithm import DiscreteBCQ, DiscreteCQL, DiscreteCRR
from tianshou.algorithm.imitation.discrete_bcq import DiscreteBCQPolicy
from tianshou.algorithm.modelfree.qrdqn import QRDQNPolicy
from tianshou.algorithm.modelfree.reinforce import DiscreteActorPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import Batch, ReplayBuffer
from tianshou.trainer import OfflineTrainerParams

from recsim.env import EnvConfig, QuitRule, observation_space
from recsim.errors import ConfigError, DataError
from recsim.evaluation.online import OnlineEvaluator
from recsim.io import write_json
from recsim.policy.actors import ItemCritic, MaskedItemHead, StateNet, build_tracker, categorical_from_logits
from recsim.policy.base import TianshouRecommender
from recsim.policy.checkpoint import open_logger
from recsim.policy.epochs import TrainResult, resume_state, run_epochs
from recsim.policy.methods import Budget
from recsim.policy.model_based import table_scale
from recsim.policy.runtime import torch_device, torch_threads
from recsim.policy.scaling import FeedbackScale
from recsim.policy.sqn import build_sqn
from recsim.policy.trackers import TrackerConfig
from recsim.progress import is_live
from recsim.reward.table import RewardTable
from recsim.seeding import child_seeds, seeded_scope

OFFLINE_ALGORITHMS = ("bcq", "cql", "crr", "sqn")
BCQ_MASK_MARGIN = 30.0
"""BCQ's heads mask relative to their smallest allowed output (see `MaskedItemHead`): its logit
regulariser averages the squared logits of every item, which a fixed -1e9 would swamp."""


class SeededReplayBuffer(ReplayBuffer):
    """A `ReplayBuffer` whose minibatch indices come from a generator that `reseed` restarts.

    tianshou's buffer draws indices from its own `RandomState(42)`, which advances across epochs
    and is not part of any checkpoint; reseeding it from (seed, epoch) at each epoch makes an
    epoch's minibatches depend on the seed alone, so a resumed run matches an uninterrupted one.
    Draws are uniform with replacement, as tianshou's.
    """

    def __init__(self, size: int, **kwargs: Any) -> None:
        super().__init__(size, **kwargs)
        self.sampler = np.random.default_rng(0)

    def reseed(self, seed: int) -> None:
        self.sampler = np.random.default_rng(seed)

    def sample_indices(self, batch_size: int | None) -> np.ndarray:
        if batch_size is None or batch_size <= 0 or self.stack_num != 1:
            return super().sample_indices(batch_size)
        return self.sampler.integers(0, len(self), size=batch_size)


@dataclasses.dataclass
class LoggedTransitions:
    """Transitions replayed from a log (see the module docstring), ordered by user and time.

    Attributes:
        obs / obs_next: dicts of arrays with a leading transition axis: user (N,), history
            (N, W), feedback (N, W) float32 scaled, masked_items (N, limit), turn (N,).
        act: int64 (N,) item columns; rew: float32 (N,) logged labels.
        terminated / truncated: bool (N,).
        feedback_scale: the scale applied to `feedback`.
    """

    obs: dict[str, np.ndarray]
    obs_next: dict[str, np.ndarray]
    act: np.ndarray
    rew: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    feedback_scale: FeedbackScale

    def __len__(self) -> int:
        return int(len(self.act))

    def to_buffer(self) -> SeededReplayBuffer:
        """A tianshou replay buffer holding exactly these transitions."""
        done = self.terminated | self.truncated
        return SeededReplayBuffer.from_data(obs=Batch(self.obs), act=self.act, rew=self.rew, terminated=self.terminated,
                                      truncated=self.truncated, done=done, obs_next=Batch(self.obs_next))


def _user_sequences(dataset, table: RewardTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-user padded (users (U,), columns (U, L) -1 padded, labels (U, L)) in time order."""
    train = dataset.train
    column_of_item = np.full(dataset.n_items, -1, dtype=np.int64)
    column_of_item[np.asarray(table.items, dtype=np.int64)] = np.arange(table.shape[1])
    columns = column_of_item[train["item"].to_numpy(np.int64)]
    keep = columns >= 0
    if not keep.any():
        raise DataError(dataset.name, "train.item", "no logged item is a column of the reward table")
    users = train["user"].to_numpy(np.int64)[keep]
    labels = train["label"].to_numpy(np.float32)[keep]
    columns = columns[keep]
    times = train["timestamp"].to_numpy(np.int64)[keep] if "timestamp" in train.columns else np.arange(len(users))
    order = np.lexsort((np.arange(len(users)), times, users))
    users, columns, labels = users[order], columns[order], labels[order]
    unique_users, starts, counts = np.unique(users, return_index=True, return_counts=True)
    position = np.arange(len(users)) - np.repeat(starts, counts)
    row = np.repeat(np.arange(len(unique_users)), counts)
    padded_columns = np.full((len(unique_users), int(counts.max())), -1, dtype=np.int64)
    padded_labels = np.zeros(padded_columns.shape, dtype=np.float32)
    padded_columns[row, position] = columns
    padded_labels[row, position] = labels
    return unique_users, padded_columns, padded_labels


def _observe(users: np.ndarray, recent: np.ndarray, feedback: np.ndarray, episode: np.ndarray, turn: np.ndarray,
             rows: np.ndarray, first: int) -> dict[str, np.ndarray]:
    """Observations of `rows` (item ids stored as int32 to halve the buffer)."""
    return {"user": users[rows], "history": recent[rows, first:].astype(np.int32),
            "feedback": feedback[rows].copy(), "masked_items": episode[rows].astype(np.int32),
            "turn": turn[rows].copy()}


def log_transitions(dataset, table: RewardTable, quit_rule: QuitRule, env_config: EnvConfig,
                    feedback_scale: FeedbackScale | None = None) -> LoggedTransitions:
    """Replay the training log through the quit rule (see the module docstring).

    Args:
        dataset: the `Dataset` whose `train` log is replayed.
        table: its columns define the action ids (the environments' item columns).
        quit_rule: the environment's quit rule over those columns (ignored in NX_k modes).
        env_config: episode limit, history window and mode of the environment.
        feedback_scale: the reward scale of the observations; default the log's label range.
    """
    mode = env_config.parsed_mode
    limit = env_config.episode_limit
    window = env_config.history_window
    users, columns, labels = _user_sequences(dataset, table)
    if feedback_scale is None:
        observed = labels[columns >= 0]
        feedback_scale = FeedbackScale(float(observed.min()), float(observed.max()))
    rule_window = quit_rule.window if mode.quit_enabled else 0
    n_users = len(users)
    width = max(window, rule_window, 1)
    recent = np.full((n_users, width), -1, dtype=np.int64)
    feedback = np.zeros((n_users, window), dtype=np.float32)
    episode = np.full((n_users, limit), -1, dtype=np.int64)
    turn = np.zeros(n_users, dtype=np.int64)
    parts: list[dict[str, np.ndarray]] = []
    last_position = (columns >= 0).sum(axis=1) - 1
    for t in range(columns.shape[1]):
        action = columns[:, t]
        active = action >= 0
        if mode.mask_recommended:
            active &= ~(episode == action[:, None]).any(axis=1)
        rows = np.flatnonzero(active)
        if rows.size == 0:
            continue
        a = action[rows]
        before = _observe(users, recent, feedback, episode, turn, rows, width - window)
        if rule_window:
            quit_now = quit_rule.should_quit(recent[rows, width - rule_window:], a)
        else:
            quit_now = np.zeros(len(rows), dtype=bool)
        reward = labels[rows, t]
        recent[rows, :-1] = recent[rows, 1:]
        recent[rows, -1] = a
        feedback[rows, :-1] = feedback[rows, 1:]
        feedback[rows, -1] = feedback_scale.apply(reward)
        episode[rows, turn[rows]] = a
        turn[rows] += 1
        after = _observe(users, recent, feedback, episode, turn, rows, width - window)
        at_limit = turn[rows] >= limit
        end_of_log = last_position[rows] == t
        terminated = quit_now
        truncated = ~quit_now & (at_limit | end_of_log)
        parts.append({"row": rows, "t": np.full(len(rows), t), "act": a, "rew": reward,
                      "terminated": terminated, "truncated": truncated,
                      **{f"obs.{k}": v for k, v in before.items()}, **{f"next.{k}": v for k, v in after.items()}})
        done_rows = rows[terminated | truncated]
        recent[done_rows] = -1
        feedback[done_rows] = 0.0
        episode[done_rows] = -1
        turn[done_rows] = 0
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((merged["t"], merged["row"]))
    merged = {k: v[order] for k, v in merged.items()}
    obs = {k[4:]: v for k, v in merged.items() if k.startswith("obs.")}
    obs_next = {k[5:]: v for k, v in merged.items() if k.startswith("next.")}
    return LoggedTransitions(obs, obs_next, merged["act"].astype(np.int64), merged["rew"].astype(np.float32),
                             merged["terminated"].astype(bool), merged["truncated"].astype(bool), feedback_scale)


@dataclasses.dataclass(frozen=True)
class OfflineAgentConfig:
    """An offline learner (published values where known).

    Attributes:
        algorithm: "bcq", "cql", "crr" or "sqn".
        hidden_sizes: the shared MLP after the tracker.
        lr: Adam learning rate.
        gamma: discount (as the model-based policies, 0.9).
        target_update_freq: gradient steps between target-network copies (0: none, CQL / CRR; SQN
            uses its two alternating copies instead).
        unlikely_action_threshold: BCQ's tau (published 0.6).
        imitation_logits_penalty: BCQ's logit regulariser.
        num_quantiles: CQL's quantiles (published 20).
        min_q_weight: CQL / CRR conservative weight (published 10).
        crr_mode: CRR's policy-improvement weight ("exp", "binary", "all").
        tracker: the state tracker.
    """

    algorithm: str = "bcq"
    hidden_sizes: tuple[int, ...] = (64, 64)
    lr: float = 1e-3
    gamma: float = 0.9
    target_update_freq: int = 320
    unlikely_action_threshold: float = 0.6
    imitation_logits_penalty: float = 1e-2
    num_quantiles: int = 20
    min_q_weight: float = 10.0
    crr_mode: str = "exp"
    tracker: TrackerConfig = dataclasses.field(default_factory=TrackerConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        if isinstance(self.tracker, dict):
            object.__setattr__(self, "tracker", TrackerConfig(**self.tracker))
        if self.algorithm not in OFFLINE_ALGORITHMS:
            raise ConfigError(f"OfflineAgentConfig.algorithm: {self.algorithm!r} is not one of {OFFLINE_ALGORITHMS}")
        if not 0 <= self.unlikely_action_threshold < 1:
            raise ConfigError("OfflineAgentConfig.unlikely_action_threshold: must lie in [0, 1)")
        if self.num_quantiles < 2:
            raise ConfigError(f"OfflineAgentConfig.num_quantiles: must be >= 2, got {self.num_quantiles}")
        if self.target_update_freq < 0:
            raise ConfigError("OfflineAgentConfig.target_update_freq: must be >= 0")
        if self.crr_mode not in ("exp", "binary", "all"):
            raise ConfigError(f"OfflineAgentConfig.crr_mode: {self.crr_mode!r} is not exp, binary or all")


@dataclasses.dataclass(frozen=True)
class OfflineConfig:
    """Everything that determines an offline training run (saved as `config.json`).

    Fields as in `recsim.policy.model_based.ModelBasedConfig`.
    """

    method: str
    budget: Budget
    agent: OfflineAgentConfig = dataclasses.field(default_factory=OfflineAgentConfig)
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    torch_threads: int | None = 1

    def __post_init__(self) -> None:
        torch_device(self.device)


def build_offline_algorithm(agent: OfflineAgentConfig, n_items: int, tracker, action_space, observation_space):
    """The tianshou offline algorithm with masked per-item heads over a shared state net.

    SQN's second copy gets a deep copy of `tracker` (the same initial item embeddings) and fresh
    draws of its MLP and heads.
    """
    state_net = StateNet(tracker, agent.hidden_sizes)
    optim = AdamOptimizerFactory(lr=agent.lr)
    if agent.algorithm == "sqn":
        second = StateNet(copy.deepcopy(tracker), agent.hidden_sizes)
        return build_sqn((state_net, second), n_items, optim, agent.gamma, action_space, observation_space)
    if agent.algorithm == "bcq":
        freq = max(agent.target_update_freq, 1)
        bcq_policy = DiscreteBCQPolicy(model=MaskedItemHead(state_net, n_items, relative_margin=BCQ_MASK_MARGIN),
                                       imitator=MaskedItemHead(state_net, n_items, relative_margin=BCQ_MASK_MARGIN),
                                       target_update_freq=freq,
                                       unlikely_action_threshold=agent.unlikely_action_threshold,
                                       action_space=action_space, observation_space=observation_space)
        return DiscreteBCQ(policy=bcq_policy, optim=optim, gamma=agent.gamma, target_update_freq=freq,
                           imitation_logits_penalty=agent.imitation_logits_penalty)
    if agent.algorithm == "cql":
        cql_policy = QRDQNPolicy(model=MaskedItemHead(state_net, n_items, agent.num_quantiles),
                                 action_space=action_space, observation_space=observation_space)
        return DiscreteCQL(policy=cql_policy, optim=optim, min_q_weight=agent.min_q_weight, gamma=agent.gamma,
                           num_quantiles=agent.num_quantiles, target_update_freq=agent.target_update_freq)
    crr_policy = DiscreteActorPolicy(actor=MaskedItemHead(state_net, n_items), dist_fn=categorical_from_logits,
                                     deterministic_eval=True, action_space=action_space,
                                     observation_space=observation_space)
    crr_mode = cast(Literal["exp", "binary", "all"], agent.crr_mode)  # checked in OfflineAgentConfig.__post_init__
    return DiscreteCRR(policy=crr_policy, critic=ItemCritic(state_net, n_items), optim=optim,
                       gamma=agent.gamma, policy_improvement_mode=crr_mode, min_q_weight=agent.min_q_weight,
                       target_update_freq=agent.target_update_freq)


def train_offline(config: OfflineConfig, transitions: LoggedTransitions, n_items: int, out_dir: str | os.PathLike,
                  *, evaluator: OnlineEvaluator | None = None, item_embeddings: np.ndarray | None = None,
                  user_embeddings: np.ndarray | None = None, resume: bool = False,
                  extra_config: dict[str, Any] | None = None) -> TrainResult:
    """Train an offline algorithm on logged transitions; evaluate it with `evaluator`.

    Outputs in `out_dir` as for `recsim.policy.model_based.train_model_based`.
    """
    with torch_threads(config.torch_threads):
        return _train_offline(config, transitions, n_items, out_dir, evaluator=evaluator,
                              item_embeddings=item_embeddings, user_embeddings=user_embeddings, resume=resume,
                              extra_config=extra_config)


def _train_offline(config: OfflineConfig, transitions: LoggedTransitions, n_items: int, out_dir: str | os.PathLike,
                   *, evaluator: OnlineEvaluator | None, item_embeddings: np.ndarray | None,
                   user_embeddings: np.ndarray | None, resume: bool,
                   extra_config: dict[str, Any] | None) -> TrainResult:
    import gymnasium as gym

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    device = torch_device(config.device)
    budget = config.budget
    if len(transitions) == 0:
        raise DataError("training log", "train", "no transitions after replaying the log")
    (torch_seed,) = child_seeds(config.seed, 1)
    window = transitions.obs["history"].shape[1]
    limit = transitions.obs["masked_items"].shape[1]
    action_space = gym.spaces.Discrete(n_items)
    obs_space = observation_space(int(transitions.obs["user"].max()) + 1, n_items, window, limit)
    with seeded_scope(torch_seed):
        tracker = build_tracker(config.agent.tracker, n_items, item_embeddings, window, torch_seed, user_embeddings)
        algorithm = build_offline_algorithm(config.agent, n_items, tracker, action_space, obs_space).to(device)
    write_json(out / "config.json", {"offline": config, "n_transitions": len(transitions),
                                     "feedback_scale": transitions.feedback_scale, **(extra_config or {})})
    history, counters, resumed = resume_state(algorithm, out, resume)
    logger = open_logger(out, counters)
    buffer = transitions.to_buffer()
    params = OfflineTrainerParams(buffer=buffer, max_epochs=budget.epochs,
                                  epoch_num_steps=budget.epoch_num_steps, batch_size=budget.batch_size,
                                  test_collector=None, logger=logger, resume_from_log=resumed,
                                  verbose=False, show_progress=config.progress and is_live())
    trainer = algorithm.create_trainer(params)
    trainer.reset()
    scale = table_scale(evaluator.table) if evaluator is not None else transitions.feedback_scale
    recommender = TianshouRecommender(algorithm.policy, config.method, scale, mask_history=True)  # trained masked

    def run_epoch(epoch: int, epoch_seed: int) -> dict[str, Any]:
        buffer.reseed(epoch_seed)
        with seeded_scope(epoch_seed, config.device):
            stats = trainer.execute_epoch()
        loss = stats.training_stat.get_loss_stats_dict().get("loss") if stats.training_stat is not None else None
        return {"epoch": epoch, "gradient_step": logger.counters[2],
                "loss": float(loss) if loss is not None else float("nan")}

    return run_epochs(method=config.method, seed=config.seed, device=config.device, progress=config.progress,
                      budget=budget, algorithm=algorithm, logger=logger, recommender=recommender,
                      evaluator=evaluator, out=out, history=history, first_epoch=counters[0] + 1,
                      run_epoch=run_epoch, bookkeeping=("epoch", "gradient_step", "loss"), postfix="loss",
                      started=start)
