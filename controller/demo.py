"""`kraft demo`: a local controller quorum and demo broker fleet, failed over step by step.

Starts 3 controllers and 4 brokers on 2 racks (local processes), creates topic `demo`
(6 partitions x 3 replicas), then: SIGKILL a broker (its partitions are re-elected and the
other brokers notified), SIGKILL the active controller (a standby takes over at a higher
controller epoch), restart both (preferred leaders restored), SIGTERM a broker (controlled
shutdown, no partition ever leaderless). Each step's time is measured against a deadline;
the exit status is 0 only if every step met it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from rich.console import Console

from controller.cli_common import DEFAULT_BOOTSTRAP
from controller.client import ZkClient, open_client
from controller.client.errors import ZkException
from controller.demo_view import StepResult, snapshot, summary_table
from controller.localquorum import LocalQuorum, QuorumError, describe_exit
from controller.metadata.decisions import leader_counts, partitions_led_by
from controller.metadata.image import MetadataImage
from controller.metadata.placement import create_topic
from controller.metadata.records import NO_LEADER
from controller.metadata_client import apply_ops, new_uuid, read_image
from controller.node.admin_client import AdminError, query_status

TOPIC = "demo"
PARTITIONS = 6
REPLICATION_FACTOR = 3
BROKER_RACKS = {1: "rack-a", 2: "rack-a", 3: "rack-b", 4: "rack-b"}
CONTROLLER_FAILOVER_DEADLINE_S = 3.0
IMBALANCE_CHECK_S = 2.0
POLL_S = 0.05


class DemoError(Exception):
    """A demo step could not run at all (as opposed to missing its deadline)."""


class Demo:
    """Runs the demo; see the module docstring."""

    def __init__(
        self,
        data_dir: Path,
        console: Console,
        *,
        session_timeout_ms: int = 4000,
        keep_running: bool = False,
        default_ports: bool = True,
    ) -> None:
        self.console = console
        self.session_timeout_s = session_timeout_ms / 1000
        self.session_timeout_ms = session_timeout_ms
        self.keep_running = keep_running
        self.quorum = self._make_quorum(data_dir, default_ports)
        self.brokers: dict[int, trio.Process] = {}
        self.results: list[StepResult] = []
        self.zk: ZkClient | None = None
        self.image = MetadataImage()
        self._killed_controller = 0
        self._step_began = 0.0

    def _make_quorum(self, data_dir: Path, default_ports: bool) -> LocalQuorum:
        args = ["--leader-imbalance-check-interval-seconds", str(IMBALANCE_CHECK_S)]
        if default_ports:
            quorum = LocalQuorum(
                data_dir,
                client_ports=[2181, 2182, 2183],
                raft_ports=[2281, 2282, 2283],
                admin_ports=[8080, 8081, 8082],
                restart=False,
                extra_args=args,
            )
            try:
                quorum.check_ports()
                return quorum
            except QuorumError as exc:
                self.say(f"[yellow]{exc}; using free ports instead[/yellow]")
        return LocalQuorum(data_dir, restart=False, extra_args=args)

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def step(self, text: str) -> None:
        self.console.rule(text, style="cyan")
        self._step_began = trio.current_time()

    # ------------------------------------------------------------------ run

    async def run(self) -> int:
        ok = False
        interrupted = False
        try:
            async with trio.open_nursery() as nursery:
                with trio.CancelScope() as main_scope:
                    nursery.start_soon(self._on_signal, main_scope)
                    try:
                        ok = await self._run(nursery)
                    finally:
                        interrupted = main_scope.cancel_called
                        with trio.CancelScope(shield=True):
                            await self._stop_everything()
                nursery.cancel_scope.cancel()
        except DemoError as exc:
            self.say(f"[red]error:[/red] {exc}")
            return 1
        if interrupted:
            return 0 if self.keep_running else 130
        return 0 if ok else 1

    async def _on_signal(self, scope: trio.CancelScope) -> None:
        # Handled here (not as KeyboardInterrupt) so Ctrl-C and SIGTERM both stop brokers and
        # controllers in order, even when SIGINT was ignored by the parent shell.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                self.say(f"\n{signal.Signals(signum).name}: stopping the demo")
                scope.cancel()
                return

    async def _run(self, nursery: trio.Nursery) -> bool:
        q = self.quorum
        self.step("Starting a 3-controller quorum")
        await trio.to_thread.run_sync(q.start)
        try:
            await trio.to_thread.run_sync(q.wait_until_ready, 20.0)
        except QuorumError as exc:
            raise DemoError(f"the quorum did not become ready: {exc}") from None
        self.say(f"controllers serving on [bold]{q.connect_string}[/bold]")
        self.say(f"live console: [bold]{q.admin_url(q.ids[0])}[/bold] (any controller's works)")
        self.say("metrics: " + ", ".join(f"{q.admin_url(i)}metrics" for i in q.ids))
        async with open_client(q.connect_string, 10_000) as zk:
            self.zk = zk
            await self._wait("an active controller", lambda im: im.controller is not None, 10)
            self.step("Starting 4 brokers on 2 racks")
            for broker_id in BROKER_RACKS:
                await self._start_broker(nursery, broker_id)
            await self._wait(
                "4 registered brokers", lambda im: len(im.brokers) == len(BROKER_RACKS), 20
            )
            self.step(f"Creating topic {TOPIC!r}: {PARTITIONS} partitions x {REPLICATION_FACTOR}")
            await self._create_topic()
            await self._show()
            await self._broker_failover()
            await self._controller_failover()
            await self._restart_both(nursery)
            await self._controlled_shutdown()
            self.console.print(summary_table(self.results))
            ok = all(step.ok for step in self.results)
            self.say("[bold green]every step met its deadline[/bold green]" if ok else "")
            if self.keep_running:
                await self._keep_running(nursery)
            return ok

    # ------------------------------------------------------------------ processes

    async def _start_broker(self, nursery: trio.Nursery, broker_id: int) -> None:
        command = [
            sys.executable, "-m", "broker_demo", "--id", str(broker_id),
            "--rack", BROKER_RACKS[broker_id], "--port", "0",
            "--bootstrap-server", self.quorum.connect_string,
            "--session-timeout-ms", str(self.session_timeout_ms),
        ]  # fmt: skip
        process = await trio.lowlevel.open_process(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only the demo, which stops them in order
        )
        self.brokers[broker_id] = process
        nursery.start_soon(self._echo, process)

    async def _echo(self, process: trio.Process) -> None:
        assert process.stdout is not None
        buffer = b""
        async for chunk in process.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                at = trio.current_time() - self._step_began
                text = line.decode(errors="replace")
                self.console.print(f"  [dim]{at:6.2f}s | {text}[/dim]", highlight=False)

    async def _stop_everything(self) -> None:
        running = [p for p in self.brokers.values() if p.returncode is None]
        self.step(f"Stopping {len(running)} brokers and the quorum")
        # A second SIGTERM makes a broker skip the controlled-shutdown wait: when all stop
        # together the last ones have nobody to hand their leaderships to.
        for signals_sent in (1, 2):
            for process in running:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            with trio.move_on_after(3 if signals_sent == 1 else 2):
                for process in running:
                    await process.wait()
        for process in running:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await trio.to_thread.run_sync(self.quorum.stop)
        self.say("demo stopped: every broker and controller has exited")

    # ------------------------------------------------------------------ reading

    async def _read(self) -> MetadataImage:
        assert self.zk is not None
        while True:
            try:
                self.image = await read_image(self.zk)
                return self.image
            except ZkException:
                await trio.sleep(POLL_S)  # a controller went away: the client reconnects

    async def _wait(
        self,
        what: str,
        done: Callable[[MetadataImage], bool],
        timeout: float,
        *,
        each: Callable[[MetadataImage], None] | None = None,
    ) -> float:
        """Poll the image until `done`; returns the seconds it took. Raises DemoError after
        `timeout` (a step measures its deadline separately; this bound only stops a hang)."""
        began = trio.current_time()
        with trio.move_on_after(timeout):
            while True:
                image = await self._read()
                if each is not None:
                    each(image)
                if done(image):
                    return trio.current_time() - began
                await trio.sleep(POLL_S)
        raise DemoError(f"no {what} within {timeout:.0f} s")

    async def _statuses(self) -> dict[int, dict[str, Any] | None]:
        out: dict[int, dict[str, Any] | None] = {}
        for node_id in self.quorum.ids:
            try:
                status = await query_status(self.quorum.client_address(node_id), 0.5)
                out[node_id] = status if self.quorum.alive(node_id) else None
            except AdminError:
                out[node_id] = None
        return out

    async def _show(self) -> None:
        image = await self._read()
        pids = {i: pid for i in self.quorum.ids if (pid := self.quorum.pid(i)) is not None}
        self.console.print(
            snapshot(await self._statuses(), image, pids, BROKER_RACKS, TOPIC), highlight=False
        )

    def _record(self, name: str, seconds: float, deadline: float, detail: str = "") -> None:
        ok = seconds <= deadline and not detail
        self.results.append(StepResult(name, seconds, deadline, ok, detail))
        verdict = "[green]within[/green]" if ok else "[red]MISSED[/red]"
        self.say(f"[bold]{name}: {seconds:.2f} s[/bold] ({verdict} the {deadline:.1f} s deadline)")

    # ------------------------------------------------------------------ steps

    async def _create_topic(self) -> None:
        import random

        assert self.zk is not None
        image = await self._read()
        result = create_topic(
            image, TOPIC, PARTITIONS, REPLICATION_FACTOR, {}, random.Random(), new_uuid()
        )
        await apply_ops(self.zk, result.ops)
        await self._wait(
            "partition leaders",
            lambda im: TOPIC in im.topics and len(im.topics[TOPIC].partitions) == PARTITIONS,
            10,
        )

    async def _broker_failover(self) -> None:
        image = await self._read()
        counts = leader_counts(image)
        victim = max(BROKER_RACKS, key=lambda b: (counts.get(b, 0), b))
        led = partitions_led_by(image, victim)
        deadline = self.session_timeout_s + 2.0
        self.step(f"Step 1: SIGKILL broker {victim}")
        self.say(
            f"Broker {victim} leads {len(led)} partitions. It dies without a word; the "
            f"controller notices when its session times out ({self.session_timeout_s:.0f} s), "
            "elects new leaders from the ISR and every broker learns them by watch."
        )
        self.brokers[victim].kill()
        began = trio.current_time()
        await self._wait(
            f"new leaders for broker {victim}'s partitions",
            lambda im: _no_partition_led_by(im, victim),
            deadline + 10,
        )
        await self._brokers_agree(deadline + 10, exclude=victim)
        took = trio.current_time() - began
        await self._show()
        self._record("broker failover", took, deadline)

    async def _brokers_agree(self, timeout: float, exclude: int) -> None:
        """Wait until every other live broker's metadata view shows the current leaders."""
        from controller.kafka_cli import ask_broker_status

        with trio.move_on_after(timeout):
            while True:
                image = await self._read()
                topic = image.topics.get(TOPIC)
                expected = {
                    f"{TOPIC}-{p}": s.leader for p, s in (topic.partitions if topic else {}).items()
                }
                agree = True
                for broker_id, broker in image.brokers.items():
                    if broker_id == exclude:
                        continue
                    reg = broker.registration
                    try:
                        status = await ask_broker_status(broker_id, reg.host, reg.port)
                    except Exception:
                        agree = False
                        break
                    seen = {k: v.get("leader") for k, v in status.get("partitions", {}).items()}
                    if any(seen.get(name) != leader for name, leader in expected.items()):
                        agree = False
                        break
                if agree:
                    return
                await trio.sleep(POLL_S)
        raise DemoError("the surviving brokers never agreed on the new leaders")

    async def _controller_failover(self) -> None:
        image = await self._read()
        assert image.controller is not None
        old_id, old_epoch = image.controller.brokerid, image.controller_epoch
        self.step(f"Step 2: SIGKILL the active controller ({old_id})")
        self.say(
            f"Controller {old_id} is the Raft leader and the active controller at epoch "
            f"{old_epoch}. A standby holding the same log wins the election and takes over "
            "with a higher controller epoch; the old one's writes would now be fenced."
        )
        began = trio.current_time()
        await trio.to_thread.run_sync(self.quorum.kill, old_id)

        def moved(im: MetadataImage) -> bool:
            return (
                im.controller is not None
                and im.controller.brokerid != old_id
                and im.controller_epoch > old_epoch
            )

        await self._wait("a new active controller", moved, 15)
        took = trio.current_time() - began
        image = self.image
        assert image.controller is not None
        self.say(
            f"controller {image.controller.brokerid} is active at epoch {image.controller_epoch}"
        )
        await self._show()
        self._record("controller failover", took, CONTROLLER_FAILOVER_DEADLINE_S)
        self._killed_controller = old_id

    async def _restart_both(self, nursery: trio.Nursery) -> None:
        dead_brokers = [b for b, p in self.brokers.items() if p.returncode is not None]
        controller = self._killed_controller
        names = ", ".join(f"broker {b}" for b in dead_brokers)
        self.step(f"Step 3: restart controller {controller} and {names}")
        self.say(
            "They come back: the controller catches up from the log, the broker registers "
            "with a new epoch and rejoins its ISRs, and preferred leader election (checked "
            f"every {IMBALANCE_CHECK_S:.0f} s here) moves leadership back to the first replica."
        )
        began = trio.current_time()
        await trio.to_thread.run_sync(self.quorum.start_node, controller)
        for broker_id in dead_brokers:
            await self._start_broker(nursery, broker_id)
        deadline = IMBALANCE_CHECK_S + 5.0
        await self._wait("preferred leaders", _all_preferred, deadline + 15)
        took = trio.current_time() - began
        await trio.to_thread.run_sync(self.quorum.wait_until_ready, 15.0)
        await self._show()
        self._record("preferred leaders restored", took, deadline)

    async def _controlled_shutdown(self) -> None:
        image = await self._read()
        counts = leader_counts(image)
        target = max(BROKER_RACKS, key=lambda b: (counts.get(b, 0), -b))
        topic = image.topics[TOPIC]
        epochs = {p: s.leader_epoch for p, s in topic.partitions.items()}
        self.step(f"Step 4: SIGTERM broker {target} (controlled shutdown)")
        self.say(
            f"Broker {target} leads {counts.get(target, 0)} partitions. On SIGTERM it asks "
            "the controller to move them first and exits once it leads nothing: no partition "
            "is ever without a leader."
        )
        offline_seen: list[str] = []

        def check(im: MetadataImage) -> None:
            info = im.topics.get(TOPIC)
            for p, s in (info.partitions if info else {}).items():
                if s.leader == NO_LEADER:
                    offline_seen.append(f"{TOPIC}-{p}")

        process = self.brokers[target]
        began = trio.current_time()
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(20):
            while process.returncode is None:
                check(await self._read())
                await trio.sleep(POLL_S / 2)
        took = trio.current_time() - began
        image = await self._read()
        check(image)
        topic = image.topics[TOPIC]
        # A leader that went to -1 and back would have bumped the leader epoch twice.
        jumps = [p for p, s in topic.partitions.items() if s.leader_epoch - epochs[p] > 1]
        detail = ""
        if process.returncode != 0:
            detail = f"broker exited with {process.returncode}"
        elif offline_seen or jumps:
            detail = f"leaderless partitions: {sorted(set(offline_seen)) or jumps}"
        elif partitions_led_by(image, target):
            detail = "the stopped broker still leads partitions"
        await self._show()
        self._record("controlled shutdown", took, 5.0, detail)

    async def _keep_running(self, nursery: trio.Nursery) -> None:
        """Bring the stopped broker back, then keep everything up: killed controllers are
        restarted (as `kraft quorum start` does), broker exits are reported."""
        stopped = [b for b, p in self.brokers.items() if p.returncode is not None]
        for broker_id in stopped:
            await self._start_broker(nursery, broker_id)
        await self._wait("every broker back", lambda im: len(im.brokers) == len(BROKER_RACKS), 20)
        self._print_next_commands()
        self.quorum.restart = True
        reported: set[int] = set()
        while True:
            for event in await trio.to_thread.run_sync(self.quorum.supervise):
                self.say(str(event))
            for broker_id, process in self.brokers.items():
                code = process.poll()
                if code is not None and broker_id not in reported:
                    reported.add(broker_id)
                    self.say(f"broker {broker_id} exited ({describe_exit(code)})")
                elif process.returncode is None:
                    reported.discard(broker_id)
            await trio.sleep(0.2)

    def _print_next_commands(self) -> None:
        kraft = _kraft_command()
        b = (
            ""
            if self.quorum.connect_string == DEFAULT_BOOTSTRAP
            else f" -b {self.quorum.connect_string}"
        )
        pids = {i: p.pid for i, p in self.brokers.items() if p.returncode is None}
        victim = max(pids) if pids else None
        self.say("\nEverything keeps running (Ctrl-C stops it all). Try:")
        for line in (
            f"{kraft} quorum status{b}",
            f"{kraft} brokers list{b}",
            f"{kraft} topics describe {TOPIC}{b}",
            f"{kraft} topics create orders --partitions 12 --replication-factor 3{b}",
            f"{kraft} zk get /controller{b}",
            f"kill -9 {pids.get(victim or 0, '<broker pid>')}   # broker {victim}: watch failover",
        ):
            self.say(f"  [bold]{line}[/bold]")
        self.say(f"Live console: [bold]{self.quorum.admin_url(self.quorum.ids[0])}[/bold]")


