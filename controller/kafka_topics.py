"""`kraft topics ...`: create, list, describe, alter and delete topics, as kafka-topics.sh
does against ZooKeeper: the command writes the topic's config and assignment (or a deletion
marker) and the active controller does the rest, which `--wait` (default) waits for."""

from __future__ import annotations

import json
import random
from typing import Annotated

import trio
import typer

from controller import kafka_views as views
from controller.cli_common import DEFAULT_BOOTSTRAP, BootstrapOpt, JsonOpt, fail, make_console
from controller.client import ZkClient
from controller.client.errors import RETRYABLE
from controller.kafka_common import (
    ATTEMPTS,
    CONFLICTS,
    POLL_S,
    WAIT_S,
    CliError,
    TimeoutOpt,
    TopicArg,
    WaitOpt,
    make_app,
    read_metadata,
    run,
    say,
    warn,
)
from controller.metadata import records as r
from controller.metadata.image import MetadataImage
from controller.metadata.placement import (
    add_partitions,
    create_topic,
    delete_topic,
    validate_topic_name,
)
from controller.metadata_client import OpFailed, apply_ops, new_uuid, read_image

topics_app = make_app(
    "Create, describe, alter, delete topics.",
    "Create, list, describe, alter and delete topics (like kafka-topics.sh).",
)


async def _wait_for_states(zk: ZkClient, name: str, timeout: float) -> tuple[bool, MetadataImage]:
    """Poll until every partition of `name` has a state znode; (done, last image read)."""
    deadline = trio.current_time() + timeout
    while True:
        image = await read_metadata(zk, [name])
        topic = image.topics.get(name)
        if topic is not None and all(p in topic.partitions for p in topic.assignment):
            return True, image
        if trio.current_time() >= deadline:
            return False, image
        await trio.sleep(POLL_S)


def _pending_warning(image: MetadataImage, name: str, timeout: float) -> None:
    topic = image.topics.get(name)
    if topic is None:
        return
    missing = [p for p in sorted(topic.assignment) if p not in topic.partitions]
    warn(
        f"topic {name!r}: {len(missing)} of {len(topic.assignment)} partitions have no leader "
        f"state after {timeout:g} s (is an active controller running?)"
    )


def _report_topic(
    image: MetadataImage, name: str, ready: bool, timeout: float, json_: bool, key: str
) -> None:
    data = views.topics_json(image, [name])
    if json_:
        print(json.dumps({key: name, "ready": ready, **data}))
        return
    if not ready:
        _pending_warning(image, name, timeout)
    views.print_topics(make_console(), data)


# ---------------------------------------------------------------------- topics


def _parse_configs(name: str, items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"topic {name!r}: bad --config {item!r}: expected key=value", 2)
        out[key.strip()] = value
    return out


async def _create(
    zk: ZkClient, name: str, partitions: int, rf: int, config: dict[str, str], topic_id: str
) -> None:
    """Create exactly once: after a connection loss the outcome is unknown, so the next
    round's read decides (the topic exists with our topic id: it landed)."""
    for _attempt in range(ATTEMPTS):
        try:
            image = await read_image(zk)
            existing = image.topics.get(name)
            if existing is not None and existing.topic_id == topic_id:
                return  # an earlier attempt of ours landed
            result = create_topic(image, name, partitions, rf, config, random.Random(), topic_id)
            await apply_ops(zk, result.ops)
            return
        except OpFailed as exc:
            if exc.code not in CONFLICTS:
                raise
        except RETRYABLE:
            await trio.sleep(0.2)
    raise CliError(f"topic {name!r}: not created after {ATTEMPTS} attempts (concurrent writers?)")


@topics_app.command("create")
def topics_create(
    name: TopicArg,
    partitions: Annotated[int, typer.Option(min=1, help="Number of partitions.")] = 1,
    replication_factor: Annotated[int, typer.Option(min=1, help="Replicas per partition.")] = 1,
    config: Annotated[
        list[str] | None, typer.Option("--config", help="Topic config key=value (repeatable).")
    ] = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = WAIT_S,
    bootstrap_server: BootstrapOpt = DEFAULT_BOOTSTRAP,
    json_: JsonOpt = False,
) -> None:
    """Create a topic.

    Places its replicas over the live brokers (rack-aware) and writes its config and
    assignment; with --wait (default), waits until the active controller has given every
    partition a leader, then describes it."""
    problem = validate_topic_name(name)
    if problem is not None:
        raise fail(f"topic {name!r}: {problem} (INVALID_TOPIC_EXCEPTION)", 2)
    configs = _parse_configs(name, config)
    topic_id = new_uuid()

    async def body(zk: ZkClient) -> tuple[bool, MetadataImage]:
        await _create(zk, name, partitions, replication_factor, configs, topic_id)
        if not wait:
            return False, await read_metadata(zk, [name])
        return await _wait_for_states(zk, name, timeout)

    ready, image = run(bootstrap_server, body)
    if not json_:
        noun = "partition" if partitions == 1 else "partitions"
        say(f"created topic {name} with {partitions} {noun}, replication factor "
            f"{replication_factor}")  # fmt: skip
        if not wait:
            return
    _report_topic(image, name, ready, timeout, json_, "created")


