"""Methods and training budgets as data (the published settings: docs/methods.md).

A `Method` names everything that distinguishes one published method from another: which
family trains it (model-based: the actor-critic learner of `recsim.policy.model_based.AgentConfig`,
PPO by default, the published A2C as its "published" preset; offline from the log; static), which
reward table its simulator reads, which uncertainty it penalises and with what weights. MBPO, MOPO,
DORL and ROLeR are one algorithm (the learner in the penalised simulator) with different data.

Per-dataset penalty weights come from `recsim.reward.penalty.preset` (the DORL paper's values,
documented defaults elsewhere). The entropy table is always the corrected one (a key with a
single successor has entropy 0; docs/protocol.md, deviations), for every method.

"ours" was fixed before any comparison was run: ROLeR's kNN reward mean, with the user-model
ensemble's *disagreement* (std of member means, reward units) as the uncertainty, penalised by
one standard deviation (lambda_U = 1: the reward becomes a lower confidence bound, the usual
pessimism of model-based offline RL), plus DORL's corrected entropy bonus with DORL's lambda_E.
ROLeR's own uncertainty (the variance of the neighbours' feedback) measures how much neighbours
disagree about an item, which is partly genuine taste diversity; the ensemble's disagreement
measures what the data cannot pin down, which is what pessimism should target.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from recsim.errors import ConfigError
from recsim.reward.penalty import PenaltyConfig
from recsim.reward.penalty import preset as penalty_preset

FAMILIES = ("model_based", "offline", "static")
REWARD_SOURCES = ("user_model", "user_model_ips", "knn", "truth", "none")
UNCERTAINTY_SOURCES = ("table", "user_model_disagreement", "none")


@dataclasses.dataclass(frozen=True)
class Method:
    """One method of the comparison.

    Attributes:
        name: the method's name (lower case).
        family: "model_based" (A2C in the penalised simulator), "offline" (tianshou offline
            algorithm on the logged buffer) or "static" (no training beyond the user model).
        description: one line for `recsim policy list`.
        reward: the reward table it reads: the DeepFM ensemble ("user_model"), the ensemble
            trained with IPS weights ("user_model_ips"), ROLeR's kNN table ("knn"), the dataset's
            ground truth ("truth": the gt_oracle ceiling) or "none".
        uncertainty: "table" (the reward table's own uncertainty), "user_model_disagreement"
            (std of the ensemble members' means, over the reward table's mean), or "none".
        penalty_method: the `recsim.reward.penalty` preset of its weights (mbpo, mopo, dorl,
            roler), or None when `lambda_U` / `lambda_E` are given here.
        lambda_U: explicit uncertainty weight (used when penalty_method is None).
        lambda_E: explicit entropy weight (used when penalty_method is None).
        reference: a privileged reference row, not an offline method: it reads what an offline
            method cannot (the evaluation's quit rule, the true reward); reports show it apart.

    The settings of what trains it are the defaults of its family's config (`AgentConfig`,
    `OfflineAgentConfig`, `StaticConfig`: the published values), overridden per run.
    """

    name: str
    family: str
    description: str
    reward: str = "none"
    uncertainty: str = "table"
    penalty_method: str | None = None
    lambda_U: float | None = None
    lambda_E: float | None = None
    reference: bool = False

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"Method.family: {self.family!r} is not one of {FAMILIES}")
        if self.reward not in REWARD_SOURCES:
            raise ConfigError(f"Method.reward: {self.reward!r} is not one of {REWARD_SOURCES}")
        if self.uncertainty not in UNCERTAINTY_SOURCES:
            raise ConfigError(f"Method.uncertainty: {self.uncertainty!r} is not one of {UNCERTAINTY_SOURCES}")

    def penalty(self, dataset: str) -> PenaltyConfig:
        """The penalised-reward weights of this method on `dataset` (model-based methods)."""
        if self.penalty_method is not None:
            return penalty_preset(dataset, self.penalty_method)
        return PenaltyConfig(float(self.lambda_U or 0.0), float(self.lambda_E or 0.0))


def ours_penalty(dataset: str) -> PenaltyConfig:
    """"ours": lambda_U = 1 on the ensemble disagreement, DORL's lambda_E on the dataset."""
    return PenaltyConfig(1.0, penalty_preset(dataset, "dorl").lambda_E)


METHODS: dict[str, Method] = {
    "mbpo": Method("mbpo", "model_based", "the learner in the DeepFM-ensemble simulator, no penalty",
                         reward="user_model", penalty_method="mbpo"),
    "ips": Method("ips", "model_based", "the learner in the simulator of an IPS-weighted DeepFM, no penalty",
                        reward="user_model_ips", penalty_method="mbpo"),
    "mopo": Method("mopo", "model_based", "the learner, reward minus lambda_U x ensemble max variance",
                         reward="user_model", penalty_method="mopo"),
    "dorl": Method("dorl", "model_based", "MOPO plus lambda_E x k-order entropy bonus (DORL, SIGIR'23)",
                         reward="user_model", penalty_method="dorl"),
    "roler": Method("roler", "model_based", "kNN reward and kNN variance with DORL's bonus (ROLeR, CIKM'24)",
                          reward="knn", penalty_method="roler"),
    "ours": Method("ours", "model_based",
                         "kNN reward, minus 1 x ensemble disagreement (LCB), DORL's corrected entropy bonus",
                         reward="knn", uncertainty="user_model_disagreement", penalty_method=None),
    "gt_oracle": Method("gt_oracle", "model_based",
                        "the same learner in a simulator whose reward is the ground truth (the ceiling; "
                        "reference, not offline)",
                        reward="truth", penalty_method="mbpo", reference=True),
    "bcq": Method("bcq", "offline", "discrete BCQ on the logged buffer (tianshou)"),
    "cql": Method("cql", "offline", "discrete CQL (QR-DQN based) on the logged buffer (tianshou)"),
    "crr": Method("crr", "offline", "discrete CRR on the logged buffer (tianshou)"),
    "sqn": Method("sqn", "offline", "SQN: supervised head + double-Q head on the logged buffer (SIGIR'20)"),
    "random": Method("random", "static", "uniformly random allowed item"),
    "popular": Method("popular", "static", "most logged positives first"),
    "greedy": Method("greedy", "static", "highest user-model reward", reward="user_model"),
    "egreedy": Method("egreedy", "static", "greedy on the user model, random with probability 0.3",
                            reward="user_model"),
    "ucb": Method("ucb", "static", "user-model reward plus c x sqrt(uncertainty)",
                        reward="user_model"),
    "quit_aware": Method("quit_aware", "static",
                               "greedy on the user model among items the quit rule lets the user stay after "
                               "(knows the rule; not published; reference, not offline)", reward="user_model",
                               reference=True),
}
"""Every method, by name."""


def get_method(name: str) -> Method:
    """The method `name` of `METHODS` (ConfigError naming the choices otherwise)."""
    key = name.lower()
    if key not in METHODS:
        raise ConfigError(f"method: unknown {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[key]


def method_penalty(preset: Method, dataset: str) -> PenaltyConfig:
    """The preset's weights on `dataset` ("ours" has its own rule, see `ours_penalty`)."""
    if preset.name == "ours":
        return ours_penalty(dataset)
    return preset.penalty(dataset)


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long a policy trains.

    Attributes:
        epochs: training epochs (published: 200).
        epoch_num_steps: environment steps per epoch (model-based; published 100,000) or
            gradient steps per epoch (offline).
        num_envs: parallel simulated users (published 100).
        episodes_per_collect: episodes collected before each A2C update (published 100).
        batch_size: A2C minibatch (published 1024); offline minibatch.
        eval_every: evaluate in the ground-truth environment every this many epochs.
        eval_episodes: episodes of those evaluations (None: the evaluation's own `episodes`, so
            the last epoch's evaluation is the final one).
    """

    epochs: int
    epoch_num_steps: int
    num_envs: int = 100
    episodes_per_collect: int = 100
    batch_size: int = 1024
    eval_every: int = 1
    eval_episodes: int | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) is not None and getattr(self, field.name) < 1:
                raise ConfigError(f"Budget.{field.name}: must be >= 1, got {getattr(self, field.name)}")


BUDGETS: dict[str, dict[str, Budget]] = {
    "cpu": {
        "model_based": Budget(epochs=5, epoch_num_steps=20_000, num_envs=100, episodes_per_collect=100,
                              batch_size=1024, eval_every=1),
        "offline": Budget(epochs=5, epoch_num_steps=500, batch_size=64, eval_every=1),
    },
    "paper": {
        "model_based": Budget(epochs=200, epoch_num_steps=100_000, num_envs=100, episodes_per_collect=100,
                              batch_size=1024, eval_every=1),
        "offline": Budget(epochs=200, epoch_num_steps=1000, batch_size=64, eval_every=1),
    },
}
"""The CPU budget (minutes in total, for demos and tests) and the published one. The paper's
offline baselines train 200 epochs; their steps per epoch are not published, 1000 is assumed.

The CPU budget has 200x fewer environment steps than the paper's and the published minibatch
of 1024. Minibatches of 64 were its default while the learner was the published A2C (with 1024
that A2C stayed at the random policy's return after 100 k steps); under recsim's learner (PPO,
lr 1e-2, scaled returns, `AgentConfig`) 1024 measured best (`benchmarks/a2c_collapse.py --epochs
4 --epoch-steps 25000`, MBPO, seeds 0-2, final R_tra on the synthetic world): minibatch 64 18.9
+- 2.8, 256 24.1 +- 1.9, 1024 26.9 +- 0.8, 4096 25.4 +- 1.1 (quit_aware 50.2; confirmed on Coat,
`AgentConfig`), and it takes a third less time per step (fewer optimiser steps)."""


def budget(name: str, family: str, **overrides: Any) -> Budget:
    """The `family` budget of preset `name` ("cpu" or "paper") with field overrides."""
    if name not in BUDGETS:
        raise ConfigError(f"budget: unknown {name!r}; choose from {', '.join(BUDGETS)}")
    family_key = "model_based" if family == "model_based" else "offline"
    base = BUDGETS[name][family_key]
    fields = {f.name for f in dataclasses.fields(Budget)}
    unknown = set(overrides) - fields
    if unknown:
        raise ConfigError(f"budget: unknown field(s) {sorted(unknown)}")
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def describe(dataset: str = "kuairec") -> list[dict[str, Any]]:
    """Every method's settings on `dataset`, for `recsim policy list`."""
    rows = []
    for preset in METHODS.values():
        row: dict[str, Any] = {"name": preset.name, "family": preset.family, "description": preset.description}
        if preset.family == "model_based":
            weights = method_penalty(preset, dataset)
            row.update(reward=preset.reward, uncertainty=preset.uncertainty,
                       lambda_U=weights.lambda_U, lambda_E=weights.lambda_E)
        elif preset.reward != "none":
            row["reward"] = preset.reward
        rows.append(row)
    return rows
