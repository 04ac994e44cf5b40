"""The classic ZooKeeper master/worker application, built from the recipes.

Masters elect a leader (LeaderElection); workers register (GroupMembership); clients submit
tasks to a LockingQueue; the leading master takes a task, picks the least loaded live worker
and, in one multi, deletes the task from the queue and creates `assign/<worker>/<task>`
(conditional on the worker's membership node still existing). A worker runs its tasks and,
in one multi, creates `done/<task>` and deletes its assignment. When a worker's session ends
the master moves its assignments to live workers; when the master dies a standby takes over
(its queue locks vanish with its session, so nothing is lost or taken twice).

    .venv/bin/python examples/master_worker.py            # 12 tasks; kills a master and a worker
    .venv/bin/python examples/master_worker.py --forever  # keep submitting until Ctrl-C
    .venv/bin/python examples/master_worker.py --role worker --name w9 --root /examples/mw/<run>

By default it starts 2 masters and 3 workers as separate processes, submits the tasks, SIGKILLs
the leading master and later the busiest worker, and checks as it goes that every task is
completed exactly once (each worker prints one line per completed task; `done/` holds exactly
the submitted tasks; nothing is left assigned or queued). Exit 0 only if that held.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from typing import Any

import trio
from example_cli import OneLineParser, bootstrap, non_negative, positive, run_main, znode

from controller.cli_common import DEFAULT_BOOTSTRAP
from controller.client import OPEN_ACL_UNSAFE, ZkClient, open_client
from controller.client.errors import (
    RETRYABLE,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)
from controller.client.reach import probe
from controller.client.recipes import (
    GroupMembership,
    LeaderElection,
    LockingQueue,
    OwnershipState,
    Wakeup,
    raise_for_multi,
)
from controller.node.config import parse_bootstrap
from controller.zk.constants import OpCode
from controller.zk.records import CheckVersionRequest, CreateRequest, DeleteRequest


def say(line: str) -> None:
    print(line, flush=True)


async def children(zk: ZkClient, path: str) -> list[str]:
    for _ in range(100):
        try:
            return sorted(await zk.get_children(path))
        except NoNodeError:
            return []
        except RETRYABLE:
            await trio.sleep(0.1)
    raise TimeoutError(f"{path}: no answer")


class Master:
    def __init__(self, zk: ZkClient, root: str, name: str) -> None:
        self.zk, self.root, self.name = zk, root, name
        self.group = GroupMembership(zk, f"{root}/workers")
        self.queue = LockingQueue(zk, f"{root}/tasks")
        self.workers_changed = trio.Event()

    async def lead(self) -> None:
        say(f"{self.name} leads")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.watch_workers)
            nursery.start_soon(self.assign_tasks)

    async def live(self) -> dict[str, str]:
        """Live worker name -> its membership node."""
        return {data.decode(): path for path, data in (await self.group.member_nodes()).items()}

    async def pick(self, live: dict[str, str]) -> str:
        load = {w: len(await children(self.zk, f"{self.root}/assign/{w}")) for w in live}
        return min(sorted(load), key=lambda w: load[w])

    async def watch_workers(self) -> None:
        async for members in self.group.watch():
            say(f"{self.name} sees workers {sorted(m.decode() for m in members)}")
            self.workers_changed.set()
            self.workers_changed = trio.Event()
            await self.reassign_orphans()

    async def reassign_orphans(self) -> None:
        live = await self.live()
        for worker in await children(self.zk, f"{self.root}/assign"):
            if worker in live or not live:
                continue
            for task in await children(self.zk, f"{self.root}/assign/{worker}"):
                target = await self.pick(live)
                old, new = (
                    f"{self.root}/assign/{worker}/{task}",
                    f"{self.root}/assign/{target}/{task}",
                )
                try:
                    data, _ = await self.zk.get(old)
                    raise_for_multi(await self.zk.multi([
                        (OpCode.CHECK, CheckVersionRequest(live[target], -1)),
                        (OpCode.CREATE, CreateRequest(new, data, OPEN_ACL_UNSAFE, 0)),
                        (OpCode.DELETE, DeleteRequest(old, -1)),
                    ]))  # fmt: skip
                    say(f"{self.name} reassigned {task} from {worker} to {target}")
                except (NoNodeError, NodeExistsError):
                    pass  # moved meanwhile; the next change of the group rescans
            with contextlib.suppress(NoNodeError, NotEmptyError):
                await self.zk.delete(f"{self.root}/assign/{worker}")

    async def assign_tasks(self) -> None:
        while True:
            async with self.queue.take() as item:  # locked until consumed (or released)
                task = item.value.decode()
                while True:
                    live = await self.live()
                    if not live:
                        await self.workers_changed.wait()
                        continue
                    if await self.zk.exists(f"{self.root}/done/{task}"):
                        await self.queue.consume()  # a duplicate submission
                        break
                    target = await self.pick(live)
                    path = f"{self.root}/assign/{target}/{task}"
                    try:
                        await self.queue.consume([
                            (OpCode.CHECK, CheckVersionRequest(live[target], -1)),
                            (OpCode.CREATE, CreateRequest(path, item.value, OPEN_ACL_UNSAFE, 0)),
                        ])  # fmt: skip
                        say(f"{self.name} assigned {task} to {target}")
                        break
                    except NodeExistsError:
                        await self.queue.consume()  # already assigned: a duplicate
                        break
                    except NoNodeError:
                        continue  # the worker left meanwhile: pick another


async def run_master(zk: ZkClient, root: str, name: str) -> None:
    election = LeaderElection(zk, f"{root}/masters", name)
    while True:  # leadership is given up on errors too: contend again
        try:
            await election.run(Master(zk, root, name).lead, requeue=True)
        except* RETRYABLE:
            say(f"{name}: connection trouble, contending again")
            await trio.sleep(0.2)


async def run_worker(zk: ZkClient, root: str, name: str, work: float) -> None:
    mine = f"{root}/assign/{name}"
    await zk.retry(zk.ensure_path, mine)
    await zk.retry(zk.ensure_path, f"{root}/done")
    async with GroupMembership(zk, f"{root}/workers", name) as membership:
        say(f"{name} registered")
        while membership.state != OwnershipState.LOST:
            wakeup = Wakeup(zk)  # set by the watch (or a state change: re-read then)
            try:
                tasks = await zk.get_children(mine, watch=wakeup.watch)
            except NoNodeError:
                await zk.retry(zk.ensure_path, mine)
                continue
            except RETRYABLE:
                await trio.sleep(0.1)
                continue
            for task in sorted(tasks):
                await execute(zk, root, name, task, work)
            with wakeup:
                await wakeup.wait(trio.current_time() + 1.0)
    say(f"{name}: session lost, exiting")


async def execute(zk: ZkClient, root: str, name: str, task: str, work: float) -> None:
    say(f"{name} started {task}")
    await trio.sleep(work)  # the work itself
    done, assigned = f"{root}/done/{task}", f"{root}/assign/{name}/{task}"
    ops: list[tuple[int, Any]] = [
        (OpCode.CREATE, CreateRequest(done, name.encode(), OPEN_ACL_UNSAFE, 0)),
        (OpCode.DELETE, DeleteRequest(assigned, -1)),
    ]
    while True:
        try:
            raise_for_multi(await zk.multi(ops))
            say(f"{name} completed {task}")
            return
        except RETRYABLE:
            await trio.sleep(0.1)  # outcome unknown: the retry tells (NodeExists if applied)
        except NodeExistsError:
            by = (await zk.retry(zk.get, done))[0].decode()
            if by == name:  # our earlier attempt applied; its reply was lost
                say(f"{name} completed {task}")
            else:
                say(f"{name} skipped {task} (done by {by})")
            return
        except NoNodeError:
            if await zk.retry(zk.exists, assigned) is not None:  # `done/` itself is missing
                await zk.retry(zk.ensure_path, f"{root}/done")
                continue
            say(f"{name} skipped {task} (reassigned)")
            return


class Run:
    """The default role: starts masters and workers, submits tasks, kills, checks."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = f"{args.root}/{uuid.uuid4().hex[:8]}"
        self.procs: dict[str, trio.Process] = {}
        self.completions: Counter[str] = Counter()
        self.violations: list[str] = []
        self.killed: set[str] = set()

    async def spawn(self, nursery: trio.Nursery, role: str, name: str) -> None:
        a = self.args
        command = [sys.executable, os.path.abspath(__file__), "--role", role, "--name", name,
                   "--root", self.root, "-b", a.bootstrap_server, "--work", str(a.work),
                   "--session-timeout-ms", str(a.session_timeout_ms),
                   "--exit-with-parent"]  # fmt: skip
        proc = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
        self.procs[name] = proc
        nursery.start_soon(self.follow, name, proc)

    async def follow(self, name: str, proc: trio.Process) -> None:
        assert proc.stdout is not None
        pending = b""
        async for chunk in proc.stdout:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode()
                say(f"  [{name}] {line}")
                if " completed " in line:
                    task = line.split(" completed ")[1]
                    self.completions[task] += 1
                    if self.completions[task] > 1:
                        self.violations.append(f"{task} completed twice")

    async def kill(self, name: str, why: str) -> None:
        say(f"*** SIGKILL {name} ({why})")
        self.killed.add(name)
        self.procs[name].send_signal(signal.SIGKILL)
        await self.procs[name].wait()

    async def main(self, zk: ZkClient) -> None:
        a = self.args
        queue = LockingQueue(zk, f"{self.root}/tasks")
        for path in ("assign", "done"):
            await zk.retry(zk.ensure_path, f"{self.root}/{path}")
        async with trio.open_nursery() as nursery:
            try:
                for name in ("master-1", "master-2"):
                    await self.spawn(nursery, "master", name)
                for n in range(1, a.workers + 1):
                    await self.spawn(nursery, "worker", f"worker-{n}")
                tasks = [f"task-{i:02d}" for i in range(a.tasks)]
                for task in tasks:
                    await zk.retry(queue.put, task.encode())
                say(f"submitted {len(tasks)} tasks to {self.root}/tasks")
                killed: set[str] = set()
                submitted = len(tasks)
                with trio.fail_after(a.deadline):
                    while a.forever or len(await children(zk, f"{self.root}/done")) < len(tasks):
                        done = len(await children(zk, f"{self.root}/done"))
                        if a.forever and done >= submitted - 2:
                            tasks.append(f"task-{submitted:02d}")
                            await zk.retry(queue.put, tasks[-1].encode())
                            submitted += 1
                        elif not a.forever and "master" not in killed and done >= len(tasks) // 4:
                            leader = await LeaderElection(zk, f"{self.root}/masters").leader()
                            if leader:
                                await self.kill(leader, "the leading master")
                                killed.add("master")
                        elif not a.forever and "worker" not in killed and done >= len(tasks) // 2:
                            busy = {w: len(await children(zk, f"{self.root}/assign/{w}"))
                                    for w in await children(zk, f"{self.root}/assign")}  # fmt: skip
                            worker = max(sorted(busy), key=lambda w: busy[w], default=None)
                            if worker and busy[worker]:
                                await self.kill(worker, f"holding {busy[worker]} assigned tasks")
                                killed.add("worker")
                        await trio.sleep(0.1)
                await self.check(zk, tasks)
            finally:
                for proc in self.procs.values():
                    if proc.returncode is None:
                        proc.send_signal(signal.SIGINT)  # they close their sessions
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    for proc in self.procs.values():
                        await proc.wait()
                nursery.cancel_scope.cancel()

    async def check(self, zk: ZkClient, tasks: list[str]) -> None:
        await trio.sleep(0.3)  # let the last output lines arrive
        done = await children(zk, f"{self.root}/done")
        if sorted(done) != sorted(tasks):
            self.violations.append(f"done {done} != submitted {tasks}")
        for task in tasks:
            count = self.completions[task]
            if count == 0 and task in done:
                # A worker SIGKILLed after its completion committed but before printing it.
                by = (await zk.retry(zk.get, f"{self.root}/done/{task}"))[0].decode()
                if by in self.killed:
                    say(f"{task} was completed by {by} just before it was killed")
                    continue
            if count != 1:
                self.violations.append(f"{task} completed {count} times")
        for worker in await children(zk, f"{self.root}/assign"):
            if left := await children(zk, f"{self.root}/assign/{worker}"):
                self.violations.append(f"still assigned to {worker}: {left}")
        if await children(zk, f"{self.root}/tasks/entries"):
            self.violations.append("tasks left in the queue")


