"""What a pipeline needs to know about a method: `Algorithm` (train, load, needs) and its context.

Each algorithm says what it needs (the user model, a reward table, penalties) and how to train
it into a stage folder and load it back as a policy with `act(observations, mask) -> items`
(`recsim.evaluation.rollout.Policy`). The algorithms themselves are adapters over
`recsim.policy` (`recsim.pipeline.agents.AGENT_ALGORITHMS`, one explicit dict): "a2c" / "ppo"
(the model-based presets mbpo, ips, mopo, dorl, roler, ours, chosen by the method's name or
`preset`), "bcq", "cql", "crr", "sqn" (offline) and the static "egreedy", "ucb", "greedy",
"quit_aware", "popular", "random".
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recsim.errors import ConfigError


@dataclasses.dataclass
class MethodContext:
    """Everything a method's training and loading may read (built by the pipeline stages).

    Attributes:
        dataset: the `Dataset`.
        method: the `MethodSpec`.
        seed: the run seed.
        table: the method's reward table (user model or kNN; None if the method needs none).
        user_model_dir: folder of the trained user model (None if not trained).
        env: resolved `EnvConfig` overrides (dict) of the spec.
        quit: resolved `QuitRuleConfig` overrides (dict) of the spec.
        progress: show progress bars.
    """

    dataset: Any
    method: Any
    seed: int
    table: Any = None
    user_model_dir: Path | None = None
    env: dict[str, Any] = dataclasses.field(default_factory=dict)
    quit: dict[str, Any] = dataclasses.field(default_factory=dict)
    progress: bool = False


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """How to train and load one family of methods.

    Attributes:
        train: `train(context, out_dir) -> dict` writes the policy into `out_dir`; returns its
            resolved config (written to the stage's config.json by the caller).
        load: `load(context, policy_dir) -> policy`.
        needs_table: the method reads a reward table (user model or kNN).
        needs_user_model: the method needs the trained user model even when `reward` is knn.
        uses_penalty: the method trains in the penalised simulator (penalty presets apply).
        params: names of `params` the algorithm accepts (None: checked by the algorithm itself).
        check: `check(params)` builds the algorithm's own configs from `params` so that invalid
            values fail when the spec is loaded (raises ConfigError).
    """

    train: Callable[[MethodContext, Path], dict[str, Any]]
    load: Callable[[MethodContext, Path], Any]
    needs_table: bool = False
    needs_user_model: bool = False
    uses_penalty: bool = False
    params: tuple[str, ...] | None = ()
    check: Callable[[dict[str, Any]], None] | None = None


def algorithms() -> dict[str, Algorithm]:
    """Every algorithm, by name (`recsim.pipeline.agents.AGENT_ALGORITHMS`)."""
    from recsim.pipeline.agents import AGENT_ALGORITHMS

    return dict(AGENT_ALGORITHMS)


def get_algorithm(name: str, where: str = "methods") -> Algorithm:
    table = algorithms()
    if name not in table:
        raise ConfigError(f"{where}: unknown algorithm {name!r}; choose from {', '.join(sorted(table))}")
    return table[name]


def check_method(method: Any, file: str) -> None:
    """Raise ConfigError (naming `file` and the key) for an unknown algorithm or parameter."""
    algorithm = get_algorithm(method.algorithm, f"{file}: methods.{method.name}.algorithm")
    if algorithm.params is not None:
        unknown = sorted(set(method.params) - set(algorithm.params))
        if unknown:
            raise ConfigError(f"{file}: methods.{method.name}.params.{unknown[0]}: unknown key; "
                              f"{method.algorithm} takes {', '.join(algorithm.params) or 'no params'}")
    if algorithm.check is not None:
        try:
            algorithm.check(method.params)
        except ConfigError as error:
            raise ConfigError(f"{file}: methods.{method.name}.params: {error}") from None
        except TypeError as error:
            raise ConfigError(f"{file}: methods.{method.name}.params: {error}") from None
    if method.penalty and not algorithm.uses_penalty:
        raise ConfigError(f"{file}: methods.{method.name}.penalty: {method.algorithm} does not train in the "
                          "penalised simulator")
