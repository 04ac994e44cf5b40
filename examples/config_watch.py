"""A service that reads its configuration from a znode and reacts live to `kraft zk set`.

    .venv/bin/python examples/config_watch.py --forever
    # elsewhere:
    .venv/bin/kraft zk set /examples/service-config '{"greeting": "bonjour", "interval": 0.5}'

The configuration is JSON structured by cattrs into `ServiceConfig` (ConfigWatch): the
service prints its greeting every `interval` seconds with whatever configuration is current.
A payload that is not valid JSON or does not fit the type is refused and the last good
configuration stays in force.

By default (without --forever) it drives itself: it runs `kraft zk set` (the real command
line, as a subprocess) with three new configurations and one invalid payload, and checks
that the service picks up each valid one (and its next greeting uses it), in order, and
keeps the last good one after the invalid payload. Exit 0 only if all of that held.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

import attrs
import trio
from example_cli import OneLineParser, bootstrap, run_main, znode

from controller.cli_common import DEFAULT_BOOTSTRAP
from controller.client import ZkClient, open_client
from controller.client.errors import NodeExistsError
from controller.client.reach import probe
from controller.client.recipes import ConfigWatch
from controller.node.config import parse_bootstrap


@attrs.frozen
class ServiceConfig:
    greeting: str = "hello"
    interval: float = 0.2
    shout: bool = False


class Service:
    def __init__(self, config: ConfigWatch[ServiceConfig]) -> None:
        self.config = config
        self.greeted: list[ServiceConfig] = []  # the configuration each greeting used

    async def run(self) -> None:
        start = trio.current_time()
        while True:
            current = self.config.value
            text = current.greeting.upper() if current.shout else current.greeting
            age = trio.current_time() - start
            print(f"{age:6.2f}s  {text}  (config version {self.config.version})", flush=True)
            self.greeted.append(current)
            with trio.move_on_after(current.interval):  # a new config: greet with it at once
                await self.config.wait_for(current.__ne__)


async def kraft_zk_set(bootstrap: str, path: str, payload: str) -> None:
    command = [sys.executable, "-m", "controller", "zk", "set", path, payload]
    print(f"$ kraft zk set {path} '{payload}'", flush=True)
    await trio.run_process([*command, "--bootstrap-server", bootstrap], capture_stdout=True)


async def drive(args: argparse.Namespace, service: Service) -> list[str]:
    """Change the configuration with the real CLI; return what went wrong."""
    problems: list[str] = []
    config = service.config
    steps = [
        ServiceConfig("bonjour", 0.1),
        ServiceConfig("hola", 0.1, shout=True),
        ServiceConfig("hallo", 0.05),
    ]
    for n, wanted in enumerate(steps):
        await kraft_zk_set(args.bootstrap_server, args.path, json.dumps(attrs.asdict(wanted)))
        try:
            await config.wait_for(wanted.__eq__, timeout=10)
            with trio.fail_after(5):
                while not service.greeted or service.greeted[-1] != wanted:
                    await trio.sleep(0.01)
        except trio.TooSlowError:
            problems.append(f"change {n + 1} ({wanted}) not applied within 10 s")
        if n == 1:  # an invalid payload in the middle: refused, the last good one stays
            await kraft_zk_set(args.bootstrap_server, args.path, '{"interval": "often"}')
            with trio.move_on_after(10):
                while config.error is None:
                    await trio.sleep(0.01)
            if config.error is None or config.value != wanted:
                problems.append("the invalid payload was not refused")
            else:
                print(f"refused: {config.error}", flush=True)
    seen = [c for i, c in enumerate(service.greeted) if i == 0 or service.greeted[i - 1] != c]
    if [c for c in seen if c in steps] != steps:
        problems.append(f"configurations not used in order: {seen}")
    return problems


async def main(args: argparse.Namespace) -> int:
    await probe(parse_bootstrap(args.bootstrap_server))
    async with open_client(args.bootstrap_server) as zk:
        await ensure_node(zk, args.path)
        async with ConfigWatch(zk, args.path, ServiceConfig, default=ServiceConfig()) as config:
            service = Service(config)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(service.run)
                if args.forever:
                    await trio.sleep_forever()
                problems = await drive(args, service)
                nursery.cancel_scope.cancel()
    for problem in problems:
        print(f"VIOLATION: {problem}")
    print("OK: every change applied live, in order" if not problems else "FAILED")
    return 1 if problems else 0


async def ensure_node(zk: ZkClient, path: str) -> None:
    """Create the node with the default configuration unless it exists."""
    with contextlib.suppress(NodeExistsError):
        initial = json.dumps(attrs.asdict(ServiceConfig())).encode()
        await zk.create(path, initial, makepath=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-server", "-b", default=DEFAULT_BOOTSTRAP, type=bootstrap)
    parser.add_argument("--path", default="/examples/service-config", type=znode)
    parser.add_argument("--forever", action="store_true", help="just serve, until Ctrl-C")
    return parser.parse_args(argv)


def run() -> int:
    return run_main(main, parse_args())


if __name__ == "__main__":
    sys.exit(run())