def _no_partition_led_by(image: MetadataImage, broker_id: int) -> bool:
    topic = image.topics.get(TOPIC)
    if topic is None or broker_id in image.brokers:
        return False
    return all(
        s.leader not in (broker_id, NO_LEADER) and broker_id not in s.isr
        for s in topic.partitions.values()
    )


def _all_preferred(image: MetadataImage) -> bool:
    topic = image.topics.get(TOPIC)
    if topic is None or len(image.brokers) < len(BROKER_RACKS):
        return False
    return all(
        (s := topic.partitions.get(p)) is not None
        and s.leader == replicas[0]
        and sorted(s.isr) == sorted(replicas)
        for p, replicas in topic.assignment.items()
    )


def _kraft_command() -> str:
    """How to run `kraft` from a shell: the venv's script if it is not on PATH."""
    beside = Path(sys.executable).parent / "kraft"
    if shutil.which("kraft") == str(beside) or not beside.exists():
        return "kraft"
    return str(beside)


def run_demo(data_dir: Path | None, *, keep_running: bool, session_timeout_ms: int) -> int:
    """Entry point of `kraft demo`; returns the exit status."""
    console = Console() if sys.stdout.isatty() else Console(width=120)
    temporary = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="kraft-demo-")) if data_dir is None else data_dir
    demo = Demo(root, console, session_timeout_ms=session_timeout_ms, keep_running=keep_running)
    try:
        return trio.run(demo.run)
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
