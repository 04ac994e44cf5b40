"""`kraft zk ...`: ZooKeeper commands against the quorum, and an interactive shell.

Every failure prints one line to stderr naming what it is about, e.g. `error: /a: no such
node`. Usage errors (a bad path, a missing argument, a bad ACL or bootstrap string) are found
before connecting and exit 2; runtime failures exit 1. With no controller reachable the
command fails as `kraft quorum status` does: fast, and with the same wording.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shlex
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import attrs
import trio
import typer
from typer import _click as click
from typer.core import TyperCommand

from controller.cli_common import DEFAULT_BOOTSTRAP, BootstrapOpt
from controller.client import ZkClient, open_client
from controller.client.errors import (
    BadVersionError,
    NoChildrenForEphemeralsError,
    NoNodeError,
    NotEmptyError,
    ZkException,
    describe,
)
from controller.client.reach import Unreachable, probe
from controller.node.config import Address, ConfigError, parse_bootstrap
from controller.zk.constants import EventType
from controller.zk.protocol import validate_path
from controller.zk.records import ACL, Id, Stat

SESSION_TIMEOUT_S = 5.0  # then a ZooKeeper session with one of the servers that answered

zk_app = typer.Typer(help="ZooKeeper-style commands on the coordination service.",
                     no_args_is_help=True, rich_markup_mode=None)  # fmt: skip

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (one object per line).")]
AuthOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--auth",
        metavar="SCHEME:CREDENTIAL",
        help="Authenticate first, e.g. digest:user:password (repeatable).",
    ),
]
EVENT_NAMES = {int(e): e.name for e in EventType}
STAT_FIELDS = [a.name for a in attrs.fields(Stat)]


class UsageError(Exception):
    """A bad command line, found before connecting (exit 2)."""


class CommandError(Exception):
    """A request failed; the message names the node (exit 1)."""


# ---------------------------------------------------------------------- commands


@attrs.frozen
class Spec:
    """A command's syntax: `usage` (its arguments) and a one-line `summary`."""

    usage: str
    summary: str
    flags: str = ""  # single-letter options
    min_args: int = 0
    max_args: int = 0
    one_shot: bool = True  # also a `kraft zk` subcommand (else shell only)

    def positionals(self) -> list[str]:
        return [w.strip("[]") for w in self.usage.split() if not w.startswith("[-")]


COMMANDS: dict[str, Spec] = {
    "ls": Spec("[PATH]", "list the children of PATH (default /)", max_args=1),
    "get": Spec("PATH", "print the data of PATH", min_args=1, max_args=1),
    "stat": Spec("PATH", "print the Stat of PATH", min_args=1, max_args=1),
    "create": Spec(
        "[-e] [-s] [-c] PATH [DATA] [ACL]",
        "create a node (-e ephemeral, -s sequential, -c container; ACL as in setacl)",
        flags="esc",
        min_args=1,
        max_args=3,
    ),
    "set": Spec(
        "PATH DATA [VERSION]",
        "replace the data of PATH (only if it is at VERSION)",
        min_args=2,
        max_args=3,
    ),
    "delete": Spec(
        "[-r] PATH [VERSION]",
        "delete a node (-r: with its subtree)",
        flags="r",
        min_args=1,
        max_args=2,
    ),
    "deleteall": Spec(
        "PATH", "delete a node and its subtree", min_args=1, max_args=1, one_shot=False
    ),
    "getacl": Spec("PATH", "print the ACL of PATH", min_args=1, max_args=1),
    "setacl": Spec(
        "PATH ACL",
        "replace the ACL of PATH; ACL is scheme:id:perms[,...], perms from crwda",
        min_args=2,
        max_args=2,
    ),
    "addauth": Spec(
        "SCHEME CREDENTIAL",
        "authenticate this session, e.g. addauth digest user:password",
        min_args=2,
        max_args=2,
        one_shot=False,
    ),
    "sync": Spec("[PATH]", "make the connected controller catch up with the leader", max_args=1),
    "watch": Spec(
        "PATH [COUNT]",
        "print events on PATH and below (stop after COUNT events)",
        min_args=1,
        max_args=2,
    ),
}
SHELL_EXTRA = {"help": "list the commands (also ?)", "quit": "leave the shell (also exit)"}

Op = Callable[["Session"], Awaitable[None]]
_FLAG_WORD = re.compile(r"-[A-Za-z]+|--.*")


def shell_help() -> str:
    rows = [(f"{name} {spec.usage}", spec.summary) for name, spec in COMMANDS.items()]
    rows += list(SHELL_EXTRA.items())
    width = max(len(left) for left, _ in rows)
    return "\n".join(f"  {left.ljust(width)}  {right}" for left, right in rows)


