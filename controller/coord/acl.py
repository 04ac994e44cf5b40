"""ACL checks and ACL normalisation, as ZooKeeper does them.

An identity is a `(scheme, id)` pair: `("world", "anyone")` for everyone, `("ip", addr)` for
the client's address, `("digest", "user:base64(sha1(user:password))")` after
`addauth digest user:password`, `("super", "")` for the superDigest identity.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence

from controller.coord.datatree import ZkError
from controller.zk.constants import Err
from controller.zk.records import ACL, Id

Identity = tuple[str, str]
ALL_PERMS = 31
ADMIN = 16
_JAVA_INT = re.compile("[+-]?[0-9]+")  # what Integer.parseInt accepts (ASCII digits)
_DIGEST_SECRET = re.compile(":[^\n\r\u0085\u2028\u2029]*")  # Java's ":.*"


def digest_id(user_password: str) -> str:
    """`user:password` -> `user:base64(sha1(user:password))` (DigestAuthenticationProvider)."""
    user, _, _ = user_password.partition(":")
    hashed = base64.b64encode(hashlib.sha1(user_password.encode()).digest()).decode()
    return f"{user}:{hashed}"


def _v4(addr: str) -> bytes | None:
    # IPAuthenticationProvider.v4addr2Bytes: four Integer.parseInt parts in 0..255 (IPv4
    # only in ZooKeeper 3.8).
    parts = addr.split(".")
    if len(parts) != 4 or not all(_JAVA_INT.fullmatch(p) for p in parts):
        return None
    values = [int(p) for p in parts]
    return bytes(values) if all(0 <= v <= 255 for v in values) else None


def _ip_rule(expr: str) -> tuple[bytes, int] | None:
    """An ip ACL id `a.b.c.d[/bits]` as (address, bits), None if ZooKeeper refuses it."""
    addr, slash, bits_text = expr.partition("/")
    raw = _v4(addr)
    if raw is None:
        return None
    if not slash:
        return raw, 32
    if not _JAVA_INT.fullmatch(bits_text) or not 0 <= int(bits_text) <= 32:
        return None
    return raw, int(bits_text)


def _ip_matches(pattern: str, address: str) -> bool:
    rule, client = _ip_rule(pattern), _v4(address)
    if rule is None or client is None:
        return False
    mask = ((1 << 32) - 1) ^ ((1 << (32 - rule[1])) - 1)
    return int.from_bytes(rule[0]) & mask == int.from_bytes(client) & mask


def has_permission(acl: Sequence[ACL], perm: int, identities: Sequence[Identity]) -> bool:
    """ZooKeeperServer.checkACL: an empty ACL lets everyone in, a super identity passes
    every check, schemes other than world/ip/digest match nobody."""
    if not acl or any(scheme == "super" for scheme, _ in identities):
        return True
    for entry in acl:
        if not entry.perms & perm:
            continue
        scheme, ident = entry.id.scheme, entry.id.id
        if scheme == "world" and ident == "anyone":
            return True
        if scheme not in ("ip", "digest"):
            continue
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


def _valid_digest_id(ident: str) -> bool:
    # DigestAuthenticationProvider.isValid: id.split(":") has 2 parts (Java drops trailing
    # empty strings, so "user:" is refused and ":hash" accepted).
    parts = ident.split(":")
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return len(parts) == 2


def _valid_ip_id(ident: str) -> bool:
    return _ip_rule(ident) is not None


def _invalid(ident: str) -> bool:
    return False


# The schemes with an authentication provider (the others are refused).
_VALID_ID = {"digest": _valid_digest_id, "ip": _valid_ip_id}


def normalize(acl: Sequence[ACL], identities: Sequence[Identity]) -> tuple[ACL, ...]:
    """PrepRequestProcessor.fixupACL: drop exact duplicates, refuse an empty list, validate
    each id with its scheme's provider and expand `auth` to the caller's authenticated ids
    (digest ones: ip is not an authenticated scheme). Permission bits are not checked."""
    unique: list[ACL] = []
    for entry in acl:
        if entry not in unique:
            unique.append(entry)
    if not unique:
        raise ZkError(Err.INVALIDACL, "empty ACL")
    out: list[ACL] = []
    for entry in unique:
        scheme, ident = entry.id.scheme, entry.id.id
        if scheme == "world" and ident == "anyone":
            out.append(entry)
        elif scheme == "auth":
            authed = [(s, i) for s, i in identities if s == "digest"]
            if not authed:
                raise ZkError(Err.INVALIDACL, "auth scheme without authenticated ids")
            out.extend(ACL(entry.perms, Id(s, i)) for s, i in authed)
        elif (scheme == "digest" and _valid_digest_id(ident)) or (
            scheme == "ip" and _valid_ip_id(ident)
        ):
            out.append(entry)
        else:
            raise ZkError(Err.INVALIDACL, f"bad id {scheme}:{ident}")
    return tuple(out)


def visible_acl(acl: Sequence[ACL], identities: Sequence[Identity]) -> list[ACL]:
    """getACL's answer: without ADMIN on the node, digest ids show as `user:x`."""
    if has_permission(acl, ADMIN, identities):
        return list(acl)
    return [
        ACL(a.perms, Id(a.id.scheme, _mask_digest(a.id.id))) if a.id.scheme == "digest" else a
        for a in acl
    ]


def _mask_digest(ident: str) -> str:
    return _DIGEST_SECRET.sub(":x", ident)  # Java's id.replaceAll(":.*", ":x")
