"""Pipeline specs: a YAML file mapped onto the components' own, validated config dataclasses.

A spec names the dataset, the user model, the kNN reward estimator, the environment and quit
rule, the methods to train, the evaluation and the report (see `pipelines/*.yaml`). When the
spec is loaded, `env` becomes a `recsim.env.EnvConfig`, `quit` a `recsim.env.QuitRuleConfig`,
`evaluation` an `EvaluationSpec` (an `recsim.evaluation.online.EvalConfig` with the final
table's settings), and every method's entry is resolved into the `recsim.policy.train.MethodConfig`
its stages run (`Spec.method_config`); `user_model` holds a `preset` ("published" | "default") and
overrides of its `recsim.user_model.train.TrainConfig`, `knn` overrides of `recsim.reward.knn.KnnConfig`,
checked key by key, whose dataset-dependent defaults their stages fill in. Every key and the type of
every value is checked when the spec is loaded, so a typo fails before any stage runs, with a
`ConfigError` naming the key and the file; the resolved config is what each stage writes beside its
outputs.

Overrides from the command line (`--set key=value`) address keys by dotted path; methods are
addressed by name (`methods.dorl.penalty.lambda_E=1`). Values are parsed as YAML scalars and
coerced to the field's type (`1` -> 1.0 for a float field, `FB,NX_0` -> a list for a list field).
"""
from __future__ import annotations

import copy
import dataclasses
import os
import re
import types
import typing
from pathlib import Path
from typing import Any

from recsim.config import build_dataclass, check_overrides, field_types, is_dataclass_type, parse_value
from recsim.data.split import HoldoutConfig
from recsim.env.config import EnvConfig
from recsim.env.quit_rules import QuitRuleConfig
from recsim.errors import ConfigError
from recsim.evaluation.online import EvalConfig
from recsim.safe_yaml import load_yaml_file
from recsim.seeds import parse_seeds  # noqa: F401  (part of this module's API: sweeps and tests use it)

REWARDS = ("user_model", "user_model_ips", "knn", "truth")


def default_reward(method: str) -> str:
    """The reward table of a `recsim.policy.methods` method (e.g. knn for roler), else user_model."""
    from recsim.policy.methods import METHODS

    entry = METHODS.get(method.lower())
    return entry.reward if entry is not None and entry.reward in REWARDS else "user_model"


# ----------------------------------------------------------------------------- sections


@dataclasses.dataclass
class DataSpec:
    """Which dataset to read.

    Attributes:
        name: a dataset name of `recsim.data.DATASET_NAMES` ("synthetic" = the generated world).
        preset: synthetic world preset ("tiny", "kuairec").
        world_seed: seed of the synthetic world (fixed across run seeds: one world, many seeds).
        world: overrides of `recsim.data.synthetic.WorldConfig` fields.
        raw_dir: folder of the raw files; default `datasets/<name>/raw` (relative to the
            current directory).
        cache_dir: Parquet cache of converted raw files (default: `$RECSIM_CACHE_DIR`).
        complete: for a dataset without a ground-truth matrix, fields of
            `recsim.data.completion.CompletionConfig` (`{}` for its defaults): the data stage
            fits a matrix factorisation on the random-exposure test log and uses the completed
            matrix as the ground truth (the DORL / ROLeR protocol for KuaiRand, Coat, Yahoo).
            None: no completion; such datasets get offline metrics only.
        holdout: for a dataset without a test log (MovieLens-100k), `recsim.data.split.HoldoutConfig`
            (`fraction`, `seed`): per user the last `fraction` of the logged rows by timestamp
            (a seeded random choice without timestamps) is held out before any model trains and
            becomes the test log, named a held-out part of the log (`ndcg@k_heldout_log`).
            None: no split.
    """

    name: str = "synthetic"
    preset: str = "tiny"
    world_seed: int = 0
    world: dict[str, Any] = dataclasses.field(default_factory=dict)
    raw_dir: str | None = None
    cache_dir: str | None = None
    complete: dict[str, Any] | None = None
    holdout: HoldoutConfig | None = None

    def __post_init__(self) -> None:
        from recsim.data.store import DATASET_NAMES

        if self.name not in DATASET_NAMES:
            raise ConfigError(f"data.name: unknown dataset {self.name!r}; choose from {', '.join(DATASET_NAMES)}")
        if self.complete is not None:
            self.completion_config()
        if self.complete is not None and self.holdout is not None:
            raise ConfigError("data.holdout: the completion (data.complete) needs a random-exposure test log, "
                              "which a held-out part of the log is not; set one of the two")

    def completion_config(self):
        """The `CompletionConfig` of `complete` (None when no completion is asked for)."""
        from recsim.data.completion import CompletionConfig

        if self.complete is None:
            return None
        fields = {f.name for f in dataclasses.fields(CompletionConfig)}
        unknown = sorted(set(self.complete) - fields)
        if unknown:
            raise ConfigError(f"data.complete: unknown key(s) {unknown}; choose from {sorted(fields)}")
        return CompletionConfig(**self.complete)

    def resolved_raw_dir(self) -> Path:
        return Path(self.raw_dir) if self.raw_dir is not None else Path("datasets") / self.name / "raw"