def parse(argv: list[str], prog: str = "") -> Op:
    """Check a command line (nothing is sent) and bind it: UsageError if it is wrong."""
    name, args = argv[0], argv[1:]
    spec = COMMANDS.get(name)
    if spec is None:
        raise UsageError(f"unknown command {name!r} (type help for the list)")
    usage = f"usage: {prog}{name} {spec.usage}"
    flags: set[str] = set()
    rest: list[str] = []
    for arg in args:
        if _FLAG_WORD.fullmatch(arg):
            if arg.startswith("--") or any(c not in spec.flags for c in arg[1:]):
                raise UsageError(f"{name}: no such option {arg!r} ({usage})")
            flags.update(arg[1:])
        else:
            rest.append(arg)
    if len(rest) < spec.min_args:
        missing = " ".join(spec.positionals()[len(rest) : spec.min_args])
        raise UsageError(f"{name}: missing {missing} ({usage})")
    if len(rest) > spec.max_args:
        raise UsageError(f"{name}: unexpected argument {rest[spec.max_args]!r} ({usage})")
    build: Callable[[set[str], list[str]], Op] = getattr(Session, f"_parse_{name}")
    return build(flags, rest)


def check_path(path: str, *, sequential: bool = False) -> str:
    problem = validate_path(path, sequential=sequential)
    if problem is not None:
        raise UsageError(f"{path or repr(path)}: {problem}")
    return path


