"""What the examples share on the command line: argument types whose bad values are one-line
usage errors (exit 2), and running `main` with one-line runtime errors (exit 1)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn

import trio

from controller.client.errors import ZkException, describe
from controller.client.reach import Unreachable
from controller.node.config import ConfigError, parse_bootstrap
from controller.zk.protocol import validate_path


def bootstrap(text: str) -> str:
    """A `host:port,...` connect string, checked before anything connects."""
    try:
        parse_bootstrap(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def znode(text: str) -> str:
    """An absolute znode path, as ZooKeeper accepts it."""
    problem = validate_path(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text


def non_negative(text: str) -> float:
    """Seconds: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def positive(text: str) -> int:
    """A count: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line naming the argument (exit 2); `--help` shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def run_main(main: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    """Run `main(args)` under trio: its exit code; 1 with one `error:` line if the quorum
    is unreachable or refuses something; 130 on Ctrl-C."""
    code = 1
    try:
        code = trio.run(main, args)
    except* ZkException as group:
        error = group.exceptions[0]
        while isinstance(error, ExceptionGroup):
            error = error.exceptions[0]
        print(f"error: {describe(error)}", file=sys.stderr)
    except* Unreachable as group:
        print(f"error: {group.exceptions[0]}", file=sys.stderr)
    except* KeyboardInterrupt:
        code = 130
    return code