@dataclasses.dataclass
class MethodSpec:
    """One method of the comparison (see `recsim.policy` for the vocabulary).

    Attributes:
        name: unique label in the results (e.g. "dorl", "dorl_ppo").
        method: the method (`recsim.policy.methods.METHODS`); default: `name`.
        reward: the reward table it reads: "user_model", "user_model_ips" (the ensemble trained
            with inverse item-popularity weights), "knn" or "truth" (the dataset's ground truth:
            gt_oracle); default: the method's own (knn for roler and ours), else "user_model".
        penalty: overrides of the method's `PenaltyConfig` (lambda_U, lambda_E, ...).
        params: overrides of the budget and of what trains it (`recsim.policy.train.method_config`:
            epochs, epoch_num_steps, lr, ent_coef, algorithm (a2c / ppo), tracker, epsilon, ...).
    """

    name: str
    method: str | None = None
    reward: str | None = None
    penalty: dict[str, Any] = dataclasses.field(default_factory=dict)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        from recsim.policy.methods import get_method

        if not re.match(r"^[A-Za-z0-9_\-]+$", self.name):
            raise ConfigError(f"methods.{self.name}: a method name may hold letters, digits, '_' and '-' only")
        try:
            self.method = get_method(self.method or self.name).name
        except ConfigError as error:
            raise ConfigError(f"methods.{self.name}.method: {error}") from None
        if self.reward is None:
            self.reward = default_reward(self.method)
        if self.reward not in REWARDS:
            raise ConfigError(f"methods.{self.name}.reward: {self.reward!r} is not one of {', '.join(REWARDS)}")

    @property
    def family(self) -> str:
        from recsim.policy.methods import get_method

        return get_method(str(self.method)).family


