"""A policy on disk: a JSON description of how to rebuild it, plus its weights.

Every `train_method` output folder holds one, so a policy can be evaluated again later (`recsim
policy evaluate`, the pipeline's evaluation stages) without retraining:

- `policy.json`: the format version, the run's resolved `MethodConfig`, and for a trained policy
  the shapes its networks were built with (number of items, item-embedding width) and the
  feedback scale of its observations;
- `policy.pt` (trained policies only): the tianshou policy's `state_dict`, read back with
  `torch.load(..., weights_only=True)`, so a file of a run folder never runs code when loaded.

A static baseline holds no weights: it is rebuilt from the same inputs (dataset, reward table)
it was built from. A folder written by the earlier format (a pickled object in `policy.pt` and
no `policy.json`) is refused with a one-line error; retrain the method.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from tianshou.algorithm.algorithm_base import Policy

from recsim.env import observation_space
from recsim.errors import ConfigError, DataError
from recsim.io import atomic_path, read_json, write_json
from recsim.policy.base import Recommender, TianshouRecommender
from recsim.policy.scaling import FeedbackScale

if TYPE_CHECKING:
    from recsim.policy.train import MethodConfig, MethodInputs

DESCRIPTION_FILE = "policy.json"
WEIGHTS_FILE = "policy.pt"
FORMAT = 2


def save_policy(policy: Recommender, config: MethodConfig, directory: str | os.PathLike,
                embedding_dim: int | None = None, user_embedding_shape: tuple[int, ...] | None = None) -> Path:
    """Write `policy` (trained by `config`) into `directory`; returns the description's path.

    Args:
        embedding_dim: the width of the initial item embeddings the tracker was built with
            (None: learned from scratch, `config.agent.tracker.embedding_dim`).
        user_embedding_shape: (n_user_ids, d_u) of the tracker's user embeddings (None: none).
    """
    directory = Path(directory)
    description: dict[str, Any] = {"format": FORMAT, "config": config.to_dict()}
    if isinstance(policy, TianshouRecommender):
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            torch.save(policy.policy.state_dict(), tmp)
        scale = policy.feedback_scale
        action_space = policy.policy.action_space
        assert isinstance(action_space, gym.spaces.Discrete)  # recsim's policies pick one item column
        description.update(n_items=int(action_space.n), embedding_dim=embedding_dim,
                           user_embedding_shape=None if user_embedding_shape is None
                           else [int(n) for n in user_embedding_shape],
                           feedback_scale=None if scale is None else {"low": scale.low, "high": scale.high})
    write_json(directory / DESCRIPTION_FILE, description)
    return directory / DESCRIPTION_FILE


def saved_config(directory: str | os.PathLike) -> MethodConfig:
    """The `MethodConfig` a saved policy was trained with."""
    from recsim.policy.train import MethodConfig

    path = Path(directory) / DESCRIPTION_FILE
    description = _description(Path(directory))
    try:
        return MethodConfig.from_dict(description["config"], str(path))
    except (KeyError, TypeError) as error:
        raise DataError(str(path), "config", f"not a saved method config ({error})") from None
    except ConfigError as error:
        raise DataError(str(path), "config", str(error)) from None


def load_policy(directory: str | os.PathLike, inputs: MethodInputs | None = None, device: str = "cpu") -> Recommender:
    """The policy saved in `directory` (a `train_method` output folder).

    Args:
        inputs: what a static baseline is rebuilt from (required for those).
        device: the torch device of a trained policy.

    Raises:
        DataError: a file is missing, unreadable, of the earlier pickled format, or does not
            match the network its description builds.
    """
    from recsim.policy.train import static_policy

    directory = Path(directory)
    config = saved_config(directory)
    if config.family == "static":
        if inputs is None:
            raise DataError(str(directory / DESCRIPTION_FILE), "config",
                            f"the static baseline {config.method!r} is rebuilt from its inputs; none were given")
        return static_policy(config, inputs)
    description = _description(directory)
    policy = _network(config, description, directory / DESCRIPTION_FILE)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise DataError(str(weights), None, "missing: the saved policy has no weights")
    try:
        state = torch.load(weights, map_location=device, weights_only=True)
        policy.load_state_dict(state)
    except Exception as error:  # a corrupt, foreign or planted file is a user-facing data problem
        raise DataError(str(weights), None, f"not loadable as the policy's weights ({type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else ''})") from None
    scale = description.get("feedback_scale")
    return TianshouRecommender(policy.to(device), config.label,
                               FeedbackScale(float(scale["low"]), float(scale["high"])) if scale else None,
                               mask_history=trained_masked(config))


def trained_masked(config: MethodConfig) -> bool:
    """Whether the policy of `config` trained with the NX mask (offline methods always do: their
    log replay carries each episode's earlier items), so it masks its history when evaluated
    (`TianshouRecommender.mask_history`)."""
    return config.family == "offline" or config.env.parsed_mode.mask_recommended


def _description(directory: Path) -> dict[str, Any]:
    path = directory / DESCRIPTION_FILE
    if not path.is_file():
        if (directory / WEIGHTS_FILE).is_file():
            raise DataError(str(directory / WEIGHTS_FILE), None, "written by an earlier recsim as a pickle, which is "
                            "never loaded; train the method again")
        raise DataError(str(path), None, "no saved policy (train one with `recsim policy train`)")
    try:
        description = read_json(path)
    except (OSError, ValueError) as error:
        raise DataError(str(path), None, f"unreadable ({error})") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        found = description.get("format") if isinstance(description, dict) else None
        raise DataError(str(path), "format", f"expected format {FORMAT}, found {found!r}")
    return description


def _user_embedding_shape(value: Any, path: Path) -> tuple[int, int] | None:
    """The saved (n_user_ids, d_u) of the tracker's user embeddings, or None."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(n, int) and n > 0 for n in value):
        raise DataError(str(path), "user_embedding_shape", f"expected [n_users, dim] positive integers, got {value!r}")
    return int(value[0]), int(value[1])


def _network(config: MethodConfig, description: dict[str, Any], path: Path) -> Policy:
    """The untrained tianshou policy of `config` with the shapes of `description`."""
    from recsim.policy.actors import build_tracker
    from recsim.policy.model_based import AgentConfig, build_agent
    from recsim.policy.offline import OfflineAgentConfig, build_offline_algorithm

    try:
        n_items = int(description["n_items"])
        dim = description.get("embedding_dim")
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(str(path), "n_items", f"missing or not an integer ({error})") from None
    users = _user_embedding_shape(description.get("user_embedding_shape"), path)
    env = config.env
    agent = config.agent
    assert isinstance(agent, (AgentConfig, OfflineAgentConfig))  # load_policy rebuilt a static baseline before
    embeddings = None if dim is None else np.zeros((n_items, int(dim)), dtype=np.float32)
    tracker = build_tracker(agent.tracker, n_items, embeddings, env.history_window,
                            user_embeddings=None if users is None else np.zeros(users, dtype=np.float32))
    action_space = gym.spaces.Discrete(n_items)
    obs_space = observation_space(1, n_items, env.history_window, env.limit_for(n_items))
    if isinstance(agent, AgentConfig):
        return build_agent(agent, n_items, tracker, action_space, obs_space).policy
    return build_offline_algorithm(agent, n_items, tracker, action_space, obs_space).policy
