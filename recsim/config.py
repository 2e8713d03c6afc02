"""Typed configuration: parsed YAML / JSON mappings turned into validated config dataclasses.

Every config of recsim is a dataclass validated in `__post_init__`. `build_dataclass(cls,
mapping, key, file)` makes one from a mapping, checking every key and the type of every value
against the dataclass's fields and naming the key and the file in a one-line `ConfigError`
otherwise; `convert` does the same for one value and type. Used by the pipeline specs, the
command line's `--param key=value` settings and the saved policies' descriptions.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeGuard

from recsim.errors import ConfigError


def is_dataclass_type(tp: Any) -> TypeGuard[type]:
    """True when `tp` is a dataclass class (a field's type), not an instance of one."""
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


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
    if is_dataclass_type(tp):
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
        if is_dataclass_type(field_tp) and isinstance(value, dict):
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


def parse_value(text: str) -> Any:
    """A command-line value: a YAML scalar or flow collection (`3e-4`, `true`, `[64, 64]`), or a
    comma-separated list (`FB,NX_0`); text that is neither stays a string."""
    import yaml

    from recsim.safe_yaml import check_expansion

    def scalar(part: str) -> Any:
        try:
            return check_expansion(yaml.safe_load(part), "--set") if part.strip() else ""
        except yaml.YAMLError:
            return part

    value = scalar(text)
    if isinstance(value, str) and "," in value and not value.strip().startswith(("[", "{")):
        return [scalar(v) for v in value.split(",")]
    return value
