"""Seeds given by the user: integers in [0, 2^63), and bounded lists of them.

`numpy.random.SeedSequence` takes any non-negative integer, but recsim stores seeds in int64
fields (configs, checkpoints, results tables), so a seed must lie in [0, 2^63). A seed list
("0-4", "0,2,7") may hold at most `MAX_SEEDS` seeds: each seed is a whole pipeline run, and a
typo such as "0-100000000" must fail at once instead of filling memory.
"""
from __future__ import annotations

import argparse
import collections
import re
from typing import Any

from recsim.errors import ConfigError

SEED_LIMIT = 2**63
"""Seeds lie in [0, SEED_LIMIT): they are stored as int64."""
MAX_SEEDS = 1000
"""The most seeds one `--seeds` list may hold."""
SEED_RANGE = re.compile(r"^(\d+)-(\d+)$")


def check_seed(value: Any, key: str) -> int:
    """`value` as a seed; `ConfigError` naming `key` unless it is an integer in [0, 2^63)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: a seed must be an integer, got {value!r}")
    if not 0 <= value < SEED_LIMIT:
        raise ConfigError(f"{key}: a seed must lie in [0, 2^63), got {value}")
    return value


def seed_value(text: str) -> int:
    """argparse type of a `--seed` flag: an integer in [0, 2^63)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 2^63)")
    return value


def seed_argument(parser: argparse.ArgumentParser, flag: str = "--seed", default: int | None = 0,
                  help: str | None = None) -> None:
    """Add a seed flag checked by `seed_value` to `parser`."""
    parser.add_argument(flag, type=seed_value, default=default, help=help)


def parse_seeds(text: str, key: str = "--seeds", limit: int = MAX_SEEDS) -> list[int]:
    """Seeds from "0,1,2", "0-4" or a mix ("0-2,7"): at most `limit`, each in [0, 2^63), no repeats.

    The size of a range is checked before it is expanded, so a huge range fails at once.
    """
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        match = SEED_RANGE.match(part)
        if match:
            low, high = int(match.group(1)), int(match.group(2))
            if high < low:
                raise ConfigError(f"{key}: empty range {part!r}")
            if len(seeds) + high - low + 1 > limit:
                raise ConfigError(f"{key}: {part!r} holds {high - low + 1} seeds; at most {limit} seeds per run")
            check_seed(high, key)
            seeds.extend(range(low, high + 1))
        else:
            try:
                seeds.append(check_seed(int(part), key))
            except ValueError:
                raise ConfigError(f"{key}: {part!r} is not an integer or a range a-b") from None
            if len(seeds) > limit:
                raise ConfigError(f"{key}: more than {limit} seeds")
    if not seeds:
        raise ConfigError(f"{key}: no seeds in {text!r}")
    repeated = sorted(seed for seed, count in collections.Counter(seeds).items() if count > 1)
    if repeated:
        raise ConfigError(f"{key}: seed(s) {repeated} given twice")
    return seeds
