"""Argument types shared by the examples: a bad value is a one-line usage error (exit 2)."""

from __future__ import annotations

import argparse
from typing import NoReturn

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
