"""Protected creation: a create whose reply was lost is found again, not duplicated.

A create can succeed on the quorum while its reply is lost with the connection; retrying it
blindly would leave a second node (for a lock: a second contender owned by nobody that never
goes away until the session does). As Curator's `withProtection()` and kazoo's lock nodes
(`<uuid>__lock__<seq>`), the node name starts with a prefix holding a random GUID chosen by
this client. After a connection loss the creator `sync`s (so the connected controller has
applied everything committed before) and looks for a child starting with its prefix: found,
the create succeeded; not found, it creates again. For non-sequential names the GUID makes
the name itself unique, so NodeExists on a retry means "mine".

Name layouts: kazoo uses `<uuid-hex><name>` (e.g. `3f2c...__lock__0000000004`), Curator
`_c_<uuid>-<name>` (e.g. `_c_5b1e...-latch-0000000004`); `curator_prefix` builds the latter.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence

import trio

from controller.client.client import ZkClient
from controller.client.errors import RETRYABLE, NodeExistsError
from controller.client.recipes._common import check_usable, child, retry
from controller.zk.records import ACL

CURATOR_PROTECTED_PREFIX = "_c_"


def kazoo_prefix(name: str) -> str:
    """`<32 hex digits><name>`: kazoo's lock/party node names."""
    return uuid.uuid4().hex + name


def curator_prefix(name: str) -> str:
    """`_c_<uuid>-<name>`: Curator's protected names (`ProtectedUtils`)."""
    return f"{CURATOR_PROTECTED_PREFIX}{uuid.uuid4()}-{name}"


async def find_protected(zk: ZkClient, parent: str, prefix: str) -> list[str]:
    """Children of `parent` whose names start with `prefix`, after a `sync` (so a create
    committed before the connection broke is visible here), sorted by name."""

    async def attempt() -> list[str]:
        await zk.sync(parent)
        return sorted(c for c in await zk.get_children(parent) if c.startswith(prefix))

    return await retry(zk, attempt)


async def protected_create(
    zk: ZkClient,
    parent: str,
    prefix: str,
    value: bytes = b"",
    *,
    ephemeral: bool = True,
    sequence: bool = True,
    acl: Sequence[ACL] | None = None,
    deadline: float = math.inf,
) -> str:
    """Create `parent/prefix` (plus a sequence number if `sequence`), surviving connection
    loss without duplicates; returns the new child's name. `prefix` must hold a GUID."""
    path = child(parent, prefix)
    while True:
        check_usable(zk)
        try:
            created = await zk.create(path, value, acl, ephemeral=ephemeral, sequence=sequence)
            return created.rsplit("/", 1)[1]
        except NodeExistsError:
            if sequence:
                raise
            return prefix  # our GUID is in the name: an earlier attempt created it
        except RETRYABLE:
            if trio.current_time() >= deadline:
                raise
            mine = await find_protected(zk, parent, prefix)
            if mine:
                return mine[0]
