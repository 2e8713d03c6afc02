"""The `recsim` command: a thin layer over the library.

Each command group lives in its own module exposing `register(subparsers)`. User errors print
one line on stderr and exit with code 2, never a traceback: a `RecsimError`, a bad argument, and
any `OSError` (a permission, a full disk, a path that is not a folder), named by its path. Any
other exception is a bug in recsim and keeps its traceback. `--debug` (or `RECSIM_DEBUG=1`) shows
the traceback of user errors too.
"""
from __future__ import annotations

import argparse
import os
import sys
import typing
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
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
DEBUG_ENV = "RECSIM_DEBUG"


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (argparse prints the usage block first)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="recsim", description="Offline RL for recommender systems.")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of user errors too (or set {DEBUG_ENV}=1)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_GROUPS.values():
        module.register(subparsers)
    return parser


def describe_os_error(error: OSError) -> str:
    """One line for an OSError: the path(s) it concerns and the system's reason."""
    reason = error.strerror or str(error)
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is no file descriptor (captured)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, or a bad argument already reported in one line
        return done.code if isinstance(done.code, int) else EXIT_USER_ERROR
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:  # the reader of stdout left (`recsim data info ... | head`): not an error
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (RecsimError, OSError) as error:
        if debug:
            raise
        message = describe_os_error(error) if isinstance(error, OSError) else str(error)
        print(f"recsim: error: {' '.join(message.split())}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("recsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
