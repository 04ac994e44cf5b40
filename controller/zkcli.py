"""`kraft zk ...`: ZooKeeper commands against the quorum, and an interactive shell."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import attrs
import trio
import typer
from rich.console import Console

from controller.client import ZkClient, open_client
from controller.client.errors import ZkException
from controller.zk.constants import EventType
from controller.zk.records import ACL, Id, Stat

DEFAULT_BOOTSTRAP = "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183"
zk_app = typer.Typer(help="ZooKeeper-style commands on the coordination service.",
                     no_args_is_help=True)  # fmt: skip

BootstrapOpt = Annotated[
    str, typer.Option("--bootstrap-server", "-b", help="Controllers' client addresses.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
AuthOpt = Annotated[
    list[str] | None,
    typer.Option("--auth", help="scheme:credential to add before the command (repeatable)."),
]
EVENT_NAMES = {int(e): e.name for e in EventType}
STAT_FIELDS = [a.name for a in attrs.fields(Stat)]


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


def parse_acl(text: str) -> list[ACL]:
    """zkCli syntax: `scheme:id:perms[,scheme:id:perms]`, perms from `crwda`."""
    out = []
    for part in text.split(","):
        scheme, _, rest = part.partition(":")
        ident, _, perms = rest.rpartition(":")
        bits = {"r": 1, "w": 2, "c": 4, "d": 8, "a": 16}
        if not scheme or any(p not in bits for p in perms) or not perms:
            raise typer.BadParameter(f"bad ACL {part!r}: expected scheme:id:perms (perms crwda)")
        out.append(ACL(sum(bits[p] for p in set(perms)), Id(scheme, ident)))
    return out


def acl_text(acl: ACL) -> str:
    letters = "".join(
        c for c, bit in zip("rwcda", (1, 2, 4, 8, 16), strict=True) if acl.perms & bit
    )
    return f"'{acl.id.scheme},'{acl.id.id}\n: {letters}"


class Session:
    """Runs commands against one client; shared by one-shot commands and the shell."""

    def __init__(self, zk: ZkClient, as_json: bool, console: Console) -> None:
        self.zk = zk
        self.json = as_json
        self.console = console

    def emit(self, data: Any, text: str) -> None:
        if self.json:
            print(json.dumps(data))
        else:
            self.console.print(text, highlight=False, markup=False)

    async def run(self, argv: list[str]) -> None:
        if not argv:
            return
        cmd, args = argv[0], argv[1:]
        handler = getattr(self, f"cmd_{cmd}", None)
        if handler is None:
            raise typer.BadParameter(f"unknown command {cmd!r}")
        await handler(args)

    async def cmd_ls(self, args: list[str]) -> None:
        path = args[0] if args else "/"
        children = await self.zk.get_children(path)
        self.emit({"path": path, "children": children}, "[" + ", ".join(children) + "]")

    async def cmd_get(self, args: list[str]) -> None:
        _need(args, 1, "get PATH")
        data, stat = await self.zk.get(args[0])
        text = data.decode("utf-8", "replace")
        self.emit({"path": args[0], "data": text, "stat": stat_dict(stat)}, text)

    async def cmd_stat(self, args: list[str]) -> None:
        _need(args, 1, "stat PATH")
        stat = await self.zk.exists(args[0])
        if stat is None:
            from controller.client.errors import NoNodeError

            raise NoNodeError(f"Node does not exist: {args[0]}")
        self.emit({"path": args[0], "stat": stat_dict(stat)}, stat_text(stat))

    async def cmd_create(self, args: list[str]) -> None:
        flags = {a for a in args if a in ("-e", "-s", "-c")}
        rest = [a for a in args if a not in flags]
        _need(rest, 1, "create [-e] [-s] [-c] PATH [DATA] [ACL]")
        data = rest[1].encode() if len(rest) > 1 else b""
        acl = parse_acl(rest[2]) if len(rest) > 2 else None
        path = await self.zk.create(
            rest[0], data, acl, ephemeral="-e" in flags, sequence="-s" in flags,
            container="-c" in flags,
        )  # fmt: skip
        self.emit({"created": path}, f"Created {path}")

    async def cmd_set(self, args: list[str]) -> None:
        _need(args, 2, "set PATH DATA [VERSION]")
        version = int(args[2]) if len(args) > 2 else -1
        stat = await self.zk.set(args[0], args[1].encode(), version)
        self.emit({"path": args[0], "stat": stat_dict(stat)}, f"version {stat.version}")

    async def cmd_delete(self, args: list[str]) -> None:
        recursive = "-r" in args
        rest = [a for a in args if a != "-r"]
        _need(rest, 1, "delete [-r] PATH [VERSION]")
        version = int(rest[1]) if len(rest) > 1 else -1
        await self.zk.delete(rest[0], version, recursive=recursive)
        self.emit({"deleted": rest[0]}, f"Deleted {rest[0]}")

    async def cmd_deleteall(self, args: list[str]) -> None:
        await self.cmd_delete(["-r", *args])

    async def cmd_getacl(self, args: list[str]) -> None:
        _need(args, 1, "getacl PATH")
        acl, _ = await self.zk.get_acls(args[0])
        data = [{"perms": a.perms, "scheme": a.id.scheme, "id": a.id.id} for a in acl]
        self.emit({"path": args[0], "acl": data}, "\n".join(acl_text(a) for a in acl))

    async def cmd_setacl(self, args: list[str]) -> None:
        _need(args, 2, "setacl PATH ACL")
        stat = await self.zk.set_acls(args[0], parse_acl(args[1]))
        self.emit({"path": args[0], "stat": stat_dict(stat)}, f"aclVersion {stat.aversion}")

    async def cmd_addauth(self, args: list[str]) -> None:
        _need(args, 2, "addauth SCHEME CREDENTIAL")
        await self.zk.add_auth(args[0], args[1])
        self.emit({"auth": args[0]}, "")

    async def cmd_sync(self, args: list[str]) -> None:
        path = args[0] if args else "/"
        await self.zk.sync(path)
        self.emit({"synced": path}, f"Sync is OK for {path}")

    async def cmd_watch(self, args: list[str]) -> None:
        _need(args, 1, "watch PATH [COUNT]")
        count = int(args[1]) if len(args) > 1 else 0
        seen = 0
        async with self.zk.watch(args[0]) as events:
            async for ev in events:
                name = EVENT_NAMES.get(ev.type, str(ev.type))
                self.emit({"type": name, "path": ev.path}, f"{name} {ev.path}")
                seen += 1
                if count and seen >= count:
                    return


def _need(args: list[str], n: int, usage: str) -> None:
    if len(args) < n:
        raise typer.BadParameter(f"usage: {usage}")


def _run(
    bootstrap: str,
    auth: list[str] | None,
    as_json: bool,
    body: Callable[[Session], Awaitable[None]],
) -> None:
    console = Console()
    err = Console(stderr=True)

    async def main() -> None:
        async with open_client(bootstrap, connect_timeout=10) as zk:
            for item in auth or []:
                scheme, _, credential = item.partition(":")
                await zk.add_auth(scheme, credential)
            await body(Session(zk, as_json, console))

    try:
        trio.run(main)
    except (ZkException, BaseExceptionGroup) as exc:
        leaf: BaseException = exc
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        if not isinstance(leaf, ZkException | typer.BadParameter):
            raise
        err.print(f"error: {type(leaf).__name__}: {leaf}", highlight=False, markup=False)
        raise typer.Exit(1) from None


def _command(name: str, help_text: str) -> None:
    def command(
        args: Annotated[list[str] | None, typer.Argument(help="Path and arguments.")] = None,
        bootstrap_server: BootstrapOpt = DEFAULT_BOOTSTRAP,
        json_: JsonOpt = False,
        auth: AuthOpt = None,
    ) -> None:
        argv = [name, *(args or [])]
        _run(bootstrap_server, auth, json_, lambda s: s.run(argv))

    command.__doc__ = help_text
    zk_app.command(name, context_settings={"allow_extra_args": True,
                                           "ignore_unknown_options": True})(command)  # fmt: skip


for _name, _help in (
    ("ls", "List the children of PATH."),
    ("get", "Print the data of PATH."),
    ("stat", "Print the Stat of PATH."),
    ("create", "create [-e] [-s] [-c] PATH [DATA] [ACL]: create a node."),
    ("set", "set PATH DATA [VERSION]: replace the data."),
    ("delete", "delete [-r] PATH [VERSION]: delete a node (-r: with its subtree)."),
    ("watch", "watch PATH [COUNT]: print events on PATH and below."),
    ("getacl", "Print the ACL of PATH."),
    ("setacl", "setacl PATH scheme:id:perms[,...]: replace the ACL."),
    ("sync", "Make the connected controller catch up with the leader."),
):
    _command(_name, _help)


@zk_app.command("shell")
def shell(
    bootstrap_server: BootstrapOpt = DEFAULT_BOOTSTRAP,
    json_: JsonOpt = False,
) -> None:
    """An interactive shell in the spirit of zkCli (commands: ls get stat create set delete
    deleteall getacl setacl addauth sync watch quit)."""
    console = Console()

    async def body(session: Session) -> None:
        prompt = f"[zk: {bootstrap_server.split(',')[0]}] "
        while True:
            line = await trio.to_thread.run_sync(_read_line, prompt)
            if line is None or line.strip() in ("quit", "exit"):
                return
            try:
                argv = shlex.split(line)
            except ValueError as exc:
                console.print(f"error: {exc}", markup=False)
                continue
            try:
                await session.run(argv)
            except (ZkException, typer.BadParameter, ValueError) as exc:
                console.print(f"error: {type(exc).__name__}: {exc}", markup=False)

    _run(bootstrap_server, None, json_, body)


def _read_line(prompt: str) -> str | None:
    try:
        if sys.stdin.isatty():
            return input(prompt)
        line = sys.stdin.readline()
        return line if line else None
    except EOFError:
        return None
