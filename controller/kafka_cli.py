"""`kraft topics|brokers|partitions|broker ...`: Kafka-style admin commands on the broker
metadata (the ZooKeeper-era layout the active controller manages), like kafka-topics.sh and
kafka-leader-election.sh.

Every command takes `--bootstrap-server/-b host:port,...` (default: the local quorum) and
`--json` where it prints data. Errors print one line naming the object (`error: topic 'x':
...`) and exit 1; usage errors exit 2. Admin commands only write what Kafka's admin client
wrote (a topic's config and assignment, a deletion marker, an election request); the active
controller does the rest, which `--wait` waits for.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import trio
import typer

from broker_demo.cli import run as broker_run
from controller import kafka_views as views
from controller.cli_common import DEFAULT_BOOTSTRAP, BootstrapOpt, JsonOpt, fail, make_console
from controller.client import ZkClient
from controller.client.errors import RETRYABLE, NodeExistsError, NoNodeError
from controller.kafka_common import (
    ATTEMPTS,
    POLL_S,
    WAIT_S,
    CliError,
    make_app,
    read_metadata,
    run,
)
from controller.kafka_topics import topics_app
from controller.metadata import records as r
from controller.metadata.image import MetadataImage

__all__ = ["broker_app", "brokers_app", "partitions_app", "topics_app"]

brokers_app = make_app(
    "List brokers, ask one for its view.",
    "The broker fleet: registrations, liveness, one broker's metadata view.",
)
partitions_app = make_app(
    "Elect preferred leaders.", "Partition leadership (like kafka-leader-election.sh)."
)
broker_app = make_app("Run a demo broker process.", "Run a demo broker process.")
broker_app.command("run")(broker_run)


# ---------------------------------------------------------------------- brokers


@brokers_app.command("list")
def brokers_list(
    bootstrap_server: BootstrapOpt = DEFAULT_BOOTSTRAP, json_: JsonOpt = False
) -> None:
    """List brokers and the active controller.

    Registered brokers (live) and brokers still named in an assignment (offline), with
    rack, address, broker epoch (the czxid of /brokers/ids/ID) and partitions led."""
    data = views.brokers_json(run(bootstrap_server, read_metadata))
    if json_:
        print(json.dumps(data))
    else:
        views.print_brokers(make_console(), data)


async def ask_broker_status(broker_id: int, host: str, port: int) -> dict[str, Any]:
    """Send a broker's status request (one JSON line each way); raises CliError naming the
    broker on any failure."""
    where = f"broker {broker_id}: status request to {host}:{port}"
    buffer = b""
    try:
        with trio.fail_after(5):
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                await stream.send_all(json.dumps({"request": "status"}).encode() + b"\n")
                while b"\n" not in buffer:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        raise CliError(f"{where}: connection closed without an answer")
                    buffer += chunk
    except trio.TooSlowError:
        raise CliError(f"{where}: no answer within 5 s") from None
    except (OSError, trio.BrokenResourceError) as exc:
        raise CliError(f"{where} failed: {exc}") from None
    try:
        reply = json.loads(buffer.split(b"\n", 1)[0])
    except ValueError:
        raise CliError(f"{where}: the answer is not JSON") from None
    if not isinstance(reply, dict) or "error" in reply:
        raise CliError(f"{where}: {reply.get('error') if isinstance(reply, dict) else reply}")
    return reply


@brokers_app.command("status")
def brokers_status(
    broker_id: Annotated[int, typer.Argument(metavar="ID", help="Broker id.", show_default=False)],
    bootstrap_server: BootstrapOpt = DEFAULT_BOOTSTRAP,
    json_: JsonOpt = False,
) -> None:
    """Ask a broker for its metadata view.

    Connects to the address the broker registered and prints its roles, the partition
    states it knows and the zxid its metadata cache reflects."""

    async def body(zk: ZkClient) -> dict[str, Any]:
        path = r.broker_path(broker_id)
        try:
            data, _ = await zk.retry(zk.get, path)
        except NoNodeError:
            raise CliError(f"broker {broker_id}: not registered (no {path})") from None
        try:
            registration = r.decode(data, r.BrokerRegistration)
        except r.RecordError as exc:
            raise CliError(f"broker {broker_id}: unreadable registration: {exc}") from None
        return await ask_broker_status(broker_id, registration.host, registration.port)

    status = run(bootstrap_server, body)
    if json_:
        print(json.dumps(status))
    else:
        views.print_broker_status(make_console(), status)


# ---------------------------------------------------------------------- partitions


def _election_refs(
    image: MetadataImage, topic: str | None, partition: int | None
) -> list[tuple[str, int]]:
    if topic is None:
        return [(t, p) for t in sorted(image.topics) for p in sorted(image.topics[t].assignment)]
    found = image.topics.get(topic)
    if found is None:
        raise CliError(f"topic {topic!r}: does not exist (UNKNOWN_TOPIC_OR_PARTITION)")
    if partition is None:
        return [(topic, p) for p in sorted(found.assignment)]
    if partition not in found.assignment:
        raise CliError(
            f"partition {topic}-{partition}: does not exist (UNKNOWN_TOPIC_OR_PARTITION)"
        )
    return [(topic, partition)]


async def _request_election(zk: ZkClient, data: bytes) -> None:
    path = r.PREFERRED_REPLICA_ELECTION
    lost = False
    for _attempt in range(ATTEMPTS):
        try:
            await zk.create(path, data, makepath=True)
            return
        except NodeExistsError:
            if lost:
                current, _ = await zk.retry(zk.get, path)
                if current == data:
                    return  # ours, from before the connection broke
            raise CliError(f"{path}: an election is already in progress") from None
        except RETRYABLE:
            lost = True
            await trio.sleep(0.2)
    raise CliError(f"{path}: could not be written ({ATTEMPTS} connection losses)")


@partitions_app.command("elect-leaders")
def elect_leaders(
    topic: Annotated[str | None, typer.Option(help="Only this topic (default: all).")] = None,
    partition: Annotated[
        int | None, typer.Option(min=0, help="Only this partition (needs --topic).")
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait for the controller to act.")
    ] = WAIT_S,
    bootstrap_server: BootstrapOpt = DEFAULT_BOOTSTRAP,
    json_: JsonOpt = False,
) -> None:
    """Move leadership back to preferred replicas.

    Writes /admin/preferred_replica_election, waits until the active controller has acted
    on it (deleted it), then prints the resulting leaders."""
    if partition is not None and topic is None:
        raise fail("--partition needs --topic", 2)

    async def body(zk: ZkClient) -> dict[str, Any]:
        before = await read_metadata(zk, [topic] if topic else None)
        refs = _election_refs(before, topic, partition)
        listed = [r.PartitionRef(t, p) for t, p in refs] if topic is not None else []
        request = r.encode(r.PreferredReplicaElection(partitions=listed))
        await _request_election(zk, request)
        deadline = trio.current_time() + timeout
        while await zk.retry(zk.exists, r.PREFERRED_REPLICA_ELECTION) is not None:
            if trio.current_time() >= deadline:
                raise CliError(
                    f"{r.PREFERRED_REPLICA_ELECTION}: not handled within {timeout:g} s (is an "
                    "active controller running?); the request stays for the controller"
                )
            await trio.sleep(POLL_S)
        after = await read_metadata(zk, [topic] if topic else None)
        return views.election_json(before, after, refs)

    data = run(bootstrap_server, body)
    if json_:
        print(json.dumps(data))
    else:
        views.print_election(make_console(), data)
