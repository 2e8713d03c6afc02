"""The one way to train a method: `train_method(config, inputs, out_dir) -> MethodRun`.

The command line (`recsim policy train`), the pipeline (`recsim run`) and the benchmarks all call
it; `method_config` builds its `MethodConfig` from a method's name and plain overrides, with
every default in one place (the family's config dataclass, `recsim.policy.methods`' budgets and
penalty presets). The method's family decides what runs:

- model-based (mbpo, ips, mopo, dorl, roler, ours, gt_oracle): A2C / PPO in the penalised
  simulator over `inputs.reward` (with `inputs.uncertainty`'s uncertainty for "ours"; the ground
  truth for gt_oracle), the DORL entropy table built from the training log;
- offline (bcq, cql, crr, sqn): the log replayed into a buffer (`recsim.policy.offline`);
- static (`recsim.policy.static.STATIC_BASELINES`): scores, no training.

Every environment of a run (the simulator, the log replay, quit_aware's rule, the evaluation)
uses one quit rule, `environment_quit_rule`.

Every run evaluates in the dataset's ground-truth environment when it has one
(`recsim.evaluation.online.OnlineEvaluator`) and writes into `out_dir`: `config.json` (the
resolved config), `results.json` (final metrics and wall time), the saved policy
(`recsim.policy.storage`) and, for trained methods, `history.json`, `checkpoints/last.pt` and
`tensorboard/`.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from recsim.config import build_dataclass
from recsim.env import EnvConfig, QuitRule, QuitRuleConfig, table_quit_rule
from recsim.errors import ConfigError
from recsim.evaluation.online import EvalConfig, OnlineEvaluator, ground_truth_table, table_item_categories
from recsim.io import write_json
from recsim.policy.base import Recommender
from recsim.policy.epochs import warnings_of
from recsim.policy.methods import Budget, Method, budget, get_method, method_penalty
from recsim.policy.model_based import AgentConfig, ModelBasedConfig, agent_preset, train_model_based
from recsim.policy.offline import OfflineAgentConfig, OfflineConfig, log_transitions, train_offline
from recsim.policy.runtime import torch_device
from recsim.policy.static import STATIC_BASELINES, StaticConfig, StaticInputs
from recsim.policy.storage import save_policy
from recsim.reward.entropy import EntropyConfig, EntropyTable
from recsim.reward.penalty import PenaltyConfig
from recsim.reward.table import RewardTable

AGENT_CONFIGS: dict[str, type] = {"model_based": AgentConfig, "offline": OfflineAgentConfig, "static": StaticConfig}
"""Family -> the config dataclass of what trains its methods."""

COMMON_PARAMS = ("train_mode", "device", "threads")
"""`method_config` params that are not the budget's or the agent's (`threads`: torch intra-op
threads of the training, `MethodConfig.torch_threads`)."""

LEARNER_PARAM = "learner"
"""The model-based param naming an `AgentConfig` preset (`recsim.policy.model_based.AGENT_PRESETS`)."""


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """Everything that determines one run of one method (saved as `config.json`).

    Attributes:
        method: the method (`recsim.policy.methods.METHODS`).
        name: its label in reports (default: `method`).
        budget: epochs, steps, parallel users, evaluation frequency (trained methods).
        agent: the learner's settings: `AgentConfig` (model-based: its `algorithm` is a2c or
            ppo), `OfflineAgentConfig` or `StaticConfig`.
        penalty: the simulator's penalised-reward weights (model-based methods; else None).
        env: episode settings; its `mode` is the simulator's during model-based training.
        quit: the dataset's quit rule.
        evaluation: the ground-truth evaluation.
        seed: seeds the networks, the simulator's users and the policy's sampling.
        device: "cpu" or "cuda[:n]".
        progress: progress bars (`recsim.progress`).
        torch_threads: torch intra-op threads during training (None: torch's default; `threads` in a
            method's params). A run's bits depend on it: 2 threads change the last digits of the
            weights against 1 (MBPO, 2 x 10,000 steps at KuaiRec scale). They train the default
            learner 1.5x faster on 2 idle cores (`benchmarks/policy_training.py --quick --settings
            published --threads 2`: 20,938 against 13,845 steps/s, 2026-12-02); the pipeline keeps 1,
            as its `--jobs 2` workers share the 2 cores.
    """

    method: str
    budget: Budget
    agent: AgentConfig | OfflineAgentConfig | StaticConfig
    penalty: PenaltyConfig | None = None
    name: str | None = None
    env: EnvConfig = dataclasses.field(default_factory=lambda: EnvConfig(mode="NX_0"))
    quit: QuitRuleConfig = dataclasses.field(default_factory=QuitRuleConfig)
    evaluation: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    torch_threads: int | None = 1

    def __post_init__(self) -> None:
        family = self.family
        if not isinstance(self.agent, AGENT_CONFIGS[family]):
            raise ConfigError(f"MethodConfig.agent: {self.method} needs a {AGENT_CONFIGS[family].__name__}")
        if (self.penalty is None) != (family != "model_based"):
            raise ConfigError(f"MethodConfig.penalty: {'required' if family == 'model_based' else 'unused'} "
                              f"for {self.method}")
        if self.seed < 0 or self.seed >= 2**63:
            raise ConfigError(f"MethodConfig.seed: must lie in [0, 2^63), got {self.seed}")
        torch_device(self.device)

    @property
    def spec(self) -> Method:
        return get_method(self.method)

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def label(self) -> str:
        return self.name or self.method

    def in_training_evaluation(self) -> EvalConfig:
        """The evaluation run every `budget.eval_every` epochs (the final one when
        `budget.eval_episodes` is None)."""
        episodes = self.budget.eval_episodes or self.evaluation.episodes
        return dataclasses.replace(self.evaluation, episodes=episodes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], file: str = "config.json") -> MethodConfig:
        """The config saved by `to_dict` (every key and type checked)."""
        data = dict(data)
        family = get_method(str(data.get("method", ""))).family
        typed = dict(data)
        typed["agent"] = build_dataclass(AGENT_CONFIGS[family], data.get("agent", {}), "agent", file)
        for key, kind in (("budget", Budget), ("penalty", PenaltyConfig), ("env", EnvConfig),
                          ("quit", QuitRuleConfig), ("evaluation", EvalConfig)):
            if data.get(key) is not None:
                typed[key] = build_dataclass(kind, data[key], key, file)
        return cls(**typed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def method_config(method: str, dataset: str, *, params: Mapping[str, Any] | None = None,
                  penalty: Mapping[str, Any] | None = None, budget_name: str = "cpu", name: str | None = None,
                  env: EnvConfig | None = None, quit: QuitRuleConfig | None = None,
                  evaluation: EvalConfig | None = None, seed: int = 0, device: str = "cpu", progress: bool = True,
                  torch_threads: int | None = 1, where: str = "params") -> MethodConfig:
    """The `MethodConfig` of `method` on `dataset` from plain overrides.

    Args:
        method: the method's name.
        dataset: the dataset's name (per-dataset penalty weights).
        params: overrides of the budget's fields (epochs, epoch_num_steps, ...), of the family's
            agent config (lr, gamma, ent_coef, hidden_sizes, tracker, algorithm, epsilon, ...),
            `train_mode` / `device` / `threads`, and for model-based methods `learner`: an `AgentConfig`
            preset ("default" or "published", `AGENT_PRESETS`) the other agent keys override;
            every key and type is checked (ConfigError naming `where`).
        penalty: overrides of the method's preset `PenaltyConfig` (model-based methods).
        budget_name: "cpu" or "paper".
        env: episode settings (its mode is replaced by `train_mode`, default NX_0).
    """
    spec = get_method(method)
    params = dict(params or {})
    budget_fields = {f.name for f in dataclasses.fields(Budget)}
    agent_cls = AGENT_CONFIGS[spec.family]
    fixed = {"algorithm"} if spec.family == "offline" else set()
    agent_fields = {f.name for f in dataclasses.fields(agent_cls)} - fixed
    allowed = (budget_fields | agent_fields | set(COMMON_PARAMS)) if spec.family != "static" else agent_fields
    if spec.family == "model_based":
        allowed = allowed | {LEARNER_PARAM}
    unknown = sorted(set(params) - allowed)
    if unknown:
        choices = ", ".join(sorted(allowed))
        raise ConfigError(f"{where}.{unknown[0]}: unknown key for {spec.name}; choose from {choices}")
    agent_params = {k: v for k, v in params.items() if k in agent_fields}
    if LEARNER_PARAM in params:
        agent_params = {**agent_preset(str(params[LEARNER_PARAM]), f"{where}.{LEARNER_PARAM}"), **agent_params}
    if spec.family == "offline":
        agent_params["algorithm"] = spec.name
    agent = build_dataclass(agent_cls, agent_params, where, "")
    run_budget = budget(budget_name, spec.family, **{k: v for k, v in params.items() if k in budget_fields})
    weights = None
    if spec.family == "model_based":
        weights = dataclasses.replace(method_penalty(spec, dataset), **dict(penalty or {}))
    elif penalty:
        raise ConfigError(f"penalty: {spec.name} does not train in the penalised simulator")
    train_mode = str(params.get("train_mode", "NX_0"))
    threads = params.get("threads", torch_threads)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"{where}.threads: must be an integer >= 1, got {threads!r}")
    return MethodConfig(method=spec.name, name=name, budget=run_budget, agent=agent, penalty=weights,
                        env=dataclasses.replace(env or EnvConfig(), mode=train_mode), quit=quit or QuitRuleConfig(),
                        evaluation=evaluation or EvalConfig(), seed=seed, device=str(params.get("device", device)),
                        progress=progress, torch_threads=threads)


@dataclasses.dataclass
class MethodInputs:
    """What a run reads.

    Attributes:
        dataset: the `Dataset` (training log, categories, ground truth for evaluation).
        reward: the reward table the method reads (user model, IPS user model or kNN; see the
            method's `reward`); None for methods without one.
        uncertainty: for "ours", a table whose `uncertainty` (the ensemble's disagreement) replaces
            `reward.uncertainty`.
        item_embeddings: float32 (dataset n_items, d) item embeddings of the user model (indexed
            by dataset item id) to initialise the tracker; None = learned from scratch.
        user_embeddings: float32 (dataset n_users, d_u) user embeddings of the user model (indexed
            by dataset user id), read by a tracker with `users` on (`TrackerConfig.users`).
    """

    dataset: Any
    reward: RewardTable | None = None
    uncertainty: RewardTable | None = None
    item_embeddings: np.ndarray | None = None
    user_embeddings: np.ndarray | None = None


@dataclasses.dataclass
class MethodRun:
    """The outcome of `train_method`: the policy, its final metrics, history and wall time."""

    name: str
    policy: Recommender
    metrics: dict[str, float]
    history: list[dict[str, Any]]
    wall_seconds: float
    out_dir: Path

    @property
    def warnings(self) -> list[str]:
        """Divergence or collapse of the training (`recsim.policy.epochs.health`), latest epoch."""
        return warnings_of(self.history)


def simulator_table(method: Method, inputs: MethodInputs) -> RewardTable:
    """The table the simulator (or a scorer) reads, with the method's uncertainty (the ground
    truth for a method whose reward is "truth")."""
    if method.reward == "truth":
        return ground_truth_table(inputs.dataset)
    if inputs.reward is None:
        raise ConfigError(f"method {method.name!r} needs a reward table ({method.reward})")
    table = inputs.reward
    if method.uncertainty == "user_model_disagreement":
        if inputs.uncertainty is None:
            raise ConfigError(f"method {method.name!r} needs the user model's disagreement table")
        other = inputs.uncertainty
        if not (np.array_equal(other.users, table.users) and np.array_equal(other.items, table.items)):
            raise ConfigError("the uncertainty table's users / items differ from the reward table's")
        table = RewardTable(table.mean, other.uncertainty, table.users, table.items,
                            f"{table.kind}+uncertainty:{other.kind}")
    return table


def action_items(inputs: MethodInputs) -> np.ndarray:
    """int64 (n_columns,): the dataset item of each action column (the reward table's items, else
    the ground truth's, else every item)."""
    dataset = inputs.dataset
    if inputs.reward is not None:
        return np.asarray(inputs.reward.items, dtype=np.int64)
    if dataset.truth is not None:  # the ground truth's columns (also gt_oracle's simulator)
        return np.asarray(dataset.truth_items, dtype=np.int64)
    return np.arange(dataset.n_items, dtype=np.int64)


def train_columns(dataset: Any, items: np.ndarray) -> np.ndarray:
    """int64 (n_rows,): the action column of each training row (-1 for items outside `items`)."""
    column_of_item = np.full(dataset.n_items, -1, dtype=np.int64)
    column_of_item[items] = np.arange(len(items))
    return column_of_item[dataset.train["item"].to_numpy(np.int64)]


def entropy_table(dataset: Any, table: RewardTable, orders: tuple[int, ...]) -> EntropyTable:
    """DORL's entropy table of the training log over the table's item columns (corrected flaw)."""
    columns = train_columns(dataset, np.asarray(table.items, dtype=np.int64))
    keep = columns >= 0
    log = dataset.train
    frame = log.loc[keep, [c for c in ("user", "timestamp") if c in log.columns]].copy()
    frame["item"] = columns[keep]
    return EntropyTable.from_log(frame, table.shape[1], EntropyConfig(orders=orders))


def _embeddings_for(inputs: MethodInputs, items: np.ndarray) -> np.ndarray | None:
    if inputs.item_embeddings is None:
        return None
    return np.asarray(inputs.item_embeddings, dtype=np.float32)[items]


def evaluator_for(config: MethodConfig, dataset: Any, evaluation: EvalConfig | None = None) -> OnlineEvaluator | None:
    """The ground-truth evaluation of `config` (None for a dataset without a ground truth)."""
    if dataset.truth is None:
        return None
    return OnlineEvaluator(dataset, evaluation or config.evaluation, config.env, config.quit)


def environment_quit_rule(config: MethodConfig, inputs: MethodInputs, table: RewardTable | None = None) -> QuitRule:
    """The dataset's quit rule over the action columns, the one rule of every environment.

    It reads the ground truth's columns (the distance rule: their distances) when the dataset has
    a ground truth over the same items, as the published code does: its simulator wraps the true
    environment, whose quit rule stays in force while the user model replaces the reward. Without
    one, it reads `table` (default: the method's simulator table).
    """
    dataset = inputs.dataset
    table = table if table is not None else simulator_table(config.spec, inputs)
    if dataset.truth is not None and np.array_equal(np.asarray(table.items), np.asarray(dataset.truth_items)):
        table = ground_truth_table(dataset)
    return table_quit_rule(config.quit, table, table_item_categories(dataset, table))


def static_policy(config: MethodConfig, inputs: MethodInputs) -> Recommender:
    """The static baseline of `config` over `inputs` (`recsim.policy.static.STATIC_BASELINES`)."""
    method = config.spec
    items = action_items(inputs)
    table = simulator_table(method, inputs) if method.reward != "none" else None
    rule = environment_quit_rule(config, inputs) if method.name == "quit_aware" else None
    assert isinstance(config.agent, StaticConfig)
    static = StaticInputs(config.agent, config.seed, train_columns(inputs.dataset, items),
                          inputs.dataset.train["label"].to_numpy(), len(items), table, rule)
    return STATIC_BASELINES[method.name](static)


def train_method(config: MethodConfig, inputs: MethodInputs, out_dir: str | os.PathLike,
                 resume: bool = False) -> MethodRun:
    """Train (if the method trains) and evaluate one method; write its outputs into `out_dir`."""
    dataset = inputs.dataset
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    provenance = {"dataset": {"name": dataset.name, "n_users": dataset.n_users, "n_items": dataset.n_items}}
    start = time.perf_counter()
    if config.family == "static":
        policy = static_policy(config, inputs)
        evaluator = evaluator_for(config, dataset)
        metrics = evaluator.evaluate(policy, config.seed, config.device) if evaluator is not None else {}
        write_json(out / "config.json", {"method": config, **provenance})
        run = MethodRun(config.label, policy, metrics, [], time.perf_counter() - start, out)
        save_policy(run.policy, config, out)
    else:
        result = _train(config, inputs, out, resume, {"method": config, **provenance})
        run = MethodRun(config.label, result.recommender, result.final, result.history,
                        time.perf_counter() - start, out)
    write_json(out / "results.json", {"method": config.label, "family": config.family, "metrics": run.metrics,
                                      "warnings": run.warnings, "wall_seconds": run.wall_seconds,
                                      "seed": config.seed})
    return run


def _train(config: MethodConfig, inputs: MethodInputs, out: Path, resume: bool, provenance: dict[str, Any]):
    """Train a model-based or offline method; its saved policy is written beside its checkpoints."""
    dataset = inputs.dataset
    evaluator = evaluator_for(config, dataset, config.in_training_evaluation())
    if config.family == "model_based":
        assert isinstance(config.agent, AgentConfig) and config.penalty is not None
        table = simulator_table(config.spec, inputs)
        quit_rule = environment_quit_rule(config, inputs, table)
        entropy = entropy_table(dataset, table, config.penalty.entropy_orders) if config.penalty.uses_entropy else None
        mb_config = ModelBasedConfig(method=config.label, penalty=config.penalty, budget=config.budget,
                                     agent=config.agent, env=config.env, seed=config.seed, device=config.device,
                                     progress=config.progress, torch_threads=config.torch_threads)
        embeddings = _embeddings_for(inputs, np.asarray(table.items, dtype=np.int64))
        result = train_model_based(mb_config, table, quit_rule, out, entropy=entropy, evaluator=evaluator,
                                   item_embeddings=embeddings, user_embeddings=inputs.user_embeddings,
                                   resume=resume, extra_config=provenance)
    else:
        assert isinstance(config.agent, OfflineAgentConfig)
        items = action_items(inputs)
        table = inputs.reward if inputs.reward is not None else ground_truth_table(dataset)
        quit_rule = environment_quit_rule(config, inputs, table)
        transitions = log_transitions(dataset, table, quit_rule, config.env)
        off_config = OfflineConfig(method=config.label, budget=config.budget, agent=config.agent, seed=config.seed,
                                   device=config.device, progress=config.progress,
                                   torch_threads=config.torch_threads)
        embeddings = _embeddings_for(inputs, items)
        result = train_offline(off_config, transitions, len(items), out, evaluator=evaluator,
                               item_embeddings=embeddings, user_embeddings=inputs.user_embeddings,
                               resume=resume, extra_config=provenance)
    users = inputs.user_embeddings if config.agent.tracker.users else None
    save_policy(result.recommender, config, out, embedding_dim=None if embeddings is None else embeddings.shape[1],
                user_embedding_shape=None if users is None else users.shape)
    return result
