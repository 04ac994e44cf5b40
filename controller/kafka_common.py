"""Shared pieces of the Kafka-style admin commands (`controller.kafka_cli`,
`controller.kafka_topics`): options, the one-session runner that turns every expected failure
into one `error: ...` line (exit 1; usage errors exit 2), and output helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import trio
import typer
from rich.console import Console

from controller.cli_common import fail, make_console
from controller.client import ZkClient, open_client
from controller.client.errors import ZkException, describe
from controller.client.reach import Unreachable, probe
from controller.metadata.image import MetadataImage
from controller.metadata.placement import MetadataError
from controller.metadata_client import OpFailed, first_leaf, read_image
from controller.node.config import ConfigError, parse_bootstrap
from controller.zk.constants import Err

WAIT_S = 10.0
SESSION_TIMEOUT_S = 5.0  # after a controller accepted TCP, how long to wait for a session
POLL_S = 0.1
ATTEMPTS = 5  # decide-and-write rounds when others write concurrently
CONFLICTS = (Err.NODEEXISTS, Err.NONODE, Err.BADVERSION)  # someone else wrote: decide again
T = TypeVar("T")


def make_app(short_help: str, help_text: str) -> typer.Typer:
    return typer.Typer(
        help=help_text, short_help=short_help, no_args_is_help=True, rich_markup_mode=None
    )


WaitOpt = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Wait for the active controller to act.")
]
TimeoutOpt = Annotated[float, typer.Option(min=0.0, help="Seconds to wait (with --wait).")]
TopicArg = Annotated[str, typer.Argument(metavar="NAME", help="Topic name.", show_default=False)]


class CliError(Exception):
    """A failure to report as `error: <message>` with exit code `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def warn(message: str) -> None:
    Console(stderr=True).print(f"warning: {message}", highlight=False, markup=False, soft_wrap=True)


def say(line: str) -> None:
    make_console().print(line, highlight=False, markup=False, soft_wrap=True)


def run(bootstrap: str, body: Callable[[ZkClient], Awaitable[T]]) -> T:
    """Open a session, run `body`, close; every expected failure becomes one error line."""
    try:
        parse_bootstrap(bootstrap)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None

    async def main() -> T:
        usable = await probe(parse_bootstrap(bootstrap))
        entered = False
        try:
            async with open_client(usable, connect_timeout=SESSION_TIMEOUT_S) as zk:
                entered = True
                return await body(zk)
        except (ZkException, BaseExceptionGroup) as exc:
            if entered or not isinstance(first_leaf(exc), ZkException):
                raise  # the command's own failure (or Ctrl-C)
            where = ", ".join(map(str, usable))
            reason = f"connected, but no ZooKeeper session within {SESSION_TIMEOUT_S:g} s"
            raise Unreachable(f"no controller reachable ({where}: {reason})") from None

    try:
        return trio.run(main)
    except (CliError, MetadataError, OpFailed, ZkException, Unreachable, BaseExceptionGroup) as exc:
        leaf = first_leaf(exc)
        if isinstance(leaf, Unreachable):
            raise fail(str(leaf)) from None
        if isinstance(leaf, CliError):
            raise fail(str(leaf), leaf.code) from None
        if isinstance(leaf, MetadataError):
            raise fail(f"{leaf.message} ({leaf.code})") from None
        if isinstance(leaf, OpFailed):
            raise fail(str(leaf)) from None  # names the znode
        if isinstance(leaf, ZkException):
            raise fail(describe(leaf, f"controllers {bootstrap}")) from None
        raise


async def read_metadata(zk: ZkClient, topics: list[str] | None = None) -> MetadataImage:
    return await zk.retry(read_image, zk, topics=topics)