async def main(args: argparse.Namespace) -> int:
    await probe(parse_bootstrap(args.bootstrap_server))
    async with open_client(args.bootstrap_server, args.session_timeout_ms) as zk:
        if args.role in ("master", "worker"):
            async with trio.open_nursery() as nursery:
                if args.exit_with_parent:
                    nursery.start_soon(exit_with_parent, nursery.cancel_scope)
                if args.role == "master":
                    await run_master(zk, args.root, args.name)
                else:
                    await run_worker(zk, args.root, args.name, args.work)
                nursery.cancel_scope.cancel()
            return 0
        run = Run(args)
        try:
            await run.main(zk)
        except* trio.TooSlowError:
            run.violations.append(f"not all tasks done within {args.deadline} s")
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await zk.delete(run.root, recursive=True)
        for violation in run.violations:
            say(f"VIOLATION: {violation}")
        say("OK: every task completed exactly once" if not run.violations else "FAILED")
        return 1 if run.violations else 0


async def exit_with_parent(scope: trio.CancelScope) -> None:
    """A spawned master or worker stops when the run that started it is gone."""
    parent = os.getppid()
    while os.getppid() == parent:
        await trio.sleep(0.5)
    scope.cancel()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-server", "-b", default=DEFAULT_BOOTSTRAP, type=bootstrap)
    parser.add_argument("--role", choices=("all", "master", "worker"), default="all")
    parser.add_argument("--name", default=f"pid-{os.getpid()}")
    parser.add_argument("--root", default="/examples/master-worker", type=znode)
    parser.add_argument("--tasks", type=positive, default=12)
    parser.add_argument("--workers", type=positive, default=3)
    parser.add_argument("--work", type=non_negative, default=0.2, help="seconds per task")
    parser.add_argument("--session-timeout-ms", type=positive, default=2000)
    parser.add_argument("--deadline", type=non_negative, default=60.0)
    parser.add_argument("--forever", action="store_true", help="keep submitting until Ctrl-C")
    parser.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.forever:
        args.deadline = float("inf")
    return args


def run() -> int:
    return run_main(main, parse_args())


if __name__ == "__main__":
    sys.exit(run())
