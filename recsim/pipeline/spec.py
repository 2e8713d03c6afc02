"""Pipeline specs: a YAML file mapped onto nested, validated config dataclasses.

A spec names the dataset, the user model, the kNN reward estimator, the environment and quit
rule, the methods to train, the evaluation and the report (see `pipelines/*.yaml`). Sections
that configure a library component hold *overrides* of that component's own config dataclass
(`user_model` -> `recsim.user_model.train.TrainConfig`, `knn` -> `recsim.reward.knn.KnnConfig`,
`env` -> `recsim.env.EnvConfig`, `quit` -> `recsim.env.QuitRuleConfig`, a method's `penalty` ->
`recsim.reward.penalty.PenaltyConfig`): every key and the type of every value is checked against
that dataclass when the spec is loaded, so a typo fails before any stage runs, with a
`ConfigError` naming the key and the file. Dataset-dependent defaults (the kNN's k, the penalty
presets) are filled in when a stage resolves its config; the resolved config is what each stage
writes to its `config.json`.

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

import yaml

from recsim.errors import ConfigError
from recsim.safe_yaml import check_expansion, load_yaml_file
from recsim.seeds import parse_seeds  # noqa: F401  (part of this module's API: sweeps and tests use it)

REWARDS = ("user_model", "user_model_ips", "knn")


def default_reward(preset: str) -> str:
    """The reward table of a `recsim.policy.presets` method (e.g. knn for roler), else user_model."""
    try:
        from recsim.policy.presets import METHODS
    except ImportError:
        return "user_model"
    method = METHODS.get(preset.lower())
    return method.reward if method is not None and method.reward in REWARDS else "user_model"


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
        positive_threshold: a training row is a positive (for MCD's dominating categories) when
            its label is above this.
        complete: for a dataset without a ground-truth matrix, fields of
            `recsim.data.completion.CompletionConfig` (`{}` for its defaults): the data stage
            fits a matrix factorisation on the random-exposure test log and uses the completed
            matrix as the ground truth (the DORL / ROLeR protocol for KuaiRand, Coat, Yahoo).
            None: no completion; such datasets get offline metrics only.
    """

    name: str = "synthetic"
    preset: str = "tiny"
    world_seed: int = 0
    world: dict[str, Any] = dataclasses.field(default_factory=dict)
    raw_dir: str | None = None
    cache_dir: str | None = None
    positive_threshold: float = 0.0
    complete: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        from recsim.data.store import DATASET_NAMES

        if self.name not in DATASET_NAMES:
            raise ConfigError(f"data.name: unknown dataset {self.name!r}; choose from {', '.join(DATASET_NAMES)}")
        if self.complete is not None:
            self.completion_config()

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
    """One method to train and evaluate.

    Attributes:
        name: unique label in the results (e.g. "dorl", "eps_greedy").
        algorithm: what trains it (see `recsim.pipeline.agents.AGENT_ALGORITHMS`).
        reward: reward table the method reads: "user_model", "user_model_ips" (the ensemble
            trained with inverse item-popularity weights) or "knn"; default: the preset's
            (`recsim.policy.presets`, e.g. knn for roler), else "user_model".
        penalty: overrides of the method's preset `PenaltyConfig` (lambda_U, lambda_E, ...).
        preset: penalty preset name (mbpo, mopo, dorl, roler); default: `name` when it is one.
        params: overrides of the algorithm's own config.
    """

    name: str
    algorithm: str
    reward: str | None = None
    penalty: dict[str, Any] = dataclasses.field(default_factory=dict)
    preset: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reward is None:
            self.reward = default_reward(self.preset or self.name)
        if self.reward not in REWARDS:
            raise ConfigError(f"methods.{self.name}.reward: {self.reward!r} is not one of {', '.join(REWARDS)}")
        if not re.match(r"^[A-Za-z0-9_\-]+$", self.name):
            raise ConfigError(f"methods.{self.name}: a method name may hold letters, digits, '_' and '-' only")


