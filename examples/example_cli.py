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
    """An absolute znode path, as ZooKeeper accepts it, below the root and outside the
    system subtree."""
    problem = validate_path(text)
    if problem is None and (text == "/" or text.split("/")[1] == "zookeeper"):
        problem = "the examples need a path of their own (not / or /zookeeper)"
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text


MAX_SECONDS = 86_400.0
"""The longest duration an example takes (a day): beyond that a run would never end."""


def non_negative(text: str) -> float:
    """Seconds: a number from 0 to `MAX_SECONDS`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and {MAX_SECONDS:g}")
    return value


MAX_INT32 = 2**31 - 1
"""Counts and milliseconds go into ZooKeeper's 32-bit fields."""


def positive(text: str) -> int:
    """A count or a number of milliseconds: an integer from 1 to `MAX_INT32`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 1 <= value <= MAX_INT32:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 1 and {MAX_INT32}")
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