def _int_arg(text: str, what: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise UsageError(f"{what} must be an integer >= {minimum}, not {text!r}")
    return value


def parse_acl(text: str) -> list[ACL]:
    """zkCli syntax: `scheme:id:perms[,scheme:id:perms]`, perms from `crwda`."""
    out = []
    bits = {"r": 1, "w": 2, "c": 4, "d": 8, "a": 16}
    for part in text.split(","):
        scheme, _, rest = part.partition(":")
        ident, sep, perms = rest.rpartition(":")
        if not scheme or not sep or not perms or any(p not in bits for p in perms):
            raise UsageError(f"bad ACL {part!r}: expected scheme:id:perms with perms from crwda")
        out.append(ACL(sum(bits[p] for p in set(perms)), Id(scheme, ident)))
    return out


def parse_servers(bootstrap: str) -> list[Address]:
    try:
        return parse_bootstrap(bootstrap)
    except ConfigError as exc:
        raise UsageError(f"--bootstrap-server: {exc}") from None


def parse_auth(items: list[str] | None) -> list[tuple[str, str]]:
    out = []
    for item in items or []:
        scheme, sep, credential = item.partition(":")
        if not scheme or not sep:
            raise UsageError(f"--auth {item!r}: expected SCHEME:CREDENTIAL")
        out.append((scheme, credential))
    return out


# ---------------------------------------------------------------------- output


def stat_dict(stat: Stat) -> dict[str, int]:
    return {name: getattr(stat, name) for name in STAT_FIELDS}


def stat_text(stat: Stat) -> str:
    names = {
        "czxid": "cZxid", "mzxid": "mZxid", "ctime": "ctime", "mtime": "mtime",
        "version": "dataVersion", "cversion": "cversion", "aversion": "aclVersion",
        "ephemeral_owner": "ephemeralOwner", "data_length": "dataLength",
        "num_children": "numChildren", "pzxid": "pZxid",
    }  # fmt: skip
    lines = []
    for field in STAT_FIELDS:
        value = getattr(stat, field)
        shown = (
            f"0x{value & (2**64 - 1):x}" if "zxid" in field or field == "ephemeral_owner" else value
        )
        lines.append(f"{names[field]} = {shown}")
    return "\n".join(lines)


def acl_text(acl: ACL) -> str:
    letters = "".join(
        c for c, bit in zip("rwcda", (1, 2, 4, 8, 16), strict=True) if acl.perms & bit
    )
    return f"'{acl.id.scheme},'{acl.id.id}\n: {letters}"


def print_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def _die(message: str, code: int) -> NoReturn:
    print_error(message)
    raise typer.Exit(code)


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


@contextmanager
def about(path: str, special: dict[type[ZkException], str] | None = None) -> Iterator[None]:
    """Turn a ZkException into a CommandError naming `path`; `special` maps an exception
    class to this command's own wording (formatted with `path` and `parent`)."""
    try:
        yield
    except ZkException as exc:
        wording = (special or {}).get(type(exc))
        if wording is None:
            raise CommandError(describe(exc, path)) from None
        raise CommandError(wording.format(path=path, parent=_parent(path))) from None


# ---------------------------------------------------------------------- session


class Session:
    """Runs commands against one client; shared by one-shot commands and the shell."""

    def __init__(self, zk: ZkClient, as_json: bool) -> None:
        self.zk = zk
        self.json = as_json

    def emit(self, data: Any, text: str) -> None:
        # Plain print: data is shown as is (no markup, emoji or wrapping), and flushed so
        # that a piped `watch` streams.
        if self.json:
            print(json.dumps(data), flush=True)
        elif text:
            print(text, flush=True)

    # Each _parse_NAME checks the arguments and returns the bound operation.

    @staticmethod
    def _parse_ls(flags: set[str], a: list[str]) -> Op:
        path = check_path(a[0] if a else "/")
        return lambda s: s.ls(path)

    async def ls(self, path: str) -> None:
        with about(path):
            children = await self.zk.get_children(path)
        self.emit({"path": path, "children": children}, "[" + ", ".join(children) + "]")

    @staticmethod
    def _parse_get(flags: set[str], a: list[str]) -> Op:
        path = check_path(a[0])
        return lambda s: s.get(path)

    async def get(self, path: str) -> None:
        with about(path):
            data, stat = await self.zk.get_nullable(path)
        self.emit({"path": path, **data_fields(data), "stat": stat_dict(stat)}, data_text(data))

    @staticmethod
    def _parse_stat(flags: set[str], a: list[str]) -> Op:
        path = check_path(a[0])
        return lambda s: s.stat(path)

    async def stat(self, path: str) -> None:
        with about(path):
            stat = await self.zk.exists(path)
            if stat is None:
                raise NoNodeError()
        self.emit({"path": path, "stat": stat_dict(stat)}, stat_text(stat))

    @staticmethod
    def _parse_create(flags: set[str], a: list[str]) -> Op:
        if "c" in flags and flags & {"e", "s"}:
            # No ZooKeeper CreateMode is a container that is also ephemeral or sequential;
            # zkCli refuses the combination too.
            raise UsageError(f"{a[0]}: -c cannot be combined with -e or -s")
        path = check_path(a[0], sequential="s" in flags)
        # zkCli's `create /p` without data creates a node with null data (length -1).
        data = _arg_bytes(a[1]) if len(a) > 1 else None
        acl = parse_acl(a[2]) if len(a) > 2 else None
        return lambda s: s.create(path, data, acl, flags)

    async def create(
        self, path: str, data: bytes | None, acl: list[ACL] | None, flags: set[str]
    ) -> None:
        special: dict[type[ZkException], str] = {
            NoNodeError: "{path}: parent node {parent} does not exist",
            NoChildrenForEphemeralsError: "{path}: parent node {parent} is ephemeral and "
            "cannot have children",
        }
        with about(path, special):
            created = await self.zk.create(
                path, data, acl, ephemeral="e" in flags, sequence="s" in flags,
                container="c" in flags,
            )  # fmt: skip
        self.emit({"created": created}, f"Created {created}")

    @staticmethod
    def _parse_set(flags: set[str], a: list[str]) -> Op:
        path = check_path(a[0])
        version = _int_arg(a[2], "VERSION", -1) if len(a) > 2 else -1
        return lambda s: s.set_data(path, _arg_bytes(a[1]), version)

    async def set_data(self, path: str, data: bytes, version: int) -> None:
        with about(path, {BadVersionError: f"{{path}}: node is not at version {version}"}):
            stat = await self.zk.set(path, data, version)
        self.emit({"path": path, "stat": stat_dict(stat)}, f"version {stat.version}")

    @staticmethod
    def _parse_delete(flags: set[str], a: list[str]) -> Op:
        path = check_path(a[0])
        if path == "/":
            raise UsageError("/: the root node cannot be deleted")
        version = _int_arg(a[1], "VERSION", -1) if len(a) > 1 else -1
        return lambda s: s.delete(path, version, "r" in flags)

    @staticmethod
    def _parse_deleteall(flags: set[str], a: list[str]) -> Op:
        return Session._parse_delete({"r"}, a)

    async def delete(self, path: str, version: int, recursive: bool) -> None:
        special: dict[type[ZkException], str] = {
            NotEmptyError: "{path}: node has children (delete -r deletes the subtree)",
            BadVersionError: f"{{path}}: node is not at version {version}",
        }
        with about(path, special):
            await self.zk.delete(path, version, recursive=recursive)
        self.emit({"deleted": path}, f"Deleted {path}")

    @staticmethod
    def _parse_getacl(flags: set[str], a: list[str]) -> Op:
        path = check_path(a[0])
        return lambda s: s.getacl(path)

    async def getacl(self, path: str) -> None:
        with about(path):
            acl, _ = await self.zk.get_acls(path)
        data = [{"perms": x.perms, "scheme": x.id.scheme, "id": x.id.id} for x in acl]
        self.emit({"path": path, "acl": data}, "\n".join(acl_text(x) for x in acl))

    @staticmethod
    def _parse_setacl(flags: set[str], a: list[str]) -> Op:
        path = check_path(a[0])
        acl = parse_acl(a[1])
        return lambda s: s.setacl(path, acl)

    async def setacl(self, path: str, acl: list[ACL]) -> None:
        with about(path):
            stat = await self.zk.set_acls(path, acl)
        self.emit({"path": path, "stat": stat_dict(stat)}, f"aclVersion {stat.aversion}")

    @staticmethod
    def _parse_addauth(flags: set[str], a: list[str]) -> Op:
        return lambda s: s.addauth(a[0], a[1])

    async def addauth(self, scheme: str, credential: str) -> None:
        await authenticate(self.zk, scheme, credential, f"addauth {scheme}")
        self.emit({"auth": scheme}, "")

    @staticmethod
    def _parse_sync(flags: set[str], a: list[str]) -> Op:
        path = check_path(a[0] if a else "/")
        return lambda s: s.sync(path)

    async def sync(self, path: str) -> None:
        with about(path):
            await self.zk.sync(path)
        self.emit({"synced": path}, f"Sync is OK for {path}")

    @staticmethod
    def _parse_watch(flags: set[str], a: list[str]) -> Op:
        path = check_path(a[0])
        count = _int_arg(a[1], "COUNT", 1) if len(a) > 1 else 0
        return lambda s: s.watch(path, count)

    async def watch(self, path: str, count: int) -> None:
        seen = 0
        with about(path):
            async with self.zk.watch(path) as events:
                # Registered: say so on stderr (stdout carries only the events).
                until = f", until {count} event{'s' if count > 1 else ''}" if count else ""
                first = f"watching {path} and below{until} (Ctrl-C to stop)"
                print(first, file=sys.stderr, flush=True)
                async for ev in events:
                    name = EVENT_NAMES.get(ev.type, str(ev.type))
                    self.emit({"type": name, "path": ev.path}, f"{name} {ev.path}")
                    seen += 1
                    if count and seen >= count:
                        return


# ---------------------------------------------------------------------- running


class _ClientLog(logging.Handler):
    """The client library's warnings, for a command line: an authentication failure is noted
    (the server then closes the session, so the caller only sees a connection loss); other
    warnings are printed as one line each."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.auth_failed = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("zk client: authentication failed"):
            self.auth_failed = True
        else:
            print(f"warning: {message}", file=sys.stderr, flush=True)


CLIENT_LOG = _ClientLog()  # installed by `run`


async def authenticate(zk: ZkClient, scheme: str, credential: str, subject: str) -> None:
    CLIENT_LOG.auth_failed = False
    try:
        await zk.add_auth(scheme, credential)
    except ZkException as exc:
        if CLIENT_LOG.auth_failed:
            raise CommandError(f"{subject}: authentication failed") from None
        raise CommandError(describe(exc, subject)) from None


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def run(
    servers: list[Address],
    auth: list[tuple[str, str]],
    as_json: bool,
    body: Callable[[Session], Awaitable[None]],
) -> None:
    """Connect, authenticate, run `body`; any failure becomes one line and exit 1."""

    async def main() -> None:
        usable = await probe(servers)
        entered = False
        try:
            async with open_client(usable, connect_timeout=SESSION_TIMEOUT_S) as zk:
                entered = True
                for scheme, credential in auth:
                    await authenticate(zk, scheme, credential, f"--auth {scheme}")
                await body(Session(zk, as_json))
        except BaseException as exc:  # connecting failed (errors maybe in a group)
            leaves = list(_leaves(exc))
            if entered or not all(isinstance(e, Exception) for e in leaves):
                raise  # the command's own failure, or Ctrl-C
            if any(isinstance(e, ZkException) for e in leaves):  # open_client gave up
                reason = f"connected, but no ZooKeeper session within {SESSION_TIMEOUT_S:g} s"
            else:  # e.g. an HTTP server: its answer is no ZooKeeper frame
                reason = f"connected, but the answer is not ZooKeeper's: {leaves[0]}"
            where = ", ".join(map(str, usable))
            raise Unreachable(f"no controller reachable ({where}: {reason})") from None

    client_logger = logging.getLogger(ZkClient.__module__)
    client_logger.addHandler(CLIENT_LOG)
    try:
        trio.run(main)
    except BaseException as exc:
        leaves = list(_leaves(exc))
        leaf = next((e for e in leaves if isinstance(e, KeyboardInterrupt)), leaves[0])
        if isinstance(leaf, KeyboardInterrupt):
            raise typer.Exit(130) from None
        if isinstance(leaf, CommandError | Unreachable):
            _die(str(leaf), 1)
        if isinstance(leaf, ZkException):
            _die(describe(leaf), 1)
        if isinstance(leaf, OSError | trio.BrokenResourceError | trio.ClosedResourceError):
            _die(f"connection to the controller lost ({leaf or type(leaf).__name__})", 1)
        raise
    finally:
        client_logger.removeHandler(CLIENT_LOG)


class _ZkCommand(TyperCommand):
    """Shows the command's own syntax in its usage line (`usage_text`)."""

    usage_text = ""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [self.options_metavar or "[OPTIONS]", self.usage_text]


def _command(name: str, spec: Spec) -> None:
    # The arguments are checked by `parse`; the usage line shows their syntax.
    argument = typer.Argument(None, metavar=spec.usage, hidden=True)
    cls = type(f"_ZkCommand_{name}", (_ZkCommand,), {"usage_text": spec.usage})

    def command(
        args: list[str] | None = argument,
        bootstrap_server: BootstrapOpt = DEFAULT_BOOTSTRAP,
        json_: JsonOpt = False,
        auth: AuthOpt = None,
    ) -> None:
        try:
            servers = parse_servers(bootstrap_server)
            credentials = parse_auth(auth)
            op = parse([name, *(args or [])], prog="kraft zk ")
        except UsageError as exc:
            _die(str(exc), 2)
        run(servers, credentials, json_, op)

    command.__doc__ = spec.summary[0].upper() + spec.summary[1:] + "."
    settings = {"allow_extra_args": True, "ignore_unknown_options": True}
    zk_app.command(name, cls=cls, context_settings=settings)(command)


for _name, _spec in COMMANDS.items():
    if _spec.one_shot:
        _command(_name, _spec)


@zk_app.command("shell")
def shell(
    bootstrap_server: BootstrapOpt = DEFAULT_BOOTSTRAP,
    json_: JsonOpt = False,
    auth: AuthOpt = None,
) -> None:
    """An interactive shell in the spirit of zkCli (type help for its commands)."""
    try:
        servers = parse_servers(bootstrap_server)
        credentials = parse_auth(auth)
    except UsageError as exc:
        _die(str(exc), 2)

    async def body(session: Session) -> None:
        prompt = f"[zk: {servers[0]}] "
        while True:
            line = await trio.to_thread.run_sync(_read_line, prompt)
            if line is None:
                return
            try:
                argv = shlex.split(line)
            except ValueError as exc:
                print_error(str(exc))
                continue
            if not argv:
                continue
            if argv[0] in ("quit", "exit"):
                return
            if argv[0] in ("help", "?"):
                print(shell_help(), flush=True)
                continue
            try:
                await parse(argv)(session)
            except (UsageError, CommandError) as exc:
                print_error(str(exc))
            except ZkException as exc:
                print_error(describe(exc))

    run(servers, credentials, json_, body)


def _read_line(prompt: str) -> str | None:
    try:
        if sys.stdin.isatty():
            return input(prompt)
        line = sys.stdin.readline()
        return line if line else None
    except EOFError:
        return None


def data_text(data: bytes | None) -> str:
    """Znode data as zkCli prints it: "null" for a null buffer, else the bytes as UTF-8
    (undecodable bytes shown as U+FFFD; `--json` carries the exact bytes in base64)."""
    return "null" if data is None else data.decode("utf-8", "replace")


def data_fields(data: bytes | None) -> dict[str, object]:
    """Znode data for `--json`: `data` as text (null for a null buffer), and `data_base64`
    with the exact bytes, so binary data survives the round trip."""
    if data is None:
        return {"data": None, "data_base64": None}
    return {
        "data": data.decode("utf-8", "replace"),
        "data_base64": base64.b64encode(data).decode("ascii"),
    }


def _arg_bytes(text: str) -> bytes:
    """A command-line argument as the bytes the user typed: arguments that are not valid
    UTF-8 reach Python with surrogate escapes (PEP 383), which give the original bytes back."""
    return text.encode("utf-8", "surrogateescape")