@dataclasses.dataclass
class EvaluationSpec:
    """Online evaluation in the ground-truth world, ranking metrics and off-policy estimates.

    Attributes:
        modes: evaluation modes ("FB", "NX_0", "NX_<k>").
        n_episodes: episodes per mode (one user each, a fixed seeded set shared by all methods).
        user_seed: seed of that set of users (independent of the run seed).
        ope: OPE estimators (`recsim.evaluation.ope.ESTIMATORS` names); [] = none.
        ope_cap: cap of CIS / NCIS / PointNCIS / DR weights.
        ope_max_users: OPE uses the logged rows of at most this many users (seeded choice).
        n_bootstrap: bootstrap resamples of OPE intervals.
        ndcg_k: cut-offs of NDCG@k / Recall@k of each policy's first-step ranking.
        mcd_share: cumulative share that defines MCD's dominating categories.
        batch_size: episodes stepped together.
    """

    modes: list[str] = dataclasses.field(default_factory=lambda: ["FB", "NX_0", "NX_10"])
    n_episodes: int = 100
    user_seed: int = 0
    ope: list[str] = dataclasses.field(default_factory=lambda: ["ips", "snips", "ncis", "dr"])
    ope_cap: float = 10.0
    ope_max_users: int = 500
    n_bootstrap: int = 200
    ndcg_k: list[int] = dataclasses.field(default_factory=lambda: [10])
    mcd_share: float = 0.8
    batch_size: int = 1000

    def __post_init__(self) -> None:
        from recsim.env.modes import parse_mode
        from recsim.evaluation.ope import ESTIMATORS

        if not self.modes:
            raise ConfigError("evaluation.modes: name at least one mode")
        self.modes = [parse_mode(m).name for m in self.modes]
        unknown = [e for e in self.ope if e not in ESTIMATORS]
        if unknown:
            raise ConfigError(f"evaluation.ope: unknown estimator(s) {unknown}; choose from {sorted(ESTIMATORS)}")
        for name in ("n_episodes", "ope_max_users", "n_bootstrap", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"evaluation.{name}: must be >= 1, got {getattr(self, name)}")
        if any(k < 1 for k in self.ndcg_k):
            raise ConfigError(f"evaluation.ndcg_k: cut-offs must be >= 1, got {self.ndcg_k}")
        if not 0 < self.mcd_share <= 1:
            raise ConfigError(f"evaluation.mcd_share: must be in (0, 1], got {self.mcd_share}")
        if not self.ope_cap > 0:
            raise ConfigError(f"evaluation.ope_cap: must be > 0, got {self.ope_cap}")


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
        data, user_model, knn, env, quit, methods, evaluation, report: the sections.
        progress: show per-stage progress bars.
    """

    name: str = "pipeline"
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    data: DataSpec = dataclasses.field(default_factory=DataSpec)
    user_model: dict[str, Any] = dataclasses.field(default_factory=dict)
    knn: dict[str, Any] = dataclasses.field(default_factory=dict)
    env: dict[str, Any] = dataclasses.field(default_factory=dict)
    quit: dict[str, Any] = dataclasses.field(default_factory=dict)
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


def component_sections() -> dict[str, type]:
    """Spec sections that hold overrides of a library config dataclass -> that dataclass."""
    from recsim.env.config import EnvConfig
    from recsim.env.quit_rules import QuitRuleConfig
    from recsim.reward.knn import KnnConfig
    from recsim.user_model.train import TrainConfig

    return {"user_model": TrainConfig, "knn": KnnConfig, "env": EnvConfig,
            "quit": QuitRuleConfig}


def _penalty_config() -> type:
    from recsim.reward.penalty import PenaltyConfig

    return PenaltyConfig


# ----------------------------------------------------------------------------- typed conversion


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _fail(file: str, key: str, problem: str) -> ConfigError:
    return ConfigError(f"{file}: {key}: {problem}")


def convert(value: Any, tp: Any, key: str, file: str) -> Any:
    """`value` (parsed YAML) as type `tp`; raise ConfigError naming `key` and `file` if it is not one.

    Supports bool, int, float, str, None, unions (`X | None`), list[X], tuple[X, ...], dict[str, X],
    `Any` and config dataclasses (a mapping whose keys must be the dataclass's fields).
    """
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return convert(value, option, key, file)
            except ConfigError as error:
                errors.append(error)
        raise errors[0] if errors else _fail(file, key, f"expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is not None:
            raise _fail(file, key, f"expected null, got {value!r}")
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(file, key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(file, key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str) and value.strip().lower() in ("inf", ".inf", "+inf"):
                return float("inf")
            raise _fail(file, key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _fail(file, key, f"expected a string, got {value!r}")
        return value
    if origin in (list, tuple):
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise _fail(file, key, f"expected a list, got {value!r}")
        items = [convert(v, item_tp, f"{key}[{i}]", file) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _fail(file, key, f"expected a mapping, got {value!r}")
        args = typing.get_args(tp)
        value_tp = args[1] if len(args) == 2 else Any
        return {str(k): convert(v, value_tp, f"{key}.{k}", file) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, key, file)
    raise _fail(file, key, f"unsupported field type {_type_name(tp)}")


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of the init fields of dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def check_overrides(cls: type, mapping: Any, key: str, file: str) -> dict[str, Any]:
    """Check a mapping of overrides of dataclass `cls` (keys and value types); return it converted."""
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise _fail(file, key, f"expected a mapping of {cls.__name__} fields, got {mapping!r}")
    types_ = field_types(cls)
    out = {}
    for name, value in mapping.items():
        if name not in types_:
            raise _fail(file, f"{key}.{name}", f"unknown key; {cls.__name__} fields are {', '.join(types_)}")
        field_tp = types_[name]
        if dataclasses.is_dataclass(field_tp) and isinstance(value, dict):
            out[name] = check_overrides(field_tp, value, f"{key}.{name}", file)
        else:
            out[name] = convert(value, field_tp, f"{key}.{name}", file)
    return out


def build_dataclass(cls: type, mapping: Any, key: str, file: str) -> Any:
    """An instance of `cls` from a mapping; unknown keys, wrong types and invalid values name `key`."""
    prefix = f"{key}." if key else ""
    if not isinstance(mapping, dict):
        raise _fail(file, key or "(top level)", f"expected a mapping, got {mapping!r}")
    types_ = field_types(cls)
    kwargs = {}
    for name, value in mapping.items():
        if name not in types_:
            raise _fail(file, f"{prefix}{name}", f"unknown key; expected one of {', '.join(types_)}")
        kwargs[name] = convert(value, types_[name], f"{prefix}{name}", file)
    try:
        return cls(**kwargs)
    except ConfigError as error:
        raise ConfigError(f"{file}: {error}") from None
    except TypeError as error:
        raise _fail(file, key or "(top level)", str(error)) from None


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


def _scalar(text: str) -> Any:
    try:
        return check_expansion(yaml.safe_load(text), "--set") if text.strip() else ""
    except yaml.YAMLError:
        return text


def _raw_value(text: str) -> Any:
    """A command-line value: a YAML scalar or flow list, or a comma-separated list."""
    value = _scalar(text)
    if isinstance(value, str) and "," in value and not value.strip().startswith(("[", "{")):
        return [_scalar(v) for v in value.split(",")]
    return value


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
    node[parts[-1]] = _raw_value(text)


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
        if dataclasses.is_dataclass(tp):
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
    penalty_cls = _penalty_config()
    for i, method in enumerate(data.get("methods") or []):
        if isinstance(method, dict) and isinstance(method.get("penalty"), dict):
            label = method.get("name", i)
            method["penalty"] = _coerce_tree(method["penalty"], penalty_cls)
            check_overrides(penalty_cls, method["penalty"], f"methods.{label}.penalty", file)
    spec = build_dataclass(Spec, data, "", file)
    for section, cls in sections.items():
        setattr(spec, section, check_overrides(cls, getattr(spec, section), section, file))
    for method in spec.methods:
        method.penalty = check_overrides(penalty_cls, method.penalty, f"methods.{method.name}.penalty", file)
    from recsim.pipeline.methods import check_method

    for method in spec.methods:
        check_method(method, file)
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