@dataclasses.dataclass(frozen=True)
class EvaluationSpec(EvalConfig):
    """The evaluation section: the online evaluation's own `EvalConfig` fields (its `mode` is
    the training curve's), the final table's modes, ranking metrics and off-policy estimates.

    Attributes:
        modes: modes of the final table ("FB", "NX_0", "NX_<k>").
        ope: OPE estimators (`recsim.evaluation.ope.ESTIMATORS` names); [] = none.
        ope_cap: cap of CIS / NCIS / PointNCIS / DR weights.
        ope_max_users: OPE uses the logged rows of at most this many users (seeded choice).
        ope_propensity: the behaviour model of the propensities (`recsim.evaluation.propensity`):
            "auto" (the log's own where it has them, else item popularity), "logged",
            "item_popularity", "user_model_softmax", "user_model_popularity_softmax".
        ope_episode: estimators of the episode value R_tra from the log
            (`recsim.evaluation.episode_ope.EPISODE_ESTIMATORS`); [] = none. They share
            `ope_cap` and `ope_propensity` with the one-step estimators.
        ope_episode_users: the episode estimates use the logged windows of at most this many
            users (seeded choice among the users the models cover).
        ope_episode_stride: logged rows between the starts of a user's windows (1: a window at
            every row; larger: fewer, less overlapping windows and a cheaper estimate). Default 10:
            on the quickstart's 17 policies (NX_0, 100 users, 100 model episodes,
            `benchmarks/ope_episode.py --stride 10`) it kept the Spearman with the true R_tra of
            `model` 0.88, `dr` 0.82, `wdr` 0.84 (stride 1: 0.88 / 0.84 / 0.81) at 1-4 s per
            policy and mode instead of 7-50 s.
        ndcg_k: cut-offs of NDCG@k / Recall@k of each policy's first-step ranking.
    """

    modes: list[str] = dataclasses.field(default_factory=lambda: ["FB", "NX_0", "NX_10"])
    ope: list[str] = dataclasses.field(default_factory=lambda: ["ips", "snips", "ncis", "dr"])
    ope_cap: float = 10.0
    ope_max_users: int = 500
    ope_propensity: str = "auto"
    ope_episode: list[str] = dataclasses.field(default_factory=lambda: ["pdis", "ncis", "model", "dr", "wdr"])
    ope_episode_users: int = 100
    ope_episode_stride: int = 10
    ndcg_k: list[int] = dataclasses.field(default_factory=lambda: [10])

    def __post_init__(self) -> None:
        from recsim.env.modes import parse_mode
        from recsim.evaluation.ope import ESTIMATORS

        super().__post_init__()
        if not self.modes:
            raise ConfigError("evaluation.modes: name at least one mode")
        object.__setattr__(self, "modes", [parse_mode(m).name for m in self.modes])
        unknown = [e for e in self.ope if e not in ESTIMATORS]
        if unknown:
            raise ConfigError(f"evaluation.ope: unknown estimator(s) {unknown}; choose from {sorted(ESTIMATORS)}")
        from recsim.evaluation.propensity import PROPENSITY_MODELS

        if self.ope_propensity not in PROPENSITY_MODELS:
            raise ConfigError(f"evaluation.ope_propensity: unknown model {self.ope_propensity!r}; choose from "
                              f"{', '.join(PROPENSITY_MODELS)}")
        from recsim.evaluation.episode_ope import EPISODE_ESTIMATORS

        unknown = [e for e in self.ope_episode if e not in EPISODE_ESTIMATORS]
        if unknown:
            raise ConfigError(f"evaluation.ope_episode: unknown estimator(s) {unknown}; choose from "
                              f"{list(EPISODE_ESTIMATORS)}")
        for name in ("ope_episode_users", "ope_episode_stride"):
            if getattr(self, name) < 1:
                raise ConfigError(f"evaluation.{name}: must be >= 1, got {getattr(self, name)}")
        if self.ope_max_users < 1:
            raise ConfigError(f"evaluation.ope_max_users: must be >= 1, got {self.ope_max_users}")
        if any(k < 1 for k in self.ndcg_k):
            raise ConfigError(f"evaluation.ndcg_k: cut-offs must be >= 1, got {self.ndcg_k}")
        if not self.ope_cap > 0:
            raise ConfigError(f"evaluation.ope_cap: must be > 0, got {self.ope_cap}")

    @property
    def needs_user_model(self) -> bool:
        """Whether the off-policy evaluation reads the user model's table (DM / DR / SNDR, an
        episode estimate, or a user-model propensity)."""
        from recsim.evaluation.episode_ope import NEEDS_MODEL
        from recsim.evaluation.propensity import NEEDS_TABLE

        one_step = bool(self.ope) and any(e in ("dm", "dr", "sndr") for e in self.ope)
        return one_step or any(e in NEEDS_MODEL for e in self.ope_episode) or (
            bool(self.ope or self.ope_episode) and self.ope_propensity in NEEDS_TABLE)

    def online(self, mode: str | None = None) -> EvalConfig:
        """The `EvalConfig` of this section (in `mode`, default the training curve's)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(EvalConfig)}
        return EvalConfig(**{**fields, **({"mode": mode} if mode else {})})


@dataclasses.dataclass
class ReportSpec:
    """What the report stage writes.

    Attributes:
        figures: write PNG figures (and embed them in report.html).
        title: heading of report.html (default: the spec's name).
    """

    figures: bool = True
    title: str | None = None


@dataclasses.dataclass
class Spec:
    """A whole pipeline (see the module docstring).

    Attributes:
        name: the pipeline's name (report title, sweep tables).
        seeds: run seeds; every seed-dependent stage runs once per seed. The user model is
            trained per run seed too, unless `user_model.seed` fixes one shared model.
        data, env, quit, methods, evaluation, report: the sections, each its component's own
            config (`env` -> `EnvConfig`, `quit` -> `QuitRuleConfig`, `evaluation` -> an
            `EvalConfig`, each method -> a `MethodConfig` by `method_config`).
        user_model, knn: overrides of `TrainConfig` / `KnnConfig`, checked at load; their
            dataset-dependent defaults are filled in by the stage that resolves them.
        progress: show per-stage progress bars.
    """

    name: str = "pipeline"
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    data: DataSpec = dataclasses.field(default_factory=DataSpec)
    user_model: dict[str, Any] = dataclasses.field(default_factory=dict)
    knn: dict[str, Any] = dataclasses.field(default_factory=dict)
    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    quit: QuitRuleConfig = dataclasses.field(default_factory=QuitRuleConfig)
    methods: list[MethodSpec] = dataclasses.field(default_factory=list)
    evaluation: EvaluationSpec = dataclasses.field(default_factory=EvaluationSpec)
    report: ReportSpec = dataclasses.field(default_factory=ReportSpec)
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("seeds: name at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds: duplicates in {self.seeds}")
        if min(self.seeds) < 0:
            raise ConfigError(f"seeds: must be >= 0, got {self.seeds}")
        names = [m.name for m in self.methods]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"methods: duplicate method name(s) {duplicates}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def method_config(self, method: MethodSpec, seed: int):
        """The `MethodConfig` of `method` for run seed `seed` (`recsim.policy.train.method_config`)."""
        from recsim.policy.train import method_config

        params = {k: v for k, v in method.params.items() if k != "budget"}
        return method_config(str(method.method), self.data.name, params=params, penalty=method.penalty,
                             budget_name=str(method.params.get("budget", "cpu")), name=method.name, env=self.env,
                             quit=self.quit,
                             evaluation=self.evaluation.online(), seed=seed, progress=self.progress,
                             where=f"methods.{method.name}.params")


def component_sections() -> dict[str, type]:
    """Spec sections that hold overrides of a library config dataclass -> that dataclass."""
    from recsim.reward.knn import KnnConfig
    from recsim.user_model.train import PresetOverrides

    return {"user_model": PresetOverrides, "knn": KnnConfig}


# ----------------------------------------------------------------------------- loading and overrides


def parse_assignment(text: str) -> tuple[str, str]:
    """("a.b", "value") from "a.b=value"."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text!r}: empty key")
    return key, value