@topics_app.command("list")
def topics_list(bootstrap_server: BootstrapOpt = DEFAULT_BOOTSTRAP, json_: JsonOpt = False) -> None:
    """List topic names.

    Topics marked for deletion are flagged."""
    image = run(bootstrap_server, read_metadata)
    names = sorted(image.topics)
    deleting = sorted(image.delete_requests & set(names))
    if json_:
        print(json.dumps({"topics": names, "marked_for_deletion": deleting}))
        return
    for name in names:
        say(f"{name} - marked for deletion" if name in deleting else name)


@topics_app.command("describe")
def topics_describe(
    name: Annotated[
        str | None,
        typer.Argument(metavar="NAME", help="Topic (default: all).", show_default=False),
    ] = None,
    under_replicated: Annotated[
        bool,
        typer.Option("--under-replicated", help="Only partitions whose ISR is short."),
    ] = False,
    unavailable: Annotated[
        bool,
        typer.Option("--unavailable", help="Only partitions without a live leader (or state)."),
    ] = False,
    bootstrap_server: BootstrapOpt = DEFAULT_BOOTSTRAP,
    json_: JsonOpt = False,
) -> None:
    """Show partitions, leaders and ISRs.

    Like kafka-topics.sh --describe: leader, leader epoch, replicas and ISR per partition;
    under-replicated, offline and pending (no state yet) partitions are flagged."""
    image = run(bootstrap_server, lambda zk: read_metadata(zk, [name] if name else None))
    if name is not None and name not in image.topics:
        raise fail(f"topic {name!r}: does not exist (UNKNOWN_TOPIC_OR_PARTITION)")
    names = [name] if name is not None else list(image.topics)
    data = views.topics_json(
        image, names, under_replicated=under_replicated, unavailable=unavailable
    )
    if json_:
        print(json.dumps(data))
    else:
        views.print_topics(make_console(), data)


@topics_app.command("delete")
def topics_delete(
    name: TopicArg,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = WAIT_S,
    bootstrap_server: BootstrapOpt = DEFAULT_BOOTSTRAP,
    json_: JsonOpt = False,
) -> None:
    """Delete a topic.

    Marks it for deletion (/admin/delete_topics/NAME); with --wait (default), waits until
    the active controller has deleted it."""

    async def body(zk: ZkClient) -> tuple[bool, bool]:
        marked = False
        for _attempt in range(ATTEMPTS):
            try:
                result = delete_topic(await read_image(zk, topics=[name]), name)
                await apply_ops(zk, result.ops)
                marked = marked or bool(result.reply)
                break
            except OpFailed as exc:
                if exc.code not in CONFLICTS:
                    raise
            except RETRYABLE:
                marked = True  # it may have landed; the next read tells
                await trio.sleep(0.2)
        if not wait:
            return marked, False
        deadline = trio.current_time() + timeout
        while await zk.retry(zk.exists, r.topic_path(name)) is not None:
            if trio.current_time() >= deadline:
                raise CliError(
                    f"topic {name!r}: marked for deletion but still present after {timeout:g} s "
                    "(is an active controller running?)"
                )
            await trio.sleep(POLL_S)
        return marked, True

    marked, deleted = run(bootstrap_server, body)
    if json_:
        print(json.dumps({"topic": name, "marked_for_deletion": marked, "deleted": deleted}))
        return
    say(f"topic '{name}' {'marked' if marked else 'was already marked'} for deletion")
    if deleted:
        say(f"deleted topic {name}")


@topics_app.command("alter")
def topics_alter(
    name: TopicArg,
    partitions: Annotated[
        int, typer.Option(min=1, help="New (larger) number of partitions.", show_default=False)
    ],
    wait: WaitOpt = True,
    timeout: TimeoutOpt = WAIT_S,
    bootstrap_server: BootstrapOpt = DEFAULT_BOOTSTRAP,
    json_: JsonOpt = False,
) -> None:
    """Add partitions to a topic.

    The new partitions are placed like a new topic's; with --wait (default), waits until
    they have leaders, then describes the topic."""

    async def body(zk: ZkClient) -> tuple[int, bool, MetadataImage]:
        before = -1
        sent = False  # a write whose outcome a connection loss hid
        for _attempt in range(ATTEMPTS):
            try:
                image = await read_image(zk, topics=[name])
                topic = image.topics.get(name)
                if sent and topic is not None and len(topic.assignment) == partitions:
                    break  # our write landed before the connection broke
                if before < 0 and topic is not None:
                    before = len(topic.assignment)
                result = add_partitions(image, name, partitions, random.Random())
                sent = True
                await apply_ops(zk, result.ops)
                break
            except OpFailed as exc:
                sent = False  # a failed multi applied nothing
                if exc.code not in CONFLICTS:
                    raise
            except RETRYABLE:
                await trio.sleep(0.2)
        else:
            raise CliError(f"topic {name!r}: not altered after {ATTEMPTS} attempts")
        if not wait:
            return before, False, await read_metadata(zk, [name])
        return (before, *await _wait_for_states(zk, name, timeout))

    before, ready, image = run(bootstrap_server, body)
    if not json_:
        say(f"topic '{name}': {before} -> {partitions} partitions")
        if not wait:
            return
    _report_topic(image, name, ready, timeout, json_, "altered")
