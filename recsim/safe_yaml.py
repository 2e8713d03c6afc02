"""Bounded YAML: a small file must not grow into gigabytes.

`yaml.safe_load` builds an alias (`*a`) as a second reference to the anchored object, so a
479-byte document of nested aliases loads small; but every later step that copies the tree
(recsim unshares aliased mappings so that an override of one method does not change another)
expands it exponentially. `check_expansion` counts the values of the tree as if every alias
were a copy, memoised per object, and stops as soon as the count passes `MAX_VALUES`; files
over `MAX_BYTES` are refused before they are read.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from recsim.errors import ConfigError

MAX_BYTES = 1 << 20
"""Largest YAML document recsim reads (1 MiB; the shipped specs are under 4 KiB)."""
MAX_VALUES = 100_000
"""Most values (mappings, lists and scalars) a document may expand to, aliases copied out."""


def check_expansion(value: Any, source: str, limit: int = MAX_VALUES) -> Any:
    """`value` unchanged, or `ConfigError` naming `source` when its aliases expand past `limit`
    values or an alias refers to the list or mapping that holds it."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in sizes:
            count = sizes[key]
        elif key in open_nodes:
            raise ConfigError(f"{source}: an alias refers to the list or mapping that contains it")
        else:
            open_nodes.add(key)
            children = node.values() if isinstance(node, dict) else node
            count = 1 + sum(size(child) for child in children)
            open_nodes.discard(key)
            sizes[key] = count
        if count > limit:
            raise ConfigError(f"{source}: the YAML expands to more than {limit:,} values through its "
                              "aliases (&anchor / *alias); write the values out or use fewer aliases")
        return count

    size(value)
    return value


def load_yaml_text(text: str, source: str) -> Any:
    """The value of the YAML document `text` (named `source` in errors), size- and alias-bounded."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{source}: {len(text):,} characters; YAML documents are limited to {MAX_BYTES:,}")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise ConfigError(f"{source}: the YAML is nested too deeply") from None
    try:
        return check_expansion(value, source)
    except RecursionError:
        raise ConfigError(f"{source}: the YAML is nested too deeply") from None


def load_yaml_file(path: str | os.PathLike) -> Any:
    """The value of the YAML file `path`, checked as `load_yaml_text` checks text."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    if path.stat().st_size > MAX_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; YAML files are limited to {MAX_BYTES:,}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start})") from None
    return load_yaml_text(text, str(path))