def apply_override(data: dict[str, Any], key: str, text: str, file: str = "--set") -> None:
    """Set `key` (dotted; methods addressed by name) in the raw spec mapping `data` to `text`.

    The value is stored as parsed (a YAML scalar, or a list for comma-separated text); types are
    checked, and strings coerced, when the spec is built (`spec_from_dict`).
    """
    parts = key.split(".")
    if parts[0] != "methods":
        return _set_path(data, parts, text, key, file)
    if len(parts) < 3:
        raise ConfigError(f"{file}: {key}: address a method field as methods.<name>.<field>")
    methods = data.get("methods") or []
    found = [m for m in methods if isinstance(m, dict) and m.get("name") == parts[1]]
    if not found:
        names = [m.get("name") for m in methods if isinstance(m, dict)]
        raise ConfigError(f"{file}: {key}: no method named {parts[1]!r}; methods are {names}")
    _set_path(found[0], parts[2:], text, key, file)


def _set_path(node: dict[str, Any], parts: list[str], text: str, key: str, file: str) -> None:
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{file}: {key}: {part!r} is not a mapping")
    node[parts[-1]] = parse_value(text)


def _coerce_strings(value: Any, tp: Any) -> Any:
    """Command-line strings coerced toward the field type (YAML already typed numbers and bools)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [t for t in typing.get_args(tp) if t is not type(None)]
        if value in ("null", "None", None):
            return None
        return _coerce_strings(value, options[0]) if len(options) == 1 else value
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if origin in (list, tuple) and not isinstance(value, (list, tuple)):
        return [value]
    return value


def _coerce_tree(data: Any, cls: type) -> Any:
    """Walk raw data along dataclass `cls`, coercing command-line strings to field types."""
    if not isinstance(data, dict) or not dataclasses.is_dataclass(cls):
        return data
    types_ = field_types(cls)
    out = dict(data)
    for name, value in data.items():
        tp = types_.get(name)
        if tp is None:
            continue
        if is_dataclass_type(tp):
            out[name] = _coerce_tree(value, tp)
        elif typing.get_origin(tp) is list and typing.get_args(tp) and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            out[name] = [_coerce_tree(v, typing.get_args(tp)[0]) for v in value] if isinstance(value, list) else value
        else:
            out[name] = _coerce_strings(value, tp)
    return out


def spec_from_dict(data: dict[str, Any], file: str = "<spec>") -> Spec:
    """Build and validate a `Spec` from a raw mapping (component overrides checked too)."""
    data = _coerce_tree(copy.deepcopy(data), Spec)
    sections = component_sections()
    for section, cls in sections.items():
        if section in data:
            data[section] = _coerce_tree(data[section], cls)
            check_overrides(cls, data[section], section, file)
    for i, method in enumerate(data.get("methods") or []):
        if isinstance(method, dict) and "algorithm" in method:
            raise ConfigError(f"{file}: methods.{method.get('name', i)}.algorithm: removed; name the method with "
                              "`method:` (default: its name) and a model-based learner with `params.algorithm`")
    spec = build_dataclass(Spec, data, "", file)
    for section, cls in sections.items():
        setattr(spec, section, check_overrides(cls, getattr(spec, section), section, file))
    for method in spec.methods:
        try:
            spec.method_config(method, spec.seeds[0])
        except ConfigError as error:
            message = str(error)
            raise ConfigError(message if message.startswith(file) else f"{file}: {message}") from None
    return spec


def read_spec_data(path: str | os.PathLike) -> dict[str, Any]:
    """The raw mapping of a YAML spec file."""
    path = Path(path)
    data = load_yaml_file(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the spec must be a mapping of sections")
    return _unshared(data)


def _unshared(value: Any) -> Any:
    """A copy in which no two places share a mapping or list (YAML anchors and aliases share
    one object; an override of one method's aliased params must not change the others)."""
    if isinstance(value, dict):
        return {k: _unshared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshared(v) for v in value]
    return value


def load_spec(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = (),
              seeds: list[int] | None = None) -> Spec:
    """Read a YAML spec, apply `key=value` overrides and an optional seed list; validate it all."""
    data = read_spec_data(path)
    for text in overrides:
        key, value = parse_assignment(text)
        apply_override(data, key, value)
    if seeds is not None:
        data["seeds"] = list(seeds)
    return spec_from_dict(data, str(path))
