"""ACL checks and ACL normalisation, as ZooKeeper does them.

An identity is a `(scheme, id)` pair: `("world", "anyone")` for everyone, `("ip", addr)` for
the client's address, `("digest", "user:base64(sha1(user:password))")` after
`addauth digest user:password`, `("super", "")` for the superDigest identity.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Sequence

from controller.coord.datatree import ZkError
from controller.zk.constants import Err
from controller.zk.records import ACL, Id

Identity = tuple[str, str]
ALL_PERMS = 31


def digest_id(user_password: str) -> str:
    """`user:password` -> `user:base64(sha1(user:password))` (DigestAuthenticationProvider)."""
    user, _, _ = user_password.partition(":")
    hashed = base64.b64encode(hashlib.sha1(user_password.encode()).digest()).decode()
    return f"{user}:{hashed}"


def _ip_matches(pattern: str, address: str) -> bool:
    try:
        network = ipaddress.ip_network(pattern, strict=False)
        return ipaddress.ip_address(address) in network
    except ValueError:
        return False


def has_permission(acl: Sequence[ACL], perm: int, identities: Sequence[Identity]) -> bool:
    if any(scheme == "super" for scheme, _ in identities):
        return True
    for entry in acl:
        if not entry.perms & perm:
            continue
        scheme, ident = entry.id.scheme, entry.id.id
        if scheme == "world" and ident == "anyone":
            return True
        for have_scheme, have_id in identities:
            if have_scheme != scheme:
                continue
            if scheme == "ip":
                if _ip_matches(ident, have_id):
                    return True
            elif have_id == ident:
                return True
    return False


def check(acl: Sequence[ACL], perm: int, identities: Sequence[Identity]) -> None:
    if not has_permission(acl, perm, identities):
        raise ZkError(Err.NOAUTH)


def normalize(acl: Sequence[ACL], identities: Sequence[Identity]) -> tuple[ACL, ...]:
    """Validate an ACL list and expand `auth` entries to the caller's authenticated ids."""
    if not acl:
        raise ZkError(Err.INVALIDACL, "empty ACL")
    out: list[ACL] = []
    for entry in acl:
        if not 0 <= entry.perms <= ALL_PERMS:
            raise ZkError(Err.INVALIDACL, f"bad perms {entry.perms}")
        scheme = entry.id.scheme
        if scheme == "world":
            if entry.id.id != "anyone":
                raise ZkError(Err.INVALIDACL, "world scheme only has 'anyone'")
            out.append(entry)
        elif scheme == "auth":
            authed = [(s, i) for s, i in identities if s not in ("ip", "world", "super")]
            if not authed:
                raise ZkError(Err.INVALIDACL, "auth scheme without authenticated ids")
            out.extend(ACL(entry.perms, Id(s, i)) for s, i in authed)
        elif scheme == "digest":
            if entry.id.id.count(":") != 1:
                raise ZkError(Err.INVALIDACL, "digest id must be user:hash")
            out.append(entry)
        elif scheme == "ip":
            try:
                ipaddress.ip_network(entry.id.id, strict=False)
            except ValueError:
                raise ZkError(Err.INVALIDACL, f"bad ip {entry.id.id!r}") from None
            out.append(entry)
        else:
            raise ZkError(Err.INVALIDACL, f"unknown scheme {scheme!r}")
    # Same order, duplicates removed (ZooKeeper's fixupACL does the same).
    seen: set[tuple[int, str, str]] = set()
    unique = []
    for entry in out:
        key = (entry.perms, entry.id.scheme, entry.id.id)
        if key not in seen:
            seen.add(key)
            unique.append(entry)
    return tuple(unique)
