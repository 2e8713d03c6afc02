"""The `recsim` command: a thin layer over the library.

Each command group lives in its own module exposing `register(subparsers)`; user errors
(`RecsimError`) print one line on stderr and exit with code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from recsim.cli import data as data_commands
from recsim.cli import policy as policy_commands
from recsim.cli import reward as reward_commands
from recsim.cli import run as run_commands
from recsim.cli import user_model as user_model_commands
from recsim.errors import RecsimError

COMMAND_GROUPS = {
    "data": data_commands,
    "policy": policy_commands,
    "reward": reward_commands,
    "run": run_commands,  # `run`, `sweep` and `report`
    "user-model": user_model_commands,
}

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsim", description="Offline RL for recommender systems.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_GROUPS.values():
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except RecsimError as error:
        print(f"recsim: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("recsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
