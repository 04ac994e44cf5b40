"""What every `kraft` command shares: the default quorum, the `--bootstrap-server` and
`--json` options, the console, and the one-line error exit."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

DEFAULT_BOOTSTRAP = "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183"

BootstrapOpt = Annotated[
    str,
    typer.Option(
        "--bootstrap-server",
        "-b",
        metavar="HOST:PORT,...",
        show_default=False,
        help="Controllers' client addresses (default: the local quorum, 127.0.0.1 ports "
        "2181-2183).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def make_console() -> Console:
    # Tables stay readable when piped (rich assumes 80 columns without a terminal).
    return Console() if sys.stdout.isatty() else Console(width=160)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: <message>` on one line and return the Exit to raise (1 runtime, 2 usage).
    The message is shown as is: no markup or emoji, no wrapping at 80 columns."""
    line = Text.assemble(("error:", "red"), " ", message)
    Console(stderr=True).print(line, highlight=False, soft_wrap=True)
    return typer.Exit(code)
